"""Settings of the ``aas pipeline`` stages, one dataclass per stage.

The defaults describe a run on one libero_goal task with the tiny CLIP-RT+
model. The YAML files under ``configs/`` set them for each run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aas.policies.cliprt.config import TINY_MODEL_NAME, CLIPRTConfig
from aas.segmenters import KinematicConfig, SegmenterConfig
from aas.sims.evaluate import PLANNER_TYPES
from aas.validation import ValidationConfig


def _tiny_model() -> CLIPRTConfig:
    return CLIPRTConfig(model_name=TINY_MODEL_NAME, eval_resize=None)


def _at_least(stage: str, settings: object, names: tuple[str, ...], low: int) -> None:
    for name in names:
        value = getattr(settings, name)
        if value < low:
            raise ValueError(f"{stage}.{name} must be at least {low}, got {value}")


def _device_choice(stage: str, device: str, choices: tuple[str, ...]) -> None:
    # "cuda:1" names one GPU; only the part before the colon is checked.
    if device.split(":")[0] not in choices:
        raise ValueError(
            f"{stage}.device must be one of {list(choices)}, got {device!r}"
        )


@dataclass
class GenerateStage:
    # LIBERO suite of the tasks.
    suite: str = "libero_goal"
    # Task indices or names (BDDL file stems) within the suite.
    tasks: list[str] = field(default_factory=lambda: ["put_the_bowl_on_the_plate"])
    # Demos per task, one per init state from first_init_state on.
    num_demos: int = 10
    first_init_state: int = 0
    # Camera image height and width in pixels, of the demos and of the evaluation renders.
    camera_size: int = 128
    # Frame budget of one scripted episode, at 20 frames per second.
    max_frames: int = 900

    def __post_init__(self) -> None:
        _at_least("generate", self, ("num_demos", "camera_size", "max_frames"), 1)
        _at_least("generate", self, ("first_init_state",), 0)
        if not self.tasks:
            raise ValueError(
                "generate.tasks is empty; name at least one task of the suite"
            )


@dataclass
class SegmentStage:
    # Segmenter backend, selected with --segment.segmenter.type=<name>.
    segmenter: SegmenterConfig = field(default_factory=KinematicConfig)
    # Rule thresholds of the validation that decides which demos are exported.
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    # Write one timeline plot per demo.
    plots: bool = True


@dataclass
class ExportStage:
    # Maximum size of one training shard, in MiB.
    max_shard_mb: float = 512.0
    # zlib level of the PNG images in the shards, 0 to 9.
    png_level: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.png_level <= 9:
            raise ValueError(f"export.png_level must be 0 to 9, got {self.png_level}")
        if self.max_shard_mb <= 0:
            raise ValueError(
                f"export.max_shard_mb must be positive, got {self.max_shard_mb}"
            )


@dataclass
class TrainStage:
    # Policy architecture, the same for both policies.
    model: CLIPRTConfig = field(default_factory=_tiny_model)
    # Optimizer steps per policy.
    steps: int = 1000
    # Samples per optimizer step.
    batch_size: int = 32
    # Peak learning rate of AdamW.
    lr: float = 3e-4
    # AdamW weight decay of the matrices.
    weight_decay: float = 0.1
    # Steps of linear learning-rate warmup before the cosine decay.
    warmup_steps: int = 100
    # Lower bound of the RandomResizedCrop area scale (upper bound 1.0).
    crop_scale_min: float = 0.9
    # Freeze the text tower, so each distinct instruction is encoded once.
    # With a random backbone each instruction is then a fixed random code.
    freeze_text_tower: bool = False
    # Write a checkpoint every this many steps (and at the end).
    save_every: int = 250
    # Log loss and learning rate every this many steps.
    log_every: int = 10
    seed: int = 0
    # CPU threads for torch ops, or 0 to keep torch's default.
    num_threads: int = 0
    # "auto" (CUDA when available), "cpu" or "cuda".
    device: str = "auto"
    # Show a progress bar.
    progress: bool = True

    def __post_init__(self) -> None:
        _at_least("train", self, ("steps", "batch_size", "save_every", "log_every"), 1)
        _at_least("train", self, ("warmup_steps", "num_threads"), 0)
        if self.lr <= 0:
            raise ValueError(f"train.lr must be positive, got {self.lr}")
        if not 0 < self.crop_scale_min <= 1:
            raise ValueError(
                f"train.crop_scale_min must be in (0, 1], got {self.crop_scale_min}"
            )
        _device_choice("train", self.device, ("auto", "cpu", "cuda"))


@dataclass
class EvalStage:
    # Episodes per task; episode i starts from init state i.
    trials: int = 50
    # Policy steps per episode (1/20 s each); None uses the suite's published value.
    max_steps: int | None = None
    seeds: list[int] = field(default_factory=lambda: [7])
    # Cameras rendered during rollouts; the CLIP-RT+ policy reads agentview only.
    camera_names: list[str] = field(default_factory=lambda: ["agentview"])
    # Planner of policy A's planner-in-the-loop evaluation: "symbolic" or "llm".
    planner: str = "symbolic"
    # Rollout worker processes; 0 means one per CPU core.
    workers: int = 0
    # Videos of the first N episodes of each task (0 for none).
    videos_per_task: int = 0
    # Seconds after which a running episode counts as hung.
    episode_timeout_s: float = 900.0
    # Torch device of policy inference in the workers.
    device: str = "cpu"

    def __post_init__(self) -> None:
        _at_least("eval", self, ("trials",), 1)
        _at_least("eval", self, ("workers", "videos_per_task"), 0)
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"eval.max_steps must be at least 1, got {self.max_steps}")
        if not self.seeds:
            raise ValueError("eval.seeds is empty; give at least one seed, such as [7]")
        if self.planner not in PLANNER_TYPES:
            raise ValueError(
                f"eval.planner must be one of {list(PLANNER_TYPES)}, got {self.planner!r}"
            )
        if self.episode_timeout_s <= 0:
            raise ValueError(
                f"eval.episode_timeout_s must be positive, got {self.episode_timeout_s}"
            )
        _device_choice("eval", self.device, ("cpu", "cuda"))


@dataclass
class PipelineSettings:
    """All stage settings of one pipeline run."""

    # Tasks, demos per task, camera size and frame budget of the scripted demos.
    generate: GenerateStage = field(default_factory=GenerateStage)
    # Segmenter and validation thresholds.
    segment: SegmentStage = field(default_factory=SegmentStage)
    # Training shard size and PNG level.
    export: ExportStage = field(default_factory=ExportStage)
    # Model architecture and optimizer settings, shared by both policies.
    train: TrainStage = field(default_factory=TrainStage)
    # Trials, max steps, planner and workers of both evaluations.
    eval: EvalStage = field(default_factory=EvalStage)
    # Also train and evaluate policy B on whole demos with the task instruction.
    compare_whole_demo: bool = True
