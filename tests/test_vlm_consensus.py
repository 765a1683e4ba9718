"""The consensus segmenter: VLM boundaries checked against gripper events."""

from dataclasses import replace

import draccus
from servers.demos import make_demos
from servers.gemini_server import GeminiServer
from servers.reference import Answerer, reference_from

from aas.commands.segment import Config as SegmentCommandConfig
from aas.segmenters import SegmenterConfig
from aas.segmenters.consensus import (
    ConsensusConfig,
    ConsensusSegmenter,
    check_boundaries,
)
from aas.segmenters.gemini import GeminiConfig, GeminiSegmenter
from aas.segmenters.keyframes import KeyframeConfig
from aas.segmenters.kinematic_events import detect_events
from aas.segmenters.openai_compat import OpenAIConfig

KEY = "consensus-test-key"
FIXTURES = make_demos(2)
ITEMS = [(f.demo, f.plan) for f in FIXTURES]


def shifted(segments, index, frames):
    """Move the end of segment ``index`` (and the next start) by ``frames``."""
    segments = list(segments)
    segments[index] = replace(segments[index], end=segments[index].end + frames)
    segments[index + 1] = replace(segments[index + 1], start=segments[index].end + 1)
    return segments


def consensus(server, **overrides):
    vlm = GeminiConfig(
        base_url=server.url, keyframes=KeyframeConfig(budget=400, image_size=16)
    )
    config = ConsensusConfig(vlm=vlm, **overrides)
    return ConsensusSegmenter(config, GeminiSegmenter(vlm, api_key=KEY))


def serve(reference_segments):
    return GeminiServer(Answerer(reference_from(reference_segments)), api_key=KEY)


def test_check_boundaries_agree_at_events():
    fixture = FIXTURES[1]
    checks = check_boundaries(
        fixture.reference.segments, detect_events(fixture.demo), 10.0
    )
    assert len(checks) == len(fixture.plan) - 1
    assert [c.expected for c in checks] == ["close", "open", "close"]
    for check in checks:
        assert check.distance_frames <= 5
        assert check.agreement > 0.7


def test_check_boundaries_penalise_far_grasp():
    fixture = FIXTURES[0]
    segments = shifted(fixture.reference.segments, 0, -30)
    check = check_boundaries(segments, detect_events(fixture.demo), 10.0)[0]
    assert check.distance_frames >= 20
    assert check.agreement < 0.05


def test_consensus_keeps_agreeing_proposal():
    references = {f.demo.key: f.reference.segments for f in FIXTURES}
    with serve(references) as server:
        results = consensus(server).segment_many(ITEMS)
    for result, fixture in zip(results, FIXTURES):
        assert result.ok
        assert result.provenance.segmenter == "consensus"
        assert result.provenance.extra["proposer"] == "gemini"
        assert len(result.provenance.extra["disagreement"]) == len(fixture.plan) - 1
        assert min(s.confidence for s in result.segments) > 0.6


def test_consensus_lowers_confidence_of_far_grasp():
    references = {f.demo.key: f.reference.segments for f in FIXTURES}
    references["memory/demo_0"] = shifted(references["memory/demo_0"], 0, -30)
    with serve(references) as server:
        result = consensus(server).segment(*ITEMS[0])
    disagreement = result.provenance.extra["disagreement"][0]
    assert disagreement["distance_frames"] >= 20
    assert result.segments[0].confidence < 0.05
    assert result.segments[1].confidence > 0.6


def test_consensus_snaps_near_boundary_onto_event():
    references = {f.demo.key: f.reference.segments for f in FIXTURES}
    references["memory/demo_0"] = shifted(references["memory/demo_0"], 0, 6)
    with serve(references) as server:
        result = consensus(server, snap_frames=10).segment(*ITEMS[0])
    event_frame = result.provenance.extra["disagreement"][0]["event_frame"]
    assert result.segments[0].end == event_frame
    assert result.segments[1].start == event_frame + 1
    assert result.provenance.extra["snapped"]


def test_consensus_passes_on_proposal_failure():
    with GeminiServer(
        Answerer(reference_from({}), faults={"*": ["blocked"]}), api_key=KEY
    ) as server:
        result = consensus(server).segment(*ITEMS[0])
    assert result.status == "failed"
    assert result.provenance.extra["failure_reason"] == "safety_block"


def test_consensus_config_defaults_to_gemini():
    config = SegmenterConfig.get_choice_class("consensus")()
    assert isinstance(config, ConsensusConfig)
    assert config.vlm.type == "gemini"


def test_consensus_config_parses_nested_vlm_choice():
    args = [
        "--segmenter.type=consensus",
        "--segmenter.vlm.type=openai",
        "--segmenter.vlm.base_url=http://127.0.0.1:9/v1",
    ]
    config = draccus.parse(config_class=SegmentCommandConfig, args=args)
    assert isinstance(config.segmenter, ConsensusConfig)
    assert isinstance(config.segmenter.vlm, OpenAIConfig)
    assert config.segmenter.vlm.base_url == "http://127.0.0.1:9/v1"
