"""A server speaking the OpenAI chat completions wire format, as vLLM and Ollama do.

It accepts ``POST /v1/chat/completions`` with images as PNG data URLs and
answers through an ``Answerer`` with the faults it schedules. With
``json_schema=False`` it rejects ``response_format`` of type
``json_schema`` with HTTP 400, like servers without structured output.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time

from aiohttp import web

from . import reference as ref
from .threaded import ThreadedServer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DATA_URL_PREFIX = "data:image/png;base64,"


def _error(
    status: int, kind: str, message: str, headers: dict | None = None
) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return web.json_response(body, status=status, headers=headers)


class OpenAIServer(ThreadedServer):
    """OpenAI-compatible server; ``api_key`` empty accepts any bearer token."""

    def __init__(
        self,
        answerer: ref.Answerer,
        api_key: str = "",
        json_schema: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.answerer = answerer
        self.api_key = api_key
        self.json_schema = json_schema

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/chat/completions", self.chat_completions)]

    async def chat_completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.record(request, body)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.api_key and token != self.api_key:
            return _error(401, "invalid_request_error", "Incorrect API key provided.")
        response_format = body.get("response_format") or {}
        if response_format.get("type") == "json_schema" and not self.json_schema:
            return _error(
                400,
                "invalid_request_error",
                "response_format json_schema is not supported",
            )

        texts, images = [], 0
        for message in body.get("messages", []):
            content = message.get("content")
            items = (
                [{"type": "text", "text": content}]
                if isinstance(content, str)
                else content
            )
            for item in items or []:
                if item.get("type") == "text":
                    texts.append(item["text"])
                elif item.get("type") == "image_url":
                    url = item["image_url"]["url"]
                    if not url.startswith(DATA_URL_PREFIX):
                        return _error(
                            400,
                            "invalid_request_error",
                            "image_url must be a PNG data URL",
                        )
                    if not base64.b64decode(url[len(DATA_URL_PREFIX) :]).startswith(
                        PNG_MAGIC
                    ):
                        return _error(
                            400, "invalid_request_error", "image is not a PNG"
                        )
                    images += 1
        # The prompt is the first text of the user message.
        prompt = ref.parse_prompt(texts, images)
        fault = self.answerer.next_fault(prompt.demo_key)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)

        if fault == ref.RATE_LIMIT:
            return _error(
                429,
                "rate_limit_exceeded",
                "Rate limit reached.",
                headers={"Retry-After": "1"},
            )
        if fault == ref.SERVER_ERROR:
            return _error(
                500, "server_error", f"internal error while serving key {token}"
            )
        if fault == ref.TIMEOUT:
            await asyncio.sleep(self.hang_s)

        prompt_tokens = (
            ref.estimate_tokens(prompt.text_chars) + images * ref.IMAGE_TOKENS
        )
        message = {"role": "assistant", "content": None, "refusal": None}
        choices = [
            {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
        ]
        text = ""
        if fault == ref.EMPTY_CANDIDATES:
            choices = []
        elif fault == ref.BLOCKED:
            choices[0]["finish_reason"] = "content_filter"
        elif fault == ref.REFUSAL:
            message["refusal"] = "I can't help with that request."
        else:
            text = self.answerer.answer_text(prompt, fault)
            message["content"] = text
            if fault == ref.TRUNCATED:
                choices[0]["finish_reason"] = "length"
        completion_tokens = ref.estimate_tokens(len(text))
        reply = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        return web.Response(text=json.dumps(reply), content_type="application/json")
