"""The report's figures as PNG bytes: latency vs PSNR with the Pareto front, latency bars, image crops.

Figures are drawn on matplotlib ``Figure`` objects with the Agg canvas (no pyplot state, no display), and
saved without the PNG "Software" text so the bytes carry no URL.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from reporting.crops import CropSet

METRIC_LABELS = {"psnr_vs_gt": "PSNR vs ground truth (dB)", "psnr_vs_float": "PSNR vs float model (dB)"}
MARKERS = {"float32": "o", "fp16": "s", "dynamic": "D", "int8": "^", "int16x8": "v", "uint8": "<"}
INFINITE_MARGIN_DB = 10.0
"""Where an identical output (PSNR = inf) is drawn: this far above the highest finite value."""
MIN_SPAN_DB = 2.0
"""The accuracy axis spans at least this many dB, centred on what it shows: PSNR differences of about a dB are
what a rerun moves on two held-out images, and a chart must not magnify them into a slope."""
AXIS_MARGIN = 0.05
"""Room above and below the data, as a fraction of its span (matplotlib's default)."""


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def _colours(names: list[str]) -> dict[str, str]:
    return {name: f"C{position % 10}" for position, name in enumerate(dict.fromkeys(names))}


def _groups(rows: list[dict]) -> list[str]:
    """Each row's colour group: its network and delegate where the rows hold several of either (a chart of
    PyNET, the mobile ISP and a third-party file at one delegate is coloured by network), else the
    delegate."""
    varying = [key for key in ("network", "delegate") if len({row[key] for row in rows}) > 1] or ["delegate"]
    return [" / ".join(str(row[key]) for key in varying) for row in rows]


def accuracy_limits(values: list[float], min_span: float = MIN_SPAN_DB) -> tuple[float, float]:
    """(bottom, top) of the accuracy axis: ``values`` with margins, widened about their centre to at least
    ``min_span``, so that noise-sized differences look as small as they are."""
    low, high = min(values), max(values)
    margin = AXIS_MARGIN * (high - low)
    low, high = low - margin, high + margin
    if high - low < min_span:
        centre = (low + high) / 2
        low, high = centre - min_span / 2, centre + min_span / 2
    return low, high


def _reference_label(reference: dict, several: bool) -> str:
    where = f" ({reference['held_out_data']}, seed {reference['held_out_seed']})" if several else ""
    return f"{reference['label']}{where}: {reference['psnr_vs_gt']:.2f} dB"


def pareto_figure(
    rows: list[dict], metric: str, front: list[str], title: str, references: Sequence[dict] = ()
) -> Figure:
    """Mean latency (x) against ``metric`` (y) for the rows plotted (ids in order), the front joined; colour:
    network and/or delegate (``_groups``), marker: precision. ``references`` (``report_rows.references``,
    for a PSNR-vs-ground-truth chart): the classical ISP on the same inputs, one horizontal line each."""
    values = [row[metric] for row in rows]
    finite = [value for value in values if math.isfinite(value)]
    cap = (max(finite) if finite else 0.0) + INFINITE_MARGIN_DB
    groups = _groups(rows)
    colours = _colours(groups)
    figure = Figure(figsize=(7.5, 4.8))
    axis = figure.add_subplot()
    seen = set()
    for row, value, group in zip(rows, values, groups):
        y = value if math.isfinite(value) else cap
        label = f"{group} / {row['precision']}"
        axis.scatter(
            row["mean_ms"],
            y,
            c=colours[group],
            marker=MARKERS.get(row["precision"], "x"),
            s=60,
            label=None if label in seen else label,
            zorder=3,
        )
        seen.add(label)
        suffix = "" if math.isfinite(value) else " (identical)"
        axis.annotate(
            f"#{row['id']}{suffix}",
            (row["mean_ms"], y),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=8,
        )
    on_front = sorted((row for row in rows if row["id"] in front), key=lambda row: row["mean_ms"])
    if on_front:
        axis.plot(
            [row["mean_ms"] for row in on_front],
            [row[metric] if math.isfinite(row[metric]) else cap for row in on_front],
            drawstyle="steps-post",
            color="0.3",
            linestyle="--",
            linewidth=1,
            zorder=2,
            label="Pareto front",
        )
        axis.scatter(
            [row["mean_ms"] for row in on_front],
            [row[metric] if math.isfinite(row[metric]) else cap for row in on_front],
            s=180,
            facecolors="none",
            edgecolors="0.2",
            zorder=4,
        )
    for number, reference in enumerate(references):
        axis.axhline(
            reference["psnr_vs_gt"],
            color="0.15",
            linestyle=(0, (1, 1 + number)),
            linewidth=1.5,
            zorder=1,
            label=_reference_label(reference, len(references) > 1),
        )
    shown = [value if math.isfinite(value) else cap for value in values]
    axis.set_ylim(*accuracy_limits(shown + [reference["psnr_vs_gt"] for reference in references]))
    latencies = [row["mean_ms"] for row in rows]
    if latencies and max(latencies) > 10 * min(latencies) > 0:
        axis.set_xscale("log")  # ticks at 1, 2, 5 x 10^k, written as plain numbers
        axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_formatter(NullFormatter())
    axis.set_xlabel("mean latency (ms), lower is better")
    axis.set_ylabel(METRIC_LABELS[metric] + ", higher is better")
    axis.set_title(title, fontsize=10)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8, loc="best")
    figure.tight_layout()
    return figure


