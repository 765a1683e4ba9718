"""Articulated-object skills: open and close drawers and doors, turn knobs on and off.

Every target comes from the simulator at the time of the step (see
``aas.sims.skills.articulation``): the drawer's handle bar and slide axis,
the door's hinge, panel and handle, the knob's ridge and hinge axis. Each
skill drives the joint until LIBERO's own predicate (``is_open``,
``is_close``, ``turn_on``, ``turn_off`` of the target's object state) holds,
and raises ``SkillFailure`` when the joint did not get there.

- open (drawer): the gripper turns horizontal with its fingers vertical,
  closes on the handle bar and pulls along the slide axis. LIBERO's cabinet
  handles sit about 1 cm in front of the drawer face, too close for a finger
  to pass behind them from above.
- close (drawer): the closed gripper, pointing down, pushes the handle back
  along the slide axis to the joint limit.
- close (door): the closed gripper presses on the outer face of the panel
  and follows it round the hinge until the door shuts.
- turn_on / turn_off (knob): the gripper closes on the knob's ridge above the
  hinge axis and rotates about it past the predicate's threshold.
- open (door): the gripper, pointing at the door, closes on the vertical
  handle and follows the handle's arc round the hinge. When the handle
  twists out of the fingers first, the closed gripper pushes the inner face
  near the free edge.

NOTE: a bottom drawer cannot be opened yet. Its handle sits about 4 cm above
the table, and the horizontal hand, 0.2 m wide along the finger axis, hits
the table before the fingers reach the bar. Opening LIBERO's microwave also
still fails: the pull stalls between -0.8 and -1.05 rad, short of the
-1.3 rad threshold, and the inner face is then out of reach from above.
"""

from __future__ import annotations

import logging
from dataclasses import fields, replace

import numpy as np

from aas.sims.env import LiberoEnv
from aas.sims.skills.articulation import (
    Articulation,
    door_frame,
    door_handle,
    drawer_handle,
    find_articulation,
    geom_half_sizes_world,
    geom_position,
    horizontal_unit,
    joint_anchor,
    joint_axis,
    joint_position,
    knob_ridge,
)
from aas.sims.skills.base import (
    GRIPPER_CLOSED,
    GRIPPER_OPEN,
    ActionStream,
    MotionConfig,
    Skill,
    SkillFailure,
    close_gripper,
    move_to,
    open_gripper,
    register_skill,
    rotation_error,
    servo_action,
)

logger = logging.getLogger(__name__)

UP = np.array([0.0, 0.0, 1.0])
# Gripper pointing straight down with zero yaw (x, y, z, w): 180 degrees about
# world x, the orientation the pick-and-place skills also use.
HOME_QUAT = np.array([1.0, 0.0, 0.0, 0.0])
DOWN = -UP
# Gripper command that keeps the fingers where they are (robosuite 1.4's
# Panda gripper integrates the sign of the command).
GRIPPER_HOLD = 0.0

SAFE_HEIGHT_M = 0.12
# Orientation error accepted at intermediate waypoints, and the largest
# distance from a contact point at which a grasp or push still goes ahead.
LOOSE_ROTATION_TOLERANCE_RAD = 0.2
REACH_TOLERANCE_M = 0.012
SLOW_SPEED = 0.35
PUSH_SPEED = 0.3

# Drawer opening: finger position (metres per finger, 0.04 fully open) that
# clears the neighbouring handles about 7 cm above and below, the distance in
# front of the handle where the horizontal approach starts, and how close to
# the joint limit the pull goes.
HANDLE_FINGER_OPENING_M = 0.02
FINGER_TOLERANCE_M = 0.002
PREGRASP_DISTANCE_M = 0.06
PULL_LIMIT_MARGIN = 0.005
PULL_STEPS = 120
STALL_STEPS = 25
STALL_PROGRESS = 0.002
RETREAT_DISTANCE_M = 0.07
RISE_HEIGHT_M = 0.1

# Drawer closing: stand-off of the first contact point in front of the
# handle bar's centre, and how far past the joint limit the push aims.
PUSH_STANDOFF_M = 0.07
PUSH_CONTACT_M = 0.022
PUSH_OVERSHOOT_M = 0.015
PUSH_STEPS = 120
PUSH_TILT_DEG = 30.0

