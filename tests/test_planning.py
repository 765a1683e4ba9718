"""Specification of the operator table, the planner and the plan checker."""

from __future__ import annotations

import string
import textwrap

import pytest

from aas.bddl import libero_bddl_files, parse_bddl, parse_bddl_text
from aas.operators import OPERATORS, describe_operators
from aas.planning import (
    PlanError,
    PlanningError,
    apply_step,
    check_plan,
    entity_types,
    initial_state,
    observable_effects,
    plan_for_scene,
    step_effects,
    step_goals,
)
from aas.schema import Operator, Plan, Step

SCENES = {path.name: parse_bddl(path) for path in libero_bddl_files()}


def _scene(file_name: str):
    return SCENES[file_name]


def _ops(plan: Plan) -> list[tuple[str, tuple[str, ...]]]:
    return [(step.op, step.args) for step in plan]


DRAWER_TASK = "open_the_top_drawer_and_put_the_bowl_inside.bddl"
CLOSE_AFTER_TASK = "KITCHEN_SCENE4_put_the_black_bowl_in_the_bottom_drawer_of_the_cabinet_and_close_it.bddl"
CLOSE_FIRST_TASK = "KITCHEN_SCENE10_close_the_top_drawer_of_the_cabinet_and_put_the_black_bowl_on_top_of_it.bddl"
MICROWAVE_TASK = (
    "KITCHEN_SCENE6_put_the_yellow_and_white_mug_in_the_microwave_and_close_it.bddl"
)
STOVE_TASK = "KITCHEN_SCENE3_turn_on_the_stove_and_put_the_moka_pot_on_it.bddl"
PUSH_TASK = "push_the_plate_to_the_front_of_the_stove.bddl"
SPATIAL_DRAWER_TASK = "pick_up_the_black_bowl_in_the_top_drawer_of_the_wooden_cabinet_and_place_it_on_the_plate.bddl"


def test_operator_table_has_vocabulary() -> None:
    assert set(OPERATORS) == {
        "grasp",
        "place",
        "put_in",
        "take_out",
        "open",
        "close",
        "turn_on",
        "turn_off",
        "push",
        "stack",
    }


def test_operator_instructions_use_param_names() -> None:
    for op in OPERATORS.values():
        fields = {
            name for _, name, _, _ in string.Formatter().parse(op.instruction) if name
        }
        assert fields == {name for name, _ in op.params}, op.name
        assert op.description.endswith("."), op.name


def test_operator_effects_mention_only_params() -> None:
    for op in OPERATORS.values():
        params = {f"?{name}" for name, _ in op.params}
        atoms = (
            op.preconditions
            + op.negative_preconditions
            + op.add_effects
            + op.delete_effects
        )
        for atom in atoms:
            for part in atom[1:]:
                assert part in params or part == "*", (op.name, atom)


def test_describe_operators_lists_one_line_each() -> None:
    lines = describe_operators().splitlines()
    assert len(lines) == len(OPERATORS)
    assert lines[0].startswith("grasp(obj: movable): ")


def test_every_libero_task_gets_valid_plan() -> None:
    assert len(SCENES) == 130
    for name, scene in SCENES.items():
        plan = plan_for_scene(scene)
        check = check_plan(scene, plan)
        assert check.valid, (name, check.errors)
        assert check.goal_satisfied, (name, check.unmet_goals)
        assert all(goal in check.final_state for goal in scene.goal), name
        assert plan.bddl_file == name
        assert plan.goal == scene.goal
        for step in plan:
            assert step.instruction and step.instruction == step.instruction.lower(), (
                name,
                step,
            )


def test_every_step_serves_a_goal_atom() -> None:
    for name, scene in SCENES.items():
        plan = plan_for_scene(scene)
        served = step_goals(scene, plan)
        assert len(served) == len(plan)
        for step, atoms in zip(plan, served):
            assert atoms, (name, step)
            assert set(atoms) <= set(scene.goal), (name, step)


