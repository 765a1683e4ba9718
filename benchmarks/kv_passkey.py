"""Passkey retrieval accuracy per cache at several context lengths.

A five-digit key is hidden at evenly spread depths in repeated filler text;
the model reads the prompt in chunks and then decodes greedily. A case
passes when the key appears in the first decoded tokens. The sink plus
window cache gets the FreezeCache's active size at the end of the prompt as
its budget. Writes benchmarks/results/kv_passkey.json.

    .venv/bin/python benchmarks/kv_passkey.py --lengths 1024 2048 4096 --cases 20
"""

from __future__ import annotations

import random
import time

from kv_common import base_parser, freeze_config, settings, setup, write_result

from aas.policies.kv.harness import close_cache, feed_context, greedy_decode, make_cache

INTRO = (
    "There is an important piece of information hidden inside a lot of irrelevant text. "
    "Find it and memorize it. I will quiz you about it.\n"
)
FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
NEEDLE = "The pass key is {key}. Remember it. {key} is the pass key. "
QUESTION = "\nWhat is the pass key? The pass key is"


def build_prompt(tokenizer, length: int, depth: float, key: int):
    """Return ``[1, ~length]`` token ids with the needle at ``depth`` (0 to 1) of the filler."""
    fixed = len(tokenizer(INTRO + NEEDLE.format(key=key) + QUESTION).input_ids)
    repeats = max(1, (length - fixed) // len(tokenizer(FILLER).input_ids))
    before = int(repeats * depth)
    text = (
        INTRO
        + FILLER * before
        + NEEDLE.format(key=key)
        + FILLER * (repeats - before)
        + QUESTION
    )
    return tokenizer(text, return_tensors="pt").input_ids


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--cases", type=int, default=20, help="cases per length")
    parser.add_argument("--decode_tokens", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lm = setup(args)
    rng = random.Random(args.seed)
    results = []
    # Lengths alternate inside each case so that a stopped run covers all lengths.
    for case in range(args.cases):
        for length in args.lengths:
            depth = (case + 0.5) / args.cases
            key = rng.randint(10000, 99999)
            ids = build_prompt(lm.tokenizer, length, depth, key)
            record = {
                "length": length,
                "tokens": ids.shape[1],
                "depth": depth,
                "key": key,
            }
            budget = None
            for kind in ("dynamic", "freeze", "sink_window"):
                started = time.perf_counter()
                cache = make_cache(kind, lm.model, freeze_config(args), budget=budget)
                run = feed_context(lm.model, cache, ids, args.chunk_tokens)
                tokens, _ = greedy_decode(
                    lm.model, cache, run.last_logits, args.decode_tokens
                )
                close_cache(cache)
                answer = lm.tokenizer.decode(tokens)
                if kind == "freeze":
                    budget = run.active[-1]
                record[kind] = {
                    "correct": str(key) in answer,
                    "answer": answer,
                    "active": run.active[-1],
                    "seconds": time.perf_counter() - started,
                }
            results.append(record)
            print(
                length,
                case,
                {k: record[k]["correct"] for k in ("dynamic", "freeze", "sink_window")},
                flush=True,
            )
            write_result(
                "kv_passkey",
                {
                    "settings": settings(args),
                    "cases": results,
                    "summary": summarize(results),
                },
            )
    print(summarize(results))


def summarize(results: list[dict]) -> dict:
    summary = {}
    for length in sorted({r["length"] for r in results}):
        rows = [r for r in results if r["length"] == length]
        summary[str(length)] = {
            "cases": len(rows),
            **{
                f"{kind}_accuracy": sum(r[kind]["correct"] for r in rows) / len(rows)
                for kind in ("dynamic", "freeze", "sink_window")
            },
            "freeze_active_mean": sum(r["freeze"]["active"] for r in rows) / len(rows),
        }
    return summary


if __name__ == "__main__":
    main()