# Door closing: the pressing point on the panel, the finger clearance from the
# outer face and how far into the panel each step aims.
DOOR_PUSH_RADIUS_FRACTION = 0.6
DOOR_FINGER_CLEARANCE_M = 0.015
DOOR_STANDOFF_M = 0.06
DOOR_PRESS_DEPTH_M = 0.04
DOOR_PUSH_STEPS = 160
# Door opening: how far past the open threshold the swing goes, how far ahead
# on the arc each step aims, the swing's speed and its frame budget.
DOOR_OPEN_MARGIN_RAD = 0.2
DOOR_ARC_LEAD_RAD = 0.25
DOOR_ARC_SPEED = 0.6
DOOR_ARC_STEPS = 250
DOOR_STALL_PROGRESS_RAD = 0.03
# Share of the door's rotation the wrist follows. The fingers pinch a vertical
# bar, so the rest turns about the bar, which keeps the wrist inside its limits.
DOOR_WRIST_SHARE = 0.0
# Where on the panel (fraction of the hinge-to-handle distance) the inner push presses.
DOOR_INNER_PUSH_FRACTION = 0.85

# Knob turning: height of the grasp above the ridge centre, rotation beyond
# the predicate's threshold and how far the gripper turns per step.
KNOB_GRASP_RAISE_M = 0.005
KNOB_TURN_MARGIN_RAD = 0.3
KNOB_TURN_STEPS = 140
KNOB_TURN_GAIN = 0.8
KNOB_APPROACH_HEIGHT_M = 0.08


def gripper_quat(approach: np.ndarray, finger: np.ndarray) -> np.ndarray:
    """End-effector orientation (x, y, z, w) pointing along ``approach`` with fingers along ``finger``.

    In robosuite's Panda end-effector frame the fingers close along y and
    the gripper points along z.
    """
    import robosuite.utils.transform_utils as T

    z = approach / np.linalg.norm(approach)
    y = finger - z * (finger @ z)
    y = y / np.linalg.norm(y)
    x = np.cross(y, z)
    return T.mat2quat(np.stack([x, y, z], axis=1))


def nearest_gripper_quat(
    env: LiberoEnv, approach: np.ndarray, finger: np.ndarray
) -> np.ndarray:
    """``gripper_quat`` with the finger sign that needs the smaller turn from the current pose."""
    current = env.eef_pose().quat
    candidates = [gripper_quat(approach, finger), gripper_quat(approach, -finger)]
    return min(
        candidates, key=lambda q: float(np.linalg.norm(rotation_error(current, q)))
    )


def _slow(motion: MotionConfig, speed: float = SLOW_SPEED) -> MotionConfig:
    return replace(motion, max_speed=speed)


def _loose(motion: MotionConfig) -> MotionConfig:
    return replace(motion, rotation_tolerance_rad=LOOSE_ROTATION_TOLERANCE_RAD)


def _is_past(
    art: Articulation, position: float, goal: float, toward_open: bool
) -> bool:
    sign = art.open_sign if toward_open else -art.open_sign
    return sign * (position - goal) >= 0.0


def _predicate(env: LiberoEnv, art: Articulation, opened: bool) -> bool:
    state = env.object_state(art.target)
    if art.switch:
        return bool(state.turn_on() if opened else state.turn_off())
    return bool(state.is_open() if opened else state.is_close())


def _rise_and_turn(
    env: LiberoEnv,
    quat: np.ndarray,
    height: float,
    gripper: float,
    motion: MotionConfig,
) -> ActionStream:
    """Move straight up to ``height`` (metres) while turning to ``quat``."""
    eef = env.eef_pose().pos
    top = np.array([eef[0], eef[1], max(eef[2], height)])
    yield from move_to(env, top, quat, gripper, motion, max_steps=60, strict=False)


