"""Parse LIBERO BDDL problem files into a :class:`Scene`.

BDDL (Behavior Domain Definition Language) is the PDDL-like format in which
LIBERO describes a task: the objects and fixtures of the scene, named
regions on them, the initial atoms and the goal conjunction. This parser
reads the s-expressions itself, keeping the line of every token, so that a
malformed file is reported as ``file:line: problem``. It accepts the sections
LIBERO's own parser accepts (``:domain``, ``:requirements``, ``:language``,
``:regions``, ``:scene_properties``, ``:fixtures``, ``:objects``,
``:obj_of_interest``, ``:init``, ``:goal``) and nothing else.

A region ``top_region`` declared with ``(:target wooden_cabinet_1)`` is
referred to in atoms by its full name ``wooden_cabinet_1_top_region``, as in
LIBERO. Atoms are lower-cased tuples, predicate first.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aas.schema import Atom

SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90")

KNOWN_SECTIONS = (
    ":domain",
    ":requirements",
    ":language",
    ":regions",
    ":scene_properties",
    ":fixtures",
    ":objects",
    ":obj_of_interest",
    ":init",
    ":goal",
)
REQUIRED_SECTIONS = (":language", ":objects", ":init", ":goal")
# Argument counts of the LIBERO predicates the planner reasons about. Other
# predicates LIBERO defines are accepted with any number of arguments.
PREDICATE_ARITY = {"on": 2, "in": 2, "open": 1, "close": 1, "turnon": 1, "turnoff": 1}
REGION_ATTRIBUTES = (":target", ":ranges", ":yaw_rotation", ":rgba")

# Readable names for LIBERO categories whose identifier is not plain English.
CATEGORY_NAMES = {
    "akita_black_bowl": "black bowl",
    "chefmate_8_frypan": "frying pan",
    "porcelain_mug": "white mug",
    "white_yellow_mug": "yellow and white mug",
    "red_coffee_mug": "red mug",
    "new_salad_dressing": "salad dressing",
    "glazed_rim_porcelain_ramekin": "ramekin",
    "cookies": "cookie box",
    "flat_stove": "stove",
    "wooden_cabinet": "cabinet",
    "white_cabinet": "cabinet",
    "wooden_two_layer_shelf": "shelf",
    "desk_caddy": "caddy",
    "wooden_tray": "tray",
    "kitchen_table": "table",
    "living_room_table": "table",
    "study_table": "table",
}

# Region names whose whole meaning is "the inside or top of the owner".
OWNER_ONLY_REGIONS = ("cook_region", "heating_region", "contain_region")
LEVEL_WORDS = ("top", "middle", "bottom")
SIDE_WORDS = ("left", "right", "front", "back", "behind")


class BDDLError(ValueError):
    """A BDDL text that cannot be parsed; the message names file and line."""

    def __init__(self, source: str, line: int, message: str) -> None:
        self.source = source
        self.line = line
        self.reason = message
        super().__init__(f"{source}:{line}: {message}")


@dataclass(frozen=True)
class Region:
    """A named region of a BDDL scene.

    ``name`` is the full name used in atoms (``<target>_<local_name>``).
    ``ranges`` lists axis-aligned rectangles ``(x_min, y_min, x_max, y_max)``
    in metres, relative to the target's frame, and ``yaw_rotation`` lists
    ``(min, max)`` yaw intervals in radians for objects placed there.
    """

    name: str
    local_name: str
    target: str
    ranges: tuple[tuple[float, float, float, float], ...] = ()
    yaw_rotation: tuple[tuple[float, float], ...] = ()
    rgba: tuple[float, float, float, float] | None = None
    line: int = 0


@dataclass(frozen=True)
class Resolved:
    """The entity a BDDL name refers to.

    ``kind`` is ``"object"``, ``"fixture"`` or ``"region"``. ``owner`` is the
    object or fixture itself, or for a region the entity it belongs to.
    ``region`` is the region's local name (``"top_region"``) or None.
    """

    kind: str
    owner: str
    region: str | None = None


@dataclass(frozen=True)
class Scene:
    """A parsed BDDL problem.

    ``objects`` and ``fixtures`` map instance names to categories
    (``"akita_black_bowl_1": "akita_black_bowl"``); ``regions`` is keyed by
    full region name. ``init`` and ``goal`` are lower-cased atoms; ``goal``
    is the flattened conjunction. ``source`` is the file the scene came from.
    """

    problem_name: str
    language: str
    objects: dict[str, str]
    fixtures: dict[str, str]
    regions: dict[str, Region]
    init: tuple[Atom, ...]
    goal: tuple[Atom, ...]
    obj_of_interest: tuple[str, ...] = ()
    domain: str = ""
    source: str = "<string>"
    scene_properties: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the scene as JSON-serialisable data, regions keyed by full name."""
        return {
            "problem_name": self.problem_name,
            "domain": self.domain,
            "language": self.language,
            "source": self.source,
            "objects": dict(self.objects),
            "fixtures": dict(self.fixtures),
            "regions": {
                name: {
                    "local_name": region.local_name,
                    "target": region.target,
                    "ranges": [list(r) for r in region.ranges],
                    "yaw_rotation": [list(r) for r in region.yaw_rotation],
                    "rgba": list(region.rgba) if region.rgba is not None else None,
                }
                for name, region in self.regions.items()
            },
            "obj_of_interest": list(self.obj_of_interest),
            "init": [list(atom) for atom in self.init],
            "goal": [list(atom) for atom in self.goal],
        }

    @property
    def file_name(self) -> str:
        """Base name of the source file (``"put_the_bowl_on_the_plate.bddl"``)."""
        return Path(self.source).name

    def entity_category(self, name: str) -> str:
        """Return the category of an object or fixture instance."""
        if name in self.objects:
            return self.objects[name]
        if name in self.fixtures:
            return self.fixtures[name]
        raise KeyError(f"{name!r} is not an object or fixture of {self.source}")

    def resolve(self, name: str) -> Resolved:
        """Map a BDDL name to the object, fixture or region it denotes.

        Raises:
            KeyError: ``name`` is not declared in this scene.
        """
        if name in self.objects:
            return Resolved("object", name)
        if name in self.fixtures:
            return Resolved("fixture", name)
        region = self.regions.get(name)
        if region is not None:
            return Resolved("region", region.target, region.local_name)
        raise KeyError(
            f"{name!r} is not an object, fixture or region of {self.source}; "
            f"declared names: {sorted(self.names())}"
        )

    def names(self) -> set[str]:
        """Return every name atoms may mention: objects, fixtures, regions."""
        return set(self.objects) | set(self.fixtures) | set(self.regions)

    def display_name(self, name: str) -> str:
        """Return a readable noun phrase for a BDDL name, without article.

        ``akita_black_bowl_1`` -> ``"black bowl"``,
        ``wooden_cabinet_1_top_region`` -> ``"top drawer of the cabinet"``.
        When several instances of the scene share a phrase, the instance
        number is appended (``"plate 2"``) so that instructions stay
        unambiguous.
        """
        resolved = self.resolve(name)
        if resolved.kind != "region":
            return self._instance_phrase(name)
        return self._region_phrase(self.regions[name])

    def _instance_phrase(self, name: str) -> str:
        phrase = category_phrase(self.entity_category(name))
        same = [
            other
            for other in (*self.objects, *self.fixtures)
            if category_phrase(self.entity_category(other)) == phrase
        ]
        if len(same) > 1:
            number = re.search(r"_(\d+)$", name)
            suffix = number.group(1) if number else name
            return f"{phrase} {suffix}"
        return phrase

    def _region_phrase(self, region: Region) -> str:
        if region.target in self.objects or region.target in self.fixtures:
            owner = self._instance_phrase(region.target)
            owner_category = self.entity_category(region.target)
        else:
            owner = region.target.replace("_", " ")
            owner_category = region.target
        local = region.local_name
        if local in OWNER_ONLY_REGIONS or owner_category == "wine_rack":
            return owner
        if local == "top_side":
            return f"top of the {owner}"
        words = local.removesuffix("_region").split("_")
        if words and words[-1] == "contain":
            return f"{' '.join(words[:-1])} compartment of the {owner}"
        if len(words) == 1 and words[0] in LEVEL_WORDS:
            part = "drawer" if owner_category.endswith("cabinet") else "layer"
            return f"{words[0]} {part} of the {owner}"
        if len(words) > 1 and words[-1] == "init":
            return f"starting area of the {_qualified_phrase(words[:-1])}"
        if len(words) > 1 and words[-1] in SIDE_WORDS:
            return _side_phrase(words)
        if words and words[0] in SIDE_WORDS:
            return f"{' '.join(words)} side of the {owner}"
        return f"{category_phrase('_'.join(words))} area of the {owner}"


