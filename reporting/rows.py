"""The report's rows and what follows from them: precision, speed-up, the Pareto front, which file to ship.

One row per results row (model x delegate x threads, per device), flattened to plain JSON values::

    id                 "1", "2", ... in the order of the inputs
    device, device_label   a device key (serial, or host:<hostname>) and a readable name
    results_file, run  the results file and its run id
    file, path, sha256, size_mb   the benchmarked file (size in 10^6 bytes, as benchmark_model)
    input_shape, output_shape   "HxW" of the input and output tensors (sidecar, else the file), or null
    section, section_label   the device and the shapes: rows of one section do the same job on the same
                       device, and only they are compared (Pareto front, which file to ship)
    precision          float32 | fp16 | dynamic | int8 | int16x8 | uint8, or null (file not readable here)
    precision_from     "sidecar" (export_format) | "tensor types" (read off the file) | null
    precision_note     e.g. "uint8 io", "3 layers in float", "QAT 200 steps", "third-party"; null
    source, source_sha256   the float Keras model the file came from (sidecar), or null; for a third-party
                       file (export/third_party.py) null and the original file's sha256
    network            a short name of the network (run folder and architecture, a third-party original's
                       name, else the file's): the Pareto plot's colours when a section holds several
    third_party, channel_order   the original third-party file and the packed channel order it takes
                       (export/third_party.py's sidecar), else null
    held_out_data, held_out_seed   the sidecar's --data and --seed: where its fidelity inputs came from
    delegate, threads, status, error, coverage ("full" | "partial 12/15 nodes" | ...)
    init_ms, mean_ms, median_ms (p50), p95_ms, std_ms, runs   p95: the tail that both benchmark_model
                       (LiteRT's p5/median/p95, where its build prints them) and --host report
    peak_mb, growth_mb, memory_measure    results' memory.peak_mb, memory.overall_mb and what they measure
    psnr_vs_float, ssim_vs_float, ms_ssim_vs_float, psnr_vs_gt, ssim_vs_gt, ms_ssim_vs_gt, float_psnr_vs_gt,
    delta_psnr_vs_gt, fidelity_images   the sidecar's fidelity (means over the held-out images); null
                       without a sidecar (MS-SSIM also for sidecars written before it was measured)
    classical_isp, classical_isp_psnr_vs_gt, classical_isp_ssim_vs_gt, classical_isp_ms_ssim_vs_gt   which
                       classical ISP ran on the file's held-out inputs (its label, e.g. "classical ISP (oracle
                       metadata)") and its scores there (the sidecar's fidelity, from version 5); else null
    psnr_vs_classical_isp, not_working_isp   psnr_vs_gt minus the classical ISP's, and whether that is
                       -NOT_WORKING_ISP_DB or less ("not a working ISP"); null where either is unknown
    accuracy_note      why the accuracy columns are empty, or null
    device_psnr_vs_float, device_ssim_vs_float, device_psnr_vs_gt, device_ssim_vs_gt, device_images   the
                       row's own accuracy on the device (results' device_accuracy: the held-out inputs through
                       its delegate on the phone); device_accuracy_note why it is missing; device_drop_db and
                       device_drop: host PSNR vs float minus the device's, and whether that exceeds
                       DEVICE_DROP_DB; ship_psnr_vs_float, ship_psnr_from: the device's figure where measured,
                       else the host's, what the ship choice compares with --min-psnr
    top_ops, norm_share, norm_ms   the row's op profile (--op-profile phone runs): its TOP_OPS op types by
                       time with their shares, and the instance norms' share and ms per run; null without one
    predicted_coverage, placement_mismatch, placement_note, placement_from   what the sidecar's delegate
                       tables predicted for this delegate (full | partial | none), whether the phone differs,
                       and both sides' unsupported ops when it does; from the tool's runtime info where the
                       row has it ("runtime info": the op types off the delegate, node by node, so the note
                       names those the two sides disagree on), else from its delegate log lines ("log
                       lines": full, partial or none); null where either side is unknown (cpu rows, no
                       sidecar)
    device_diff_mean_abs, device_diff_worst_run, device_diff_error   the row's on-device inference_diff
                       (results' deviation): mean |output - the phone's 1-thread CPU output| over its runs,
                       the worst run's (where the tool writes it), or why it failed; null without one
    speedup_vs_fp32, fp32_row   float32 sibling's mean / this mean (same source model, input shape, device,
                       delegate, threads) and that row's id; null when there is none
    pareto             true on the device's latency/PSNR Pareto front, false off it, null when not plotted
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from pynet_tf import runs
from reporting.inputs import Inputs

FLOAT32 = "float32"
THIRD_PARTY = "third_party"
"""The sidecar format name of export/third_party.py's files (a third-party network at our input shape)."""
PRECISIONS = ("float32", "fp16", "dynamic", "int16x8", "int8", "uint8")
"""Display order (widest first)."""
TOP_OPS = 3
"""Op types a row's profile shows in the report, the slowest first."""
DEVICE_DROP_DB = 1.0
"""A delegate whose on-device PSNR vs the float model is this far (or farther) below the host's for the same
file computes something else than the host's kernels (fp16 arithmetic, an NPU's own int8 kernels): flagged."""
NOT_WORKING_ISP_DB = 6.0
"""A file whose PSNR vs ground truth is this far (or farther) below the classical ISP's on the same inputs is
"not a working ISP": twice its RMS error, far beyond what a rerun moves (about a dB on two held-out images)."""


