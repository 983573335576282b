"""Image crops for the report: one held-out example through the float model and through every exported file.

For each float Keras model named in the sidecars (``source.model``, checked against its sha256) and input
shape, the first held-out example of the sidecar's ``--data`` and ``--seed`` (``export.fidelity.held_out``,
the inputs the sidecar's fidelity was measured on) is run through the model and through each benchmarked
.tflite file on this machine (``export.fidelity.TFLiteRunner``, LiteRT). Panels: ground truth, the classical
ISP on the same input (what a learned ISP must beat), float model, each file, and per file a heat map of its
absolute error against the float model (mean over RGB).

Files without a sidecar (third-party models) have no float model to compare with; a source model that is not
here, changed since the export, or held-out data that cannot be read: each is skipped with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reporting.rows import PRECISIONS

CROP_PX = 128
"""The centre crop's side in output pixels: small enough to see single pixels in the report."""


@dataclass
class Panel:
    title: str
    image: np.ndarray
    """(h, w, 3) in [0, 1], or (h, w) error for heat maps."""


@dataclass
class CropSet:
    """One source model and input shape: its panels, or the reason there are none."""

    source: str | None
    input_shape: str | None
    files: list[str]
    reason: str | None = None
    example: str | None = None
    box: list[int] | None = None
    """[top, left, height, width] of the crop in the output."""
    images: list[Panel] = field(default_factory=list)
    errors: list[Panel] = field(default_factory=list)
    scores: list[dict] = field(default_factory=list)
    """Per file on this example (whole output): {file, rows, psnr_vs_float, psnr_vs_gt}."""
    skipped: list[str] = field(default_factory=list)
    """'<file>: why' for files of this source that could not be run here."""
    classical_isp: dict | None = None
    """{label, psnr_vs_gt} of the classical ISP's panel on this example (whole output), or None."""

    def record(self) -> dict:
        return {
            "source": self.source,
            "input_shape": self.input_shape,
            "files": self.files,
            "reason": self.reason,
            "example": self.example,
            "box": self.box,
            "scores": self.scores,
            "classical_isp": self.classical_isp,
            "skipped": self.skipped,
        }


def _groups(rows: list[dict]) -> tuple[dict[tuple, list[dict]], dict[str, list[dict]], list[CropSet]]:
    """Rows by (source, sha256, shape, data, seed); third-party files' rows by file; files without a usable
    sidecar as reasoned CropSets."""
    groups: dict[tuple, list[dict]] = {}
    third_party: dict[str, list[dict]] = {}
    without: dict[str, CropSet] = {}
    for row in rows:
        if row["third_party"] and row["input_shape"]:
            third_party.setdefault(row["sha256"], []).append(row)
            continue
        if row["source"] is None:
            without.setdefault(
                row["sha256"], CropSet(None, row["input_shape"], [row["file"]], row["accuracy_note"])
            )
            continue
        key = (
            row["source"],
            row["source_sha256"],
            row["input_shape"],
            row["held_out_data"],
            row["held_out_seed"],
        )
        groups.setdefault(key, []).append(row)
    return groups, third_party, list(without.values())


def _files(rows: list[dict]) -> list[dict]:
    """One row per distinct file, widest precision first."""
    unique = {row["sha256"]: row for row in reversed(rows)}
    rank = {name: position for position, name in enumerate(PRECISIONS)}
    return sorted(unique.values(), key=lambda row: (rank.get(row["precision"], len(rank)), row["file"]))


