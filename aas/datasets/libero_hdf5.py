"""Read and write LIBERO demo files (HDF5).

Two layouts exist. LIBERO's original files keep the task metadata in the
attributes of the ``data`` group (``env_name``, ``problem_info`` JSON with the
``language_instruction``, ``bddl_file_name``, ``bddl_file_content``,
``env_args`` JSON, ``num_demos``, ``total``) and number demos ``demo_0`` ...
The re-rendered "no-noops" files have no ``data`` attributes and gaps in the
demo numbering, so their instruction comes from the file name
(``KITCHEN_SCENE3_turn_on_the_stove_demo.hdf5`` -> "turn on the stove").

Reading is lazy: ``open_demo_file`` reads only attributes and dataset shapes,
and each ``Demo`` reads array rows when first asked for them. Every read opens
the file again (read-only) instead of holding a handle, so a ``Demo`` can be
pickled into a worker process and several processes can read the same file.
Reopening costs about 2.4 ms per read (50 reads of a small ``actions``
dataset, 2-core x86_64 CPU), and ``Demo`` caches whole arrays.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from aas.demo import ACTIONS, REQUIRED_DATASETS, Demo
from aas.schema import default_file_mode

logger = logging.getLogger(__name__)

LAYOUT_ORIGINAL = "original"
LAYOUT_NO_NOOPS = "no_noops"
DEMO_FILE_SUFFIX = ".hdf5"
FPS = 20.0

_DEMO_NAME = re.compile(r"^demo_(\d+)$")
# LIBERO-10/90 file names start with a scene prefix that the instruction lacks.
_SCENE_PREFIX = re.compile(r"^[A-Z][A-Z0-9_]*?SCENE\d+_")


class DemoFileError(OSError):
    """A demo file cannot be opened or read; the message names the file."""


@dataclass(frozen=True)
class DemoError:
    """A problem with one demo (or one dataset of it) inside a file."""

    file: str
    demo: str
    dataset: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.demo}"
        if self.dataset:
            where += f":{self.dataset}"
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {
            "file": self.file,
            "demo": self.demo,
            "dataset": self.dataset,
            "message": self.message,
        }


@dataclass
class DemoFile:
    """Metadata of one demo file plus its demos (lazy) and per-demo problems.

    ``layout`` is ``"original"`` or ``"no_noops"``. ``problem_info`` and
    ``env_args`` are the decoded JSON attributes (empty for re-rendered
    files). ``errors`` lists demos that were left out of ``demos`` and why.
    """

    path: Path
    layout: str
    env_name: str = ""
    problem_info: dict[str, Any] = field(default_factory=dict)
    instruction: str = ""
    bddl_file_name: str = ""
    bddl_content: str = ""
    env_args: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    demos: list[Demo] = field(default_factory=list)
    errors: list[DemoError] = field(default_factory=list)

    @property
    def problem_name(self) -> str:
        return str(self.problem_info.get("problem_name", ""))

    def meta(self) -> dict[str, Any]:
        """Return the file-level metadata in the form ``write_demo_file`` takes."""
        meta = dict(self.attrs)
        meta.update(
            env_name=self.env_name,
            problem_info=self.problem_info,
            bddl_file_name=self.bddl_file_name,
            bddl_file_content=self.bddl_content,
            env_args=self.env_args,
        )
        return meta


class H5Loader:
    """Array loader of one demo group; picklable because it stores only paths.

    Called as ``loader(dataset, index)`` with ``index`` a slice or a sorted
    array of unique frame indices; returns the selected rows.
    """

    def __init__(self, path: str, group: str) -> None:
        self.path = path
        self.group = group

    def __call__(self, dataset: str, index: Any) -> np.ndarray:
        try:
            with h5py.File(self.path, "r") as f:
                data = f[f"{self.group}/{dataset}"]
                if isinstance(index, slice):
                    return np.asarray(data[index])
                return np.asarray(data[np.asarray(index, dtype=np.int64)])
        except (OSError, KeyError, ValueError) as exc:
            raise DemoFileError(
                f"{self.path}:{self.group.rsplit('/', 1)[-1]}:{dataset}: read failed "
                f"({exc}); the file may be corrupt, regenerate or re-download it"
            ) from exc


def instruction_from_file_name(path: str | os.PathLike) -> str:
    """Derive the task instruction from a LIBERO demo file name.

    ``KITCHEN_SCENE3_turn_on_the_stove_demo.hdf5`` -> ``"turn on the stove"``.
    """
    stem = Path(path).name.removesuffix(DEMO_FILE_SUFFIX).removesuffix("_demo")
    stem = _SCENE_PREFIX.sub("", stem)
    return stem.replace("_", " ").strip()


def bddl_name_from_file_name(path: str | os.PathLike) -> str:
    """Return the BDDL file name LIBERO uses for a demo file's task."""
    stem = Path(path).name.removesuffix(DEMO_FILE_SUFFIX).removesuffix("_demo")
    return f"{stem}.bddl"