def device_identity(document: dict) -> tuple[str, str]:
    """(key, label) of the machine a results file was measured on."""
    device = document.get("device") or {}
    if device.get("kind") == "host":
        cpus = f", {device['cpu_count']} CPUs" if device.get("cpu_count") else ""
        return (
            f"host:{device.get('hostname')}",
            f"host {device.get('hostname')} ({device.get('processor')}{cpus})",
        )
    name = " ".join(str(part) for part in (device.get("manufacturer"), device.get("model")) if part)
    details = [
        device.get("soc_model") or device.get("platform"),
        f"Android {device['android_release']}" if device.get("android_release") else None,
        f"serial {device.get('serial')}",
    ]
    return str(device.get("serial")), f"{name or 'Android device'} ({', '.join(d for d in details if d)})"


def _hw(shape) -> str | None:
    return f"{shape[1]}x{shape[2]}" if shape is not None and len(shape) == 4 else None


def tflite_facts(path: str | Path) -> tuple[str | None, str | None, str | None]:
    """(precision, input "HxW", output "HxW") read off a .tflite file's tensors; Nones when it cannot be read.

    Activations are the outputs of ops other than (DE)QUANTIZE: 8-bit quantized -> int8 / uint8, 16-bit ->
    int16x8. Float activations: float16 weights -> fp16, 8-bit weights (inputs no op produces) -> dynamic,
    else float32.
    """
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path))
    except (ValueError, RuntimeError, OSError):
        return None, None, None
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    produced = {int(i) for op in ops for i in op["outputs"]}
    graph_inputs = {d["index"] for d in interpreter.get_input_details()}

    def dtypes(indices) -> Counter:
        return Counter(np.dtype(tensors[i]["dtype"]).name for i in indices if i in tensors)

    activations = dtypes(
        int(i) for op in ops if op["op_name"] not in ("QUANTIZE", "DEQUANTIZE") for i in op["outputs"]
    )
    weights = dtypes(
        int(i) for op in ops for i in op["inputs"] if int(i) >= 0 and int(i) not in produced | graph_inputs
    )
    if activations["int8"] or activations["uint8"]:
        precision = "int8" if activations["int8"] >= activations["uint8"] else "uint8"
    elif activations["int16"]:
        precision = "int16x8"
    elif weights["float16"]:
        precision = "fp16"
    elif weights["int8"]:
        precision = "dynamic"
    else:
        precision = FLOAT32
    return (
        precision,
        _hw(interpreter.get_input_details()[0]["shape"]),
        _hw(interpreter.get_output_details()[0]["shape"]),
    )