def _qualified_phrase(words: list[str]) -> str:
    """Phrase ``["akita", "black", "bowl", "back"]`` as ``"back black bowl"``."""
    if len(words) > 1 and words[-1] in (*SIDE_WORDS, *LEVEL_WORDS):
        return f"{words[-1]} {category_phrase('_'.join(words[:-1]))}"
    return category_phrase("_".join(words))


def _side_phrase(words: list[str]) -> str:
    """Phrase ``["plate", "right"]`` as ``"right side of the plate"``."""
    if len(words) < 2 or words[-1] not in SIDE_WORDS:
        return category_phrase("_".join(words))
    reference = category_phrase("_".join(words[:-1]))
    if words[-1] == "behind":
        return f"area behind the {reference}"
    return f"{words[-1]} side of the {reference}"


def category_phrase(category: str) -> str:
    """Return the readable phrase of a category (``"chefmate_8_frypan"`` -> ``"frying pan"``)."""
    return CATEGORY_NAMES.get(category, category.replace("_", " "))


# ---------------------------------------------------------------- s-expressions


@dataclass
class _Node:
    """An s-expression: a symbol (``text``) or a list (``items``) starting at ``line``."""

    line: int
    text: str | None = None
    items: list[_Node] = field(default_factory=list)

    @property
    def is_list(self) -> bool:
        return self.text is None

    def head(self) -> str | None:
        if self.is_list and self.items and not self.items[0].is_list:
            return self.items[0].text
        return None


