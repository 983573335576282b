"""The report itself: ``build`` reads results and sidecars into sections of rows, figures and crops;
``to_markdown``, ``to_html``, ``to_json`` and ``write`` put it on disk. ``python -m android_bench.report`` is its
command line (what it writes is described there)."""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path

from pynet_tf import atomic
from reporting import inputs as report_inputs
from reporting import plots
from reporting import rows as report_rows
from reporting.crops import CropSet, crop_sets

FORMAT = "pynet-tf benchmark report"
VERSION = 1
DEFAULT_MIN_PSNR = 40.0
FIGURES = "figures"


@dataclass(frozen=True)
class Figure:
    name: str
    """Path under the report folder, ``figures/<kind>_<n>.png`` (for report.md)."""
    title: str
    png: bytes


@dataclass
class Report:
    rows: list[dict]
    fronts: dict[str, dict]
    ship: list[dict]
    min_psnr: float
    inputs: report_inputs.Inputs
    references: dict[str, list[dict]] = field(default_factory=dict)
    """Per section: the classical ISP on its files' held-out inputs (``report_rows.references``)."""
    crops: list[CropSet] = field(default_factory=list)
    """Per source model and shape, then per file without a sidecar (empty with ``crops=False``)."""
    crops_note: str | None = None
    figures: dict[str, list[Figure]] = field(default_factory=dict)
    """Per section: its Pareto and latency figures; key "crops": the crop grids."""

    def notes(self) -> list[str]:
        """What a reader must know to trust the numbers: skipped inputs, incomplete runs, empty accuracy."""
        notes = [f"skipped {entry}" for entry in self.inputs.skipped]
        for results_file in self.inputs.files:
            run = results_file.document["run"]
            if not run.get("complete"):
                done = len(results_file.document["rows"])
                notes.append(
                    f"run {run.get('id')} ({results_file.path}) did not complete (interrupted or "
                    f"still running): it holds the {done} rows done"
                )
        accuracy = {row["file"]: row for row in self.rows if row["accuracy_note"]}
        notes += [
            f"{name}: {'' if row['psnr_vs_gt'] is not None else 'accuracy columns empty: '}{row['accuracy_note']}"
            for name, row in accuracy.items()
        ]
        notes += [
            f"#{row['id']} {row['file']} on {row['delegate']}: {row['placement_note']}: the hand-kept tables "
            "(export/delegates.py) may have drifted from this delegate"
            for row in self.rows
            if row["placement_mismatch"]
        ]
        notes += [
            f"#{row['id']} {row['file']} on {row['delegate']}: {row['device_drop_db']:.1f} dB lower PSNR vs float "
            "on the device than on the host: this delegate computes something else"
            for row in self.rows
            if row["device_drop"]
        ]
        flagged = {row["file"]: row for row in self.rows if row["not_working_isp"]}
        bar = f"flagged from {report_rows.NOT_WORKING_ISP_DB:g} dB below"
        notes += [
            f"{name}: not a working ISP: {_below_classical(row)} ({bar})" for name, row in flagged.items()
        ]
        for section, members in report_rows.sections(self.rows).items():
            scored = any(row["psnr_vs_gt"] is not None for row in members)
            if scored and not self.references.get(section):
                label = members[0]["section_label"]
                notes.append(
                    f"{label}: no classical ISP reference: the sidecars predate it (export sidecar "
                    "version < 5); re-export to see one"
                )
        return notes


def build(paths: list[Path], *, min_psnr: float = DEFAULT_MIN_PSNR, crops: bool = True) -> Report:
    """Read the results at ``paths`` and compute everything the report shows (figures included)."""
    inputs = report_inputs.load(paths)
    rows = report_rows.flatten(inputs)
    report = Report(
        rows,
        report_rows.mark_pareto(rows),
        report_rows.ship(rows, min_psnr),
        min_psnr,
        inputs,
        report_rows.references(rows),
    )
    for number, (section, members) in enumerate(report_rows.sections(rows).items(), 1):
        label, front = members[0]["section_label"], report.fronts[section]
        plotted = [row for row in members if row["id"] in front["points"]]
        # the classical ISP is scored against the ground truth: a line on that chart only
        lines = report.references.get(section, []) if front["metric"] == "psnr_vs_gt" else []
        figures = []
        if plotted:
            png = plots.pareto(plotted, front["metric"], front["front"], label, lines)
            figures.append(Figure(f"{FIGURES}/pareto_{number}.png", f"Latency vs accuracy: {label}", png))
        figures.append(
            Figure(
                f"{FIGURES}/latency_{number}.png",
                f"Latency per delegate: {label}",
                plots.latency_bars(members, label),
            )
        )
        report.figures[section] = figures
    if crops:
        report.crops = crop_sets(rows)
        report.figures["crops"] = [
            Figure(
                f"{FIGURES}/crops_{number}.png",
                f"{crop.source} ({crop.input_shape}): {crop.example}",
                plots.crops(crop),
            )
            for number, crop in enumerate((c for c in report.crops if c.images), 1)
        ]
    else:
        report.crops_note = "not made (--no-crops)"
    return report


