"""The stages of ``aas pipeline``, each a function of its settings and inputs.

Every stage writes into the folder it is given, returns a JSON-serialisable
result, and checks its output against the stage it reads: a mismatch raises
``StageConsistencyError`` naming the stage.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aas.pipeline_config import (
    EvalStage,
    ExportStage,
    GenerateStage,
    SegmentStage,
    TrainStage,
)
from aas.schema import Provenance, Segment, Segmentation, read_segmentations

if TYPE_CHECKING:
    from aas.sims.eval_results import EpisodeResult

WHOLE_DEMO_OP = "whole_demo"
WHOLE_DEMO_SEGMENTER = "whole_demo"
WHOLE_DEMO_SEGMENTS_FILE = "whole_demo_segments.jsonl"
# Stage folder names, in run order.
GENERATE = "generate"
SEGMENT = "segment"
VALIDATE = "validate"
EXPORT_ATOMIC = "export_atomic"
TRAIN_ATOMIC = "train_atomic"
EVAL_ATOMIC = "eval_atomic"
EXPORT_WHOLE = "export_whole"
TRAIN_WHOLE = "train_whole"
EVAL_WHOLE = "eval_whole"


class StageConsistencyError(RuntimeError):
    """A stage's output disagrees with the output of the stage it reads."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"pipeline stage {stage!r}: {message}")
        self.stage = stage


def check_equal(stage: str, what: str, found: int, expected: int, because: str) -> None:
    """Raise ``StageConsistencyError`` naming ``stage`` unless ``found == expected``."""
    if found != expected:
        raise StageConsistencyError(
            stage, f"{what} is {found}, expected {expected} ({because})"
        )


def resolve_tasks(cfg: GenerateStage) -> list:
    """Return the ``TaskSpec`` of every configured task, in config order."""
    from aas.sims.tasks import get_task

    if not cfg.tasks:
        raise ValueError(
            "generate.tasks is empty. Name at least one task of the suite."
        )
    return [
        get_task(cfg.suite, int(task) if str(task).isdigit() else task)
        for task in cfg.tasks
    ]


def generate_stage(cfg: GenerateStage, folder: Path) -> dict[str, Any]:
    """Record ``num_demos`` scripted demos per task into ``folder/<suite>/``."""
    from aas.sims.generate import STATUS_KEPT, generate_demos

    if cfg.num_demos < 1:
        raise ValueError(f"generate.num_demos must be at least 1, got {cfg.num_demos}")
    tasks = []
    for spec in resolve_tasks(cfg):
        init_states = range(cfg.first_init_state, cfg.first_init_state + cfg.num_demos)
        report = generate_demos(
            spec,
            init_states,
            folder,
            render=True,
            camera_size=cfg.camera_size,
            max_frames=cfg.max_frames,
            resume=True,
        )
        failures = {
            str(i): (o.error.splitlines()[0] if o.error else o.status)
            for i, o in report.outcomes.items()
            if o.status != STATUS_KEPT
        }
        tasks.append(
            {
                "task_index": spec.index,
                "task": spec.name,
                "language": spec.language,
                "plan": [str(step) for step in report.plan.steps],
                "plan_length": len(report.plan.steps),
                "requested": len(report.outcomes),
                "kept": report.kept,
                "demo_file": str(report.demo_file) if report.demo_file else "",
                "failures": failures,
            }
        )
    kept = sum(task["kept"] for task in tasks)
    if kept == 0:
        raise StageConsistencyError(
            GENERATE,
            f"the scripted controller kept no demo; see the status files under {folder}",
        )
    return {
        "demo_dir": str(folder / cfg.suite),
        "requested": sum(task["requested"] for task in tasks),
        "kept": kept,
        "tasks": tasks,
    }


def segment_stage(cfg: SegmentStage, demo_dir: str, folder: Path, kept: int) -> dict:
    """Segment every generated demo; ``kept`` is the number of demos generated."""
    from aas.commands.segment import SEGMENTS_FILE, segment_demo_files

    summary = segment_demo_files(
        demo_dir, folder, cfg.segmenter.build(), plots=cfg.plots, resume=True
    )
    segmentations = read_segmentations(folder / SEGMENTS_FILE)
    check_equal(
        SEGMENT, "segmentations", len(segmentations), kept, "one per generated demo"
    )
    return {
        "segments_file": str(folder / SEGMENTS_FILE),
        "segmented": sum(s.ok for s in segmentations),
        "failed": sum(not s.ok for s in segmentations),
        "segments": sum(len(s.segments) for s in segmentations),
        "plots": sorted(str(p) for p in (folder / "plots").rglob("*.png")),
        "demo_errors": summary["demo_errors"],
        "plan_errors": summary["plan_errors"],
    }


