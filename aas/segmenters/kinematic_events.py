"""Kinematic events of one demo: gripper close/open, end-effector speed, height.

Works from the commanded gripper action (``actions[:, 6]``, -1 open, +1
close) and the finger joint positions (``obs/gripper_states``), plus the
end-effector position at the demo's control rate (20 Hz in LIBERO). In
keyframe mode only the rows of the given frames are read, and every signal is
linearly interpolated between them, so the result depends on nothing but
those frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aas.demo import ACTIONS, EE_POS, EE_STATES, GRIPPER_STATES, ROBOT_STATES, Demo

CLOSE = "close"
OPEN = "open"


@dataclass
class EventConfig:
    """Thresholds of event detection; frames are control steps (1/20 s in LIBERO)."""

    # Source of gripper events: "action" (commanded gripper) or "fingers"
    # (finger opening crossing a threshold).
    gripper_source: str = "action"
    # Gripper command runs shorter than this many frames are treated as noise.
    min_hold_frames: int = 3
    # A command change counts as fully sharp when both neighbouring runs last
    # at least this many frames.
    stable_frames: int = 10
    # Frames searched after a command change for the fingers to stop moving.
    max_settle_frames: int = 20
    # Frames assumed for the fingers to settle when finger data is missing.
    default_settle_frames: int = 5
    # Finger speed (m/s of opening) below which the fingers count as still.
    settle_speed: float = 0.02
    # A close that leaves the fingers nearer than this (metres) grasped nothing.
    # In LIBERO the Panda fingers close to about 0.0012 m on nothing and
    # stopped at about 0.004 m on a black bowl's rim in a generated demo.
    empty_close_m: float = 0.002
    # Opening drop (metres) below the open level that counts as closed, for
    # gripper_source="fingers".
    closing_margin_m: float = 0.01
    # Width (frames) of the centred moving average applied to the speed.
    smooth_frames: int = 5
    # Half-width (frames) of the window in which a speed minimum is lowest.
    minimum_window: int = 5
    # A speed minimum must be below this fraction of the 90th-percentile speed.
    minimum_fraction: float = 0.5
    # Frames of interpolated command that halve an event's sharpness.
    blur_scale_frames: float = 10.0

    def __post_init__(self) -> None:
        if self.gripper_source not in ("action", "fingers"):
            raise ValueError(
                f"gripper_source must be 'action' or 'fingers', got {self.gripper_source!r}"
            )
        if self.smooth_frames < 1:
            raise ValueError(f"smooth_frames must be >= 1, got {self.smooth_frames}")


@dataclass(frozen=True)
class GripperEvent:
    """One gripper transition.

    ``frame`` is the first frame in the new state, ``settled`` the frame where
    the fingers stopped moving afterwards (``frame <= settled``), and
    ``strength`` in [0, 1] the sharpness of the evidence. ``empty`` marks a
    close after which the fingers met nothing.
    """

    kind: str
    frame: int
    settled: int
    strength: float
    empty: bool = False

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "frame": self.frame,
            "settled": self.settled,
            "strength": round(self.strength, 4),
            "empty": self.empty,
        }


@dataclass
class KinematicEvents:
    """Per-frame signals and detected events of one demo.

    Arrays have shape ``[T]``: ``command`` is the gripper command in [-1, 1]
    (+1 close), ``opening`` the finger opening in metres (``None`` when the
    demo has no gripper states), ``speed`` the smoothed end-effector speed in
    m/s and ``height`` the end-effector z in metres (zeros, with
    ``has_position`` false, when the demo has no end-effector position).
    ``initial_state`` is the gripper state at frame 0, and ``keyframes`` the
    frames read (empty when every frame was read).
    """

    num_frames: int
    fps: float
    command: np.ndarray
    opening: np.ndarray | None
    speed: np.ndarray
    height: np.ndarray
    gripper_events: tuple[GripperEvent, ...]
    speed_minima: np.ndarray
    initial_state: str
    keyframes: tuple[int, ...] = ()
    has_position: bool = True

    @property
    def close_frames(self) -> list[int]:
        return [e.frame for e in self.gripper_events if e.kind == CLOSE]

    @property
    def open_frames(self) -> list[int]:
        return [e.frame for e in self.gripper_events if e.kind == OPEN]


def detect_events(
    demo: Demo,
    keyframes: Sequence[int] | None = None,
    config: EventConfig | None = None,
) -> KinematicEvents:
    """Detect gripper events and speed minima in ``demo``.

    Args:
        demo: needs ``actions``; uses ``obs/gripper_states`` and the
            end-effector position (``obs/ee_pos``, ``obs/ee_states`` or
            ``robot_states``) when present.
        keyframes: frame indices to read; ``None`` reads every frame.
        config: detection thresholds.

    Raises:
        aas.demo.MissingDatasetError: the demo has no actions.
        ValueError: ``keyframes`` is empty.
    """
    config = config or EventConfig()
    num_frames = demo.num_frames
    frames = _keyframe_index(keyframes, num_frames)
    command = _signal(demo, ACTIONS, frames, num_frames)[:, -1]
    opening = None
    if demo.has(GRIPPER_STATES):
        fingers = _signal(demo, GRIPPER_STATES, frames, num_frames)
        opening = np.abs(fingers[:, 0] - fingers[:, -1])
    position = _position(demo, frames, num_frames)

    if config.gripper_source == "fingers" and opening is not None:
        closed = _closed_from_fingers(opening, config)
    else:
        closed = command > 0
    closed = _debounce(closed, config.min_hold_frames)

    if position is None:
        speed = np.zeros(num_frames)
        height = np.zeros(num_frames)
    else:
        speed = _speed(position, demo.fps, config.smooth_frames)
        height = position[:, 2].astype(np.float64)

    return KinematicEvents(
        num_frames=num_frames,
        fps=demo.fps,
        command=command.astype(np.float64),
        opening=opening,
        speed=speed,
        height=height,
        gripper_events=_gripper_events(closed, command, opening, demo.fps, config),
        speed_minima=_speed_minima(speed, config),
        initial_state="closed" if closed[0] else "open",
        keyframes=tuple(int(f) for f in frames) if frames is not None else (),
        has_position=position is not None,
    )


def _keyframe_index(
    keyframes: Sequence[int] | None, num_frames: int
) -> np.ndarray | None:
    if keyframes is None:
        return None
    frames = np.unique(
        np.clip(np.asarray(list(keyframes), dtype=np.int64), 0, num_frames - 1)
    )
    if frames.size == 0:
        raise ValueError("keyframes is empty; pass None to use every frame")
    return frames


def _interpolate(frames: np.ndarray, rows: np.ndarray, num_frames: int) -> np.ndarray:
    """Linearly interpolate rows ``[K, D]`` sampled at ``frames`` onto ``[T, D]``."""
    grid = np.arange(num_frames)
    rows = rows.reshape(len(frames), -1).astype(np.float64)
    return np.stack(
        [np.interp(grid, frames, rows[:, d]) for d in range(rows.shape[1])], 1
    )


def _signal(
    demo: Demo, name: str, frames: np.ndarray | None, num_frames: int
) -> np.ndarray:
    if frames is None:
        return np.asarray(demo.array(name), dtype=np.float64).reshape(num_frames, -1)
    return _interpolate(frames, demo.frames(name, frames), num_frames)


def _position(
    demo: Demo, frames: np.ndarray | None, num_frames: int
) -> np.ndarray | None:
    """End-effector position ``[T, 3]`` in metres, with the ``Demo.ee_pos`` fallbacks."""
    for name, columns in (
        (EE_POS, slice(0, 3)),
        (EE_STATES, slice(0, 3)),
        (ROBOT_STATES, slice(2, 5)),
    ):
        if demo.has(name):
            return _signal(demo, name, frames, num_frames)[:, columns]
    return None


def _closed_from_fingers(opening: np.ndarray, config: EventConfig) -> np.ndarray:
    open_level = float(np.percentile(opening, 95))
    return opening < open_level - config.closing_margin_m


def _runs(mask: np.ndarray) -> list[tuple[int, int, bool]]:
    """Return ``(start, stop, value)`` runs of a boolean array, ``stop`` exclusive."""
    change = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [len(mask)]])
    return [(int(a), int(b), bool(mask[a])) for a, b in zip(starts, stops)]


def _debounce(mask: np.ndarray, min_frames: int) -> np.ndarray:
    """Merge runs shorter than ``min_frames`` (except the first) into the run before."""
    mask = mask.copy()
    for start, stop, value in _runs(mask)[1:]:
        if stop - start < min_frames and start > 0:
            mask[start:stop] = mask[start - 1]
    return mask


def _speed(position: np.ndarray, fps: float, smooth_frames: int) -> np.ndarray:
    """Smoothed speed ``[T]`` in m/s from positions ``[T, 3]`` in metres."""
    step = np.linalg.norm(np.diff(position, axis=0), axis=1) * fps
    speed = np.concatenate([step[:1], step]) if step.size else np.zeros(1)
    if smooth_frames <= 1 or speed.size < 2:
        return speed
    pad = smooth_frames // 2
    padded = np.pad(speed, (pad, smooth_frames - 1 - pad), mode="edge")
    return np.convolve(padded, np.ones(smooth_frames) / smooth_frames, mode="valid")


def _speed_minima(speed: np.ndarray, config: EventConfig) -> np.ndarray:
    """Frames where the speed is lowest within ``minimum_window`` and clearly low."""
    if speed.size < 3 or not np.any(speed > 0):
        return np.zeros(0, dtype=np.int64)
    threshold = config.minimum_fraction * float(np.percentile(speed, 90))
    w = config.minimum_window
    padded = np.pad(speed, w, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * w + 1)
    lowest = windows.min(axis=1)
    previous = np.concatenate([[np.inf], speed[:-1]])
    is_minimum = (speed <= lowest) & (speed < previous) & (speed <= threshold)
    return np.flatnonzero(is_minimum)


def _gripper_events(
    closed: np.ndarray,
    command: np.ndarray,
    opening: np.ndarray | None,
    fps: float,
    config: EventConfig,
) -> tuple[GripperEvent, ...]:
    runs = _runs(closed)
    events = []
    for index in range(1, len(runs)):
        start, stop, value = runs[index]
        before = runs[index - 1][1] - runs[index - 1][0]
        after = stop - start
        kind = CLOSE if value else OPEN
        next_start = runs[index + 1][0] if index + 1 < len(runs) else len(closed)
        events.append(
            _describe_event(
                kind, start, before, after, next_start, command, opening, fps, config
            )
        )
    return tuple(events)


def _describe_event(
    kind: str,
    frame: int,
    hold_before: int,
    hold_after: int,
    next_event: int,
    command: np.ndarray,
    opening: np.ndarray | None,
    fps: float,
    config: EventConfig,
) -> GripperEvent:
    """Find where the fingers settle after a command change and rate its sharpness."""
    num_frames = len(command)
    hold = min(1.0, min(hold_before, hold_after) / config.stable_frames)

    lo = max(0, frame - config.stable_frames)
    hi = min(num_frames, frame + config.stable_frames)
    blur = int(np.count_nonzero(np.abs(command[lo:hi]) < 0.9))
    sharpness = 1.0 / (1.0 + blur / config.blur_scale_frames)

    last = max(frame, min(next_event - 1, num_frames - 1))
    empty = False
    if opening is None:
        settled = min(frame + config.default_settle_frames, last)
        finger = 0.8
    else:
        settled, finger = _settle(kind, frame, last, opening, fps, config)
        empty = kind == CLOSE and float(opening[settled]) < config.empty_close_m
        if empty:
            finger *= 0.5
    return GripperEvent(kind, frame, settled, hold * sharpness * finger, empty)


def _settle(
    kind: str,
    frame: int,
    last: int,
    opening: np.ndarray,
    fps: float,
    config: EventConfig,
) -> tuple[int, float]:
    """Return the frame where the fingers stop moving after ``frame`` and a factor in [0, 1].

    The factor is 1 when the fingers moved in the commanded direction and
    then stopped, 0.6 when they were still moving at the end of the search
    window, and 0.3 when they never moved.
    """
    direction = -1.0 if kind == CLOSE else 1.0
    stop = min(last, frame + config.max_settle_frames)
    velocity = np.diff(opening, prepend=opening[0]) * fps
    moved = False
    for t in range(frame, stop + 1):
        if direction * velocity[t] > config.settle_speed:
            moved = True
        elif moved and abs(velocity[t]) <= config.settle_speed:
            return t, 1.0
    if moved:
        return stop, 0.6
    return min(frame + config.default_settle_frames, last), 0.3
