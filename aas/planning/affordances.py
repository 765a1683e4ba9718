"""Parameter types of the names of a scene: what each object, fixture and region affords.

LIBERO's BDDL files give every object and fixture a category
(``akita_black_bowl``, ``wooden_cabinet``) and every region a local name on
its target (``top_region`` of ``wooden_cabinet_1``). The tables below map
them to the parameter types of :mod:`aas.operators`. Categories not listed
get the default of their kind: objects are movable, fixtures afford nothing,
and regions are surfaces unless their name says ``contain``.
"""

from __future__ import annotations

from aas.bddl import Scene

# Objects that cannot be grasped but still take part in plans.
OBJECT_TYPES: dict[str, frozenset[str]] = {
    "plate": frozenset({"surface", "pushable"}),
    "basket": frozenset(),
    "wooden_tray": frozenset(),
}
DEFAULT_OBJECT_TYPES = frozenset({"movable"})

FIXTURE_TYPES: dict[str, frozenset[str]] = {
    "flat_stove": frozenset({"switchable"}),
    "microwave": frozenset({"openable"}),
}

# Categories whose regions are areas of a flat support (table top or floor).
SUPPORT_CATEGORIES = (
    "table",
    "kitchen_table",
    "living_room_table",
    "study_table",
    "floor",
)

DRAWER_LEVELS = ("top_region", "middle_region", "bottom_region")
DRAWER = frozenset({"container", "openable"})
CONTAINER = frozenset({"container"})
SURFACE = frozenset({"surface"})
TABLE_AREA = frozenset({"surface", "table_region"})

# (owner category, region local name) -> types, for regions whose meaning
# depends on what they belong to: ``top_region`` is a drawer of a cabinet,
# a layer of a shelf and the top of a wine rack.
REGION_TYPES: dict[tuple[str, str], frozenset[str]] = {
    **{("wooden_cabinet", level): DRAWER for level in DRAWER_LEVELS},
    **{("white_cabinet", level): DRAWER for level in DRAWER_LEVELS},
    ("wooden_two_layer_shelf", "top_region"): CONTAINER,
    ("wooden_two_layer_shelf", "bottom_region"): CONTAINER,
    ("microwave", "heating_region"): CONTAINER,
    ("wine_rack", "top_region"): SURFACE,
}


def _region_types(scene: Scene, region_name: str) -> frozenset[str]:
    region = scene.regions[region_name]
    owner = region.target
    category = scene.objects.get(owner) or scene.fixtures.get(owner) or owner
    if category in SUPPORT_CATEGORIES:
        return TABLE_AREA
    known = REGION_TYPES.get((category, region.local_name))
    if known is not None:
        return known
    if "contain" in region.local_name:
        return CONTAINER
    return SURFACE


def entity_types(scene: Scene) -> dict[str, frozenset[str]]:
    """Map every object, fixture and region name of ``scene`` to its parameter types."""
    types: dict[str, frozenset[str]] = {}
    for name, category in scene.objects.items():
        types[name] = OBJECT_TYPES.get(category, DEFAULT_OBJECT_TYPES)
    for name, category in scene.fixtures.items():
        types[name] = FIXTURE_TYPES.get(category, frozenset())
    for name in scene.regions:
        types[name] = _region_types(scene, name)
    return types


def door_of(
    scene: Scene, region_name: str, types: dict[str, frozenset[str]] | None = None
) -> str | None:
    """Return the openable name that must be open to reach inside a container region.

    A drawer region is its own door; the heating region of a microwave has
    the microwave as door. Returns None for containers that are always open.
    """
    if types is None:
        types = entity_types(scene)
    if "openable" in types.get(region_name, ()):
        return region_name
    region = scene.regions.get(region_name)
    if region is not None and "openable" in types.get(region.target, ()):
        return region.target
    return None
