"""Push an export to the Hugging Face Hub as a dataset repository.

``plan_push`` lists the files an export would send and builds its dataset
card; ``push`` sends them with ``huggingface_hub`` (``create_repo`` and one
``create_commit``). The token comes from ``huggingface_hub.get_token``:
the ``HF_TOKEN`` environment variable, else the token saved by
``hf auth login``. ``HF_ENDPOINT`` selects another Hub server.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from aas.datasets.card import dataset_card

logger = logging.getLogger(__name__)

RESULT_FILE = "export.json"
CARD_FILE = "README.md"
# LeRobot writes temporary per-frame PNG files under images/ while recording;
# its own push leaves them out too.
LEROBOT_SKIPPED = ("images",)


class MissingTokenError(RuntimeError):
    """No Hugging Face token was found."""


@dataclass(frozen=True)
class PushFile:
    """One file to send: its path in the repository, on disk, and its size in bytes."""

    path_in_repo: str
    local_path: Path
    size: int


@dataclass(frozen=True)
class PushPlan:
    """Everything a push sends: repository, visibility, files and the card text."""

    repo_id: str
    private: bool
    format: str
    files: tuple[PushFile, ...]
    card: str
    tag: str = ""

    @property
    def num_bytes(self) -> int:
        return sum(f.size for f in self.files) + len(self.card.encode())


def read_export(export_dir: str | Path) -> dict:
    """Read ``export.json`` of a finished export.

    Raises:
        FileNotFoundError: the folder contains no finished export.
    """
    path = Path(export_dir) / RESULT_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found; run `aas export` to completion first"
        )
    export = json.loads(path.read_text(encoding="utf-8"))
    if not export.get("complete"):
        raise FileNotFoundError(
            f"{path}: the export is unfinished; rerun `aas export --resume=true`"
        )
    return export


def _collect(root: Path, skipped: tuple[str, ...] = ()) -> list[PushFile]:
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        if relative.parts[0] in skipped or relative.as_posix() == CARD_FILE:
            continue
        files.append(PushFile(relative.as_posix(), path, path.stat().st_size))
    return files


def plan_push(
    export_dir: str | Path,
    repo_id: str,
    private: bool = False,
    license: str = "apache-2.0",
) -> PushPlan:
    """List the files of an export and build its card, without network access.

    GATE-VLAP and shard exports send their tars, ``manifest.json`` and
    ``export.json``; LeRobot exports send the dataset folder and get the tag
    of the dataset's codebase version, which ``LeRobotDataset`` looks up when
    it downloads. Hidden files (progress records) and ``config.yaml`` stay.
    """
    export_dir = Path(export_dir)
    export = read_export(export_dir)
    fmt = export["format"]
    tag = ""
    if fmt == "lerobot":
        root = export_dir / export.get("dataset_dir", "dataset")
        files = _collect(root, LEROBOT_SKIPPED)
        info = json.loads((root / "meta" / "info.json").read_text(encoding="utf-8"))
        tag = str(info.get("codebase_version", ""))
    else:
        files = [f for f in _collect(export_dir) if f.path_in_repo != "config.yaml"]
    if not files:
        raise FileNotFoundError(f"{export_dir}: the export contains no files to push")
    return PushPlan(
        repo_id, private, fmt, tuple(files), dataset_card(export, repo_id, license), tag
    )


def resolve_token(token: str | None = None) -> str:
    """Return ``token`` or the one ``huggingface_hub`` finds; raise if there is none."""
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise MissingTokenError(
            "no Hugging Face token found; set HF_TOKEN or run `hf auth login`, "
            "or use --dry_run=true to list what would be sent"
        )
    return token


def push(plan: PushPlan, token: str | None = None, endpoint: str | None = None) -> str:
    """Create the dataset repository if needed and commit every file and the card.

    Returns the commit URL. ``endpoint`` overrides ``HF_ENDPOINT``.

    NOTE: the tests cover huggingface_hub's legacy LFS transfer only
    (``HF_HUB_DISABLE_XET=1``). With ``hf_xet`` installed, large files go
    through the Xet protocol, which was not run against any server.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(endpoint=endpoint, token=resolve_token(token))
    logger.info(
        "pushing %d files (%.1f MiB) to dataset %s (%s)",
        len(plan.files),
        plan.num_bytes / 1024**2,
        plan.repo_id,
        "private" if plan.private else "public",
    )
    api.create_repo(
        plan.repo_id, repo_type="dataset", private=plan.private, exist_ok=True
    )
    operations = [
        CommitOperationAdd(f.path_in_repo, str(f.local_path)) for f in plan.files
    ]
    operations.append(CommitOperationAdd(CARD_FILE, plan.card.encode()))
    commit = api.create_commit(
        plan.repo_id,
        operations,
        commit_message=f"Upload {plan.format} export with aas",
        repo_type="dataset",
    )
    if plan.tag:
        api.create_tag(plan.repo_id, tag=plan.tag, repo_type="dataset", exist_ok=True)
    logger.info("pushed %s", commit.commit_url)
    return commit.commit_url