_TOKEN = re.compile(r"\(|\)|[^\s()]+")


def _tokenize(text: str) -> Iterator[tuple[str, int]]:
    for lineno, line in enumerate(text.splitlines(), start=1):
        code = line.split(";", 1)[0]
        for match in _TOKEN.finditer(code):
            yield match.group(0), lineno


def _read_sexpr(text: str, source: str) -> _Node:
    stack: list[_Node] = []
    top: _Node | None = None
    top_end = last_line = 1
    for token, lineno in _tokenize(text):
        last_line = lineno
        if top is not None:
            raise BDDLError(
                source,
                lineno,
                f"unexpected {token!r} after the end of the list opened at line {top.line}, "
                f"which closed at line {top_end}; look for an extra ')' there",
            )
        if token == "(":
            stack.append(_Node(lineno))
        elif token == ")":
            if not stack:
                raise BDDLError(source, lineno, "unbalanced ')': no '(' is open here")
            node = stack.pop()
            if stack:
                stack[-1].items.append(node)
            else:
                top, top_end = node, lineno
        else:
            if not stack:
                raise BDDLError(
                    source, lineno, f"symbol {token!r} outside any '(' ... ')'"
                )
            stack[-1].items.append(_Node(lineno, text=token))
    if stack:
        raise BDDLError(
            source,
            stack[-1].line,
            f"unbalanced '(': this list is never closed (end of file at line {last_line})",
        )
    if top is None:
        raise BDDLError(
            source, last_line, "empty file: expected (define (problem ...) ...)"
        )
    return top


