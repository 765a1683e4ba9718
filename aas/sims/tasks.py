"""The tasks of LIBERO's five suites, with their BDDL files and fixed init states.

Task order is LIBERO's default order (``task_order_index=0``), so task index
``i`` here is task ``i`` of ``libero.libero.benchmark.get_benchmark(suite)()``
and of every published evaluation. Init states are loaded without executing
arbitrary pickled code: only numpy array reconstruction is allowed.
"""

from __future__ import annotations

import codecs
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aas.sims.runtime import setup_libero

SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90")


@dataclass(frozen=True)
class TaskSpec:
    """One LIBERO task.

    Attributes:
        suite: suite name, such as ``libero_goal``.
        index: position of the task in the suite's default order.
        name: the BDDL file stem, such as ``put_the_bowl_on_the_plate``
            (LIBERO-10/90 names keep their scene prefix).
        language: the task's language instruction from its BDDL file.
        bddl_path: the installed BDDL file.
        init_states_path: the installed ``.pruned_init`` file.
    """

    suite: str
    index: int
    name: str
    language: str
    bddl_path: Path
    init_states_path: Path

    @property
    def init_states(self) -> np.ndarray:
        """LIBERO's fixed init states, ``[num_states, state_dim]`` float64 (50 per task)."""
        return load_init_states(self.init_states_path)

    @property
    def num_init_states(self) -> int:
        return int(self.init_states.shape[0])


def _task_names(suite: str) -> list[str]:
    _check_suite(suite)
    setup_libero(check_renderer=False)
    from libero.libero.benchmark.libero_suite_task_map import libero_task_map

    return list(libero_task_map[suite])


def _check_suite(suite: str) -> None:
    if suite not in SUITES:
        raise ValueError(
            f"unknown LIBERO suite {suite!r}; expected one of {list(SUITES)}"
        )


def list_tasks(suite: str) -> list[TaskSpec]:
    """Return every task of ``suite`` in LIBERO's default order."""
    return [get_task(suite, i) for i in range(len(_task_names(suite)))]


@functools.cache
def get_task(suite: str, task: int | str) -> TaskSpec:
    """Return one task by index in the suite or by name.

    A name may be the BDDL file stem (with or without ``.bddl``) or the
    language instruction, compared case-insensitively.

    Raises:
        ValueError: unknown suite, index out of range or unknown name; the
            message lists what is valid.
    """
    names = _task_names(suite)
    index = _task_index(suite, names, task)
    name = names[index]
    root = setup_libero(check_renderer=False).benchmark_root
    bddl_path = root / "bddl_files" / suite / f"{name}.bddl"
    init_path = root / "init_files" / suite / f"{name}.pruned_init"
    for path in (bddl_path, init_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing from the installed LIBERO package; reinstall it with "
                "`pip install --force-reinstall hf-libero==0.1.4`"
            )
    return TaskSpec(suite, index, name, _read_language(bddl_path), bddl_path, init_path)


def _task_index(suite: str, names: list[str], task: int | str) -> int:
    if isinstance(task, (int, np.integer)) or (
        isinstance(task, str) and task.isdigit()
    ):
        index = int(task)
        if not 0 <= index < len(names):
            raise ValueError(
                f"task index {index} is out of range for {suite}, which has "
                f"{len(names)} tasks (0..{len(names) - 1})"
            )
        return index

    wanted = task.strip().lower().removesuffix(".bddl")
    for i, name in enumerate(names):
        if wanted in (name.lower(), _language_of_name(name)):
            return i
    raise ValueError(f"no task named {task!r} in {suite}; tasks are {names}")


def _language_of_name(name: str) -> str:
    # LIBERO-10/90 names start with a scene prefix such as KITCHEN_SCENE3_.
    words = name.split("_")
    if name[:1].isupper():
        scene = next(i for i, w in enumerate(words) if w.startswith("SCENE"))
        words = words[scene + 1 :]
    return " ".join(words).lower()


def _read_language(bddl_path: Path) -> str:
    text = bddl_path.read_text(encoding="utf-8")
    marker = "(:language"
    start = text.find(marker)
    if start < 0:
        return _language_of_name(bddl_path.stem)
    end = text.find(")", start)
    return text[start + len(marker) : end].strip()


@functools.lru_cache(maxsize=64)
def load_init_states(path: str | Path) -> np.ndarray:
    """Load a LIBERO ``.pruned_init`` file (a torch-saved numpy array) safely.

    Returns:
        Init states ``[num_states, state_dim]`` as float64, read-only.

    Raises:
        ValueError: the file holds something other than a 2-D numpy array.
    """
    import torch
    from numpy._core.multiarray import _reconstruct

    # The files were pickled under numpy 1.x, whose module path was numpy.core.
    allowed = [
        (_reconstruct, "numpy.core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        type(np.dtype("float64")),
        codecs.encode,
    ]
    with torch.serialization.safe_globals(allowed):
        states = torch.load(path, weights_only=True)
    if not isinstance(states, np.ndarray) or states.ndim != 2:
        raise ValueError(
            f"{path}: expected a 2-D array of init states, got {type(states).__name__}"
        )
    states = np.asarray(states, dtype=np.float64)
    states.setflags(write=False)
    return states
