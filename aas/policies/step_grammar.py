"""A logits processor that lets a language model write only well-formed plan steps.

The output grammar is one step per line, ``op(arg, ...)\\n``, chosen from a
candidate set that the caller computes from the operator schema and the
scene, then ``done\\n`` and the end-of-sequence token. Candidates are
tokenised once, and at each position only tokens that continue some
candidate are allowed, so the text needs no parsing afterwards: the
processor records which candidate each line completed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import LogitsProcessor

from aas.schema import Step

DONE = "done"


def step_text(step: Step) -> str:
    """Return the line a step is written as: ``op(arg, ...)`` plus a newline."""
    return f"{step.op}({', '.join(step.args)})\n"


class StepGrammar(LogitsProcessor):
    """Constrain greedy or sampled generation to a sequence of candidate steps.

    Args:
        tokenizer: the model's tokenizer.
        prompt_length: tokens before the first generated one (``input_ids``
            passed to ``generate`` has this length).
        candidates: returns the steps allowed next, given the steps chosen
            so far; an empty list allows only ``done``.
        eos_token_id: token that ends generation after ``done``.
        max_steps: after this many steps only ``done`` is allowed.
        allow_done: returns whether ``done`` may follow the steps chosen so
            far; by default it always may.
    """

    def __init__(
        self,
        tokenizer,
        prompt_length: int,
        candidates: Callable[[Sequence[Step]], Sequence[Step]],
        eos_token_id: int,
        max_steps: int,
        allow_done: Callable[[Sequence[Step]], bool] | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.candidates = candidates
        self.eos_token_id = eos_token_id
        self.max_steps = max_steps
        self.allow_done = allow_done or (lambda chosen: True)
        self.steps: list[Step] = []
        self.finished = False
        self._line_start = prompt_length
        self._options: list[tuple[Step | None, list[int]]] = []
        self._encoded: dict[str, list[int]] = {}
        self._refresh()

    def _encode(self, text: str) -> list[int]:
        if text not in self._encoded:
            self._encoded[text] = self.tokenizer.encode(text, add_special_tokens=False)
        return self._encoded[text]

    def _refresh(self) -> None:
        steps = (
            []
            if len(self.steps) >= self.max_steps
            else list(self.candidates(self.steps))
        )
        self._options = [(step, self._encode(step_text(step))) for step in steps]
        if not steps or self.allow_done(self.steps):
            self._options.append((None, self._encode(DONE + "\n")))

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor
    ) -> torch.FloatTensor:
        if input_ids.shape[0] != 1:
            raise ValueError(
                f"StepGrammar supports batch size 1, got {input_ids.shape[0]}"
            )
        line = input_ids[0, self._line_start :].tolist()
        matching = [
            (step, ids) for step, ids in self._options if ids[: len(line)] == line
        ]
        complete = [(step, ids) for step, ids in matching if len(ids) == len(line)]
        if complete:
            step = complete[0][0]
            if step is None:
                self.finished = True
            else:
                self.steps.append(step)
                self._line_start = input_ids.shape[1]
                self._refresh()
                matching, line = self._options, []

        allowed = (
            [self.eos_token_id]
            if self.finished
            else sorted({ids[len(line)] for _, ids in matching})
        )
        if not allowed:
            raise RuntimeError(
                f"StepGrammar reached a dead end after {len(self.steps)} steps; the "
                "generated line matches no candidate"
            )
        masked = torch.full_like(scores, float("-inf"))
        masked[:, allowed] = scores[:, allowed]
        return masked