def test_pick_and_place_plan_is_two_steps() -> None:
    plan = plan_for_scene(_scene("put_the_bowl_on_the_plate.bddl"))
    assert _ops(plan) == [
        ("grasp", ("akita_black_bowl_1",)),
        ("place", ("akita_black_bowl_1", "plate_1")),
    ]
    assert [s.instruction for s in plan] == [
        "pick up the black bowl",
        "place the black bowl on the plate",
    ]


def test_closed_drawer_opened_before_put_in() -> None:
    plan = plan_for_scene(_scene(DRAWER_TASK))
    assert [s.instruction for s in plan] == [
        "open the top drawer of the cabinet",
        "pick up the black bowl",
        "put the black bowl in the top drawer of the cabinet",
    ]


def test_drawer_closed_after_put_in_when_goal_says() -> None:
    plan = plan_for_scene(_scene(CLOSE_AFTER_TASK))
    assert _ops(plan) == [
        ("grasp", ("akita_black_bowl_1",)),
        ("put_in", ("akita_black_bowl_1", "white_cabinet_1_bottom_region")),
        ("close", ("white_cabinet_1_bottom_region",)),
    ]


def test_goal_order_breaks_ties() -> None:
    plan = plan_for_scene(_scene(CLOSE_FIRST_TASK))
    assert [s.op for s in plan] == ["close", "grasp", "place"]
    plan = plan_for_scene(_scene(STOVE_TASK))
    assert [s.instruction for s in plan] == [
        "turn on the stove",
        "pick up the moka pot",
        "place the moka pot on the stove",
    ]


def test_microwave_door_is_the_container_door() -> None:
    plan = plan_for_scene(_scene(MICROWAVE_TASK))
    assert [s.instruction for s in plan] == [
        "pick up the yellow and white mug",
        "put the yellow and white mug in the microwave",
        "close the microwave",
    ]


def test_plate_is_pushed_not_grasped() -> None:
    scene = _scene(PUSH_TASK)
    assert "movable" not in entity_types(scene)["plate_1"]
    plan = plan_for_scene(scene)
    assert _ops(plan) == [("push", ("plate_1", "main_table_stove_front_region"))]


def test_object_in_open_drawer_is_taken_out() -> None:
    plan = plan_for_scene(_scene(SPATIAL_DRAWER_TASK))
    assert [s.op for s in plan] == ["take_out", "place"]
    assert plan.steps[0].instruction.startswith("take the black bowl")


def test_stacked_bowls_put_base_in_tray_first() -> None:
    name = "LIVING_ROOM_SCENE4_stack_the_left_bowl_on_the_right_bowl_and_place_them_in_the_tray.bddl"
    plan = plan_for_scene(_scene(name))
    assert _ops(plan) == [
        ("grasp", ("akita_black_bowl_2",)),
        ("put_in", ("akita_black_bowl_2", "wooden_tray_1_contain_region")),
        ("grasp", ("akita_black_bowl_1",)),
        ("stack", ("akita_black_bowl_1", "akita_black_bowl_2")),
    ]


def test_plans_are_minimal() -> None:
    lengths = {len(plan_for_scene(scene)) for scene in SCENES.values()}
    assert lengths == {1, 2, 3, 4}
    plan = plan_for_scene(_scene("KITCHEN_SCENE8_put_both_moka_pots_on_the_stove.bddl"))
    assert len(plan) == 4


def test_initial_state_closes_unmentioned_articulations() -> None:
    state = initial_state(_scene(DRAWER_TASK))
    assert ("close", "wooden_cabinet_1_top_region") in state
    assert ("turnoff", "flat_stove_1") in state
    assert ("handempty",) in state


def test_initial_state_keeps_init_open() -> None:
    state = initial_state(_scene(MICROWAVE_TASK))
    assert ("open", "microwave_1") in state
    assert ("close", "microwave_1") not in state


