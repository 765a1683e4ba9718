"""Training shards: sample layout, size limit, atomic writes, resume, flat memory."""

from __future__ import annotations

import json
import tracemalloc

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

from aas.datasets.shards import (
    FIELDS,
    ResumeMismatchError,
    ShardLimits,
    export_shards,
    load_shards,
    sample_key,
)
from aas.datasets.sources import pair_demos


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    write_demo_files(root / "demos", {"libero_goal": 2}, demos_per_file=2)
    segmentations = write_segmentation_file(root / "demos", root / "segments.jsonl")
    return root, {s.demo_key: s for s in segmentations}


def items(source):
    root, segmentations = source
    return pair_demos(read_demos(root / "demos"), segmentations, verdicts={})


@pytest.fixture(scope="module")
def exported(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    manifest = export_shards(items(source), out, ShardLimits(max_shard_bytes=40_000))
    return out, manifest


def test_shards_sample_has_contract_fields(exported):
    out, manifest = exported
    sample = next(
        iter(
            wds.WebDataset(
                f"{out}/shard-000000.tar", shardshuffle=False, empty_check=False
            )
        )
    )
    fields = {name for name in sample if not name.startswith("__")}
    assert fields == set(FIELDS)
    assert manifest["fields"] == list(FIELDS)
    assert len(manifest["state_names"]) == 9


def test_shards_chunks_match_segment_actions(exported, source):
    out, _ = exported
    demos = {d.key: d for d in read_demos(source[0] / "demos")}
    for sample in load_shards(out):
        meta = sample["meta"]
        demo = demos[meta["demo_key"]]
        t, end = meta["frame"], meta["end"]
        valid = min(8, end - t + 1)
        assert sample["key"] == sample_key(meta["demo_key"], t)
        assert sample["actions"].shape == (8, 7)
        assert sample["actions"].dtype == np.float32
        assert np.array_equal(
            sample["actions"][:valid], demo.actions[t : t + valid].astype(np.float32)
        )
        assert not sample["actions"][valid:].any()
        assert sample["mask"].tolist() == [True] * valid + [False] * (8 - valid)


def test_shards_state_layout(exported, source):
    out, _ = exported
    demos = {d.key: d for d in read_demos(source[0] / "demos")}
    sample = next(iter(load_shards(out)))
    demo, t = demos[sample["meta"]["demo_key"]], sample["meta"]["frame"]
    state = sample["state"]
    assert state.shape == (9,)
    assert np.allclose(state[0:3], demo.array("obs/ee_pos")[t])
    assert np.allclose(state[3:6], demo.array("obs/ee_ori")[t])
    assert np.allclose(state[6:8], demo.array("obs/gripper_states")[t])
    assert state[8] == 0


def test_shards_text_and_images(exported, source):
    out, _ = exported
    demos = {d.key: d for d in read_demos(source[0] / "demos")}
    sample = next(iter(load_shards(out)))
    demo, t = demos[sample["meta"]["demo_key"]], sample["meta"]["frame"]
    assert sample["instruction"] == "pick up the black bowl"
    assert sample["original_instruction"] == demo.instruction
    assert np.array_equal(
        sample["agentview"], demo.array("obs/agentview_rgb")[t, ::-1, ::-1]
    )
    assert np.array_equal(
        sample["wrist"], demo.array("obs/eye_in_hand_rgb")[t, ::-1, ::-1]
    )


def test_shards_respect_size_limit(exported):
    out, manifest = exported
    assert len(manifest["shards"]) > 1
    assert manifest["num_samples"] == 12 + 13 + 12 + 13
    assert sum(s["num_samples"] for s in manifest["shards"]) == manifest["num_samples"]
    for shard in manifest["shards"]:
        assert (out / shard["name"]).stat().st_size <= 40_000
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_shards_manifest_records_sources(exported, source):
    _, manifest = exported
    assert set(manifest["sources"]) == set(source[1])
    for key, entry in manifest["sources"].items():
        assert entry["demo_hash"] == source[1][key].demo_hash
        assert len(entry["segmentation_hash"]) == 16
    assert manifest["ops"] == {"grasp": 4, "place": 4}


def test_shards_disk_full_leaves_no_tar(source, tmp_path):
    with pytest.raises(OSError, match="No space left"):
        export_shards(items(source), tmp_path, opener=disk_full_opener(30_000))
    assert list(tmp_path.glob("*.tar")) == []
    assert list(tmp_path.glob(".*.partial")) == []


def test_shards_interrupted_export_resumes_to_same_bytes(source, exported, tmp_path):
    reference, manifest = exported
    limits = ShardLimits(max_shard_bytes=40_000)
    with pytest.raises(KeyboardInterrupt):
        export_shards(interrupt_after(items(source), 3), tmp_path, limits)
    partial = sorted(p.name for p in tmp_path.glob("*.tar"))
    assert 0 < len(partial) < len(manifest["shards"])
    assert list(tmp_path.glob(".*.partial")) == []
    resumed = export_shards(items(source), tmp_path, limits, resume=True)
    assert resumed == manifest
    for shard in manifest["shards"]:
        assert (tmp_path / shard["name"]).read_bytes() == (
            reference / shard["name"]
        ).read_bytes()


def test_shards_resume_rejects_other_inputs(source, tmp_path):
    export_shards(items(source), tmp_path, fingerprint="first")
    with pytest.raises(ResumeMismatchError, match="overwrite"):
        export_shards(items(source), tmp_path, resume=True, fingerprint="second")


def test_shards_memory_flat_in_demo_count(tmp_path):
    peaks = {}
    for count in (2, 8):
        root = tmp_path / f"n{count}"
        write_demo_files(
            root / "demos",
            {"libero_goal": count // 2},
            demos_per_file=2,
            num_frames=20,
            size=64,
        )
        segmentations = {
            s.demo_key: s
            for s in write_segmentation_file(root / "demos", root / "s.jsonl")
        }
        tracemalloc.start()
        export_shards(
            pair_demos(read_demos(root / "demos"), segmentations, verdicts={}),
            root / "out",
        )
        peaks[count] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[8] < 1.5 * peaks[2]
