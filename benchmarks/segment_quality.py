"""Score the kinematic segmenter against the predicate reference on generated demos.

For every demo file below ``--input`` (``aas generate`` output, one file per
task), each demo is segmented by the predicate segmenter (simulator replay,
the reference) and by the kinematic segmenter (gripper and motion signals
only). Per task and overall the script reports the boundary mean absolute
error in frames, the max error, mean temporal IoU, plan alignment and the
kinematic result's validation pass rate, plus the seconds per demo of both
segmenters. References are appended to ``<output>/reference.jsonl`` after
each demo, so an interrupted run resumes.

    .venv/bin/python cli.py generate --suite=libero_goal --init_states=0-2 \\
        --render=false --output_dir=outputs/q_bench/gen
    .venv/bin/python benchmarks/segment_quality.py --input outputs/q_bench/gen \\
        --output outputs/q_bench/quality
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from aas.commands.segment import PlanLookupError, plan_for_demo_file
from aas.datasets.libero_hdf5 import DemoFileError, demo_file_paths, open_demo_file
from aas.metrics import compare_runs
from aas.schema import Segmentation, read_segmentations, write_segmentations
from aas.segmenters import KinematicConfig, PredicateConfig
from aas.validation import validate

logger = logging.getLogger("segment_quality")


def _task_name(path: Path) -> str:
    return path.stem.removesuffix("_demo")


def segment_all(input_path: Path, output: Path, max_demos: int) -> dict[str, dict]:
    """Segment every demo with both segmenters; return per-task records."""
    reference_path = output / "reference.jsonl"
    known = (
        {s.demo_key: s for s in read_segmentations(reference_path)}
        if reference_path.is_file()
        else {}
    )
    predicate = PredicateConfig().build()
    kinematic = KinematicConfig().build()
    tasks: dict[str, dict] = defaultdict(
        lambda: {
            "refs": [],
            "preds": [],
            "passed": {},
            "ref_seconds": [],
            "kin_seconds": [],
        }
    )
    try:
        for path in demo_file_paths(input_path):
            try:
                demo_file = open_demo_file(path)
                plan = plan_for_demo_file(demo_file)
            except (DemoFileError, PlanLookupError) as exc:
                logger.warning("skipped %s: %s", path, exc)
                continue
            record = tasks[f"{path.parent.name}/{_task_name(path)}"]
            record["plan"] = [str(s) for s in plan.steps]
            for demo in demo_file.demos[: max_demos or None]:
                reference = known.get(demo.key)
                if reference is None:
                    reference = predicate.segment(demo, plan)
                    known[demo.key] = reference
                    write_segmentations(reference_path, known.values())
                started = time.perf_counter()
                prediction = kinematic.segment(demo, plan)
                record["kin_seconds"].append(time.perf_counter() - started)
                record["ref_seconds"].append(reference.provenance.cost.seconds)
                record["refs"].append(reference)
                record["preds"].append(prediction)
                record["passed"][demo.key] = validate(prediction, plan, demo).passed
                logger.info("%s: %s", demo.key, _boundaries(prediction, reference))
    finally:
        predicate.close()
    return tasks


def _boundaries(prediction: Segmentation, reference: Segmentation) -> str:
    return (
        f"kinematic {prediction.boundaries()} predicate {reference.boundaries()}"
        f"{'' if reference.ok else ' (reference failed: ' + reference.error + ')'}"
    )


def summarise(tasks: dict[str, dict]) -> list[dict]:
    """Return one metrics row per task and an ``overall`` row."""
    rows = []
    pooled: dict[str, list] = {
        "refs": [],
        "preds": [],
        "passed": {},
        "ref_seconds": [],
        "kin_seconds": [],
    }
    for name in sorted(tasks):
        rows.append(_row(name, tasks[name]))
        for key in ("refs", "preds", "ref_seconds", "kin_seconds"):
            pooled[key].extend(tasks[name][key])
        pooled["passed"].update(tasks[name]["passed"])
    rows.append(_row("overall", pooled))
    return rows


def _row(name: str, record: dict) -> dict:
    metrics = compare_runs(record["preds"], record["refs"], passed=record["passed"])
    return {
        "task": name,
        "demos": len(record["refs"]),
        "reference_failed": sum(not r.ok for r in record["refs"]),
        "boundaries": sum(len(d.boundary_errors) for d in metrics.demos),
        "boundary_mae_frames": metrics.boundary_mae_frames,
        "boundary_max_frames": metrics.boundary_max_frames,
        "mean_iou": metrics.mean_iou,
        "plan_alignment": metrics.plan_alignment,
        "pass_rate": metrics.pass_rate,
        "missing": list(metrics.missing),
        "predicate_seconds_per_demo": float(np.mean(record["ref_seconds"]))
        if record["ref_seconds"]
        else None,
        "kinematic_seconds_per_demo": float(np.mean(record["kin_seconds"]))
        if record["kin_seconds"]
        else None,
        "plan": record.get("plan", []),
        "per_demo": [
            {
                "demo_key": d.demo_key,
                "boundary_errors": list(d.boundary_errors),
                "mean_iou": d.mean_iou,
                "plan_alignment": d.plan_alignment,
            }
            for d in metrics.demos
        ],
    }


def generator_failures(input_path: Path) -> list[dict]:
    """List the tasks whose ``aas generate`` status file shows no kept demo, with the first error."""
    failures = []
    for path in sorted(Path(input_path).rglob("*.status.json")):
        status = json.loads(path.read_text(encoding="utf-8"))
        if status.get("kept", 0) == 0:
            errors = [o["error"] for o in status.get("outcomes", []) if o.get("error")]
            failures.append(
                {
                    "task": f"{status['suite']}/{status['task']}",
                    "attempts": len(status.get("outcomes", [])),
                    "error": errors[0].splitlines()[0] if errors else "",
                }
            )
    return failures


def markdown(rows: list[dict]) -> str:
    lines = [
        (
            "| task | demos | boundaries | boundary MAE (frames) | max (frames) "
            "| mean IoU | alignment | pass rate |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        mae = f"{row['boundary_mae_frames']:.2f}" if row["boundaries"] else "-"
        largest = str(row["boundary_max_frames"]) if row["boundaries"] else "-"
        lines.append(
            f"| {row['task']} | {row['demos']} | {row['boundaries']} | {mae} | "
            f"{largest} | {row['mean_iou']:.3f} | {row['plan_alignment']:.3f} | "
            f"{row['pass_rate']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=Path("outputs/q_bench/gen"))
    parser.add_argument("--output", type=Path, default=Path("outputs/q_bench/quality"))
    parser.add_argument("--max-demos-per-file", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    args.output.mkdir(parents=True, exist_ok=True)
    tasks = segment_all(args.input, args.output, args.max_demos_per_file)
    rows = summarise(tasks)
    failures = generator_failures(args.input)
    result = {"rows": rows, "generator_failures": failures}
    (args.output / "segment_quality.json").write_text(
        json.dumps(result, indent=2) + "\n"
    )
    print(markdown(rows))
    for failure in failures:
        print(
            f"no demo kept for {failure['task']} ({failure['attempts']} attempts): "
            f"{failure['error']}"
        )
    overall = rows[-1]
    print(
        f"predicate {overall['predicate_seconds_per_demo']:.2f} s/demo, kinematic "
        f"{overall['kinematic_seconds_per_demo'] * 1000:.1f} ms/demo"
    )


if __name__ == "__main__":
    main()
