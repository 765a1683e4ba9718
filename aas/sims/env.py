"""A LIBERO task environment with init-state resets, poses and sim-state access.

``make_env`` builds LIBERO's own environment classes (``OffScreenRenderEnv``
when rendering, ``ControlEnv`` without any renderer otherwise), so physics,
controller and success checks are LIBERO's. Actions are 7-D: delta end-effector
position and axis-angle rotation in [-1, 1] for robosuite's ``OSC_POSE``
controller, then the gripper command (-1 open, +1 close), at 20 Hz.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from aas.sims.runtime import setup_libero
from aas.sims.tasks import TaskSpec

logger = logging.getLogger(__name__)

DEFAULT_CAMERAS = ("agentview", "robot0_eye_in_hand")
DEFAULT_CAMERA_SIZE = 128
CONTROL_FREQ_HZ = 20
# The evaluation protocol of OpenVLA, OpenVLA-OFT and CLIP-RT+: after setting
# an init state, 10 steps with the gripper open let the objects settle.
SETTLE_STEPS = 10
SETTLE_ACTION = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0])
ACTION_DIM = 7


@dataclass(frozen=True)
class Pose:
    """A world-frame pose: ``pos`` [3] in metres, ``quat`` [4] as (x, y, z, w)."""

    pos: np.ndarray
    quat: np.ndarray

    @property
    def rotation(self) -> np.ndarray:
        """Rotation matrix [3, 3]."""
        import robosuite.utils.transform_utils as T

        return T.quat2mat(self.quat)


class LiberoEnv:
    """One LIBERO task environment.

    Args:
        spec: the task.
        render: build an off-screen renderer and return camera images.
        camera_names: robosuite camera names rendered when ``render`` is true.
        camera_size: image height and width in pixels.
        horizon: steps after which robosuite reports done (frames).
        hard_reset: rebuild the MuJoCo model on every ``reset`` (slow, as in
            LIBERO's evaluation scripts); False reuses it.
        seed: random seed passed to the environment.
    """

    def __init__(
        self,
        spec: TaskSpec,
        render: bool = True,
        camera_names: Sequence[str] = DEFAULT_CAMERAS,
        camera_size: int = DEFAULT_CAMERA_SIZE,
        horizon: int = 1000,
        hard_reset: bool = False,
        seed: int = 0,
    ) -> None:
        setup_libero(check_renderer=render)
        from libero.libero.envs.env_wrapper import ControlEnv, OffScreenRenderEnv

        self.spec = spec
        self.render = render
        self.camera_names = tuple(camera_names) if render else ()
        self.camera_size = int(camera_size)
        kwargs: dict[str, Any] = {
            "bddl_file_name": str(spec.bddl_path),
            "horizon": horizon,
            "hard_reset": hard_reset,
            "control_freq": CONTROL_FREQ_HZ,
            "ignore_done": True,
        }
        if render:
            self._env = OffScreenRenderEnv(
                camera_names=list(self.camera_names),
                camera_heights=self.camera_size,
                camera_widths=self.camera_size,
                **kwargs,
            )
        else:
            self._env = ControlEnv(
                has_renderer=False,
                has_offscreen_renderer=False,
                use_camera_obs=False,
                **kwargs,
            )
        self._env.seed(seed)
        self._closed = False
        self._obs: dict[str, Any] | None = None
        logger.info(
            "created %s task %d (%s), render=%s",
            spec.suite,
            spec.index,
            spec.name,
            render,
        )

    @property
    def inner(self) -> Any:
        """LIBERO's problem environment (``objects_dict``, ``parsed_problem``...)."""
        return self._env.env

    @property
    def sim(self) -> Any:
        return self._env.env.sim

    @property
    def robot(self) -> Any:
        return self._env.env.robots[0]

    @property
    def obs(self) -> dict[str, Any]:
        """The latest observation dict."""
        if self._obs is None:
            raise RuntimeError("call reset() before reading observations")
        return self._obs

    # Episode control.

    def reset(
        self,
        init_state: int | np.ndarray | None = None,
        settle_steps: int = SETTLE_STEPS,
    ) -> dict[str, Any]:
        """Reset, optionally to a fixed init state, then let objects settle.

        Args:
            init_state: index into the task's fixed init states, a flattened
                MuJoCo state vector, or None for LIBERO's random placement.
            settle_steps: steps with a zero motion and an open gripper.

        Returns:
            The observation after settling.
        """
        self._obs = self._env.reset()
        if init_state is not None:
            state = self._init_state_vector(init_state)
            self._obs = self._env.set_init_state(state)
        for _ in range(settle_steps):
            self._obs, _, _, _ = self._env.step(SETTLE_ACTION)
        return self._obs

    def _init_state_vector(self, init_state: int | np.ndarray) -> np.ndarray:
        if isinstance(init_state, (int, np.integer)):
            states = self.spec.init_states
            if not 0 <= int(init_state) < len(states):
                raise ValueError(
                    f"init state {init_state} is out of range for {self.spec.suite} task "
                    f"{self.spec.index}, which has {len(states)} (0..{len(states) - 1})"
                )
            return np.array(states[int(init_state)])
        return np.asarray(init_state, dtype=np.float64)

    def step(self, action: Sequence[float]) -> tuple[dict[str, Any], float, bool, dict]:
        """Apply one 7-D action for one control step (1/20 s).

        Returns:
            (obs, reward, done, info) where ``done`` is true once the BDDL goal holds.
        """
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (ACTION_DIM,):
            raise ValueError(
                f"action must have shape ({ACTION_DIM},), got {action.shape}"
            )
        self._obs, reward, done, info = self._env.step(np.clip(action, -1.0, 1.0))
        return self._obs, float(reward), bool(done), info

    def check_success(self) -> bool:
        """Evaluate the task's BDDL goal in the current state."""
        return bool(self._env.check_success())

    def eval_atom(self, atom: Sequence[str]) -> bool:
        """Evaluate one BDDL atom such as ``("on", "akita_black_bowl_1", "plate_1")`` now.

        Raises:
            KeyError: the predicate or an argument is unknown to this task.
        """
        predicate, *args = [str(a).lower() for a in atom]
        for name in args:
            if name not in self.inner.object_states_dict:
                raise KeyError(
                    f"{name!r} in atom {tuple(atom)} is not an object, fixture or region of {self.spec.name}"
                )
        return bool(self.inner._eval_predicate([predicate, *args]))

    def goal_atoms(self) -> list[tuple[str, ...]]:
        """The task's BDDL goal as lower-case atoms."""
        return [
            tuple(str(a).lower() for a in atom)
            for atom in self.inner.parsed_problem["goal_state"]
        ]

    def get_sim_state(self) -> np.ndarray:
        """Flattened MuJoCo state [state_dim], as stored in init-state files and demos."""
        return np.array(self._env.get_sim_state())

    def set_sim_state(self, state: np.ndarray) -> dict[str, Any]:
        """Set a flattened MuJoCo state and return the observation it produces."""
        self._obs = self._env.regenerate_obs_from_state(
            np.asarray(state, dtype=np.float64)
        )
        return self._obs

    def close(self) -> None:
        """Free the simulator and the off-screen renderer; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        self._env.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Scene queries.

    @property
    def object_names(self) -> list[str]:
        """Movable objects of the task."""
        return list(self.inner.objects_dict)

    @property
    def fixture_names(self) -> list[str]:
        return list(self.inner.fixtures_dict)

    @property
    def site_names(self) -> list[str]:
        """BDDL regions that exist as MuJoCo sites (``plate_1_...``, ``..._top_region``)."""
        return list(self.inner.object_sites_dict)

    def pose(self, name: str) -> Pose:
        """Return the world pose of an object, fixture or region site.

        Raises:
            KeyError: ``name`` is none of them; the message lists the valid names.
        """
        inner = self.inner
        if name in inner.obj_body_id:
            body = inner.obj_body_id[name]
            wxyz = np.array(self.sim.data.body_xquat[body])
            return Pose(np.array(self.sim.data.body_xpos[body]), _xyzw(wxyz))
        if name in inner.object_sites_dict:
            import robosuite.utils.transform_utils as T

            pos = np.array(self.sim.data.get_site_xpos(name))
            quat = T.mat2quat(np.array(self.sim.data.get_site_xmat(name)))
            return Pose(pos, quat)
        raise KeyError(
            f"{name!r} is not an object, fixture or site of {self.spec.name}; known: "
            f"{self.object_names + self.fixture_names + self.site_names}"
        )

    def site(self, name: str) -> Any:
        """LIBERO's site object for a region (with ``size`` and ``in_box``)."""
        return self.inner.object_sites_dict[name]

    def object_state(self, name: str) -> Any:
        """LIBERO's object state (``is_open``, ``turn_on``, ``check_contain``...)."""
        return self.inner.object_states_dict[name]

    def model_object(self, name: str) -> Any:
        """The robosuite model object of an object, fixture or site."""
        return self.inner.get_object(name)

    def joint_qpos(self, name: str) -> list[float]:
        """Positions of the joints of an articulated object (radians or metres)."""
        return [float(q) for q in self.object_state(name).get_joint_state()]

    def is_grasped(self, name: str) -> bool:
        """Return whether both gripper fingers touch the object."""
        inner = self.inner
        return bool(
            inner._check_grasp(
                gripper=self.robot.gripper, object_geoms=inner.get_object(name)
            )
        )

    def bounding_box(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """World-frame axis-aligned box (low [3], high [3], metres) of an object's collision geoms."""
        corners = self.collision_corners(name)
        return corners.min(axis=0), corners.max(axis=0)

    def local_extents(self, name: str) -> np.ndarray:
        """Size [3] (metres) of an object's collision geoms along its own body axes."""
        pose = self.pose(name)
        local = (self.collision_corners(name) - pose.pos) @ pose.rotation
        return local.max(axis=0) - local.min(axis=0)

    def collision_corners(self, name: str) -> np.ndarray:
        """Corners [8 * geoms, 3] (metres, world frame) of the boxes around an object's collision geoms."""
        model = self.sim.model
        data = self.sim.data
        geoms = [model.geom_name2id(g) for g in self.model_object(name).contact_geoms]
        if not geoms:
            raise ValueError(f"{name!r} has no collision geoms")
        signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
        corners = []
        for geom in geoms:
            # geom_aabb stores the box centre [3] and half sizes [3] in the geom frame.
            centre, half = (
                model._model.geom_aabb[geom][:3],
                model._model.geom_aabb[geom][3:],
            )
            rotation = np.array(data.geom_xmat[geom]).reshape(3, 3)
            local = centre + signs * half
            corners.append(np.array(data.geom_xpos[geom]) + local @ rotation.T)
        return np.concatenate(corners)

    def eef_pose(self) -> Pose:
        """End-effector (grip site) pose in the world frame."""
        obs = self.obs
        return Pose(np.array(obs["robot0_eef_pos"]), np.array(obs["robot0_eef_quat"]))

    def gripper_qpos(self) -> np.ndarray:
        """Finger joint positions [2] in metres (about +-0.04 when fully open)."""
        return np.array(self.obs["robot0_gripper_qpos"])

    def image(self, camera: str) -> np.ndarray:
        """Return the latest image of ``camera`` [H, W, 3] uint8 as rendered (upside down)."""
        key = f"{camera}_image"
        if key not in self.obs:
            raise KeyError(
                f"no image for camera {camera!r}; rendered cameras: {list(self.camera_names)}"
            )
        return self.obs[key]


def _xyzw(wxyz: np.ndarray) -> np.ndarray:
    return np.array([wxyz[1], wxyz[2], wxyz[3], wxyz[0]])


def make_env(
    spec: TaskSpec,
    render: bool = True,
    camera_names: Sequence[str] = DEFAULT_CAMERAS,
    camera_size: int = DEFAULT_CAMERA_SIZE,
    **kwargs: Any,
) -> LiberoEnv:
    """Build the environment of one task; see ``LiberoEnv`` for the arguments."""
    return LiberoEnv(
        spec,
        render=render,
        camera_names=camera_names,
        camera_size=camera_size,
        **kwargs,
    )