def _sidecar(row: dict) -> tuple[dict | None, str | None]:
    """The row's sidecar if it describes the benchmarked file, else (None, why the accuracy is unknown)."""
    side = row.get("sidecar")
    if row.get("sidecar_error"):
        return None, f"sidecar unreadable: {row['sidecar_error']}"
    if side is None:
        return None, "no sidecar (a third-party file?): no float model to compare with"
    if (side.get("file") or {}).get("sha256") != row["model"].get("sha256"):
        return None, "the sidecar beside the file describes another file (sha256 differs): re-export"
    return side, None


def _precision(side: dict) -> tuple[str | None, str | None]:
    """(precision, note) from an export sidecar; a QAT file is int8, noted with its fine-tuning."""
    name = (side.get("export_format") or {}).get("name")
    notes = []
    tuning = side.get("qat")
    if name == "qat":
        name = "int8"
        notes.append(f"QAT {tuning['steps']} steps" if tuning else "QAT")
    io = (side.get("settings") or {}).get("io")
    if io and io != FLOAT32:
        notes.append(f"{io} io")
    fallback = side.get("float_fallback")
    if fallback:
        notes.append(f"{len(fallback.get('layers') or [])} layers in float")
    return name, ", ".join(notes) or None


def _fidelity(side: dict | None) -> dict:
    fidelity = (side or {}).get("fidelity") or {}
    versus_float = fidelity.get("vs_float") or {}
    truth = fidelity.get("vs_ground_truth") or {}
    file_truth = truth.get("file") or {}
    return {
        "psnr_vs_float": versus_float.get("psnr"),
        "ssim_vs_float": versus_float.get("ssim"),
        "ms_ssim_vs_float": versus_float.get("ms_ssim"),
        "psnr_vs_gt": file_truth.get("psnr"),
        "ssim_vs_gt": file_truth.get("ssim"),
        "ms_ssim_vs_gt": file_truth.get("ms_ssim"),
        "float_psnr_vs_gt": (truth.get("float") or {}).get("psnr"),
        "delta_psnr_vs_gt": truth.get("delta_psnr"),
        "fidelity_images": fidelity.get("images"),
        **_classical_isp(fidelity),
    }


def _classical_isp(fidelity: dict) -> dict:
    """The classical ISP's label and scores on the file's held-out inputs; Nones for sidecars before version 5
    (or without ground truth), and whether the file is far below it (``NOT_WORKING_ISP_DB``)."""
    truth = fidelity.get("vs_ground_truth") or {}
    scores = truth.get("classical_isp") or {}
    psnr, reference = (truth.get("file") or {}).get("psnr"), scores.get("psnr")
    delta = psnr - reference if None not in (psnr, reference) else None
    return {
        "classical_isp": (fidelity.get("classical_isp") or {}).get("label"),
        "classical_isp_psnr_vs_gt": reference,
        "classical_isp_ssim_vs_gt": scores.get("ssim"),
        "classical_isp_ms_ssim_vs_gt": scores.get("ms_ssim"),
        "psnr_vs_classical_isp": delta,
        "not_working_isp": None if delta is None else bool(delta <= -NOT_WORKING_ISP_DB),
    }


def _device_accuracy(row: dict, host_psnr: float | None) -> dict:
    """The row's own on-device scores (results' ``device_accuracy``), whether they fall more than
    ``DEVICE_DROP_DB`` below the host's, and the PSNR vs float the ship choice uses: the device's when
    measured, else the host's (the sidecar's)."""
    measured = row.get("device_accuracy") or {}
    ok = measured.get("status") == "ok"
    device_psnr = measured.get("psnr_vs_float") if ok else None
    drop = host_psnr - device_psnr if None not in (host_psnr, device_psnr) else None
    return {
        "device_psnr_vs_float": device_psnr,
        "device_ssim_vs_float": measured.get("ssim_vs_float") if ok else None,
        "device_psnr_vs_gt": measured.get("psnr_vs_gt") if ok else None,
        "device_ssim_vs_gt": measured.get("ssim_vs_gt") if ok else None,
        "device_images": measured.get("images") if ok else None,
        "device_accuracy_note": None
        if ok or not measured
        else f"{measured['status']}: {measured.get('error')}",
        "device_drop_db": drop,
        "device_drop": None if drop is None else bool(drop > DEVICE_DROP_DB),
        "ship_psnr_vs_float": device_psnr if device_psnr is not None else host_psnr,
        "ship_psnr_from": "device"
        if device_psnr is not None
        else ("host" if host_psnr is not None else None),
    }


