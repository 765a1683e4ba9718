"""MP4 videos of rollouts with the current instruction drawn on each frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

FPS = 20


def caption(frame: np.ndarray, text: str) -> np.ndarray:
    """Return ``frame`` ``[H, W, 3]`` uint8 with ``text`` on a dark band at the bottom."""
    image = Image.fromarray(frame)
    scale = max(1, image.width // 128)
    image = image.resize(
        (image.width * 2 // scale * scale, image.height * 2 // scale * scale)
    )
    draw = ImageDraw.Draw(image)
    band = 14
    draw.rectangle([0, image.height - band, image.width, image.height], fill=(0, 0, 0))
    draw.text(
        (3, image.height - band + 2), text[: image.width // 6], fill=(255, 255, 255)
    )
    return np.asarray(image)


class VideoRecorder:
    """Collects upright, captioned agent-view frames and writes them as H.264 MP4."""

    def __init__(self, path: str | Path, camera: str = "agentview_image") -> None:
        self.path = Path(path)
        self.camera = camera
        self.frames: list[np.ndarray] = []

    def __call__(self, obs: dict[str, Any], instruction: str) -> None:
        image = obs.get(self.camera)
        if image is None:
            return
        upright = np.ascontiguousarray(np.asarray(image)[::-1, ::-1])
        self.frames.append(caption(upright, instruction))

    def write(self) -> Path | None:
        if not self.frames:
            return None
        import av

        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp.mp4")
        height, width = self.frames[0].shape[:2]
        with av.open(str(tmp), mode="w") as container:
            stream = container.add_stream("libx264", rate=FPS)
            stream.width = width - width % 2
            stream.height = height - height % 2
            stream.pix_fmt = "yuv420p"
            for frame in self.frames:
                crop = frame[: stream.height, : stream.width]
                for packet in stream.encode(
                    av.VideoFrame.from_ndarray(crop, format="rgb24")
                ):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        tmp.replace(self.path)
        return self.path