def pareto(
    rows: list[dict], metric: str, front: list[str], title: str, references: Sequence[dict] = ()
) -> bytes:
    """``pareto_figure`` as PNG bytes."""
    return _png(pareto_figure(rows, metric, front, title, references))


def latency_bars(rows: list[dict], title: str) -> bytes:
    """Per delegate, one bar per (file, threads): mean latency, the whisker one standard deviation."""
    delegates = list(dict.fromkeys(row["delegate"] for row in rows))
    counts = [sum(row["delegate"] == delegate for row in rows) for delegate in delegates]
    figure = Figure(figsize=(8.0, 1.2 + 0.32 * sum(counts) + 0.5 * len(delegates)))
    grid = figure.add_gridspec(len(delegates), 1, height_ratios=counts)
    colours = _colours([row["precision"] or "unknown" for row in rows])
    for position, delegate in enumerate(delegates):
        axis = figure.add_subplot(grid[position])
        members = [row for row in rows if row["delegate"] == delegate]
        labels = [f"#{row['id']} {row['file']} x{row['threads']}" for row in members]
        means = [row["mean_ms"] if row["mean_ms"] is not None else 0.0 for row in members]
        errors = [row["std_ms"] or 0.0 for row in members]
        axis.barh(
            range(len(members)),
            means,
            xerr=errors,
            capsize=2,
            color=[colours[row["precision"] or "unknown"] for row in members],
        )
        for y, row in enumerate(members):
            failed = row["status"] != "ok" or row["mean_ms"] is None
            end = 0.0 if failed else row["mean_ms"] + (row["std_ms"] or 0.0)
            text = (
                "failed"
                if failed
                else f"{row['mean_ms']:.4g}"
                if row["mean_ms"] < 1000
                else f"{row['mean_ms']:.0f}"
            )
            axis.text(end, y, f"  {text}", va="center", fontsize=7, color="C3" if failed else "0.2")
        axis.set_yticks(range(len(members)), labels, fontsize=7)
        axis.invert_yaxis()
        axis.set_title(f"{delegate}", fontsize=9, loc="left")
        axis.grid(True, axis="x", alpha=0.3)
        if position == len(delegates) - 1:
            axis.set_xlabel("mean latency (ms); whisker: one standard deviation")
    handles = [Patch(color=colour, label=name) for name, colour in colours.items()]
    figure.legend(handles=handles, loc="upper right", fontsize=8, ncols=len(handles))
    figure.suptitle(title, fontsize=10, x=0.02, ha="left")
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    return _png(figure)


def crops(crop: CropSet) -> bytes:
    """Top: ground truth, float model, each file; below each file: its error against the float model."""
    columns = len(crop.images)
    figure = Figure(figsize=(2.3 * columns + 0.8, 5.4))
    grid = figure.add_gridspec(2, columns + 1, width_ratios=[1.0] * columns + [0.06])
    vmax = max([float(np.max(panel.image)) for panel in crop.errors] + [1e-6])
    heat = None
    for column, panel in enumerate(crop.images):
        axis = figure.add_subplot(grid[0, column])
        axis.imshow(np.clip(panel.image, 0.0, 1.0), interpolation="nearest")
        axis.set_title(panel.title, fontsize=7)
        axis.set_axis_off()
    offset = columns - len(crop.errors)
    for column, panel in enumerate(crop.errors, offset):
        axis = figure.add_subplot(grid[1, column])
        heat = axis.imshow(panel.image, cmap="magma", vmin=0.0, vmax=vmax, interpolation="nearest")
        axis.set_title(panel.title, fontsize=7)
        axis.set_axis_off()
    if heat is not None:
        figure.colorbar(heat, cax=figure.add_subplot(grid[1, columns]), label="abs error")
    figure.suptitle(f"{crop.source}: {crop.example}, centre crop {crop.box[2]}x{crop.box[3]} px", fontsize=9)
    figure.tight_layout()
    return _png(figure)
