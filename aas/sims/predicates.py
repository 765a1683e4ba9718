"""Per-frame BDDL predicates of a recorded demo, evaluated in the LIBERO simulator.

A demo's ``states`` dataset stores the flattened MuJoCo state before every
action. ``predicate_timeline`` loads each of them into a LIBERO environment
of the demo's task (no renderer, no physics step: set the state, run
``mj_forward``) and evaluates the atoms that matter to the plan: the
observable add effects of every step and the BDDL goal, through LIBERO's
own predicate functions (On, In, Open, Close, TurnOn, TurnOff), plus
``holding``, which LIBERO has no predicate for. An object counts as held
when both gripper fingers touch it and it touches nothing but the robot,
so it has been lifted off its support.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aas.demo import STATES, Demo, MissingDatasetError
from aas.planning import observable_effects, step_effects
from aas.schema import Atom, Plan
from aas.sims.env import LiberoEnv, make_env
from aas.sims.tasks import SUITES, TaskSpec, get_task
from aas.timeline import HOLDING, PredicateTimeline

logger = logging.getLogger(__name__)

# Prefixes of MuJoCo body names that belong to the robot in robosuite models.
ROBOT_BODY_PREFIXES = ("robot0_", "gripper0_", "mount0_")


class MissingStatesError(MissingDatasetError):
    """A demo has no ``states`` dataset, so it cannot be replayed."""

    def __init__(self, demo: Demo) -> None:
        super().__init__(demo.demo_id, STATES, demo.source)

    def __str__(self) -> str:
        return (
            f"{self.args[0]}; the predicate segmenter replays MuJoCo states, which "
            "only LIBERO's original layout and `aas generate` files have "
            "(re-rendered no-noops files lack them)"
        )


def plan_atoms(plan: Plan) -> tuple[Atom, ...]:
    """Return the atoms a predicate timeline of ``plan`` needs, without repeats.

    These are each step's observable add effects, ``("holding", obj)`` for
    steps that leave an object in the gripper, and the plan's goal atoms.
    """
    atoms: list[Atom] = []
    for step in plan.steps:
        added, _ = step_effects(step)
        atoms.extend(observable_effects(step))
        atoms.extend(a for a in added if a[0] == HOLDING)
    atoms.extend(plan.goal)
    return tuple(dict.fromkeys(tuple(a) for a in atoms))


def robot_geoms(env: LiberoEnv) -> frozenset[int]:
    """Return the ids of MuJoCo geoms that belong to the robot, gripper or mount."""
    model = env.sim.model
    return frozenset(
        geom
        for geom in range(model.ngeom)
        if (model.body_id2name(model.geom_bodyid[geom]) or "").startswith(
            ROBOT_BODY_PREFIXES
        )
    )


def object_geoms(env: LiberoEnv, name: str) -> frozenset[int]:
    """Return the ids of the collision geoms of an object."""
    model = env.sim.model
    return frozenset(
        model.geom_name2id(g) for g in env.model_object(name).contact_geoms
    )


def is_held(env: LiberoEnv, name: str, robot: frozenset[int] | None = None) -> bool:
    """Return whether the gripper holds ``name`` in the current simulator state.

    Held means both fingers touch the object (robosuite's grasp check) and
    no contact joins the object to anything but the robot, so the object is
    off its support.
    """
    if not env.is_grasped(name):
        return False
    robot = robot if robot is not None else robot_geoms(env)
    own = object_geoms(env, name)
    data = env.sim.data
    for index in range(data.ncon):
        contact = data.contact[index]
        pair = (int(contact.geom1), int(contact.geom2))
        for mine, other in (pair, pair[::-1]):
            if mine in own and other not in own and other not in robot:
                return False
    return True


class AtomEvaluator:
    """Evaluates a fixed list of atoms in the current state of one environment."""

    def __init__(self, env: LiberoEnv, atoms: Sequence[Atom]) -> None:
        self.env = env
        self.atoms = tuple(tuple(a) for a in atoms)
        self._robot = robot_geoms(env)
        for atom in self.atoms:
            names = atom[1:]
            known = env.inner.object_states_dict
            unknown = [n for n in names if n not in known]
            if unknown:
                raise KeyError(
                    f"atom {atom} names {unknown}, which task {env.spec.name} does not have"
                )

    def evaluate(self) -> np.ndarray:
        """Return the truth value of every atom now, bool ``[len(atoms)]``."""
        values = np.zeros(len(self.atoms), dtype=bool)
        for k, atom in enumerate(self.atoms):
            if atom[0] == HOLDING:
                values[k] = is_held(self.env, atom[1], self._robot)
            else:
                values[k] = self.env.eval_atom(atom)
        return values


def set_state(env: LiberoEnv, state: np.ndarray) -> None:
    """Load a flattened MuJoCo state and recompute positions and contacts, no step."""
    env.sim.set_state_from_flattened(np.asarray(state, dtype=np.float64))
    env.sim.forward()


def replay_timeline(
    env: LiberoEnv, states: np.ndarray, atoms: Sequence[Atom], source: str = ""
) -> PredicateTimeline:
    """Evaluate ``atoms`` at every recorded state.

    Args:
        env: an environment of the task the states were recorded in.
        states: flattened MuJoCo states ``[T, state_dim]``.
        atoms: ground atoms, ``holding`` included.
        source: the demo's name for error messages.

    Raises:
        ValueError: the state size does not match the environment's model.
    """
    states = np.asarray(states, dtype=np.float64)
    expected = env.get_sim_state().shape[0]
    if states.ndim != 2 or states.shape[1] != expected:
        raise ValueError(
            f"{source}: states have shape {states.shape}, but task {env.spec.name} "
            f"needs [T, {expected}]; the demo was recorded in another task or model"
        )
    evaluator = AtomEvaluator(env, atoms)
    values = np.zeros((states.shape[0], len(evaluator.atoms)), dtype=bool)
    for frame, state in enumerate(states):
        set_state(env, state)
        values[frame] = evaluator.evaluate()
    return PredicateTimeline(evaluator.atoms, values)


def task_for_demo(demo: Demo) -> TaskSpec:
    """Find the LIBERO task a demo was recorded in.

    The BDDL file name (``libero_goal/put_the_bowl_on_the_plate.bddl`` or
    the original absolute path) is looked up in the installed suites. A demo
    whose BDDL is unknown to LIBERO but carried in the file
    (``bddl_file_content``) gets a task built from that text.

    Raises:
        ValueError: neither the name nor the content identifies a task.
    """
    path = Path(demo.bddl_file_name) if demo.bddl_file_name else None
    if path is not None:
        suites = [p for p in path.parts if p in SUITES] or list(SUITES)
        for suite in reversed(suites):
            try:
                return get_task(suite, path.stem)
            except ValueError:
                continue
    if demo.bddl_content.strip():
        # NOTE: the folder is left behind; LIBERO reads the BDDL file again on reset.
        folder = Path(tempfile.mkdtemp(prefix="aas-bddl-"))
        stem = path.stem if path is not None else "task"
        bddl = folder / f"{stem}.bddl"
        bddl.write_text(demo.bddl_content, encoding="utf-8")
        return TaskSpec(
            "custom", 0, stem, demo.instruction, bddl, folder / "none.pruned_init"
        )
    raise ValueError(
        f"{demo.source}:{demo.demo_id}: no LIBERO task matches BDDL file "
        f"{demo.bddl_file_name!r} and the file carries no bddl_file_content"
    )


class EnvCache:
    """Keeps one render-free environment, rebuilt when the task changes.

    A caller's ``env`` is used for demos of its own task and never closed here.
    """

    def __init__(self, env: LiberoEnv | None = None) -> None:
        self._given = env
        self._env: LiberoEnv | None = None
        self._bddl: str = ""

    def get(self, spec: TaskSpec) -> LiberoEnv:
        bddl = str(spec.bddl_path)
        if self._given is not None and str(self._given.spec.bddl_path) == bddl:
            return self._given
        if self._env is None or self._bddl != bddl:
            self.close()
            self._env = make_env(spec, render=False)
            self._env.reset(settle_steps=0)
            self._bddl = bddl
        return self._env

    def close(self) -> None:
        """Close the environment this cache built; a caller's ``env`` stays open."""
        if self._env is not None:
            self._env.close()
        self._env = None
        self._bddl = ""


def predicate_timeline(
    demo: Demo, plan: Plan, env: LiberoEnv | None = None, cache: EnvCache | None = None
) -> PredicateTimeline:
    """Replay ``demo`` and return the truth of the plan's atoms at every frame.

    Args:
        demo: a demo with a ``states`` dataset.
        plan: its plan; ``plan_atoms(plan)`` are evaluated.
        env: an environment of the demo's task to reuse; otherwise one comes
            from ``cache`` or is built and closed here.

    Raises:
        MissingStatesError: the demo has no ``states``.
        ValueError: the demo's task is unknown or its states do not fit it.
    """
    if not demo.has(STATES):
        raise MissingStatesError(demo)
    states = demo.array(STATES)
    atoms = plan_atoms(plan)
    if env is not None:
        return replay_timeline(env, states, atoms, demo.key)
    spec = task_for_demo(demo)
    if cache is not None:
        return replay_timeline(cache.get(spec), states, atoms, demo.key)
    own = make_env(spec, render=False)
    try:
        own.reset(settle_steps=0)
        return replay_timeline(own, states, atoms, demo.key)
    finally:
        own.close()