def _op_profile(row: dict) -> dict:
    """The row's per-op profile (results' ``op_profile``): its top op types and the instance norms' share."""
    profile = row.get("op_profile")
    if not profile:
        return {"top_ops": None, "norm_share": None, "norm_ms": None}
    ranked = sorted(profile["by_type"], key=lambda stat: -stat["avg_ms"])[:TOP_OPS]
    return {
        "top_ops": ", ".join(f"{stat['type']} {100 * stat['share']:.0f}%" for stat in ranked),
        "norm_share": profile["norm"]["share"],
        "norm_ms": profile["norm"]["avg_ms"],
    }


def _placement(row: dict, side: dict | None) -> dict:
    """Where the phone ran the graph against where the export's op tables said the delegate would (the
    sidecar's ``delegates``, ``export/delegates.py``): the tables are kept by hand and can drift from the real
    delegates, so a disagreement is shown. The tool's runtime info (results' ``runtime_info``) says which op
    types, how many nodes of each, stayed off the delegate: a type whose count differs from the tables'
    refusals is a disagreement, named. Without it (a tool too old), the delegate log lines' full / partial /
    none is compared, with both sides' unsupported ops."""
    predicted = ((side or {}).get("delegates") or {}).get(row["delegate"]) or {}
    expected = predicted.get("supported")
    info = row.get("runtime_info") or {}
    placed = info.get("delegate") if info.get("status") == "ok" else None
    if placed is None:
        ran = (row.get("coverage") or {}).get("status")
        mismatch = None if None in (ran, expected) else ran != expected
        note = (
            f"the export's op tables predicted {expected} ({_ops(predicted.get('unsupported_ops'))} "
            f"unsupported), the tool ran {ran} ({_ops((row.get('coverage') or {}).get('unsupported_ops'))} "
            "unsupported)"
        )
        source = "log lines" if ran is not None else None
    else:
        ran, refused, outside = (
            placed["status"],
            predicted.get("unsupported_ops") or {},
            placed["outside_ops"],
        )
        disagree = [
            f"{op} ({refused.get(op, 0)} refused, {outside.get(op, 0)} off it)"
            for op in sorted({*refused, *outside})
            if refused.get(op, 0) != outside.get(op, 0)
        ]
        mismatch = None if expected is None else bool(disagree) or ran != expected
        note = (
            f"the export's op tables predicted {expected} ({_ops(refused)} unsupported), the runtime info has "
            f"the delegate run {ran} ({_ops(outside)} off it)"
            + (f": they disagree on {', '.join(disagree)}" if disagree else "")
        )
        source = "runtime info"
    return {
        "predicted_coverage": expected,
        "placement_mismatch": mismatch,
        "placement_note": note if mismatch else None,
        "placement_from": source if expected is not None else None,
    }


def _ops(ops: dict | list | None) -> str:
    """``RSQRT x4, MEAN x2``, or ``no ops`` / ``unlisted ops``."""
    if ops is None:
        return "unlisted ops"
    if isinstance(ops, dict):
        return ", ".join(f"{op} x{count}" for op, count in ops.items()) or "no ops"
    return ", ".join(map(str, ops)) or "no ops"


def _coverage(row: dict) -> str | None:
    cov = row.get("coverage")
    if not cov or not cov.get("status"):
        return None
    nodes = cov.get("delegated_nodes"), cov.get("total_nodes")
    return cov["status"] + (f" {nodes[0]}/{nodes[1]} nodes" if None not in nodes else "")