def _approach_from_above(
    env: LiberoEnv,
    target: np.ndarray,
    quat: np.ndarray,
    gripper: float,
    safe_z: float,
    motion: MotionConfig,
    what: str,
) -> ActionStream:
    """Rise to ``safe_z`` while turning to ``quat``, cross over ``target``, then descend onto it.

    Raises:
        SkillFailure: the end effector stops further than ``REACH_TOLERANCE_M`` from ``target``.
    """
    yield from _rise_and_turn(env, quat, safe_z, gripper, motion)
    over = np.array([target[0], target[1], max(safe_z, target[2])])
    yield from move_to(env, over, quat, gripper, motion, max_steps=100, strict=False)
    yield from move_to(
        env, target, quat, gripper, _slow(_loose(motion)), max_steps=100, strict=False
    )
    _check_reached(env, target, what)


def _check_reached(env: LiberoEnv, target: np.ndarray, what: str) -> None:
    distance = float(np.linalg.norm(env.eef_pose().pos - target))
    if distance > REACH_TOLERANCE_M:
        raise SkillFailure(
            f"{what} is out of reach: the end effector stopped {distance:.3f} m away"
        )


def _finger_command(env: LiberoEnv, opening_m: float) -> float:
    """Gripper command that drives each finger toward ``opening_m`` from the centre."""
    error = float(np.mean(np.abs(env.gripper_qpos()))) - opening_m
    if abs(error) < FINGER_TOLERANCE_M:
        return GRIPPER_HOLD
    return GRIPPER_CLOSED if error > 0 else GRIPPER_OPEN


def _with_fingers(
    env: LiberoEnv, stream: ActionStream, opening_m: float
) -> ActionStream:
    """Pass ``stream`` through with its gripper command replaced by a finger-opening servo."""
    for action in stream:
        action = action.copy()
        action[6] = _finger_command(env, opening_m)
        yield action


def _set_finger_opening(
    env: LiberoEnv, opening_m: float, quat: np.ndarray, motion: MotionConfig
) -> ActionStream:
    """Servo the fingers in place until each is ``opening_m`` from the centre."""
    for _ in range(2 * motion.gripper_steps):
        error = float(np.mean(np.abs(env.gripper_qpos()))) - opening_m
        if abs(error) < FINGER_TOLERANCE_M:
            return
        yield servo_action(
            env, env.eef_pose().pos, quat, _finger_command(env, opening_m), motion
        )


def _retreat(
    env: LiberoEnv, direction: np.ndarray, quat: np.ndarray, motion: MotionConfig
) -> ActionStream:
    """Open the gripper and back off along ``direction``."""
    yield from open_gripper(env, motion, quat)
    back = env.eef_pose().pos + direction * RETREAT_DISTANCE_M
    yield from move_to(
        env, back, quat, GRIPPER_OPEN, motion, max_steps=40, strict=False
    )


def open_drawer(skill: Skill, env: LiberoEnv, art: Articulation) -> ActionStream:
    """Grasp the drawer's handle bar from the front and pull it to near its joint limit."""
    motion = skill.motion
    axis = joint_axis(env, art)
    outward = horizontal_unit(art.open_sign * axis)
    handle = geom_position(env, drawer_handle(env, art))
    quat = nearest_gripper_quat(env, -outward, UP)
    pregrasp = handle + outward * PREGRASP_DISTANCE_M
    safe_z = max(env.eef_pose().pos[2], handle[2] + SAFE_HEIGHT_M)

    yield from _rise_and_turn(env, quat, safe_z, GRIPPER_OPEN, motion)
    yield from move_to(
        env,
        np.array([pregrasp[0], pregrasp[1], safe_z]),
        quat,
        GRIPPER_OPEN,
        motion,
        max_steps=100,
        strict=False,
    )
    yield from _set_finger_opening(env, HANDLE_FINGER_OPENING_M, quat, motion)
    opening = HANDLE_FINGER_OPENING_M
    loose = _loose(motion)
    yield from _with_fingers(
        env,
        move_to(
            env,
            pregrasp,
            quat,
            GRIPPER_HOLD,
            loose,
            max_steps=80,
            strict=False,
        ),
        opening,
    )
    yield from _with_fingers(
        env,
        move_to(
            env,
            handle + outward * 0.005,
            quat,
            GRIPPER_HOLD,
            _slow(loose),
            max_steps=60,
            tolerance_m=0.006,
            strict=False,
        ),
        opening,
    )
    _check_reached(env, handle + outward * 0.005, f"open({art.target}): the handle")
    yield from close_gripper(env, motion, quat)

    goal = art.open_limit - art.open_sign * PULL_LIMIT_MARGIN
    yield from _drive_slide(
        env,
        art,
        goal,
        toward_open=True,
        gripper=GRIPPER_CLOSED,
        quat=quat,
        overshoot=outward * 0.01,
        motion=_slow(motion),
        steps=PULL_STEPS,
    )
    if not _predicate(env, art, opened=True):
        raise SkillFailure(
            f"open({art.target}): the drawer stopped at {joint_position(env, art):.3f} m "
            f"(goal {goal:.3f} m); the handle slipped or the drawer is blocked"
        )
    yield from _retreat(env, outward, quat, motion)


