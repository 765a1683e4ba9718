"""Saving and loading CLIP-RT+ weights.

Own checkpoints are a folder with ``model.safetensors`` and ``config.json``
(``save_pretrained`` / ``from_pretrained``), loadable from a local folder or a
Hugging Face Hub model id.

Published CLIP-RT+ checkpoints come from the authors' open_clip fork and use
its parameter names (read from ``clip_rt/open_clip/src/open_clip/model.py`` in
the copy of github.com/clip-rt/clip-rt inside
github.com/stfntbkv/Robotic-Simulation-GATE). ``load_published_checkpoint``
renames them and rejects a checkpoint that does not cover the model exactly.
The fork's own loader uses ``strict=False`` and so loads a wrong checkpoint
partially without a warning. Pickled files are read with
``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from aas.policies.cliprt.config import CLIPRTConfig
from aas.policies.cliprt.model import CLIPRTModel
from aas.schema import write_atomic

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT_NAME = "aas-cliprt"
FORMAT_VERSION = 1

# Text-tower attributes of the fork's CLIP. It registers them under ``text.``
# and again as top-level aliases, so its state dict lists each tensor twice.
_TEXT_PARTS = (
    "transformer.",
    "token_embedding.",
    "positional_embedding",
    "ln_final.",
    "text_projection",
)
# Published action-decoder and head names -> names in CLIPRTModel.
_DECODER_RENAMES = (
    (r"^(?:text2\.transformer|transformer2)\.", "decoder.transformer."),
    (
        r"^(?:text2\.positional_embedding|positional_embedding2)$",
        "decoder.positional_embedding",
    ),
    (r"^(?:text2\.ln_final|ln_final2)\.", "decoder.ln_final."),
    (r"^(?:text2\.text_projection|text_projection2)", "decoder.text_projection"),
    (r"^action_head\.layer_norm1\.", "head.norm_in."),
    (r"^action_head\.fc1\.", "head.fc_in."),
    (r"^action_head\.mlp_resnet_blocks\.(\d+)\.ffn\.0\.", r"head.blocks.\1.norm."),
    (r"^action_head\.mlp_resnet_blocks\.(\d+)\.ffn\.1\.", r"head.blocks.\1.fc."),
    (r"^action_head\.layer_norm2\.", "head.norm_out."),
    (r"^action_head\.fc2\.", "head.fc_out."),
)
_QUERY_TABLE_KEYS = ("text2.token_embedding.weight", "token_embedding2.weight")
# The fork fills every query position with this token id.
PUBLISHED_QUERY_TOKEN_ID = 0


class CheckpointMismatchError(ValueError):
    """A checkpoint's tensors do not match the model's parameters one to one."""

    def __init__(
        self,
        source: str,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[str],
    ) -> None:
        self.source = source
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
        lines = [f"checkpoint {source} does not match the model; nothing was loaded."]
        for title, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch", mismatched),
        ):
            if keys:
                lines.append(f"{title} ({len(keys)}): " + ", ".join(keys))
        lines.append(
            "Check that model_name, chunk_size, action_dim and state_dim match the checkpoint."
        )
        super().__init__("\n".join(lines))


def save_pretrained(model: CLIPRTModel, directory: str | Path) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory``; return it."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {
        name: value.detach().cpu().contiguous()
        for name, value in model.state_dict().items()
    }
    tmp = out / f".{WEIGHTS_FILE}.tmp"
    save_file(tensors, str(tmp), metadata={"format": FORMAT_NAME})
    tmp.replace(out / WEIGHTS_FILE)
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "cliprt": model.config.to_dict(),
    }
    write_atomic(out / CONFIG_FILE, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return out


def read_config(directory: str | Path) -> CLIPRTConfig:
    """Read the ``CLIPRTConfig`` stored in a checkpoint folder's ``config.json``."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found; a CLIP-RT checkpoint folder contains {CONFIG_FILE} and {WEIGHTS_FILE}"
        )
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT_NAME or "cliprt" not in meta:
        raise ValueError(
            f"{path} is not an {FORMAT_NAME} config (format={meta.get('format')!r})"
        )
    return CLIPRTConfig.from_dict(meta["cliprt"])


def from_pretrained(
    name_or_path: str | Path, device: str | torch.device = "cpu"
) -> CLIPRTModel:
    """Load a model saved by ``save_pretrained`` from a folder or a Hub model id.

    A Hub id (``owner/name``) downloads only ``config.json`` and
    ``model.safetensors`` and needs the network. The backbone is built without
    open_clip pretrained weights, since the checkpoint replaces all of them.
    Raises ``CheckpointMismatchError`` when the tensors do not fit the config.
    """
    directory = _resolve_directory(name_or_path)
    config = read_config(directory)
    config.pretrained = None
    model = CLIPRTModel(config)
    state = load_file(str(directory / WEIGHTS_FILE), device="cpu")
    _load_exact(model, state, str(directory / WEIGHTS_FILE))
    return model.to(device)