def _deviation(row: dict) -> dict:
    """The first output's on-device inference_diff figures (our networks have one output)."""
    record = row.get("deviation") or {}
    first = (record.get("outputs") or [{}])[0]
    return {
        "device_diff_mean_abs": first.get("mean_abs"),
        "device_diff_worst_run": first.get("worst_run_mean_abs"),
        "device_diff_error": record.get("error"),
    }


def network_name(file: str | None, source: dict, third_party: bool) -> str:
    """A short name for the network a file computes, to tell networks apart on one chart: a third-party
    original's file stem, our run's folder name with its architecture (``runs/NAME/level_K/model.keras`` or
    ``runs/NAME/final/model.keras``: "NAME (mobile)"), else the source model's or the file's own stem."""
    if third_party and source.get("third_party"):
        return Path(source["third_party"]).stem
    model = Path(source["model"]) if source.get("model") else None
    if model is None:
        return Path(file or "?").stem
    run = runs.run_of(model)
    name = run.name if run else model.stem
    return f"{name} ({source['arch']})" if source.get("arch") else name


def flatten(inputs: Inputs) -> list[dict]:
    """Every results row as a report row (see the module's docstring), speed-ups filled in."""
    rows, facts = [], {}
    for results_file in inputs.files:
        document = results_file.document
        device, label = device_identity(document)
        for row in document["rows"]:
            model = row["model"]
            side, accuracy_note = _sidecar(row)
            third_party = (side or {}).get("export_format", {}).get("name") == THIRD_PARTY
            if side is not None:
                (precision, note), origin = _precision(side), "sidecar"
                shape, output = (
                    _hw((side.get(key) or [{}])[0].get("shape")) for key in ("inputs", "outputs")
                )
                if third_party:  # export/third_party.py: its precision is the file's own
                    if model["path"] not in facts:
                        facts[model["path"]] = tflite_facts(model["path"])
                    precision, origin, note = facts[model["path"]][0], "tensor types", "third-party"
            else:
                if model["path"] not in facts:
                    facts[model["path"]] = tflite_facts(model["path"])
                (precision, shape, output), note = facts[model["path"]], None
                origin = "tensor types" if precision else None
                if precision is None:
                    note = "file not readable here: precision unknown"
            timings, memory = row.get("timings") or {}, row.get("memory") or {}
            percentiles = timings.get("percentiles_ms") or {}
            source, settings = (side or {}).get("source") or {}, (side or {}).get("settings") or {}
            fidelity = _fidelity(side)
            if third_party:
                accuracy_note = "a third-party file: scored against the ground truth only (no float model)"
            elif side is not None and fidelity["psnr_vs_float"] is None:
                accuracy_note = "the sidecar holds no fidelity measurement"
            rows.append(
                {
                    "id": str(len(rows) + 1),
                    "device": device,
                    "device_label": label,
                    "results_file": str(results_file.path),
                    "run": document["run"].get("id"),
                    "file": model.get("name"),
                    "path": model.get("path"),
                    "sha256": model.get("sha256"),
                    "size_mb": model.get("size_mb"),
                    "input_shape": shape,
                    "output_shape": output,
                    "section": f"{device} {shape or '?'}->{output or '?'}",
                    "section_label": f"{label}: {shape or '?'} input -> {output or '?'} output",
                    "precision": precision,
                    "precision_from": origin,
                    "precision_note": note,
                    "source": source.get("model"),
                    "source_sha256": source.get("sha256"),
                    "network": network_name(model.get("name"), source, third_party),
                    "third_party": source.get("third_party"),
                    "channel_order": settings.get("channel_order"),
                    "held_out_data": settings.get("data"),
                    "held_out_seed": settings.get("seed"),
                    "delegate": row["delegate"],
                    "threads": row["threads"],
                    "status": row["status"],
                    "error": row.get("error"),
                    "coverage": _coverage(row),
                    "init_ms": timings.get("init_ms"),
                    "mean_ms": timings.get("inference_avg_ms"),
                    "median_ms": percentiles.get("p50"),
                    "p95_ms": percentiles.get("p95"),
                    "std_ms": timings.get("inference_std_ms"),
                    "runs": timings.get("inference_runs"),
                    "peak_mb": memory.get("peak_mb"),
                    "growth_mb": memory.get("overall_mb"),
                    "memory_measure": memory.get("measure"),
                    **fidelity,
                    "accuracy_note": accuracy_note,
                    **_deviation(row),
                    **_device_accuracy(row, fidelity["psnr_vs_float"]),
                    **_placement(row, side),
                    **_op_profile(row),
                    "speedup_vs_fp32": None,
                    "fp32_row": None,
                    "pareto": None,
                }
            )
    _speedups(rows)
    return rows


