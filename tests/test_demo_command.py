"""`aas demo` end to end in the real LIBERO simulator, reduced to one small demo."""

import json
import subprocess
import sys

from aas.schema import read_segmentations


def test_demo_command_writes_every_output(tmp_path):
    out = tmp_path / "demo"

    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "aas.cli",
            "demo",
            "--num_demos=1",
            "--camera_size=64",
            f"--output_dir={out}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr[-2000:]
    segmentations = read_segmentations(out / "segments.jsonl")
    assert [s.op for s in segmentations[0].segments] == ["grasp", "place"]
    validation = json.loads((out / "validation.json").read_text())
    assert validation["num_passed"] == 1
    assert (
        out / "plots" / "put_the_bowl_on_the_plate_demo" / "demo_0.png"
    ).stat().st_size > 0
    assert (
        out / "demos" / "libero_goal" / "put_the_bowl_on_the_plate_demo.hdf5"
    ).exists()
    assert "1/1 demos passed" in completed.stdout
    assert (out / "report.html").exists()