def open_demo_file(path: str | os.PathLike) -> DemoFile:
    """Open a LIBERO demo file and list its demos without reading arrays.

    Demos are sorted by their number. A demo that lacks one of
    ``REQUIRED_DATASETS`` or whose datasets disagree in length is left out
    and recorded in ``DemoFile.errors``; the others still load.

    Raises:
        DemoFileError: the file is missing, truncated, not HDF5, or has no
            ``data`` group.
    """
    path = Path(path)
    try:
        handle = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise DemoFileError(
            f"{path}: cannot open as HDF5 ({exc}); the file is missing, truncated "
            "or not a LIBERO demo file, regenerate or re-download it"
        ) from exc
    with handle as f:
        if "data" not in f or not isinstance(f["data"], h5py.Group):
            raise DemoFileError(
                f"{path}: no 'data' group; this is not a LIBERO demo file"
            )
        data = f["data"]
        demo_file = _read_file_meta(path, data)
        for name in _sorted_demo_names(data):
            try:
                demo = _read_demo(demo_file, data[name], name)
            except (OSError, KeyError, ValueError, RuntimeError) as exc:
                demo_file.errors.append(
                    DemoError(str(path), name, "", f"unreadable demo group ({exc})")
                )
                continue
            if demo is not None:
                demo_file.demos.append(demo)
    for error in demo_file.errors:
        logger.warning("skipped demo: %s", error)
    logger.info(
        "opened %s (%s layout): %d demos, %d skipped",
        path,
        demo_file.layout,
        len(demo_file.demos),
        len(demo_file.errors),
    )
    return demo_file


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_attr(path: Path, attrs: h5py.AttributeManager, name: str) -> dict[str, Any]:
    if name not in attrs:
        return {}
    text = _decode(attrs[name])
    try:
        value = json.loads(text)
    except (TypeError, json.JSONDecodeError) as exc:
        raise DemoFileError(f"{path}: attribute data.{name} is not valid JSON ({exc})")
    return value if isinstance(value, dict) else {"value": value}


def _read_file_meta(path: Path, data: h5py.Group) -> DemoFile:
    attrs = data.attrs
    layout = LAYOUT_ORIGINAL if "problem_info" in attrs else LAYOUT_NO_NOOPS
    problem_info = _json_attr(path, attrs, "problem_info")
    instruction = problem_info.get("language_instruction", "")
    if isinstance(instruction, list):
        # LIBERO's own reader joins a list here (dataset_utils.get_dataset_info).
        instruction = "".join(str(part) for part in instruction)
    instruction = str(instruction).strip().strip('"')
    if not instruction:
        instruction = instruction_from_file_name(path)
    known = {
        "env_name",
        "problem_info",
        "bddl_file_name",
        "bddl_file_content",
        "env_args",
    }
    return DemoFile(
        path=path,
        layout=layout,
        env_name=str(_decode(attrs.get("env_name", ""))),
        problem_info=problem_info,
        instruction=instruction,
        bddl_file_name=str(_decode(attrs.get("bddl_file_name", "")))
        or bddl_name_from_file_name(path),
        bddl_content=str(_decode(attrs.get("bddl_file_content", ""))),
        env_args=_json_attr(path, attrs, "env_args"),
        attrs={k: _decode(v) for k, v in attrs.items() if k not in known},
    )


def _sorted_demo_names(data: h5py.Group) -> list[str]:
    numbered = []
    for name in data:
        match = _DEMO_NAME.match(name)
        if match:
            numbered.append((int(match.group(1)), name))
        else:
            logger.debug("ignoring non-demo entry data/%s", name)
    return [name for _, name in sorted(numbered)]


def _dataset_paths(group: h5py.Group) -> dict[str, tuple[int, ...]]:
    """Return ``{relative dataset path: shape}`` for every dataset in ``group``."""
    shapes: dict[str, tuple[int, ...]] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            shapes[name] = tuple(obj.shape)

    group.visititems(visit)
    return shapes


def _read_demo(demo_file: DemoFile, group: h5py.Group, name: str) -> Demo | None:
    file = str(demo_file.path)
    shapes = _dataset_paths(group)
    for required in REQUIRED_DATASETS:
        if required not in shapes:
            demo_file.errors.append(
                DemoError(file, name, required, "required dataset is missing")
            )
            return None

    num_frames = shapes[ACTIONS][0] if shapes[ACTIONS] else 0
    if num_frames == 0:
        demo_file.errors.append(DemoError(file, name, ACTIONS, "dataset has no frames"))
        return None
    for dataset, shape in sorted(shapes.items()):
        length = shape[0] if shape else None
        if length != num_frames:
            demo_file.errors.append(
                DemoError(
                    file,
                    name,
                    dataset,
                    f"has {length} frames but {ACTIONS} has {num_frames}",
                )
            )
            return None

    attrs = {k: _decode(v) for k, v in group.attrs.items()}
    declared = attrs.get("num_samples")
    if declared is not None and int(declared) != num_frames:
        demo_file.errors.append(
            DemoError(
                file,
                name,
                ACTIONS,
                f"attribute num_samples is {declared} but {ACTIONS} has {num_frames} frames",
            )
        )
        return None

    return Demo(
        demo_id=name,
        num_frames=int(num_frames),
        instruction=demo_file.instruction,
        source=file,
        bddl_file_name=demo_file.bddl_file_name,
        bddl_content=demo_file.bddl_content,
        env_name=demo_file.env_name,
        problem_name=demo_file.problem_name,
        fps=FPS,
        attrs=attrs,
        available=tuple(sorted(shapes)),
        loader=H5Loader(file, f"data/{name}"),
    )