def close_drawer(skill: Skill, env: LiberoEnv, art: Articulation) -> ActionStream:
    """Push the drawer's handle bar with the closed gripper until the drawer is shut."""
    motion = skill.motion
    axis = joint_axis(env, art)
    outward = horizontal_unit(art.open_sign * axis)
    handle = geom_position(env, drawer_handle(env, art))
    # Leaning the fingertips forward keeps the hand behind and above them, clear
    # of the handle of the drawer above when the pushed drawer is nearly shut.
    tilt = np.deg2rad(PUSH_TILT_DEG)
    approach = DOWN * np.cos(tilt) - outward * np.sin(tilt)
    quat = nearest_gripper_quat(env, approach, np.cross(UP, outward))
    start = handle + outward * PUSH_STANDOFF_M + UP * 0.005
    safe_z = max(env.eef_pose().pos[2], handle[2] + SAFE_HEIGHT_M)

    yield from _approach_from_above(
        env,
        start,
        quat,
        GRIPPER_CLOSED,
        safe_z,
        motion,
        f"close({art.target}): the point in front of the handle",
    )

    goal = art.closed_limit
    yield from _drive_slide(
        env,
        art,
        goal,
        toward_open=False,
        gripper=GRIPPER_CLOSED,
        quat=quat,
        overshoot=-outward * PUSH_OVERSHOOT_M,
        motion=_slow(motion, PUSH_SPEED),
        steps=PUSH_STEPS,
        contact_offset=outward * PUSH_CONTACT_M,
        contact_from=start,
    )
    if not _predicate(env, art, opened=False):
        raise SkillFailure(
            f"close({art.target}): the drawer stopped at {joint_position(env, art):.3f} m, "
            f"short of the closed limit {goal:.3f} m"
        )
    yield from move_to(
        env,
        env.eef_pose().pos + outward * RETREAT_DISTANCE_M,
        quat,
        GRIPPER_CLOSED,
        motion,
        max_steps=40,
        strict=False,
    )
    yield from move_to(
        env,
        env.eef_pose().pos + UP * 0.08,
        None,
        GRIPPER_OPEN,
        motion,
        max_steps=30,
        strict=False,
    )


def _drive_slide(
    env: LiberoEnv,
    art: Articulation,
    goal: float,
    toward_open: bool,
    gripper: float,
    quat: np.ndarray,
    overshoot: np.ndarray,
    motion: MotionConfig,
    steps: int,
    contact_offset: np.ndarray | None = None,
    contact_from: np.ndarray | None = None,
) -> ActionStream:
    """Move the end effector with the drawer along its slide axis until the joint reaches ``goal``.

    The end-effector target is where the gripper must be when the joint is at
    ``goal`` (plus ``overshoot`` [3], metres), so the drawer is driven by
    position error; the loop stops at the goal, after ``steps`` frames or
    when the joint has moved less than ``STALL_PROGRESS`` in ``STALL_STEPS``.
    """
    axis = joint_axis(env, art)
    start_q = joint_position(env, art)
    if contact_offset is None:
        start_eef = env.eef_pose().pos
    else:
        # The gripper is not on the handle yet: aim from the handle's contact point.
        handle = geom_position(env, drawer_handle(env, art))
        start_eef = np.array([handle[0], handle[1], contact_from[2]]) + contact_offset
    target = start_eef + axis * (goal - start_q) + overshoot
    history = [start_q]
    for _ in range(steps):
        position = joint_position(env, art)
        if _is_past(art, position, goal, toward_open):
            return
        history.append(position)
        if (
            len(history) > STALL_STEPS
            and abs(history[-1] - history[-STALL_STEPS]) < STALL_PROGRESS
            and _predicate(env, art, toward_open)
        ):
            return
        yield servo_action(env, target, quat, gripper, motion)