# ----------------------------------------------------------------------------------------------- cells


def number(value: float | None, digits: int = 2) -> str:
    """A table cell: "–" for missing, "∞" for an infinite PSNR (identical output)."""
    if value is None:
        return "–"
    if math.isinf(value):
        return "∞"
    return f"{value:.{digits}f}" if abs(value) < 10_000 else f"{value:.0f}"


def _below_classical(row: dict) -> str:
    """Why a row is flagged: its PSNR vs ground truth next to the classical ISP's on the same inputs."""
    return (
        f"{number(row['psnr_vs_gt'])} dB vs ground truth, {number(-row['psnr_vs_classical_isp'])} dB "
        f"below the {row['classical_isp']} at {number(row['classical_isp_psnr_vs_gt'])} dB on the same "
        f"{row['fidelity_images']} held-out images"
    )


def _versus_classical(row: dict) -> str:
    """PSNR vs ground truth minus the classical ISP's, flagged where far below."""
    delta = row["psnr_vs_classical_isp"]
    if delta is None:
        return "–"
    text = "∞" if math.isinf(delta) else f"{delta:+.2f}"
    return text + (" not a working ISP" if row["not_working_isp"] else "")


def _precision(row: dict) -> str:
    text = row["precision"] or "?"
    if row["precision_note"]:
        text += f" ({row['precision_note']})"
    return text + (" †" if row["precision_from"] == "tensor types" else "")


VERSUS_CLASSICAL = "PSNR vs classical ISP"
COLUMNS = (
    ("#", lambda r: r["id"]),
    ("file", lambda r: r["file"]),
    ("precision", _precision),
    ("MB", lambda r: number(r["size_mb"], 3)),
    ("delegate", lambda r: r["delegate"] + (f" ({r['coverage']})" if r["coverage"] else "")),
    ("threads", lambda r: str(r["threads"])),
    ("init ms", lambda r: number(r["init_ms"])),
    ("mean ms", lambda r: number(r["mean_ms"])),
    ("median ms", lambda r: number(r["median_ms"])),
    ("p95 ms", lambda r: number(r["p95_ms"])),
    ("peak MiB", lambda r: number(r["peak_mb"], 1)),
    ("PSNR vs float", lambda r: number(r["psnr_vs_float"])),
    ("SSIM vs float", lambda r: number(r["ssim_vs_float"], 4)),
    ("MS-SSIM vs float", lambda r: number(r["ms_ssim_vs_float"], 4)),
    ("PSNR vs GT", lambda r: number(r["psnr_vs_gt"])),
    ("SSIM vs GT", lambda r: number(r["ssim_vs_gt"], 4)),
    ("MS-SSIM vs GT", lambda r: number(r["ms_ssim_vs_gt"], 4)),
    (VERSUS_CLASSICAL, _versus_classical),
    ("speed-up vs fp32", lambda r: "–" if r["speedup_vs_fp32"] is None else f"{r['speedup_vs_fp32']:.2f}x"),
    ("Pareto", lambda r: {True: "●", False: "", None: "–"}[r["pareto"]]),
    ("status", lambda r: "ok" if r["status"] == "ok" else f"error: {r['error']}"),
)
DEVIATION_COLUMN = (
    "mean abs Δ vs device CPU",
    lambda r: "–" if r["device_diff_mean_abs"] is None else f"{r['device_diff_mean_abs']:.2g}",
)
DEVIATION_LEGEND = (
    "mean abs Δ vs device CPU: TFLite's inference_diff on the phone (--inference-diff-binary), the mean "
    "absolute difference between this delegate's output and the phone's 1-thread CPU output on random "
    "inputs, in output units ([0, 1] for float-io files)."
)


def _on_device(row: dict) -> str:
    """The row's own PSNR vs float on the phone, flagged when it falls more than DEVICE_DROP_DB below the
    host's; why it is missing otherwise."""
    if row["device_psnr_vs_float"] is None:
        return "–" if row["device_accuracy_note"] is None else f"– ({row['device_accuracy_note']})"
    text = number(row["device_psnr_vs_float"])
    return text + (f" ⚠ {row['device_drop_db']:.1f} dB below the host" if row["device_drop"] else "")


