"""PNG plots of segmentations, drawn with matplotlib's Agg canvas.

The figure is built on ``matplotlib.figure.Figure`` directly, so plotting
never selects a global backend or opens a window, and it works in worker
processes and on machines without a display.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from aas.schema import Segmentation
from aas.segmenters.kinematic_events import CLOSE, KinematicEvents

logger = logging.getLogger(__name__)

# Segment colours cycle through matplotlib's "tab10" qualitative palette.
_PALETTE = "tab10"
_DPI = 110


def plot_segment_timeline(
    events: KinematicEvents,
    segmentation: Segmentation,
    path: str | Path,
    title: str = "",
) -> Path:
    """Draw gripper opening, end-effector speed and height over time as a PNG.

    Three stacked panels share the time axis (seconds at ``events.fps``).
    Every segment is a coloured band labelled with its operator, arguments
    and confidence, and gripper close/open events are dashed/dotted lines. A failed
    segmentation is drawn without bands and with its error in the title.

    Returns:
        The written path.
    """
    path = Path(path)
    seconds = np.arange(events.num_frames) / events.fps
    figure = Figure(figsize=(10, 6.5), dpi=_DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots(3, 1, sharex=True)

    _plot_gripper(axes[0], seconds, events)
    axes[1].plot(seconds, events.speed, color="black", linewidth=1.0)
    axes[1].set_ylabel("ee speed (m/s)")
    axes[2].plot(seconds, events.height, color="black", linewidth=1.0)
    axes[2].set_ylabel("ee height (m)")
    axes[2].set_xlabel("time (s)")
    minima = events.speed_minima
    if minima.size:
        axes[1].plot(
            seconds[minima], events.speed[minima], "v", color="grey", markersize=4
        )

    _draw_segments(axes, segmentation, events.fps)
    heading = title or segmentation.demo_key
    if not segmentation.ok:
        heading += f"\nsegmentation failed: {segmentation.error[:120]}"
    figure.suptitle(heading, fontsize=10)
    figure.tight_layout()

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    figure.savefig(tmp, format="png")
    tmp.replace(path)
    logger.debug("wrote plot %s", path)
    return path


def _plot_gripper(axis, seconds: np.ndarray, events: KinematicEvents) -> None:
    if events.opening is not None:
        axis.plot(
            seconds, events.opening, color="black", linewidth=1.0, label="opening"
        )
        axis.set_ylabel("gripper opening (m)")
    else:
        axis.plot(
            seconds, events.command, color="black", linewidth=1.0, label="command"
        )
        axis.set_ylabel("gripper command")
    for event in events.gripper_events:
        style = "--" if event.kind == CLOSE else ":"
        axis.axvline(
            seconds[event.frame], color="dimgrey", linestyle=style, linewidth=0.8
        )
    axis.legend(loc="upper right", fontsize=7)


def _draw_segments(axes, segmentation: Segmentation, fps: float) -> None:
    colours = _colours(len(segmentation.segments))
    for index, segment in enumerate(segmentation.segments):
        start = segment.start / fps
        stop = (segment.end + 1) / fps
        for axis in axes:
            axis.axvspan(start, stop, color=colours[index], alpha=0.25, linewidth=0)
        label = f"{index}: {segment.op}({', '.join(segment.args)})\nconf {segment.confidence:.2f}"
        axes[0].text(
            (start + stop) / 2,
            1.02,
            label,
            transform=axes[0].get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=7,
        )


def _colours(count: int) -> list:
    palette = colormaps[_PALETTE]
    return [palette(i % palette.N) for i in range(count)]
