"""A* search over grounded operators for a shortest plan that reaches a BDDL goal.

The heuristic counts two steps (grasp and release) for each object that an
unmet ``on``/``in`` goal atom moves, or one step if the gripper already
holds it or it can be pushed. Every other unmet goal atom counts one step. Each
step moves at most one object or changes one articulated part, so the count
never exceeds the true remaining cost and A* returns a minimal plan.

Among minimal plans the search prefers the one that works on the goal atoms
in the order the BDDL goal lists them, which follows the task's language
("close the drawer and put the bowl on top of it" closes first).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from aas.bddl import Scene
from aas.operators import OPERATORS
from aas.planning.domain import (
    Action,
    Domain,
    State,
    format_atom,
    initial_state,
    instruction_for,
)
from aas.schema import Atom, Operator, Plan, Step

logger = logging.getLogger(__name__)

# A* expands at most 6 states on any of the 130 LIBERO tasks; the limit only
# bounds the time spent on a goal that the relaxed check cannot rule out.
DEFAULT_MAX_EXPANSIONS = 20_000


class PlanningError(RuntimeError):
    """No plan reaches the goal of a scene within the search budget."""


def _heuristic(domain: Domain, state: State) -> int:
    holding = {atom[1] for atom in state if atom[0] == "holding"}
    per_object: dict[str, int] = {}
    other = 0
    for atom in domain.scene.goal:
        if atom in state:
            continue
        if atom[0] in ("on", "in") and len(atom) == 3:
            obj = atom[1]
            cheap = obj in holding or "pushable" in domain.types.get(obj, ())
            per_object[obj] = max(per_object.get(obj, 0), 1 if cheap else 2)
        else:
            other += 1
    return other + sum(per_object.values())


def _goal_rank(domain: Domain, action: Action) -> int:
    """Return the index of the first goal atom the action works towards."""
    goal = domain.scene.goal
    for index, atom in enumerate(goal):
        if atom in action.add_effects:
            return index
        moved = atom[1] if atom[0] in ("on", "in") and len(atom) == 3 else None
        if moved is not None and action.step.args[:1] == (moved,):
            return index
        door = domain.doors.get(atom[2]) if moved is not None else None
        if door is not None and action.step.args == (door,):
            return index
    return len(goal)


def _relaxed_unreachable(
    domain: Domain, actions: list[Action], start: State
) -> list[Atom]:
    """Return the goal atoms that no sequence of steps can make true.

    The check ignores delete effects and negative preconditions, so the
    atoms it returns are certainly unreachable, while the others may still be.
    """
    facts = set(start)
    remaining = list(actions)
    changed = True
    while changed:
        changed = False
        reached = facts | domain.derived_atoms(frozenset(facts))
        still = []
        for action in remaining:
            if action.preconditions <= reached:
                facts.update(action.add_effects)
                changed = True
            else:
                still.append(action)
        remaining = still
    return [atom for atom in domain.scene.goal if atom not in facts]


def _applicable(domain: Domain, actions: list[Action], state: State) -> list[Action]:
    facts = state | domain.derived_atoms(state)
    result = []
    for action in actions:
        if not action.preconditions <= facts:
            continue
        if action.negative_preconditions and domain.failed_precondition(action, state):
            continue
        result.append(action)
    return result


def applicable_steps(
    scene: Scene, state: State, operators: Mapping[str, Operator] = OPERATORS
) -> list[Step]:
    """Return every step whose preconditions hold in ``state``, in operator table order."""
    domain = Domain(scene, operators)
    return [action.step for action in _applicable(domain, domain.actions(), state)]


@dataclass(frozen=True)
class SearchResult:
    """A plan found by :func:`search` and the work it took.

    ``expanded`` counts states whose successors were generated, and
    ``generated`` counts successor states pushed onto the frontier.
    """

    steps: tuple[Step, ...]
    expanded: int
    generated: int


def search(
    scene: Scene,
    state: State | None = None,
    max_expansions: int = DEFAULT_MAX_EXPANSIONS,
    use_heuristic: bool = True,
    operators: Mapping[str, Operator] = OPERATORS,
) -> SearchResult:
    """Search for a shortest sequence of steps from ``state`` to the scene's goal.

    ``state`` defaults to :func:`initial_state`. With ``use_heuristic`` off
    the search is uniform-cost (breadth-first in plan length), which finds
    plans of the same length and serves as a baseline. The steps carry no
    instruction; :func:`plan_for_scene` adds them.

    Raises:
        PlanningError: the goal is unreachable, or not reached within
            ``max_expansions`` expanded states.
    """
    domain = Domain(scene, operators)
    start = initial_state(scene) if state is None else frozenset(state)
    actions = sorted(domain.actions(), key=lambda action: _goal_rank(domain, action))
    unreachable = _relaxed_unreachable(domain, actions, start)
    if unreachable:
        atoms = " ".join(format_atom(atom) for atom in unreachable)
        raise PlanningError(
            f"{scene.source}: cannot reach goal atom(s) {atoms}: no operator "
            f"among {', '.join(domain.operators)} can make them true in this scene"
        )

    def estimate(node: State) -> int:
        return _heuristic(domain, node) if use_heuristic else 0

    best_cost = {start: 0}
    parent: dict[State, tuple[State, Action]] = {}
    generated = expanded = 0
    frontier = [(estimate(start), estimate(start), generated, start)]
    while frontier:
        _, _, _, node = heapq.heappop(frontier)
        if all(atom in node for atom in scene.goal):
            return SearchResult(_path(parent, node), expanded, generated)
        if expanded >= max_expansions:
            break
        expanded += 1
        cost = best_cost[node]
        for action in _applicable(domain, actions, node):
            child = domain.apply(action, node)
            if child in best_cost and best_cost[child] <= cost + 1:
                continue
            best_cost[child] = cost + 1
            parent[child] = (node, action)
            child_estimate = estimate(child)
            generated += 1
            heapq.heappush(
                frontier, (cost + 1 + child_estimate, child_estimate, generated, child)
            )

    if frontier:
        reason = f"no plan within {max_expansions} expanded states"
    else:
        reason = "the search space is exhausted"
    goal = " ".join(format_atom(atom) for atom in scene.goal)
    raise PlanningError(f"{scene.source}: cannot reach goal {goal}: {reason}")


def search_steps(
    scene: Scene,
    state: State | None = None,
    max_expansions: int = DEFAULT_MAX_EXPANSIONS,
) -> tuple[Step, ...]:
    """Return a shortest sequence of steps to the goal; see :func:`search`."""
    return search(scene, state, max_expansions).steps


def _path(parent: dict[State, tuple[State, Action]], node: State) -> tuple[Step, ...]:
    steps = []
    while node in parent:
        node, action = parent[node]
        steps.append(action.step)
    return tuple(reversed(steps))


def plan_for_scene(
    scene: Scene,
    state: State | None = None,
    max_expansions: int = DEFAULT_MAX_EXPANSIONS,
    operators: Mapping[str, Operator] = OPERATORS,
) -> Plan:
    """Plan the scene's goal from ``state`` (default: its initial state).

    Every step of the returned plan carries its atomic instruction.

    Raises:
        PlanningError: no plan was found; the message names the file and goal.
    """
    started = time.perf_counter()
    steps = search(scene, state, max_expansions, operators=operators).steps
    plan = Plan(
        steps=tuple(
            Step(s.op, s.args, instruction_for(scene, s, operators)) for s in steps
        ),
        problem=scene.problem_name,
        bddl_file=scene.file_name,
        goal=scene.goal,
    )
    logger.debug(
        "planned %s: %d steps in %.3f s",
        scene.file_name,
        len(plan),
        time.perf_counter() - started,
    )
    return plan
