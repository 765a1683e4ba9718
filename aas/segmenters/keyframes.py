"""Keyframe sampling and encoding for segmenters that look at images.

Two strategies choose the frames sent to a vision-language model:

- ``uniform``: every ``stride``-th frame, or ``budget`` frames evenly spaced.
- ``events``: the same budget, spent mostly in windows around kinematic
  events (gripper close and open frames first, then end-effector speed
  minima), where grasp and release boundaries lie, plus a few evenly spaced
  context frames.

Both always include the first and the last frame. Selected frames are
flipped upright (LIBERO renders its cameras upside down, so both image axes
are reversed) and encoded as PNG at a configurable size.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from aas.demo import AGENTVIEW, Demo

UNIFORM = "uniform"
EVENTS = "events"
STRATEGIES = (UNIFORM, EVENTS)


@dataclass
class KeyframeConfig:
    """Keyframe selection and encoding settings."""

    # "uniform" (evenly spaced) or "events" (dense around kinematic events).
    strategy: str = UNIFORM
    # Number of keyframes per demo, first and last frame included.
    budget: int = 32
    # Frames between uniform keyframes; 0 spaces `budget` frames evenly instead.
    stride: int = 0
    # Half-width in frames of the window sampled around each kinematic event.
    event_window: int = 8
    # Spacing in frames between keyframes inside an event window.
    event_step: int = 2
    # Share of the budget kept for evenly spaced context frames (events only).
    context_fraction: float = 0.25
    # Side length in pixels of the square PNG sent per keyframe.
    image_size: int = 224
    # Image dataset the keyframes are taken from.
    camera: str = AGENTVIEW

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"keyframes.strategy must be one of {STRATEGIES}, got {self.strategy!r}"
            )
        if self.budget < 2 and self.stride <= 0:
            raise ValueError(f"keyframes.budget must be at least 2, got {self.budget}")
        if self.stride < 0:
            raise ValueError(f"keyframes.stride must be >= 0 frames, got {self.stride}")
        if self.event_window < 0 or self.event_step < 1:
            raise ValueError(
                "keyframes.event_window must be >= 0 and keyframes.event_step >= 1 "
                f"frames, got {self.event_window} and {self.event_step}"
            )
        if not 0.0 <= self.context_fraction <= 1.0:
            raise ValueError(
                f"keyframes.context_fraction must be in [0, 1], got {self.context_fraction}"
            )
        if self.image_size < 8:
            raise ValueError(
                f"keyframes.image_size must be >= 8 px, got {self.image_size}"
            )


@dataclass(frozen=True)
class Keyframe:
    """One encoded keyframe: its frame index in the demo and its upright PNG."""

    frame: int
    png: bytes


def uniform_keyframes(num_frames: int, stride: int = 0, budget: int = 32) -> list[int]:
    """Return evenly spaced frame indices, first and last frame included.

    With ``stride > 0`` every ``stride``-th frame is taken; otherwise
    ``budget`` frames are spaced evenly (all frames when ``budget >=
    num_frames``).
    """
    if num_frames < 1:
        raise ValueError(f"a demo needs at least one frame, got {num_frames}")
    last = num_frames - 1
    if stride > 0:
        frames = set(range(0, num_frames, stride))
    else:
        count = min(budget, num_frames)
        frames = set(np.linspace(0, last, count).round().astype(int).tolist())
    frames.update((0, last))
    return sorted(frames)


def event_keyframes(
    num_frames: int,
    events: Sequence[int],
    budget: int,
    window: int = 8,
    step: int = 2,
    context_fraction: float = 0.25,
    secondary: Sequence[int] = (),
) -> list[int]:
    """Return ``budget`` frame indices concentrated around ``events``.

    A share ``context_fraction`` of the budget goes to evenly spaced context
    frames (first and last included). The rest is dealt round-robin over the
    events: each event frame first, then frames ``step``, ``2*step``...
    after and before it, out to ``window`` frames. ``secondary`` events
    (speed minima, say) are served the same way once every primary window
    is full. Budget left after that fills the largest gaps. Without any
    events this is ``uniform_keyframes``.
    """
    count = min(budget, num_frames)
    last = num_frames - 1
    tiers = [_clip_frames(events, last), _clip_frames(secondary, last)]
    if not tiers[0] and not tiers[1]:
        return uniform_keyframes(num_frames, budget=count)

    context_count = min(count, max(2, round(count * context_fraction)))
    chosen = set(uniform_keyframes(num_frames, budget=context_count))
    # Frames after an event come first: a grasp or release takes effect
    # after the gripper command that causes it.
    offsets = [0]
    for distance in range(step, window + 1, step):
        offsets += [distance, -distance]
    for centres in tiers:
        for offset in offsets:
            for centre in centres:
                if len(chosen) >= count:
                    return sorted(chosen)
                if 0 <= centre + offset <= last:
                    chosen.add(centre + offset)

    while len(chosen) < count:
        ordered = sorted(chosen)
        gaps = np.diff(ordered)
        widest = int(np.argmax(gaps))
        chosen.add(ordered[widest] + int(gaps[widest]) // 2)
    return sorted(chosen)


def _clip_frames(frames: Sequence[int], last: int) -> list[int]:
    return sorted({min(max(int(f), 0), last) for f in frames})


def encode_frame(image: np.ndarray, size: int) -> bytes:
    """Flip one LIBERO camera image upright and encode it as a square PNG.

    Args:
        image: ``[H, W, 3]`` uint8 RGB as stored in the demo (upside down).
        size: output side length in pixels.
    """
    upright = np.ascontiguousarray(np.asarray(image)[::-1, ::-1])
    if upright.dtype != np.uint8:
        raise ValueError(
            f"keyframe images must be uint8 RGB, got dtype {upright.dtype}"
        )
    picture = Image.fromarray(upright)
    if picture.size != (size, size):
        picture = picture.resize((size, size), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def encode_keyframes(
    demo: Demo, frames: Sequence[int], camera: str = AGENTVIEW, size: int = 224
) -> list[Keyframe]:
    """Read only ``frames`` of ``camera`` from ``demo`` and encode them upright."""
    images = demo.frames(camera, list(frames))
    return [Keyframe(int(f), encode_frame(img, size)) for f, img in zip(frames, images)]


def kinematic_event_frames(demo: Demo) -> tuple[list[int], list[int]]:
    """Return gripper event frames (change and settle) and speed-minimum frames."""
    from aas.segmenters.kinematic_events import detect_events

    events = detect_events(demo)
    gripper = {e.frame for e in events.gripper_events}
    gripper |= {e.settled for e in events.gripper_events}
    minima = {int(f) for f in events.speed_minima}
    return sorted(gripper), sorted(minima - gripper)


def select_keyframes(demo: Demo, config: KeyframeConfig) -> list[int]:
    """Choose the keyframes of ``demo`` with the strategy of ``config``."""
    if config.strategy == EVENTS:
        gripper, minima = kinematic_event_frames(demo)
        return event_keyframes(
            demo.num_frames,
            gripper,
            config.budget,
            window=config.event_window,
            step=config.event_step,
            context_fraction=config.context_fraction,
            secondary=minima,
        )
    return uniform_keyframes(
        demo.num_frames, stride=config.stride, budget=config.budget
    )
