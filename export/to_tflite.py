"""Convert a trained PyNET level to TFLite (float32, fp16, dynamic range, int8, int16x8, int8 QAT), each with
a JSON sidecar.

    python export/to_tflite.py --model runs/NAME/final --float32 --fp16 --dynamic --int8 --out exported/
    python export/to_tflite.py --int8 --io uint8 --calibration calibration/set.npz --input-shape 224x224
    python -m export.to_tflite --format fp16,int8 --min-psnr 30
    python export/to_tflite.py --int8 --float-fallback auto --min-psnr 40      # worst layers in float
    python export/to_tflite.py --int8 --float-fallback '*_norm'                # every instance norm in float
    python export/to_tflite.py --int8 --qat --qat-steps 200                    # PTQ and QAT side by side

Batch 1 and a static packed H x W (--input-shape, default 224x224; `dynamic` for float32/fp16/dynamic only).
Every file is scored against the float Keras model (and ground truth) on held-out inputs (--data's test
split) and written atomically with <file>.json beside it; one below --min-psnr (dB vs the float model) is not
written and the command exits 1 after the other formats. User errors exit 2 with one line. Every int8 file
gets a per-layer error analysis (export/sensitivity.py), every file a GPU/NNAPI delegate op report
(export/delegates.py); both are in the sidecar and summarised under the file's row.

--qat fine-tunes a copy of the model with fake-quantization (tensorflow-model-optimization; export/qat.py) for
--qat-steps steps of the run's training loss on --data's training split, crops of the export's size, towards
the float model's outputs (--qat-targets distill) or the ground truth, then converts it to full-integer int8.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import export  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from calibration.build import default_calibration
from calibration.calibration_set import CalibrationError, CalibrationSet
from export import delegates, fidelity, qat, sidecar
from export.formats import (
    DEFAULT_SHAPE,
    FORMATS,
    QAT_ARGUMENTS,
    ExportError,
    ExportFormat,
    ExportSettings,
    as_conversion,
    check_calibration,
    check_float_fallback,
    error_summary,
    parse_float_fallback,
    validate,
)
from pynet_tf import architectures, atomic, runs
from pynet_tf.cli import command_parser, image_size, settings_summary
from pynet_tf.data.sources import DataSourceError
from pynet_tf.units import MB

DEFAULT_OUT = Path("exported")
STATUS_OK, STATUS_BELOW, STATUS_ERROR = "ok", "below --min-psnr", "error"


@dataclass(frozen=True)
class FormatResult:
    """One format's outcome: written (``ok``), refused (``below --min-psnr``) or failed (``error``)."""

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

    def row(self) -> str:
        size = f"{self.size_bytes / MB:.3f}" if self.size_bytes is not None else "-"
        psnr = f"{self.psnr_vs_float:.2f}" if self.psnr_vs_float is not None else "-"
        delta = f"{self.delta_psnr:+.2f}" if self.delta_psnr is not None else "-"
        where = str(self.path) if self.path else self.message
        if self.note and self.path:
            where += f"  ({self.note})"
        seconds = f"{self.seconds:.1f}"
        return f"{self.format:<8} {self.status:<17} {size:>9} {psnr:>13} {delta:>11} {seconds:>7}  {where}"

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
    f"{'format':<8} {'status':<17} {'size MB':>9} {'PSNR vs float':>13} {'ΔPSNR vs GT':>11} "
    f"{'time s':>7}  file"
)


def file_stem(model_file: Path, level: int, input_shape: tuple[int, int] | None) -> str:
    """``<run>_level<L>_<HxW|dynamic>``: the run folder's name, or the model file's stem outside a run."""
    run = runs.run_of(model_file)
    name = run.name if run else model_file.stem
    shape = f"{input_shape[0]}x{input_shape[1]}" if input_shape else "dynamic"
    return f"{name}_level{level}_{shape}"


