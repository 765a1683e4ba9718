"""Parsing, safe repair and rejection of model replies."""

import json

from aas.schema import Plan, Step
from aas.segmenters import response as r
from aas.segmenters.response import Reply, interpret_reply, parse_answer

PLAN = Plan(
    (
        Step("grasp", ("bowl_1",), "pick up the bowl"),
        Step("place", ("bowl_1", "plate_1"), "place it on the plate"),
        Step("grasp", ("cup_1",), "pick up the cup"),
    )
)
KEYFRAMES = [0, 10, 20, 30, 40, 50, 59]
T = 60


def answer(bounds, ops=None, confidence=0.8):
    ops = ops or [(s.op, list(s.args)) for s in PLAN.steps]
    return json.dumps(
        {
            "segments": [
                {"op": op, "args": args, "start": a, "end": b, "confidence": confidence}
                for (op, args), (a, b) in zip(ops, bounds)
            ]
        }
    )


def parse(text, keyframes=KEYFRAMES):
    return parse_answer(text, PLAN, keyframes, T, "gemini")


def test_parse_accepts_exact_answer():
    result = parse(answer([(0, 20), (21, 40), (41, 59)]))
    assert result.ok
    assert result.repairs == ()
    assert [(s.start, s.end) for s in result.segments] == [(0, 20), (21, 40), (41, 59)]


def test_parse_fills_instruction_and_source():
    segment = parse(answer([(0, 20), (21, 40), (41, 59)])).segments[1]
    assert segment.instruction == "place it on the plate"
    assert segment.source == "gemini"
    assert segment.confidence == 0.8


def test_parse_snaps_boundary_to_nearest_keyframe():
    result = parse(answer([(0, 22), (23, 38), (39, 59)]))
    assert result.ok
    assert [s.end for s in result.segments] == [20, 40, 59]
    assert any("keyframe 20" in note for note in result.repairs)


def test_parse_closes_gap_between_segments():
    result = parse(answer([(0, 18), (23, 40), (41, 59)]))
    assert result.ok
    assert result.segments[0].end == 20
    assert result.segments[1].start == 21
    assert any("contiguous" in note for note in result.repairs)


def test_parse_moves_first_start_and_last_end():
    result = parse(answer([(2, 20), (21, 40), (41, 55)]))
    assert result.segments[0].start == 0
    assert result.segments[-1].end == 59
    assert len(result.repairs) == 2


def test_parse_accepts_fenced_json():
    text = "```json\n" + answer([(0, 20), (21, 40), (41, 59)]) + "\n```"
    assert parse(text).ok


def test_parse_flags_count_mismatch():
    result = parse(answer([(0, 30), (31, 59)]))
    assert result.error == r.SEGMENT_COUNT_MISMATCH
    assert "expected 3" in result.message
    assert result.segments == ()


def test_parse_flags_plan_mismatch():
    ops = [
        ("grasp", ["bowl_1"]),
        ("place", ["bowl_1", "basket_1"]),
        ("grasp", ["cup_1"]),
    ]
    result = parse(answer([(0, 20), (21, 40), (41, 59)], ops=ops))
    assert result.error == r.PLAN_MISMATCH
    assert "segment 1" in result.message


def test_parse_rejects_frames_outside_demo():
    result = parse(answer([(0, 20), (21, 40), (41, 99)]))
    assert result.error == r.FRAME_OUT_OF_RANGE
    assert "99" in result.message


def test_parse_rejects_malformed_json():
    result = parse("The robot grasps the bowl first.")
    assert result.error == r.MALFORMED_JSON


def test_parse_rejects_missing_segments_array():
    assert parse(json.dumps({"steps": []})).error == r.INVALID_SCHEMA


def test_parse_rejects_confidence_above_one():
    result = parse(answer([(0, 20), (21, 40), (41, 59)], confidence=1.5))
    assert result.error == r.INVALID_SCHEMA
    assert "confidence" in result.message


def test_parse_rejects_string_frames():
    text = answer([(0, 20), (21, 40), (41, 59)]).replace('"end": 20', '"end": "20"')
    assert parse(text).error == r.INVALID_SCHEMA


def test_parse_rejects_boundaries_collapsing_on_one_keyframe():
    result = parse(answer([(0, 19), (20, 21), (22, 59)]))
    assert result.error == r.BOUNDARIES_NOT_INCREASING


def test_interpret_reports_prompt_block():
    reply = Reply(text="", candidates=0, block_reason="SAFETY")
    assert interpret_reply(reply, PLAN, KEYFRAMES, T, "gemini").error == r.SAFETY_BLOCK


def test_interpret_reports_empty_candidates():
    reply = Reply(text="", candidates=0)
    assert (
        interpret_reply(reply, PLAN, KEYFRAMES, T, "gemini").error == r.EMPTY_CANDIDATES
    )


def test_interpret_reports_truncation():
    reply = Reply(text='{"segments": [{"op"', finish_reason=r.FINISH_LENGTH)
    assert interpret_reply(reply, PLAN, KEYFRAMES, T, "gemini").error == r.TRUNCATED


def test_interpret_reports_refusal():
    reply = Reply(text="", refusal="I can't help with that.")
    result = interpret_reply(reply, PLAN, KEYFRAMES, T, "openai")
    assert result.error == r.REFUSAL
    assert "can't help" in result.message


def test_interpret_reports_safety_finish():
    reply = Reply(text="", finish_reason=r.FINISH_SAFETY)
    assert interpret_reply(reply, PLAN, KEYFRAMES, T, "gemini").error == r.SAFETY_BLOCK


def test_reply_round_trips_through_dict():
    reply = Reply(text="{}", input_tokens=3, output_tokens=4, image_tokens=2)
    assert Reply.from_dict(reply.to_dict()) == reply