def _resolve_directory(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if path.exists() or str(name_or_path).count("/") != 1:
        raise FileNotFoundError(
            f"{name_or_path} is neither a checkpoint folder nor a Hub model id (owner/name)"
        )
    if path.parent.is_dir():
        # "train/model" next to a local folder "train" is a missing local
        # checkpoint, far more likely than a Hub model of an owner "train".
        raise FileNotFoundError(
            f"checkpoint folder {name_or_path} not found, although {path.parent} "
            "exists; check that training finished (it writes model/ last), or "
            "run from another directory to load the Hub model id"
        )
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(
            repo_id=str(name_or_path), allow_patterns=[CONFIG_FILE, WEIGHTS_FILE]
        )
    except Exception as exc:  # huggingface_hub raises many error types here
        raise FileNotFoundError(
            f"{name_or_path} is not a local checkpoint folder, and downloading it as a "
            f"Hub model id failed: {exc}"
        ) from exc
    return Path(local)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read tensors from ``.safetensors`` or a pickled torch file, without running code.

    A pickled file is opened with ``weights_only=True``. A training checkpoint
    wrapped as ``{"state_dict": ...}`` is unwrapped and a DDP ``module.`` prefix
    is removed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} not found")
    if path.suffix == ".safetensors":
        state = load_file(str(path), device="cpu")
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises UnpicklingError or RuntimeError here
            raise ValueError(
                f"{path} cannot be read with torch.load(weights_only=True): {exc}. It contains "
                "objects other than tensors; convert it to safetensors in a trusted environment"
            ) from exc
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise TypeError(f"{path} contains a {type(state).__name__}, not a state dict")
    return {_strip_module(k): v for k, v in state.items()}


def remap_published_state_dict(
    state: Mapping[str, torch.Tensor], text_prefix: str = "backbone."
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename a published CLIP-RT+ state dict to ``CLIPRTModel`` names.

    Args:
        state: tensors named as in the authors' fork (``visual.*``,
            ``text.*`` and its top-level aliases, ``text2.*`` /
            ``transformer2.*`` ..., ``action_head.*``).
        text_prefix: where the backbone's text tower lives in the model:
            ``"backbone."`` for open_clip ``CLIP``, ``"backbone.text."`` for
            ``CustomTextCLIP``.

    Returns:
        ``(renamed, unmatched)``: the renamed tensors and the source keys no
        rule covers. Aliases of one tensor that disagree count as unmatched.
    """
    renamed: dict[str, torch.Tensor] = {}
    unmatched: list[str] = []
    for key, value in state.items():
        target, value = _published_target(key, value, text_prefix)
        if target is None:
            unmatched.append(key)
        elif target in renamed and not torch.equal(renamed[target], value):
            unmatched.append(f"{key} (differs from its alias)")
        else:
            renamed[target] = value
    return renamed, unmatched


def _published_target(
    key: str, value: torch.Tensor, text_prefix: str
) -> tuple[str | None, torch.Tensor]:
    if key in _QUERY_TABLE_KEYS:
        row = PUBLISHED_QUERY_TOKEN_ID
        return "decoder.token_embedding.weight", value[row : row + 1]
    for pattern, replacement in _DECODER_RENAMES:
        if re.match(pattern, key):
            return re.sub(pattern, replacement, key), value
    if key.startswith("visual.") or key in ("logit_scale", "logit_bias"):
        return "backbone." + key, value
    rest = key.removeprefix("text.")
    if rest.startswith(_TEXT_PARTS):
        return text_prefix + rest, value
    return None, value


def load_published_checkpoint(model: CLIPRTModel, path: str | Path) -> CLIPRTModel:
    """Load a published CLIP-RT+ checkpoint into ``model``, all tensors or none.

    Raises:
        CheckpointMismatchError: the file does not cover the model exactly.
            It lists missing keys (model parameters the file lacks),
            unexpected keys (file tensors with no place in the model) and
            shape mismatches. The model is left unchanged.
    """
    state = read_state_dict(path)
    text_prefix = "backbone.text." if hasattr(model.backbone, "text") else "backbone."
    renamed, unmatched = remap_published_state_dict(state, text_prefix)
    _load_exact(model, renamed, str(path), extra_unexpected=unmatched)
    logger.info(
        "loaded published CLIP-RT checkpoint %s (%d tensors)", path, len(renamed)
    )
    return model


def _load_exact(
    model: CLIPRTModel,
    state: Mapping[str, torch.Tensor],
    source: str,
    extra_unexpected: list[str] | None = None,
) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected)) + sorted(extra_unexpected or [])
    mismatched = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if state[k].shape != expected[k].shape
    )
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(source, missing, unexpected, mismatched)
    model.load_state_dict(state, strict=True)


def _strip_module(key: str) -> str:
    return key.removeprefix("module.")
