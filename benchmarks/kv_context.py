"""Active KV size and perplexity against context length, per cache, on a long text.

Feeds the first ``--context`` tokens of a long licence text shipped in
site-packages through SmolLM2 in chunks, with the full DynamicCache, the
FreezeCache and a sink plus window cache whose budget is the FreezeCache's
active size at the end. Writes benchmarks/results/kv_context.json and
kv_active_size.png.

    .venv/bin/python benchmarks/kv_context.py --context 4096 --threads 1
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from kv_common import (
    LONG_TEXT,
    RESULTS_DIR,
    base_parser,
    freeze_config,
    settings,
    setup,
    write_result,
)

from aas.policies.kv.harness import close_cache, feed_context, fit_exponent, make_cache


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--context", type=int, default=4096, help="context length in tokens"
    )
    parser.add_argument(
        "--text", default=str(LONG_TEXT), help="long natural-language text file"
    )
    args = parser.parse_args()
    lm = setup(args)
    text = Path(args.text).read_text(encoding="utf-8")
    ids = lm.tokenizer(text, return_tensors="pt").input_ids[:, : args.context]
    if ids.shape[1] < args.context:
        raise SystemExit(
            f"{args.text} has only {ids.shape[1]} tokens, fewer than --context"
        )

    runs = {}
    for kind in ("dynamic", "freeze", "sink_window"):
        budget = runs["freeze"]["active"][-1] if kind == "sink_window" else None
        cache = make_cache(kind, lm.model, freeze_config(args), budget=budget)
        run = feed_context(lm.model, cache, ids, args.chunk_tokens)
        close_cache(cache)
        runs[kind] = {
            "seen": run.seen,
            "active": run.active,
            "perplexity": math.exp(run.nll / run.scored),
            "scored_tokens": run.scored,
            "seconds": run.seconds,
            "budget": budget,
        }
        if kind == "freeze":
            runs[kind]["moved_bytes_to_host"] = cache.bytes_to_host
            runs[kind]["moved_bytes_to_device"] = cache.bytes_to_device
            runs[kind]["exponent"] = fit_exponent(run.seen, run.active)
        print(
            kind,
            f"ppl={runs[kind]['perplexity']:.3f}",
            f"active={run.active[-1]}",
            f"{run.seconds:.1f}s",
        )

    freeze, full = runs["freeze"], runs["dynamic"]
    summary = {
        "active_reduction_at_end": 1 - freeze["active"][-1] / full["active"][-1],
        "freeze_exponent": freeze["exponent"],
        "perplexity_ratio_freeze": freeze["perplexity"] / full["perplexity"],
        "perplexity_ratio_sink_window": runs["sink_window"]["perplexity"]
        / full["perplexity"],
    }
    print(summary)
    write_result(
        "kv_context",
        {
            "settings": settings(args),
            "text": args.text,
            "runs": runs,
            "summary": summary,
        },
    )

    figure, axis = plt.subplots(figsize=(6, 4))
    for kind, run in runs.items():
        axis.plot(run["seen"], run["active"], label=kind)
    axis.set_xlabel("context length (tokens)")
    axis.set_ylabel("active KV tokens")
    axis.set_title(f"SmolLM2-135M, FreezeCache exponent {freeze['exponent']:.2f}")
    axis.legend()
    figure.tight_layout()
    figure.savefig(RESULTS_DIR / "kv_active_size.png", dpi=100)


if __name__ == "__main__":
    main()
