import functools

import open_clip
import pytest
import torch
from cliprt_fixtures import one_thread  # noqa: F401  (autouse)
from open_clip.transformer import TextTransformer

from aas.policies.cliprt.checkpoint import (
    CheckpointMismatchError,
    from_pretrained,
    load_published_checkpoint,
    read_state_dict,
    remap_published_state_dict,
    save_pretrained,
)
from aas.policies.cliprt.config import TINY_MODEL_NAME, CLIPRTConfig
from aas.policies.cliprt.model import CLIPRTModel

WIDTH = 128  # text width and embed_dim of the tiny config


def _model(**overrides):
    return CLIPRTModel(CLIPRTConfig(model_name=TINY_MODEL_NAME, **overrides)).eval()


def published_state_dict() -> dict[str, torch.Tensor]:
    """Return a fresh dict over the cached synthetic published tensors."""
    return dict(_published_tensors())


@functools.cache
def _published_tensors(seed: int = 1) -> dict[str, torch.Tensor]:
    """A state dict named like the CLIP-RT fork of open_clip, for the tiny architecture.

    The fork's CLIP keeps its text tower as ``text.*`` and also as top-level
    aliases (``transformer.*``, ``token_embedding.weight`` ...); the action
    decoder likewise as ``text2.*`` and ``transformer2.*``, ``token_embedding2``
    ...; the head is ``action_head`` (an MLPResNet with ``layer_norm1``,
    ``fc1``, ``mlp_resnet_blocks.N.ffn.{0,1}``, ``layer_norm2``, ``fc2``).
    """
    torch.manual_seed(seed)
    state = {}
    clip = open_clip.create_model(TINY_MODEL_NAME, pretrained=None)
    for key, value in clip.state_dict().items():
        state[key] = value
        if not key.startswith(("visual.", "logit_")):
            state["text." + key] = value.clone()
    decoder = TextTransformer(
        context_length=58,
        vocab_size=49408,
        width=WIDTH,
        heads=4,
        layers=3,
        output_dim=WIDTH,
        no_causal_mask=True,
        pool_type="none",
    )
    for key, value in decoder.state_dict().items():
        state["text2." + key] = value
        head, _, rest = key.partition(".")
        state[f"{head}2" + (f".{rest}" if rest else "")] = value.clone()
    shapes = {
        "layer_norm1.weight": (7 * WIDTH,),
        "layer_norm1.bias": (7 * WIDTH,),
        "fc1.weight": (WIDTH, 7 * WIDTH),
        "fc1.bias": (WIDTH,),
        "layer_norm2.weight": (WIDTH,),
        "layer_norm2.bias": (WIDTH,),
        "fc2.weight": (7, WIDTH),
        "fc2.bias": (7,),
    }
    for block in range(2):
        shapes[f"mlp_resnet_blocks.{block}.ffn.0.weight"] = (WIDTH,)
        shapes[f"mlp_resnet_blocks.{block}.ffn.0.bias"] = (WIDTH,)
        shapes[f"mlp_resnet_blocks.{block}.ffn.1.weight"] = (WIDTH, WIDTH)
        shapes[f"mlp_resnet_blocks.{block}.ffn.1.bias"] = (WIDTH,)
    for name, shape in shapes.items():
        state[f"action_head.{name}"] = torch.randn(shape)
    return state


def test_save_load_roundtrip_is_exact(tmp_path):
    model = _model()
    save_pretrained(model, tmp_path / "ckpt")
    loaded = from_pretrained(tmp_path / "ckpt").eval()
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    images = torch.randn(2, 3, 64, 64)
    tokens = model.tokenize(["open the drawer", "close the drawer"])
    with torch.no_grad():
        assert torch.equal(model(images, tokens), loaded(images, tokens))


