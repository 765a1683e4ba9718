"""The end-to-end chain: generate, segment, validate, export, train and evaluate.

Each stage is a function that writes into its own folder under the run
directory and returns a JSON-serialisable result. ``run_stage`` records the
stage in ``<stage>/stage.json`` with a hash of its inputs: the stage's
settings and the hashes of the stages it reads. A stage that finished with
the same input hash is skipped and its stored result is reused. A stage whose
inputs changed starts again from an empty folder. An interrupted stage with
unchanged inputs runs again with the resume logic of the code it calls:
generation per init state, segmentation per demo, shards per finished shard,
training per checkpoint and evaluation per episode.

Two policies are trained on the same valid demos. Policy A learns from the
atomic segments with their atomic instructions and is evaluated with the
symbolic planner issuing one atomic instruction per plan step. Policy B
learns from whole demos with the task instruction and is evaluated with the
task instruction alone.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aas.pipeline_config import (
    EvalStage,
    ExportStage,
    GenerateStage,
    PipelineSettings,
    SegmentStage,
    TrainStage,
)
from aas.pipeline_stages import (
    EVAL_ATOMIC,
    EVAL_WHOLE,
    EXPORT_ATOMIC,
    EXPORT_WHOLE,
    GENERATE,
    SEGMENT,
    TRAIN_ATOMIC,
    TRAIN_WHOLE,
    VALIDATE,
    WHOLE_DEMO_SEGMENTS_FILE,
    StageConsistencyError,
    check_equal,
    eval_stage,
    export_stage,
    generate_stage,
    segment_stage,
    train_stage,
    validate_stage,
    whole_demo_segmentations,
)
from aas.schema import content_hash, write_atomic, write_segmentations

logger = logging.getLogger(__name__)

__all__ = [
    "EvalStage",
    "ExportStage",
    "GenerateStage",
    "PipelineSettings",
    "SegmentStage",
    "StageConsistencyError",
    "TrainStage",
    "check_equal",
    "format_summary",
    "run_pipeline",
    "run_stage",
    "stage_hash",
]

STAGE_FILE = "stage.json"
SUMMARY_FILE = "summary.json"
STATUS_RUNNING = "running"
STATUS_DONE = "done"


def stage_hash(name: str, settings: Any, *upstream: str) -> str:
    """Return the input hash of a stage from its settings and its inputs' hashes."""
    encoded = json.dumps(_plain(settings), sort_keys=True, default=str)
    return content_hash(name, encoded, *upstream)


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        data = asdict(value)
        choice = getattr(value, "get_choice_name", None)
        if choice is not None:
            data["type"] = choice(type(value))
        return data
    return value


def run_stage(
    root: Path, name: str, input_hash: str, body: Callable[[Path], dict[str, Any]]
) -> dict[str, Any]:
    """Run one stage in ``root/name`` unless it already finished with ``input_hash``.

    Returns:
        The stage record: ``name``, ``input_hash``, ``status``, ``seconds``
        (wall time of the run that produced the result), ``skipped`` and
        ``result`` (what ``body`` returned).
    """
    folder = root / name
    record_path = folder / STAGE_FILE
    previous = _read_record(record_path)
    if previous is not None and previous.get("input_hash") == input_hash:
        if previous.get("status") == STATUS_DONE:
            logger.info("pipeline: %s already done, skipped", name)
            return {**previous, "skipped": True}
        logger.info("pipeline: resuming interrupted stage %s", name)
    elif folder.exists():
        logger.info("pipeline: inputs of %s changed, starting it again", name)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)

    record = {"name": name, "input_hash": input_hash, "status": STATUS_RUNNING}
    _write_record(record_path, record)
    logger.info("pipeline: running %s", name)
    started = time.perf_counter()
    result = body(folder)
    record.update(
        status=STATUS_DONE,
        seconds=round(time.perf_counter() - started, 2),
        result=result,
    )
    _write_record(record_path, record)
    logger.info("pipeline: %s done in %.1f s", name, record["seconds"])
    return {**record, "skipped": False}