def export_model(
    model_path: str | Path,
    formats: Sequence[str],
    *,
    out: str | Path = DEFAULT_OUT,
    input_shape: tuple[int, int] | None = DEFAULT_SHAPE,
    io: str | None = None,
    calibration: str | Path | CalibrationSet | None = None,
    data: str = "samples",
    seed: int = 0,
    min_psnr: float | None = None,
    float_fallback: Sequence[str] = (),
    qat_options: Mapping[str, object] | None = None,
    report=None,
) -> list[FormatResult]:
    """Convert the model at ``model_path`` to each of ``formats`` (names in ``FORMATS``) and write those that
    pass ``min_psnr`` into ``out`` with their sidecars; returns one result per format, in registry order.

    ``io`` applies to int8 and qat, ``calibration`` to int8 and int16x8, ``float_fallback`` to int8
    (calibration: a path, a loaded set, or None: ``default_calibration`` built on the fly from the samples; float_fallback: names as
    ``parse_float_fallback`` returns them, ``("auto",)`` with ``min_psnr``). ``qat_options``: the qat format's
    arguments by their ``QAT_ARGUMENTS`` names (``{"qat_steps": 50}``; the patch defaults to the export's smaller
    side, the loss to the run's). ``report`` (callable) gets each
    result as it is done. Bad arguments raise ``ExportError`` (or ``RunError``, ``CalibrationError``,
    ``DataSourceError``) before any conversion.
    """
    float_fallback = tuple(float_fallback)
    qat_options = dict(qat_options or {})
    unknown = sorted(set(qat_options) - set(QAT_ARGUMENTS))
    if unknown:
        raise ExportError(
            f"unknown QAT option(s) {', '.join(unknown)}: choose from {', '.join(QAT_ARGUMENTS)}"
        )
    given = [
        name
        for name, value in (
            ("io", io),
            ("calibration", calibration),
            ("float_fallback", float_fallback or None),
        )
        if value is not None
    ]
    given += [name for name, value in qat_options.items() if value is not None]
    model_file = runs.resolve_model_path(model_path)
    try:
        model = runs.load_model(model_file)
    except (OSError, ValueError) as error:
        raise ExportError(f"{model_file}: cannot load the model ({type(error).__name__}: {error})") from error
    network = architectures.of_model(model_file, model)
    chosen: list[ExportFormat] = validate(
        formats, input_shape=input_shape, given=given, check_shape=network.validate_input_shape
    )
    if io is not None and io not in ("float32", "uint8", "int8"):
        raise ExportError(f"--io must be float32, uint8 or int8, got {io!r}")
    calibration_set, calibration_record = None, None
    calibrated = any("calibration" in f.arguments for f in chosen)
    if calibrated:
        if isinstance(calibration, CalibrationSet):
            calibration_set = calibration
        elif calibration is not None:
            calibration_set = CalibrationSet.load(calibration, network.validate_input_shape)
        if calibration_set is not None:
            check_calibration(calibration_set, input_shape, network.name)
    if float_fallback:
        check_float_fallback(float_fallback, min_psnr, [layer.name for layer in model.layers])
    level = fidelity.model_level(model)
    tuning = None
    if any(f.name == "qat" for f in chosen):
        options = {
            name.removeprefix("qat_"): value for name, value in qat_options.items() if value is not None
        }
        options.setdefault("patch", min(input_shape))
        try:
            tuning = qat.fine_tuning(
                model_file, level, data=data, seed=seed, shape_rule=network.validate_input_shape, **options
            )
        except qat.QATError as error:
            raise ExportError(str(error)) from None
    items = fidelity.held_out(model, input_shape or DEFAULT_SHAPE, data, seed=seed)
    if calibrated:
        if calibration_set is None:
            calibration_set = default_calibration(input_shape, arch=network.name)
        calibration_record = {
            "path": str(calibration_set.path) if calibration_set.path else None,
            "file_sha256": sidecar.sha256_file(calibration_set.path) if calibration_set.path else None,
            "inputs_sha256": calibration_set.sha256,
            "num": len(calibration_set),
            "shape": list(calibration_set.shape),
            "data": calibration_set.metadata.get("data"),
            "seed": calibration_set.metadata.get("seed"),
            "built": "on the fly (default_calibration)" if calibration_set.path is None else "loaded",
        }
    settings = ExportSettings(
        input_shape=input_shape,
        io=io or "float32",
        calibration=calibration_set,
        float_fallback=float_fallback,
        min_psnr=min_psnr,
        held_out=tuple(items),
        qat=tuning,
    )
    record = runs.level_record(model_file)
    source = {
        "model": str(model_file),
        "sha256": sidecar.sha256_file(model_file),
        "level": level,
        "arch": network.name,
        "base_filters": record.get("base_filters"),
    }
    calibrations = {"qat": tuning and tuning.calibration_record()} | {
        f.name: calibration_record for f in chosen if "calibration" in f.arguments
    }
    stem = file_stem(model_file, level, input_shape)
    out = Path(out)
    results = []
    for export_format in chosen:
        started = time.perf_counter()
        is_int8 = export_format.name == "int8"
        integer = "io" in export_format.arguments
        path = out / f"{stem}{export_format.file_suffix(settings)}"
        try:
            conversion = as_conversion(export_format.convert(model, settings))
            content = conversion.content
            converted = time.perf_counter()
            measured = conversion.fidelity or fidelity.measure(content, items)
        except Exception as error:  # noqa: BLE001 (a converter failure is one format's error, not the run's)
            result = FormatResult(
                export_format.name,
                STATUS_ERROR,
                None,
                None,
                None,
                None,
                time.perf_counter() - started,
                error_summary(error),
            )
        else:
            psnr = measured["vs_float"]["psnr"]
            delta = measured["vs_ground_truth"]["delta_psnr"]
            timing = {
                "convert_s": round(converted - started, 3),
                "fidelity_s": round(time.perf_counter() - converted, 3),
            }
            if min_psnr is not None and not (psnr is not None and psnr >= min_psnr):
                message = f"not written: PSNR vs float {psnr:.2f} dB < --min-psnr {min_psnr:g}"
                if conversion.note:
                    message += f"; {conversion.note}"
                result = FormatResult(
                    export_format.name,
                    STATUS_BELOW,
                    None,
                    len(content),
                    psnr,
                    delta,
                    time.perf_counter() - started,
                    message,
                )
            else:
                side = sidecar.build_sidecar(
                    path,
                    content,
                    export_format={"name": export_format.name, "description": export_format.description},
                    source=source,
                    settings={
                        "input_shape": f"{input_shape[0]}x{input_shape[1]}" if input_shape else "dynamic",
                        "batch_shape": list(settings.batch_shape),
                        "io": settings.io if integer else "float32",
                        "data": data,
                        "seed": seed,
                        "min_psnr": min_psnr,
                        "float_fallback": (list(float_fallback) or None) if is_int8 else None,
                    },
                    calibration=calibrations.get(export_format.name),
                    fidelity=measured,
                    analyses=conversion.sidecar,
                )
                side["timing"] = timing
                atomic.write_bytes(path, content)
                atomic.write_json(sidecar.sidecar_path(path), side)
                result = FormatResult(
                    export_format.name,
                    STATUS_OK,
                    path,
                    len(content),
                    psnr,
                    delta,
                    time.perf_counter() - started,
                    sidecar=side,
                    note=conversion.note,
                )
        results.append(result)
        if report is not None:
            report(result)
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("export.to_tflite", __doc__, script=True)
    add = parser.add_argument
    add_source_arguments(
        parser,
        f"packed HxW, {architectures.size_rules()} as the model's network "
        "is; default 224x224; or 'dynamic' (not with --int8)",
    )
    for export_format in FORMATS.values():
        add(export_format.flag, action="store_true", help=export_format.description)
    add("--format", help=f"comma-separated formats, as the flags: {','.join(FORMATS)}")
    add("--io", help="int8 and qat only: input/output tensor type float32 (default) | uint8 | int8")
    add(
        "--calibration",
        help="int8 and int16x8: calibration set .npz (default: 16 sample crops built on the fly)",
    )
    add(
        "--float-fallback",
        metavar="auto|NAME,...",
        help="int8 only: keep layers in float (not full-integer): 'auto' adds the worst layers of the error "
        "analysis until --min-psnr is reached; or Keras layer names/globs ('*_norm') or tensor names",
    )
    add("--min-psnr", type=float, help="do not write a file whose PSNR vs the float model is below this (dB)")
    add(
        "--qat-steps",
        type=int,
        help=f"qat only: fine-tuning steps (default {qat.DEFAULT_STEPS}; 0: ranges only)",
    )
    add("--qat-targets", help="qat only: distill (fit the float model's outputs; default) | ground-truth")
    add("--qat-lr", type=float, help=f"qat only: Adam learning rate (default {qat.DEFAULT_LR:g})")
    add("--qat-batch", type=int, help=f"qat only: crops per step (default {qat.DEFAULT_BATCH})")
    add("--qat-patch", type=int, help="qat only: packed crop side (default: the export's smaller side)")
    add("--qat-loss", help="qat only: a --loss spec (default: the run's training loss, from its level.json)")
    add("--vgg-weights", help="qat only: VGG-19 weights when the loss has a vgg term (default: the run's)")
    return parser


