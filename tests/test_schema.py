import json

import numpy as np
import pytest

from aas.demo import Demo, MissingDatasetError
from aas.schema import (
    Plan,
    Provenance,
    Segment,
    Segmentation,
    Step,
    read_segmentations,
    write_segmentations,
)


def _segmentation(key: str = "file/demo_0") -> Segmentation:
    plan = Plan(
        steps=(
            Step("grasp", ("akita_black_bowl_1",), "pick up the black bowl"),
            Step("place", ("akita_black_bowl_1", "plate_1"), "place the bowl on the plate"),
        ),
        problem="libero_tabletop_manipulation",
    )
    segments = (
        Segment("grasp", ("akita_black_bowl_1",), 0, 40, 0.9, "kinematic"),
        Segment("place", ("akita_black_bowl_1", "plate_1"), 41, 99, 0.8, "kinematic"),
    )
    return Segmentation(
        demo_key=key,
        num_frames=100,
        segments=segments,
        provenance=Provenance(segmenter="kinematic", version="1", keyframes=(0, 10)),
        plan=plan,
    )


def test_segmentation_roundtrips_through_jsonl(tmp_path):
    items = [_segmentation("a/demo_0"), _segmentation("a/demo_1")]
    path = tmp_path / "segments.jsonl"

    write_segmentations(path, items)

    assert read_segmentations(path) == items
    first_line = path.read_text().splitlines()[0]
    assert list(json.loads(first_line)) == sorted(json.loads(first_line))


def test_read_segmentations_names_file_and_line(tmp_path):
    path = tmp_path / "segments.jsonl"
    path.write_text(json.dumps(_segmentation().to_dict()) + "\n{broken\n")

    with pytest.raises(ValueError, match=r"segments.jsonl:2"):
        read_segmentations(path)


def test_segment_rejects_inverted_range():
    with pytest.raises(ValueError, match="invalid frame range"):
        Segment("grasp", ("bowl",), 10, 5, 1.0, "test")


def test_demo_frames_loads_only_requested_rows():
    requested = []

    def loader(name, index):
        requested.append(index)
        return np.arange(10)[index]

    demo = Demo(demo_id="demo_0", num_frames=10, available=("obs/x",), loader=loader)

    assert demo.frames("obs/x", [7, 2, 7]).tolist() == [7, 2, 7]
    assert requested[0].tolist() == [2, 7]


def test_demo_missing_dataset_names_demo_and_dataset():
    demo = Demo.from_arrays("demo_3", {"actions": np.zeros((5, 7))}, source="/x/f.hdf5")

    with pytest.raises(MissingDatasetError, match=r"demo_3: dataset 'obs/gripper_states'"):
        demo.array("obs/gripper_states")