def open_door(skill: Skill, env: LiberoEnv, art: Articulation) -> ActionStream:
    """Grasp the door's handle from the front and swing it round the hinge past the open threshold."""
    import robosuite.utils.transform_utils as T

    motion = skill.motion
    frame = door_frame(env, art)
    handle = geom_position(env, door_handle(env, art))
    quat = nearest_gripper_quat(env, -frame.outward, frame.radial)
    pregrasp = handle + frame.outward * PREGRASP_DISTANCE_M
    safe_z = max(env.eef_pose().pos[2], handle[2] + SAFE_HEIGHT_M)

    yield from _approach_from_above(
        env,
        pregrasp,
        quat,
        GRIPPER_OPEN,
        safe_z,
        motion,
        f"open({art.target}): the point in front of the handle",
    )
    grasp = handle + frame.outward * 0.003
    yield from move_to(
        env,
        grasp,
        quat,
        GRIPPER_OPEN,
        _slow(_loose(motion)),
        max_steps=60,
        tolerance_m=0.006,
        strict=False,
    )
    _check_reached(env, grasp, f"open({art.target}): the handle")
    yield from close_gripper(env, motion, quat)

    goal = _door_open_goal(env, art)
    axis = joint_axis(env, art)
    anchor = joint_anchor(env, art)
    start_q = joint_position(env, art)
    grasp_pos = env.eef_pose().pos
    arc = _slow(motion, DOOR_ARC_SPEED)
    history = [start_q]
    for _ in range(DOOR_ARC_STEPS):
        position = joint_position(env, art)
        if _is_past(art, position, goal, toward_open=True):
            break
        history.append(position)
        if (
            len(history) > STALL_STEPS
            and abs(history[-1] - history[-STALL_STEPS]) < DOOR_STALL_PROGRESS_RAD
        ):
            break
        # Aim at where the gripper must be a little further round the arc.
        angle = position + art.open_sign * DOOR_ARC_LEAD_RAD - start_q
        rotation = T.quat2mat(T.axisangle2quat(axis * angle))
        target = anchor + rotation @ (grasp_pos - anchor)
        target_quat = T.quat_multiply(
            T.axisangle2quat(axis * angle * DOOR_WRIST_SHARE), quat
        )
        yield servo_action(env, target, target_quat, GRIPPER_CLOSED, arc)
    yield from _retreat(env, door_frame(env, art).outward, env.eef_pose().quat, motion)
    if not _predicate(env, art, opened=True):
        # The handle twists in the fingers before the door is fully open, so
        # the rest of the swing is a push on the inner face near the free edge.
        yield from push_door(
            skill, env, art, side=-1, radius_fraction=DOOR_INNER_PUSH_FRACTION
        )
    if not _predicate(env, art, opened=True):
        raise SkillFailure(
            f"open({art.target}): the door stopped at {joint_position(env, art):.2f} rad "
            f"(goal {goal:.2f} rad); the handle slipped or the arm ran out of reach"
        )


def _door_open_goal(env: LiberoEnv, art: Articulation, samples: int = 200) -> float:
    """The joint position a margin past the first one (from the closed side) that counts as open."""
    model = env.model_object(art.owner)
    for position in np.linspace(art.closed_limit, art.open_limit, samples):
        if model.is_open(float(position)):
            goal = float(position) + art.open_sign * DOOR_OPEN_MARGIN_RAD
            return float(np.clip(goal, art.low, art.high))
    raise SkillFailure(
        f"{art.target}: no joint position within its limits counts as open"
    )


def close_door(skill: Skill, env: LiberoEnv, art: Articulation) -> ActionStream:
    """Press the door's outer face with the closed gripper and follow it round the hinge."""
    yield from push_door(
        skill, env, art, side=1, radius_fraction=DOOR_PUSH_RADIUS_FRACTION
    )
    if not _predicate(env, art, opened=False):
        raise SkillFailure(
            f"close({art.target}): the door stopped at {joint_position(env, art):.3f} rad "
            f"after {DOOR_PUSH_STEPS} steps of pushing"
        )


