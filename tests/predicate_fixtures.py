"""One scripted libero_goal demo and its predicate segmentation, built once per session.

The predicate segmenter and jitter tests both need a real demo with
recorded simulator states. Generating one costs an environment and about
200 simulated frames, so the results are kept in this module and shared.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aas.schema import Plan, Segmentation, Step, write_segmentations

BOWL = "akita_black_bowl_1"
BOWL_ON_PLATE = Plan(
    (Step("grasp", (BOWL,)), Step("place", (BOWL, "plate_1"))),
    goal=(("on", BOWL, "plate_1"),),
)
_CACHE: dict[str, object] = {}


def generated_demo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generate (once) a demo of "put the bowl on the plate" from init state 0, no images."""
    if "file" not in _CACHE:
        from aas.sims.generate import generate_demos
        from aas.sims.tasks import get_task

        spec = get_task("libero_goal", "put_the_bowl_on_the_plate")
        out = tmp_path_factory.mktemp("predicate_demo")
        report = generate_demos(spec, [0], out, plan=BOWL_ON_PLATE, render=False)
        if report.demo_file is None:
            pytest.fail(f"the scripted generator kept no demo: {report.outcomes}")
        _CACHE["file"] = report.demo_file
    return _CACHE["file"]  # type: ignore[return-value]


def predicate_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Segmentation, Path]:
    """Segment the generated demo (once) with the predicate segmenter; return it and its jsonl."""
    if "reference" not in _CACHE:
        from aas.datasets.libero_hdf5 import open_demo_file
        from aas.segmenters import PredicateConfig

        demo = open_demo_file(generated_demo_file(tmp_path_factory)).demos[0]
        segmenter = PredicateConfig().build()
        try:
            segmentation = segmenter.segment(demo, BOWL_ON_PLATE)
        finally:
            segmenter.close()
        path = tmp_path_factory.mktemp("predicate_reference") / "segments.jsonl"
        write_segmentations(path, [segmentation])
        _CACHE["reference"] = (segmentation, path)
    return _CACHE["reference"]  # type: ignore[return-value]
