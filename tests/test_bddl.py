"""Specification of the BDDL parser: every LIBERO file parses, bad text names its line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from aas.bddl import (
    SUITES,
    BDDLError,
    Resolved,
    libero_bddl_files,
    parse_bddl,
    parse_bddl_text,
)

KITCHEN = textwrap.dedent(
    """\
    (define (problem LIBERO_Kitchen_Tabletop_Manipulation)
      (:domain robosuite)
      (:language put the black bowl in the top drawer of the cabinet)
      (:regions
        (cabinet_init_region
          (:target kitchen_table)
          (:ranges ((-0.01 -0.31 0.01 -0.29)))
          (:yaw_rotation ((3.14 3.14)))
        )
        (plate_right_region
          (:target kitchen_table)
          (:ranges ((0.1 0.1 0.2 0.2) (0.3 0.3 0.4 0.4)))
        )
        (top_region (:target wooden_cabinet_1))
        (top_side (:target wooden_cabinet_1))
        (cook_region (:target flat_stove_1))
      )
      (:fixtures
        kitchen_table - kitchen_table
        wooden_cabinet_1 - wooden_cabinet
        flat_stove_1 - flat_stove
      )
      (:objects
        akita_black_bowl_1 akita_black_bowl_2 - akita_black_bowl
        plate_1 - plate
        chefmate_8_frypan_1 - chefmate_8_frypan
      )
      (:obj_of_interest
        akita_black_bowl_1
      )
      (:init
        (On wooden_cabinet_1 kitchen_table_cabinet_init_region)
        (On akita_black_bowl_1 kitchen_table_plate_right_region)
        (On akita_black_bowl_2 plate_1)
      )
      (:goal
        (And (In akita_black_bowl_1 wooden_cabinet_1_top_region) (Turnon flat_stove_1))
      )
    )
    """
)


def _replace(old: str, new: str) -> str:
    assert old in KITCHEN, old
    return KITCHEN.replace(old, new)


def test_libero_ships_130_files() -> None:
    files = libero_bddl_files()
    assert len(files) == 130
    assert len(libero_bddl_files("libero_90")) == 90
    for suite in SUITES[:4]:
        assert len(libero_bddl_files(suite)) == 10


def test_every_libero_file_parses() -> None:
    for path in libero_bddl_files():
        scene = parse_bddl(path)
        assert scene.language, path
        assert scene.goal, path
        assert scene.objects, path
        assert scene.source == str(path)
        for atom in scene.init + scene.goal:
            assert atom[0] == atom[0].lower(), (path, atom)


def test_libero_files_found_without_importing_libero_libero() -> None:
    code = (
        "import sys\n"
        "from aas.bddl import libero_bddl_files\n"
        "assert len(libero_bddl_files()) == 130\n"
        "assert 'libero.libero' not in sys.modules, 'libero.libero was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_unknown_suite_rejected() -> None:
    with pytest.raises(ValueError, match="libero_100"):
        libero_bddl_files("libero_100")


def test_parse_reads_sections() -> None:
    scene = parse_bddl_text(KITCHEN)
    assert scene.problem_name == "LIBERO_Kitchen_Tabletop_Manipulation"
    assert scene.domain == "robosuite"
    assert scene.language == "put the black bowl in the top drawer of the cabinet"
    assert scene.objects == {
        "akita_black_bowl_1": "akita_black_bowl",
        "akita_black_bowl_2": "akita_black_bowl",
        "plate_1": "plate",
        "chefmate_8_frypan_1": "chefmate_8_frypan",
    }
    assert scene.fixtures["wooden_cabinet_1"] == "wooden_cabinet"
    assert scene.obj_of_interest == ("akita_black_bowl_1",)
    assert scene.init[1] == (
        "on",
        "akita_black_bowl_1",
        "kitchen_table_plate_right_region",
    )
    assert scene.goal == (
        ("in", "akita_black_bowl_1", "wooden_cabinet_1_top_region"),
        ("turnon", "flat_stove_1"),
    )


def test_parse_reads_region_geometry() -> None:
    regions = parse_bddl_text(KITCHEN).regions
    cabinet = regions["kitchen_table_cabinet_init_region"]
    assert cabinet.local_name == "cabinet_init_region"
    assert cabinet.target == "kitchen_table"
    assert cabinet.ranges == ((-0.01, -0.31, 0.01, -0.29),)
    assert cabinet.yaw_rotation == ((3.14, 3.14),)
    assert cabinet.line == 5
    assert len(regions["kitchen_table_plate_right_region"].ranges) == 2
    assert regions["wooden_cabinet_1_top_region"].ranges == ()


def test_same_local_region_name_on_two_targets() -> None:
    path = next(
        p
        for p in libero_bddl_files("libero_goal")
        if p.name == "put_the_bowl_on_the_plate.bddl"
    )
    scene = parse_bddl(path)
    assert scene.regions["wooden_cabinet_1_top_region"].target == "wooden_cabinet_1"
    assert scene.regions["wine_rack_1_top_region"].target == "wine_rack_1"


def test_resolve_maps_names_to_owners() -> None:
    scene = parse_bddl_text(KITCHEN)
    assert scene.resolve("plate_1") == Resolved("object", "plate_1", None)
    assert scene.resolve("flat_stove_1") == Resolved("fixture", "flat_stove_1", None)
    assert scene.resolve("wooden_cabinet_1_top_region") == Resolved(
        "region", "wooden_cabinet_1", "top_region"
    )
    assert scene.resolve("kitchen_table_plate_right_region") == Resolved(
        "region", "kitchen_table", "plate_right_region"
    )


def test_resolve_rejects_unknown_name() -> None:
    with pytest.raises(KeyError, match="ketchup_1"):
        parse_bddl_text(KITCHEN).resolve("ketchup_1")


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("chefmate_8_frypan_1", "frying pan"),
        ("plate_1", "plate"),
        ("akita_black_bowl_2", "black bowl 2"),
        ("wooden_cabinet_1_top_region", "top drawer of the cabinet"),
        ("wooden_cabinet_1_top_side", "top of the cabinet"),
        ("flat_stove_1_cook_region", "stove"),
        ("kitchen_table_plate_right_region", "right side of the plate"),
        ("kitchen_table_cabinet_init_region", "starting area of the cabinet"),
    ],
)
def test_display_name_is_readable(name: str, phrase: str) -> None:
    assert parse_bddl_text(KITCHEN).display_name(name) == phrase


MALFORMED = [
    (
        "extra close paren",
        ("(:domain robosuite)", "(:domain robosuite))"),
        3,
        "extra ')'",
    ),
    (
        "unclosed list",
        (
            "(top_side (:target wooden_cabinet_1))",
            "(top_side (:target wooden_cabinet_1)",
        ),
        1,
        "never closed",
    ),
    (
        "unknown section",
        ("(:obj_of_interest", "(:objects_of_interest"),
        28,
        "unknown section ':objects_of_interest'",
    ),
    (
        "missing goal",
        (
            "(:goal\n    (And (In akita_black_bowl_1 wooden_cabinet_1_top_region) (Turnon flat_stove_1))\n  )",
            "",
        ),
        1,
        "missing section (:goal",
    ),
    (
        "undeclared goal name",
        ("(Turnon flat_stove_1))", "(Turnon flat_stove_2))"),
        37,
        "'flat_stove_2'",
    ),
    (
        "duplicate section",
        ("(:domain robosuite)", "(:domain robosuite)\n(:domain robosuite)"),
        3,
        "duplicate section ':domain' (first at line 2)",
    ),
    (
        "missing type",
        ("chefmate_8_frypan_1 - chefmate_8_frypan", "chefmate_8_frypan_1"),
        26,
        "'chefmate_8_frypan_1' has no type",
    ),
    (
        "short range",
        ("(0.3 0.3 0.4 0.4)", "(0.3 0.3 0.4)"),
        12,
        ":ranges entry must be a list of 4 numbers",
    ),
    (
        "bad number",
        ("(-0.01 -0.31 0.01 -0.29)", "(-0.01 -0.31 0.01 oops)"),
        7,
        "'oops' is not a number",
    ),
    (
        "unknown region attribute",
        (
            "(top_side (:target wooden_cabinet_1))",
            "(top_side (:target wooden_cabinet_1) (:color red))",
        ),
        15,
        "unknown attribute ':color'",
    ),
    ("disjunctive goal", ("(And (In", "(Or (In"), 37, "unsupported connective 'Or'"),
    (
        "wrong predicate arity",
        ("(On akita_black_bowl_2 plate_1)", "(On akita_black_bowl_2)"),
        34,
        "On takes 2 argument(s), got 1",
    ),
    (
        "region without target",
        ("(cook_region (:target flat_stove_1))", "(cook_region)"),
        16,
        "has no (:target NAME)",
    ),
    (
        "duplicate region",
        (
            "(cook_region (:target flat_stove_1))",
            "(cook_region (:target flat_stove_1))\n(cook_region (:target flat_stove_1))",
        ),
        17,
        "defined twice (first at line 16)",
    ),
]


@pytest.mark.parametrize(
    ("case", "edit", "line", "message"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_malformed_text_names_line(
    case: str, edit: tuple[str, str], line: int, message: str
) -> None:
    text = _replace(*edit)
    with pytest.raises(BDDLError) as info:
        parse_bddl_text(text, source="kitchen.bddl")
    assert info.value.source == "kitchen.bddl"
    assert info.value.line == line, str(info.value)
    assert message in str(info.value)
    assert str(info.value).startswith(f"kitchen.bddl:{line}: ")


def test_empty_text_rejected() -> None:
    with pytest.raises(BDDLError, match="empty file"):
        parse_bddl_text("; only a comment\n")


def test_parse_bddl_error_names_file(tmp_path) -> None:
    path = tmp_path / "broken.bddl"
    path.write_text(KITCHEN.replace("(:goal", "(:gaol"), encoding="utf-8")
    with pytest.raises(BDDLError) as info:
        parse_bddl(path)
    assert str(info.value).startswith(f"{path}:36: unknown section ':gaol'")


def test_comments_are_ignored() -> None:
    text = KITCHEN.replace(
        "(:domain robosuite)", "(:domain robosuite) ; (unbalanced in comment"
    )
    assert parse_bddl_text(text).domain == "robosuite"


def test_parse_agrees_with_libero_parser() -> None:
    from aas.sims.runtime import setup_libero

    setup_libero(check_renderer=False)
    from libero.libero.envs.bddl_utils import robosuite_parse_problem

    for path in libero_bddl_files():
        scene = parse_bddl(path)
        expected = robosuite_parse_problem(str(path))
        assert scene.language.lower() == " ".join(expected["language_instruction"]), (
            path
        )
        assert scene.problem_name.lower() == expected["problem_name"], path
        objects = {n: c for c, names in expected["objects"].items() for n in names}
        assert scene.objects == objects, path
        fixtures = {n: c for c, names in expected["fixtures"].items() for n in names}
        assert scene.fixtures == fixtures, path
        assert scene.obj_of_interest == tuple(expected["obj_of_interest"]), path
        assert [list(a) for a in scene.init] == expected["initial_state"], path
        assert [list(a) for a in scene.goal] == expected["goal_state"], path
        assert set(scene.regions) == set(expected["regions"]), path
        for name, region in scene.regions.items():
            other = expected["regions"][name]
            assert region.target == other["target"], (path, name)
            assert [list(r) for r in region.ranges] == other["ranges"], (path, name)
            if region.yaw_rotation:
                # LIBERO keeps only the last yaw interval of a region.
                assert list(region.yaw_rotation[-1]) == other["yaw_rotation"], (
                    path,
                    name,
                )


def test_scene_to_dict_is_json() -> None:
    data = json.loads(json.dumps(parse_bddl_text(KITCHEN).to_dict()))
    assert data["goal"][1] == ["turnon", "flat_stove_1"]
    assert (
        data["regions"]["wooden_cabinet_1_top_region"]["target"] == "wooden_cabinet_1"
    )
    assert data["regions"]["kitchen_table_plate_right_region"]["ranges"][1] == [
        0.3,
        0.3,
        0.4,
        0.4,
    ]
