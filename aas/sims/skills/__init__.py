"""Scripted skills, one per operator, registered in ``SKILLS`` by operator name.

Importing this package registers every skill module that exists: pick and
place skills, and articulated-object skills when their module is installed.
"""

from __future__ import annotations

import importlib
import logging

from aas.sims.skills.base import SKILLS, Skill, SkillFailure, register_skill

logger = logging.getLogger(__name__)

_SKILL_MODULES = ("aas.sims.skills.pick_place", "aas.sims.skills.articulated")

for _module in _SKILL_MODULES:
    try:
        importlib.import_module(_module)
    except ModuleNotFoundError as exc:
        if exc.name != _module:
            raise
        logger.debug("skill module %s is not available", _module)

__all__ = ["SKILLS", "Skill", "SkillFailure", "register_skill"]
