"""The skill interface and the motion primitives every scripted skill shares.

A skill executes one plan step (``Step(op, args)``) in a ``LiberoEnv``. Its
``act(env)`` is a generator that yields one 7-D action at a time; the
controller applies each action with ``env.step`` before asking for the next,
so the skill reads fresh poses from ``env`` after every yield (closed loop).
A skill raises ``SkillFailure`` when it cannot finish, and ``verify(env)``
checks its effect afterwards.

Actions follow robosuite 1.4's ``OSC_POSE`` controller in delta mode: entries
0-2 move the goal position by ``action * 0.05`` m, entries 3-5 rotate the goal
orientation by ``action * 0.5`` rad (axis-angle, world frame), entry 6 is the
gripper (-1 open, +1 close). Those scales are ``output_max`` of
``robosuite/controllers/config/osc_pose.json``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from aas.schema import Step
from aas.sims.env import LiberoEnv

logger = logging.getLogger(__name__)

POSITION_SCALE_M = 0.05
ROTATION_SCALE_RAD = 0.5
# Position error (metres) below which the servo integrates, and the bound
# (metre-frames) on each entry of the integrated error.
INTEGRAL_ZONE_M = 0.03
INTEGRAL_LIMIT_M = 0.3
GRIPPER_OPEN = -1.0
GRIPPER_CLOSED = 1.0

Action = np.ndarray
ActionStream = Iterator[Action]


class SkillFailure(RuntimeError):
    """A skill could not reach its goal; the message names the step and why."""


@dataclass(frozen=True)
class MotionConfig:
    """Gains and tolerances of the closed-loop motion primitives.

    Attributes:
        position_gain: action per metre of position error, before clipping
            (10 means a 0.1 m error saturates the action).
        integral_gain: action per metre-frame of accumulated position error.
        rotation_gain: action per radian of orientation error.
        max_speed: largest translation action entry, in [0, 1].
        position_tolerance_m: distance at which a move counts as arrived.
        rotation_tolerance_rad: orientation error at which a move counts as arrived.
        move_steps: step budget of one move (frames at 20 Hz).
        gripper_steps: frames spent opening or closing the gripper.
    """

    position_gain: float = 14.0
    integral_gain: float = 1.0
    rotation_gain: float = 2.0
    max_speed: float = 1.0
    position_tolerance_m: float = 0.008
    rotation_tolerance_rad: float = 0.08
    move_steps: int = 80
    gripper_steps: int = 12


DEFAULT_MOTION = MotionConfig()


def make_action(
    translation: np.ndarray | None = None,
    rotation: np.ndarray | None = None,
    gripper: float = GRIPPER_OPEN,
) -> Action:
    """Build a 7-D action from translation [3], rotation [3] (action units) and gripper."""
    action = np.zeros(7)
    if translation is not None:
        action[:3] = translation
    if rotation is not None:
        action[3:6] = rotation
    action[6] = gripper
    return np.clip(action, -1.0, 1.0)


def rotation_error(current_quat: np.ndarray, target_quat: np.ndarray) -> np.ndarray:
    """Axis-angle [3] (radians, world frame) that rotates ``current`` onto ``target``.

    Both quaternions are (x, y, z, w).
    """
    import robosuite.utils.transform_utils as T

    error = T.quat_multiply(target_quat, T.quat_inverse(current_quat))
    if error[3] < 0:
        error = -error
    return T.quat2axisangle(error)


def yaw_quat(base_quat: np.ndarray, yaw_rad: float) -> np.ndarray:
    """Rotate ``base_quat`` (x, y, z, w) by ``yaw_rad`` about the world z axis."""
    import robosuite.utils.transform_utils as T

    half = yaw_rad / 2.0
    yaw = np.array([0.0, 0.0, np.sin(half), np.cos(half)])
    return T.quat_multiply(yaw, base_quat)


def servo_action(
    env: LiberoEnv,
    target_pos: np.ndarray,
    target_quat: np.ndarray | None,
    gripper: float,
    motion: MotionConfig = DEFAULT_MOTION,
    integral: np.ndarray | None = None,
) -> Action:
    """Return one proportional(-integral) step toward a pose.

    Args:
        integral: running sum [3] of past position errors (metre-frames),
            updated in place. The integral term removes the steady offset
            that a held object's weight leaves under the delta controller.
    """
    eef = env.eef_pose()
    error = np.asarray(target_pos) - eef.pos
    command = error * motion.position_gain
    if integral is not None:
        # Integrate only near the target and clamp the sum, so that a long
        # move does not wind up the integral and overshoot into joint limits.
        if np.linalg.norm(error) < INTEGRAL_ZONE_M:
            integral += error
        np.clip(integral, -INTEGRAL_LIMIT_M, INTEGRAL_LIMIT_M, out=integral)
        command = command + integral * motion.integral_gain
    translation = np.clip(command, -motion.max_speed, motion.max_speed)
    rotation = None
    if target_quat is not None:
        rotation = rotation_error(eef.quat, target_quat) * motion.rotation_gain
    return make_action(translation, rotation, gripper)


def at_pose(
    env: LiberoEnv,
    target_pos: np.ndarray,
    target_quat: np.ndarray | None,
    position_tolerance_m: float,
    rotation_tolerance_rad: float,
) -> bool:
    eef = env.eef_pose()
    if np.linalg.norm(np.asarray(target_pos) - eef.pos) > position_tolerance_m:
        return False
    if target_quat is None:
        return True
    return (
        float(np.linalg.norm(rotation_error(eef.quat, target_quat)))
        <= rotation_tolerance_rad
    )


def move_to(
    env: LiberoEnv,
    target_pos: np.ndarray,
    target_quat: np.ndarray | None = None,
    gripper: float = GRIPPER_OPEN,
    motion: MotionConfig = DEFAULT_MOTION,
    max_steps: int | None = None,
    tolerance_m: float | None = None,
    target_name: str = "target",
    strict: bool = True,
) -> ActionStream:
    """Servo the end effector to ``target_pos`` [3] (metres, world frame).

    Args:
        target_quat: end-effector orientation (x, y, z, w) to hold; None
            leaves orientation uncontrolled.
        gripper: gripper command held during the move.
        max_steps: step budget (frames); ``motion.move_steps`` when None.
        tolerance_m: arrival distance; ``motion.position_tolerance_m`` when None.
        target_name: name of the target for the failure message.
        strict: raise ``SkillFailure`` when the budget runs out; otherwise
            stop where the arm is.
    """
    budget = motion.move_steps if max_steps is None else max_steps
    tolerance = motion.position_tolerance_m if tolerance_m is None else tolerance_m
    integral = np.zeros(3)
    for _ in range(budget):
        if at_pose(
            env, target_pos, target_quat, tolerance, motion.rotation_tolerance_rad
        ):
            return
        yield servo_action(env, target_pos, target_quat, gripper, motion, integral)
    if at_pose(env, target_pos, target_quat, tolerance, motion.rotation_tolerance_rad):
        return
    if strict:
        eef = env.eef_pose()
        distance = np.linalg.norm(np.asarray(target_pos) - eef.pos)
        turn = 0.0
        if target_quat is not None:
            turn = float(np.linalg.norm(rotation_error(eef.quat, target_quat)))
        raise SkillFailure(
            f"end effector did not reach the {target_name} within {budget} steps "
            f"(still {distance:.3f} m and {turn:.2f} rad away)"
        )


def hold(
    env: LiberoEnv,
    steps: int,
    gripper: float,
    target_pos: np.ndarray | None = None,
    target_quat: np.ndarray | None = None,
    motion: MotionConfig = DEFAULT_MOTION,
) -> ActionStream:
    """Keep the end effector at ``target_pos`` (its current position when None) for ``steps``."""
    anchor = env.eef_pose().pos if target_pos is None else np.asarray(target_pos)
    for _ in range(steps):
        yield servo_action(env, anchor, target_quat, gripper, motion)


def close_gripper(
    env: LiberoEnv,
    motion: MotionConfig = DEFAULT_MOTION,
    target_quat: np.ndarray | None = None,
) -> ActionStream:
    """Close the gripper in place over ``motion.gripper_steps`` frames."""
    yield from hold(
        env,
        motion.gripper_steps,
        GRIPPER_CLOSED,
        target_quat=target_quat,
        motion=motion,
    )


def open_gripper(
    env: LiberoEnv,
    motion: MotionConfig = DEFAULT_MOTION,
    target_quat: np.ndarray | None = None,
) -> ActionStream:
    """Open the gripper in place over ``motion.gripper_steps`` frames."""
    yield from hold(
        env, motion.gripper_steps, GRIPPER_OPEN, target_quat=target_quat, motion=motion
    )


def wait(steps: int, gripper: float = GRIPPER_OPEN) -> ActionStream:
    """Send zero motion for ``steps`` frames."""
    for _ in range(steps):
        yield make_action(gripper=gripper)


class Skill(ABC):
    """Executes one plan step as a stream of actions.

    Subclasses set ``op`` (the operator name they implement), implement
    ``act`` and usually ``verify``. ``max_steps`` bounds the frames one
    attempt may take; the controller stops an attempt that exceeds it.
    ``retries`` is how many more attempts the controller makes after a
    failed one.

    Args:
        step: the grounded plan step; ``step.args`` are BDDL names.
        motion: gains and tolerances of the motion primitives.
        next_step: the plan's following step, if any, so that a skill can
            prepare for it (a grasp picks a hold that suits the next place).
    """

    op: ClassVar[str] = ""
    max_steps: ClassVar[int] = 400
    retries: ClassVar[int] = 1

    def __init__(
        self,
        step: Step,
        motion: MotionConfig = DEFAULT_MOTION,
        next_step: Step | None = None,
    ) -> None:
        if step.op != self.op:
            raise ValueError(
                f"{type(self).__name__} executes {self.op!r} steps, got {step}"
            )
        self.step = step
        self.motion = motion
        self.next_step = next_step

    @abstractmethod
    def act(self, env: LiberoEnv) -> ActionStream:
        """Yield actions until the step is done; raise ``SkillFailure`` if it cannot be."""

    def verify(self, env: LiberoEnv) -> bool:
        """Return whether the step's effect holds now (default: always)."""
        return True

    def describe(self) -> dict[str, Any]:
        return {"op": self.step.op, "args": list(self.step.args)}


SKILLS: dict[str, type[Skill]] = {}


def register_skill(cls: type[Skill]) -> type[Skill]:
    """Class decorator adding a skill to ``SKILLS`` under its ``op``."""
    if not cls.op:
        raise ValueError(f"{cls.__name__} must set the class attribute `op`")
    if cls.op in SKILLS and SKILLS[cls.op] is not cls:
        raise ValueError(
            f"a skill for {cls.op!r} is already registered: {SKILLS[cls.op].__name__}"
        )
    SKILLS[cls.op] = cls
    return cls
