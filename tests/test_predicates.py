"""BDDL predicates and ``holding`` evaluated on states built in a real LIBERO scene.

All states come from one libero_goal environment (bowl, plate, cabinet with
drawers, stove), shared with the other simulator tests of the session: joints and object poses are set through the simulator state,
objects dropped onto a target settle under physics, and the grasp is done by
the scripted controller.
"""

from __future__ import annotations

import numpy as np
import pytest
from predicate_fixtures import shared_env

from aas.demo import Demo
from aas.schema import Plan, Step

BOWL = "akita_black_bowl_1"
DRAWER = "wooden_cabinet_1_top_region"
STOVE = "flat_stove_1"
ATOMS = (
    ("open", DRAWER),
    ("close", DRAWER),
    ("turnon", STOVE),
    ("turnoff", STOVE),
    ("on", BOWL, "plate_1"),
    ("in", BOWL, DRAWER),
    ("holding", BOWL),
)
# Joint positions past LIBERO's thresholds for the wooden cabinet's drawers
# (open below -0.14 m, closed above 0) and the flat stove's knob (on from 0.5
# rad, off below 0).
DRAWER_OPEN_M = -0.15
DRAWER_CLOSED_M = 0.003
STOVE_ON_RAD = 1.0
STOVE_OFF_RAD = -0.003
SETTLE_FRAMES = 30


@pytest.fixture(scope="module")
def env():
    environment = shared_env()
    environment.reset(0)
    return environment


@pytest.fixture(scope="module")
def start_state(env) -> np.ndarray:
    return env.get_sim_state()


def _with_joint(
    env, start_state, holder: str, value: float, site: bool = True
) -> np.ndarray:
    from aas.sims.predicates import set_state

    set_state(env, start_state)
    model = (
        env.inner.object_sites_dict[holder] if site else env.inner.get_object(holder)
    )
    address = env.sim.model.get_joint_qpos_addr(model.joints[0])
    env.sim.data.qpos[address] = value
    env.sim.forward()
    return env.get_sim_state()


def _dropped_bowl(
    env, start_state, target: str, drawer_open: bool = False
) -> np.ndarray:
    """Return the state after dropping the bowl from 3-6 cm above ``target`` and settling."""
    from aas.sims.env import SETTLE_ACTION
    from aas.sims.predicates import set_state

    state = (
        _with_joint(env, start_state, DRAWER, DRAWER_OPEN_M)
        if drawer_open
        else start_state
    )
    set_state(env, state)
    first, _ = env.sim.model.get_joint_qpos_addr(env.inner.get_object(BOWL).joints[0])
    lift = 0.03 if drawer_open else 0.06
    env.sim.data.qpos[first : first + 3] = env.pose(target).pos + [0.0, 0.0, lift]
    env.sim.forward()
    for _ in range(SETTLE_FRAMES):
        env.step(SETTLE_ACTION)
    return env.get_sim_state()


def _truth(env, state: np.ndarray) -> dict[tuple[str, ...], bool]:
    from aas.sims.predicates import replay_timeline

    timeline = replay_timeline(env, state[None], ATOMS)
    return {atom: bool(timeline.series(atom)[0]) for atom in ATOMS}


def test_open_holds_for_open_drawer(env, start_state):
    truth = _truth(env, _with_joint(env, start_state, DRAWER, DRAWER_OPEN_M))
    assert truth[("open", DRAWER)]
    assert not truth[("close", DRAWER)]


def test_close_holds_for_closed_drawer(env, start_state):
    truth = _truth(env, _with_joint(env, start_state, DRAWER, DRAWER_CLOSED_M))
    assert truth[("close", DRAWER)]
    assert not truth[("open", DRAWER)]


def test_turnon_holds_for_turned_knob(env, start_state):
    truth = _truth(env, _with_joint(env, start_state, STOVE, STOVE_ON_RAD, site=False))
    assert truth[("turnon", STOVE)]
    assert not truth[("turnoff", STOVE)]


def test_turnoff_holds_for_knob_at_rest(env, start_state):
    truth = _truth(env, _with_joint(env, start_state, STOVE, STOVE_OFF_RAD, site=False))
    assert truth[("turnoff", STOVE)]
    assert not truth[("turnon", STOVE)]


def test_on_holds_after_bowl_settles_on_plate(env, start_state):
    assert not _truth(env, start_state)[("on", BOWL, "plate_1")]
    truth = _truth(env, _dropped_bowl(env, start_state, "plate_1"))
    assert truth[("on", BOWL, "plate_1")]
    assert not truth[("in", BOWL, DRAWER)]


def test_in_holds_after_bowl_drops_into_open_drawer(env, start_state):
    assert not _truth(env, start_state)[("in", BOWL, DRAWER)]
    truth = _truth(env, _dropped_bowl(env, start_state, DRAWER, drawer_open=True))
    assert truth[("in", BOWL, DRAWER)]
    assert not truth[("on", BOWL, "plate_1")]


def test_holding_after_scripted_grasp(env, start_state):
    from aas.sims.controller import run_plan
    from aas.sims.predicates import is_held, set_state

    set_state(env, start_state)
    assert not is_held(env, BOWL)
    result = run_plan(env, Plan((Step("grasp", (BOWL,)),)))
    assert result.steps[0].success
    assert is_held(env, BOWL)
    assert _truth(env, env.get_sim_state())[("holding", BOWL)]


def test_replay_orders_frames(env, start_state):
    from aas.sims.predicates import replay_timeline

    opened = _with_joint(env, start_state, DRAWER, DRAWER_OPEN_M)
    timeline = replay_timeline(env, np.stack([start_state, opened, start_state]), ATOMS)
    assert timeline.num_frames == 3
    assert timeline.series(("open", DRAWER)).tolist() == [False, True, False]


def test_replay_rejects_states_of_other_model(env, start_state):
    from aas.sims.predicates import replay_timeline

    with pytest.raises(ValueError, match="recorded in another task"):
        replay_timeline(env, start_state[None, :-3], ATOMS, source="f.hdf5/demo_0")


def test_timeline_rejects_demo_without_states(env):
    from aas.sims.predicates import MissingStatesError, predicate_timeline

    demo = Demo.from_arrays(
        "demo_7", {"actions": np.zeros((5, 7))}, source="/data/no_states.hdf5"
    )
    plan = Plan((Step("grasp", (BOWL,)), Step("place", (BOWL, "plate_1"))))
    with pytest.raises(MissingStatesError) as excinfo:
        predicate_timeline(demo, plan, env=env)
    assert "/data/no_states.hdf5" in str(excinfo.value)
    assert "demo_7" in str(excinfo.value)


def test_plan_atoms_cover_effects_and_holding():
    from aas.sims.predicates import plan_atoms

    plan = Plan(
        (Step("grasp", (BOWL,)), Step("place", (BOWL, "plate_1"))),
        goal=(("on", BOWL, "plate_1"),),
    )
    assert plan_atoms(plan) == (("holding", BOWL), ("on", BOWL, "plate_1"))