def ptq_versus_qat(results: Sequence[FormatResult]) -> str | None:
    """One line comparing the PTQ and QAT int8 files' PSNR vs the float model, when both were measured."""
    measured = {r.format: r for r in results if r.psnr_vs_float is not None}
    if not {"int8", "qat"} <= set(measured):
        return None
    ptq, qat_result = measured["int8"], measured["qat"]
    gain = qat_result.psnr_vs_float - ptq.psnr_vs_float
    line = (
        f"int8 PSNR vs float: PTQ {ptq.psnr_vs_float:.2f} dB, QAT {qat_result.psnr_vs_float:.2f} dB "
        f"({gain:+.2f} dB)"
    )
    if ptq.delta_psnr is not None and qat_result.delta_psnr is not None:
        line += f"; ΔPSNR vs ground truth: PTQ {ptq.delta_psnr:+.3f} dB, QAT {qat_result.delta_psnr:+.3f} dB"
    return line


def add_source_arguments(parser: argparse.ArgumentParser, shape_help: str) -> None:
    """The flags every exporter shares: the model, its input shape, the held-out data, the output folder."""
    add = parser.add_argument
    add("--model", help="a .keras file, a level folder or a run folder (default: the newest runs/*/final)")
    add("--input-shape", default=f"{DEFAULT_SHAPE[0]}x{DEFAULT_SHAPE[1]}", help=shape_help)
    add("--data", default="samples", help="held-out inputs for fidelity: the test split of this source")
    add("--seed", type=int, default=0, help="seed of the synthetic RAW of photo sources (default 0)")
    add("-o", "--out", default=str(DEFAULT_OUT), help="output folder (default exported/)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", module="tf_keras")
    names = [f.name for f in FORMATS.values() if getattr(args, f.name)]
    names += [name for name in (args.format or "").split(",") if name.strip()]
    try:
        if args.input_shape.lower() == "dynamic":
            input_shape = None
        else:
            try:
                input_shape = image_size(args.input_shape)
            except argparse.ArgumentTypeError as error:
                raise ExportError(f"--input-shape: {error}, or 'dynamic'") from None
        float_fallback = parse_float_fallback(args.float_fallback) if args.float_fallback is not None else ()
        model = args.model if args.model is not None else runs.newest_run()
        print(settings_summary("export", {**vars(args), "model": str(model), "formats": names}))
        printed: list[FormatResult] = []

        def report(result: FormatResult) -> None:
            if not printed:
                print(HEADER)
            printed.append(result)
            print(result.row(), flush=True)
            for line in result.details():
                print(line, flush=True)

        results = export_model(
            model,
            names,
            out=args.out,
            input_shape=input_shape,
            io=args.io,
            calibration=args.calibration,
            data=args.data,
            seed=args.seed,
            min_psnr=args.min_psnr,
            float_fallback=float_fallback,
            qat_options={name: getattr(args, name) for name in QAT_ARGUMENTS},
            report=report,
        )
        comparison = ptq_versus_qat(results)
        if comparison:
            print(comparison)
    except (ExportError, runs.RunError, CalibrationError, DataSourceError, fidelity.FidelityError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failed = [r for r in results if r.status != STATUS_OK]
    for result in failed:
        print(f"{result.format}: {result.status}: {result.message}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
