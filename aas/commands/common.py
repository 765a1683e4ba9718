"""Output-directory handling shared by every command."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import draccus

from aas.schema import write_atomic

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"


class OutputDirExistsError(FileExistsError):
    """The output directory holds results of another run."""


def prepare_output_dir(path: str | Path, overwrite: bool = False, resume: bool = True) -> Path:
    """Create ``path`` or reuse it.

    An existing non-empty directory is reused when ``resume`` is true (the
    command then skips finished work), emptied of nothing but written over
    when ``overwrite`` is true, and rejected otherwise.
    """
    out = Path(path)
    if out.exists() and any(out.iterdir()) and not (resume or overwrite):
        raise OutputDirExistsError(
            f"output directory {out} is not empty; pass --resume=true to continue "
            "the run there or --overwrite=true to write over it"
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_config(cfg: Any, out: Path) -> Path:
    """Write the resolved config of a command as YAML into its output directory."""
    target = out / CONFIG_FILE
    tmp = out / f".{CONFIG_FILE}.tmp"
    with tmp.open("w", encoding="utf-8") as f:
        draccus.dump(cfg, f)
    tmp.replace(target)
    return target


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=_default) + "\n")


def _default(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")
