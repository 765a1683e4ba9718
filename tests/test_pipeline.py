"""`aas pipeline` on the shipped minimal config: every stage runs, connects and resumes.

One module-scoped run generates two demos in LIBERO, segments, validates,
exports, trains both policies for three steps and evaluates each for two
20-step episodes. A second run of the same command must skip every stage.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from aas.cli import main
from aas.pipeline import (
    EVAL_ATOMIC,
    EVAL_WHOLE,
    EXPORT_ATOMIC,
    EXPORT_WHOLE,
    GENERATE,
    SEGMENT,
    STAGE_FILE,
    SUMMARY_FILE,
    TRAIN_ATOMIC,
    TRAIN_WHOLE,
    VALIDATE,
    WHOLE_DEMO_SEGMENTS_FILE,
    StageConsistencyError,
    check_equal,
    run_stage,
)
from aas.schema import read_segmentations

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ci_minimal.yaml"
ALL_STAGES = [
    GENERATE,
    SEGMENT,
    VALIDATE,
    EXPORT_ATOMIC,
    TRAIN_ATOMIC,
    EVAL_ATOMIC,
    EXPORT_WHOLE,
    TRAIN_WHOLE,
    EVAL_WHOLE,
]
TRIALS = 2


def _run(root: Path) -> dict:
    code = main(["pipeline", f"--config_path={CONFIG}", f"--output_dir={root}"])
    assert code == 0
    return json.loads((root / SUMMARY_FILE).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    first = _run(root)
    second = _run(root)
    return root, first, second


def _result(summary: dict, stage: str) -> dict:
    return summary["stages"][stage]["result"]


def test_pipeline_runs_every_stage(runs):
    _, first, _ = runs
    assert first["stage_order"] == ALL_STAGES
    for stage in ALL_STAGES:
        assert first["stages"][stage]["skipped"] is False, stage
        assert first["stages"][stage]["seconds"] > 0, stage


def test_pipeline_writes_stage_outputs(runs):
    root, first, _ = runs
    generated = _result(first, GENERATE)
    expected = [
        Path(generated["tasks"][0]["demo_file"]),
        root / SEGMENT / "segments.jsonl",
        root / VALIDATE / "validation.json",
        root / EXPORT_ATOMIC / "manifest.json",
        root / EXPORT_WHOLE / "shards" / "manifest.json",
        root / TRAIN_ATOMIC / "model" / "model.safetensors",
        root / TRAIN_WHOLE / "model" / "model.safetensors",
        root / EVAL_ATOMIC / "eval_info.json",
        root / EVAL_WHOLE / "eval_info.json",
    ]
    for path in expected:
        assert path.is_file(), path
    for stage, plots in first["plots"].items():
        for plot in plots:
            assert Path(plot).is_file(), (stage, plot)
    assert set(first["plots"]) == {
        SEGMENT,
        TRAIN_ATOMIC,
        EVAL_ATOMIC,
        TRAIN_WHOLE,
        EVAL_WHOLE,
    }


def test_pipeline_segments_follow_plan(runs):
    _, first, _ = runs
    generated = _result(first, GENERATE)
    segmented = _result(first, SEGMENT)
    validated = _result(first, VALIDATE)
    plan_length = generated["tasks"][0]["plan_length"]
    assert generated["kept"] >= 1
    assert segmented["segmented"] + segmented["failed"] == generated["kept"]
    assert validated["num_demos"] == generated["kept"]
    assert validated["valid_segments"] == plan_length * validated["num_passed"]
    assert _result(first, EXPORT_ATOMIC)["segments"] == validated["valid_segments"]


def test_pipeline_samples_match_valid_frames(runs):
    root, first, _ = runs
    validated = _result(first, VALIDATE)
    atomic = _result(first, EXPORT_ATOMIC)
    whole = _result(first, EXPORT_WHOLE)
    manifest = json.loads((root / EXPORT_ATOMIC / "manifest.json").read_text())
    assert atomic["samples"] == validated["valid_frames"]
    assert manifest["num_samples"] == validated["valid_frames"]
    assert whole["samples"] == validated["valid_frames"]
    assert whole["segments"] == validated["num_passed"]


def test_whole_demo_segments_span_demo(runs):
    root, first, _ = runs
    language = _result(first, GENERATE)["tasks"][0]["language"]
    whole = read_segmentations(root / EXPORT_WHOLE / WHOLE_DEMO_SEGMENTS_FILE)
    assert sorted(s.demo_key for s in whole) == _result(first, VALIDATE)["valid_demos"]
    for segmentation in whole:
        (segment,) = segmentation.segments
        assert segment.start == 0
        assert segment.end == segmentation.num_frames - 1
        # The generated demo file contains the BDDL language in lower case.
        assert segment.instruction == language.lower()


def test_pipeline_episode_counts_match_trials(runs):
    root, first, _ = runs
    for stage in (EVAL_ATOMIC, EVAL_WHOLE):
        assert _result(first, stage)["episodes"] == TRIALS, stage
        lines = (root / stage / "episodes.jsonl").read_text().splitlines()
        assert len(lines) == TRIALS, stage


def test_atomic_policy_runs_with_planner(runs):
    root, _, _ = runs
    atomic = json.loads((root / EVAL_ATOMIC / "eval_info.json").read_text())
    whole = json.loads((root / EVAL_WHOLE / "eval_info.json").read_text())
    assert atomic["protocol"]["planner"]["type"] == "symbolic"
    assert whole["protocol"]["planner"] is None
    assert all(e["step_results"] for e in atomic["episodes"])
    assert atomic["protocol"]["max_steps"] == 20


def test_pipeline_summary_has_loss_and_rate(runs):
    _, first, _ = runs
    assert set(first["policies"]) == {"A", "B"}
    for name, row in first["policies"].items():
        assert math.isfinite(row["final_loss"]), name
        assert row["final_loss"] > 0, name
        low, high = row["ci95"]
        assert 0.0 <= low <= row["success_rate"] <= high <= 1.0, name
        assert row["episodes"] == TRIALS, name
        seen, held_out = row["seen_init_states"], row["held_out_init_states"]
        assert seen["episodes"] + held_out["episodes"] == TRIALS, name
        assert seen["successes"] + held_out["successes"] == round(
            row["success_rate"] * TRIALS
        ), name


def test_pipeline_rerun_skips_finished_stages(runs):
    _, first, second = runs
    for stage in ALL_STAGES:
        assert second["stages"][stage]["skipped"] is True, stage
        assert second["stages"][stage]["result"] == first["stages"][stage]["result"]
    assert second["policies"] == first["policies"]


def test_stage_reruns_when_inputs_change(tmp_path):
    calls = []

    def body(folder: Path) -> dict:
        calls.append(folder)
        (folder / "out.txt").write_text(str(len(calls)))
        return {"calls": len(calls)}

    run_stage(tmp_path, "work", "hash-1", body)
    skipped = run_stage(tmp_path, "work", "hash-1", body)
    changed = run_stage(tmp_path, "work", "hash-2", body)
    assert skipped["skipped"] is True
    assert skipped["result"] == {"calls": 1}
    assert changed["skipped"] is False
    assert changed["result"] == {"calls": 2}
    assert len(calls) == 2


def test_stage_resumes_interrupted_run(tmp_path):
    def interrupted(folder: Path) -> dict:
        (folder / "partial.txt").write_text("first half")
        raise KeyboardInterrupt

    def resumed(folder: Path) -> dict:
        return {"partial": (folder / "partial.txt").read_text()}

    with pytest.raises(KeyboardInterrupt):
        run_stage(tmp_path, "work", "hash-1", interrupted)
    record = json.loads((tmp_path / "work" / STAGE_FILE).read_text())
    assert record["status"] == "running"
    result = run_stage(tmp_path, "work", "hash-1", resumed)
    assert result["result"] == {"partial": "first half"}


def test_consistency_error_names_stage():
    with pytest.raises(StageConsistencyError, match="pipeline stage 'export_atomic'"):
        check_equal(EXPORT_ATOMIC, "training samples", 10, 12, "one per frame")


def test_unreadable_stage_record_reruns_stage(tmp_path):
    run_stage(tmp_path, "work", "hash-1", lambda folder: {"run": 1})
    (tmp_path / "work" / STAGE_FILE).write_text("not json{")
    again = run_stage(tmp_path, "work", "hash-1", lambda folder: {"run": 2})
    assert again["skipped"] is False
    assert again["result"] == {"run": 2}


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("--generate.num_demos=0", "generate.num_demos"),
        ("--export.png_level=15", "export.png_level"),
        ("--train.steps=0", "train.steps"),
        ("--train.device=tpu", "train.device"),
        ("--eval.trials=0", "eval.trials"),
        ("--eval.seeds=[]", "eval.seeds"),
        ("--eval.planner=oracle", "eval.planner"),
        ("--eval.workers=-1", "eval.workers"),
    ],
)
def test_bad_setting_fails_before_any_stage(tmp_path, capsys, override, field):
    out = tmp_path / "run"
    code = main(
        [
            "pipeline",
            f"--config_path={CONFIG}",
            f"--output_dir={out}",
            override,
        ]
    )
    assert code == 2
    assert field in capsys.readouterr().err
    assert not (out / GENERATE).exists()
