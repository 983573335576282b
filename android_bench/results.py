"""The results file ``python -m android_bench.run`` writes: one JSON document per run in ``--out``.

Written atomically after every row (``pynet_tf.atomic``), so an interrupted or failing run leaves a whole
file holding the rows done so far. Named ``<UTC start, YYYYmmddTHHMMSSZ>_<serial | host>.json``.

Schema (``FORMAT``, ``VERSION`` 1)::

    format, version     "pynet-tf benchmark results", 1
    run                 {id, mode ("device" | "host"), started, finished (ISO 8601 UTC; finished null while
                         running), complete (false until every row ran), command (argv of this run),
                         settings: {delegates, threads, warmup, runs, cooldown_s, timeout_s, extra_args
                         (list), cpu_mask, keep, benchmark_binary: {path, name, bytes, sha256} | null,
                         inference_diff_binary: the same | null, inference_diff_runs}}
    device              mode "device": {kind "android", serial, model, manufacturer, brand, device, board,
                         platform (SoC family, ro.board.platform), soc_manufacturer, soc_model, hardware,
                         android_release, sdk, abi, abis, fingerprint, governors {cpuN: governor},
                         thermal_c {zone type: degrees C}, timeout_command (bool: the device has `timeout`)}
                        mode "host": {kind "host", hostname, system, release, machine, processor, cpu_count,
                         cpus_allowed, governors, thermal_c, python, ai_edge_litert, numpy}
                        any fact that could not be read is null (or an empty object)
    rows                one per (model, delegate, threads), in the order run:
      model             {name, path, bytes, size_mb (10^6 bytes, as benchmark_model), sha256}
      sidecar           the exported file's <file>.json (export/sidecar.py) as is, or null; sidecar_error
                        says why when the file exists but is unreadable
      delegate          a --delegates name (cpu = built-in kernels without XNNPACK; xnnpack, gpu, nnapi,
                        hexagon, external = the vendor delegate given by --extra-args)
      threads           --num_threads / LiteRT num_threads
      status, error     "ok" | "error"; error: the tool's own message (or why the row did not run), else null
      command           argv of the benchmark process (on the device: benchmark_model's; host: the child's)
      command_line      device: the exact string given to `adb -s SERIAL shell` (wrappers and quoting
                        included); host: the argv shell-quoted
      extra_args        the --extra-args this row's tool got (list): all but other delegates' own flags
                        (android_bench/device.py DELEGATE_ARG_PREFIXES)
      cpu_mask          the taskset / affinity mask, or null
      timings           {init_ms, first_inference_ms, warmup_avg_ms, warmup_runs, inference_runs,
                         inference_avg_ms, inference_std_ms, inference_min_ms, inference_max_ms,
                         percentiles_ms {"p5", "p50", "p95", ... where printed/measured}}; null on error.
                        Device: benchmark_model's microseconds / 1000 (its warm-up includes the first
                        inference; percentiles only from tools printing them). Host: the same definitions
                        (population std; percentile = sorted[int(n * p / 100)], LiteRT's rule), plus p90, p99
      memory            {init_mb, overall_mb, peak_mb, measure}, in MiB (2^20 bytes; the fields keep
                        their names); measure says what the numbers are (the
                        tool's "Peak memory footprint" (max-RSS growth) or "Memory footprint delta" lines, or
                        the host child's RSS high-water mark); peak_mb only from periodic monitoring (device:
                        --report_peak_memory_footprint=true, passed on every row) or the host's absolute peak
      tool_model_size_mb  the model size the tool printed (10^6 bytes), or null
      tool_version      "Tensorflow Version" where the tool prints it, else null
      coverage          null for cpu; else, from the tool's delegate log lines, {status ("full" | "partial" | "none" | null = not printed),
                         delegate (kernel name), delegated_nodes, total_nodes, cpu_nodes (left to the CPU
                         kernels), partitions, unsupported_ops (the GPU delegate's list)}
      deviation         device runs with --inference-diff-binary, else null: TFLite's inference_diff on this
                        (model, delegate), run once at the pair's first thread count (android_bench/
                        inference_diff.py): {tool, reference, threads, command_line, status, error, runs,
                        reference_avg_ms, reference_std_ms, test_avg_ms, test_std_ms, outputs: [{index,
                        mean_abs, std_over_runs, worst_run_mean_abs (null where the tool does not print
                        it)}]}: each run's mean |output - 1-thread CPU output| on random inputs, in the
                        output's raw values, summarised over the runs
      device_accuracy   device rows of a run without --no-device-accuracy, else null: the export's held-out
                        inputs through this row's delegate and threads on the device, scored here
                        (android_bench/device_accuracy.py): {status ("ok" | "unavailable": no sidecar or
                        float model here | "unsupported": the tool cannot dump outputs | "error"), error,
                        images, psnr_vs_float, ssim_vs_float, max_abs_vs_float, psnr_vs_gt, ssim_vs_gt,
                        ms_ssim_vs_gt, fidelity (export.fidelity.measure's whole record, as the sidecar's)}
      op_profile        device rows of a run with --op-profile, else null: benchmark_model's per-op tables
                        (android_bench/op_profile.py record): {by_type: [{type, count, avg_ms, share}], norm:
                        {avg_ms, share, ops, by_type, delegated_ms, delegated_share}, nodes, total_ms}
      runtime_info      device rows: where each op ran, from the tool's model runtime info
                        (android_bench/runtime_info.py): {status ("ok" | "unsupported": the tool does not know
                        --export_model_runtime_info, placement is the coverage's log lines | "error"), error,
                        subgraph, total_nodes, kernels: [{node, delegate, nodes, ops {type: nodes}}] (each
                        delegate kernel), cpu_ops {type: nodes} (on TFLite's own kernels), delegate: {status,
                        delegated_nodes, outside_ops {type: nodes}} for the row's delegate (null on cpu rows)};
                        null on host rows
      temperature_c     {zone type: degrees C} read just before the row, {} when unreadable
      started, wall_s   ISO start time and seconds the row took (push and cooldown excluded)
      log               the tail of the tool's output (device: stdout+stderr; host: the child's stderr)
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from android_bench.benchmark_output import BenchmarkOutput
from export import sidecar as export_sidecar
from pynet_tf import atomic
from pynet_tf.units import MB

FORMAT = "pynet-tf benchmark results"
VERSION = 1
LOG_TAIL_CHARS = 6000


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def result_path(out_dir: Path, started: float, name: str) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return Path(out_dir) / f"{stamp}_{safe}.json"


def model_record(path: Path) -> dict:
    size = path.stat().st_size
    return {
        "name": path.name,
        "path": str(path.resolve()),
        "bytes": size,
        "size_mb": round(size / MB, 6),
        "sha256": export_sidecar.sha256_file(path),
    }


def load_sidecar(path: Path) -> tuple[dict | None, str | None]:
    """The exported file's sidecar, passed through unchanged; (None, why) when present but unreadable."""
    side = export_sidecar.sidecar_path(path)
    if not side.is_file():
        return None, None
    try:
        return json.loads(side.read_text(encoding="utf-8")), None
    except (OSError, ValueError) as error:
        return None, f"{side.name}: {type(error).__name__}: {error}"


