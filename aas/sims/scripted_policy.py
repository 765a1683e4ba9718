"""The scripted plan-driven controller wrapped as a ``Policy``.

It is the ceiling reference of an evaluation: it reads object poses from the
simulator (so it is privileged) and executes the task's symbolic plan with
the same skills that generate demos. Each call returns a chunk of one
action, because every action depends on the state the previous one left.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from aas.bddl import parse_bddl
from aas.planning import plan_for_scene
from aas.policies.base import Policy, PolicyConfig
from aas.schema import Plan
from aas.sims.skills import SKILLS, SkillFailure
from aas.sims.skills.base import DEFAULT_MOTION, make_action

logger = logging.getLogger(__name__)


class ScriptedPolicy(Policy):
    """Runs the symbolic plan of the attached environment's task with scripted skills."""

    name = "scripted"
    needs_images = False

    def __init__(self) -> None:
        self._env: Any = None
        self._plan: Plan | None = None
        self._actions: Iterator[np.ndarray] | None = None

    def attach(self, env: Any) -> None:
        self._env = env
        self._plan = plan_for_scene(parse_bddl(env.spec.bddl_path))

    def reset(self) -> None:
        self._actions = None

    def predict(self, obs: Mapping[str, Any], instruction: str) -> np.ndarray:
        if self._env is None or self._plan is None:
            raise RuntimeError("the scripted policy needs attach(env) before predict()")
        if self._actions is None:
            self._actions = self._run_plan()
        return np.asarray(next(self._actions), dtype=np.float32)[None, :]

    def _run_plan(self) -> Iterator[np.ndarray]:
        env = self._env
        gripper = -1.0
        for step in self._plan.steps:
            skill_cls = SKILLS.get(step.op)
            if skill_cls is None:
                logger.warning(
                    "%s: no scripted skill for %s; holding still", env.spec.name, step
                )
                break
            for _attempt in range(1 + skill_cls.retries):
                skill = skill_cls(step, DEFAULT_MOTION)
                try:
                    for used, action in enumerate(skill.act(env), start=1):
                        gripper = float(action[-1])
                        yield action
                        if used >= skill.max_steps:
                            raise SkillFailure(
                                f"{step} used its budget of {skill.max_steps} frames"
                            )
                    if skill.verify(env):
                        break
                except SkillFailure as exc:
                    logger.info(
                        "%s: scripted step %s failed: %s", env.spec.name, step, exc
                    )
        while True:
            yield make_action(gripper=gripper)


@PolicyConfig.register_subclass("scripted")
@dataclass
class ScriptedConfig(PolicyConfig):
    """The privileged scripted controller (a ceiling reference, not a learned policy)."""

    def build(self) -> Policy:
        return ScriptedPolicy()