def push_door(
    skill: Skill, env: LiberoEnv, art: Articulation, side: int, radius_fraction: float
) -> ActionStream:
    """Press one face of the door with the closed gripper and follow it round the hinge.

    ``side`` +1 presses the outer face (closing the door), -1 the inner face
    (opening it). The push ends when the matching predicate holds or after
    ``DOOR_PUSH_STEPS`` frames, and the gripper then backs away and rises.
    """
    motion = skill.motion
    opening = side < 0
    frame = door_frame(env, art)
    radius = radius_fraction * _door_width(env, art, frame)
    quat = nearest_gripper_quat(env, DOWN, frame.radial)
    start = frame.point(radius, DOOR_FINGER_CLEARANCE_M + DOOR_STANDOFF_M, side)
    if opening:
        # The gap behind a half-open door is narrow: start right at the inner face.
        start = frame.point(radius, DOOR_FINGER_CLEARANCE_M, side)
    safe_z = max(env.eef_pose().pos[2], frame.panel_height + SAFE_HEIGHT_M + 0.1)

    yield from _approach_from_above(
        env,
        start,
        quat,
        GRIPPER_CLOSED,
        safe_z,
        motion,
        f"{skill.step.op}({art.target}): the point beside the door",
    )

    push = _slow(motion, PUSH_SPEED)
    for _ in range(DOOR_PUSH_STEPS):
        if _predicate(env, art, opened=opening) and (
            not opening
            or _is_past(art, joint_position(env, art), _door_open_goal(env, art), True)
        ):
            break
        frame = door_frame(env, art)
        target = (
            frame.point(radius, DOOR_FINGER_CLEARANCE_M, side)
            - side * frame.outward * DOOR_PRESS_DEPTH_M
        )
        # Follow the panel round the hinge while holding the gripper's yaw on it.
        quat = nearest_gripper_quat(env, DOWN, frame.radial)
        yield servo_action(env, target, quat, GRIPPER_CLOSED, push)

    frame = door_frame(env, art)
    yield from move_to(
        env,
        env.eef_pose().pos + side * frame.outward * RETREAT_DISTANCE_M,
        quat,
        GRIPPER_CLOSED,
        motion,
        max_steps=40,
        strict=False,
    )
    yield from move_to(
        env,
        env.eef_pose().pos + UP * 0.1,
        None,
        GRIPPER_OPEN,
        motion,
        max_steps=30,
        strict=False,
    )


def _door_width(env: LiberoEnv, art: Articulation, frame) -> float:
    handle = geom_position(env, door_handle(env, art))
    return float((handle - frame.anchor) @ frame.radial)


def _switch_threshold(
    env: LiberoEnv, art: Articulation, on: bool, samples: int = 200
) -> float:
    """The joint position nearest the closed limit at which the switch predicate first changes."""
    model = env.model_object(art.owner)
    probe = model.turn_on if on else model.turn_off
    positions = np.linspace(art.closed_limit, art.open_limit, samples)
    if not on:
        positions = positions[::-1]
    current = joint_position(env, art)
    try:
        hits = [q for q in positions if probe(float(q))]
    finally:
        model.turn_on(current)
    if not hits:
        raise SkillFailure(
            f"{art.target}: no joint position within its limits satisfies the predicate"
        )
    return float(hits[0])


