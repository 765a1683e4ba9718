"""Symbolic planning over the operator vocabulary for LIBERO BDDL scenes.

``plan_for_scene(scene)`` searches for a minimal plan, ``check_plan`` executes
one symbolically and reports the first failing precondition, and
``step_goals`` returns the goal atoms that each step serves.
"""

from aas.planning.affordances import door_of, entity_types
from aas.planning.check import PlanCheck, check_plan, describe_check, step_goals
from aas.planning.domain import (
    Domain,
    PlanError,
    State,
    apply_effects,
    apply_step,
    format_atom,
    goal_satisfied,
    initial_state,
    instruction_for,
    observable_effects,
    step_effects,
    unmet_goals,
)
from aas.planning.search import (
    PlanningError,
    SearchResult,
    applicable_steps,
    plan_for_scene,
    search,
    search_steps,
)

__all__ = [
    "Domain",
    "PlanCheck",
    "PlanError",
    "PlanningError",
    "SearchResult",
    "State",
    "applicable_steps",
    "apply_effects",
    "apply_step",
    "check_plan",
    "describe_check",
    "door_of",
    "entity_types",
    "format_atom",
    "goal_satisfied",
    "initial_state",
    "instruction_for",
    "observable_effects",
    "plan_for_scene",
    "search",
    "search_steps",
    "step_effects",
    "step_goals",
    "unmet_goals",
]
