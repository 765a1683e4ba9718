"""``aas push``: send a LeRobot, GATE-VLAP or shard export to the Hugging Face Hub.

The dataset card (``README.md``) is generated from the export's
``export.json``. ``--dry_run=true`` logs every file with its size and the
card, and sends nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aas.datasets.hub import MissingTokenError, plan_push, push

logger = logging.getLogger(__name__)


@dataclass
class Config:
    # Output folder of `aas export` (contains export.json).
    export_dir: str = ""
    # Dataset repository on the Hub, as user/name or org/name.
    repo_id: str = ""
    # Create the repository as private.
    private: bool = False
    # List the files and the card without sending anything.
    dry_run: bool = False
    # License identifier written into the dataset card.
    license: str = "apache-2.0"

    def __post_init__(self) -> None:
        if self.repo_id and self.repo_id.count("/") != 1:
            raise ValueError(f"repo_id must look like user/name, got {self.repo_id!r}")


def run(cfg: Config) -> int:
    if not cfg.export_dir or not cfg.repo_id:
        logger.error("pass --export_dir=FOLDER and --repo_id=user/name")
        return 1
    try:
        plan = plan_push(cfg.export_dir, cfg.repo_id, cfg.private, cfg.license)
    except FileNotFoundError as exc:
        logger.error("%s", exc)
        return 1
    if cfg.dry_run:
        visibility = "private" if plan.private else "public"
        logger.info("dry run: would push to %s dataset %s:", visibility, plan.repo_id)
        for item in plan.files:
            logger.info("  %s (%d bytes)", item.path_in_repo, item.size)
        logger.info(
            "  README.md (%d bytes, generated card):\n%s",
            len(plan.card.encode()),
            plan.card,
        )
        if plan.tag:
            logger.info("  tag %s", plan.tag)
        logger.info(
            "dry run: %d files, %d bytes in all; nothing was sent",
            len(plan.files) + 1,
            plan.num_bytes,
        )
        return 0
    from huggingface_hub.errors import HfHubHTTPError

    try:
        push(plan)
    except (MissingTokenError, HfHubHTTPError) as exc:
        logger.error("push to %s failed: %s", plan.repo_id, exc)
        return 1
    return 0