DEVICE_COLUMNS = (
    ("PSNR vs float on device", _on_device),
    ("PSNR vs GT on device", lambda r: number(r["device_psnr_vs_gt"])),
)
PROFILE_COLUMNS = (
    ("top ops", lambda r: r["top_ops"] or "–"),
    ("norm share", lambda r: "–" if r["norm_share"] is None else f"{100 * r['norm_share']:.0f}%"),
)
PROFILE_LEGEND = (
    "top ops, norm share: benchmark_model's per-op profile (--op-profile), the op types taking the most time "
    "and the instance norms' ops' share of the run (ops of layers named *_norm; ops inside a delegate kernel "
    "cannot be told apart, profile with --delegates cpu to see them)."
)
DEVICE_LEGEND = (
    "On device: the file's held-out inputs run through this row's delegate and threads on the phone "
    "(benchmark_model --input_layer_value_files, --output_filepath) and scored here as the sidecar was; "
    f"⚠ marks a delegate more than {report_rows.DEVICE_DROP_DB:g} dB below the host's PSNR vs float. The ship "
    "choice uses a row's on-device PSNR where it was measured."
)


def columns(rows: list[dict]) -> tuple:
    """The table's columns: the on-device accuracy and the on-device deviation only where some row has them
    (phone runs), after the fidelity columns."""
    extra = ()
    if any(row["device_psnr_vs_float"] is not None or row["device_accuracy_note"] for row in rows):
        extra += DEVICE_COLUMNS
    if any(row["device_diff_mean_abs"] is not None for row in rows):
        extra += (DEVIATION_COLUMN,)
    if any(row["top_ops"] is not None for row in rows):
        extra += PROFILE_COLUMNS
    if not extra:
        return COLUMNS
    at = [name for name, _ in COLUMNS].index("speed-up vs fp32")
    return (*COLUMNS[:at], *extra, *COLUMNS[at:])


def reference_cells(reference: dict, shown: tuple) -> list[str]:
    """A section table's reference row: the classical ISP's scores vs ground truth in their columns."""
    ids = ", ".join(f"#{row}" for row in reference["rows"])
    inputs = f"{reference['held_out_data']} (seed {reference['held_out_seed']})"
    cells = {
        "#": "ref",
        "file": reference["label"],
        "precision": "reference",
        "PSNR vs GT": number(reference["psnr_vs_gt"]),
        "SSIM vs GT": number(reference["ssim_vs_gt"], 4),
        "MS-SSIM vs GT": number(reference["ms_ssim_vs_gt"], 4),
        "status": f"reference, not benchmarked: on the {reference['images']} held-out images of {inputs} "
        f"that {ids} were scored on",
    }
    return [cells.get(name, "–") for name, _ in shown]


SHIP_RULE = "fastest at the bar, working ISPs first"


def _ship_choices(report: Report, section: str) -> list[dict]:
    return [choice for choice in report.ship if choice["section"] == section]


def _ship_line(choice: dict) -> str:
    """One ship choice; a choice that is not a working ISP says so first (the overall one also says why)."""
    where = "overall" if choice["delegate"] is None else choice["delegate"]
    if choice["row"] is None:
        return f"{where}: nothing to ship: {choice['why']}"
    threads = f"{choice['threads']} thread" + ("s" if choice["threads"] != 1 else "")
    line = (
        f"{choice['file']} with {threads} (#{choice['row']}), {number(choice['mean_ms'])} ms mean, "
        f"{number(choice['ship_psnr_vs_float'])} dB vs float"
        + (" on the device" if choice["ship_psnr_from"] == "device" else "")
        + f" ({choice['why']})"
    )
    if not choice["not_working_isp"]:
        return f"{where}: {line}"
    if choice["delegate"] is not None:
        return f"{where}: NOT A WORKING ISP: {line}"
    return (
        f"{where}: NOT A WORKING ISP: {line}. It scores {_below_classical(choice)}: it matches its "
        "float model, the network is what fails; train (or choose) a better one before shipping it"
    )


def _ship_lines(report: Report, section: str) -> list[str]:
    return [_ship_line(choice) for choice in _ship_choices(report, section)]