def turn_knob(
    skill: Skill, env: LiberoEnv, art: Articulation, on: bool
) -> ActionStream:
    """Grasp the knob's ridge above its axis and rotate it past the on (or off) threshold."""
    motion = skill.motion
    ridge = knob_ridge(env, art)
    size, axes = geom_half_sizes_world(env, ridge)
    ridge_axis = horizontal_unit(axes[:, int(np.argmax(size))])
    centre = geom_position(env, ridge)
    anchor = joint_anchor(env, art)
    grasp = (
        centre
        + ridge_axis * float((anchor - centre) @ ridge_axis)
        + UP * KNOB_GRASP_RAISE_M
    )
    threshold = _switch_threshold(env, art, on)
    toward = art.open_sign if on else -art.open_sign
    goal = threshold + toward * KNOB_TURN_MARGIN_RAD
    quat = _knob_grasp_quat(env, art, np.cross(UP, ridge_axis), goal)
    above = grasp + UP * KNOB_APPROACH_HEIGHT_M
    safe_z = max(env.eef_pose().pos[2], above[2])

    yield from _approach_from_above(
        env,
        above,
        quat,
        GRIPPER_OPEN,
        safe_z,
        motion,
        f"turn({art.target}): the point above the knob",
    )
    yield from move_to(
        env,
        grasp,
        quat,
        GRIPPER_OPEN,
        _slow(_loose(motion)),
        max_steps=60,
        tolerance_m=0.006,
        strict=False,
    )
    _check_reached(env, grasp, f"turn({art.target}): the knob")
    yield from close_gripper(env, motion, quat)

    yield from _rotate_about_joint(
        env,
        art,
        grasp,
        quat,
        goal,
        toward,
        replace(motion, rotation_gain=KNOB_TURN_GAIN),
    )
    if not _predicate(env, art, opened=on):
        raise SkillFailure(
            f"turn_{'on' if on else 'off'}({art.target}): the knob stopped at "
            f"{joint_position(env, art):.2f} rad (threshold {threshold:.2f} rad)"
        )
    yield from open_gripper(env, motion, None)
    yield from move_to(
        env,
        env.eef_pose().pos + UP * KNOB_APPROACH_HEIGHT_M,
        None,
        GRIPPER_OPEN,
        motion,
        max_steps=30,
        strict=False,
    )


def _knob_grasp_quat(
    env: LiberoEnv, art: Articulation, finger: np.ndarray, goal: float
) -> np.ndarray:
    """Pick the finger sign that keeps the turn centred on the home yaw.

    A turn of up to 2.1 rad that starts from the nearer sign can run the
    wrist into its joint limit, so the choice looks at the middle of the turn.
    """
    import robosuite.utils.transform_utils as T

    half_turn = T.axisangle2quat(
        joint_axis(env, art) * (goal - joint_position(env, art)) / 2
    )
    candidates = [gripper_quat(DOWN, finger), gripper_quat(DOWN, -finger)]
    return min(
        candidates,
        key=lambda q: float(
            np.linalg.norm(rotation_error(HOME_QUAT, T.quat_multiply(half_turn, q)))
        ),
    )


def _rotate_about_joint(
    env: LiberoEnv,
    art: Articulation,
    grasp: np.ndarray,
    grasp_quat: np.ndarray,
    goal: float,
    toward: int,
    motion: MotionConfig,
) -> ActionStream:
    """Turn the gripper about the joint axis so that the held knob reaches ``goal`` (radians)."""
    import robosuite.utils.transform_utils as T

    axis = joint_axis(env, art)
    start = joint_position(env, art)
    history = [start]
    for _ in range(KNOB_TURN_STEPS):
        position = joint_position(env, art)
        if toward * (position - goal) >= 0.0:
            return
        history.append(position)
        if (
            len(history) > STALL_STEPS
            and abs(history[-1] - history[-STALL_STEPS]) < STALL_PROGRESS
        ):
            return
        # Aim a little past the goal so the rotation keeps its speed near the end.
        turn = T.axisangle2quat(axis * (goal - start + toward * 0.1))
        target_quat = T.quat_multiply(turn, grasp_quat)
        yield servo_action(env, grasp, target_quat, GRIPPER_CLOSED, motion)


def _return_home(
    env: LiberoEnv, start: np.ndarray, motion: MotionConfig
) -> ActionStream:
    """Go back to the step's start position, then turn the gripper down at zero yaw.

    A horizontal grasp or a knob turn leaves the wrist twisted, and turning it
    back far from the robot base straightens the elbow into a singular pose
    where the next skill stalls. So the arm first comes back at its current
    orientation and turns only near the start position.
    """
    eef = env.eef_pose()
    lift = np.array([eef.pos[0], eef.pos[1], max(start[2], eef.pos[2])])
    home = np.array([start[0], start[1], lift[2]])
    yield from move_to(
        env, lift, eef.quat, GRIPPER_OPEN, motion, max_steps=30, strict=False
    )
    yield from move_to(
        env, home, eef.quat, GRIPPER_OPEN, motion, max_steps=80, strict=False
    )
    yield from move_to(
        env, home, HOME_QUAT, GRIPPER_OPEN, _loose(motion), max_steps=60, strict=False
    )


