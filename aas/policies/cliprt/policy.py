"""CLIP-RT+ behind the simulator-facing ``Policy`` interface."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aas.policies.base import Policy
from aas.policies.cliprt.checkpoint import from_pretrained
from aas.policies.cliprt.model import CLIPRTModel
from aas.policies.cliprt.preprocess import resize_like_eval, state_from_obs, upright

logger = logging.getLogger(__name__)

AGENTVIEW_KEY = "agentview_image"


class CLIPRTPolicy(Policy):
    """Predict action chunks ``[chunk_size, action_dim]`` with a CLIP-RT+ model.

    Images go through the published evaluation pipeline: upright (180 degree
    rotation of the simulator render), JPEG round trip, resize to
    ``config.eval_resize`` pixels, then open_clip's eval preprocessing.
    Instruction embeddings depend only on the instruction, so they are
    computed once and kept in an LRU cache of ``cache_size`` entries.

    Args:
        model: a trained ``CLIPRTModel``.
        device: torch device for inference; bf16 autocast is used on CUDA.
        image_key: observation key of the camera image.
        flip: rotate the image 180 degrees first (true for LIBERO renders).
        cache_size: instruction embeddings kept; 0 disables caching.
    """

    name = "cliprt"

    def __init__(
        self,
        model: CLIPRTModel,
        device: str | torch.device = "cpu",
        image_key: str = AGENTVIEW_KEY,
        flip: bool = True,
        cache_size: int = 1024,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.image_key = image_key
        self.flip = flip
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path, device: str | torch.device = "cpu", **kwargs: Any
    ) -> CLIPRTPolicy:
        """Load a ``save_pretrained`` folder or Hub id and wrap it as a policy."""
        return cls(from_pretrained(name_or_path), device=device, **kwargs)

    def preprocess_image(self, obs: Mapping[str, Any]) -> torch.Tensor:
        """Turn ``obs[image_key]`` (``[H, W, 3]`` uint8) into a model input ``[3, S, S]``."""
        if self.image_key not in obs:
            raise KeyError(
                f"observation has no {self.image_key!r} image; keys: {sorted(obs)}"
            )
        image = np.asarray(obs[self.image_key])
        if self.flip:
            image = upright(image)
        pil = resize_like_eval(image, self.model.config.eval_resize)
        return self.model.preprocess_eval(pil)

    def instruction_embeddings(self, instructions: list[str]) -> torch.Tensor:
        """Embed instructions ``[batch, embed_dim]``, computing only uncached ones."""
        unique = list(dict.fromkeys(instructions))
        todo = [text for text in unique if text not in self._cache]
        computed: dict[str, torch.Tensor] = {}
        if todo:
            tokens = self.model.tokenize(todo).to(self.device)
            with torch.inference_mode(), self._autocast():
                embeddings = self.model.encode_instruction(tokens).float()
            computed = dict(zip(todo, embeddings))
        if self.cache_size > 0:
            for text, embedding in computed.items():
                self._cache[text] = embedding
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            for text in unique:
                if text in self._cache:
                    self._cache.move_to_end(text)
        lookup = {text: computed.get(text, self._cache.get(text)) for text in unique}
        return torch.stack([lookup[text] for text in instructions])

    def clear_cache(self) -> None:
        """Drop all cached instruction embeddings."""
        self._cache.clear()

    def predict(self, obs: Mapping[str, Any], instruction: str) -> np.ndarray:
        """Return one action chunk ``[chunk_size, action_dim]`` float32."""
        return self.predict_batch([obs], [instruction])[0]

    def predict_batch(
        self, observations: list[Mapping[str, Any]], instructions: list[str]
    ) -> np.ndarray:
        """Return action chunks ``[batch, chunk_size, action_dim]`` float32, one forward pass."""
        if len(observations) != len(instructions):
            raise ValueError(
                f"{len(observations)} observations but {len(instructions)} instructions"
            )
        images = torch.stack([self.preprocess_image(obs) for obs in observations]).to(
            self.device
        )
        state = None
        if self.model.config.state_dim:
            dim = self.model.config.state_dim
            state = torch.from_numpy(
                np.stack([state_from_obs(o, dim) for o in observations])
            ).to(self.device)
        text = self.instruction_embeddings(instructions)
        with torch.inference_mode(), self._autocast():
            image_embedding = self.model.encode_image(images)
            chunks = self.model.decode(
                image_embedding, text.to(image_embedding.dtype), state
            )
        return chunks.float().cpu().numpy()

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()