# --------------------------------------------------------------------- parsing


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, node: _Node, message: str) -> BDDLError:
        return BDDLError(self.source, node.line, message)

    def symbol(self, node: _Node, what: str) -> str:
        if node.is_list:
            raise self.error(node, f"expected {what}, found a list")
        assert node.text is not None
        return node.text

    def parse(self, root: _Node) -> Scene:
        if root.head() != "define":
            raise self.error(root, "a BDDL problem must start with (define ...)")
        sections: dict[str, _Node] = {}
        problem_name = ""
        for node in root.items[1:]:
            head = node.head()
            if head == "problem":
                if len(node.items) != 2:
                    raise self.error(node, "expected (problem NAME)")
                problem_name = self.symbol(node.items[1], "a problem name")
                continue
            if head is None:
                raise self.error(node, "expected a section such as (:objects ...)")
            if head not in KNOWN_SECTIONS:
                raise self.error(
                    node,
                    f"unknown section {head!r}; expected one of {', '.join(KNOWN_SECTIONS)}",
                )
            if head in sections:
                raise self.error(
                    node,
                    f"duplicate section {head!r} (first at line {sections[head].line})",
                )
            sections[head] = node
        for name in REQUIRED_SECTIONS:
            if name not in sections:
                raise self.error(root, f"missing section ({name} ...)")
        if not problem_name:
            raise self.error(root, "missing (problem NAME) in define")

        fixtures = self.typed_names(sections.get(":fixtures"))
        objects = self.typed_names(sections[":objects"])
        for name in set(fixtures) & set(objects):
            raise self.error(
                sections[":objects"], f"{name!r} is both a fixture and an object"
            )
        regions = self.regions(sections.get(":regions"))
        scene = Scene(
            problem_name=problem_name,
            language=self.language(sections[":language"]),
            objects=objects,
            fixtures=fixtures,
            regions=regions,
            init=(),
            goal=(),
            obj_of_interest=self.names(sections.get(":obj_of_interest")),
            domain=self.domain(sections.get(":domain")),
            source=self.source,
            scene_properties=self.scene_properties(sections.get(":scene_properties")),
        )
        declared = scene.names()
        for name in scene.obj_of_interest:
            if name not in declared:
                raise self.error(
                    sections[":obj_of_interest"],
                    f"obj_of_interest {name!r} is not declared",
                )
        init = tuple(self.atom(node, declared) for node in sections[":init"].items[1:])
        goal = self.goal(sections[":goal"], declared)
        return dataclasses.replace(scene, init=init, goal=goal)

    def domain(self, node: _Node | None) -> str:
        if node is None:
            return ""
        if len(node.items) != 2:
            raise self.error(node, "expected (:domain NAME)")
        return self.symbol(node.items[1], "a domain name")

    def language(self, node: _Node) -> str:
        words = [
            self.symbol(item, "a word of the instruction") for item in node.items[1:]
        ]
        if not words:
            raise self.error(node, "empty (:language) instruction")
        return " ".join(words)

    def names(self, node: _Node | None) -> tuple[str, ...]:
        if node is None:
            return ()
        return tuple(self.symbol(item, "a name") for item in node.items[1:])

    def typed_names(self, node: _Node | None) -> dict[str, str]:
        """Read ``a b - type c - type2`` into ``{a: type, b: type, c: type2}``."""
        if node is None:
            return {}
        result: dict[str, str] = {}
        pending: list[_Node] = []
        items = node.items[1:]
        i = 0
        while i < len(items):
            text = self.symbol(items[i], "a name or '-'")
            if text == "-":
                if i + 1 >= len(items) or not pending:
                    raise self.error(items[i], "expected NAME - TYPE")
                category = self.symbol(items[i + 1], "a type name")
                for name_node in pending:
                    if name_node.text in result:
                        raise self.error(
                            name_node, f"{name_node.text!r} declared twice"
                        )
                    result[name_node.text] = category  # type: ignore[index]
                pending = []
                i += 2
                continue
            pending.append(items[i])
            i += 1
        if pending:
            raise self.error(
                pending[0], f"{pending[0].text!r} has no type; write NAME - TYPE"
            )
        return result

    def regions(self, node: _Node | None) -> dict[str, Region]:
        if node is None:
            return {}
        result: dict[str, Region] = {}
        for item in node.items[1:]:
            region = self.region(item)
            if region.name in result:
                raise self.error(
                    item,
                    f"region {region.name!r} defined twice "
                    f"(first at line {result[region.name].line})",
                )
            result[region.name] = region
        return result

    def region(self, node: _Node) -> Region:
        if not node.is_list or not node.items:
            raise self.error(node, "expected (REGION_NAME (:target ...) ...)")
        local_name = self.symbol(node.items[0], "a region name")
        target = None
        ranges: list[tuple[float, float, float, float]] = []
        yaw: list[tuple[float, float]] = []
        rgba = None
        for attribute in node.items[1:]:
            key = attribute.head()
            if key not in REGION_ATTRIBUTES:
                raise self.error(
                    attribute,
                    f"unknown attribute {key!r} of region {local_name!r}; "
                    f"expected one of {', '.join(REGION_ATTRIBUTES)}",
                )
            if key == ":target":
                if len(attribute.items) != 2:
                    raise self.error(attribute, "expected (:target NAME)")
                target = self.symbol(attribute.items[1], "a target name")
            elif key == ":ranges":
                ranges = [
                    self.numbers(r, 4, ":ranges") for r in self.one_list(attribute)
                ]
            elif key == ":yaw_rotation":
                yaw = [
                    self.numbers(r, 2, ":yaw_rotation")
                    for r in self.one_list(attribute)
                ]
            else:
                if len(attribute.items) != 2:
                    raise self.error(attribute, "expected (:rgba (R G B A))")
                rgba = self.numbers(attribute.items[1], 4, ":rgba")
        if target is None:
            raise self.error(node, f"region {local_name!r} has no (:target NAME)")
        return Region(
            name=f"{target}_{local_name}",
            local_name=local_name,
            target=target,
            ranges=tuple(ranges),  # type: ignore[arg-type]
            yaw_rotation=tuple(yaw),  # type: ignore[arg-type]
            rgba=rgba,  # type: ignore[arg-type]
            line=node.line,
        )

    def one_list(self, attribute: _Node) -> list[_Node]:
        if len(attribute.items) != 2 or not attribute.items[1].is_list:
            raise self.error(attribute, f"expected ({attribute.head()} ((...) ...))")
        return attribute.items[1].items

    def numbers(self, node: _Node, count: int, key: str) -> tuple[float, ...]:
        if not node.is_list or len(node.items) != count:
            raise self.error(node, f"{key} entry must be a list of {count} numbers")
        values = []
        for item in node.items:
            text = self.symbol(item, "a number")
            try:
                values.append(float(text))
            except ValueError:
                raise self.error(item, f"{key}: {text!r} is not a number") from None
        return tuple(values)

    def scene_properties(self, node: _Node | None) -> dict[str, dict[str, str]]:
        if node is None:
            return {}
        result = {}
        for item in node.items[1:]:
            if not item.is_list or not item.items:
                raise self.error(item, "expected (NAME (:floor STYLE) (:wall STYLE))")
            name = self.symbol(item.items[0], "a scene property name")
            values = {}
            for attribute in item.items[1:]:
                if (
                    attribute.head() not in (":floor", ":wall")
                    or len(attribute.items) != 2
                ):
                    raise self.error(
                        attribute, "expected (:floor STYLE) or (:wall STYLE)"
                    )
                key = attribute.head().lstrip(":")  # type: ignore[union-attr]
                values[key] = self.symbol(attribute.items[1], "a style name")
            result[name] = values
        return result

    def atom(self, node: _Node, declared: set[str]) -> Atom:
        if not node.is_list or len(node.items) < 2:
            raise self.error(node, "expected an atom such as (On a b)")
        parts = [self.symbol(item, "a predicate or argument") for item in node.items]
        for arg, arg_node in zip(parts[1:], node.items[1:]):
            if arg not in declared:
                raise self.error(
                    arg_node,
                    f"{arg!r} in ({' '.join(parts)}) is not a declared object, "
                    "fixture or region",
                )
        predicate = parts[0].lower()
        arity = PREDICATE_ARITY.get(predicate)
        if arity is not None and len(parts) - 1 != arity:
            raise self.error(
                node,
                f"({' '.join(parts)}): {parts[0]} takes {arity} argument(s), "
                f"got {len(parts) - 1}",
            )
        return (predicate, *parts[1:])

    def goal(self, node: _Node, declared: set[str]) -> tuple[Atom, ...]:
        if len(node.items) != 2:
            raise self.error(node, "expected (:goal (And ...))")
        atoms = tuple(self.conjunction(node.items[1], declared))
        if not atoms:
            raise self.error(node, "empty goal: the task has nothing to achieve")
        return atoms

    def conjunction(self, node: _Node, declared: set[str]) -> Iterator[Atom]:
        head = node.head()
        if head is not None and head.lower() == "and":
            for item in node.items[1:]:
                yield from self.conjunction(item, declared)
        elif head is not None and head.lower() in ("or", "not"):
            raise self.error(
                node, f"unsupported connective {head!r}: goals must be conjunctions"
            )
        else:
            yield self.atom(node, declared)


