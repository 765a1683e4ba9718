"""Configuration of the CLIP-RT+ policy: backbone, action chunk and prompt.

The published CLIP-RT+ model (Kang et al., "CLIP-RT", arXiv:2411.00508, and
its LIBERO fine-tunes) uses the open_clip backbone ``ViT-H-14-378-quickgelu``
initialised from the ``dfn5b`` weights, 8-step chunks of 7-D actions and the
prompt template below. ``TINY_MODEL_NAME`` names a small open_clip
architecture shipped with this package (``model_configs/``) for tests and CPU
demos. Importing this module registers it with open_clip's public
``add_model_config``, so it works wherever open_clip accepts a model name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip

PUBLISHED_MODEL_NAME = "ViT-H-14-378-quickgelu"
PUBLISHED_PRETRAINED = "dfn5b"
TINY_MODEL_NAME = "aas-cliprt-tiny"
PROMPT_TEMPLATE = (
    "what motion should the robot arm perform to complete the instruction "
    "'{instruction}'?"
)
# Side length in pixels of the images the published evaluation feeds to the
# model's own preprocessing (256 px renders flipped and resized to 224 px).
EVAL_RESIZE = 224

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"
if TINY_MODEL_NAME not in open_clip.list_models():
    open_clip.add_model_config(MODEL_CONFIG_DIR)


@dataclass
class CLIPRTConfig:
    """Architecture of a CLIP-RT+ policy (saved as the checkpoint's config.json)."""

    # Any open_clip model name (open_clip.list_models()), including
    # aas-cliprt-tiny (8.4 M parameters, 64 px).
    model_name: str = PUBLISHED_MODEL_NAME
    # open_clip pretrained tag or weight file for the backbone (published:
    # dfn5b); null initialises randomly and downloads nothing.
    pretrained: str | None = None
    # Actions per predicted chunk (frames at 20 Hz in LIBERO).
    chunk_size: int = 8
    # Dimensions per action (7: delta position, delta axis-angle, gripper).
    action_dim: int = 7
    # Size of the proprioceptive state fed as one extra context token; 0 turns
    # proprioception off, as in the published model.
    state_dim: int = 0
    # Residual blocks of the MLP action head.
    head_blocks: int = 2
    # Instruction prompt with an {instruction} field.
    prompt_template: str = PROMPT_TEMPLATE
    # Lower-case the filled-in prompt.
    lowercase_prompt: bool = True
    # Side length in pixels that images are resized to before the model's own
    # preprocessing; null resizes straight to the backbone's input size.
    eval_resize: int | None = EVAL_RESIZE

    def __post_init__(self) -> None:
        if self.model_name not in open_clip.list_models():
            raise ValueError(
                f"unknown open_clip model_name {self.model_name!r}; choose one of "
                f"open_clip.list_models(), such as {TINY_MODEL_NAME!r} or "
                f"{PUBLISHED_MODEL_NAME!r}"
            )
        for name in ("chunk_size", "action_dim", "head_blocks"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"{name} must be at least 1, got {getattr(self, name)}"
                )
        if self.state_dim < 0:
            raise ValueError(
                f"state_dim must be 0 (off) or positive, got {self.state_dim}"
            )
        if "{instruction}" not in self.prompt_template:
            raise ValueError(
                f"prompt_template {self.prompt_template!r} has no {{instruction}} field"
            )

    @property
    def num_queries(self) -> int:
        """Action query tokens of the decoder: ``chunk_size * action_dim``."""
        return self.chunk_size * self.action_dim

    def prompt(self, instruction: str) -> str:
        """Fill the prompt template with ``instruction``."""
        text = self.prompt_template.format(instruction=instruction.strip())
        return text.lower() if self.lowercase_prompt else text

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CLIPRTConfig:
        """Build a config from ``to_dict`` output; unknown keys raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown CLIP-RT config fields {unknown}; known: {sorted(known)}"
            )
        return cls(**data)
