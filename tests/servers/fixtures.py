"""Helpers that start a test server answering for a set of fixture demos."""

from __future__ import annotations

from collections.abc import Sequence

from .demos import FixtureDemo
from .gemini_server import GeminiServer
from .openai_server import OpenAIServer
from .reference import Answerer, reference_from


def answerer_for(
    fixtures: Sequence[FixtureDemo],
    sigma_frames: float = 0.0,
    faults: dict[str, list[str]] | None = None,
    seed: int = 0,
) -> Answerer:
    """Answer from the fixtures' reference segmentations, with the given noise and faults."""
    lookup = reference_from({f.demo.key: f.reference.segments for f in fixtures})
    return Answerer(
        lookup, sigma_frames=sigma_frames, seed=seed, faults=dict(faults or {})
    )


def gemini_server(
    fixtures: Sequence[FixtureDemo], api_key: str, **kwargs
) -> GeminiServer:
    server_options = {k: kwargs.pop(k) for k in ("latency_s", "hang_s") if k in kwargs}
    return GeminiServer(
        answerer_for(fixtures, **kwargs), api_key=api_key, **server_options
    )


def openai_server(
    fixtures: Sequence[FixtureDemo], api_key: str = "", **kwargs
) -> OpenAIServer:
    server_options = {
        k: kwargs.pop(k) for k in ("latency_s", "hang_s", "json_schema") if k in kwargs
    }
    return OpenAIServer(
        answerer_for(fixtures, **kwargs), api_key=api_key, **server_options
    )