def _ok(row: dict) -> bool:
    return row["status"] == "ok" and row["mean_ms"] is not None


def _speedups(rows: list[dict]) -> None:
    """speedup_vs_fp32 = the float32 file's mean / this row's mean, for files of the same source and shape."""

    def key(row: dict) -> tuple:
        return row["device"], row["source_sha256"], row["input_shape"], row["delegate"], row["threads"]

    baselines: dict[tuple, dict] = {}
    for row in rows:
        if (
            _ok(row)
            and row["source_sha256"]
            and row["precision"] == FLOAT32
            and row["precision_from"] == "sidecar"
        ):
            baselines.setdefault(key(row), row)
    for row in rows:
        base = baselines.get(key(row)) if row["source_sha256"] and _ok(row) else None
        if base is not None:
            row["speedup_vs_fp32"], row["fp32_row"] = base["mean_ms"] / row["mean_ms"], base["id"]


def pareto_front(points: dict[str, tuple[float, float]]) -> set[str]:
    """Keys of the points no other point dominates: (latency, quality), lower latency and higher quality
    better; a point is dominated when another is at least as good in both and strictly better in one."""
    front = set()
    for key, (latency, quality) in points.items():
        dominated = any(
            other_latency <= latency
            and other_quality >= quality
            and (other_latency < latency or other_quality > quality)
            for other, (other_latency, other_quality) in points.items()
            if other != key
        )
        if not dominated:
            front.add(key)
    return front


def quality_metric(rows: list[dict]) -> str:
    """psnr_vs_gt when every row with an accuracy has one, else psnr_vs_float."""
    measured = [row for row in rows if row["psnr_vs_float"] is not None or row["psnr_vs_gt"] is not None]
    return (
        "psnr_vs_gt"
        if measured and all(row["psnr_vs_gt"] is not None for row in measured)
        else "psnr_vs_float"
    )


