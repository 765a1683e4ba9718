"""``aas export``: write segmented demos as GATE-VLAP tars, training shards or LeRobot v3.

Reads demo files and segmentations and checks that every segmentation matches
its demo (action digest and length). Failed segmentations are left out, and
so are those that failed validation unless ``--include_invalid=true``. The
chosen format is written into ``--output_dir`` together with ``config.yaml``
and ``export.json`` (counts, left-out demos, validation pass rate, segmenters).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aas.commands.common import (
    OutputDirExistsError,
    prepare_output_dir,
    save_config,
    write_json,
)
from aas.datasets.atomic_tar import remove_partials
from aas.datasets.gatevlap import export_gatevlap
from aas.datasets.shards import ResumeMismatchError, ShardLimits, export_shards
from aas.datasets.sources import (
    PairingStats,
    SegmentationMismatchError,
    SegmentedDemo,
    check_matches,
    load_segmentations,
    load_validation,
    pair_demos,
)
from aas.demo import Demo
from aas.schema import content_hash

logger = logging.getLogger(__name__)

FORMATS = ("gatevlap", "webdataset", "lerobot")
RESULT_FILE = "export.json"
LEROBOT_DIR = "dataset"


@dataclass
class Config:
    # Demo file (.hdf5) or folder searched recursively for *.hdf5.
    demos: str = ""
    # Segmentation JSON Lines file, or folder searched for *.jsonl.
    segmentations: str = ""
    # Output format: gatevlap (one tar per subtask), webdataset (training
    # shards) or lerobot (LeRobot dataset v3).
    format: str = "gatevlap"
    # Folder the export is written to.
    output_dir: str = "outputs/export"
    # validation.json written by `aas validate`; empty: run the validation
    # rules on segmentations that carry their plan.
    validation: str = ""
    # Export segmentations that failed validation too.
    include_invalid: bool = False
    # Suite name for demo files outside a folder named libero_*.
    suite: str = "libero"
    # Delete a previous export in output_dir and start again.
    overwrite: bool = False
    # Continue an interrupted export in output_dir, skipping finished tars.
    resume: bool = False
    # webdataset: maximum size of one shard, in MiB.
    max_shard_mb: float = 512.0
    # webdataset: maximum number of samples (frames) in one shard.
    max_shard_samples: int = 10_000
    # webdataset: zlib level of the PNG images, 0 (uncompressed, fastest to
    # read) to 9 (smallest).
    png_level: int = 1
    # lerobot: dataset repository id stored in the dataset (user/name).
    repo_id: str = "aas/libero-atomic"
    # lerobot: store camera images as AV1 videos instead of PNG images.
    use_videos: bool = False

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(
                f"format must be one of {', '.join(FORMATS)}, got {self.format!r}"
            )
        if not 0 <= self.png_level <= 9:
            raise ValueError(f"png_level must be in 0..9, got {self.png_level}")
        if self.max_shard_mb <= 0 or self.max_shard_samples <= 0:
            raise ValueError("max_shard_mb and max_shard_samples must be positive")


def iter_demos(path: str | Path) -> Iterator[Demo]:
    """Yield the demos of a file or folder in path order, logging unreadable demos.

    The file's image convention is copied into each demo's attributes so the
    exports know whether to flip images.
    """
    from aas.datasets.libero_hdf5 import iter_demo_files

    for demo_file in iter_demo_files(path):
        for error in demo_file.errors:
            logger.warning("skipped demo: %s", error)
        convention = demo_file.attrs.get("macros_image_convention")
        for demo in demo_file.demos:
            if convention is not None:
                demo.attrs.setdefault("macros_image_convention", convention)
            yield demo


def segmentation_files(path: str | Path) -> list[Path]:
    """Return the segmentation file at ``path`` or the *.jsonl files below it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no such segmentation file or folder; run `aas segment`"
        )
    return [path] if path.is_file() else sorted(path.rglob("*.jsonl"))


def _clean_previous(out: Path) -> None:
    """Delete what an earlier export wrote into ``out``."""
    for name in (
        RESULT_FILE,
        "manifest.json",
        ".shards_progress.json",
        ".gatevlap_progress.json",
    ):
        (out / name).unlink(missing_ok=True)
    for shard in out.glob("shard-*.tar"):
        shard.unlink()
    for tar in out.glob("*/*.tar"):
        tar.unlink()
    if (out / LEROBOT_DIR).exists():
        shutil.rmtree(out / LEROBOT_DIR)
    remove_partials(out)


def _finished(out: Path, fmt: str) -> bool:
    path = out / RESULT_FILE
    if not path.exists():
        return False
    result = json.loads(path.read_text(encoding="utf-8"))
    return bool(result.get("complete")) and result.get("format") == fmt


