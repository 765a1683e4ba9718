"""On-disk cache of model replies, keyed by the hash of the request.

A rerun of the same demos with the same prompt, keyframes, images, model
and settings reads every reply from here and sends nothing. Each entry is
one JSON file written atomically, so an interrupted run never leaves a
half-written entry. Entries hold the reply text, finish reason and usage
counts, never request headers or API keys.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from aas.schema import write_atomic
from aas.segmenters.response import Reply

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


class ReplyCache:
    """Replies stored as ``<root>/<hash[:2]>/<hash>.json``; ``root=None`` disables it."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root else None

    def _path(self, request_hash: str) -> Path:
        assert self.root is not None
        return self.root / request_hash[:2] / f"{request_hash}.json"

    def get(self, request_hash: str) -> Reply | None:
        """Return the cached reply for ``request_hash``, or None when absent or unreadable."""
        if self.root is None:
            return None
        path = self._path(request_hash)
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("cache_version") != CACHE_VERSION:
                return None
            return Reply.from_dict(data["reply"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring unreadable cache entry %s (%s)", path, exc)
            return None

    def put(self, request_hash: str, reply: Reply) -> None:
        """Store ``reply`` under ``request_hash``."""
        if self.root is None:
            return
        record = {"cache_version": CACHE_VERSION, "request_hash": request_hash}
        record["reply"] = reply.to_dict()
        write_atomic(self._path(request_hash), json.dumps(record, sort_keys=True))
