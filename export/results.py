"""What an export produces and how it is shown: one result per format (TFLite, ONNX or a third-party file),
the table's rows and the files' names."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import tf_keras as keras

from export import delegates, fidelity, sidecar
from export.formats import STATUS_ERROR, ExportError, error_summary
from pynet_tf import architectures, runs
from pynet_tf.architectures import Architecture
from pynet_tf.units import MB

DEFAULT_OUT = Path("exported")


def timing(started: float, converted: float) -> dict[str, float]:
    """The sidecar's ``timing``: seconds converting (``started`` to ``converted``) and scoring (to now)."""
    return {
        "convert_s": round(converted - started, 3),
        "fidelity_s": round(time.perf_counter() - converted, 3),
    }


@dataclass(frozen=True)
class Source:
    """The trained model an export converts: its file, the model, its network and the level it computes."""

    file: Path
    model: keras.Model
    network: Architecture
    level: int

    def record(self) -> dict:
        """The sidecar's ``source``."""
        return {
            "model": str(self.file),
            "sha256": sidecar.sha256_file(self.file),
            "level": self.level,
            "arch": self.network.name,
            "base_filters": runs.level_record(self.file).get("base_filters"),
        }

    def file_stem(self, input_shape: tuple[int, int] | None) -> str:
        return file_stem(self.file, self.level, input_shape)


def load_source(model_path: str | Path) -> Source:
    """The model at ``model_path`` (``runs.resolve_model_path``), or ``ExportError`` naming the file."""
    model_file = runs.resolve_model_path(model_path)
    try:
        model = runs.load_model(model_file)
    except (OSError, ValueError) as error:
        raise ExportError(f"{model_file}: cannot load the model ({type(error).__name__}: {error})") from error
    return Source(model_file, model, architectures.of_model(model_file, model), fidelity.model_level(model))


@dataclass(frozen=True)
class FormatResult:
    """One format's outcome: written (``ok``), refused by its gate (``below --min-psnr``,
    ``above --max-abs``) or failed (``error``)."""

    format: str
    status: str
    path: Path | None
    """The written file; None unless ``ok``."""
    size_bytes: int | None
    psnr_vs_float: float | None
    delta_psnr: float | None
    """File minus float model, PSNR versus ground truth (dB)."""
    seconds: float
    message: str = ""
    sidecar: dict | None = None
    note: str = ""
    """What the format adds to the row (e.g. layers kept in float: not full-integer)."""
    max_abs: float | None = None
    """The largest absolute difference from the float model's output (ONNX's gate)."""

    @classmethod
    def failed(cls, format_name: str, started: float, error: Exception):
        """The ``error`` result of a format whose conversion or scoring raised (timed from ``started``)."""
        return cls(
            format_name,
            STATUS_ERROR,
            None,
            None,
            None,
            None,
            time.perf_counter() - started,
            error_summary(error),
        )

    def row(self) -> str:
        size = f"{self.size_bytes / MB:.3f}" if self.size_bytes is not None else "-"
        psnr = f"{self.psnr_vs_float:.2f}" if self.psnr_vs_float is not None else "-"
        delta = f"{self.delta_psnr:+.2f}" if self.delta_psnr is not None else "-"
        max_abs = f"{self.max_abs:.2e}" if self.max_abs is not None else "-"
        where = str(self.path) if self.path else self.message
        if self.note and self.path:
            where += f"  ({self.note})"
        seconds = f"{self.seconds:.1f}"
        return (
            f"{self.format:<11} {self.status:<17} {size:>9} {psnr:>13} {max_abs:>9} {delta:>11} {seconds:>7}  "
            f"{where}"
        )

    def details(self, worst: int = 5) -> list[str]:
        """Indented lines under the row: the worst int8 layers, the float fallback, the delegate report."""
        side = self.sidecar or {}
        lines = []
        if side.get("quantization_debug"):
            layers = side["quantization_debug"]["layers"][:worst]
            lines.append(
                "int8 error, worst layers (noise/signal): "
                + ", ".join(f"{entry['layer']} {entry['nsr']:.2f}" for entry in layers)
            )
        fallback = side.get("float_fallback")
        if fallback:
            tried = fallback.get("steps", [])
            steps = " ".join(f"{step['layers']}:{step['psnr_vs_float']:.1f}" for step in tried)
            lines.append(
                f"float fallback ({'auto' if fallback['requested'] == 'auto' else 'by name'}): "
                f"{len(fallback['layers'])} layers in float, float ops "
                + (", ".join(f"{op} x{n}" for op, n in fallback["float_ops"].items()) or "none")
                + (f"; tried (worst layers:dB) {steps}" if steps else "")
            )
        tuning = side.get("qat")
        if tuning:
            losses = tuning["step_losses"]
            trained = f", loss {losses[0]:.4g} -> {losses[-1]:.4g}" if losses else ""
            lines.append(
                f"QAT: {len(losses)} steps towards {tuning['targets']} ({tuning['batch_size']} crops of "
                f"{tuning['patch']}x{tuning['patch']}, lr {tuning['lr']:g}){trained}"
            )
        if side.get("delegates"):
            lines.append(f"delegates: {delegates.summary(side['delegates'])}")
        return [f"    {line}" for line in lines]


HEADER = (
    f"{'format':<11} {'status':<17} {'size MB':>9} {'PSNR vs float':>13} {'max abs':>9} {'ΔPSNR vs GT':>11} "
    f"{'time s':>7}  file"
)


def file_stem(model_file: Path, level: int, input_shape: tuple[int, int] | None) -> str:
    """``<run>_level<L>_<HxW|dynamic>``: the run folder's name, or the model file's stem outside a run."""
    run = runs.run_of(model_file)
    name = run.name if run else model_file.stem
    shape = f"{input_shape[0]}x{input_shape[1]}" if input_shape else "dynamic"
    return f"{name}_level{level}_{shape}"