def test_check_plan_rejects_put_in_closed_drawer() -> None:
    scene = _scene(DRAWER_TASK)
    plan = [
        Step("grasp", ("akita_black_bowl_1",)),
        Step("put_in", ("akita_black_bowl_1", "wooden_cabinet_1_top_region")),
    ]
    check = check_plan(scene, plan)
    assert not check.valid
    assert check.errors == (
        (
            "step 1 put_in(akita_black_bowl_1, wooden_cabinet_1_top_region): precondition "
            "(accessible wooden_cabinet_1_top_region) is false: "
            "wooden_cabinet_1_top_region is closed; open it first"
        ),
    )
    assert ("holding", "akita_black_bowl_1") in check.final_state


def test_check_plan_rejects_place_without_grasp() -> None:
    check = check_plan(
        _scene(DRAWER_TASK), [Step("place", ("akita_black_bowl_1", "plate_1"))]
    )
    assert check.errors == (
        (
            "step 0 place(akita_black_bowl_1, plate_1): precondition "
            "(holding akita_black_bowl_1) is false: the gripper is empty"
        ),
    )


def test_check_plan_rejects_wrong_argument_type() -> None:
    check = check_plan(_scene(DRAWER_TASK), [Step("grasp", ("plate_1",))])
    assert check.errors == (
        (
            "step 0 grasp(plate_1): argument obj='plate_1' must be movable, "
            "but it is pushable, surface"
        ),
    )


def test_check_plan_reports_every_malformed_step() -> None:
    plan = [
        Step("grasp", ("akita_black_bowl_1",)),
        Step("fly", ()),
        Step("place", ("akita_black_bowl_1",)),
        Step("place", ("akita_black_bowl_1", "moon_1")),
    ]
    errors = check_plan(_scene(DRAWER_TASK), plan).errors
    assert len(errors) == 3
    assert errors[0].startswith("step 1 fly(): unknown operator 'fly'")
    assert (
        errors[1]
        == "step 2 place(akita_black_bowl_1): place takes 2 argument(s) (obj, target), got 1"
    )
    assert errors[2].startswith(
        "step 3 place(akita_black_bowl_1, moon_1): argument target='moon_1'"
    )


def test_check_plan_rejects_grasp_of_covered_object() -> None:
    name = "LIVING_ROOM_SCENE4_stack_the_left_bowl_on_the_right_bowl_and_place_them_in_the_tray.bddl"
    plan = [
        Step("grasp", ("akita_black_bowl_1",)),
        Step("stack", ("akita_black_bowl_1", "akita_black_bowl_2")),
        Step("grasp", ("akita_black_bowl_2",)),
    ]
    errors = check_plan(_scene(name), plan).errors
    assert errors == (
        (
            "step 2 grasp(akita_black_bowl_2): precondition (not on * akita_black_bowl_2) "
            "is false because (on akita_black_bowl_1 akita_black_bowl_2) holds"
        ),
    )


def test_check_plan_reports_unmet_goal() -> None:
    scene = _scene(CLOSE_AFTER_TASK)
    plan = plan_for_scene(scene).steps[:2]
    check = check_plan(scene, list(plan))
    assert check.valid
    assert not check.goal_satisfied
    assert check.unmet_goals == (("close", "white_cabinet_1_bottom_region"),)


def test_apply_step_raises_on_false_precondition() -> None:
    scene = _scene(DRAWER_TASK)
    with pytest.raises(
        PlanError, match=r"close\(wooden_cabinet_1_top_region\): precondition"
    ):
        apply_step(
            scene, initial_state(scene), Step("close", ("wooden_cabinet_1_top_region",))
        )


def test_apply_step_grasp_lifts_object() -> None:
    scene = _scene("put_the_bowl_on_the_plate.bddl")
    state = apply_step(
        scene, initial_state(scene), Step("grasp", ("akita_black_bowl_1",))
    )
    assert ("holding", "akita_black_bowl_1") in state
    assert ("handempty",) not in state
    assert not any(a[:2] == ("on", "akita_black_bowl_1") for a in state)