def new_row(
    model: dict,
    sidecar: dict | None,
    sidecar_error: str | None,
    delegate: str,
    threads: int,
    extra_args: list[str],
    cpu_mask: str | None,
) -> dict:
    row = {
        "model": model,
        "sidecar": sidecar,
        "delegate": delegate,
        "threads": threads,
        "status": "error",
        "error": None,
        "command": None,
        "command_line": None,
        "extra_args": list(extra_args),
        "cpu_mask": cpu_mask,
        "timings": None,
        "memory": None,
        "tool_model_size_mb": None,
        "tool_version": None,
        "coverage": None,
        "deviation": None,
        "device_accuracy": None,
        "op_profile": None,
        "runtime_info": None,
        "temperature_c": {},
        "started": utc_now(),
        "wall_s": None,
        "log": "",
    }
    if sidecar_error:
        row["sidecar_error"] = sidecar_error
    return row


def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000.0, 4)


def timings_from_output(out: BenchmarkOutput) -> dict:
    """benchmark_model's microseconds as the schema's milliseconds."""
    measured = out.inference
    return {
        "init_ms": _ms(out.init_us),
        "first_inference_ms": _ms(out.first_inference_us),
        "warmup_avg_ms": _ms(out.warmup_avg_us),
        "warmup_runs": out.warmup.count if out.warmup else None,
        "inference_runs": measured.count if measured else None,
        "inference_avg_ms": _ms(out.inference_avg_us),
        "inference_std_ms": _ms(measured.std_us) if measured else None,
        "inference_min_ms": _ms(measured.min_us) if measured else None,
        "inference_max_ms": _ms(measured.max_us) if measured else None,
        "percentiles_ms": {key: _ms(value) for key, value in measured.percentiles_us.items()}
        if measured
        else {},
    }


MEASURES = {
    "Peak memory footprint": "benchmark_model 'Peak memory footprint': growth of the process's max RSS over "
    "the tool's start, after init and at the end",
    "Memory footprint delta from the start of the tool": "benchmark_model 'Memory footprint delta from the "
    "start of the tool': after init and at the end",
}


def memory_from_output(out: BenchmarkOutput) -> dict | None:
    if out.memory_measure is None and out.peak_memory_mb is None:
        return None
    return {
        "init_mb": out.memory_init_mb,
        "overall_mb": out.memory_overall_mb,
        "peak_mb": out.peak_memory_mb,
        "measure": MEASURES.get(out.memory_measure or "", "benchmark_model periodic peak monitoring"),
    }


def new_document(mode: str, command: list[str], settings: dict, device: dict, started: float) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "run": {
            "id": f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(started))}_{device.get('serial') or mode}",
            "mode": mode,
            "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
            "finished": None,
            "complete": False,
            "command": command,
            "settings": settings,
        },
        "device": device,
        "rows": [],
    }


def save(path: Path, document: dict) -> Path:
    return atomic.write_json(path, document)


def tail(text: str, limit: int = LOG_TAIL_CHARS) -> str:
    return text if len(text) <= limit else text[-limit:]