def demo_file_paths(path: str | os.PathLike) -> list[Path]:
    """Return ``[path]`` for a file, or every ``*.hdf5`` below a folder, sorted.

    Inside a folder, hidden files and folders (names starting with ``.``, such
    as the generator's ``.parts/`` of unfinished runs) are left out.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such demo file or folder")
    if path.is_file():
        return [path]
    found = path.rglob(f"*{DEMO_FILE_SUFFIX}")
    return sorted(
        p
        for p in found
        if not any(part.startswith(".") for part in p.relative_to(path).parts)
    )


def iter_demo_files(path: str | os.PathLike) -> Iterator[DemoFile]:
    """Yield the demo file at ``path``, or every ``*.hdf5`` below a folder, sorted.

    Inside a folder, a file that cannot be opened is logged and skipped, so
    one bad file does not stop a batch. A single bad file given directly
    raises ``DemoFileError``.
    """
    paths = demo_file_paths(path)
    if Path(path).is_file():
        yield open_demo_file(paths[0])
        return
    for file in paths:
        try:
            yield open_demo_file(file)
        except DemoFileError as exc:
            logger.warning("skipped demo file: %s", exc)


def write_demo_file(
    path: str | os.PathLike,
    demos: Sequence[Demo],
    meta: dict[str, Any],
    compression: str | None = None,
    renumber: bool = False,
) -> Path:
    """Write demos in LIBERO's original layout, atomically.

    Args:
        path: target ``.hdf5`` file; written to a temporary file beside it and
            renamed, so an interrupted write leaves any previous file intact.
        demos: the demos; every dataset listed in ``Demo.available`` or held in
            ``Demo.arrays`` is written under ``data/<demo id>/``, and the demo
            attributes ``model_file`` and ``init_state`` are copied.
        meta: file attributes: ``env_name``, ``problem_info`` (dict),
            ``bddl_file_name``, ``bddl_file_content``, ``env_args`` (dict) and
            any extra scalar attribute such as ``macros_image_convention``.
            ``num_demos`` and ``total`` are computed.
        compression: ``"gzip"`` to compress datasets, ``None`` for none.
        renumber: name demos ``demo_0`` ... in order instead of keeping their
            ids.

    Raises:
        ValueError: a demo id is not ``demo_<number>`` or occurs twice.
    """
    path = Path(path)
    names = _output_demo_names(demos, renumber)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, default_file_mode())
    try:
        with h5py.File(tmp, "w") as f:
            data = f.create_group("data")
            _write_file_attrs(data, meta, demos)
            for name, demo in zip(names, demos):
                _write_demo(data.create_group(name), demo, compression)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    logger.info("wrote %d demos to %s", len(demos), path)
    return path


def _output_demo_names(demos: Sequence[Demo], renumber: bool) -> list[str]:
    if renumber:
        return [f"demo_{i}" for i in range(len(demos))]
    names = [demo.demo_id for demo in demos]
    for name in names:
        if not _DEMO_NAME.match(name):
            raise ValueError(
                f"demo id {name!r} is not of the form demo_<number>; "
                "pass renumber=True to name demos demo_0, demo_1, ..."
            )
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate demo ids in {names}; pass renumber=True")
    return names


def _write_file_attrs(
    data: h5py.Group, meta: dict[str, Any], demos: Sequence[Demo]
) -> None:
    for key, value in meta.items():
        if key in ("num_demos", "total"):
            continue
        if isinstance(value, (dict, list)):
            data.attrs[key] = json.dumps(value)
        elif value is not None:
            data.attrs[key] = value
    for key in ("env_name", "bddl_file_name", "bddl_file_content"):
        data.attrs.setdefault(key, "")
    for key in ("problem_info", "env_args"):
        data.attrs.setdefault(key, "{}")
    data.attrs["num_demos"] = len(demos)
    data.attrs["total"] = int(sum(demo.num_frames for demo in demos))


def _write_demo(group: h5py.Group, demo: Demo, compression: str | None) -> None:
    group.attrs["num_samples"] = demo.num_frames
    for key, value in demo.attrs.items():
        if key != "num_samples" and value is not None:
            group.attrs[key] = value
    names = sorted(set(demo.available) | set(demo.arrays))
    for name in names:
        group.create_dataset(name, data=demo.array(name), compression=compression)