def test_step_effects_bind_arguments() -> None:
    added, deleted = step_effects(Step("grasp", ("ketchup_1",)))
    assert added == (("holding", "ketchup_1"),)
    assert deleted == (("handempty",), ("on", "ketchup_1", "*"))


def test_observable_effects_only_bddl_predicates() -> None:
    assert observable_effects(Step("grasp", ("ketchup_1",))) == ()
    assert observable_effects(
        Step("put_in", ("ketchup_1", "basket_1_contain_region"))
    ) == (("in", "ketchup_1", "basket_1_contain_region"),)


def test_step_goals_link_preparation_to_goal() -> None:
    scene = _scene(DRAWER_TASK)
    served = step_goals(scene, plan_for_scene(scene))
    goal = ("in", "akita_black_bowl_1", "wooden_cabinet_1_top_region")
    assert served == [(goal,), (goal,), (goal,)]


def test_replanning_from_intermediate_state() -> None:
    scene = _scene("put_the_bowl_on_the_plate.bddl")
    state = apply_step(
        scene, initial_state(scene), Step("grasp", ("akita_black_bowl_1",))
    )
    plan = plan_for_scene(scene, state=state)
    assert _ops(plan) == [("place", ("akita_black_bowl_1", "plate_1"))]


def test_unreachable_goal_raises() -> None:
    text = textwrap.dedent(
        """\
        (define (problem unreachable)
          (:language put the plate on the bowl)
          (:fixtures main_table - table)
          (:objects plate_1 - plate akita_black_bowl_1 - akita_black_bowl)
          (:init (On plate_1 akita_black_bowl_1))
          (:goal (And (On akita_black_bowl_1 plate_1) (On plate_1 akita_black_bowl_1)))
        )
        """
    )
    scene = parse_bddl_text(text, source="unreachable.bddl")
    with pytest.raises(PlanningError, match="unreachable.bddl: cannot reach goal"):
        plan_for_scene(scene)


POUR = Operator(
    name="pour",
    params=(("obj", "movable"), ("target", "movable")),
    preconditions=(("holding", "?obj"),),
    add_effects=(("poured", "?obj", "?target"),),
    delete_effects=(),
    description="Tilt the held container over another one until it is empty.",
    instruction="pour the {obj} into the {target}",
    gripper_after="closed",
)


def test_new_operator_is_one_table_entry() -> None:
    text = textwrap.dedent(
        """\
        (define (problem pour)
          (:language pour the moka pot into the white mug)
          (:fixtures main_table - table)
          (:objects moka_pot_1 - moka_pot porcelain_mug_1 - porcelain_mug)
          (:init)
          (:goal (And (Poured moka_pot_1 porcelain_mug_1)))
        )
        """
    )
    scene = parse_bddl_text(text)
    operators = {**OPERATORS, POUR.name: POUR}
    plan = plan_for_scene(scene, operators=operators)
    assert [s.instruction for s in plan] == [
        "pick up the moka pot",
        "pour the moka pot into the white mug",
    ]
    assert check_plan(scene, plan, operators=operators).ok
    assert not check_plan(scene, plan).valid


def test_restricted_operators_limit_plans() -> None:
    operators = {name: op for name, op in OPERATORS.items() if name != "push"}
    with pytest.raises(PlanningError, match="push_the_plate"):
        plan_for_scene(_scene(PUSH_TASK), operators=operators)


def test_conflicting_goal_exhausts_search() -> None:
    text = textwrap.dedent(
        """\
        (define (problem conflict)
          (:language put the ketchup on the plate and in the basket)
          (:fixtures main_table - table)
          (:objects ketchup_1 - ketchup plate_1 - plate basket_1 - basket)
          (:regions (contain_region (:target basket_1)))
          (:init)
          (:goal (And (On ketchup_1 plate_1) (In ketchup_1 basket_1_contain_region)))
        )
        """
    )
    scene = parse_bddl_text(text, source="conflict.bddl")
    with pytest.raises(PlanningError, match="search space is exhausted"):
        plan_for_scene(scene)
