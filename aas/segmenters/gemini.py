"""Gemini segmenter through the ``google-genai`` SDK (tested with 3.6.1).

Keyframes follow the prompt as inline PNG parts, each after a ``Frame N``
text part. The reply is constrained with ``response_schema`` and
``application/json`` output, at temperature 0 by default. The API key comes
from ``GEMINI_API_KEY``, else ``GOOGLE_API_KEY``. ``base_url`` sends every
request to another endpoint, such as a proxy or a local test server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from google import genai
from google.genai import errors, types

from aas.schema import Operator
from aas.segmenters.base import SegmenterConfig
from aas.segmenters.prompt import frame_label
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

NAME = "gemini"
API_KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")

# Finish reasons that mean a safety or policy filter stopped the candidate.
_SAFETY_FINISH = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
)


@SegmenterConfig.register_subclass(NAME)
@dataclass
class GeminiConfig(RemoteConfig):
    """Gemini backend settings; the API key is read from the environment, never from here."""

    # Gemini model name.
    model: str = "gemini-2.5-pro"
    # API version in the request path, such as v1beta or v1.
    api_version: str = "v1beta"
    # Endpoint that replaces Google's; "" keeps the SDK default.
    base_url: str = ""

    def build(self) -> GeminiSegmenter:
        return GeminiSegmenter(self)


def read_api_key(environ: Mapping[str, str] | None = None) -> str:
    """Return the first non-empty key among ``API_KEY_VARIABLES``.

    Raises:
        ValueError: none of the variables is set.
    """
    environ = os.environ if environ is None else environ
    for variable in API_KEY_VARIABLES:
        if environ.get(variable):
            return environ[variable]
    raise ValueError(
        "the gemini segmenter needs an API key: set GEMINI_API_KEY or GOOGLE_API_KEY"
    )


def _name(value: Any) -> str:
    """Return an SDK enum's name, or ``""`` for None."""
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def _finish_reason(value: Any) -> str:
    name = _name(value)
    if name in ("", "STOP", "FINISH_REASON_UNSPECIFIED"):
        return FINISH_STOP
    if name == "MAX_TOKENS":
        return FINISH_LENGTH
    if name in _SAFETY_FINISH:
        return FINISH_SAFETY
    return FINISH_OTHER


def reply_from_response(response: types.GenerateContentResponse) -> Reply:
    """Normalise a ``generateContent`` response: text, finish and block reasons, usage."""
    feedback = response.prompt_feedback
    block = _name(feedback.block_reason) if feedback is not None else ""
    usage = response.usage_metadata
    input_tokens = output_tokens = image_tokens = 0
    if usage is not None:
        input_tokens = usage.prompt_token_count or 0
        output_tokens = (usage.candidates_token_count or 0) + (
            usage.thoughts_token_count or 0
        )
        for detail in usage.prompt_tokens_details or []:
            if _name(detail.modality) == "IMAGE":
                image_tokens += detail.token_count or 0

    candidates = response.candidates or []
    text = ""
    finish = FINISH_STOP
    if candidates:
        candidate = candidates[0]
        parts = candidate.content.parts if candidate.content is not None else None
        text = "".join(p.text for p in parts or [] if p.text and not p.thought)
        finish = _finish_reason(candidate.finish_reason)
    return Reply(
        text=text,
        finish_reason=finish,
        block_reason=block,
        candidates=len(candidates),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        image_tokens=image_tokens,
        model_version=response.model_version or "",
    )


class GeminiBackend(Backend):
    """One ``genai.Client`` session for the duration of a run."""

    def __init__(self, config: GeminiConfig, api_key: str) -> None:
        self.config = config
        self._api_key = api_key
        options = types.HttpOptions(
            base_url=config.base_url or None,
            api_version=config.api_version,
            timeout=int(config.timeout_s * 1000),
        )
        self._client = genai.Client(api_key=api_key, http_options=options)

    def _contents(self, request: SegmentRequest) -> list[types.Content]:
        parts = [types.Part.from_text(text=request.prompt)]
        for keyframe in request.keyframes:
            parts.append(types.Part.from_text(text=frame_label(keyframe.frame)))
            parts.append(
                types.Part.from_bytes(data=keyframe.png, mime_type="image/png")
            )
        return [types.Content(role="user", parts=parts)]

    async def send(self, request: SegmentRequest) -> Reply:
        settings = types.GenerateContentConfig(
            temperature=self.config.temperature,
            max_output_tokens=self.config.max_output_tokens,
            candidate_count=1,
            response_mime_type="application/json",
            response_schema=request.schema,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(
                disable=True
            ),
        )
        try:
            response = await self._client.aio.models.generate_content(
                model=self.config.model,
                contents=self._contents(request),
                config=settings,
            )
        except errors.APIError as exc:
            message = redact(
                f"HTTP {exc.code} {exc.status}: {exc.message}", (self._api_key,)
            )
            if exc.code in RETRYABLE_STATUS:
                headers = getattr(exc.response, "headers", None)
                raise TransientError(
                    message, exc.code, parse_retry_after(headers)
                ) from None
            raise RequestRejected(message, exc.code) from None
        except errors.UnknownApiResponseError:
            raise TransientError(
                "the server sent a response that is not JSON"
            ) from None
        except (TimeoutError, aiohttp.ClientError, httpx.TransportError) as exc:
            raise TransientError(f"connection failed ({type(exc).__name__})") from None
        return reply_from_response(response)

    async def aclose(self) -> None:
        await self._client.aio.aclose()


class GeminiSegmenter(RemoteSegmenter):
    """Segments demos with a Gemini model; see ``RemoteSegmenter`` for the run behaviour."""

    name = NAME

    def __init__(
        self,
        config: GeminiConfig,
        operators: Mapping[str, Operator] | None = None,
        api_key: str | None = None,
    ) -> None:
        super().__init__(config, operators)
        self._api_key = api_key or read_api_key()

    def open_backend(self) -> GeminiBackend:
        return GeminiBackend(self.config, self._api_key)

    def identity(self) -> str:
        c = self.config
        return (
            f"{NAME}|{c.model}|{c.api_version}|{c.base_url}|"
            f"{c.temperature}|{c.max_output_tokens}"
        )

    def secrets(self) -> tuple[str, ...]:
        return (self._api_key,)
