"""``aas eval``: evaluate a policy in LIBERO with the published protocol."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import aas.sims.scripted_policy  # registers the "scripted" policy
from aas.commands.common import prepare_output_dir, save_config
from aas.policies.base import NoopConfig, PolicyConfig
from aas.sims.evaluate import EvalSettings, PlannerChoice, evaluate
from aas.sims.workers import default_workers

logger = logging.getLogger(__name__)

try:  # the CLIP-RT+ policy registers itself when its package is importable
    import aas.policies.cliprt.eval_config  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installation
    logger.debug("CLIP-RT+ policy not available: %s", exc)


@dataclass
class Config:
    policy: PolicyConfig = field(default_factory=NoopConfig)
    eval: EvalSettings = field(default_factory=EvalSettings)
    # Planner-in-the-loop mode: "symbolic" or "llm"; empty runs the task instruction directly.
    planner: str = ""
    # LLM planner only: local model path; empty uses the bundled SmolLM2-135M-Instruct.
    planner_model: str = ""
    # Worker processes; 0 means one per CPU core.
    workers: int = 0
    # Directory for episodes.jsonl, eval_info.json, success.png and videos/.
    output_dir: str = "outputs/eval"
    # Continue an interrupted run in output_dir (finished episodes are kept).
    resume: bool = True
    # Delete the finished episodes in output_dir and start again.
    overwrite: bool = False


def run(cfg: Config) -> int:
    out = prepare_output_dir(cfg.output_dir, overwrite=cfg.overwrite, resume=cfg.resume)
    if cfg.overwrite:
        (out / "episodes.jsonl").unlink(missing_ok=True)
    save_config(cfg, out)
    planner = PlannerChoice(cfg.planner, cfg.planner_model) if cfg.planner else None
    info = evaluate(
        cfg.policy,
        cfg.eval,
        out,
        num_workers=cfg.workers or default_workers(),
        planner=planner,
    )
    logger.info(
        "eval: wrote %s/eval_info.json (%d episodes)", out, len(info["episodes"])
    )
    return 0