def _read_record(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        logger.warning(
            "pipeline: unreadable stage record %s (%s); running the stage again",
            path,
            exc,
        )
        return None
    if not isinstance(record, dict):
        logger.warning(
            "pipeline: stage record %s is not a JSON object; running the stage again",
            path,
        )
        return None
    return record


def _write_record(path: Path, record: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


def run_pipeline(settings: PipelineSettings, root: str | Path) -> dict[str, Any]:
    """Run every stage into ``root``, skip the finished ones and write ``summary.json``.

    Returns:
        The summary: one record per stage (see ``run_stage``) under
        ``stages`` and the comparison table rows under ``policies``.

    NOTE: stage results store absolute paths, so a run directory that was
    moved resumes only while no stage has to run again.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    s = settings
    stages: dict[str, dict[str, Any]] = {}

    def stage(name: str, hash_: str, body: Callable[[Path], dict]) -> dict[str, Any]:
        stages[name] = run_stage(root, name, hash_, body)
        return stages[name]["result"]

    h_gen = stage_hash(GENERATE, s.generate)
    gen = stage(GENERATE, h_gen, lambda f: generate_stage(s.generate, f))
    h_seg = stage_hash(SEGMENT, (s.segment.segmenter, s.segment.plots), h_gen)
    seg = stage(
        SEGMENT,
        h_seg,
        lambda f: segment_stage(s.segment, gen["demo_dir"], f, gen["kept"]),
    )
    h_val = stage_hash(VALIDATE, s.segment.validation, h_seg)
    val = stage(
        VALIDATE,
        h_val,
        lambda f: validate_stage(s.segment, seg["segments_file"], gen["demo_dir"], f),
    )

    policies = {"A": _policy_atomic(s, stage, gen, seg, val, h_val)}
    if s.compare_whole_demo:
        policies["B"] = _policy_whole(s, stage, gen, seg, val, h_val)

    summary = {
        "output_dir": str(root),
        "tasks": gen["tasks"],
        "stages": stages,
        # summary.json sorts keys, so the run order of the stages is kept here.
        "stage_order": list(stages),
        "total_seconds": round(sum(r.get("seconds", 0.0) for r in stages.values()), 2),
        "policies": policies,
        "plots": {
            name: record["result"]["plots"]
            for name, record in stages.items()
            if record["result"].get("plots")
        },
    }
    write_atomic(
        root / SUMMARY_FILE,
        json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n",
    )
    return summary


@dataclass(frozen=True)
class _PolicyRun:
    """Stage names and settings of one policy's export, training and evaluation."""

    export: str
    train: str
    evaluate: str
    instruction_mode: str
    planner: bool
    training_data: str


POLICY_A = _PolicyRun(
    EXPORT_ATOMIC,
    TRAIN_ATOMIC,
    EVAL_ATOMIC,
    "atomic",
    True,
    "atomic segments, atomic instructions",
)
POLICY_B = _PolicyRun(
    EXPORT_WHOLE,
    TRAIN_WHOLE,
    EVAL_WHOLE,
    "original",
    False,
    "whole demos, task instruction",
)


def _policy_atomic(s, stage, gen, seg, val, h_val) -> dict[str, Any]:
    def export_atomic(folder: Path) -> dict[str, Any]:
        return export_stage(
            s.export,
            gen["demo_dir"],
            seg["segments_file"],
            val["validation_file"],
            folder,
            EXPORT_ATOMIC,
            val["valid_segments"],
            val["valid_frames"],
        )

    return _train_and_evaluate(s, stage, POLICY_A, export_atomic, h_val)


def _policy_whole(s, stage, gen, seg, val, h_val) -> dict[str, Any]:
    def export_whole(folder: Path) -> dict[str, Any]:
        segmentations = whole_demo_segmentations(
            seg["segments_file"], val["valid_demos"]
        )
        segments_file = folder / WHOLE_DEMO_SEGMENTS_FILE
        write_segmentations(segments_file, segmentations)
        return export_stage(
            s.export,
            gen["demo_dir"],
            str(segments_file),
            "",
            folder / "shards",
            EXPORT_WHOLE,
            len(segmentations),
            val["valid_frames"],
        )

    return _train_and_evaluate(s, stage, POLICY_B, export_whole, h_val)


def _train_and_evaluate(
    s: PipelineSettings,
    stage: Callable[[str, str, Callable[[Path], dict]], dict[str, Any]],
    run: _PolicyRun,
    export_body: Callable[[Path], dict[str, Any]],
    h_val: str,
) -> dict[str, Any]:
    h_exp = stage_hash(run.export, s.export, h_val)
    exp = stage(run.export, h_exp, export_body)
    h_train = stage_hash(run.train, s.train, h_exp)
    trained = stage(
        run.train,
        h_train,
        lambda f: train_stage(s.train, exp["shard_dir"], run.instruction_mode, f),
    )
    h_eval = stage_hash(run.evaluate, (s.eval, s.generate.camera_size), h_train)
    evaluated = stage(
        run.evaluate,
        h_eval,
        lambda f: eval_stage(s.eval, s.generate, trained["model_dir"], run.planner, f),
    )
    return _policy_row(run.training_data, exp, trained, evaluated)


def _policy_row(data: str, exp: dict, trained: dict, evaluated: dict) -> dict[str, Any]:
    return {
        "training_data": data,
        "segments": exp["segments"],
        "samples": exp["samples"],
        "final_loss": trained["final_loss"],
        "eval_mode": evaluated["mode"],
        "episodes": evaluated["episodes"],
        "success_rate": evaluated["success_rate"],
        "ci95": evaluated["ci95"],
        "seen_init_states": evaluated.get("seen_init_states"),
        "held_out_init_states": evaluated.get("held_out_init_states"),
        "model_dir": trained["model_dir"],
    }


def format_summary(summary: dict[str, Any]) -> str:
    """Format the stage timings, the counts and the policy comparison as plain text."""
    stages = summary["stages"]
    lines = [f"{'stage':<14}{'seconds':>10}  status"]
    for name in summary["stage_order"]:
        record = stages[name]
        state = "skipped (done earlier)" if record["skipped"] else "ran"
        lines.append(f"{name:<14}{record.get('seconds', 0.0):>10.1f}  {state}")
    gen = stages[GENERATE]["result"]
    val = stages[VALIDATE]["result"]
    lines += [
        "",
        (
            f"demos kept {gen['kept']}/{gen['requested']}, "
            f"segments {stages[SEGMENT]['result']['segments']}, "
            f"validation passed {val['num_passed']}/{val['num_demos']} "
            f"(pass rate {val['pass_rate']}), valid segments {val['valid_segments']}"
        ),
        "",
        (
            f"{'policy':<7}{'training data':<40}{'samples':>8}{'loss':>9}  "
            f"{'evaluation':<18}{'success':>8}  95% CI"
        ),
    ]
    for name, row in summary["policies"].items():
        low, high = row["ci95"]
        lines.append(
            f"{name:<7}{row['training_data']:<40}{row['samples']:>8}"
            f"{row['final_loss']:>9.4f}  {row['eval_mode']:<18}"
            f"{100 * row['success_rate']:>7.1f}%  [{100 * low:.1f}, {100 * high:.1f}]"
            f" of {row['episodes']}"
        )
    for name, row in summary["policies"].items():
        parts = []
        for key, label in (
            ("seen_init_states", "init states of the training demos"),
            ("held_out_init_states", "other init states"),
        ):
            split = row.get(key)
            if split and split["episodes"]:
                parts.append(f"{label} {split['successes']}/{split['episodes']}")
        if parts:
            lines.append(f"{name:<7}success on " + ", ".join(parts))
    return "\n".join(lines)