def validate_stage(
    cfg: SegmentStage, segments_file: str, demo_dir: str, folder: Path
) -> dict[str, Any]:
    """Validate the segmentations; count the segments and frames of valid demos."""
    from aas.commands.common import write_json
    from aas.commands.validate import (
        RESULT_FILE,
        summarize_reports,
        validate_segmentations,
    )

    reports = validate_segmentations(segments_file, demo_dir, cfg.validation)
    summary = summarize_reports(reports)
    write_json(folder / RESULT_FILE, summary)
    passed = {r.demo_key for r in reports if r.passed}
    valid = [s for s in read_segmentations(segments_file) if s.demo_key in passed]
    for segmentation in valid:
        check_equal(
            VALIDATE,
            f"segments of valid demo {segmentation.demo_key}",
            len(segmentation.segments),
            len(segmentation.plan.steps) if segmentation.plan else 0,
            "one segment per plan step",
        )
    if not valid:
        raise StageConsistencyError(
            VALIDATE,
            f"no demo passed validation; see the failed rules in {folder / RESULT_FILE}",
        )
    return {
        "validation_file": str(folder / RESULT_FILE),
        "num_demos": summary["num_demos"],
        "num_passed": summary["num_passed"],
        "pass_rate": summary["pass_rate"],
        "rule_failures": summary["rule_failures"],
        "valid_demos": sorted(passed),
        "valid_segments": sum(len(s.segments) for s in valid),
        "valid_frames": sum(seg.num_frames for s in valid for seg in s.segments),
    }


def whole_demo_segmentations(
    segments_file: str, valid_demos: list[str]
) -> list[Segmentation]:
    """Turn each valid demo into one segment over frames [0, T-1] with the task instruction.

    The result has no plan, so the export does not run the plan-based
    validation rules on it.
    """
    result = []
    for segmentation in read_segmentations(segments_file):
        if segmentation.demo_key not in valid_demos:
            continue
        if not segmentation.instruction:
            raise ValueError(
                f"{segments_file}: demo {segmentation.demo_key} has no task instruction. "
                "Re-segment it with a segmenter that records the instruction"
            )
        whole = Segment(
            op=WHOLE_DEMO_OP,
            args=(),
            start=0,
            end=segmentation.num_frames - 1,
            confidence=1.0,
            source=WHOLE_DEMO_SEGMENTER,
            instruction=segmentation.instruction,
        )
        result.append(
            Segmentation(
                demo_key=segmentation.demo_key,
                num_frames=segmentation.num_frames,
                segments=(whole,),
                provenance=Provenance(segmenter=WHOLE_DEMO_SEGMENTER, version="1"),
                instruction=segmentation.instruction,
                source_file=segmentation.source_file,
                demo_hash=segmentation.demo_hash,
                fps=segmentation.fps,
            )
        )
    return result


def export_stage(
    cfg: ExportStage,
    demo_dir: str,
    segments_file: str,
    validation_file: str,
    folder: Path,
    stage: str,
    expected_segments: int,
    expected_frames: int,
) -> dict[str, Any]:
    """Write training shards of the valid demos and check their counts.

    ``validation_file`` is empty for segmentations without a plan (whole
    demos), which the export then keeps unvalidated.
    """
    from aas.commands import export

    export_cfg = export.Config(
        demos=demo_dir,
        segmentations=segments_file,
        format="webdataset",
        output_dir=str(folder),
        validation=validation_file,
        resume=True,
        max_shard_mb=cfg.max_shard_mb,
        png_level=cfg.png_level,
    )
    if export.run(export_cfg) != 0:
        raise StageConsistencyError(
            stage, f"the export failed; see the log lines above and {folder}"
        )
    result = json.loads((folder / export.RESULT_FILE).read_text(encoding="utf-8"))
    counts = result["counts"]
    check_equal(
        stage,
        "exported segments",
        counts["segments"],
        expected_segments,
        "segments of the demos that passed validation",
    )
    check_equal(
        stage,
        "training samples",
        counts["frames"],
        expected_frames,
        "one sample per frame of the exported segments",
    )
    return {
        "shard_dir": str(folder),
        "segments": counts["segments"],
        "samples": counts["frames"],
        "ops": counts["ops"],
    }


