"""Symbolic and LLM planners on LIBERO scenes, with a tiny model and with SmolLM2."""

from __future__ import annotations

import json

import pytest
import torch
from tokenizers import Tokenizer, decoders, models
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from aas.bddl import libero_bddl_files, parse_bddl
from aas.planning import apply_step, check_plan, initial_state
from aas.policies.kv import FreezeConfig
from aas.policies.llm import LoadedModel
from aas.policies.planner import Event, LLMPlanner, LLMPlannerConfig, SymbolicPlanner
from aas.policies.step_grammar import StepGrammar, step_text

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def character_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer with a ChatML template, built without files."""
    specials = ["<unk>", "<|im_start|>", "<|im_end|>"]
    characters = [chr(code) for code in range(32, 127)] + ["\n"]
    vocab = {token: index for index, token in enumerate(specials + characters)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(specials[1:])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", eos_token="<|im_end|>"
    )
    tokenizer.chat_template = CHATML
    return tokenizer


@pytest.fixture(scope="module")
def tiny_lm() -> LoadedModel:
    tokenizer = character_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=8192,
    )
    return LoadedModel(LlamaForCausalLM(config).eval(), tokenizer, "tiny-random-llama")


@pytest.fixture(scope="module")
def scene():
    files = libero_bddl_files("libero_goal")
    return parse_bddl(
        next(f for f in files if f.name.startswith("put_the_bowl_on_the_plate"))
    )


def tiny_config(**overrides) -> LLMPlannerConfig:
    settings = {
        "max_steps": 4,
        "freeze": FreezeConfig(recent_tokens=64, score_queries=16),
    }
    settings.update(overrides)
    return LLMPlannerConfig(**settings)


def test_symbolic_planner_reaches_goal(scene):
    plan = SymbolicPlanner().plan(scene)
    assert check_plan(scene, plan).ok
    assert all(step.instruction for step in plan)


@torch.no_grad()
def test_step_grammar_emits_only_candidates(tiny_lm):
    model, tokenizer = tiny_lm.model, tiny_lm.tokenizer
    from aas.schema import Step

    options = [Step("grasp", ("bowl_1",)), Step("open", ("drawer_1",))]
    prompt = tokenizer("plan:\n", return_tensors="pt").input_ids
    grammar = StepGrammar(
        tokenizer, prompt.shape[1], lambda chosen: options, tokenizer.eos_token_id, 3
    )
    output = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        logits_processor=[grammar],
        max_new_tokens=120,
        do_sample=False,
        pad_token_id=tokenizer.eos_token_id,
    )
    text = tokenizer.decode(output[0, prompt.shape[1] :], skip_special_tokens=True)
    lines = text.split("\n")
    assert grammar.finished
    assert lines[: len(grammar.steps)] == [step_text(s).strip() for s in grammar.steps]
    assert lines[len(grammar.steps)] == "done"
    assert all(step in options for step in grammar.steps)
    assert len(grammar.steps) <= 3


def test_llm_planner_applicable_mode_writes_valid_steps(tiny_lm, scene):
    planner = LLMPlanner(tiny_config(), loaded=tiny_lm)
    plan = planner.plan(scene)
    outcome = planner.last_outcome
    assert check_plan(scene, plan).ok
    assert outcome.check.valid  # every step applicable; the goal may still be unmet
    assert outcome.source == ("llm" if outcome.check.goal_satisfied else "symbolic")
    planner.close()


def test_llm_planner_falls_back_on_invalid_plan(tiny_lm, scene):
    planner = LLMPlanner(tiny_config(constraint="schema", max_steps=2), loaded=tiny_lm)
    plan = planner.plan(scene)
    outcome = planner.last_outcome
    assert check_plan(scene, plan).ok
    if not outcome.check.ok:
        assert outcome.source == "symbolic"
    planner.close()


def test_llm_planner_without_fallback_returns_model_plan(tiny_lm, scene):
    planner = LLMPlanner(
        tiny_config(constraint="schema", fallback=False), loaded=tiny_lm
    )
    plan = planner.plan(scene)
    assert planner.last_outcome.source == "llm"
    assert plan.steps == planner.last_outcome.llm_steps
    planner.close()


def test_event_log_extends_model_context(tiny_lm, scene):
    planner = LLMPlanner(tiny_config(), loaded=tiny_lm)
    planner.reset(scene)
    before = planner.cache.num_seen
    step = SymbolicPlanner().plan(scene).steps[0]
    planner.record(Event("step_started", step))
    planner.record(Event("failure", step, "the bowl slipped"))
    assert planner.cache.num_seen > before
    assert "event: failure grasp(" in planner.tokenizer.decode(planner._context[0])
    assert [e.kind for e in planner.events] == ["step_started", "failure"]
    planner.close()


def test_replan_starts_from_given_state(tiny_lm, scene):
    planner = LLMPlanner(tiny_config(), loaded=tiny_lm)
    first = planner.plan(scene)
    context_before = planner.last_outcome.seen_tokens
    state = apply_step(scene, initial_state(scene), first.steps[0])
    plan = planner.replan(scene, state, "the gripper stalled")
    assert check_plan(scene, plan, state).ok
    assert planner.events[-1].kind == "failure"
    assert planner.last_outcome.seen_tokens > context_before
    planner.close()


def test_event_rejects_unknown_kind():
    with pytest.raises(ValueError, match="Event kind"):
        Event("teleported")


def test_real_model_plans_libero_task(scene):
    planner = LLMPlanner(LLMPlannerConfig(max_steps=4, max_new_tokens=96))
    plan = planner.plan(scene)
    outcome = planner.last_outcome
    assert check_plan(scene, plan).ok
    assert outcome.check.valid
    assert outcome.generated_tokens > 0
    planner.close()


def test_plan_command_writes_checked_plan(tmp_path, scene):
    from aas.commands.plan import Config, run

    out = tmp_path / "plan"
    assert run(Config(bddl=scene.source, output_dir=str(out))) == 0
    records = [
        json.loads(line) for line in (out / "plans.jsonl").read_text().splitlines()
    ]
    assert len(records) == 1
    assert records[0]["status"] == "ok"
    assert records[0]["check"]["goal_satisfied"]
    assert json.loads((out / "summary.json").read_text())["ok"] == 1


def test_plan_command_resume_skips_done_files(tmp_path, scene):
    from aas.commands.plan import Config, run

    out = tmp_path / "plan"
    run(Config(bddl=scene.source, output_dir=str(out)))
    first = (out / "plans.jsonl").read_text()
    run(Config(bddl=scene.source, output_dir=str(out), resume=True))
    assert (out / "plans.jsonl").read_text() == first
