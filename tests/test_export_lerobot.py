"""LeRobot v3 export: one episode per segment, exact round trip through LeRobotDataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from export_helpers import read_demos, write_demo_files, write_segmentation_file
from hub_server import HubServer, push_command

from aas.commands.export import Config, run
from aas.datasets.frames import ACTION_NAMES, STATE_NAMES

REPO_ID = "local/aas-test"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("lerobot")
    write_demo_files(root / "demos", {"libero_goal": 1}, demos_per_file=2)
    segmentations = write_segmentation_file(root / "demos", root / "segments.jsonl")
    cfg = Config(
        demos=str(root / "demos"),
        segmentations=str(root / "segments.jsonl"),
        format="lerobot",
        output_dir=str(root / "out"),
        repo_id=REPO_ID,
    )
    assert run(cfg) == 0
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset(REPO_ID, root=root / "out" / "dataset")
    demos = {d.key: d for d in read_demos(root / "demos")}
    return root, dataset, demos, segmentations


def test_lerobot_one_episode_per_segment(exported):
    _, dataset, _, segmentations = exported
    segments = [s for seg in segmentations for s in seg.segments]
    assert dataset.num_episodes == len(segments)
    assert dataset.num_frames == sum(s.num_frames for s in segments)
    assert set(dataset.meta.tasks.index) == {s.instruction for s in segments}


def test_lerobot_features_named_per_dimension(exported):
    _, dataset, _, _ = exported
    features = dataset.meta.features
    assert features["observation.state"]["names"] == list(STATE_NAMES)
    assert features["action"]["names"] == list(ACTION_NAMES)
    assert features["observation.images.agentview"]["dtype"] == "image"
    for name in ("original_instruction", "op", "args", "confidence"):
        assert name in features


def test_lerobot_frames_match_source_demo_exactly(exported):
    _, dataset, demos, segmentations = exported
    by_key = {s.demo_key: s for s in segmentations}
    for index in range(len(dataset)):
        frame = dataset[index]
        demo = demos[frame["demo_key"]]
        t = int(frame["demo_frame"])
        segment = by_key[frame["demo_key"]].segments[int(frame["episode_index"]) % 2]
        expected_state = np.concatenate(
            [
                demo.array("obs/ee_pos")[t],
                demo.array("obs/ee_ori")[t],
                demo.array("obs/gripper_states")[t],
            ]
        ).astype(np.float32)
        assert np.array_equal(
            frame["action"].numpy(), demo.actions[t].astype(np.float32)
        )
        assert np.array_equal(frame["observation.state"].numpy(), expected_state)
        assert np.array_equal(
            frame["observation.joint_state"].numpy(),
            demo.array("obs/joint_states")[t].astype(np.float32),
        )
        assert frame["task"] == segment.instruction
        assert frame["op"] == segment.op
        assert json.loads(frame["args"]) == list(segment.args)
        assert frame["original_instruction"] == demo.instruction
        assert segment.start <= t <= segment.end


def test_lerobot_images_upright(exported):
    _, dataset, demos, _ = exported
    frame = dataset[0]
    demo = demos[frame["demo_key"]]
    stored = demo.array("obs/agentview_rgb")[int(frame["demo_frame"])]
    image = (
        frame["observation.images.agentview"].numpy().transpose(1, 2, 0) * 255
    ).round()
    assert np.array_equal(image.astype(np.uint8), stored[::-1, ::-1])


def test_lerobot_export_records_result(exported):
    root, _, _, _ = exported
    result = json.loads((root / "out" / "export.json").read_text())
    assert result["format"] == "lerobot"
    assert result["dataset_dir"] == "dataset"
    assert result["counts"]["segments"] == 4


def test_lerobot_push_sends_dataset_and_version_tag(exported, tmp_path):
    root, dataset, _, _ = exported
    with HubServer("hf_test_token") as hub:
        result = push_command(root / "out", REPO_ID, tmp_path, hub.url, "hf_test_token")
    assert result.returncode == 0, result.stderr
    received = hub.state.files[REPO_ID]
    assert "meta/info.json" in received
    assert any(
        path.startswith("data/") and path.endswith(".parquet") for path in received
    )
    assert not any(path.startswith("images/") for path in received)
    assert received["README.md"].decode().count("LeRobot") >= 1
    assert hub.state.tags[REPO_ID] == [dataset.meta.info.codebase_version]
