"""Synthetic LIBERO-layout demos with known segment boundaries.

Each demo is one or two pick-and-place pairs. The end effector moves between
waypoints with minimum-jerk profiles (so it stops at each waypoint), the
gripper command switches at known frames and the fingers follow over a few
frames. The reference boundaries are where a grasp holds the object
(fingers settled and lift begun) and where a place has released it
(fingers settled open). Images are small renders of the gripper position,
stored upside down as LIBERO stores them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aas.demo import ACTIONS, AGENTVIEW, EE_POS, GRIPPER_STATES, JOINT_STATES, Demo
from aas.schema import Plan, Provenance, Segment, Segmentation, Step

OPEN_FINGER_M = 0.04
HOLD_FINGER_M = 0.02
SETTLE_FRAMES = 6
LIFT_FRAMES = 3

OBJECTS = (("akita_black_bowl_1", "plate_1"), ("butter_1", "basket_1"))


@dataclass(frozen=True)
class FixtureDemo:
    demo: Demo
    plan: Plan
    reference: Segmentation


def _min_jerk(a: np.ndarray, b: np.ndarray, frames: int) -> np.ndarray:
    """Positions ``[frames, 3]`` from ``a`` to ``b`` with zero speed at both ends."""
    s = np.linspace(0.0, 1.0, frames)
    blend = 10 * s**3 - 15 * s**4 + 6 * s**5
    return a + (b - a) * blend[:, None]


def _render(ee: np.ndarray, closed: np.ndarray, size: int) -> np.ndarray:
    """Upside-down images ``[T, size, size, 3]`` uint8 of the gripper as a square."""
    frames = np.full((len(ee), size, size, 3), 90, dtype=np.uint8)
    frames[:, :3, :3] = (255, 0, 0)  # marks the upright image's top-left corner
    for t, (pos, shut) in enumerate(zip(ee, closed)):
        col = int(np.clip((pos[0] + 0.3) / 0.6 * (size - 4), 0, size - 4))
        row = int(np.clip((0.5 - pos[2]) / 0.5 * (size - 4), 0, size - 4))
        frames[t, row : row + 4, col : col + 4] = (0, 200, 0) if shut else (0, 0, 200)
    return frames[:, ::-1, ::-1].copy()


def make_demo(
    index: int, seed: int = 0, pairs: int | None = None, image_size: int = 32
) -> FixtureDemo:
    """Build demo ``demo_<index>`` with its plan and reference segmentation."""
    rng = np.random.default_rng([seed, index])
    pairs = pairs if pairs is not None else 1 + index % 2
    home = np.array([0.0, 0.0, 0.4])
    path = [home[None]]
    closed_runs = []
    steps, ends = [], []
    frame = 0
    position = home
    for pair in range(pairs):
        obj, target = OBJECTS[pair]
        pick = np.array([rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2), 0.05])
        place = np.array([rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2), 0.08])
        legs = [
            (pick + [0, 0, 0.15], int(rng.integers(25, 45))),
            (pick, int(rng.integers(10, 18))),
            (pick, SETTLE_FRAMES + 2),  # close the gripper at rest
            (pick + [0, 0, 0.2], int(rng.integers(12, 20))),
            (place + [0, 0, 0.15], int(rng.integers(25, 45))),
            (place, int(rng.integers(10, 18))),
            (place, SETTLE_FRAMES + 2),  # open the gripper at rest
            (place + [0, 0, 0.15], int(rng.integers(10, 16))),
        ]
        for leg, (target_pos, frames) in enumerate(legs):
            if leg == 2:
                close_at = frame
            if leg == 6:
                open_at = frame
                closed_runs.append((close_at, open_at))
            path.append(_min_jerk(position, target_pos, frames))
            position = target_pos
            frame += frames
            if leg == 2:
                ends.append(close_at + SETTLE_FRAMES + LIFT_FRAMES)
            if leg == 6:
                ends.append(open_at + SETTLE_FRAMES)
        steps.append(Step("grasp", (obj,), f"pick up the {obj.rsplit('_', 1)[0]}"))
        steps.append(
            Step("place", (obj, target), f"place it on the {target.rsplit('_', 1)[0]}")
        )
    ee = np.concatenate(path)[1:]
    num_frames = len(ee)

    closed = np.zeros(num_frames, dtype=bool)
    for start, stop in closed_runs:
        closed[start:stop] = True
    opening = np.full(num_frames, OPEN_FINGER_M)
    for t in range(1, num_frames):
        goal = HOLD_FINGER_M if closed[t] else OPEN_FINGER_M
        step = (OPEN_FINGER_M - HOLD_FINGER_M) / SETTLE_FRAMES
        opening[t] = opening[t - 1] + np.clip(goal - opening[t - 1], -step, step)

    actions = np.zeros((num_frames, 7), dtype=np.float32)
    actions[:-1, :3] = np.diff(ee, axis=0) * 50.0
    actions[:, 6] = np.where(closed, 1.0, -1.0)
    arrays = {
        ACTIONS: actions,
        EE_POS: ee.astype(np.float32),
        GRIPPER_STATES: np.stack([opening / 2, -opening / 2], axis=1).astype(
            np.float32
        ),
        JOINT_STATES: np.zeros((num_frames, 7), dtype=np.float32),
        AGENTVIEW: _render(ee, closed, image_size),
    }
    plan = Plan(tuple(steps), problem="fixture_pick_place")
    demo = Demo.from_arrays(
        f"demo_{index}", arrays, instruction="put the objects on their targets"
    )
    starts = [0] + [e + 1 for e in ends[:-1]]
    segment_ends = ends[:-1] + [num_frames - 1]
    segments = tuple(
        Segment(s.op, s.args, a, b, 1.0, "reference", s.instruction)
        for s, a, b in zip(steps, starts, segment_ends)
    )
    reference = Segmentation(
        demo_key=demo.key,
        num_frames=num_frames,
        segments=segments,
        provenance=Provenance(segmenter="reference", version="1"),
        plan=plan,
        demo_hash=demo.action_hash(),
    )
    return FixtureDemo(demo, plan, reference)


def make_demos(count: int, seed: int = 0, image_size: int = 32) -> list[FixtureDemo]:
    return [make_demo(i, seed=seed, image_size=image_size) for i in range(count)]
