"""Joint, handle and knob geometry of LIBERO's articulated fixtures, read from the simulator.

A BDDL name such as ``wooden_cabinet_1_middle_region`` (a drawer's region
site), ``microwave_1`` or ``flat_stove_1`` resolves to the one slide or hinge
joint that LIBERO's Open/Close/TurnOn/TurnOff predicates read. Which way of
the joint opens (or turns on) is taken from the fixture's own predicate
functions, so a cabinet whose drawers open toward negative positions and one
whose drawers open toward positive positions are handled alike. All positions
are world-frame metres, joint positions metres (slide) or radians (hinge).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aas.sims.env import LiberoEnv

# MuJoCo joint type codes (mjtJoint).
SLIDE_JOINT = 2
HINGE_JOINT = 3


@dataclass(frozen=True)
class Articulation:
    """The joint behind one articulated BDDL name.

    Attributes:
        target: the BDDL name the predicates are evaluated on.
        owner: the fixture or object whose model defines the predicate thresholds.
        joint: MuJoCo joint name.
        joint_id: MuJoCo joint id.
        body_id: id of the body the joint moves (drawer, door or knob).
        qpos_address: index of the joint position in ``sim.data.qpos``.
        kind: ``"slide"`` or ``"hinge"``.
        low: lower joint limit (metres or radians).
        high: upper joint limit.
        open_sign: +1 when increasing the joint position opens the target (or
            turns it on), -1 when decreasing it does.
        switch: whether the target is a switch (TurnOn/TurnOff) rather than a door or drawer.
    """

    target: str
    owner: str
    joint: str
    joint_id: int
    body_id: int
    qpos_address: int
    kind: str
    low: float
    high: float
    open_sign: int
    switch: bool

    @property
    def open_limit(self) -> float:
        """The joint limit on the opening (or switching-on) side."""
        return self.high if self.open_sign > 0 else self.low

    @property
    def closed_limit(self) -> float:
        """The joint limit on the closing (or switching-off) side."""
        return self.low if self.open_sign > 0 else self.high


def find_articulation(env: LiberoEnv, target: str) -> Articulation:
    """Resolve a BDDL name to the joint its articulation predicates read.

    Raises:
        ValueError: ``target`` is unknown to the task or has no slide or hinge
            joint with open/close or on/off thresholds.
    """
    inner = env.inner
    if target in inner.object_sites_dict:
        joints = list(inner.object_sites_dict[target].joints or [])
        owner = env.object_state(target).parent_name
    elif target in inner.objects_dict or target in inner.fixtures_dict:
        joints = list(env.model_object(target).joints or [])
        owner = target
    else:
        raise ValueError(
            f"{target!r} is not an object, fixture or region of task {env.spec.name}"
        )

    model = env.sim.model
    moving = [
        j
        for j in joints
        if model.jnt_type[model.joint_name2id(j)] in (SLIDE_JOINT, HINGE_JOINT)
    ]
    if not moving:
        raise ValueError(
            f"{target!r} in task {env.spec.name} has no slide or hinge joint to "
            f"open, close or turn (joints: {joints})"
        )
    joint = moving[0]
    joint_id = model.joint_name2id(joint)
    low, high = (float(v) for v in model.jnt_range[joint_id])
    owner_model = env.model_object(owner)
    switch = hasattr(owner_model, "turn_on")
    open_sign = _opening_sign(env, owner_model, joint, low, high, switch, target)
    return Articulation(
        target=target,
        owner=owner,
        joint=joint,
        joint_id=joint_id,
        body_id=int(model.jnt_bodyid[joint_id]),
        qpos_address=int(model.get_joint_qpos_addr(joint)),
        kind="slide" if model.jnt_type[joint_id] == SLIDE_JOINT else "hinge",
        low=low,
        high=high,
        open_sign=open_sign,
        switch=switch,
    )


def _opening_sign(
    env: LiberoEnv,
    owner_model,
    joint: str,
    low: float,
    high: float,
    switch: bool,
    target: str,
) -> int:
    probe = owner_model.turn_on if switch else owner_model.is_open
    try:
        opens_high, opens_low = bool(probe(high)), bool(probe(low))
    except NotImplementedError as exc:
        raise ValueError(
            f"{target!r} ({type(owner_model).__name__}) defines no open or on threshold"
        ) from exc
    finally:
        # FlatStove.turn_on also records the burner's on/off look; restore it.
        if switch:
            owner_model.turn_on(
                float(env.sim.data.qpos[env.sim.model.get_joint_qpos_addr(joint)])
            )
    if opens_high == opens_low:
        raise ValueError(
            f"cannot tell which way {target!r} opens: its predicate gives {opens_low} at "
            f"the lower limit {low} and {opens_high} at the upper limit {high}"
        )
    return 1 if opens_high else -1


def joint_position(env: LiberoEnv, art: Articulation) -> float:
    """Current joint position (metres or radians)."""
    return float(env.sim.data.qpos[art.qpos_address])


def joint_axis(env: LiberoEnv, art: Articulation) -> np.ndarray:
    """Unit joint axis [3] in the world frame (positive joint motion along or about it)."""
    return np.array(env.sim.data.xaxis[art.joint_id])


def joint_anchor(env: LiberoEnv, art: Articulation) -> np.ndarray:
    """A point [3] on the joint axis in the world frame."""
    return np.array(env.sim.data.xanchor[art.joint_id])


def body_geoms(env: LiberoEnv, art: Articulation) -> list[int]:
    """Collision geoms of the moving body."""
    model = env.sim.model
    return [
        g
        for g in range(model.ngeom)
        if model.geom_bodyid[g] == art.body_id
        and (model.geom_contype[g] or model.geom_conaffinity[g])
    ]


def geom_position(env: LiberoEnv, geom: int) -> np.ndarray:
    return np.array(env.sim.data.geom_xpos[geom])


def geom_half_sizes_world(env: LiberoEnv, geom: int) -> tuple[np.ndarray, np.ndarray]:
    """Half sizes [3] of a box geom and its axes as world columns [3, 3]."""
    size = np.array(env.sim.model.geom_size[geom])
    axes = np.array(env.sim.data.geom_xmat[geom]).reshape(3, 3)
    return size, axes


def drawer_handle(env: LiberoEnv, art: Articulation) -> int:
    """The drawer geom that sticks out furthest along the opening direction: the handle bar."""
    outward = art.open_sign * joint_axis(env, art)
    return max(
        body_geoms(env, art), key=lambda g: float(geom_position(env, g) @ outward)
    )


def door_handle(env: LiberoEnv, art: Articulation) -> int:
    """The door geom furthest from the hinge axis: the handle."""
    return max(
        body_geoms(env, art),
        key=lambda g: _distance_to_axis(env, art, geom_position(env, g)),
    )


def door_panel(env: LiberoEnv, art: Articulation) -> int:
    """The largest box geom of the door: its panel."""
    model = env.sim.model
    boxes = [g for g in body_geoms(env, art) if model.geom_type[g] == 6]
    return max(boxes, key=lambda g: float(np.prod(model.geom_size[g])))


def knob_ridge(env: LiberoEnv, art: Articulation) -> int:
    """The largest box geom of a knob: the ridge the fingers close on."""
    return door_panel(env, art)


def _distance_to_axis(env: LiberoEnv, art: Articulation, point: np.ndarray) -> float:
    offset = point - joint_anchor(env, art)
    axis = joint_axis(env, art)
    return float(np.linalg.norm(offset - axis * (offset @ axis)))


def horizontal_unit(vector: np.ndarray) -> np.ndarray:
    """The unit vector [3] of ``vector`` projected onto the horizontal plane."""
    flat = np.array([vector[0], vector[1], 0.0])
    norm = np.linalg.norm(flat)
    if norm < 1e-9:
        raise ValueError(f"vector {vector} has no horizontal component")
    return flat / norm


@dataclass(frozen=True)
class DoorFrame:
    """Where a hinged door is now, in world coordinates.

    Attributes:
        anchor: point [3] on the hinge axis at the panel's height.
        radial: horizontal unit vector [3] from the hinge toward the free edge.
        outward: horizontal unit vector [3] normal to the panel, on the handle's side.
        face_offset_m: distance from the hinge plane to the outer face of the panel.
        thickness_m: panel thickness along ``outward``.
        panel_height: z of the panel centre (metres).
    """

    anchor: np.ndarray
    radial: np.ndarray
    outward: np.ndarray
    face_offset_m: float
    thickness_m: float
    panel_height: float

    def point(self, radius_m: float, offset_m: float, side: int = 1) -> np.ndarray:
        """The point at ``radius_m`` from the hinge and ``offset_m`` off one face.

        ``side`` +1 measures outward from the outer face, -1 inward from the inner face.
        """
        if side > 0:
            normal_offset = self.face_offset_m + offset_m
        else:
            normal_offset = self.face_offset_m - self.thickness_m - offset_m
        return self.anchor + self.radial * radius_m + self.outward * normal_offset


def door_frame(env: LiberoEnv, art: Articulation) -> DoorFrame:
    """Measure the door's current radial and outward directions from its panel and handle."""
    panel, handle = door_panel(env, art), door_handle(env, art)
    panel_pos = geom_position(env, panel)
    anchor = joint_anchor(env, art)
    anchor = np.array([anchor[0], anchor[1], panel_pos[2]])
    radial = horizontal_unit(panel_pos - anchor)
    handle_offset = geom_position(env, handle) - anchor
    outward = horizontal_unit(handle_offset - radial * (handle_offset @ radial))
    size, axes = geom_half_sizes_world(env, panel)
    half_thickness = float(np.sum(size * np.abs(axes.T @ outward)))
    face = float((panel_pos - anchor) @ outward) + half_thickness
    return DoorFrame(
        anchor, radial, outward, face, 2 * half_thickness, float(panel_pos[2])
    )
