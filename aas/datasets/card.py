"""Dataset card (the Hub's ``README.md``) generated from an export's ``export.json``."""

from __future__ import annotations

from typing import Any

import yaml

FORMAT_TITLES = {
    "gatevlap": "GATE-VLAP tars (one tar per atomic subtask)",
    "webdataset": "WebDataset training shards",
    "lerobot": "LeRobot dataset v3",
}

LAYOUTS = {
    "gatevlap": (
        "Each `<suite>/<subtask>.tar` holds, for the k-th segment of that subtask, "
        "`demo_<k>/demo_<k>_timestep_<t>.png` (upright agentview image), "
        "`.wrist.png` (upright wrist image) and `.json` (atomic and original "
        "instruction, 7-D action, state, joint state, robot state, operator, "
        "arguments, segment start and end, confidence, source demo)."
    ),
    "webdataset": (
        "`shard-NNNNNN.tar` files of samples, one per (segment, frame), with "
        "`agentview.png`, `wrist.png`, `instruction.txt`, "
        "`original_instruction.txt`, `actions.npy` (float32 [8, 7] action chunk), "
        "`mask.npy` (bool [8]), `state.npy` (float32 [9]) and `meta.json`; "
        "`manifest.json` lists the shards and sample counts."
    ),
    "lerobot": (
        "One episode per atomic segment; the task of each episode is its atomic "
        "instruction. Frames carry `observation.images.agentview`, "
        "`observation.images.wrist`, `observation.state` [8], "
        "`observation.joint_state` [7], `action` [7], and the original "
        "instruction, operator, arguments and confidence."
    ),
}

LOADING = {
    "gatevlap": (
        "```python\nimport webdataset as wds\n\n"
        'frames = wds.WebDataset("libero_goal/pick_up_the_black_bowl.tar").decode("rgb8")\n```'
    ),
    "webdataset": (
        "```python\nimport webdataset as wds\n\n"
        'samples = wds.WebDataset("shard-{000000..000009}.tar").decode()\n```'
    ),
    "lerobot": (
        "```python\nfrom lerobot.datasets.lerobot_dataset import LeRobotDataset\n\n"
        'dataset = LeRobotDataset("{repo_id}")\n```'
    ),
}


def dataset_card(
    export: dict[str, Any], repo_id: str, license: str = "apache-2.0"
) -> str:
    """Write the dataset card of an export described by its ``export.json`` content.

    The card lists the source suites, the segmenters with their versions,
    the validation pass rate, segment and frame totals and the count of
    segments per operator.
    """
    fmt = export["format"]
    counts = export["counts"]
    pairing = export.get("pairing", {})
    tags = ["robotics", "libero", "atomic-actions", "aas"]
    if fmt == "lerobot":
        tags.append("LeRobot")
    header = {
        "license": license,
        "task_categories": ["robotics"],
        "tags": tags,
        "pretty_name": repo_id.split("/")[-1],
    }
    rate = export.get("validation_pass_rate")
    rate_text = f"{rate:.1%}" if rate is not None else "not validated"
    included = "yes" if export.get("include_invalid") else "no"
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False).strip(),
        "---",
        "",
        f"# {repo_id.split('/')[-1]}",
        "",
        (
            "Atomic segments of LIBERO demonstrations, each aligned to one step of "
            "a symbolic plan and labelled with its operator, arguments, frame range "
            f"and confidence. Format: {FORMAT_TITLES[fmt]}. Exported with `aas export`."
        ),
        "",
        "| | |",
        "|---|---|",
        f"| Source suites | {', '.join(export.get('suites', [])) or 'unknown'} |",
        f"| Segmenters | {', '.join(export.get('segmenters', [])) or 'unknown'} |",
        f"| Validation pass rate | {rate_text} |",
        f"| Segmentations that failed validation included | {included} |",
        f"| Demos | {pairing.get('num_exported', 'unknown')} |",
        f"| Segments | {counts['segments']} |",
        f"| Frames | {counts['frames']} |",
        f"| License | {license} |",
        "",
        "## Segments per operator",
        "",
        "| Operator | Segments |",
        "|---|---|",
        *(f"| {op} | {n} |" for op, n in sorted(counts.get("ops", {}).items())),
        "",
        "## Layout",
        "",
        LAYOUTS[fmt],
        "",
        "## Loading",
        "",
        LOADING[fmt].replace("{repo_id}", repo_id),
        "",
    ]
    return "\n".join(lines)
