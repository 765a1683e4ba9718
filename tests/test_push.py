"""`aas push` against a Hub server on 127.0.0.1 speaking the Hub HTTP API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from export_helpers import write_demo_files, write_segmentation_file
from hub_server import HubServer, push_command

from aas.commands.export import Config, run
from aas.datasets.card import dataset_card
from aas.datasets.hub import plan_push

TOKEN = "hf_test_token_123"
REPO_ID = "aas-test/libero-atomic"


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("push")
    write_demo_files(root / "demos", {"libero_goal": 1, "libero_10": 1})
    write_segmentation_file(root / "demos", root / "segments.jsonl")
    cfg = Config(
        demos=str(root / "demos"),
        segmentations=str(root / "segments.jsonl"),
        format="gatevlap",
        output_dir=str(root / "out"),
    )
    assert run(cfg) == 0
    return root / "out"


def local_files(export_dir: Path) -> dict[str, bytes]:
    return {
        item.path_in_repo: item.local_path.read_bytes()
        for item in plan_push(export_dir, REPO_ID).files
    }


def test_push_sends_every_file_and_card(export_dir, tmp_path):
    with HubServer(TOKEN) as hub:
        result = push_command(export_dir, REPO_ID, tmp_path, hub.url, TOKEN)
    assert result.returncode == 0, result.stderr
    received = hub.state.files[REPO_ID]
    expected = local_files(export_dir)
    assert set(received) == set(expected) | {"README.md"}
    for path, data in expected.items():
        assert received[path] == data, path
    assert "libero_goal/pick_up_the_black_bowl.tar" in expected
    assert "export.json" in expected
    assert hub.state.repos[REPO_ID]["type"] == "dataset"
    assert any(r.startswith("PUT /lfs-upload/") for r in hub.state.requests)
    assert received["README.md"].decode() == plan_push(export_dir, REPO_ID).card
    assert hub.state.cards[0]["license"] == "apache-2.0"


def test_push_private_creates_private_repo(export_dir, tmp_path):
    with HubServer(TOKEN) as hub:
        result = push_command(
            export_dir, REPO_ID, tmp_path, hub.url, TOKEN, "--private=true"
        )
    assert result.returncode == 0, result.stderr
    assert hub.state.repos[REPO_ID]["visibility"] == "private"


def test_push_dry_run_sends_nothing(export_dir, tmp_path):
    with HubServer(TOKEN) as hub:
        result = push_command(
            export_dir, REPO_ID, tmp_path, hub.url, None, "--dry_run=true"
        )
    assert result.returncode == 0, result.stderr
    assert hub.state.requests == []
    for path in local_files(export_dir):
        assert path in result.stderr
    assert "README.md" in result.stderr
    assert "## Segments per operator" in result.stderr
    assert "nothing was sent" in result.stderr


def test_push_without_token_fails(export_dir, tmp_path):
    with HubServer(TOKEN) as hub:
        result = push_command(export_dir, REPO_ID, tmp_path, hub.url, None)
    assert result.returncode == 1
    assert "no Hugging Face token found" in result.stderr
    assert hub.state.requests == []


def test_push_reports_rejected_token(export_dir, tmp_path):
    with HubServer(TOKEN) as hub:
        result = push_command(export_dir, REPO_ID, tmp_path, hub.url, "hf_wrong")
    assert result.returncode == 1
    assert "401" in result.stderr
    assert REPO_ID not in hub.state.repos


def test_push_rejects_unfinished_export(tmp_path):
    (tmp_path / "export.json").write_text(
        json.dumps({"format": "gatevlap", "complete": False})
    )
    with pytest.raises(FileNotFoundError, match="unfinished"):
        plan_push(tmp_path, REPO_ID)


def test_card_lists_sources_and_counts(export_dir):
    export = json.loads((export_dir / "export.json").read_text())
    card = dataset_card(export, REPO_ID, license="cc-by-4.0")
    assert card.startswith("---\nlicense: cc-by-4.0\n")
    assert "| Source suites | libero_10, libero_goal |" in card
    assert "| Segmenters | kinematic 0.1.0 |" in card
    assert "| Validation pass rate | not validated |" in card
    assert "| grasp | 4 |" in card
    assert "| place | 4 |" in card
    assert "| Segments | 8 |" in card
