"""The ``cliprt`` entry of the policy registry, so evaluation can load a trained model.

``aas eval --policy.type=cliprt --policy.path=RUN/model`` builds a
``CLIPRTPolicy`` from a ``save_pretrained`` folder in each rollout worker.
"""

from __future__ import annotations

from dataclasses import dataclass

from aas.policies.base import Policy, PolicyConfig


@PolicyConfig.register_subclass("cliprt")
@dataclass
class CLIPRTPolicyConfig(PolicyConfig):
    """A trained CLIP-RT+ model loaded from disk or the Hub."""

    # save_pretrained folder (model.safetensors + config.json) or Hub model id.
    path: str = ""
    # Torch device of inference in each worker: "cpu" or "cuda".
    device: str = "cpu"

    def build(self) -> Policy:
        if not self.path:
            raise ValueError(
                "--policy.path is required: the model folder written by `aas train`"
            )
        from aas.policies.cliprt.policy import CLIPRTPolicy

        return CLIPRTPolicy.from_pretrained(self.path, device=self.device)
