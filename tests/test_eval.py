"""Real LIBERO evaluations: reference policies, a crashed worker, resume."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from aas.policies.base import NoopPolicy, PolicyConfig
from aas.sims.eval_results import EpisodeLog, wilson_interval
from aas.sims.evaluate import EvalSettings, PlannerChoice, evaluate
from aas.sims.scripted_policy import ScriptedConfig

TASK = 8  # libero_goal: put the bowl on the plate (grasp, place)


class CrashOncePolicy(NoopPolicy):
    """Kills its own process on the first query unless the marker file exists."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = Path(marker)

    def predict(self, obs, instruction):
        if not self.marker.exists():
            self.marker.write_text("crashed once")
            os._exit(3)
        return super().predict(obs, instruction)


@PolicyConfig.register_subclass("crash_once_test")
@dataclass
class CrashOnceConfig(PolicyConfig):
    marker: str = ""

    def build(self):
        return CrashOncePolicy(self.marker)


def _settings(**overrides) -> EvalSettings:
    values = {"suite": "libero_goal", "tasks": [TASK], "trials": 1, "camera_size": 128}
    values.update(overrides)
    return EvalSettings(**values)


def test_wilson_interval_of_known_counts():
    low, high = wilson_interval(45, 50)

    assert low == pytest.approx(0.7864, abs=1e-3)
    assert high == pytest.approx(0.9565, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_eval_scripted_succeeds_and_noop_fails(tmp_path):
    scripted = evaluate(
        ScriptedConfig(), _settings(trials=2), tmp_path / "scripted", num_workers=2
    )
    noop = evaluate(
        PolicyConfig.get_choice_class("noop")(),
        _settings(max_steps=30),
        tmp_path / "noop",
        num_workers=1,
    )

    task = f"libero_goal/{TASK:02d}_put_the_bowl_on_the_plate"
    assert scripted["per_task"][task]["success_rate"] == 1.0
    assert noop["per_task"][task]["success_rate"] == 0.0
    assert noop["protocol"]["seeds"] == [7]
    assert noop["protocol"]["settle_steps"] == 10
    assert noop["versions"]["mujoco"] == "3.3.2"
    assert [e["init_state_index"] for e in scripted["episodes"]] == [0, 1]
    assert (tmp_path / "scripted" / "success.png").stat().st_size > 0


def test_eval_recovers_from_crashed_worker(tmp_path):
    marker = tmp_path / "crashed"

    info = evaluate(
        CrashOnceConfig(marker=str(marker)),
        _settings(max_steps=5),
        tmp_path / "run",
        num_workers=1,
    )

    episode = info["episodes"][0]
    assert marker.exists()
    assert episode["error"] == ""
    assert episode["attempts"] == 2
    assert info["run"]["worker_restarts"] == 1


def test_eval_resumes_after_kill(tmp_path):
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "aas.cli",
        "eval",
        "--policy.type=noop",
        "--eval.suite=libero_goal",
        f"--eval.tasks=[{TASK}]",
        "--eval.trials=3",
        "--eval.max_steps=20",
        "--eval.camera_size=64",
        "--workers=1",
        f"--output_dir={out}",
    ]
    process = subprocess.Popen(
        command,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    episodes = out / "episodes.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (
        episodes.exists() and episodes.read_text().count("\n") >= 1
    ):
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    first = episodes.read_text().splitlines()
    assert 1 <= len(first) < 3

    subprocess.run(command, check=True, timeout=300, capture_output=True)

    lines = episodes.read_text().splitlines()
    assert lines[: len(first)] == first
    assert sorted(json.loads(line)["init_state_index"] for line in lines) == [0, 1, 2]
    assert len(EpisodeLog(out).load()) == 3


def test_eval_planner_mode_reports_each_step(tmp_path):
    info = evaluate(
        ScriptedConfig(),
        _settings(),
        tmp_path / "run",
        num_workers=1,
        planner=PlannerChoice("symbolic"),
    )

    steps = info["episodes"][0]["step_results"]
    assert [s["step"] for s in steps] == [
        "grasp(akita_black_bowl_1)",
        "place(akita_black_bowl_1, plate_1)",
    ]
    assert [s["reached"] for s in steps] == [True, True]
    assert steps[0]["instruction"] == "pick up the black bowl"
    assert info["episodes"][0]["success"] is True
    assert len(info["per_step"]) == 2


def test_unknown_planner_rejected_before_workers():
    with pytest.raises(ValueError, match="unknown planner 'oracle'"):
        PlannerChoice("oracle")