def _centre(shape: tuple[int, int]) -> list[int]:
    height, width = min(shape[0], CROP_PX), min(shape[1], CROP_PX)
    return [(shape[0] - height) // 2, (shape[1] - width) // 2, height, width]


def _classical_panels(item, cut, result: CropSet) -> list[Panel]:
    """The classical ISP's render of the held-out ``item`` (``export.fidelity.HeldOut``), cut like the other
    panels, and its PSNR vs ground truth recorded in ``result``; none where the item has no render."""
    classical = item.classical_isp
    if classical is None:
        return []
    label, psnr = classical.baseline.label, classical.scores["psnr"]
    result.classical_isp = {"label": label, "psnr_vs_gt": psnr}
    return [Panel(f"{label}\n{psnr:.2f} dB vs GT", cut(classical.image))]


def crop_set(rows: list[dict]) -> CropSet:
    """The panels of one group of rows sharing a source model, shape and held-out data (see ``_groups``)."""
    import tensorflow as tf

    from export import fidelity
    from export.sidecar import sha256_file
    from pynet_tf import metrics, runs
    from pynet_tf.data.sources import DataSourceError

    first, files = rows[0], _files(rows)
    result = CropSet(first["source"], first["input_shape"], [row["file"] for row in files])
    source = Path(first["source"])
    if not source.is_file():
        result.reason = (
            f"source model {source} not found here (sidecar paths are relative to the folder the "
            "export ran in: run the report there)"
        )
        return result
    if sha256_file(source) != first["source_sha256"]:
        result.reason = f"source model {source} changed since the export (sha256 differs): re-export"
        return result
    if first["input_shape"] is None:
        result.reason = "the files' input shape is unknown"
        return result
    shape = tuple(int(side) for side in first["input_shape"].split("x"))
    try:
        model = runs.load_model(source)
        (item,) = fidelity.held_out(
            model, shape, first["held_out_data"] or "samples", seed=first["held_out_seed"] or 0, limit=1
        )
    except (OSError, ValueError, DataSourceError, fidelity.FidelityError) as error:
        result.reason = f"held-out example unavailable: {type(error).__name__}: {error}"
        return result

    def psnr(a: np.ndarray, b: np.ndarray) -> float:
        return float(metrics.psnr(tf.constant(a, tf.float32), tf.constant(b, tf.float32)))

    top, left, height, width = result.box = _centre(item.target.shape[:2])

    def cut(image: np.ndarray) -> np.ndarray:
        return image[top : top + height, left : left + width]

    result.example = item.name
    result.images = [
        Panel("ground truth", cut(item.target)),
        *_classical_panels(item, cut, result),
        Panel(f"float model\n{psnr(item.reference, item.target):.2f} dB vs GT", cut(item.reference)),
    ]
    for row in files:
        output = _output(row, item, result)
        if output is None:
            continue
        versus_float, versus_truth = psnr(output, item.reference), psnr(output, item.target)
        ids = [other["id"] for other in rows if other["sha256"] == row["sha256"]]
        result.scores.append(
            {
                "file": row["file"],
                "rows": ids,
                "precision": row["precision"],
                "psnr_vs_float": versus_float,
                "psnr_vs_gt": versus_truth,
            }
        )
        label = f"{row['precision']}: {row['file']}"
        result.images.append(Panel(f"{label}\n{versus_float:.2f} dB vs float", cut(output)))
        result.errors.append(
            Panel(f"|{row['precision']} - float|", cut(np.abs(output - item.reference).mean(-1)))
        )
    return result


def _output(row: dict, item, result: CropSet) -> np.ndarray | None:
    """The benchmarked file's output on the held-out ``item`` (its valid area, clipped; the packed channels in
    the file's order), or None with the reason added to ``result.skipped``."""
    from export import fidelity
    from export.sidecar import sha256_file
    from pynet_tf.data import bayer

    path = Path(row["path"])
    if not path.is_file() or sha256_file(path) != row["sha256"]:
        result.skipped.append(f"{row['file']}: not at {path} (or changed since it was benchmarked)")
        return None
    packed = item.packed
    if row["channel_order"]:
        order = bayer.parse_channel_order(row["channel_order"])
        packed = packed[..., list(bayer.channel_permutation(order))]
    try:
        output = np.clip(fidelity.TFLiteRunner(path.read_bytes())(packed), 0.0, 1.0)
    except (ValueError, RuntimeError) as error:
        result.skipped.append(
            f"{row['file']}: LiteRT could not run it here ({type(error).__name__}: {error})"
        )
        return None
    return output[: item.target.shape[0], : item.target.shape[1]]


def third_party_crop_set(rows: list[dict]) -> CropSet:
    """A third-party file's panels (export/third_party.py: no float model): the ground truth, the classical
    ISP's render, its output and its error against the ground truth, on the first held-out example its
    sidecar's accuracy was measured on."""
    import tensorflow as tf

    from export import fidelity
    from pynet_tf import metrics
    from pynet_tf.data.sources import DataSourceError

    first = rows[0]
    result = CropSet(first["third_party"], first["input_shape"], [first["file"]])
    shape = tuple(int(side) for side in first["input_shape"].split("x"))
    try:
        (item,) = fidelity.held_out_targets(
            shape, first["held_out_data"] or "samples", seed=first["held_out_seed"] or 0, limit=1
        )
    except (OSError, ValueError, DataSourceError, fidelity.FidelityError) as error:
        result.reason = f"held-out example unavailable: {type(error).__name__}: {error}"
        return result
    output = _output(first, item, result)
    if output is None:
        return result
    versus_truth = float(metrics.psnr(tf.constant(output, tf.float32), tf.constant(item.target, tf.float32)))
    top, left, height, width = result.box = _centre(item.target.shape[:2])

    def cut(image: np.ndarray) -> np.ndarray:
        return image[top : top + height, left : left + width]

    result.example = item.name
    result.scores.append(
        {
            "file": first["file"],
            "rows": [row["id"] for row in rows],
            "precision": first["precision"],
            "psnr_vs_float": None,
            "psnr_vs_gt": versus_truth,
        }
    )
    result.images = [
        Panel("ground truth", cut(item.target)),
        *_classical_panels(item, cut, result),
        Panel(f"third-party: {first['file']}\n{versus_truth:.2f} dB vs GT", cut(output)),
    ]
    result.errors = [Panel("|third-party - ground truth|", cut(np.abs(output - item.target).mean(-1)))]
    return result


def crop_sets(rows: list[dict]) -> list[CropSet]:
    """Every group's crops, each third-party file's, then the files that have none with the reason."""
    groups, third_party, without = _groups(rows)
    return (
        [crop_set(members) for members in groups.values()]
        + [third_party_crop_set(members) for members in third_party.values()]
        + without
    )