def sections(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows by section, in order of first appearance."""
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["section"], []).append(row)
    return grouped


def mark_pareto(rows: list[dict]) -> dict[str, dict]:
    """Per section: {metric, points (row ids plotted), front (row ids)}; sets each row's ``pareto``."""
    fronts = {}
    for section, members in sections(rows).items():
        metric = quality_metric(members)
        points = {
            row["id"]: (row["mean_ms"], row[metric])
            for row in members
            if _ok(row) and row[metric] is not None
        }
        front = pareto_front(points)
        for row in members:
            row["pareto"] = (row["id"] in front) if row["id"] in points else None
        fronts[section] = {
            "metric": metric,
            "points": list(points),
            "front": [i for i in points if i in front],
        }
    return fronts


REFERENCE_KEYS = (
    "held_out_data",
    "held_out_seed",
    "fidelity_images",
    "classical_isp",
    "classical_isp_psnr_vs_gt",
    "classical_isp_ssim_vs_gt",
    "classical_isp_ms_ssim_vs_gt",
)
"""What tells one set of held-out inputs' classical ISP from another's within a section."""


def references(rows: list[dict]) -> dict[str, list[dict]]:
    """Per section: the classical ISP on the held-out inputs its files were scored on, one entry per distinct
    set (--data, --seed, images, which classical ISP ran; normally one): {label, held_out_data,
    held_out_seed, images, psnr_vs_gt, ssim_vs_gt, ms_ssim_vs_gt, rows (ids scored on those inputs)}. A
    section whose sidecars predate the classical ISP (version < 5) has none."""
    found: dict[str, dict[tuple, dict]] = {}
    for section, members in sections(rows).items():
        entries = found.setdefault(section, {})
        for row in members:
            if row["classical_isp"] is None:
                continue
            key = tuple(row[name] for name in REFERENCE_KEYS)
            entry = entries.setdefault(
                key,
                {
                    "label": row["classical_isp"],
                    "held_out_data": row["held_out_data"],
                    "held_out_seed": row["held_out_seed"],
                    "images": row["fidelity_images"],
                    "psnr_vs_gt": row["classical_isp_psnr_vs_gt"],
                    "ssim_vs_gt": row["classical_isp_ssim_vs_gt"],
                    "ms_ssim_vs_gt": row["classical_isp_ms_ssim_vs_gt"],
                    "rows": [],
                },
            )
            entry["rows"].append(row["id"])
    return {section: list(entries.values()) for section, entries in found.items()}


def _describe(row: dict) -> str:
    return (
        f"#{row['id']} {row['file']} ({row['delegate']}, {row['threads']} threads, {row['mean_ms']:.1f} ms)"
    )


def ship(rows: list[dict], min_psnr: float) -> list[dict]:
    """Per section, overall ("delegate" null) and per delegate: the fastest ok row whose PSNR vs the float
    model is at least ``min_psnr`` (dB), or none with the reason.

    Among those, rows flagged "not a working ISP" (``NOT_WORKING_ISP_DB`` below the classical ISP) are chosen
    only when no other row reaches the bar: a user ships an ISP, and a faster file that renders worse than the
    classical pipeline is no candidate. When every row at the bar is flagged, the fastest is still named (the
    precision and delegate to use once the network works), with ``not_working_isp`` true for the report to say
    so first.
    """
    choices = []
    for section, members in sections(rows).items():
        delegates = list(dict.fromkeys(row["delegate"] for row in members))
        for delegate in [None, *delegates]:
            ran = [row for row in members if _ok(row) and delegate in (None, row["delegate"])]
            choices.append({"section": section, "delegate": delegate, **_choose(ran, min_psnr)})
    return choices


def _choose(ran: list[dict], min_psnr: float) -> dict:
    """One ship choice among the ok rows ``ran`` (see ``ship``): the row's id and facts, and why."""
    eligible = [
        row for row in ran if row["ship_psnr_vs_float"] is not None and row["ship_psnr_vs_float"] >= min_psnr
    ]
    working = [row for row in eligible if not row["not_working_isp"]]
    best = min(working or eligible, key=lambda row: row["mean_ms"], default=None)
    if best is not None:
        why = f"fastest of {len(working or eligible)} ok rows at >= {min_psnr:g} dB PSNR vs the float model"
        if best["ship_psnr_from"] == "device":
            why += " (its own, measured on the device)"
        passed = [row for row in eligible if row not in working and row["mean_ms"] < best["mean_ms"]]
        if passed:
            why += f"; {len(passed)} faster rows at the bar are not working ISPs"
        elif best["not_working_isp"]:
            why += "; none of them is a working ISP"
    elif not ran:
        why = "no row ran"
    else:
        unknown = sum(row["ship_psnr_vs_float"] is None for row in ran)
        fastest = min(ran, key=lambda row: row["mean_ms"])
        why = (
            f"no row reaches {min_psnr:g} dB vs the float model ({len(ran) - unknown} below, "
            f"{unknown} with unknown accuracy); fastest ok row: {_describe(fastest)}"
        )
    keys = (
        "file",
        "threads",
        "mean_ms",
        "psnr_vs_float",
        "device_psnr_vs_float",
        "ship_psnr_vs_float",
        "ship_psnr_from",
        "psnr_vs_gt",
        "fidelity_images",
        "classical_isp",
        "classical_isp_psnr_vs_gt",
        "psnr_vs_classical_isp",
        "not_working_isp",
    )
    return {"row": best["id"] if best else None, **{key: (best or {}).get(key) for key in keys}, "why": why}
