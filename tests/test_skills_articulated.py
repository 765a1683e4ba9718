"""Articulated-object skills in real LIBERO episodes, judged by LIBERO's own predicates."""

from __future__ import annotations

import pytest

from aas.schema import Step
from aas.sims.env import make_env
from aas.sims.skills import SKILLS, SkillFailure
from aas.sims.skills.articulation import find_articulation, joint_position
from aas.sims.tasks import get_task


def run_skill(env, op: str, target: str) -> int:
    """Execute one skill to its end; return the number of frames it took."""
    skill = SKILLS[op](Step(op, (target,)))
    frames = 0
    for action in skill.act(env):
        env.step(action)
        frames += 1
        assert frames <= skill.max_steps, (
            f"{op}({target}) exceeded {skill.max_steps} frames"
        )
    return frames


@pytest.fixture(scope="module")
def goal_drawer_env():
    env = make_env(
        get_task("libero_goal", "open_the_middle_drawer_of_the_cabinet"), render=False
    )
    yield env
    env.close()


@pytest.fixture(scope="module")
def goal_stove_env():
    env = make_env(get_task("libero_goal", "turn_on_the_stove"), render=False)
    yield env
    env.close()


def test_articulated_ops_are_registered():
    for op in ("open", "close", "turn_on", "turn_off"):
        assert op in SKILLS


def test_drawer_resolves_to_slide_joint(goal_drawer_env):
    goal_drawer_env.reset(0)
    art = find_articulation(goal_drawer_env, "wooden_cabinet_1_middle_region")

    assert art.joint == "wooden_cabinet_1_middle_level"
    assert art.kind == "slide"
    # LIBERO's wooden cabinet counts a drawer as open below -0.14 m.
    assert art.open_sign == -1
    assert not art.switch


def test_unknown_target_fails_with_name(goal_drawer_env):
    goal_drawer_env.reset(0)
    skill = SKILLS["open"](Step("open", ("no_such_drawer",)))

    with pytest.raises(SkillFailure, match="no_such_drawer"):
        next(skill.act(goal_drawer_env))


def test_open_drawer_makes_open_predicate_true(goal_drawer_env):
    env = goal_drawer_env
    env.reset(0)
    state = env.object_state("wooden_cabinet_1_middle_region")
    assert not state.is_open()

    run_skill(env, "open", "wooden_cabinet_1_middle_region")

    assert state.is_open()
    assert env.check_success()


def test_close_drawer_makes_close_predicate_true():
    task = get_task("libero_90", "KITCHEN_SCENE10_close_the_top_drawer_of_the_cabinet")
    with make_env(task, render=False) as env:
        env.reset(0)
        state = env.object_state("wooden_cabinet_1_top_region")
        assert not state.is_close()

        run_skill(env, "close", "wooden_cabinet_1_top_region")

        assert state.is_close()
        assert env.check_success()


def test_turn_on_stove_makes_turnon_true(goal_stove_env):
    env = goal_stove_env
    env.reset(0)
    state = env.object_state("flat_stove_1")
    assert not state.turn_on()

    run_skill(env, "turn_on", "flat_stove_1")

    assert state.turn_on()
    assert env.check_success()


def test_turn_off_stove_makes_turnoff_true():
    task = get_task("libero_90", "KITCHEN_SCENE8_turn_off_the_stove")
    with make_env(task, render=False) as env:
        env.reset(0)
        art = find_articulation(env, "flat_stove_1")
        assert joint_position(env, art) >= 0.5

        run_skill(env, "turn_off", "flat_stove_1")

        assert env.object_state("flat_stove_1").turn_off()
        assert env.check_success()
