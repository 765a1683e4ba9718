"""FreezeCache and SinkWindowCache on a tiny random Llama model."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from aas.policies.kv import FreezeCache, FreezeConfig, SinkWindowCache
from aas.policies.kv.attention_scores import recent_attention

VOCAB = 96
PROMPT = 20


def tiny_model(attn: str = "sdpa", seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=VOCAB,
        max_position_embeddings=512,
        attn_implementation=attn,
    )
    return LlamaForCausalLM(config).eval()


def uniform_attention_model() -> LlamaForCausalLM:
    """Zero query projections: every query attends uniformly to its keys."""
    model = tiny_model()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.zero_()
    return model


def prompt_ids(length: int = PROMPT, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB, (1, length), generator=generator)


def freeze_all_config(**overrides) -> FreezeConfig:
    """Uniform attention with threshold > 1 freezes every eligible token."""
    settings = {
        "sink_tokens": 2,
        "recent_tokens": 4,
        "score_queries": 1,
        "threshold": 1.5,
        "freeze_steps": 2.0,
    }
    settings.update(overrides)
    return FreezeConfig(**settings)


@torch.no_grad()
def decode(model, cache, logits, steps):
    outputs = []
    for _ in range(steps):
        token = logits[:, -1:].argmax(-1)
        logits = model(token, past_key_values=cache).logits
        outputs.append(logits)
    return outputs


@torch.no_grad()
def test_disabled_freeze_matches_dynamic_prefill_and_decode():
    model = tiny_model()
    ids = prompt_ids()
    dynamic, frozen = DynamicCache(), FreezeCache(model, FreezeConfig(enabled=False))
    reference = model(ids, past_key_values=dynamic).logits
    candidate = model(ids, past_key_values=frozen).logits
    assert torch.equal(reference, candidate)
    for a, b in zip(
        decode(model, dynamic, reference, 6), decode(model, frozen, candidate, 6)
    ):
        assert torch.equal(a, b)
    assert frozen.get_seq_length() == dynamic.get_seq_length()


@torch.no_grad()
def test_disabled_freeze_matches_dynamic_generate():
    model = tiny_model()
    ids = prompt_ids()
    kwargs = {
        "max_new_tokens": 8,
        "do_sample": False,
        "output_scores": True,
        "return_dict_in_generate": True,
        "attention_mask": torch.ones_like(ids),
        "pad_token_id": 0,
    }
    reference = model.generate(ids, past_key_values=DynamicCache(), **kwargs)
    candidate = model.generate(
        ids, past_key_values=FreezeCache(model, FreezeConfig(enabled=False)), **kwargs
    )
    assert torch.equal(reference.sequences, candidate.sequences)
    for a, b in zip(reference.scores, candidate.scores):
        assert torch.equal(a, b)


@torch.no_grad()
def test_enabled_freeze_matches_dynamic_until_first_freeze():
    model = tiny_model()
    ids = prompt_ids()
    reference = model(ids, past_key_values=DynamicCache()).logits
    cache = FreezeCache(model, FreezeConfig())
    assert torch.equal(model(ids, past_key_values=cache).logits, reference)


@torch.no_grad()
def test_recomputed_scores_match_eager_weights():
    eager, sdpa = tiny_model("eager"), tiny_model("sdpa")
    captured = {}

    def capture(name):
        def hook(module, args, kwargs, output):
            keys = kwargs["past_key_values"].layers[module.layer_idx].keys
            captured[name] = recent_attention(
                module, kwargs, output, keys, max_queries=5
            )

        return hook

    ids = prompt_ids()
    eager.model.layers[1].self_attn.register_forward_hook(
        capture("eager"), with_kwargs=True
    )
    sdpa.model.layers[1].self_attn.register_forward_hook(
        capture("sdpa"), with_kwargs=True
    )
    eager(ids, past_key_values=DynamicCache())
    sdpa(ids, past_key_values=DynamicCache())
    assert captured["eager"].shape == (1, 4, 5, PROMPT)
    torch.testing.assert_close(
        captured["sdpa"], captured["eager"], rtol=1e-4, atol=1e-5
    )


@torch.no_grad()
def test_uniform_attention_freezes_every_eligible_token():
    model = uniform_attention_model()
    cache = FreezeCache(model, freeze_all_config())
    model(prompt_ids(), past_key_values=cache)
    assert cache.frozen_positions().tolist() == list(range(2, PROMPT - 4))
    assert cache.active_positions().tolist() == [0, 1, 16, 17, 18, 19]
    assert cache.get_seq_length() == PROMPT


@torch.no_grad()
def test_freeze_lasts_ceil_k_sqrt_count_steps():
    model = uniform_attention_model()
    cache = FreezeCache(model, freeze_all_config(freeze_steps=2.0))
    logits = model(prompt_ids(), past_key_values=cache).logits
    logits = decode(model, cache, logits, 3)[-1]
    token = 5  # frozen at step 1 for ceil(2 * sqrt(1)) = 2 steps
    frozen_after = {s.step: s for s in cache.history}
    assert frozen_after[1].newly_frozen == PROMPT - 6
    assert frozen_after[2].thawed == 0
    assert frozen_after[3].thawed == PROMPT - 6  # thaws at the end of step 1 + 2
    # Re-scored at step 4, frozen again for ceil(2 * sqrt(2)) = 3 steps.
    assert frozen_after[4].newly_frozen >= PROMPT - 6
    assert cache.book.freeze_count[token] == 2
    assert cache.book.thaw_step[token] == 4 + math.ceil(2 * math.sqrt(2))
    decode(model, cache, logits, 3)
    assert {s.step: s for s in cache.history}[7].thawed >= PROMPT - 6


@torch.no_grad()
def test_sink_and_recent_tokens_never_freeze():
    model = uniform_attention_model()
    cache = FreezeCache(model, freeze_all_config(sink_tokens=3, recent_tokens=5))
    logits = model(prompt_ids(), past_key_values=cache).logits
    decode(model, cache, logits, 4)
    active = set(cache.active_positions().tolist())
    seen = cache.get_seq_length()
    assert {0, 1, 2} <= active
    assert set(range(seen - 5, seen)) <= active


@torch.no_grad()
def test_frozen_cache_equals_masked_full_attention():
    model = tiny_model()
    uniform = uniform_attention_model()
    ids = prompt_ids()
    cache = FreezeCache(uniform, freeze_all_config())
    uniform(ids, past_key_values=cache)  # decides which tokens to freeze
    frozen = cache.frozen_positions()

    # Rebuild the same cache contents with the real model and compare one step.
    cache.close()
    replay = FreezeCache(model, FreezeConfig(enabled=False))
    model(ids, past_key_values=replay)
    replay.freeze(frozen)
    next_ids = prompt_ids(3, seed=2)
    candidate = model(next_ids, past_key_values=replay).logits

    full = DynamicCache()
    mask = torch.ones(1, PROMPT + 3, dtype=torch.long)
    mask[0, frozen] = 0
    model(ids, past_key_values=full)
    position_ids = torch.arange(PROMPT, PROMPT + 3)[None]
    reference = model(
        next_ids, past_key_values=full, attention_mask=mask, position_ids=position_ids
    ).logits
    torch.testing.assert_close(candidate, reference, rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_entropy_spike_thaws_all_frozen_tokens():
    model = uniform_attention_model()
    cache = FreezeCache(model, freeze_all_config(entropy_threshold=0.0, recovery="all"))
    logits = model(prompt_ids(), past_key_values=cache).logits
    assert cache.num_frozen == PROMPT - 6
    decode(model, cache, logits, 1)
    assert cache.history[-1].recovered == PROMPT - 6
    assert cache.num_frozen == 0


@torch.no_grad()
def test_entropy_spike_thaws_most_recently_frozen_first():
    model = uniform_attention_model()
    config = freeze_all_config(
        entropy_threshold=0.0, recovery_tokens=2, recent_tokens=1
    )
    cache = FreezeCache(model, config)
    cache.config.entropy_threshold = None  # freeze without recovery first
    logits = model(prompt_ids(), past_key_values=cache).logits
    first_frozen = set(cache.frozen_positions().tolist())
    logits = decode(model, cache, logits, 1)[-1]  # freezes position 19 at step 2
    newest = set(cache.frozen_positions().tolist()) - first_frozen
    cache.config.entropy_threshold = 0.0
    decode(model, cache, logits, 1)
    assert cache.history[-1].recovered == 2
    assert newest <= set(cache.active_positions().tolist())


@torch.no_grad()
def test_high_entropy_threshold_never_recovers():
    model = uniform_attention_model()
    cache = FreezeCache(model, freeze_all_config(entropy_threshold=1e9))
    logits = model(prompt_ids(), past_key_values=cache).logits
    decode(model, cache, logits, 3)
    assert all(s.recovered == 0 for s in cache.history)


@torch.no_grad()
def test_counters_track_tokens_and_bytes():
    model = uniform_attention_model()
    cache = FreezeCache(model, freeze_all_config())
    logits = model(prompt_ids(), past_key_values=cache).logits
    config = model.config
    per_token = config.num_hidden_layers * 2 * config.num_key_value_heads * 16 * 4
    assert cache.bytes_to_host == (PROMPT - 6) * per_token
    decode(model, cache, logits, 2)
    assert cache.bytes_to_device == (PROMPT - 6) * per_token  # the thaw at step 3
    for stats in cache.history:
        assert stats.active_tokens + stats.frozen_tokens == stats.seen_tokens
    assert sum(s.bytes_to_host for s in cache.history) == cache.bytes_to_host


def test_freezing_without_model_is_rejected():
    with pytest.raises(ValueError, match="needs the model"):
        FreezeCache(None, FreezeConfig())


def test_config_rejects_unknown_reduction():
    with pytest.raises(ValueError, match="head_reduction"):
        FreezeConfig(head_reduction="median")


@torch.no_grad()
def test_sink_window_keeps_budget_and_logical_length():
    model = tiny_model()
    cache = SinkWindowCache(budget=8, sink_tokens=2)
    logits = model(prompt_ids(), past_key_values=cache).logits
    decode(model, cache, logits, 3)
    assert cache.num_active == 8
    assert cache.get_seq_length() == PROMPT + 3
