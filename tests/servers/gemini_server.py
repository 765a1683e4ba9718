"""A server speaking the Gemini ``generateContent`` REST wire format.

It accepts ``POST /<version>/models/<model>:generateContent`` with the key
in ``x-goog-api-key``, reads the text and ``inlineData`` parts, and answers
through an ``Answerer`` with the faults it schedules.
"""

from __future__ import annotations

import asyncio
import base64
import json

from aiohttp import web

from . import reference as ref
from .threaded import ThreadedServer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _decode(data: str) -> bytes:
    """Decode standard or URL-safe base64, with or without padding (the SDK sends URL-safe)."""
    return base64.urlsafe_b64decode(
        data.replace("+", "-").replace("/", "_") + "=" * (-len(data) % 4)
    )


def _error(
    status: int, code: str, message: str, headers: dict | None = None
) -> web.Response:
    body = {"error": {"code": status, "message": message, "status": code}}
    return web.json_response(body, status=status, headers=headers)


class GeminiServer(ThreadedServer):
    """Gemini API look-alike; ``api_key`` is the only key it accepts."""

    def __init__(self, answerer: ref.Answerer, api_key: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.answerer = answerer
        self.api_key = api_key

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/{version}/models/{call}", self.generate_content)]

    async def generate_content(self, request: web.Request) -> web.Response:
        model, _, method = request.match_info["call"].partition(":")
        body = await request.json()
        self.record(request, body)
        if method != "generateContent":
            return _error(404, "NOT_FOUND", f"method {method!r} is not served here")
        key = request.headers.get("x-goog-api-key", "")
        if key != self.api_key:
            return _error(
                403,
                "PERMISSION_DENIED",
                "API key not valid. Please pass a valid API key.",
            )

        texts, images = [], 0
        for content in body.get("contents", []):
            for part in content.get("parts", []):
                if "text" in part:
                    texts.append(part["text"])
                inline = part.get("inlineData") or part.get("inline_data")
                if inline is not None:
                    if not _decode(inline["data"]).startswith(PNG_MAGIC):
                        return _error(
                            400, "INVALID_ARGUMENT", "inline image is not a PNG"
                        )
                    images += 1
        prompt = ref.parse_prompt(texts, images)
        fault = self.answerer.next_fault(prompt.demo_key)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)

        if fault == ref.RATE_LIMIT:
            return _error(
                429,
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota).",
                headers={"Retry-After": "1"},
            )
        if fault == ref.SERVER_ERROR:
            # A careless server that echoes the caller's key: it must be redacted client-side.
            return _error(500, "INTERNAL", f"internal error while serving key {key}")
        if fault == ref.TIMEOUT:
            await asyncio.sleep(self.hang_s)

        usage = {
            "promptTokenCount": ref.estimate_tokens(prompt.text_chars)
            + images * ref.IMAGE_TOKENS,
            "promptTokensDetails": [
                {
                    "modality": "TEXT",
                    "tokenCount": ref.estimate_tokens(prompt.text_chars),
                },
                {"modality": "IMAGE", "tokenCount": images * ref.IMAGE_TOKENS},
            ],
        }
        reply = {"usageMetadata": usage, "modelVersion": model, "responseId": "test"}
        if fault == ref.EMPTY_CANDIDATES:
            reply["candidates"] = []
            return web.json_response(reply)
        if fault == ref.BLOCKED:
            reply["promptFeedback"] = {"blockReason": "SAFETY"}
            return web.json_response(reply)
        if fault == ref.REFUSAL:
            reply["candidates"] = [{"finishReason": "PROHIBITED_CONTENT", "index": 0}]
            return web.json_response(reply)

        text = self.answerer.answer_text(prompt, fault)
        finish = "MAX_TOKENS" if fault == ref.TRUNCATED else "STOP"
        usage["candidatesTokenCount"] = ref.estimate_tokens(len(text))
        usage["totalTokenCount"] = (
            usage["promptTokenCount"] + usage["candidatesTokenCount"]
        )
        reply["candidates"] = [
            {
                "content": {"role": "model", "parts": [{"text": text}]},
                "finishReason": finish,
                "index": 0,
            }
        ]
        return web.Response(text=json.dumps(reply), content_type="application/json")
