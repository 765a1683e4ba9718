"""LIBERO runtime setup, task lookup and the environment wrapper, on the real simulator."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from aas.sims.runtime import probe_renderer, setup_libero
from aas.sims.tasks import SUITES, get_task, list_tasks

CONFIG_KEYS = {"benchmark_root", "bddl_files", "init_states", "datasets", "assets"}


def _run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_setup_writes_config_without_stdin_prompt(tmp_path: Path) -> None:
    env = dict(os.environ, AAS_HOME=str(tmp_path / "aas_home"))
    env.pop("LIBERO_CONFIG_PATH", None)
    code = """
        from aas.sims.runtime import setup_libero
        runtime = setup_libero(check_renderer=False)
        import libero.libero
        print(runtime.config_dir)
        print(libero.libero.get_libero_path("bddl_files"))
    """
    result = _run_python(code, env)
    assert result.returncode == 0, result.stderr[-2000:]
    config_dir, bddl_dir = result.stdout.strip().splitlines()[-2:]
    config = yaml.safe_load((Path(config_dir) / "config.yaml").read_text())
    assert Path(config_dir) == tmp_path / "aas_home" / "libero"
    assert set(config) == CONFIG_KEYS
    assert Path(bddl_dir) == Path(config["bddl_files"])
    assert (Path(bddl_dir) / "libero_goal").is_dir()


def test_setup_rejects_incomplete_user_assets(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".cache" / "libero" / "assets" / "scenes").mkdir(parents=True)
    env = dict(os.environ, HOME=str(home), AAS_HOME=str(tmp_path / "aas_home"))
    code = """
        from aas.sims.runtime import LiberoSetupError, setup_libero
        try:
            setup_libero(check_renderer=False)
        except LiberoSetupError as exc:
            print("ERROR:", exc)
    """
    result = _run_python(code, env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ERROR:" in result.stdout
    assert "remove it" in result.stdout


def test_setup_is_idempotent() -> None:
    first = setup_libero()
    assert setup_libero() is first
    assert os.environ["LIBERO_CONFIG_PATH"] == str(first.config_dir)
    assert (first.assets_dir / "scenes").is_dir()


def test_probe_renderer_reports_unknown_backend() -> None:
    error = probe_renderer("no_such_backend")
    assert error is not None
    assert error != ""


def test_get_task_by_name_matches_index() -> None:
    by_name = get_task("libero_goal", "put_the_bowl_on_the_plate")
    by_index = get_task("libero_goal", by_name.index)
    assert by_name == by_index
    assert by_name.index == 8
    assert by_name.language.lower() == "put the bowl on the plate"
    assert by_name.init_states.shape[0] == 50


def test_list_tasks_covers_every_suite() -> None:
    counts = {suite: len(list_tasks(suite)) for suite in SUITES}
    assert counts == {
        "libero_spatial": 10,
        "libero_object": 10,
        "libero_goal": 10,
        "libero_10": 10,
        "libero_90": 90,
    }


def test_get_task_rejects_out_of_range_index() -> None:
    with pytest.raises(ValueError, match="out of range"):
        get_task("libero_goal", 10)


def test_get_task_rejects_unknown_suite() -> None:
    with pytest.raises(ValueError, match="unknown LIBERO suite"):
        get_task("libero_nope", 0)


def test_env_resets_to_init_state_and_renders() -> None:
    from aas.sims.env import make_env

    spec = get_task("libero_goal", "put_the_bowl_on_the_plate")
    env = make_env(spec, render=True, camera_size=64)
    try:
        obs = env.reset(3, settle_steps=0)
        assert np.allclose(env.get_sim_state(), spec.init_states[3])
        assert obs["agentview_image"].shape == (64, 64, 3)
        assert env.image("robot0_eye_in_hand").shape == (64, 64, 3)

        env.reset(3)
        state = env.get_sim_state()
        bowl = env.pose("akita_black_bowl_1").pos
        assert not env.check_success()
        assert env.goal_atoms() == [("on", "akita_black_bowl_1", "plate_1")]

        env.step(np.array([0.5, 0, 0, 0, 0, 0, -1.0]))
        env.set_sim_state(state)
        assert np.allclose(env.pose("akita_black_bowl_1").pos, bowl)
    finally:
        env.close()
    env.close()


@pytest.mark.slow
@pytest.mark.parametrize("suite", SUITES)
def test_env_builds_first_task_of_suite(suite: str) -> None:
    from aas.sims.env import make_env

    spec = get_task(suite, 0)
    with make_env(spec, render=False) as env:
        obs = env.reset(0)
        assert obs["robot0_eef_pos"].shape == (3,)
        assert len(env.object_names) > 0
        assert isinstance(env.check_success(), bool)
