import json
import pickle

import h5py
import numpy as np
import pytest
from fixtures_hdf5 import (
    synthetic_demo,
    truncate_file,
    write_no_noops_file,
    write_original_file,
)

from aas.datasets.libero_hdf5 import (
    LAYOUT_NO_NOOPS,
    LAYOUT_ORIGINAL,
    DemoFileError,
    instruction_from_file_name,
    iter_demo_files,
    open_demo_file,
    write_demo_file,
)
from aas.demo import GRIPPER_STATES, Demo


def test_original_layout_reads_metadata(original_file):
    demo_file = open_demo_file(original_file)

    assert demo_file.layout == LAYOUT_ORIGINAL
    assert demo_file.env_name == "Libero_Tabletop_Manipulation"
    assert demo_file.instruction == "put the bowl on the plate"
    assert demo_file.problem_info["problem_name"] == "libero_tabletop_manipulation"
    assert demo_file.bddl_file_name == "put_the_bowl_on_the_plate.bddl"
    assert demo_file.bddl_content.startswith("(define")
    assert demo_file.env_args["type"] == 1
    assert demo_file.errors == []


def test_original_layout_demos_are_lazy(original_file, pick_place_demos):
    demo = open_demo_file(original_file).demos[1]

    assert demo.demo_id == "demo_1"
    assert demo.arrays == {}
    assert demo.num_frames == pick_place_demos[1].num_frames
    assert demo.attrs["model_file"].startswith("<mujoco")
    np.testing.assert_allclose(demo.actions, pick_place_demos[1].arrays["actions"])
    assert set(demo.arrays) == {"actions"}


def test_demo_frames_read_selected_rows(original_file, pick_place_demos):
    demo = open_demo_file(original_file).demos[0]

    rows = demo.frames("obs/ee_pos", [7, 3, 7])

    np.testing.assert_allclose(
        rows, pick_place_demos[0].arrays["obs/ee_pos"][[7, 3, 7]]
    )
    assert "obs/ee_pos" not in demo.arrays


def test_no_noops_layout_sorts_gapped_numbers(no_noops_file):
    demo_file = open_demo_file(no_noops_file)

    assert demo_file.layout == LAYOUT_NO_NOOPS
    assert [d.demo_id for d in demo_file.demos] == ["demo_2", "demo_5", "demo_10"]


def test_no_noops_instruction_drops_scene_prefix(no_noops_file):
    demo_file = open_demo_file(no_noops_file)

    assert demo_file.instruction == "turn on the stove"
    assert demo_file.demos[0].instruction == "turn on the stove"
    assert demo_file.bddl_file_name == "KITCHEN_SCENE3_turn_on_the_stove.bddl"


def test_instruction_from_plain_file_name():
    name = "open_the_top_drawer_of_the_cabinet_demo.hdf5"

    assert instruction_from_file_name(name) == "open the top drawer of the cabinet"


def test_truncated_file_raises_naming_file(original_file):
    truncate_file(original_file)

    with pytest.raises(DemoFileError, match=original_file.name):
        open_demo_file(original_file)


def test_file_without_data_group_is_rejected(tmp_path):
    path = tmp_path / "empty.hdf5"
    with h5py.File(path, "w") as f:
        f.create_group("mask")

    with pytest.raises(DemoFileError, match="no 'data' group"):
        open_demo_file(path)


def test_missing_dataset_is_recorded_and_others_load(tmp_path):
    demos = [synthetic_demo(["grasp", "place"], seed=s).arrays for s in range(3)]
    del demos[1][GRIPPER_STATES]
    path = write_original_file(tmp_path / "task_demo.hdf5", demos)

    demo_file = open_demo_file(path)

    assert [d.demo_id for d in demo_file.demos] == ["demo_0", "demo_2"]
    assert len(demo_file.errors) == 1
    error = demo_file.errors[0]
    assert error.file == str(path)
    assert error.demo == "demo_1"
    assert error.dataset == GRIPPER_STATES


def test_inconsistent_lengths_are_recorded(tmp_path):
    demos = [synthetic_demo(["grasp", "place"], seed=s).arrays for s in range(2)]
    demos[0]["obs/ee_pos"] = demos[0]["obs/ee_pos"][:-4]
    path = write_original_file(tmp_path / "task_demo.hdf5", demos)

    demo_file = open_demo_file(path)

    assert [d.demo_id for d in demo_file.demos] == ["demo_1"]
    assert demo_file.errors[0].dataset == "obs/ee_pos"
    assert "frames" in demo_file.errors[0].message


def test_iter_demo_files_skips_bad_and_hidden(tmp_path, pick_place_demos):
    arrays = [d.arrays for d in pick_place_demos]
    write_original_file(tmp_path / "a_demo.hdf5", arrays)
    truncate_file(write_original_file(tmp_path / "b_demo.hdf5", arrays))
    (tmp_path / "sub").mkdir()
    write_no_noops_file(tmp_path / "sub" / "c_demo.hdf5", {0: arrays[0]})
    (tmp_path / ".parts").mkdir()
    write_no_noops_file(tmp_path / ".parts" / "d_demo.hdf5", {0: arrays[0]})

    names = [f.path.name for f in iter_demo_files(tmp_path)]

    assert names == ["a_demo.hdf5", "c_demo.hdf5"]


