"""Check a plan against a scene, and relate each step to the goal atoms it serves."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aas.bddl import Scene
from aas.operators import OPERATORS
from aas.planning.domain import (
    Action,
    Domain,
    PlanError,
    State,
    format_atom,
    initial_state,
    unmet_goals,
)
from aas.schema import Atom, Operator, Plan, Step


@dataclass(frozen=True)
class PlanCheck:
    """Result of :func:`check_plan`.

    ``valid`` is true when every step is well-formed and applicable in turn.
    ``errors`` has one message per problem, each starting with ``step N``
    (0-based) and the step. ``final_state`` is the state after the last
    applicable step, and ``goal_satisfied`` is whether it satisfies the
    scene's goal; ``unmet_goals`` lists the goal atoms it lacks.
    """

    valid: bool
    errors: tuple[str, ...]
    final_state: State
    goal_satisfied: bool
    unmet_goals: tuple[Atom, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the plan is executable and reaches the goal."""
        return self.valid and self.goal_satisfied

    def to_dict(self) -> dict:
        return {
            "valid": self.valid,
            "goal_satisfied": self.goal_satisfied,
            "errors": list(self.errors),
            "unmet_goals": [list(a) for a in self.unmet_goals],
            "final_state": sorted(list(a) for a in self.final_state),
        }


def check_plan(
    scene: Scene,
    plan: Plan | list[Step],
    state: State | None = None,
    operators: Mapping[str, Operator] = OPERATORS,
) -> PlanCheck:
    """Execute a plan symbolically from ``state`` (default: the scene's initial state).

    Execution stops at the first step whose preconditions are false, because
    later steps would run from an unknown state; malformed later steps are
    still reported.
    """
    domain = Domain(scene, operators)
    current = initial_state(scene) if state is None else frozenset(state)
    errors: list[str] = []
    executing = True
    for index, step in enumerate(plan):
        try:
            action = domain.ground(step)
        except PlanError as exc:
            errors.append(f"step {index} {step}: {exc}")
            executing = False
            continue
        if not executing:
            continue
        reason = domain.failed_precondition(action, current)
        if reason is not None:
            errors.append(f"step {index} {step}: {reason}")
            executing = False
            continue
        current = domain.apply(action, current)
    unmet = unmet_goals(scene, current)
    return PlanCheck(
        valid=not errors,
        errors=tuple(errors),
        final_state=current,
        goal_satisfied=not unmet,
        unmet_goals=unmet,
    )


def describe_check(check: PlanCheck) -> str:
    """Return a one-paragraph summary of a plan check for logs and prompts."""
    if check.ok:
        return "the plan is valid and reaches the goal"
    parts = list(check.errors)
    if check.unmet_goals:
        parts.append(
            "goal atoms not reached: " + " ".join(map(format_atom, check.unmet_goals))
        )
    return "; ".join(parts)


def step_goals(
    scene: Scene,
    plan: Plan | list[Step],
    operators: Mapping[str, Operator] = OPERATORS,
) -> list[tuple[Atom, ...]]:
    """Return, for each step, the goal atoms it achieves or prepares.

    A step achieves a goal atom when it is the last step that adds it and
    the atom holds at the end. A step prepares the goal atoms of the steps
    that consume its effects: the grasp before a place serves the place's
    goal atom, the opening of a drawer serves the ``in`` atom of the put_in
    that follows. Steps that serve no goal atom get an empty tuple.

    Raises:
        PlanError: the plan is not valid for the scene.
    """
    domain = Domain(scene, operators)
    state = initial_state(scene)
    actions: list[Action] = []
    states = [state]
    for index, step in enumerate(plan):
        action = domain.ground(step)
        reason = domain.failed_precondition(action, state)
        if reason is not None:
            raise PlanError(f"step {index} {step}: {reason}")
        state = domain.apply(action, state)
        actions.append(action)
        states.append(state)

    last_adder: dict[Atom, int] = {}
    consumers: list[list[int]] = [[] for _ in actions]
    for index, action in enumerate(actions):
        facts = states[index] | domain.derived_atoms(states[index])
        for atom in action.preconditions & facts:
            producer = _producer(domain, atom, last_adder)
            if producer is not None:
                consumers[producer].append(index)
        for atom in action.add_effects:
            last_adder[atom] = index

    served: list[list[Atom]] = [[] for _ in actions]
    for atom in scene.goal:
        if atom in state and atom in last_adder:
            served[last_adder[atom]].append(atom)
    for index in reversed(range(len(actions))):
        for consumer in consumers[index]:
            for atom in served[consumer]:
                if atom not in served[index]:
                    served[index].append(atom)
    return [tuple(atoms) for atoms in served]


def _producer(domain: Domain, atom: Atom, last_adder: dict[Atom, int]) -> int | None:
    if atom[0] == "accessible":
        door = domain.doors.get(atom[1])
        return last_adder.get(("open", door)) if door is not None else None
    if atom == ("handempty",):
        return None
    return last_adder.get(atom)
