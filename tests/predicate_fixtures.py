"""One LIBERO environment, one scripted demo and its predicate segmentation, built once.

The predicate, predicate segmenter and jitter tests all need a real
libero_goal scene, and the latter two a real demo with recorded simulator
states. Building an environment and simulating about 200 frames cost tens
of seconds, so the results are kept in this module and shared by every test
module of one pytest process.
"""

from __future__ import annotations

import atexit
from pathlib import Path

import pytest

from aas.schema import Plan, Segmentation, Step, write_segmentations

BOWL = "akita_black_bowl_1"
BOWL_ON_PLATE = Plan(
    (Step("grasp", (BOWL,)), Step("place", (BOWL, "plate_1"))),
    goal=(("on", BOWL, "plate_1"),),
)
_CACHE: dict[str, object] = {}


def shared_env():
    """Return (once built) a render-free environment of "put the bowl on the plate".

    Callers may change its state freely; every user sets the state it needs.
    """
    if "env" not in _CACHE:
        from aas.sims.env import make_env
        from aas.sims.tasks import get_task

        env = make_env(
            get_task("libero_goal", "put_the_bowl_on_the_plate"), render=False
        )
        atexit.register(env.close)
        _CACHE["env"] = env
    return _CACHE["env"]


def generated_demo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generate (once) a demo of "put the bowl on the plate" from init state 0, no images."""
    if "file" not in _CACHE:
        from aas.sims.generate import generate_demos

        env = shared_env()
        out = tmp_path_factory.mktemp("predicate_demo")
        report = generate_demos(
            env.spec, [0], out, plan=BOWL_ON_PLATE, render=False, env=env
        )
        if report.demo_file is None:
            pytest.fail(f"the scripted generator kept no demo: {report.outcomes}")
        _CACHE["file"] = report.demo_file
    return _CACHE["file"]  # type: ignore[return-value]


def predicate_reference(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Segmentation, Path]:
    """Segment the generated demo (once) with the predicate segmenter; return it and its jsonl."""
    if "reference" not in _CACHE:
        from aas.datasets.libero_hdf5 import open_demo_file
        from aas.segmenters.predicate import PredicateSegmenter

        demo = open_demo_file(generated_demo_file(tmp_path_factory)).demos[0]
        segmenter = PredicateSegmenter(env=shared_env())
        try:
            segmentation = segmenter.segment(demo, BOWL_ON_PLATE)
        finally:
            segmenter.close()
        path = tmp_path_factory.mktemp("predicate_reference") / "segments.jsonl"
        write_segmentations(path, [segmentation])
        _CACHE["reference"] = (segmentation, path)
    return _CACHE["reference"]  # type: ignore[return-value]
