"""Pick-and-place skills: grasp, place, put_in, stack, take_out and push.

Every target comes from the simulator's poses and collision boxes at the time
of the step, so the skills work from any init state of a task. A grasp picks
the gripper yaw that makes the object narrowest across the fingers; objects
wider than the gripper opening (bowls, mugs) are taken by the rim. A release
aligns the held object's body origin, not the gripper, with the target,
because LIBERO's ``On`` and ``In`` predicates test body positions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from aas.sims.env import LiberoEnv
from aas.sims.skills.base import (
    GRIPPER_CLOSED,
    GRIPPER_OPEN,
    ActionStream,
    Skill,
    SkillFailure,
    close_gripper,
    hold,
    move_to,
    open_gripper,
    register_skill,
    servo_action,
    yaw_quat,
)

logger = logging.getLogger(__name__)

# Top-down gripper orientation (x, y, z, w): 180 degrees about world x, so
# the fingers close along world y at yaw 0.
TOP_DOWN_QUAT = np.array([1.0, 0.0, 0.0, 0.0])
# Widest object the Panda gripper (0.08 m stroke) is asked to close across;
# wider objects are grasped by their rim.
MAX_GRASP_WIDTH_M = 0.07
RIM_INSET_M = 0.012
RIM_DEPTH_M = 0.015
APPROACH_HEIGHT_M = 0.10
LIFT_HEIGHT_M = 0.12
CLEARANCE_M = 0.04
RELEASE_GAP_M = 0.012
RETREAT_HEIGHT_M = 0.08
# Heights in metres above the table at which a descent is slowed down.
SLOW_SPEED = 0.35
YAW_CANDIDATES_DEG = np.arange(0, 180, 5)
HAND_HALF_LENGTH_M = 0.105
HAND_HALF_WIDTH_M = 0.035
HAND_BOTTOM_M = 0.024
MAX_ABOVE_GRIP_M = 0.035
OBJECT_MARGIN_M = 0.04


@dataclass(frozen=True)
class GraspPlan:
    """A grasp: the grip-site target and gripper orientation for one object.

    Attributes:
        position: grip-site target [3] in metres, world frame.
        quat: gripper orientation (x, y, z, w).
        width_m: object width across the fingers (metres).
        rim: whether the grasp pinches a rim instead of closing across the object.
    """

    position: np.ndarray
    quat: np.ndarray
    width_m: float
    rim: bool


def _finger_direction(yaw_rad: float) -> np.ndarray:
    # TOP_DOWN_QUAT maps the gripper's y axis (the finger axis) to world -y.
    return np.array([np.sin(yaw_rad), -np.cos(yaw_rad), 0.0])


def _wrap_yaw(yaw_rad: float) -> float:
    # The gripper is symmetric under a half turn, so keep yaw in [-pi/2, pi/2).
    return float((yaw_rad + np.pi / 2) % np.pi - np.pi / 2)


def plan_grasp(env: LiberoEnv, name: str, place_target: str | None = None) -> GraspPlan:
    """Choose the grasp of object ``name`` from its collision geoms in the current state.

    Args:
        place_target: where the next step puts the object, so that a rim
            grasp leaves the hand room there too.
    """
    corners = env.collision_corners(name)
    low, high = corners.min(axis=0), corners.max(axis=0)
    height = float(high[2] - low[2])

    best_yaw, best_width, best_centre = 0.0, np.inf, None
    for yaw_deg in YAW_CANDIDATES_DEG:
        yaw = _wrap_yaw(np.deg2rad(yaw_deg))
        across = _finger_direction(yaw)
        along = np.array([-across[1], across[0], 0.0])
        proj_across = corners @ across
        proj_along = corners @ along
        width = float(proj_across.max() - proj_across.min())
        if width < best_width - 1e-4 or (
            abs(width - best_width) <= 1e-4 and abs(yaw) < abs(best_yaw)
        ):
            centre_across = (proj_across.max() + proj_across.min()) / 2
            centre_along = (proj_along.max() + proj_along.min()) / 2
            best_yaw, best_width = yaw, width
            best_centre = centre_across * across + centre_along * along

    centre = np.array([best_centre[0], best_centre[1], 0.0])
    if best_width <= MAX_GRASP_WIDTH_M:
        z = _centre_grasp_height(float(low[2]), height)
        return GraspPlan(
            position=np.array([centre[0], centre[1], z]),
            quat=yaw_quat(TOP_DOWN_QUAT, best_yaw),
            width_m=best_width,
            rim=False,
        )
    return _plan_rim_grasp(env, name, centre, float(high[2]), best_width, place_target)


def _centre_grasp_height(bottom: float, height: float) -> float:
    if height < 0.03:
        # Flat boxes: close the fingers low on the box, just above the support.
        return bottom + max(0.5 * height, 0.008)
    if height > 0.1:
        # Tall objects: the palm sits about 0.03 m above the grip site, so the
        # object's top must not rise higher than that.
        return max(bottom + 0.5 * height, bottom + height - MAX_ABOVE_GRIP_M)
    return bottom + 0.55 * height


def _plan_rim_grasp(
    env: LiberoEnv,
    name: str,
    centre: np.ndarray,
    top: float,
    width: float,
    place_target: str | None = None,
) -> GraspPlan:
    """Pinch the rim of a wide object where the gripper hand has the most room.

    The hand's room is scored at the object and, when ``place_target`` is
    given, at the spot where the object will be put down.
    """
    radius = width / 2 - RIM_INSET_M
    grasp_z = top - RIM_DEPTH_M
    shift = None
    place_z = grasp_z
    if place_target is not None:
        target_xy, surface = _target_xy_and_surface(env, name, place_target)
        shift = np.append(target_xy - env.pose(name).pos[:2], 0.0)
        low, _ = env.bounding_box(name)
        place_z = surface + (grasp_z - float(low[2])) + RELEASE_GAP_M

    best = None
    for yaw in np.deg2rad([0.0, -90.0, 45.0, -45.0]):
        across = _finger_direction(yaw)
        for sign in (1.0, -1.0):
            point = centre + sign * radius * across
            room = hand_clearance(env, point, yaw, grasp_z, exclude=(name,))
            if shift is not None:
                excluded = (name, place_target, _owner(env, place_target))
                room = min(
                    room,
                    hand_clearance(env, point + shift, yaw, place_z, exclude=excluded),
                )
            # Prefer the side facing the robot (negative x) and no wrist turn on ties.
            score = min(room, 0.08) - 0.01 * point[0] - 0.002 * abs(yaw)
            if best is None or score > best[0]:
                best = (score, point, yaw)
    _, point, yaw = best
    return GraspPlan(
        position=np.array([point[0], point[1], grasp_z]),
        quat=yaw_quat(TOP_DOWN_QUAT, yaw),
        width_m=width,
        rim=True,
    )


def _owner(env: LiberoEnv, name: str) -> str:
    """Return the object or fixture a region site belongs to (the name itself otherwise)."""
    if name in env.site_names:
        parent = getattr(env.object_state(name), "parent_name", None)
        if parent:
            return parent
    return name


def hand_clearance(
    env: LiberoEnv,
    eef_xy: np.ndarray,
    yaw: float,
    eef_z: float,
    exclude: tuple[str, ...] = (),
) -> float:
    """Horizontal room (metres) around the gripper hand for a grip site at ``eef_xy``, ``eef_z``.

    The Panda hand is a box about 0.21 m long along the finger axis and
    0.07 m across it, from 0.024 m to 0.126 m above the grip site (measured
    from robosuite 1.4's ``gripper0_hand_collision`` geom). Only objects
    and fixtures whose top is above the hand's bottom count.
    """
    across = _finger_direction(yaw)
    hand_bottom = eef_z + HAND_BOTTOM_M
    points = [
        np.asarray(eef_xy[:2]) + t * across[:2]
        for t in np.linspace(-HAND_HALF_LENGTH_M, HAND_HALF_LENGTH_M, 7)
    ]
    room = 1.0
    for other in env.object_names + env.fixture_names:
        if other in exclude:
            continue
        low, high = env.bounding_box(other)
        if high[2] <= hand_bottom:
            continue
        for point in points:
            room = min(room, _box_distance_xy(point, low, high) - HAND_HALF_WIDTH_M)
    return room


def _box_distance_xy(point: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    gap = np.maximum(np.maximum(low[:2] - point[:2], point[:2] - high[:2]), 0.0)
    return float(np.linalg.norm(gap))


def is_holding(env: LiberoEnv, name: str) -> bool:
    """Return whether the gripper is closed on object ``name`` (both finger pads touch it)."""
    return env.is_grasped(name)


def _place_target(env: LiberoEnv, skill: Skill, name: str) -> str | None:
    for step in (skill.step, skill.next_step):
        if (
            step is not None
            and step.op in ("place", "stack", "put_in", "push")
            and step.args[:1] == (name,)
        ):
            target = step.args[1]
            return resolve_container(env, target) if step.op == "put_in" else target
    return None


def grasp_stream(skill: Skill, env: LiberoEnv, name: str) -> ActionStream:
    """Approach from above, descend, close the gripper on ``name`` and lift it."""
    motion = skill.motion
    place_target = _place_target(env, skill, name)
    grasp = plan_grasp(env, name, place_target)
    logger.debug(
        "%s: grasp %s at %s (rim=%s)",
        skill.step,
        name,
        grasp.position.round(3),
        grasp.rim,
    )
    eef = env.eef_pose().pos
    above = grasp.position + np.array([0.0, 0.0, APPROACH_HEIGHT_M])
    safe_z = max(eef[2], above[2])

    yield from move_to(
        env,
        np.array([eef[0], eef[1], safe_z]),
        grasp.quat,
        GRIPPER_OPEN,
        motion,
        target_name="start height",
        strict=False,
        max_steps=40,
    )
    yield from move_to(
        env,
        np.array([above[0], above[1], safe_z]),
        grasp.quat,
        GRIPPER_OPEN,
        motion,
        target_name=f"point above {name}",
    )
    yield from move_to(
        env, above, grasp.quat, GRIPPER_OPEN, motion, target_name=f"point above {name}"
    )

    # Re-plan once above the object, which may have been nudged on the way.
    grasp = plan_grasp(env, name, place_target)
    slow = _slow(motion)
    yield from move_to(
        env,
        grasp.position + np.array([0.0, 0.0, APPROACH_HEIGHT_M]),
        grasp.quat,
        GRIPPER_OPEN,
        slow,
        target_name=f"point above {name}",
        strict=False,
    )
    yield from move_to(
        env,
        grasp.position,
        grasp.quat,
        GRIPPER_OPEN,
        slow,
        target_name=f"grasp point of {name}",
        tolerance_m=0.006,
        strict=False,
        max_steps=60,
    )
    yield from close_gripper(env, motion, grasp.quat)

    lift = env.eef_pose().pos + np.array([0.0, 0.0, LIFT_HEIGHT_M])
    yield from move_to(
        env,
        lift,
        grasp.quat,
        GRIPPER_CLOSED,
        _slow(motion, 0.6),
        target_name="lift height",
        strict=False,
    )
    if not is_holding(env, name):
        raise SkillFailure(
            f"{skill.step}: {name} is not in the gripper after closing it"
        )


def _slow(motion, speed: float = SLOW_SPEED):
    from dataclasses import replace

    return replace(motion, max_speed=speed)


@register_skill
class GraspSkill(Skill):
    """Pick up an object: ``grasp(obj)``. Ends with the object lifted in a closed gripper."""

    op = "grasp"
    max_steps = 320

    def act(self, env: LiberoEnv) -> ActionStream:
        (name,) = self.step.args[:1]
        yield from grasp_stream(self, env, name)

    def verify(self, env: LiberoEnv) -> bool:
        return is_holding(env, self.step.args[0])


def resolve_container(env: LiberoEnv, target: str) -> str:
    """Map a container object or fixture name to its containment region site.

    ``basket_1`` becomes ``basket_1_contain_region``; a site name is returned
    unchanged.
    """
    if target in env.site_names:
        return target
    candidates = [
        s for s in env.site_names if s.startswith(f"{target}_") and "contain" in s
    ]
    candidates = candidates or [
        s for s in env.site_names if s.startswith(f"{target}_") and s.endswith("region")
    ]
    if not candidates:
        raise SkillFailure(
            f"{target!r} has no containment region; sites are {env.site_names}"
        )
    return min(candidates)


def _target_xy_and_surface(
    env: LiberoEnv, held: str, target: str
) -> tuple[np.ndarray, float]:
    """Target xy [2] for the held object's body origin, and the support height below it."""
    target_xy = env.pose(target).pos[:2]
    surface = _surface_height(env, held, target_xy)
    if target in env.site_names:
        site_pos = env.pose(target).pos
        size = np.abs(np.asarray(env.site(target).size, dtype=float))
        # A region on a surface lies at the surface; inside a container the
        # support is the container bottom, which is lower than its walls.
        surface = (
            min(surface, float(site_pos[2] + size[2]))
            if _is_inside_region(target)
            else max(surface, float(site_pos[2]))
        )
    return target_xy, surface


def _is_inside_region(site: str) -> bool:
    return (
        "contain" in site
        or "heating" in site
        or any(f"_{level}_region" in site for level in ("top", "middle", "bottom"))
    )


def _surface_height(
    env: LiberoEnv, held: str, xy: np.ndarray, margin: float = 0.02
) -> float:
    """Highest collision-box top among objects and fixtures under ``xy`` (metres)."""
    tops = [0.0]
    for name in env.object_names + env.fixture_names:
        if name == held:
            continue
        low, high = env.bounding_box(name)
        if np.all(xy >= low[:2] - margin) and np.all(xy <= high[:2] + margin):
            tops.append(float(high[2]))
    return max(tops) if len(tops) > 1 else _table_height(env)


def _table_height(env: LiberoEnv) -> float:
    # Objects rest on the table (or floor) at the start, so their lowest
    # bottom is a good estimate of the support height.
    return min(float(env.bounding_box(n)[0][2]) for n in env.object_names)


def carry_height(
    env: LiberoEnv, held: str, start_xy: np.ndarray, end_xy: np.ndarray, hang: float
) -> float:
    """Lowest grip-site height (metres) that carries ``held`` over everything on the path.

    The held object, hanging ``hang`` metres below the grip site, must clear
    whatever lies within a few centimetres of the straight path; the wider
    gripper hand, which starts ``HAND_BOTTOM_M`` above the grip site, must
    clear whatever lies within its half length of the path.
    """
    height = 0.0
    for name in env.object_names + env.fixture_names:
        if name == held:
            continue
        low, high = env.bounding_box(name)
        distance = min(
            _box_distance_xy(start_xy + f * (end_xy - start_xy), low, high)
            for f in np.linspace(0.0, 1.0, 21)
        )
        if distance <= OBJECT_MARGIN_M:
            height = max(height, float(high[2]) + hang + CLEARANCE_M)
        elif distance <= HAND_HALF_LENGTH_M + HAND_HALF_WIDTH_M:
            height = max(height, float(high[2]) - HAND_BOTTOM_M + CLEARANCE_M / 2)
    return height


def release_stream(
    skill: Skill, env: LiberoEnv, held: str, target: str, drop: bool = False
) -> ActionStream:
    """Carry the held object over ``target``, lower it onto the support, open and retreat.

    Args:
        drop: release higher above the support, as for containers whose walls
            would catch a lowered object.
    """
    motion = skill.motion
    if not is_holding(env, held):
        yield from grasp_stream(skill, env, held)

    quat = env.eef_pose().quat
    target_xy, surface = _target_xy_and_surface(env, held, target)
    eef = env.eef_pose().pos
    low, _ = env.bounding_box(held)
    hang = float(eef[2] - low[2])
    offset_xy = env.pose(held).pos[:2] - eef[:2]

    carry_z = max(eef[2], carry_height(env, held, eef[:2], target_xy, hang))
    yield from move_to(
        env,
        np.array([eef[0], eef[1], carry_z]),
        quat,
        GRIPPER_CLOSED,
        _slow(motion, 0.7),
        target_name="carry height",
        strict=False,
        max_steps=60,
    )
    goal_xy = target_xy - offset_xy
    yield from move_to(
        env,
        np.array([goal_xy[0], goal_xy[1], carry_z]),
        quat,
        GRIPPER_CLOSED,
        _slow(motion, 0.7),
        target_name=f"point above {target}",
        tolerance_m=0.015,
        max_steps=120,
    )

    gap = RELEASE_GAP_M + (0.03 if drop else 0.0)
    release_z = surface + hang + gap
    yield from _lower(env, held, target, release_z, quat, skill)
    if not is_holding(env, held):
        raise SkillFailure(
            f"{skill.step}: {held} slipped out of the gripper before release"
        )
    yield from open_gripper(env, motion, quat)
    retreat = env.eef_pose().pos + np.array([0.0, 0.0, RETREAT_HEIGHT_M])
    yield from move_to(
        env,
        retreat,
        quat,
        GRIPPER_OPEN,
        motion,
        target_name="retreat height",
        strict=False,
        max_steps=30,
    )


def _lower(
    env: LiberoEnv,
    held: str,
    target: str,
    release_z: float,
    quat: np.ndarray,
    skill: Skill,
) -> ActionStream:
    """Descend to ``release_z`` while keeping the held object's body centred over the target.

    Stops early when the descent stalls, which means the object touches the support.
    """
    slow = _slow(skill.motion, 0.4)
    integral = np.zeros(3)
    stalled = 0
    last_z = env.eef_pose().pos[2]
    for _ in range(120):
        eef = env.eef_pose().pos
        offset_xy = env.pose(held).pos[:2] - eef[:2]
        goal_xy = env.pose(target).pos[:2] - offset_xy
        goal = np.array([goal_xy[0], goal_xy[1], release_z])
        if np.linalg.norm(goal - eef) < 0.006:
            return
        stalled = (
            stalled + 1 if last_z - eef[2] < 0.0005 and eef[2] - release_z < 0.03 else 0
        )
        if stalled >= 4:
            return
        last_z = eef[2]
        yield servo_action(env, goal, quat, GRIPPER_CLOSED, slow, integral)


@register_skill
class PlaceSkill(Skill):
    """Put the held object on a surface, object or region: ``place(obj, target)``."""

    op = "place"
    max_steps = 400

    def act(self, env: LiberoEnv) -> ActionStream:
        held, target = self.step.args[:2]
        yield from release_stream(self, env, held, target)

    def verify(self, env: LiberoEnv) -> bool:
        held, target = self.step.args[:2]
        return env.eval_atom(("on", held, target))


@register_skill
class StackSkill(PlaceSkill):
    """Put the held object on top of another object: ``stack(obj, base)``."""

    op = "stack"


@register_skill
class PutInSkill(Skill):
    """Drop the held object into a container or region: ``put_in(obj, container)``."""

    op = "put_in"
    max_steps = 400

    def act(self, env: LiberoEnv) -> ActionStream:
        held, target = self.step.args[:2]
        region = resolve_container(env, target)
        yield from release_stream(self, env, held, region, drop=True)

    def verify(self, env: LiberoEnv) -> bool:
        held, target = self.step.args[:2]
        return env.eval_atom(("in", held, resolve_container(env, target)))


@register_skill
class TakeOutSkill(Skill):
    """Lift the held object out of a container and away from it: ``take_out(obj, container)``.

    Ends holding the object 0.15 m beside the container, above its walls.
    """

    op = "take_out"
    max_steps = 300

    def act(self, env: LiberoEnv) -> ActionStream:
        held, container = self.step.args[:2]
        if not is_holding(env, held):
            yield from grasp_stream(self, env, held)
        quat = env.eef_pose().quat
        eef = env.eef_pose().pos
        low, high = env.bounding_box(
            container if container not in env.site_names else held
        )
        hang = float(eef[2] - env.bounding_box(held)[0][2])
        up = max(eef[2], float(high[2]) + hang + CLEARANCE_M)
        yield from move_to(
            env,
            np.array([eef[0], eef[1], up]),
            quat,
            GRIPPER_CLOSED,
            _slow(self.motion, 0.6),
            target_name="point above the container",
        )
        away = eef[:2] - (low[:2] + high[:2]) / 2
        away = away / (np.linalg.norm(away) + 1e-9) * 0.15
        yield from move_to(
            env,
            np.array([eef[0] + away[0], eef[1] + away[1], up]),
            quat,
            GRIPPER_CLOSED,
            _slow(self.motion, 0.6),
            target_name="point beside the container",
            strict=False,
        )

    def verify(self, env: LiberoEnv) -> bool:
        held, container = self.step.args[:2]
        region = container if container in env.site_names else None
        if region is None:
            try:
                region = resolve_container(env, container)
            except SkillFailure:
                return is_holding(env, held)
        return is_holding(env, held) and not env.eval_atom(("in", held, region))


@register_skill
class PushSkill(Skill):
    """Slide an object along the table into a region: ``push(obj, region)``.

    An object is pushed from behind with the closed fingertips, through its
    centre. A plate-like object (low and wider than the gripper) is instead
    grasped by the rim and carried, see the note in ``act``.
    """

    op = "push"
    max_steps = 400
    tolerance_m = 0.015

    def act(self, env: LiberoEnv) -> ActionStream:
        obj, region = self.step.args[:2]
        low, high = env.bounding_box(obj)
        flat = float(high[2] - low[2]) < 0.03
        if flat and float(max(high[:2] - low[:2])) > MAX_GRASP_WIDTH_M:
            # NOTE: a plate tips over its low rim when pushed from inside, and
            # reaching behind it can run the hand into nearby furniture, so a
            # plate-like object is taken by the rim and carried instead.
            yield from grasp_stream(self, env, obj)
            yield from release_stream(self, env, obj, region)
            return
        yield from self._push_from_behind(env, obj, region)

    def _push_from_behind(self, env: LiberoEnv, obj: str, region: str) -> ActionStream:
        motion = self.motion
        quat = _push_quat(env, obj, region)
        low, high = env.bounding_box(obj)
        radius = float(max(high[:2] - low[:2])) / 2
        push_z = float(low[2]) + 0.012
        lead = -(radius + 0.025)

        centre = env.pose(obj).pos[:2]
        start = centre + _unit(env.pose(region).pos[:2] - centre) * lead
        eef = env.eef_pose().pos
        safe_z = max(eef[2], float(high[2]) + APPROACH_HEIGHT_M)
        yield from move_to(
            env,
            np.array([eef[0], eef[1], safe_z]),
            quat,
            GRIPPER_CLOSED,
            motion,
            target_name="start height",
            strict=False,
            max_steps=40,
        )
        yield from move_to(
            env,
            np.array([start[0], start[1], safe_z]),
            quat,
            GRIPPER_CLOSED,
            motion,
            target_name=f"point above {obj}",
        )
        yield from move_to(
            env,
            np.array([start[0], start[1], push_z]),
            quat,
            GRIPPER_CLOSED,
            _slow(motion),
            target_name=f"contact point of {obj}",
            strict=False,
            max_steps=60,
        )

        slow = _slow(motion, 0.3)
        integral = np.zeros(3)
        for _ in range(250):
            centre = env.pose(obj).pos[:2]
            error = env.pose(region).pos[:2] - centre
            if np.linalg.norm(error) < self.tolerance_m:
                break
            direction = _unit(error)
            # Aim a little past the contact point so the fingertips keep pressing.
            pusher = centre + direction * (
                lead + min(0.03, float(np.linalg.norm(error)))
            )
            yield servo_action(
                env,
                np.array([pusher[0], pusher[1], push_z]),
                quat,
                GRIPPER_CLOSED,
                slow,
                integral,
            )
        retreat = env.eef_pose().pos + np.array([0.0, 0.0, RETREAT_HEIGHT_M])
        yield from move_to(
            env,
            retreat,
            quat,
            GRIPPER_CLOSED,
            motion,
            target_name="retreat height",
            strict=False,
            max_steps=30,
        )

    def verify(self, env: LiberoEnv) -> bool:
        obj, region = self.step.args[:2]
        return env.eval_atom(("on", obj, region))


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / (np.linalg.norm(vector) + 1e-9)


def _push_quat(env: LiberoEnv, obj: str, region: str) -> np.ndarray:
    """Yaw the hand so its long side runs along the push, which keeps it narrow sideways."""
    direction = _unit(env.pose(region).pos[:2] - env.pose(obj).pos[:2])
    yaw = _wrap_yaw(float(np.arctan2(direction[0], -direction[1])))
    return yaw_quat(TOP_DOWN_QUAT, yaw)


__all__ = [
    "GraspPlan",
    "GraspSkill",
    "PlaceSkill",
    "PushSkill",
    "PutInSkill",
    "StackSkill",
    "TakeOutSkill",
    "hold",
    "plan_grasp",
]
