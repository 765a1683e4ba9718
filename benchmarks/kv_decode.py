"""Decode time per token of each cache after the same long prefix.

Feeds ``--context`` tokens of the long licence text in chunks, then decodes
``--decode_tokens`` tokens greedily with each cache, timing every step. The
sink plus window cache gets the FreezeCache's active size as its budget.
Writes benchmarks/results/kv_decode.json.

    .venv/bin/python benchmarks/kv_decode.py --context 2048 --decode_tokens 64
"""

from __future__ import annotations

import statistics

from kv_common import (
    LONG_TEXT,
    base_parser,
    freeze_config,
    settings,
    setup,
    write_result,
)

from aas.policies.kv.harness import close_cache, feed_context, greedy_decode, make_cache


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--decode_tokens", type=int, default=64)
    args = parser.parse_args()
    lm = setup(args)
    ids = lm.tokenizer(
        LONG_TEXT.read_text(encoding="utf-8"), return_tensors="pt"
    ).input_ids
    ids = ids[:, : args.context]
    runs = {}
    budget = None
    for kind in ("dynamic", "freeze", "sink_window", "offloaded"):
        try:
            cache = make_cache(kind, lm.model, freeze_config(args), budget=budget)
        except RuntimeError as exc:  # the offloaded cache needs CUDA in transformers 5.5.4
            runs[kind] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
            print(kind, runs[kind]["error"])
            continue
        run = feed_context(lm.model, cache, ids, args.chunk_tokens)
        _, seconds = greedy_decode(lm.model, cache, run.last_logits, args.decode_tokens)
        close_cache(cache)
        if kind == "freeze":
            budget = run.active[-1]
        runs[kind] = {
            "median_seconds_per_token": statistics.median(seconds),
            "mean_seconds_per_token": statistics.fmean(seconds),
            "active_after_prefix": run.active[-1],
        }
        print(kind, runs[kind], flush=True)
    base = runs["dynamic"]["median_seconds_per_token"]
    summary = {
        f"{kind}_ratio": run["median_seconds_per_token"] / base
        for kind, run in runs.items()
        if "median_seconds_per_token" in run
    }
    print(summary)
    write_result(
        "kv_decode", {"settings": settings(args), "runs": runs, "summary": summary}
    )


if __name__ == "__main__":
    main()