def _record(
    items: Iterable[SegmentedDemo], suites: set, segmenters: set
) -> Iterator[SegmentedDemo]:
    for item in items:
        suites.add(item.suite)
        provenance = item.segmentation.provenance
        segmenters.add(f"{provenance.segmenter} {provenance.version}".strip())
        yield item


def run(cfg: Config) -> int:
    try:
        return _run(cfg)
    except (
        OutputDirExistsError,
        SegmentationMismatchError,
        ResumeMismatchError,
        FileNotFoundError,
    ) as exc:
        logger.error("%s", exc)
        return 1


def _run(cfg: Config) -> int:
    if not cfg.demos or not cfg.segmentations:
        raise FileNotFoundError(
            "pass --demos=FILE_OR_FOLDER and --segmentations=FILE_OR_FOLDER"
        )
    out = prepare_output_dir(cfg.output_dir, overwrite=cfg.overwrite, resume=cfg.resume)
    if cfg.overwrite:
        _clean_previous(out)
    elif cfg.resume and _finished(out, cfg.format):
        logger.info(
            "%s already contains a finished %s export; nothing to do", out, cfg.format
        )
        return 0
    (out / RESULT_FILE).unlink(missing_ok=True)
    save_config(cfg, out)

    paths = segmentation_files(cfg.segmentations)
    segmentations = load_segmentations(paths)
    verdicts = load_validation(cfg.validation) if cfg.validation else None
    logger.info(
        "exporting %d segmentations as %s to %s", len(segmentations), cfg.format, out
    )
    check_matches(lambda: iter_demos(cfg.demos), segmentations)

    stats, suites, segmenters = PairingStats(), set(), set()
    paired = pair_demos(
        iter_demos(cfg.demos),
        segmentations,
        verdicts,
        include_invalid=cfg.include_invalid,
        default_suite=cfg.suite,
        stats=stats,
    )
    result = _export(cfg, out, _record(paired, suites, segmenters), paths)

    result.update(
        complete=True,
        pairing=stats.to_dict(),
        validation_pass_rate=stats.validation_pass_rate,
        suites=sorted(suites),
        segmenters=sorted(segmenters),
        include_invalid=cfg.include_invalid,
    )
    write_json(out / RESULT_FILE, result)
    logger.info(
        "exported %d segments (%d frames) from %d demos; left out %d invalid, %d failed",
        result["counts"]["segments"],
        result["counts"]["frames"],
        len(stats.exported),
        len(stats.invalid_excluded),
        len(stats.failed_segmentations),
    )
    if result["counts"]["segments"] == 0:
        logger.error("export: no segment was exported; check the demo and segmentation inputs above")
        return 1
    return 0


def _export(
    cfg: Config, out: Path, items: Iterable[SegmentedDemo], paths: list[Path]
) -> dict[str, Any]:
    """Write ``items`` in the configured format; return the format and counts."""
    result: dict[str, Any] = {"format": cfg.format}
    if cfg.format == "gatevlap":
        result["counts"] = export_gatevlap(items, out, resume=cfg.resume).to_dict()
    elif cfg.format == "webdataset":
        limits = ShardLimits(int(cfg.max_shard_mb * 1024**2), cfg.max_shard_samples)
        fingerprint = content_hash(
            *(p.read_bytes() for p in paths),
            Path(cfg.validation).read_bytes() if cfg.validation else b"",
            str(cfg.include_invalid),
            str(limits),
            str(cfg.png_level),
        )
        manifest = export_shards(
            items,
            out,
            limits,
            resume=cfg.resume,
            fingerprint=fingerprint,
            png_level=cfg.png_level,
        )
        result["counts"] = {
            "frames": manifest["num_samples"],
            "segments": sum(manifest["ops"].values()),
            "ops": manifest["ops"],
            "files": [shard["name"] for shard in manifest["shards"]]
            + ["manifest.json"],
        }
    else:
        result.update(_export_lerobot(cfg, out, items))
    return result


def _export_lerobot(
    cfg: Config, out: Path, items: Iterable[SegmentedDemo]
) -> dict[str, Any]:
    from aas.datasets.lerobot_export import export_lerobot

    root = out / LEROBOT_DIR
    if root.exists():
        # NOTE: LeRobot exports restart instead of resuming, because a dataset
        # left unfinalised by a killed process has parquet files without footers.
        raise OutputDirExistsError(
            f"{root} contains an unfinished LeRobot export; pass --overwrite=true to start again"
        )
    counts = export_lerobot(items, root, cfg.repo_id, use_videos=cfg.use_videos)
    return {
        "counts": counts.to_dict(),
        "repo_id": cfg.repo_id,
        "dataset_dir": LEROBOT_DIR,
    }
