import pytest
import torch
from cliprt_fixtures import one_thread  # noqa: F401  (autouse)

from aas.policies.cliprt.config import TINY_MODEL_NAME, CLIPRTConfig
from aas.policies.cliprt.model import CLIPRTModel, masked_l1, masked_l1_sum


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return CLIPRTModel(CLIPRTConfig(model_name=TINY_MODEL_NAME)).eval()


def _inputs(model, batch=2):
    images = torch.randn(batch, 3, model.image_size, model.image_size)
    tokens = model.tokenize(["pick up the black bowl"] * batch)
    return images, tokens


def test_forward_returns_chunk_of_8x7(tiny):
    images, tokens = _inputs(tiny, batch=3)
    with torch.no_grad():
        chunks = tiny(images, tokens)
    assert chunks.shape == (3, 8, 7)


def test_decoder_context_is_58_tokens(tiny):
    assert tiny.decoder.positional_embedding.shape[0] == 58
    assert tiny.decoder.attn_mask is None
    assert tiny.decoder.token_embedding.weight.shape[0] == 1


def test_head_input_is_action_dim_times_embed_dim(tiny):
    assert tiny.head.fc_in.in_features == 7 * tiny.embed_dim
    assert len(tiny.head.blocks) == 2


def test_chunk_and_action_dim_are_configurable():
    model = CLIPRTModel(
        CLIPRTConfig(model_name=TINY_MODEL_NAME, chunk_size=4, action_dim=3)
    )
    images, tokens = _inputs(model)
    with torch.no_grad():
        assert model(images, tokens).shape == (2, 4, 3)
    assert model.decoder.positional_embedding.shape[0] == 2 + 12


def test_state_token_is_added_when_configured():
    model = CLIPRTModel(CLIPRTConfig(model_name=TINY_MODEL_NAME, state_dim=9)).eval()
    images, tokens = _inputs(model)
    assert model.decoder.positional_embedding.shape[0] == 59
    with torch.no_grad():
        assert model(images, tokens, torch.randn(2, 9)).shape == (2, 8, 7)
    with pytest.raises(ValueError, match="state"):
        model(images, tokens)


def test_state_rejected_without_state_dim(tiny):
    images, tokens = _inputs(tiny)
    with pytest.raises(ValueError, match="state_dim=0"):
        tiny(images, tokens, torch.randn(2, 9))


def test_queries_see_the_whole_context(tiny):
    # Without a causal mask, changing the image changes every predicted step.
    images, tokens = _inputs(tiny, batch=1)
    with torch.no_grad():
        first = tiny(images, tokens)
        second = tiny(images + 1.0, tokens)
    assert (first - second).abs().amax(dim=-1).min() > 0


def test_prompt_uses_template_lower_cased():
    config = CLIPRTConfig(model_name=TINY_MODEL_NAME)
    assert config.prompt("Pick up the Black Bowl") == (
        "what motion should the robot arm perform to complete the instruction "
        "'pick up the black bowl'?"
    )


def test_config_rejects_unknown_model_name():
    with pytest.raises(ValueError, match="unknown open_clip model_name"):
        CLIPRTConfig(model_name="no-such-model")


def test_masked_l1_ignores_masked_steps():
    target = torch.zeros(2, 8, 7)
    predicted = torch.zeros(2, 8, 7)
    predicted[:, 5:] = 100.0
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[:, :5] = True
    assert masked_l1(predicted, target, mask).item() == 0.0


def test_masked_l1_averages_valid_entries():
    target = torch.zeros(1, 8, 7)
    predicted = torch.full((1, 8, 7), 2.0)
    mask = torch.zeros(1, 8, dtype=torch.bool)
    mask[0, :3] = True
    total, count = masked_l1_sum(predicted, target, mask)
    assert total.item() == pytest.approx(2.0 * 3 * 7)
    assert count.item() == 3 * 7
    assert masked_l1(predicted, target, mask).item() == pytest.approx(2.0)


def test_masked_l1_rejects_mask_shape_mismatch():
    with pytest.raises(ValueError, match="shape mismatch"):
        masked_l1(
            torch.zeros(2, 8, 7),
            torch.zeros(2, 8, 7),
            torch.ones(2, 7, dtype=torch.bool),
        )


def test_state_is_normalised_with_stored_statistics():
    torch.manual_seed(0)
    model = CLIPRTModel(CLIPRTConfig(model_name=TINY_MODEL_NAME, state_dim=3)).eval()
    image, text = torch.randn(1, model.embed_dim), torch.randn(1, model.embed_dim)
    with torch.no_grad():
        reference = model.decode(image, text, torch.zeros(1, 3))
        model.set_state_statistics(
            torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 0.0, 4.0])
        )
        at_mean = model.decode(image, text, torch.tensor([[1.0, 2.0, 3.0]]))
    assert torch.allclose(reference, at_mean, atol=1e-6)
    assert model.state_std.tolist() == [2.0, 1.0, 4.0]
