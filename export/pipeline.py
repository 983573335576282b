"""Export a trained model to TFLite and ONNX formats: load it, check every argument, calibrate, convert each
format, score it on held-out inputs, write the file and its sidecar (``export_model``). ``export/to_tflite.py``
and ``export/to_onnx.py`` are its command lines."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from calibration.calibration_set import CalibrationSet
from calibration.crops import default_calibration
from export import fidelity, qat, sidecar
from export.formats import (
    DEFAULT_SHAPE,
    QAT_ARGUMENTS,
    STATUS_OK,
    ExportError,
    ExportFormat,
    ExportSettings,
    as_conversion,
    check_calibration,
    check_float_fallback,
    check_opset,
    validate,
)
from export.results import DEFAULT_OUT, FormatResult, load_source, timing
from pynet_tf import atomic


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
    opset: int | None = None,
    max_abs_error: float | None = None,
    report=None,
) -> list[FormatResult]:
    """Convert the model at ``model_path`` to each of ``formats`` (names in ``FORMATS``) and write those that
    pass ``min_psnr`` into ``out`` with their sidecars; returns one result per format, in registry order.

    ``io`` applies to int8 and qat, ``calibration`` to int8 and int16x8, ``float_fallback`` to int8,
    ``opset`` and ``max_abs_error`` to onnx (None: their defaults)
    (calibration: a path, a loaded set, or None: ``default_calibration`` built on the fly from the samples; float_fallback: names as
    ``parse_float_fallback`` returns them, ``("auto",)`` with ``min_psnr``). ``qat_options``: the qat format's
    arguments by their ``QAT_ARGUMENTS`` names (``{"qat_steps": 50}``; the patch defaults to the export's smaller
    side, the loss to the run's). ``report`` (callable) gets each
    result as it is done. Bad arguments raise ``ExportError`` (or ``RunError``, ``CalibrationError``,
    ``DataSourceError``) before any conversion.
    """
    out = atomic.check_output(out)
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
            ("opset", opset),
            ("max_abs_error", max_abs_error),
        )
        if value is not None
    ]
    given += [name for name, value in qat_options.items() if value is not None]
    loaded = load_source(model_path)
    model_file, model, network, level = loaded.file, loaded.model, loaded.network, loaded.level
    chosen: list[ExportFormat] = validate(
        formats, input_shape=input_shape, given=given, check_shape=network.validate_input_shape
    )
    if io is not None and io not in ("float32", "uint8", "int8"):
        raise ExportError(f"--io must be float32, uint8 or int8, got {io!r}")
    if opset is not None:
        check_opset(opset)
    if max_abs_error is not None and not max_abs_error > 0:
        raise ExportError(f"--max-abs-error must be positive, got {max_abs_error:g}")
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
    tuning = None
    if any(f.name == "qat" for f in chosen):
        options = {
            name.removeprefix("qat_"): value for name, value in qat_options.items() if value is not None
        }
        options.setdefault("patch", min(input_shape))
        try:
            tuning = qat.plan_fine_tuning(
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
        **{
            name: value
            for name, value in (("opset", opset), ("max_abs_error", max_abs_error))
            if value is not None
        },
    )
    source = loaded.record()
    calibrations = {"qat": tuning and tuning.calibration_record()} | {
        f.name: calibration_record for f in chosen if "calibration" in f.arguments
    }
    stem = loaded.file_stem(input_shape)
    results = []
    for export_format in chosen:
        started = time.perf_counter()
        kind = export_format.kind
        integer = "io" in export_format.arguments
        path = out / f"{stem}{export_format.file_suffix(settings)}"
        try:
            conversion = as_conversion(export_format.convert(model, settings))
            content = conversion.content
            converted = time.perf_counter()
            measured = conversion.fidelity or fidelity.measure(content, items, runner=kind.runner)
        except Exception as error:  # noqa: BLE001 (a converter failure is one format's error, not the run's)
            result = FormatResult.failed(export_format.name, started, error)
        else:
            scores = {
                "psnr_vs_float": measured["vs_float"]["psnr"],
                "delta_psnr": measured["vs_ground_truth"]["delta_psnr"],
                "max_abs": measured["vs_float"]["max_abs"],
            }
            refused = kind.gate(measured, settings)
            if refused is not None:
                message = f"{refused}; {conversion.note}" if conversion.note else refused
                result = FormatResult(
                    export_format.name,
                    kind.refused,
                    None,
                    len(content),
                    seconds=time.perf_counter() - started,
                    message=message,
                    **scores,
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
                        **kind.settings(export_format, settings),
                    },
                    calibration=calibrations.get(export_format.name),
                    fidelity=measured,
                    describer=kind.describer,
                    packages=kind.packages,
                    analyses=conversion.sidecar,
                )
                side["timing"] = timing(started, converted)
                atomic.write_bytes(path, content)
                atomic.write_json(sidecar.sidecar_path(path), side)
                result = FormatResult(
                    export_format.name,
                    STATUS_OK,
                    path,
                    len(content),
                    seconds=time.perf_counter() - started,
                    sidecar=side,
                    note=conversion.note,
                    **scores,
                )
        results.append(result)
        if report is not None:
            report(result)
    return results


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
