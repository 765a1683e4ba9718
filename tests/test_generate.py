"""Scripted demo generation and the pick-and-place skills, in the real LIBERO simulator.

Operators covered here: grasp and place (libero_goal "put the bowl on the
plate"), put_in (libero_object "alphabet soup in the basket") and stack
(libero_goal "cream cheese in the bowl").
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from aas.schema import Plan, Step
from aas.sims.tasks import get_task

BOWL_ON_PLATE = Plan(
    (
        Step("grasp", ("akita_black_bowl_1",)),
        Step("place", ("akita_black_bowl_1", "plate_1")),
    )
)
DEMO_DATASETS = {
    "actions": 7,
    "states": None,
    "robot_states": 9,
    "rewards": None,
    "dones": None,
    "obs/agentview_rgb": (64, 64, 3),
    "obs/eye_in_hand_rgb": (64, 64, 3),
    "obs/gripper_states": 2,
    "obs/joint_states": 7,
    "obs/ee_pos": 3,
    "obs/ee_ori": 3,
    "obs/ee_states": 6,
}
FILE_ATTRS = (
    "env_name",
    "problem_info",
    "bddl_file_name",
    "bddl_file_content",
    "env_args",
    "num_demos",
    "total",
    "macros_image_convention",
)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory):
    from aas.sims.env import make_env
    from aas.sims.generate import generate_demos

    spec = get_task("libero_goal", "put_the_bowl_on_the_plate")
    out = tmp_path_factory.mktemp("generate")
    env = make_env(spec, render=True, camera_size=64)
    try:
        report = generate_demos(
            spec, [0], out, plan=BOWL_ON_PLATE, camera_size=64, env=env
        )
        yield spec, out, report, env
    finally:
        env.close()


def test_generator_keeps_demo_that_reaches_goal(generated) -> None:
    _, _, report, env = generated
    assert report.kept == 1
    assert report.outcomes[0].status == "kept"

    with h5py.File(report.demo_file, "r") as f:
        final_state = f["data/demo_0/states"][-1]
    env.set_sim_state(final_state)
    assert env.eval_atom(("on", "akita_black_bowl_1", "plate_1"))


def test_generated_file_has_libero_layout(generated) -> None:
    spec, _, report, _ = generated
    with h5py.File(report.demo_file, "r") as f:
        data = f["data"]
        for name in FILE_ATTRS:
            assert name in data.attrs, name
        assert data.attrs["num_demos"] == 1
        assert "put the bowl on the plate" in data.attrs["problem_info"].lower()
        demo = data["demo_0"]
        frames = int(demo.attrs["num_samples"])
        assert frames > 50
        assert demo.attrs["init_state"].shape == spec.init_states[0].shape
        for name, tail in DEMO_DATASETS.items():
            assert name in demo, name
            assert demo[name].shape[0] == frames, name
            if isinstance(tail, int):
                assert demo[name].shape[1:] == (tail,), name
            elif tail is not None:
                assert demo[name].shape[1:] == tail, name
        assert demo["obs/agentview_rgb"].dtype == np.uint8
        assert demo["dones"][-1] == 1
        assert np.all(np.abs(demo["actions"][:]) <= 1.0)


def test_generated_file_loads_with_demo_reader(generated) -> None:
    from aas.datasets.libero_hdf5 import open_demo_file

    _, _, report, _ = generated
    demo_file = open_demo_file(report.demo_file)
    assert demo_file.errors == []
    assert len(demo_file.demos) == 1
    assert demo_file.instruction.lower() == "put the bowl on the plate"
    assert demo_file.demos[0].actions.shape[1] == 7


def test_generator_resume_skips_finished_init_state(generated) -> None:
    from aas.sims.generate import generate_demos

    spec, out, report, _ = generated
    runs = []
    again = generate_demos(spec, [0], out, plan=BOWL_ON_PLATE, progress=runs.append)
    assert runs == []
    assert again.kept == 1
    assert again.demo_file == report.demo_file


def test_generator_records_failed_episode(tmp_path: Path) -> None:
    from aas.sims.generate import generate_demos, task_paths

    spec = get_task("libero_goal", "put_the_bowl_on_the_plate")
    report = generate_demos(
        spec, [1], tmp_path, plan=BOWL_ON_PLATE, render=False, max_frames=30
    )
    demo_file, status_file, _ = task_paths(tmp_path, spec)
    assert report.kept == 0
    assert report.outcomes[1].status == "failed"
    assert "budget" in report.outcomes[1].error
    assert status_file.is_file()
    assert not demo_file.exists()


def _run(suite: str, task: str, plan: Plan, init_state: int):
    from aas.sims.controller import run_plan
    from aas.sims.env import make_env

    with make_env(get_task(suite, task), render=False) as env:
        env.reset(init_state)
        return run_plan(env, plan)


def test_put_in_skill_drops_can_into_basket() -> None:
    plan = Plan(
        (
            Step("grasp", ("alphabet_soup_1",)),
            Step("put_in", ("alphabet_soup_1", "basket_1_contain_region")),
        )
    )
    result = _run(
        "libero_object", "pick_up_the_alphabet_soup_and_place_it_in_the_basket", plan, 0
    )
    assert [s.success for s in result.steps] == [True, True]
    assert result.goal_reached


def test_stack_skill_puts_cream_cheese_in_bowl() -> None:
    plan = Plan(
        (
            Step("grasp", ("cream_cheese_1",)),
            Step("stack", ("cream_cheese_1", "akita_black_bowl_1")),
        )
    )
    result = _run("libero_goal", "put_the_cream_cheese_in_the_bowl", plan, 0)
    assert [s.success for s in result.steps] == [True, True]
    assert result.goal_reached


def test_controller_rejects_step_without_skill() -> None:
    from aas.sims.controller import UnsupportedStepError, check_supported

    with pytest.raises(UnsupportedStepError, match="no scripted skill"):
        check_supported(Plan((Step("juggle", ("plate_1",)),)))


def test_parse_init_states_expands_ranges() -> None:
    from aas.sims.generate import parse_init_states

    assert parse_init_states("0-2,5", 50) == [0, 1, 2, 5]
    assert parse_init_states("all", 3) == [0, 1, 2]
    with pytest.raises(ValueError, match="out of range"):
        parse_init_states("49-50", 50)
