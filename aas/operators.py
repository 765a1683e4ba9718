"""The operator vocabulary: typed atomic actions over BDDL predicates.

Each entry of :data:`OPERATORS` is one :class:`aas.schema.Operator`, so an
operator over the existing parameter types is added with one entry. The
predicates are:

- BDDL predicates, which LIBERO's simulator evaluates: ``on``, ``in``,
  ``open``, ``close``, ``turnon``, ``turnoff``.
- Robot predicates, tracked only by the planner: ``holding ?obj`` and
  ``handempty``.
- The derived predicate ``accessible ?region``, which the planner computes
  from the state: a container region is accessible when it has no door, or
  when its door (the drawer itself, or the microwave it belongs to) is open.

``*`` in a delete effect matches any value. ``*`` in a negative
precondition means that no atom of that shape may hold, so
``("on", "*", "?obj")`` requires that nothing rests on ``?obj``.

:mod:`aas.planning.affordances` assigns the parameter types to scene names.
They are ``movable`` (graspable objects), ``surface`` (regions or objects that
something can be placed on), ``container`` (regions something can be put
in), ``openable`` (drawers, doors), ``switchable`` (stoves), ``pushable``
(objects moved by pushing, such as plates) and ``table_region`` (regions of
a table or the floor).
"""

from __future__ import annotations

from aas.schema import Operator

BDDL_PREDICATES = ("on", "in", "open", "close", "turnon", "turnoff")
ROBOT_PREDICATES = ("holding", "handempty")
DERIVED_PREDICATES = ("accessible",)
WILDCARD = "*"

_OPERATOR_LIST = (
    # NOTE: grasp requires that nothing rests on the object, so "stack the
    # left bowl on the right bowl and place them in the tray" plans the base
    # into the tray first. Human demos may instead carry the finished stack.
    Operator(
        name="grasp",
        params=(("obj", "movable"),),
        preconditions=(("handempty",),),
        negative_preconditions=(("in", "?obj", "*"), ("on", "*", "?obj")),
        add_effects=(("holding", "?obj"),),
        delete_effects=(("handempty",), ("on", "?obj", "*")),
        description="Close the gripper on a free object resting on a surface and lift it.",
        instruction="pick up the {obj}",
        gripper_after="closed",
    ),
    Operator(
        name="place",
        params=(("obj", "movable"), ("target", "surface")),
        preconditions=(("holding", "?obj"),),
        add_effects=(("on", "?obj", "?target"), ("handempty",)),
        delete_effects=(("holding", "?obj"),),
        description="Set the held object down on a surface or region and open the gripper.",
        instruction="place the {obj} on the {target}",
        gripper_after="open",
    ),
    Operator(
        name="put_in",
        params=(("obj", "movable"), ("region", "container")),
        preconditions=(("holding", "?obj"), ("accessible", "?region")),
        add_effects=(("in", "?obj", "?region"), ("handempty",)),
        delete_effects=(("holding", "?obj"),),
        description="Lower the held object into an open container or drawer and release it.",
        instruction="put the {obj} in the {region}",
        gripper_after="open",
    ),
    Operator(
        name="take_out",
        params=(("obj", "movable"), ("region", "container")),
        preconditions=(
            ("handempty",),
            ("in", "?obj", "?region"),
            ("accessible", "?region"),
        ),
        negative_preconditions=(("on", "*", "?obj"),),
        add_effects=(("holding", "?obj"),),
        delete_effects=(("handempty",), ("in", "?obj", "?region"), ("on", "?obj", "*")),
        description="Grasp an object inside an open container or drawer and lift it out.",
        instruction="take the {obj} out of the {region}",
        gripper_after="closed",
    ),
    Operator(
        name="open",
        params=(("target", "openable"),),
        preconditions=(("handempty",), ("close", "?target")),
        add_effects=(("open", "?target"),),
        delete_effects=(("close", "?target"),),
        description="Pull a drawer or door open with the gripper, then let go of the handle.",
        instruction="open the {target}",
        gripper_after="open",
    ),
    Operator(
        name="close",
        params=(("target", "openable"),),
        preconditions=(("handempty",), ("open", "?target")),
        add_effects=(("close", "?target"),),
        delete_effects=(("open", "?target"),),
        description="Push an open drawer or door shut, then move the gripper away.",
        instruction="close the {target}",
        gripper_after="open",
    ),
    Operator(
        name="turn_on",
        params=(("target", "switchable"),),
        preconditions=(("handempty",), ("turnoff", "?target")),
        add_effects=(("turnon", "?target"),),
        delete_effects=(("turnoff", "?target"),),
        description="Turn the knob of an appliance such as a stove to switch it on.",
        instruction="turn on the {target}",
        gripper_after="open",
    ),
    Operator(
        name="turn_off",
        params=(("target", "switchable"),),
        preconditions=(("handempty",), ("turnon", "?target")),
        add_effects=(("turnoff", "?target"),),
        delete_effects=(("turnon", "?target"),),
        description="Turn the knob of an appliance such as a stove back to switch it off.",
        instruction="turn off the {target}",
        gripper_after="open",
    ),
    # NOTE: whether demonstrators close the gripper before pushing is not
    # recorded anywhere; "closed" assumes the usual closed-finger push.
    Operator(
        name="push",
        params=(("obj", "pushable"), ("target", "table_region")),
        preconditions=(("handempty",),),
        add_effects=(("on", "?obj", "?target"),),
        delete_effects=(("on", "?obj", "*"),),
        description="Slide an object along the table into a region without grasping it.",
        instruction="push the {obj} to the {target}",
        gripper_after="closed",
    ),
    Operator(
        name="stack",
        params=(("obj", "movable"), ("base", "movable")),
        preconditions=(("holding", "?obj"),),
        negative_preconditions=(("on", "*", "?base"),),
        add_effects=(("on", "?obj", "?base"), ("handempty",)),
        delete_effects=(("holding", "?obj"),),
        description="Set the held object down on top of another free object and release it.",
        instruction="stack the {obj} on the {base}",
        gripper_after="open",
    ),
)

OPERATORS: dict[str, Operator] = {op.name: op for op in _OPERATOR_LIST}

PARAM_TYPES = tuple(sorted({kind for op in _OPERATOR_LIST for _, kind in op.params}))


def describe_operators() -> str:
    """Return one line per operator, ``name(param: type, ...): description``.

    The text is meant for prompts that list the vocabulary to a language model.
    """
    lines = []
    for op in OPERATORS.values():
        params = ", ".join(f"{name}: {kind}" for name, kind in op.params)
        lines.append(f"{op.name}({params}): {op.description}")
    return "\n".join(lines)
