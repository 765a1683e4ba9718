"""Segmenter for any OpenAI-compatible chat completions endpoint (vLLM, Ollama, llama.cpp).

Uses the ``openai`` SDK with its own retries off, since the shared runner
retries. Keyframes are sent as PNG data URLs, each after a ``Frame N`` text
item. ``response_format`` selects how the answer is constrained:
``json_schema`` (structured output with the answer schema), ``json_object``
(any JSON), ``none``, or ``auto``, which tries ``json_schema`` first and
falls back for the rest of the run when the server rejects it with HTTP 400.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import openai

from aas.schema import Operator, Plan
from aas.segmenters.base import SegmenterConfig
from aas.segmenters.prompt import answer_schema, frame_label
from aas.segmenters.remote import Backend, RemoteConfig, RemoteSegmenter, SegmentRequest
from aas.segmenters.response import (
    FINISH_LENGTH,
    FINISH_OTHER,
    FINISH_SAFETY,
    FINISH_STOP,
    Reply,
)
from aas.segmenters.retry import (
    RETRYABLE_STATUS,
    RequestRejected,
    TransientError,
    parse_retry_after,
    redact,
)

logger = logging.getLogger(__name__)

NAME = "openai"
RESPONSE_FORMATS = ("auto", "json_schema", "json_object", "none")
# Sent when the endpoint needs no key; the SDK refuses to start without one.
NO_KEY = "not-needed"

_FINISH = {
    "stop": FINISH_STOP,
    "length": FINISH_LENGTH,
    "content_filter": FINISH_SAFETY,
}


@SegmenterConfig.register_subclass(NAME)
@dataclass
class OpenAIConfig(RemoteConfig):
    """OpenAI-compatible backend settings; the key is read from ``api_key_env``."""

    # Model name under which the server serves the model.
    model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    # Base URL of the API, up to and including /v1.
    base_url: str = "http://127.0.0.1:8000/v1"
    # Environment variable holding the API key; unset or empty sends a placeholder.
    api_key_env: str = "OPENAI_API_KEY"
    # "auto", "json_schema", "json_object" or "none".
    response_format: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.response_format not in RESPONSE_FORMATS:
            raise ValueError(
                f"response_format must be one of {RESPONSE_FORMATS}, got {self.response_format!r}"
            )

    def build(self) -> OpenAISegmenter:
        return OpenAISegmenter(self)


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def reply_from_completion(completion: Any) -> Reply:
    """Normalise a chat completion: text, refusal, finish reason and usage."""
    choices = completion.choices or []
    usage = completion.usage
    input_tokens = (usage.prompt_tokens or 0) if usage is not None else 0
    output_tokens = (usage.completion_tokens or 0) if usage is not None else 0
    if not choices:
        return Reply(
            text="",
            candidates=0,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )
    choice = choices[0]
    message = choice.message
    return Reply(
        text=(message.content or "") if message is not None else "",
        finish_reason=_FINISH.get(choice.finish_reason or "stop", FINISH_OTHER),
        refusal=(getattr(message, "refusal", None) or "")
        if message is not None
        else "",
        candidates=len(choices),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        model_version=completion.model or "",
    )


class OpenAIBackend(Backend):
    """One ``AsyncOpenAI`` client for the duration of a run."""

    def __init__(self, config: OpenAIConfig, api_key: str, segmenter: OpenAISegmenter):
        self.config = config
        self._api_key = api_key
        self._segmenter = segmenter
        self._client = openai.AsyncOpenAI(
            api_key=api_key or NO_KEY,
            base_url=config.base_url,
            max_retries=0,
            timeout=config.timeout_s,
        )

    def _messages(self, request: SegmentRequest) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = [{"type": "text", "text": request.prompt}]
        for keyframe in request.keyframes:
            content.append({"type": "text", "text": frame_label(keyframe.frame)})
            content.append(
                {"type": "image_url", "image_url": {"url": _data_url(keyframe.png)}}
            )
        return [{"role": "user", "content": content}]

    def _response_format(self, request: SegmentRequest) -> dict[str, Any] | None:
        mode = self._segmenter.response_format
        if mode == "json_schema":
            schema = {"name": "segmentation", "schema": request.schema, "strict": True}
            return {"type": "json_schema", "json_schema": schema}
        if mode == "json_object":
            return {"type": "json_object"}
        return None

    async def send(self, request: SegmentRequest) -> Reply:
        while True:
            used = self._segmenter.response_format
            response_format = self._response_format(request)
            extra = {"response_format": response_format} if response_format else {}
            try:
                completion = await self._client.chat.completions.create(
                    model=self.config.model,
                    messages=self._messages(request),
                    temperature=self.config.temperature,
                    max_tokens=self.config.max_output_tokens,
                    **extra,
                )
            except openai.APIStatusError as exc:
                message = redact(
                    f"HTTP {exc.status_code}: {exc.message}", (self._api_key,)
                )
                if exc.status_code == 400 and self._segmenter.downgrade_response_format(
                    used
                ):
                    # NOTE: this resend is not counted in the ledger's requests;
                    # each request is resent at most twice.
                    continue
                if exc.status_code in RETRYABLE_STATUS:
                    retry_after = parse_retry_after(exc.response.headers)
                    raise TransientError(
                        message, exc.status_code, retry_after
                    ) from None
                raise RequestRejected(message, exc.status_code) from None
            except openai.APIConnectionError as exc:
                kind = (
                    "timed out" if isinstance(exc, openai.APITimeoutError) else "failed"
                )
                raise TransientError(
                    f"connection {kind} ({type(exc).__name__})"
                ) from None
            return reply_from_completion(completion)

    async def aclose(self) -> None:
        await self._client.close()


class OpenAISegmenter(RemoteSegmenter):
    """Segments demos with a model behind an OpenAI-compatible chat endpoint."""

    name = NAME

    def __init__(
        self,
        config: OpenAIConfig,
        operators: Mapping[str, Operator] | None = None,
        api_key: str | None = None,
    ) -> None:
        super().__init__(config, operators)
        self._api_key = (
            api_key if api_key is not None else os.environ.get(config.api_key_env, "")
        )
        self.response_format = (
            "json_schema"
            if config.response_format == "auto"
            else config.response_format
        )
        self._may_downgrade = config.response_format == "auto"

    def downgrade_response_format(self, used: str) -> bool:
        """Step ``auto`` mode down from ``used`` after a 400; return whether to resend.

        Concurrent requests may meet the same 400; when another one already
        stepped down from ``used``, the request is resent with the current format.
        """
        order = ("json_schema", "json_object", "none")
        if not self._may_downgrade or used == "none":
            return False
        if self.response_format != used:
            return True
        logger.warning(
            "%s: the server rejected response_format %s; using %s for the rest of the run",
            self.name,
            used,
            order[order.index(used) + 1],
        )
        self.response_format = order[order.index(self.response_format) + 1]
        return True

    def open_backend(self) -> OpenAIBackend:
        return OpenAIBackend(self.config, self._api_key, self)

    def answer_schema(self, plan: Plan) -> dict[str, Any]:
        return answer_schema(plan, strict=True)

    def identity(self) -> str:
        c = self.config
        return (
            f"{NAME}|{c.model}|{c.base_url}|{c.temperature}|"
            f"{c.max_output_tokens}|{c.response_format}"
        )

    def secrets(self) -> tuple[str, ...]:
        return (self._api_key,)