def train_stage(
    cfg: TrainStage, shard_dir: str, instruction_mode: str, folder: Path
) -> dict[str, Any]:
    """Train one CLIP-RT+ policy on ``shard_dir`` and return its final loss and model path."""
    from aas.policies.cliprt.train import (
        CURVE_FILE,
        FINAL_MODEL_DIR,
        METRICS_FILE,
        TrainConfig,
        train,
    )

    train_cfg = TrainConfig(
        data=shard_dir,
        output_dir=str(folder),
        resume=True,
        model=cfg.model,
        instruction_mode=instruction_mode,
        batch_size=cfg.batch_size,
        steps=cfg.steps,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
        crop_scale_min=cfg.crop_scale_min,
        freeze_text_tower=cfg.freeze_text_tower,
        save_every=cfg.save_every,
        log_every=cfg.log_every,
        seed=cfg.seed,
        num_threads=cfg.num_threads,
        device=cfg.device,
        progress=cfg.progress,
    )
    started = time.perf_counter()
    result = train(train_cfg)
    losses = [
        record["loss"]
        for record in _read_jsonl(folder / METRICS_FILE)
        if "loss" in record
    ]
    if not losses:
        raise StageConsistencyError(
            folder.name, f"training logged no loss in {folder / METRICS_FILE}"
        )
    return {
        "model_dir": str(folder / FINAL_MODEL_DIR),
        "instruction_mode": instruction_mode,
        "steps": result["steps"],
        "final_loss": losses[-1],
        "first_loss": losses[0],
        "train_seconds": round(time.perf_counter() - started, 2),
        "samples_per_second": result.get("samples_per_second"),
        "plots": [str(folder / CURVE_FILE)],
    }


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def eval_stage(
    cfg: EvalStage,
    generate: GenerateStage,
    model_dir: str,
    planner: bool,
    folder: Path,
) -> dict[str, Any]:
    """Evaluate the model in ``model_dir`` on the generated tasks.

    With ``planner`` the configured planner issues one atomic instruction per
    plan step (planner-in-the-loop); without it the policy gets the task
    instruction for the whole episode.
    """
    import aas.policies.cliprt.eval_config as cliprt_eval
    from aas.sims.eval_results import EpisodeResult
    from aas.sims.evaluate import EvalSettings, PlannerChoice, evaluate
    from aas.sims.workers import default_workers

    specs = resolve_tasks(generate)
    settings = EvalSettings(
        suite=generate.suite,
        tasks=[spec.index for spec in specs],
        trials=cfg.trials,
        seeds=list(cfg.seeds),
        max_steps=cfg.max_steps,
        camera_names=list(cfg.camera_names),
        camera_size=generate.camera_size,
        videos_per_task=cfg.videos_per_task,
        episode_timeout_s=cfg.episode_timeout_s,
    )
    policy = cliprt_eval.CLIPRTPolicyConfig(path=model_dir, device=cfg.device)
    info = evaluate(
        policy,
        settings,
        folder,
        num_workers=cfg.workers or default_workers(),
        planner=PlannerChoice(cfg.planner) if planner else None,
    )
    episodes = [EpisodeResult.from_dict(e) for e in info["episodes"]]
    check_equal(
        folder.name,
        "episodes",
        len(episodes),
        cfg.trials * len(specs) * len(cfg.seeds),
        "trials x tasks x seeds",
    )
    # The demos start from init states first_init_state .. + num_demos - 1,
    # so trials from those states start where a training demo started.
    # NOTE: a requested init state counts as seen even when its demo failed
    # generation or validation and so was not trained on.
    demo_states = range(
        generate.first_init_state, generate.first_init_state + generate.num_demos
    )
    seen = [e for e in episodes if e.init_state_index in demo_states]
    held_out = [e for e in episodes if e.init_state_index not in demo_states]
    return {
        "mode": f"planner:{cfg.planner}" if planner else "task instruction",
        "max_steps": info["protocol"]["max_steps"],
        **_rate_dict(episodes),
        "seen_init_states": _rate_dict(seen),
        "held_out_init_states": _rate_dict(held_out),
        "per_task": info["per_task"],
        "plots": [str(folder / "success.png")],
    }


def _rate_dict(episodes: list[EpisodeResult]) -> dict[str, Any]:
    """Summarise episodes as counts, success rate and 95% Wilson interval."""
    from aas.sims.eval_results import RateSummary

    rate = RateSummary.of(episodes)
    return {
        "episodes": rate.trials,
        "successes": rate.successes,
        "errors": rate.errors,
        "success_rate": rate.success_rate,
        "ci95": [rate.ci95_low, rate.ci95_high],
    }
