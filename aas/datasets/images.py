"""Image helpers shared by the exports: upright orientation and PNG coding.

LIBERO renders with OpenGL's origin at the bottom left, so the images stored
in its demo files are upside down and mirrored. Turning them upright flips
both image axes, which is a 180 degree rotation.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

# Value of the demo-file attribute ``macros_image_convention`` for images that
# are already upright. LIBERO's own files store ``"opengl"`` (upside down).
UPRIGHT_CONVENTION = "opencv"


def upright(images: np.ndarray) -> np.ndarray:
    """Flip images of shape ``[..., H, W, C]`` along both image axes."""
    if images.ndim < 3:
        raise ValueError(
            f"expected images shaped [..., H, W, C], got shape {images.shape}"
        )
    return np.ascontiguousarray(images[..., ::-1, ::-1, :])


def needs_flip(attrs: dict[str, Any]) -> bool:
    """Tell whether a demo's images are stored upside down (LIBERO's default)."""
    convention = attrs.get("macros_image_convention", "opengl")
    if isinstance(convention, bytes):
        convention = convention.decode()
    return str(convention) != UPRIGHT_CONVENTION


def encode_png(image: np.ndarray, compress_level: int = 1) -> bytes:
    """Encode one uint8 RGB image ``[H, W, 3]`` as PNG bytes.

    ``compress_level`` is zlib's level (0 to 9). The default of 1 encodes
    faster than PIL's default of 6 at the cost of somewhat larger files.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(
            f"expected a uint8 RGB image shaped [H, W, 3], got {image.dtype} {image.shape}"
        )
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """Decode PNG bytes into a uint8 RGB array ``[H, W, 3]``."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))
