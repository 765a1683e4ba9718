"""Symbolic states of a scene and the effect of operator steps on them.

A state is a frozenset of ground atoms. It holds the BDDL atoms of the
scene (``on``, ``in``, ``open``, ``close``, ``turnon``, ``turnoff``) and the
robot atoms ``holding`` and ``handempty``; the derived atom ``accessible``
is computed on demand and never stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aas.bddl import Scene
from aas.operators import BDDL_PREDICATES, OPERATORS, WILDCARD
from aas.planning.affordances import door_of, entity_types
from aas.schema import Atom, Operator, Step

State = frozenset[Atom]


class PlanError(ValueError):
    """A step that cannot be applied: unknown operator, wrong arguments or a false precondition."""


def format_atom(atom: Atom) -> str:
    """Return an atom in BDDL notation: ``(on akita_black_bowl_1 plate_1)``."""
    return f"({' '.join(atom)})"


def matches(pattern: Atom, atom: Atom) -> bool:
    """Return whether ``atom`` matches ``pattern``, where ``*`` matches any value."""
    return len(pattern) == len(atom) and all(
        p == WILDCARD or p == a for p, a in zip(pattern, atom)
    )


def _bind(atoms: Iterable[Atom], binding: dict[str, str]) -> tuple[Atom, ...]:
    return tuple(tuple(binding.get(part, part) for part in atom) for atom in atoms)


def _binding(op: Operator, args: tuple[str, ...]) -> dict[str, str]:
    return {f"?{name}": arg for (name, _), arg in zip(op.params, args)}


def step_effects(
    step: Step, operators: Mapping[str, Operator] = OPERATORS
) -> tuple[tuple[Atom, ...], tuple[Atom, ...]]:
    """Return the ``(add_atoms, delete_atoms)`` of a step; delete atoms may contain ``*``.

    Raises:
        PlanError: the operator is unknown or the argument count is wrong.
    """
    op = _operator(step, operators)
    binding = _binding(op, step.args)
    return _bind(op.add_effects, binding), _bind(op.delete_effects, binding)


def observable_effects(
    step: Step, operators: Mapping[str, Operator] = OPERATORS
) -> tuple[Atom, ...]:
    """Return the added atoms of a step that the LIBERO simulator can evaluate.

    These are the BDDL predicates among the add effects; ``grasp`` and
    ``take_out`` have none because ``holding`` is not a BDDL predicate.
    """
    added, _ = step_effects(step, operators)
    return tuple(atom for atom in added if atom[0] in BDDL_PREDICATES)


def apply_effects(
    state: State, added: Iterable[Atom], deleted: Iterable[Atom]
) -> State:
    """Remove every atom matching a delete pattern, then add the add atoms."""
    patterns = tuple(deleted)
    kept = {atom for atom in state if not any(matches(p, atom) for p in patterns)}
    return frozenset(kept | set(added))


def _operator(step: Step, operators: Mapping[str, Operator]) -> Operator:
    op = operators.get(step.op)
    if op is None:
        raise PlanError(
            f"unknown operator {step.op!r}; known operators: {', '.join(operators)}"
        )
    if len(step.args) != op.arity:
        params = ", ".join(name for name, _ in op.params)
        raise PlanError(
            f"{step.op} takes {op.arity} argument(s) ({params}), got {len(step.args)}"
        )
    return op


def initial_state(scene: Scene) -> State:
    """Return the symbolic state described by the scene's ``:init`` section.

    The robot starts with an empty hand. Openable names that ``:init`` does
    not declare open start closed, and switchable ones start off: LIBERO
    tasks such as "open the top drawer" or "turn on the stove" leave the
    closed or off state out of ``:init``.
    """
    types = entity_types(scene)
    state = set(scene.init)
    state.add(("handempty",))
    for name, kinds in types.items():
        if "openable" in kinds and ("open", name) not in state:
            state.add(("close", name))
        if "switchable" in kinds and ("turnon", name) not in state:
            state.add(("turnoff", name))
    return frozenset(state)


def unmet_goals(scene: Scene, state: State) -> tuple[Atom, ...]:
    """Return the goal atoms of ``scene`` that do not hold in ``state``."""
    return tuple(atom for atom in scene.goal if atom not in state)


def goal_satisfied(scene: Scene, state: State) -> bool:
    """Return whether every goal atom of ``scene`` holds in ``state``."""
    return not unmet_goals(scene, state)


@dataclass(frozen=True)
class Action:
    """A grounded operator with its preconditions and effects bound to names."""

    step: Step
    preconditions: frozenset[Atom]
    negative_preconditions: tuple[Atom, ...]
    add_effects: tuple[Atom, ...]
    delete_effects: tuple[Atom, ...]


class Domain:
    """The planning model of one scene: parameter types, doors and grounded actions.

    ``operators`` defaults to :data:`aas.operators.OPERATORS`; a planner may
    pass a subset or an extended table.
    """

    def __init__(
        self, scene: Scene, operators: Mapping[str, Operator] = OPERATORS
    ) -> None:
        self.scene = scene
        self.operators = operators
        self.types = entity_types(scene)
        self.doors = {
            name: door_of(scene, name, self.types)
            for name, kinds in self.types.items()
            if "container" in kinds
        }

    def derived_atoms(self, state: State) -> set[Atom]:
        """Return the ``accessible`` atoms that hold in ``state``."""
        return {
            ("accessible", region)
            for region, door in self.doors.items()
            if door is None or ("open", door) in state
        }

    def ground(self, step: Step) -> Action:
        """Bind a step's operator to its arguments, checking names and types.

        Raises:
            PlanError: unknown operator, wrong arity, undeclared name,
                repeated argument or argument of the wrong type.
        """
        op = _operator(step, self.operators)
        for (param, kind), arg in zip(op.params, step.args):
            if arg not in self.types:
                raise PlanError(
                    f"argument {param}={arg!r} is not an object, fixture or region "
                    f"of {self.scene.file_name}"
                )
            if kind not in self.types[arg]:
                have = ", ".join(sorted(self.types[arg])) or "no type"
                raise PlanError(
                    f"argument {param}={arg!r} must be {kind}, but it is {have}"
                )
        if len(set(step.args)) != len(step.args):
            raise PlanError(f"arguments must be distinct, got {', '.join(step.args)}")
        binding = _binding(op, step.args)
        return Action(
            step=Step(step.op, tuple(step.args)),
            preconditions=frozenset(_bind(op.preconditions, binding)),
            negative_preconditions=_bind(op.negative_preconditions, binding),
            add_effects=_bind(op.add_effects, binding),
            delete_effects=_bind(op.delete_effects, binding),
        )

    def failed_precondition(self, action: Action, state: State) -> str | None:
        """Return why ``action`` is not applicable in ``state``, or None if it is."""
        derived = self.derived_atoms(state)
        for atom in sorted(action.preconditions):
            if atom in state or atom in derived:
                continue
            return f"precondition {format_atom(atom)} is false{self._hint(atom, state)}"
        for pattern in action.negative_preconditions:
            for atom in sorted(state):
                if matches(pattern, atom):
                    return (
                        f"precondition (not {format_atom(pattern)[1:-1]}) is false "
                        f"because {format_atom(atom)} holds"
                    )
        return None

    def _hint(self, atom: Atom, state: State) -> str:
        held = sorted(a[1] for a in state if a[0] == "holding")
        if atom == ("handempty",) and held:
            return f": the gripper is holding {held[0]}"
        if atom[0] == "holding":
            return (
                f": the gripper holds {held[0]}" if held else ": the gripper is empty"
            )
        if atom[0] == "accessible":
            door = self.doors.get(atom[1])
            if door is not None:
                return f": {door} is closed; open it first"
        return ""

    def actions(self) -> list[Action]:
        """Return every type-correct grounding of every operator, in table order."""
        result = []
        for op in self.operators.values():
            candidates = [
                [name for name, kinds in self.types.items() if kind in kinds]
                for _, kind in op.params
            ]
            for args in _product(candidates):
                if len(set(args)) == len(args):
                    result.append(self.ground(Step(op.name, args)))
        return result

    def apply(self, action: Action, state: State) -> State:
        """Return the state after ``action``, which must be applicable."""
        return apply_effects(state, action.add_effects, action.delete_effects)


def _product(pools: list[list[str]]) -> list[tuple[str, ...]]:
    combos: list[tuple[str, ...]] = [()]
    for pool in pools:
        combos = [(*combo, item) for combo in combos for item in sorted(pool)]
    return combos


def apply_step(
    scene: Scene, state: State, step: Step, domain: Domain | None = None
) -> State:
    """Apply one step to a state of ``scene`` and return the new state.

    Raises:
        PlanError: the step is malformed for this scene or a precondition is false.
    """
    domain = domain or Domain(scene)
    action = domain.ground(step)
    reason = domain.failed_precondition(action, state)
    if reason is not None:
        raise PlanError(f"{step}: {reason}")
    return domain.apply(action, state)


def instruction_for(
    scene: Scene, step: Step, operators: Mapping[str, Operator] = OPERATORS
) -> str:
    """Return the natural-language atomic instruction of a step.

    ``place(akita_black_bowl_1, plate_1)`` -> ``"place the black bowl on the plate"``.
    """
    op = _operator(step, operators)
    words = {
        name: scene.display_name(arg) for (name, _), arg in zip(op.params, step.args)
    }
    return op.instruction.format(**words)