LEGEND = (
    "MB = 10^6 bytes (file sizes), MiB = 2^20 bytes (memory, as benchmark_model counts it). Latencies are the benchmark's measured runs (warm-up excluded); p95 is the tail "
    "benchmark_model prints (p5/median/p95, in builds that print percentiles) and --host computes alike. "
    "Peak MiB is the results' memory.peak_mb (see memory_measure in report.json). PSNR/SSIM/MS-SSIM come "
    "from each file's export "
    "sidecar: means over its held-out images, outputs clipped to [0, 1]. Speed-up: the float32 file of the "
    "same source model, input shape, delegate and threads, divided by this row. Pareto ●: on the "
    "latency/PSNR front of this section; – not plotted. † precision read off the file's tensor types (no "
    "sidecar, or a third-party file). The ref row is the classical ISP (pynet_tf/data/isp.py) on the same "
    "held-out inputs, against the same ground truth: PSNR vs classical ISP is the file's PSNR vs GT minus "
    f"its; {report_rows.NOT_WORKING_ISP_DB:g} dB or more below it is not a working ISP, shipped only when no "
    "working file reaches the bar."
)


def _crop_lines(crop: CropSet) -> list[str]:
    if crop.reason:
        return [f"{', '.join(crop.files)}: no crops: {crop.reason}"]
    scores = "; ".join(
        f"{s['file']} "
        + ("" if s["psnr_vs_float"] is None else f"{number(s['psnr_vs_float'])} dB vs float, ")
        + f"{number(s['psnr_vs_gt'])} dB vs GT"
        for s in crop.scores
    )
    if crop.classical_isp:  # the reference first
        scores = (
            f"{crop.classical_isp['label']} {number(crop.classical_isp['psnr_vs_gt'])} dB vs GT; {scores}"
        )
    lines = [f"{crop.source} ({crop.input_shape}), example {crop.example} (whole output): {scores}"]
    return lines + [f"not run: {entry}" for entry in crop.skipped]


# ----------------------------------------------------------------------------------------------- Markdown


def ship_summary(report: Report) -> list[str]:
    """One line per section: which file to ship there (the console's account of the report)."""
    return [
        f"{section}: ship {_ship_lines(report, section)[0]}" for section in report_rows.sections(report.rows)
    ]


def _legend(report: Report) -> str:
    shown = columns(report.rows)
    device = " " + DEVICE_LEGEND if DEVICE_COLUMNS[0] in shown else ""
    profile = " " + PROFILE_LEGEND if PROFILE_COLUMNS[0] in shown else ""
    return LEGEND + device + (" " + DEVIATION_LEGEND if DEVIATION_COLUMN in shown else "") + profile


