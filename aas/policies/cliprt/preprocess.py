"""Image and state preparation shared by CLIP-RT+ training and inference.

The published LIBERO evaluation of CLIP-RT+ (``clip_rt/libero/libero_utils.py``
in the copy of github.com/clip-rt/clip-rt inside
github.com/stfntbkv/Robotic-Simulation-GATE) rotates the 256 px agentview
render by 180 degrees. It then JPEG-encodes and decodes the image, because its
RLDS training images were JPEG files, and resizes it to 224 px with Lanczos
filtering. The model's own open_clip preprocessing comes last.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image

# Quality of TensorFlow's tf.image.encode_jpeg default, which the published
# pipeline uses for its JPEG round trip.
JPEG_QUALITY = 95


def upright(image: np.ndarray) -> np.ndarray:
    """Rotate a LIBERO render ``[H, W, 3]`` by 180 degrees (flip both axes)."""
    return np.ascontiguousarray(image[::-1, ::-1])


def resize_like_eval(
    image: np.ndarray | Image.Image, size: int | None, jpeg: bool = True
) -> Image.Image:
    """Return an upright uint8 RGB image as the published pipeline feeds the model.

    Args:
        image: ``[H, W, 3]`` uint8 array or PIL image, already upright.
        size: output side length in pixels, or ``None`` to keep the size.
        jpeg: apply the JPEG round trip of the published data.
    """
    pil = (
        image
        if isinstance(image, Image.Image)
        else Image.fromarray(_as_uint8_rgb(image))
    )
    pil = pil.convert("RGB")
    if jpeg:
        buffer = io.BytesIO()
        pil.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        buffer.seek(0)
        pil = Image.open(buffer).convert("RGB")
    # NOTE: PIL's Lanczos filter replaces TensorFlow's antialiased lanczos3
    # here. The difference between the two was not measured.
    if size is not None and pil.size != (size, size):
        pil = pil.resize((size, size), Image.Resampling.LANCZOS)
    return pil


def _as_uint8_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an [H, W, 3] RGB image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}")
    return image


def quat_to_axis_angle(quat: np.ndarray) -> np.ndarray:
    """Convert a unit quaternion ``(x, y, z, w)`` to an axis-angle vector (radians)."""
    x, y, z, w = (float(v) for v in quat)
    w = min(max(w, -1.0), 1.0)
    sine = np.sqrt(1.0 - w * w)
    if sine < 1e-8:
        return np.zeros(3, dtype=np.float32)
    return (np.array([x, y, z]) * 2.0 * np.arccos(w) / sine).astype(np.float32)


def state_from_obs(obs: Mapping[str, Any], state_dim: int) -> np.ndarray:
    """Build the proprioceptive state ``[state_dim]`` float32 from a LIBERO observation.

    Layout: end-effector position (3, metres), end-effector axis-angle (3,
    radians), gripper finger positions (2, metres), zero padding up to
    ``state_dim``.
    """
    # NOTE: this layout must equal the one of the training shards' state.npy.
    # An exporter with another layout would feed wrong inputs without an error.
    parts = [
        np.asarray(obs["robot0_eef_pos"], dtype=np.float32),
        quat_to_axis_angle(np.asarray(obs["robot0_eef_quat"])),
        np.asarray(obs["robot0_gripper_qpos"], dtype=np.float32),
    ]
    state = np.concatenate(parts)
    if state.shape[0] > state_dim:
        raise ValueError(
            f"observation state has {state.shape[0]} values, more than state_dim={state_dim}"
        )
    return np.pad(state, (0, state_dim - state.shape[0])).astype(np.float32)
