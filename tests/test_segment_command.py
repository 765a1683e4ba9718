import json

import pytest
from fixtures_hdf5 import (
    synthetic_demo,
    truncate_file,
    write_no_noops_file,
    write_original_file,
)

from aas import cli
from aas.bddl import libero_bddl_files
from aas.commands import segment, validate
from aas.demo import GRIPPER_STATES
from aas.schema import read_segmentations

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _bddl(name: str) -> str:
    return next(
        p for p in libero_bddl_files("libero_goal") if p.name == name
    ).read_text()


@pytest.fixture
def demo_folder(tmp_path):
    folder = tmp_path / "demos"
    folder.mkdir()
    pick_place = [synthetic_demo(["grasp", "place"], seed=s).arrays for s in range(3)]
    del pick_place[2][GRIPPER_STATES]
    write_original_file(
        folder / "put_the_bowl_on_the_plate_demo.hdf5",
        pick_place,
        bddl_text=_bddl("put_the_bowl_on_the_plate.bddl"),
    )
    stove = {n: synthetic_demo(["turn_on"], seed=n).arrays for n in (1, 4)}
    write_no_noops_file(folder / "turn_on_the_stove_demo.hdf5", stove)
    truncate_file(write_original_file(folder / "broken_demo.hdf5", pick_place[:1]))
    return folder


def test_segment_command_writes_outputs(demo_folder, tmp_path):
    out = tmp_path / "out"

    assert segment.run(segment.Config(input=str(demo_folder), output_dir=str(out))) == 0

    results = read_segmentations(out / "segments.jsonl")
    assert [s.demo_key for s in results] == [
        "put_the_bowl_on_the_plate_demo/demo_0",
        "put_the_bowl_on_the_plate_demo/demo_1",
        "turn_on_the_stove_demo/demo_1",
        "turn_on_the_stove_demo/demo_4",
    ]
    assert all(s.ok for s in results)
    assert [s.op for s in results[0].segments] == ["grasp", "place"]
    assert [s.op for s in results[2].segments] == ["turn_on"]
    assert (out / "config.yaml").exists()
    plot = out / "plots" / "turn_on_the_stove_demo" / "demo_4.png"
    assert plot.read_bytes().startswith(PNG_MAGIC)


def test_segment_summary_lists_problems(demo_folder, tmp_path):
    out = tmp_path / "out"

    segment.run(
        segment.Config(input=str(demo_folder), output_dir=str(out), plots=False)
    )

    summary = json.loads((out / "summary.json").read_text())
    assert summary["segmented"] == 4
    assert summary["failed"] == 0
    assert "broken_demo.hdf5" in summary["file_errors"][0]
    assert summary["demo_errors"][0]["demo"] == "demo_2"
    assert summary["demo_errors"][0]["dataset"] == GRIPPER_STATES
    assert summary["demos_per_second"] > 0


def test_segment_command_resumes(demo_folder, tmp_path):
    out = tmp_path / "out"
    cfg = segment.Config(input=str(demo_folder), output_dir=str(out), plots=False)
    segment.run(cfg)
    lines = (out / "segments.jsonl").read_text().splitlines()
    (out / "segments.jsonl").write_text("\n".join(lines[:3]) + "\n")

    segment.run(cfg)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped_existing"] == 3
    assert summary["segmented"] == 1
    assert len(read_segmentations(out / "segments.jsonl")) == 4


def test_segment_cli_selects_segmenter(demo_folder, tmp_path):
    out = tmp_path / "out"
    args = [
        "segment",
        f"--input={demo_folder / 'turn_on_the_stove_demo.hdf5'}",
        f"--output_dir={out}",
        "--segmenter.type=kinematic",
        "--segmenter.min_hold_frames=2",
        "--plots=false",
    ]

    assert cli.main(args) == 0

    assert "min_hold_frames: 2" in (out / "config.yaml").read_text()
    assert len(read_segmentations(out / "segments.jsonl")) == 2


def test_validate_command_passes_segmented_demos(demo_folder, tmp_path, capsys):
    seg_out, val_out = tmp_path / "seg", tmp_path / "val"
    segment.run(
        segment.Config(input=str(demo_folder), output_dir=str(seg_out), plots=False)
    )

    code = validate.run(
        validate.Config(
            segments=str(seg_out / "segments.jsonl"),
            input=str(demo_folder),
            output_dir=str(val_out),
            fail_on_invalid=True,
        )
    )

    assert code == 0
    result = json.loads((val_out / "validation.json").read_text())
    assert result["num_demos"] == 4
    assert result["num_passed"] == 4
    grasp_checks = result["reports"][0]["results"]
    assert any(r["name"] == "grasp_closed" and not r["skipped"] for r in grasp_checks)
    assert "4/4 demos passed" in capsys.readouterr().out


def test_validate_reads_source_files_and_flags_failure(demo_folder, tmp_path, capsys):
    seg_out, val_out = tmp_path / "seg", tmp_path / "val"
    segment.run(
        segment.Config(input=str(demo_folder), output_dir=str(seg_out), plots=False)
    )
    records = [
        json.loads(line)
        for line in (seg_out / "segments.jsonl").read_text().splitlines()
    ]
    records[0]["segments"][1]["start"] += 3
    (seg_out / "segments.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records)
    )

    code = validate.run(
        validate.Config(
            segments=str(seg_out / "segments.jsonl"),
            output_dir=str(val_out),
            fail_on_invalid=True,
        )
    )

    assert code == 1
    result = json.loads((val_out / "validation.json").read_text())
    assert result["rule_failures"] == {"contiguity": 1}
    first = result["reports"][0]
    assert not any(r["skipped"] for r in first["results"] if r["name"] == "demo_match")
    assert "FAIL" in capsys.readouterr().out