def test_iter_demo_files_missing_path_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list(iter_demo_files(tmp_path / "nowhere"))


def test_demo_pickles_for_worker_processes(original_file):
    demo = open_demo_file(original_file).demos[2]

    copy = pickle.loads(pickle.dumps(demo))

    np.testing.assert_array_equal(copy.gripper_states, demo.gripper_states)


def test_write_demo_file_round_trips(tmp_path, original_file):
    source = open_demo_file(original_file)
    target = tmp_path / "copy" / "written_demo.hdf5"

    write_demo_file(target, source.demos, source.meta(), compression="gzip")
    copy = open_demo_file(target)

    assert copy.layout == LAYOUT_ORIGINAL
    assert copy.instruction == source.instruction
    assert copy.bddl_content == source.bddl_content
    assert [d.demo_id for d in copy.demos] == [d.demo_id for d in source.demos]
    for original, written in zip(source.demos, copy.demos):
        assert set(written.available) == set(original.available)
        np.testing.assert_array_equal(written.array("states"), original.array("states"))
        np.testing.assert_array_equal(
            written.attrs["init_state"], original.attrs["init_state"]
        )


def test_write_demo_file_has_libero_attributes(tmp_path):
    demos = [
        Demo.from_arrays(f"demo_{i}", synthetic_demo(["grasp"], seed=i).arrays)
        for i in range(2)
    ]
    meta = {
        "env_name": "Libero_Kitchen_Tabletop_Manipulation",
        "problem_info": {
            "language_instruction": "pick up the bowl",
            "problem_name": "p",
        },
        "bddl_file_name": "pick_up_the_bowl.bddl",
        "bddl_file_content": "(define (problem p))",
        "env_args": {"type": 1, "env_kwargs": {"control_freq": 20}},
    }
    path = write_demo_file(tmp_path / "pick_demo.hdf5", demos, meta)

    with h5py.File(path, "r") as f:
        attrs = f["data"].attrs
        assert (
            json.loads(attrs["problem_info"])["language_instruction"]
            == "pick up the bowl"
        )
        assert json.loads(attrs["env_args"])["env_kwargs"]["control_freq"] == 20
        assert attrs["num_demos"] == 2
        assert attrs["total"] == sum(d.num_frames for d in demos)
        assert f["data/demo_1"].attrs["num_samples"] == demos[1].num_frames
        assert f["data/demo_1/obs/agentview_rgb"].dtype == np.uint8


def test_write_demo_file_rejects_bad_demo_id(tmp_path):
    demos = [Demo.from_arrays("first", synthetic_demo(["grasp"]).arrays)]

    with pytest.raises(ValueError, match="demo_<number>"):
        write_demo_file(tmp_path / "bad_demo.hdf5", demos, {})

    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_keeps_previous_file(tmp_path, original_file):
    previous = original_file.read_bytes()

    def failing_loader(name, index):
        raise OSError("disk went away")

    arrays = synthetic_demo(["grasp"]).arrays
    broken = Demo.from_arrays("demo_0", {"actions": arrays["actions"]})
    broken.available = ("actions", "obs/ee_pos")
    broken.loader = failing_loader

    with pytest.raises(OSError, match="disk went away"):
        write_demo_file(original_file, [broken], {})

    assert original_file.read_bytes() == previous
    assert sorted(p.name for p in original_file.parent.iterdir()) == [
        original_file.name
    ]


def test_written_file_loads_in_libero_reader(tmp_path, original_file, capsys):
    from aas.sims.runtime import setup_libero

    setup_libero(check_renderer=False)
    from libero.libero.utils.dataset_utils import get_dataset_info

    source = open_demo_file(original_file)
    target = write_demo_file(tmp_path / "written_demo.hdf5", source.demos, source.meta())

    get_dataset_info(str(target), verbose=False)

    printed = capsys.readouterr().out
    assert "total trajectories: 3" in printed
    assert "language instruction: put the bowl on the plate" in printed
    assert "episode demo_0 with" in printed


def test_instruction_given_as_list_is_joined(original_file):
    with h5py.File(original_file, "r+") as f:
        info = json.loads(f["data"].attrs["problem_info"])
        info["language_instruction"] = ["put the bowl ", "on the plate"]
        f["data"].attrs["problem_info"] = json.dumps(info)

    assert open_demo_file(original_file).instruction == "put the bowl on the plate"


def _action_sum(demo: Demo) -> float:
    return float(demo.actions.sum())


def test_demos_load_in_worker_processes(original_file):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    demos = open_demo_file(original_file).demos
    context = multiprocessing.get_context("spawn")

    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        sums = list(pool.map(_action_sum, demos))

    assert sums == [float(d.actions.sum()) for d in demos]