def _md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def to_markdown(report: Report) -> str:
    lines = ["# Benchmark report", "", f"Ship bar: PSNR vs the float model >= {report.min_psnr:g} dB.", ""]
    for section, members in report_rows.sections(report.rows).items():
        lines += [f"## {members[0]['section_label']}", "", f"**Which file to ship** ({SHIP_RULE}):", ""]
        for choice in _ship_choices(report, section):
            text = _md_cell(_ship_line(choice))
            lines.append(f"- **{text}**" if choice["not_working_isp"] else f"- {text}")
        lines.append("")
        shown = columns(members)
        lines.append("| " + " | ".join(name for name, _ in shown) + " |")
        lines.append(
            "|"
            + "|".join(" --- " if name in ("file", "status", "delegate") else " ---: " for name, _ in shown)
            + "|"
        )
        lines += ["| " + " | ".join(_md_cell(cell(row)) for _, cell in shown) + " |" for row in members]
        lines += [
            "| " + " | ".join(_md_cell(cell) for cell in reference_cells(reference, shown)) + " |"
            for reference in report.references.get(section, [])
        ]
        lines.append("")
        lines += [f"![{figure.title}]({figure.name})" for figure in report.figures.get(section, [])] + [""]
    lines += ["## Image crops", ""]
    lines += [f"- {_md_cell(report.crops_note)}"] if report.crops_note else []
    lines += [f"- {_md_cell(line)}" for crop in report.crops for line in _crop_lines(crop)]
    lines += [""] + [f"![{figure.title}]({figure.name})" for figure in report.figures.get("crops", [])] + [""]
    lines += ["## Notes", "", f"- {_legend(report)}"] + [f"- {_md_cell(note)}" for note in report.notes()]
    lines += [f"- inputs: {', '.join(str(f.path) for f in report.inputs.files)}"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- HTML

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 12px; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; white-space: normal; }
td.text { text-align: left; white-space: normal; max-width: 28em; }
tr.error td { background: #fde8e8; }
tr.ship td { background: #e6f4e6; font-weight: 600; }
tr.reference td { background: #eef2f8; font-style: italic; }
td.flag, li.warning { color: #b00020; font-weight: 700; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.3em 0; }
p.note, li { font-size: 13px; }
"""
TEXT_COLUMNS = ("file", "delegate", "status")


def _img(figure: Figure) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    return f'<figure><img alt="{html.escape(figure.title)}" src="data:image/png;base64,{data}"></figure>'


def _html_cell(column: str, text: str, flag: bool = False) -> str:
    kind = "flag" if flag else "text" if column in TEXT_COLUMNS else ""
    return f'<td class="{kind}">{html.escape(text)}</td>' if kind else f"<td>{html.escape(text)}</td>"


def to_html(report: Report) -> str:
    escape = html.escape
    shipped = {c["row"] for c in report.ship if c["delegate"] is None and c["row"]}
    parts = [
        f"<h1>Benchmark report</h1><p>Ship bar: PSNR vs the float model &ge; {report.min_psnr:g} dB.</p>"
    ]
    for section, members in report_rows.sections(report.rows).items():
        ship = "".join(
            f'<li class="warning">{escape(_ship_line(c))}</li>'
            if c["not_working_isp"]
            else f"<li>{escape(_ship_line(c))}</li>"
            for c in _ship_choices(report, section)
        )
        parts.append(
            f"<h2>{escape(members[0]['section_label'])}</h2>"
            f"<p><b>Which file to ship</b> ({SHIP_RULE}):</p><ul>{ship}</ul>"
        )
        shown = columns(members)
        header = "".join(f"<th>{escape(name)}</th>" for name, _ in shown)
        body = []
        for row in members:
            kind = "ship" if row["id"] in shipped else "error" if row["status"] != "ok" else ""
            cells = "".join(
                _html_cell(name, cell(row), name == VERSUS_CLASSICAL and row["not_working_isp"])
                for name, cell in shown
            )
            body.append(f'<tr class="{kind}">{cells}</tr>')
        for reference in report.references.get(section, []):
            texts = reference_cells(reference, shown)
            cells = "".join(_html_cell(name, text) for (name, _), text in zip(shown, texts))
            body.append(f'<tr class="reference">{cells}</tr>')
        parts.append(f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table>")
        parts += [_img(figure) for figure in report.figures.get(section, [])]
    parts.append("<h2>Image crops</h2><ul>")
    lines = ([report.crops_note] if report.crops_note else []) + [
        line for crop in report.crops for line in _crop_lines(crop)
    ]
    parts.append("".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>")
    parts += [_img(figure) for figure in report.figures.get("crops", [])]
    parts.append(f"<h2>Notes</h2><p class='note'>{escape(_legend(report))}</p><ul>")
    parts.append("".join(f"<li>{escape(note)}</li>" for note in report.notes()) + "</ul>")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>Benchmark report</title>"
        f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    )


# ----------------------------------------------------------------------------------------------- JSON


def to_json(report: Report) -> dict:
    """report.json: the rows (reporting/rows.py's schema) and every conclusion drawn from them.

    PSNR of identical outputs is ``Infinity``, as in the sidecars (Python's json).
    """
    return {
        "format": FORMAT,
        "version": VERSION,
        "min_psnr": report.min_psnr,
        "inputs": [
            {
                "path": str(f.path),
                "run": f.document["run"].get("id"),
                "mode": f.document["run"].get("mode"),
                "complete": f.document["run"].get("complete"),
                "device": report_rows.device_identity(f.document)[0],
                "rows": len(f.document["rows"]),
            }
            for f in report.inputs.files
        ],
        "skipped_inputs": report.inputs.skipped,
        "rows": report.rows,
        "ship": report.ship,
        "classical_isp": report.references,
        "pareto": report.fronts,
        "crops": [crop.record() for crop in report.crops],
        "crops_note": report.crops_note,
        "figures": {key: [figure.name for figure in figures] for key, figures in report.figures.items()},
        "notes": report.notes(),
    }


def write(report: Report, out: Path) -> dict[str, Path]:
    """The figures folder (replaced whole: no figure of an earlier report stays), then report.json, report.md
    and report.html, each written atomically into ``out``."""

    def figures(folder: Path) -> None:
        folder.chmod(0o755)  # the temporary folder is private (mkdtemp's 0700); the figures are not
        for figure in (figure for figures in report.figures.values() for figure in figures):
            (folder / Path(figure.name).name).write_bytes(figure.png)

    atomic.write_with(out / FIGURES, figures, directory=True)
    return {
        "json": atomic.write_json(out / "report.json", to_json(report)),
        "md": atomic.write_text(out / "report.md", to_markdown(report)),
        "html": atomic.write_text(out / "report.html", to_html(report)),
    }
