"""The segmentation prompt template and the answer schema."""

from servers.demos import make_demo

from aas.operators import OPERATORS
from aas.schema import content_hash
from aas.segmenters import prompt as p


def test_prompt_hash_is_digest_of_template_file():
    assert p.PROMPT_HASH == content_hash(p.PROMPT_TEMPLATE)
    assert p.PROMPT_VERSION == "segment_v1"


def test_prompt_holds_instruction_plan_and_numbering():
    fixture = make_demo(0)
    text = p.build_prompt(fixture.demo, fixture.plan, [0, 5, 9])
    assert fixture.demo.instruction in text
    assert "1. grasp(akita_black_bowl_1)" in text
    assert "2. place(akita_black_bowl_1, plate_1)" in text
    assert f"numbered 0 to {fixture.demo.num_frames - 1}" in text
    assert '"Frame N"' in text
    assert f"Demo: {fixture.demo.key}" in text


def test_prompt_lists_every_operator():
    fixture = make_demo(0)
    text = p.build_prompt(fixture.demo, fixture.plan, [0, 9])
    for name, operator in OPERATORS.items():
        assert f"- {name}(" in text
        assert operator.description in text


def test_prompt_timeline_is_optional():
    fixture = make_demo(0)
    without = p.build_prompt(fixture.demo, fixture.plan, [0, 9])
    with_timeline = p.build_prompt(
        fixture.demo, fixture.plan, [0, 9], include_timeline=True
    )
    assert "Gripper command" not in without
    assert "Gripper command: open 0-" in with_timeline


def test_gripper_timeline_lists_runs():
    fixture = make_demo(0)
    closed = fixture.demo.actions[:, 6] > 0
    first_close = int(closed.argmax())
    assert p.gripper_timeline(fixture.demo).startswith(
        f"Gripper command: open 0-{first_close - 1}, closed {first_close}-"
    )


def test_answer_schema_fixes_segment_count():
    fixture = make_demo(1)
    schema = p.answer_schema(fixture.plan)
    segments = schema["properties"]["segments"]
    assert segments["minItems"] == len(fixture.plan) == segments["maxItems"]
    assert segments["items"]["properties"]["op"]["enum"] == ["grasp", "place"]
    assert set(segments["items"]["required"]) == set(p.ANSWER_FIELDS)


def test_answer_schema_strict_forbids_extra_fields():
    schema = p.answer_schema(make_demo(0).plan, strict=True)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["segments"]["items"]["additionalProperties"] is False
