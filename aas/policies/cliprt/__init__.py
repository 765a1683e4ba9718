"""CLIP-RT+: an open_clip backbone with a non-causal action decoder.

``CLIPRTConfig`` describes the architecture, ``CLIPRTModel`` is the network,
``save_pretrained`` / ``from_pretrained`` and ``load_published_checkpoint``
handle weights, ``train`` runs training (``aas train``), and ``CLIPRTPolicy``
serves the model behind ``aas.policies.base.Policy``.
"""

from aas.policies.cliprt.checkpoint import (
    CheckpointMismatchError,
    from_pretrained,
    load_published_checkpoint,
    save_pretrained,
)
from aas.policies.cliprt.config import TINY_MODEL_NAME, CLIPRTConfig
from aas.policies.cliprt.model import CLIPRTModel
from aas.policies.cliprt.policy import CLIPRTPolicy

__all__ = [
    "TINY_MODEL_NAME",
    "CLIPRTConfig",
    "CLIPRTModel",
    "CLIPRTPolicy",
    "CheckpointMismatchError",
    "from_pretrained",
    "load_published_checkpoint",
    "save_pretrained",
]
