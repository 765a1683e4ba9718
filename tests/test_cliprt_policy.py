import numpy as np
import pytest
import torch
from cliprt_fixtures import one_thread  # noqa: F401  (autouse)

from aas.policies.base import Policy
from aas.policies.cliprt.config import TINY_MODEL_NAME, CLIPRTConfig
from aas.policies.cliprt.model import CLIPRTModel
from aas.policies.cliprt.policy import CLIPRTPolicy
from aas.policies.cliprt.preprocess import resize_like_eval, upright


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CLIPRTModel(CLIPRTConfig(model_name=TINY_MODEL_NAME))


def _obs(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"agentview_image": rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8)}


def test_predict_returns_chunk_8x7(model):
    policy = CLIPRTPolicy(model)
    assert isinstance(policy, Policy)
    chunk = policy.predict(_obs(0), "pick up the black bowl")
    assert chunk.shape == (8, 7)
    assert chunk.dtype == np.float32


def test_cached_embedding_gives_same_chunk(model):
    cached = CLIPRTPolicy(model, cache_size=16)
    uncached = CLIPRTPolicy(model, cache_size=0)
    obs = _obs(1)
    first = cached.predict(obs, "open the top drawer")
    second = cached.predict(obs, "open the top drawer")
    reference = uncached.predict(obs, "open the top drawer")
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, reference, atol=1e-6)


def test_instruction_embedding_computed_once(model, monkeypatch):
    policy = CLIPRTPolicy(model)
    calls = []
    original = model.encode_instruction
    monkeypatch.setattr(
        model,
        "encode_instruction",
        lambda tokens: calls.append(len(tokens)) or original(tokens),
    )
    for seed in range(3):
        policy.predict(_obs(seed), "close the drawer")
    policy.predict_batch([_obs(5), _obs(6)], ["close the drawer", "turn on the stove"])
    assert calls == [1, 1]


def test_cache_evicts_least_recently_used(model):
    policy = CLIPRTPolicy(model, cache_size=2)
    policy.instruction_embeddings(["a", "b"])
    policy.instruction_embeddings(["a"])
    policy.instruction_embeddings(["c"])
    assert list(policy._cache) == ["a", "c"]


def test_predict_batch_matches_single_predictions(model):
    policy = CLIPRTPolicy(model)
    observations = [_obs(i) for i in range(3)]
    instructions = [
        "pick up the bowl",
        "place the bowl on the plate",
        "pick up the bowl",
    ]
    batch = policy.predict_batch(observations, instructions)
    singles = np.stack(
        [policy.predict(o, i) for o, i in zip(observations, instructions)]
    )
    assert batch.shape == (3, 8, 7)
    np.testing.assert_allclose(batch, singles, atol=1e-5)


def test_image_is_flipped_before_preprocessing(model):
    obs = _obs(2)
    flipped = CLIPRTPolicy(model, flip=True).preprocess_image(obs)
    expected = model.preprocess_eval(
        resize_like_eval(upright(obs["agentview_image"]), 224)
    )
    assert torch.equal(flipped, expected)
    assert flipped.shape == (3, 64, 64)


def test_missing_camera_is_reported(model):
    with pytest.raises(KeyError, match="agentview_image"):
        CLIPRTPolicy(model).predict({"robot0_eef_pos": np.zeros(3)}, "pick up the bowl")


def test_state_policy_reads_proprioception():
    torch.manual_seed(0)
    model = CLIPRTModel(CLIPRTConfig(model_name=TINY_MODEL_NAME, state_dim=9))
    obs = _obs(3) | {
        "robot0_eef_pos": np.array([0.1, 0.2, 0.3]),
        "robot0_eef_quat": np.array([0.0, 0.0, 0.0, 1.0]),
        "robot0_gripper_qpos": np.array([0.04, -0.04]),
    }
    assert CLIPRTPolicy(model).predict(obs, "pick up the bowl").shape == (8, 7)