def test_roundtrip_keeps_config(tmp_path):
    model = _model(chunk_size=4, state_dim=9)
    model.set_state_statistics(torch.arange(9.0), torch.full((9,), 0.5))
    save_pretrained(model, tmp_path)
    loaded = from_pretrained(tmp_path)
    assert loaded.config == model.config
    assert torch.equal(loaded.state_mean, torch.arange(9.0))
    assert torch.equal(loaded.state_std, torch.full((9,), 0.5))


def test_from_pretrained_rejects_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        from_pretrained(tmp_path / "absent" / "deeper")


def test_relative_missing_checkpoint_is_not_a_hub_id(tmp_path, monkeypatch):
    (tmp_path / "train").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        FileNotFoundError, match="checkpoint folder train/model not found"
    ):
        from_pretrained("train/model")


def test_remap_covers_every_published_key():
    renamed, unmatched = remap_published_state_dict(published_state_dict())
    assert unmatched == []
    assert set(renamed) == set(_model().state_dict())


def test_published_checkpoint_loads_mapped_tensors(tmp_path):
    state = published_state_dict()
    path = tmp_path / "epoch_128.pt"
    torch.save(
        {"epoch": 128, "state_dict": {"module." + k: v for k, v in state.items()}}, path
    )
    model = load_published_checkpoint(_model(), path)
    assert torch.equal(
        model.decoder.token_embedding.weight[0], state["token_embedding2.weight"][0]
    )
    assert torch.equal(
        model.decoder.positional_embedding, state["positional_embedding2"]
    )
    assert torch.equal(model.decoder.text_projection, state["text2.text_projection"])
    assert torch.equal(
        model.decoder.transformer.resblocks[2].mlp.c_fc.weight,
        state["transformer2.resblocks.2.mlp.c_fc.weight"],
    )
    assert torch.equal(model.head.fc_in.weight, state["action_head.fc1.weight"])
    assert torch.equal(
        model.head.blocks[1].norm.weight,
        state["action_head.mlp_resnet_blocks.1.ffn.0.weight"],
    )
    assert torch.equal(
        model.head.blocks[1].fc.weight,
        state["action_head.mlp_resnet_blocks.1.ffn.1.weight"],
    )
    assert torch.equal(model.head.fc_out.bias, state["action_head.fc2.bias"])
    assert torch.equal(model.backbone.visual.conv1.weight, state["visual.conv1.weight"])
    assert torch.equal(
        model.backbone.token_embedding.weight, state["text.token_embedding.weight"]
    )


def test_published_checkpoint_failure_lists_missing_and_unexpected(tmp_path):
    state = published_state_dict()
    del state["action_head.fc2.bias"]
    state["action_head.fc3.weight"] = torch.zeros(3)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as info:
        load_published_checkpoint(model, path)
    assert info.value.missing == ["head.fc_out.bias"]
    assert info.value.unexpected == ["action_head.fc3.weight"]
    assert "head.fc_out.bias" in str(info.value)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} changed by a rejected load"


def test_published_checkpoint_rejects_wrong_chunk_size(tmp_path):
    path = tmp_path / "published.pt"
    torch.save(published_state_dict(), path)
    with pytest.raises(CheckpointMismatchError) as info:
        load_published_checkpoint(_model(chunk_size=4), path)
    assert any("decoder.positional_embedding" in m for m in info.value.mismatched)


def test_remap_flags_disagreeing_aliases():
    state = published_state_dict()
    state["transformer.resblocks.0.ln_1.weight"] = (
        state["transformer.resblocks.0.ln_1.weight"] + 1
    )
    _, unmatched = remap_published_state_dict(state)
    assert len(unmatched) == 1
    assert "differs from its alias" in unmatched[0]


class _Opaque:
    pass


def test_pickled_objects_are_not_unpickled(tmp_path):
    path = tmp_path / "unsafe.pt"
    torch.save({"state_dict": {}, "extra": _Opaque()}, path)
    with pytest.raises(ValueError, match="weights_only=True"):
        read_state_dict(path)
