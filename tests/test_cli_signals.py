"""SIGTERM on a running command: it stops like Ctrl-C and keeps its checkpoints."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cliprt_fixtures import write_shards

TRAIN_ARGS = [
    "--model.model_name=aas-cliprt-tiny",
    "--model.eval_resize=null",
    "--batch_size=2",
    "--steps=100000",
    "--save_every=1",
    "--log_every=1",
    "--warmup_steps=1",
    "--num_threads=1",
    "--progress=false",
]


def _wait_for_lines(path: Path, count: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"aas train exited early with {process.returncode}")
        if path.is_file() and len(path.read_text().splitlines()) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} did not reach {count} lines")


def test_sigterm_stops_training_cleanly(tmp_path):
    shards = write_shards(tmp_path / "shards", demos=2, frames=4)
    out = tmp_path / "train"
    command = [
        sys.executable,
        "-m",
        "aas.cli",
        "train",
        f"--data={shards}",
        f"--output_dir={out}",
        *TRAIN_ARGS,
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for_lines(out / "metrics.jsonl", 3, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 128 + signal.SIGTERM
    assert "interrupted; rerun the same command to resume" in stderr
    assert sorted((out / "checkpoints").glob("step_*"))
