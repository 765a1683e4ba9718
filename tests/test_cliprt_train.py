import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cliprt_fixtures import (  # noqa: F401  (one_thread is autouse)
    LEROBOT_REPO_ID,
    one_thread,
    write_lerobot_dataset,
    write_shards,
)
from safetensors.torch import load_file

from aas.policies.cliprt.config import TINY_MODEL_NAME, CLIPRTConfig
from aas.policies.cliprt.model import CLIPRTModel
from aas.policies.cliprt.sampler import StepBatchSampler
from aas.policies.cliprt.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]


def _config(data: Path, out: Path, **overrides) -> TrainConfig:
    values = {
        "data": str(data),
        "output_dir": str(out),
        "model": CLIPRTConfig(model_name=TINY_MODEL_NAME, eval_resize=None),
        "batch_size": 4,
        "steps": 4,
        "warmup_steps": 2,
        "lr": 1e-3,
        "save_every": 2,
        "log_every": 1,
        "keep_checkpoints": 0,
        "progress": False,
        "num_threads": 1,
    }
    values.update(overrides)
    return TrainConfig(**values)


def _losses(out: Path) -> list[float]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines if "loss" in json.loads(line)]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_shards(tmp_path_factory.mktemp("shards"), demos=3, frames=4)


def test_training_writes_checkpoints_curve_and_model(shards, tmp_path):
    result = train(_config(shards, tmp_path, holdout_fraction=0.34))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step_0000002",
        "step_0000004",
    ]
    assert (tmp_path / "loss_curve.png").stat().st_size > 0
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert len(_losses(tmp_path)) == 4
    assert result["heldout"]["samples"] == 4
    assert result["heldout"]["baseline_l1"] > 0
    written = json.loads((tmp_path / "train_result.json").read_text())
    assert written == result
    assert written["steps"] == 4


def test_resume_continues_exactly(shards, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(_config(shards, straight))
    train(_config(shards, resumed))
    # Simulate an interruption right after the step-2 checkpoint.
    shutil.rmtree(resumed / "checkpoints" / "step_0000004")
    shutil.rmtree(resumed / "model")
    result = train(_config(shards, resumed))
    assert result["resumed_from"] == 2
    assert _losses(resumed) == _losses(straight)
    final_a = load_file(str(straight / "model" / "model.safetensors"))
    final_b = load_file(str(resumed / "model" / "model.safetensors"))
    for key, value in final_a.items():
        assert torch.equal(value, final_b[key]), key
    state_a = torch.load(
        straight / "checkpoints/step_0000004/training_state.pt", weights_only=True
    )
    state_b = torch.load(
        resumed / "checkpoints/step_0000004/training_state.pt", weights_only=True
    )
    for param_id, param_state in state_a["optimizer"]["state"].items():
        assert torch.equal(
            param_state["exp_avg"], state_b["optimizer"]["state"][param_id]["exp_avg"]
        )


def test_sampler_slices_global_batch_per_rank():
    single = StepBatchSampler(list(range(10)), 4, num_steps=5, seed=3)
    ranks = [
        StepBatchSampler(list(range(10)), 4, num_steps=5, seed=3, rank=r, world_size=2)
        for r in (0, 1)
    ]
    for step in range(5):
        assert ranks[0].batch_for_step(step) + ranks[1].batch_for_step(
            step
        ) == single.batch_for_step(step)
    resumed = StepBatchSampler(list(range(10)), 4, num_steps=5, seed=3, start_step=3)
    assert list(resumed) == [single.batch_for_step(3), single.batch_for_step(4)]


def test_torchrun_two_processes_match_one(shards, tmp_path):
    train(_config(shards, tmp_path / "single", steps=3, save_every=3))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "aas.cli",
        "train",
        f"--data={shards}",
        f"--output_dir={tmp_path / 'ddp'}",
        f"--model.model_name={TINY_MODEL_NAME}",
        "--model.eval_resize=null",
        "--batch_size=4",
        "--steps=3",
        "--warmup_steps=2",
        "--lr=0.001",
        "--save_every=3",
        "--log_every=1",
        "--progress=false",
        "--num_threads=1",
    ]
    completed = subprocess.run(
        command,
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert _losses(tmp_path / "ddp") == pytest.approx(
        _losses(tmp_path / "single"), rel=1e-4, abs=1e-5
    )


def test_training_from_lerobot_dataset(tmp_path):
    root = write_lerobot_dataset(tmp_path / "lerobot", episodes=2, frames=5)
    config = _config(
        "",
        tmp_path / "out",
        lerobot_repo_id=LEROBOT_REPO_ID,
        lerobot_root=str(root),
        steps=2,
        instruction_mode="mix",
        model=CLIPRTConfig(model_name=TINY_MODEL_NAME, eval_resize=None, state_dim=9),
    )
    result = train(config)
    assert result["steps"] == 2
    assert len(_losses(tmp_path / "out")) == 2


def test_config_requires_a_data_source(tmp_path):
    with pytest.raises(ValueError, match="--data"):
        TrainConfig(output_dir=str(tmp_path))


def test_frozen_text_tower_stays_unchanged(shards, tmp_path):
    config = _config(
        shards, tmp_path, steps=2, freeze_text_tower=True, logger="tensorboard"
    )
    train(config)
    torch.manual_seed(config.seed)
    initial = CLIPRTModel(config.model).state_dict()
    final = load_file(str(tmp_path / "model" / "model.safetensors"))
    text_keys = [k for k in initial if k.startswith("backbone.transformer.")]
    assert text_keys
    for key in text_keys:
        assert torch.equal(initial[key], final[key]), key
    assert not torch.equal(initial["head.fc_out.weight"], final["head.fc_out.weight"])
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