def parse_bddl_text(text: str, source: str = "<string>") -> Scene:
    """Parse the text of a BDDL problem.

    Raises:
        BDDLError: the text is malformed; the message names ``source`` and the line.
    """
    return _Parser(source).parse(_read_sexpr(text, source))


def parse_bddl(path: str | Path) -> Scene:
    """Parse a BDDL problem file.

    Raises:
        BDDLError: the file is malformed or cannot be decoded.
        FileNotFoundError: the file does not exist.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BDDLError(str(path), 1, f"not UTF-8 text ({exc})") from exc
    return parse_bddl_text(text, source=str(path))


def libero_bddl_root() -> Path:
    """Return the ``bddl_files`` folder of the installed LIBERO package.

    The folder is located through the package's import spec, so the
    ``libero.libero`` module (which prompts on stdin without a config file)
    is never imported.

    Raises:
        FileNotFoundError: no installed ``libero`` package ships BDDL files.
    """
    spec = importlib.util.find_spec("libero")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        root = Path(location) / "libero" / "bddl_files"
        if root.is_dir():
            return root
    raise FileNotFoundError(
        "LIBERO BDDL files not found: no libero/libero/bddl_files under "
        f"{locations or 'any installed libero package'}; install hf-libero==0.1.4"
    )


def libero_bddl_files(suite: str | None = None) -> list[Path]:
    """List the BDDL files LIBERO ships, sorted by suite then file name.

    ``suite`` is one of :data:`SUITES`; None lists all 130 files.

    Raises:
        ValueError: ``suite`` is not a LIBERO suite.
    """
    if suite is not None and suite not in SUITES:
        raise ValueError(
            f"unknown LIBERO suite {suite!r}; expected one of {', '.join(SUITES)}"
        )
    root = libero_bddl_root()
    suites = SUITES if suite is None else (suite,)
    return [path for name in suites for path in sorted((root / name).glob("*.bddl"))]
