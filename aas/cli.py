"""The ``aas`` command: ``aas <command> [--field=value ...] [--config_path=FILE]``.

Each command lives in ``aas.commands.<name>`` as a ``Config`` dataclass and a
``run(cfg) -> int`` function. The config is parsed with draccus, so every
field is a command-line flag (``--segmenter.type=gemini``), YAML files given
with ``--config_path`` set the same fields, and ``--help`` lists them.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading

import draccus
from draccus.utils import DecodingError, ParsingError

COMMANDS = {
    "demo": "generate, segment and validate a few demos of a default LIBERO task",
    "generate": "record scripted demos of LIBERO tasks into LIBERO HDF5 files",
    "segment": "split demos into atomic segments aligned to their plan",
    "validate": "check segmentations against the validation rules",
    "jitter": "measure segment stability under keyframe perturbation",
    "export": "write segments as GATE-VLAP tars, WebDataset shards or LeRobot v3",
    "push": "push an export to the Hugging Face Hub",
    "train": "train the CLIP-RT+ policy on atomic segments",
    "eval": "evaluate a policy in LIBERO with the published protocol",
    "plan": "plan a LIBERO task with the symbolic or the LLM planner",
    "report": "write a self-contained HTML report of a run directory",
    "pipeline": "run generate, segment, export, train and eval in one go",
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: aas <command> [--help] [--field=value ...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def _load(name: str):
    try:
        return importlib.import_module(f"aas.commands.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"aas.commands.{name}":
            return None
        raise


def _root_cause(exc: BaseException) -> str:
    # draccus wraps the ValueError of a config's __post_init__ in a ParsingError
    # whose own text only states that the class could not be built.
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    return str(exc)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that cleanup code (worker shutdown) runs."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    module = _load(name) if name in COMMANDS else None
    if module is None:
        print(
            f"aas: unknown or unavailable command {name!r}\n\n{_usage()}",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # A command may name one field that its first bare argument sets
    # (`aas report RUN_DIR` is `aas report --run_dir=RUN_DIR`).
    positional = getattr(module, "POSITIONAL", None)
    if positional and rest and not rest[0].startswith("-"):
        rest = [f"--{positional}={rest[0]}", *rest[1:]]
    try:
        cfg = draccus.parse(config_class=module.Config, args=rest, prog=f"aas {name}")
    except (ParsingError, DecodingError, FileNotFoundError, ValueError) as exc:
        if os.environ.get("AAS_DEBUG"):
            raise
        print(f"aas {name}: invalid configuration: {_root_cause(exc)}", file=sys.stderr)
        return 2
    # Without this, `kill PID` ends the parent at once and leaves rollout
    # workers running until their episode ends.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = (
        signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    )
    try:
        return int(module.run(cfg) or 0)
    except (OSError, ValueError, KeyError) as exc:
        # Bad input is reported in one line; AAS_DEBUG=1 shows the traceback.
        if os.environ.get("AAS_DEBUG"):
            raise
        print(f"aas {name}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(
            f"aas {name}: interrupted; rerun the same command to resume",
            file=sys.stderr,
        )
        return 128 + signal.SIGTERM if isinstance(exc, Terminated) else 130
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
