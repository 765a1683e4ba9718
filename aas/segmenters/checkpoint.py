"""Append-only record of finished demos, so an interrupted run resumes.

Each finished segmentation is appended as one JSON line and flushed to disk
at once. On resume, demos with a final record are returned as they are and
not sent again. Failures caused by the run rather than the model's answer
(spent budget, unreachable server) are not final, so a resumed run retries
them. A line cut short by an interrupt is skipped with a warning.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from aas.schema import Segmentation, dumps_line

logger = logging.getLogger(__name__)


def is_final(segmentation: Segmentation) -> bool:
    """Return whether a resumed run may keep ``segmentation`` instead of redoing it."""
    return segmentation.ok or not segmentation.provenance.extra.get("retryable", False)


class Checkpoint:
    """Finished segmentations of one run, stored as JSON Lines at ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Segmentation]:
        """Return the last final record of every demo key found in the file."""
        done: dict[str, Segmentation] = {}
        if not self.path.exists():
            return done
        with self.path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = Segmentation.from_dict(json.loads(line))
                except (ValueError, KeyError, TypeError) as exc:
                    logger.warning(
                        "%s:%d: skipping unreadable line (%s)", self.path, lineno, exc
                    )
                    continue
                if is_final(record):
                    done[record.demo_key] = record
                else:
                    done.pop(record.demo_key, None)
        return done

    def append(self, segmentation: Segmentation) -> None:
        """Append one record and flush it to disk before returning."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = dumps_line(segmentation.to_dict()) + "\n"
        with self.path.open("a+b") as f:
            # A line cut short by an interrupt must not swallow the next record.
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
            f.write(line.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
