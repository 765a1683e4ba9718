"""GATE-VLAP export: one tar per subtask, readable by tar and webdataset, atomic."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile

import numpy as np
import pytest
import webdataset as wds
from export_helpers import (
    disk_full_opener,
    interrupt_after,
    read_demos,
    write_demo_files,
    write_segmentation_file,
)

from aas.datasets.gatevlap import (
    export_gatevlap,
    import_segmentations,
    read_gatevlap_tar,
)
from aas.datasets.images import decode_png
from aas.datasets.sources import pair_demos

SUBTASKS = ("pick_up_the_black_bowl.tar", "place_the_black_bowl_on_the_plate.tar")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("gatevlap")
    write_demo_files(root / "demos", {"libero_goal": 2, "libero_10": 1})
    segmentations = write_segmentation_file(root / "demos", root / "segments.jsonl")
    return root, {s.demo_key: s for s in segmentations}


def items(source):
    root, segmentations = source
    return pair_demos(read_demos(root / "demos"), segmentations, verdicts={})


@pytest.fixture(scope="module")
def exported(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    counts = export_gatevlap(items(source), out)
    return out, counts


def test_gatevlap_writes_one_tar_per_subtask_and_suite(exported):
    out, counts = exported
    tars = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.tar"))
    expected = sorted(
        f"{suite}/{name}" for suite in ("libero_10", "libero_goal") for name in SUBTASKS
    )
    assert tars == expected
    assert sorted(counts.files) == expected
    assert counts.segments == 12
    assert counts.ops == {"grasp": 6, "place": 6}


def test_gatevlap_members_follow_demo_timestep_names(exported):
    out, _ = exported
    listing = subprocess.run(
        ["tar", "-tf", str(out / "libero_goal" / SUBTASKS[0])],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert listing[:3] == [
        "demo_0/demo_0_timestep_0000.json",
        "demo_0/demo_0_timestep_0000.png",
        "demo_0/demo_0_timestep_0000.wrist.png",
    ]
    assert {name.split("/")[0] for name in listing} == {
        "demo_0",
        "demo_1",
        "demo_2",
        "demo_3",
    }


def test_gatevlap_frame_records_match_source_demo(exported, source):
    out, _ = exported
    demos = {d.key: d for d in read_demos(source[0] / "demos")}
    checked = 0
    for segment in read_gatevlap_tar(out / "libero_goal" / SUBTASKS[1]):
        demo = demos[segment.demo_key]
        frames = np.arange(segment.segment.start, segment.segment.end + 1)
        assert np.array_equal(segment.frames, frames)
        assert np.array_equal(segment.actions, demo.actions[frames].astype(np.float32))
        assert np.array_equal(
            segment.joint_states,
            demo.array("obs/joint_states")[frames].astype(np.float32),
        )
        assert np.array_equal(
            segment.robot_states, demo.array("robot_states")[frames].astype(np.float32)
        )
        assert segment.instruction == "place the black bowl on the plate"
        assert segment.original_instruction == demo.instruction
        assert segment.segment.op == "place"
        assert segment.segment.args == ("akita_black_bowl_1", "plate_1")
        checked += 1
    assert checked == 4


def test_gatevlap_images_are_upright(exported, source):
    out, _ = exported
    demos = {d.key: d for d in read_demos(source[0] / "demos")}
    segment = next(
        read_gatevlap_tar(out / "libero_goal" / SUBTASKS[0], decode_images=True)
    )
    stored = demos[segment.demo_key].array("obs/agentview_rgb")[segment.frames]
    assert np.array_equal(segment.images, stored[:, ::-1, ::-1])
    assert tuple(segment.images[0, -1, -1]) == (255, 0, 0)
    assert tuple(segment.wrist_images[0, -1, -1]) == (0, 0, 255)


def test_gatevlap_tar_reads_with_webdataset(exported):
    out, _ = exported
    dataset = wds.WebDataset(
        str(out / "libero_10" / SUBTASKS[0]), shardshuffle=False, empty_check=False
    )
    samples = list(dataset)
    assert len(samples) == 6 + 6  # grasp covers frames 0..5 of both demos
    first = samples[0]
    assert first["__key__"] == "demo_0/demo_0_timestep_0000"
    assert set(first) >= {"png", "wrist.png", "json"}
    record = json.loads(first["json"])
    for field in (
        "instruction",
        "action",
        "joint_state",
        "robot_state",
        "image",
        "op",
        "args",
    ):
        assert field in record
    for field in ("start", "end", "confidence"):
        assert field in record
    assert record["image"] == "demo_0_timestep_0000.png"
    assert decode_png(first["png"]).shape == (16, 16, 3)


def test_gatevlap_import_restores_segmentations(exported, source):
    out, _ = exported
    original = source[1]
    imported = {s.demo_key: s for s in import_segmentations(out)}
    assert set(imported) == set(original)
    for key, segmentation in imported.items():
        assert segmentation.segments == original[key].segments
        assert segmentation.num_frames == original[key].num_frames
        assert segmentation.demo_hash == original[key].demo_hash
        assert segmentation.instruction == original[key].instruction


def test_gatevlap_disk_full_leaves_no_tar(source, tmp_path):
    with pytest.raises(OSError, match="No space left"):
        export_gatevlap(items(source), tmp_path, opener=disk_full_opener(20_000))
    assert list(tmp_path.rglob("*.tar")) == []
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_gatevlap_interrupted_export_resumes_to_same_bytes(source, exported, tmp_path):
    reference, _ = exported
    with pytest.raises(KeyboardInterrupt):
        # Two demos finish suite libero_10; the third is in libero_goal.
        export_gatevlap(interrupt_after(items(source), 3), tmp_path)
    assert sorted(p.parent.name for p in tmp_path.rglob("*.tar")) == [
        "libero_10",
        "libero_10",
    ]
    assert list(tmp_path.rglob("*.partial")) == []
    counts = export_gatevlap(items(source), tmp_path, resume=True)
    assert counts.segments == 12
    for tar in reference.rglob("*.tar"):
        assert (tmp_path / tar.relative_to(reference)).read_bytes() == tar.read_bytes()


def write_tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_gatevlap_import_accepts_minimal_records(tmp_path):
    records = {
        f"demo_0/demo_0_timestep_{t:04d}.json": json.dumps(
            {"instruction": "open the drawer", "action": [0.1 * t] * 7, "frame": 10 + t}
        ).encode()
        for t in range(3)
    }
    write_tar(tmp_path / "open_the_drawer.tar", records)
    (segment,) = read_gatevlap_tar(tmp_path / "open_the_drawer.tar")
    assert segment.subtask == "open_the_drawer"
    assert segment.instruction == "open the drawer"
    assert segment.frames.tolist() == [10, 11, 12]
    assert segment.segment.start == 10
    assert segment.segment.end == 12
    assert segment.actions.shape == (3, 7)
    assert segment.state is None
    assert segment.robot_states is None


def test_gatevlap_import_rejects_frame_without_record(tmp_path):
    write_tar(tmp_path / "bad.tar", {"demo_0/demo_0_timestep_0000.png": b"\x89PNG"})
    with pytest.raises(ValueError, match="demo_0 timestep 0 has no .json record"):
        list(read_gatevlap_tar(tmp_path / "bad.tar"))
