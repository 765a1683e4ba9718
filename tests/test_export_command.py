"""`aas export` input checks: mismatched segmentations, validation, output folder."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest
from export_helpers import STEPS, read_demos, segment_demo, write_demo_files

from aas.commands.export import Config, run
from aas.schema import Plan, Step, write_segmentations


@pytest.fixture(scope="module")
def demos_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("command")
    write_demo_files(root / "demos", {"libero_goal": 1}, demos_per_file=3)
    return root / "demos"


def write_inputs(tmp_path, demos_dir, change=None):
    segmentations = [segment_demo(demo) for demo in read_demos(demos_dir)]
    if change is not None:
        segmentations[1] = change(segmentations[1])
    path = tmp_path / "segments.jsonl"
    write_segmentations(path, segmentations)
    return segmentations, path


def config(tmp_path, demos_dir, segments, **overrides):
    fields = {
        "demos": str(demos_dir),
        "segmentations": str(segments),
        "format": "gatevlap",
        "output_dir": str(tmp_path / "out"),
    }
    fields.update(overrides)
    return Config(**fields)


def test_export_rejects_wrong_demo_hash(tmp_path, demos_dir, caplog):
    segmentations, path = write_inputs(
        tmp_path, demos_dir, lambda s: dataclasses.replace(s, demo_hash="0" * 16)
    )
    with caplog.at_level(logging.ERROR):
        assert run(config(tmp_path, demos_dir, path)) == 1
    assert segmentations[1].demo_key in caplog.text
    assert "libero_goal/LIBERO_GOAL_TASK0" in caplog.text
    assert "demo_hash" in caplog.text
    assert not list((tmp_path / "out").rglob("*.tar"))


def test_export_rejects_wrong_frame_count(tmp_path, demos_dir, caplog):
    segmentations, path = write_inputs(
        tmp_path,
        demos_dir,
        lambda s: dataclasses.replace(s, num_frames=s.num_frames + 5),
    )
    with caplog.at_level(logging.ERROR):
        assert run(config(tmp_path, demos_dir, path)) == 1
    assert segmentations[1].demo_key in caplog.text
    assert "frames" in caplog.text


def test_export_excludes_invalid_segmentations(tmp_path, demos_dir):
    segmentations, path = write_inputs(tmp_path, demos_dir)
    validation = tmp_path / "validation.json"
    reports = [
        {"demo_key": s.demo_key, "passed": i != 1} for i, s in enumerate(segmentations)
    ]
    validation.write_text(json.dumps({"reports": reports}))
    assert run(config(tmp_path, demos_dir, path, validation=str(validation))) == 0
    result = json.loads((tmp_path / "out" / "export.json").read_text())
    assert result["pairing"]["invalid_excluded"] == [segmentations[1].demo_key]
    assert result["counts"]["segments"] == 4
    assert result["validation_pass_rate"] == pytest.approx(2 / 3)


def test_export_includes_invalid_when_asked(tmp_path, demos_dir):
    segmentations, path = write_inputs(tmp_path, demos_dir)
    validation = tmp_path / "validation.json"
    validation.write_text(
        json.dumps({s.demo_key: {"passed": False} for s in segmentations})
    )
    cfg = config(
        tmp_path, demos_dir, path, validation=str(validation), include_invalid=True
    )
    assert run(cfg) == 0
    result = json.loads((tmp_path / "out" / "export.json").read_text())
    assert result["counts"]["segments"] == 6
    assert len(result["pairing"]["invalid_included"]) == 3
    assert result["validation_pass_rate"] == 0


def test_export_skips_failed_segmentations(tmp_path, demos_dir):
    segmentations, path = write_inputs(
        tmp_path,
        demos_dir,
        lambda s: dataclasses.replace(s, status="failed", error="timed out"),
    )
    assert run(config(tmp_path, demos_dir, path)) == 0
    result = json.loads((tmp_path / "out" / "export.json").read_text())
    assert result["pairing"]["failed_segmentations"] == [segmentations[1].demo_key]


def test_export_rejects_existing_output_dir(tmp_path, demos_dir, caplog):
    _, path = write_inputs(tmp_path, demos_dir)
    assert run(config(tmp_path, demos_dir, path)) == 0
    with caplog.at_level(logging.ERROR):
        assert run(config(tmp_path, demos_dir, path)) == 1
    assert "--overwrite=true" in caplog.text
    assert run(config(tmp_path, demos_dir, path, overwrite=True)) == 0
    assert run(config(tmp_path, demos_dir, path, resume=True)) == 0


def test_export_overwrite_removes_old_tars(tmp_path, demos_dir):
    _, path = write_inputs(tmp_path, demos_dir)
    stale = tmp_path / "out" / "libero_goal" / "old_subtask.tar"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    assert run(config(tmp_path, demos_dir, path, overwrite=True)) == 0
    assert not stale.exists()
    assert len(list((tmp_path / "out").rglob("*.tar"))) == 2


def test_export_writes_webdataset_shards(tmp_path, demos_dir):
    _, path = write_inputs(tmp_path, demos_dir)
    assert run(config(tmp_path, demos_dir, path, format="webdataset")) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    result = json.loads((tmp_path / "out" / "export.json").read_text())
    assert manifest["num_samples"] == 12 + 13 + 14
    assert result["counts"]["frames"] == manifest["num_samples"]
    assert result["suites"] == ["libero_goal"]
    assert result["segmenters"] == ["kinematic 0.1.0"]


def test_export_config_rejects_unknown_format():
    with pytest.raises(ValueError, match="gatevlap, webdataset, lerobot"):
        Config(format="rlds")


def test_export_runs_validation_without_verdict_file(tmp_path, demos_dir):
    from aas.validation import validate

    plan = Plan(steps=tuple(Step(op, args, text) for op, args, text in STEPS))
    segmentations, path = write_inputs(tmp_path, demos_dir)
    segmentations = [dataclasses.replace(s, plan=plan) for s in segmentations]
    write_segmentations(path, segmentations)
    demos = {d.key: d for d in read_demos(demos_dir)}
    expected = {
        s.demo_key: validate(s, plan, demo=demos[s.demo_key]).passed
        for s in segmentations
    }
    returncode = run(config(tmp_path, demos_dir, path))

    # An export that keeps no segment at all exits with 1.
    assert returncode == (0 if any(expected.values()) else 1)
    result = json.loads((tmp_path / "out" / "export.json").read_text())
    excluded = sorted(key for key, passed in expected.items() if not passed)
    assert result["pairing"]["invalid_excluded"] == excluded
    assert result["pairing"]["num_unvalidated"] == 0