def _proportional(motion: MotionConfig) -> MotionConfig:
    """``motion`` without an integral term, which winds up while the gripper presses on a handle."""
    if "integral_gain" in {f.name for f in fields(motion)}:
        return replace(motion, integral_gain=0.0)
    return motion


class _ArticulationSkill(Skill):
    max_steps = 500
    retries = 1

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.motion = _proportional(self.motion)

    def act(self, env: LiberoEnv) -> ActionStream:
        start = env.eef_pose().pos
        yield from self.manipulate(env, self.target(env))
        yield from _return_home(env, start, self.motion)

    def manipulate(self, env: LiberoEnv, art: Articulation) -> ActionStream:
        """Yield the actions that move ``art``; ``act`` adds the return to the start pose."""
        raise NotImplementedError

    def target(self, env: LiberoEnv) -> Articulation:
        if not self.step.args:
            raise SkillFailure(
                f"{self.step}: expected the articulated target as its argument"
            )
        try:
            return find_articulation(env, self.step.args[0])
        except ValueError as exc:
            raise SkillFailure(f"{self.step}: {exc}") from exc


@register_skill
class OpenSkill(_ArticulationSkill):
    """Open a drawer (``open(wooden_cabinet_1_top_region)``)."""

    op = "open"
    # A door takes a pull along the arc and then a push from the inside.
    max_steps = 700

    def manipulate(self, env: LiberoEnv, art: Articulation) -> ActionStream:
        if art.switch:
            raise SkillFailure(f"{self.step}: {art.target} is a switch; use turn_on")
        logger.info(
            "opening %s (joint %s at %.3f)",
            art.target,
            art.joint,
            joint_position(env, art),
        )
        if art.kind == "slide":
            yield from open_drawer(self, env, art)
        else:
            yield from open_door(self, env, art)

    def verify(self, env: LiberoEnv) -> bool:
        return _predicate(env, find_articulation(env, self.step.args[0]), opened=True)


@register_skill
class CloseSkill(_ArticulationSkill):
    """Close a drawer or a hinged door (``close(microwave_1)``)."""

    op = "close"

    def manipulate(self, env: LiberoEnv, art: Articulation) -> ActionStream:
        if art.switch:
            raise SkillFailure(f"{self.step}: {art.target} is a switch; use turn_off")
        logger.info(
            "closing %s (joint %s at %.3f)",
            art.target,
            art.joint,
            joint_position(env, art),
        )
        if art.kind == "slide":
            yield from close_drawer(self, env, art)
        else:
            yield from close_door(self, env, art)

    def verify(self, env: LiberoEnv) -> bool:
        return _predicate(env, find_articulation(env, self.step.args[0]), opened=False)


class _KnobSkill(_ArticulationSkill):
    turns_on: bool = True

    def manipulate(self, env: LiberoEnv, art: Articulation) -> ActionStream:
        if not art.switch:
            raise SkillFailure(f"{self.step}: {art.target} has no on/off predicate")
        logger.info(
            "turning %s %s (joint %s at %.2f rad)",
            art.target,
            "on" if self.turns_on else "off",
            art.joint,
            joint_position(env, art),
        )
        yield from turn_knob(self, env, art, on=self.turns_on)

    def verify(self, env: LiberoEnv) -> bool:
        return _predicate(
            env, find_articulation(env, self.step.args[0]), opened=self.turns_on
        )


@register_skill
class TurnOnSkill(_KnobSkill):
    """Turn a stove knob on (``turn_on(flat_stove_1)``)."""

    op = "turn_on"
    turns_on = True


@register_skill
class TurnOffSkill(_KnobSkill):
    """Turn a stove knob off (``turn_off(flat_stove_1)``)."""

    op = "turn_off"
    turns_on = False
