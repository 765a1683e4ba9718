"""The HTML run report, rendered in a real headless Chromium."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aas.commands.validate import summarize_reports
from aas.datasets.libero_hdf5 import write_demo_file
from aas.demo import Demo
from aas.report import build_report
from aas.schema import (
    Plan,
    Provenance,
    Segment,
    Segmentation,
    Step,
    write_segmentations,
)
from aas.validation import validate

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PLAN = Plan(
    steps=(
        Step("grasp", ("akita_black_bowl_1",), "pick up the black bowl"),
        Step(
            "place",
            ("akita_black_bowl_1", "plate_1"),
            "place the black bowl on the plate",
        ),
    )
)


def _demo(demo_id: str, num_frames: int = 60) -> Demo:
    rng = np.random.default_rng(0)
    images = np.zeros((num_frames, 32, 32, 3), dtype=np.uint8)
    images[:, :16] = 200  # top half bright, so flipping is visible
    actions = rng.normal(size=(num_frames, 7)).astype(np.float32)
    opening = np.full((num_frames, 2), 0.04)
    opening[25:45] = 0.02
    return Demo.from_arrays(
        demo_id,
        {
            "actions": actions,
            "obs/agentview_rgb": images,
            "obs/gripper_states": opening,
            "obs/joint_states": np.zeros((num_frames, 7)),
        },
    )


def _segmentation(key: str, boundary: int, confidence: float) -> Segmentation:
    return Segmentation(
        demo_key=key,
        num_frames=60,
        segments=(
            Segment(
                "grasp",
                ("akita_black_bowl_1",),
                0,
                boundary,
                confidence,
                "test",
                "pick up the black bowl",
            ),
            Segment(
                "place",
                ("akita_black_bowl_1", "plate_1"),
                boundary + 1,
                59,
                confidence,
                "test",
            ),
        ),
        provenance=Provenance("test", "1", keyframes=(0, 10, 20, 30, 40, 50, 59)),
        plan=PLAN,
        instruction="put the black bowl on the plate",
    )


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    demo_path = tmp_path / "demos" / "task_demo.hdf5"
    write_demo_file(demo_path, [_demo("demo_0"), _demo("demo_1")], {"env_name": "test"})
    run = tmp_path / "run"
    run.mkdir()
    good = _segmentation("task_demo/demo_0", 30, 0.9)
    low = _segmentation("task_demo/demo_1", 30, 0.1)
    good = Segmentation(**{**good.__dict__, "source_file": str(demo_path)})
    low = Segmentation(**{**low.__dict__, "source_file": str(demo_path)})
    write_segmentations(run / "segments.jsonl", [good, low])
    reports = [validate(s, PLAN) for s in (good, low)]
    (run / "validation.json").write_text(json.dumps(summarize_reports(reports)))
    write_segmentations(
        run / "reference.jsonl", [_segmentation("task_demo/demo_0", 34, 1.0)]
    )
    return run


def test_report_is_self_contained(run_dir):
    page = build_report(run_dir).read_text()

    assert "<script" not in page
    assert 'src="http' not in page
    assert page.count("<section class='demo'") == 2


def test_report_renders_in_chromium(run_dir, tmp_path):
    page = build_report(run_dir)
    screenshot = tmp_path / "report.png"

    dom = subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile-dom'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile-shot'}",
            "--window-size=1200,1400",
            f"--screenshot={screenshot}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )

    assert dom.count('class="keyframe"') == 14
    assert "task_demo/demo_0" in dom
    assert "Validation failed: failing rules confidence" in dom
    assert "boundary MAE (frames)</td><td>4.00" in dom
    pixels = np.asarray(Image.open(screenshot).convert("L"), dtype=np.float32)
    assert pixels.shape == (1400, 1200)
    assert pixels.std() > 10


def test_report_without_segments_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="segments.jsonl not found"):
        build_report(tmp_path)
