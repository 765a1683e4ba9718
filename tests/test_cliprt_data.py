import io
import tarfile

import numpy as np
import pytest
from cliprt_fixtures import (
    INSTRUCTIONS,
    LEROBOT_REPO_ID,
    ORIGINAL,
    one_thread,  # noqa: F401  (autouse)
    write_lerobot_dataset,
    write_shards,
)

from aas.policies.cliprt.data import (
    LeRobotChunkDataset,
    ShardDataset,
    TrainingExamples,
    split_by_group,
)


def _identity(image):
    import torch

    return torch.from_numpy(np.array(image)).permute(2, 0, 1)


def test_shards_index_every_sample(tmp_path):
    dataset = ShardDataset(write_shards(tmp_path, demos=2, frames=5, per_shard=4))
    assert len(dataset) == 10
    assert len(dataset.shards) == 3
    sample = dataset[7]
    assert sample.image.shape == (32, 32, 3)
    assert sample.actions.shape == (8, 7)
    assert sample.mask.dtype == bool
    assert sample.instruction in INSTRUCTIONS
    assert sample.original_instruction == ORIGINAL
    assert sample.group.startswith("libero_goal__task_0__demo_")


def test_mask_is_false_past_segment_end(tmp_path):
    dataset = ShardDataset(write_shards(tmp_path, demos=1, frames=5))
    last = next(
        dataset[i] for i in range(len(dataset)) if dataset[i].key.endswith("__f0004")
    )
    assert last.mask.tolist() == [True] + [False] * 7
    assert np.all(last.actions[1:] == 0)


def test_sample_without_actions_is_skipped(tmp_path):
    root = write_shards(tmp_path, demos=1, frames=3)
    broken = root / "shard-000099.tar"
    with tarfile.open(broken, "w") as tar:
        payload = b"pick up the bowl"
        info = tarfile.TarInfo("orphan__f0000.instruction.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    dataset = ShardDataset(sorted(root.glob("shard-*.tar")))
    assert len(dataset) == 3
    assert dataset.errors[0][1] == "orphan__f0000"
    assert "actions.npy" in dataset.errors[0][2]


def test_missing_shard_folder_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="shard"):
        ShardDataset(tmp_path)


def test_holdout_split_keeps_demos_whole(tmp_path):
    dataset = ShardDataset(write_shards(tmp_path, demos=4, frames=3))
    train, held = split_by_group(dataset.groups(), 0.25, seed=0)
    groups = dataset.groups()
    assert len(held) == 3
    assert {groups[i] for i in train}.isdisjoint({groups[i] for i in held})


def test_mix_mode_draws_original_instruction_per_seed(tmp_path):
    dataset = ShardDataset(write_shards(tmp_path, demos=1, frames=4))
    examples = TrainingExamples(
        dataset, _identity, None, 8, 7, "mix", original_ratio=0.5
    )
    drawn = [examples[(0, seed)].instruction for seed in range(40)]
    assert ORIGINAL in drawn
    assert set(drawn) - {ORIGINAL}
    assert drawn == [examples[(0, seed)].instruction for seed in range(40)]


def test_original_mode_uses_task_instruction(tmp_path):
    dataset = ShardDataset(write_shards(tmp_path, demos=1, frames=2))
    examples = TrainingExamples(dataset, _identity, None, 8, 7, "original")
    assert examples[(1, 0)].instruction == ORIGINAL


def test_chunk_longer_than_stored_is_rejected(tmp_path):
    dataset = ShardDataset(write_shards(tmp_path, demos=1, frames=2))
    examples = TrainingExamples(dataset, _identity, None, 10, 7)
    with pytest.raises(ValueError, match="chunk_size=10"):
        examples[(0, 0)]


def test_lerobot_dataset_gives_masked_chunks(tmp_path):
    write_lerobot_dataset(tmp_path / "lerobot", episodes=2, frames=5)
    dataset = LeRobotChunkDataset(
        LEROBOT_REPO_ID, root=tmp_path / "lerobot", state_key="observation.state"
    )
    assert len(dataset) == 10
    sample = dataset[3]
    assert sample.image.shape == (32, 32, 3)
    assert sample.image.dtype == np.uint8
    assert sample.mask.tolist() == [True, True] + [False] * 6
    assert np.all(sample.actions[2:] == 0)
    assert sample.instruction == INSTRUCTIONS[0]
    assert sample.original_instruction == ORIGINAL
    assert sample.state.shape == (9,)
    assert dataset.groups()[5] == "episode_000001"


def test_reads_shards_of_the_exporter(tmp_path):
    from export_helpers import read_demos, write_demo_files, write_segmentation_file

    from aas.datasets.shards import export_shards
    from aas.datasets.sources import pair_demos

    write_demo_files(tmp_path / "demos", {"libero_goal": 1}, demos_per_file=2)
    segmentations = write_segmentation_file(tmp_path / "demos", tmp_path / "seg.jsonl")
    by_key = {s.demo_key: s for s in segmentations}
    export_shards(
        pair_demos(read_demos(tmp_path / "demos"), by_key, verdicts={}),
        tmp_path / "shards",
    )
    dataset = ShardDataset(tmp_path / "shards")
    assert len(dataset) == sum(s.num_frames for s in segmentations)
    assert len(set(dataset.groups())) == 2
    sample = dataset[0]
    assert sample.actions.shape == (8, 7)
    assert sample.state.shape == (9,)
    assert sample.instruction == "pick up the black bowl"
