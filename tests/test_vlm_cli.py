"""`aas segment --segmenter.type=gemini|openai` on a LIBERO demo file, end to end."""

import json

from servers.demos import make_demo
from servers.gemini_server import GeminiServer
from servers.openai_server import OpenAIServer
from servers.reference import Answerer, reference_from

from aas.bddl import libero_bddl_files
from aas.cli import main
from aas.datasets.libero_hdf5 import write_demo_file
from aas.schema import read_segmentations

KEY = "AIzaCLI-test-key-0042"
BDDL = "put_the_bowl_on_the_plate.bddl"


def demo_file(tmp_path):
    """Write three one-pick-and-place demos under the LIBERO task they match."""
    bddl = next(p for p in libero_bddl_files() if p.name == BDDL)
    fixtures = [make_demo(i, pairs=1) for i in range(3)]
    meta = {
        "env_name": "Libero_Tabletop_Manipulation",
        "problem_info": {"language_instruction": "put the bowl on the plate"},
        "bddl_file_name": BDDL,
        "bddl_file_content": bddl.read_text(),
        "env_args": {},
    }
    path = write_demo_file(
        tmp_path / "put_the_bowl_on_the_plate_demo.hdf5",
        [f.demo for f in fixtures],
        meta,
    )
    references = {
        f"{path.stem}/{f.demo.demo_id}": f.reference.segments for f in fixtures
    }
    return path, fixtures, reference_from(references)


def segment(path, out, *options):
    argv = [
        "segment",
        f"--input={path}",
        f"--output_dir={out}",
        "--plots=false",
        *options,
    ]
    assert main(argv) == 0
    return read_segmentations(out / "segments.jsonl")


def test_cli_gemini_segments_demo_file(tmp_path, monkeypatch):
    path, fixtures, reference = demo_file(tmp_path)
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    with GeminiServer(Answerer(reference), api_key=KEY) as server:
        results = segment(
            path,
            tmp_path / "run",
            "--segmenter.type=gemini",
            f"--segmenter.base_url={server.url}",
            "--segmenter.keyframes.budget=400",
            "--segmenter.keyframes.image_size=16",
        )
    assert len(results) == 3
    for result, fixture in zip(results, fixtures):
        assert result.ok, result.error
        assert result.boundaries() == fixture.reference.boundaries()
        assert result.segments[0].instruction == "pick up the black bowl"
        assert result.provenance.cost.requests == 1
    assert KEY not in (tmp_path / "run" / "segments.jsonl").read_text()
    assert KEY not in (tmp_path / "run" / "config.yaml").read_text()


def test_cli_rerun_with_cache_sends_nothing(tmp_path, monkeypatch):
    path, _, reference = demo_file(tmp_path)
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    options = [
        "--segmenter.type=gemini",
        f"--segmenter.cache_dir={tmp_path / 'cache'}",
        "--segmenter.keyframes.budget=8",
        "--segmenter.keyframes.image_size=16",
    ]
    with GeminiServer(Answerer(reference), api_key=KEY) as server:
        first = segment(
            path, tmp_path / "a", f"--segmenter.base_url={server.url}", *options
        )
        second = segment(
            path, tmp_path / "b", f"--segmenter.base_url={server.url}", *options
        )
    assert len(server.calls) == 3
    assert [s.segments for s in second] == [s.segments for s in first]
    assert all(s.provenance.extra["cached"] for s in second)


def test_cli_openai_segments_demo_file(tmp_path):
    path, _fixtures, reference = demo_file(tmp_path)
    with OpenAIServer(Answerer(reference)) as server:
        results = segment(
            path,
            tmp_path / "run",
            "--segmenter.type=openai",
            f"--segmenter.base_url={server.url}/v1",
            "--segmenter.model=qwen2.5-vl",
            "--segmenter.keyframes.strategy=events",
            "--segmenter.keyframes.budget=12",
        )
    assert all(r.ok for r in results)
    assert (
        json.loads(json.dumps(results[0].provenance.extra))["keyframe_strategy"]
        == "events"
    )
    assert len(results[0].provenance.keyframes) == 12
