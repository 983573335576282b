"""Benchmark a .tflite file on this machine through LiteRT, the way benchmark_model does on a phone.

    python -m android_bench.host MODEL.tflite --delegate xnnpack --threads 4 --warmup 1 --runs 20

prints one JSON object (``measure``'s result). ``python -m android_bench.run --host`` runs this once per
(model, delegate, threads) in a fresh child process, for two reasons:

- **Peak memory is native memory.** LiteRT's tensor arena, the delegate's packed weights and the output
  buffers are allocated in C++, where ``tracemalloc`` (Python allocations only) sees nothing. What is real is
  the process's resident-set high-water mark (VmHWM; ``getrusage().ru_maxrss`` elsewhere). It
  only ever grows, so each combination needs a process of its own: its baseline after the imports, the
  growth after init and after the runs (benchmark_model's "init" and "overall"), and the absolute peak.
  On Linux it is read from ``/proc/self/status`` (VmHWM), not ``ru_maxrss``, which survives exec and so
  carries the parent's peak into the child (see ``peak_rss_kb``).
- **Isolation.** A crash or hang in one combination is that row's error (the child's stderr or a timeout);
  the rest still run.

Delegates: ``cpu`` is LiteRT's built-in kernels without the default delegate
(``BUILTIN_WITHOUT_DEFAULT_DELEGATES``), ``xnnpack`` the default resolver, which applies XNNPACK. How much of
the graph XNNPACK took is read off the interpreter: each ``DELEGATE`` node replaces the original nodes
between its input and output tensors. Timing follows benchmark_model: init = interpreter construction +
``allocate_tensors``; inputs are filled once with seeded random values; the first inference is the first
warm-up run (or the first measured run without warm-up).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HOST_DELEGATES = ("cpu", "xnnpack")
PERCENTILES = (5, 50, 90, 95, 99)


class HostBenchmarkError(Exception):
    """The model cannot be benchmarked as it is (e.g. a dynamic input shape)."""


def peak_rss_kb() -> float | None:
    """This process's resident-set high-water mark in KiB: Linux's VmHWM, else ``ru_maxrss``.

    Not ``ru_maxrss`` on Linux: the kernel keeps it across fork and exec (``signal->maxrss`` takes the old
    address space's peak), so a child started by a big parent (pytest with TensorFlow loaded: ~1 GB) would
    report the parent's peak. VmHWM belongs to the address space exec creates.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1])
    except OSError:
        pass
    try:
        import resource  # POSIX only
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform == "darwin" else float(peak)


def percentile(values: list[float], p: float) -> float:
    """LiteRT's StatWithPercentiles rule (tflite/tools/benchmark): the sorted value at index n * p / 100."""
    ordered = sorted(values)
    return ordered[-1] if p >= 100 else ordered[int(len(ordered) * p / 100)]


def delegated_nodes(interpreter) -> dict:
    """Nodes replaced by delegate kernels: walk back from each DELEGATE node's outputs to its inputs."""
    ops = {
        op["index"]: op for op in interpreter._get_ops_details()
    }  # LiteRT's only op listing (as sidecar.py)
    kernels = [op for op in ops.values() if op["op_name"] == "DELEGATE"]
    original = {index: op for index, op in ops.items() if op["op_name"] != "DELEGATE"}
    producer = {int(t): index for index, op in original.items() for t in op["outputs"]}
    covered: set[int] = set()
    for kernel in kernels:
        boundary = {int(t) for t in kernel["inputs"]}
        pending, seen = [int(t) for t in kernel["outputs"]], set()
        while pending:
            tensor = pending.pop()
            if tensor in boundary or tensor in seen or tensor < 0:
                continue
            seen.add(tensor)
            node = producer.get(tensor)
            if node is not None and node not in covered:
                covered.add(node)
                pending.extend(int(t) for t in original[node]["inputs"])
    return {"delegated": len(covered), "total": len(original), "partitions": len(kernels)}


def _fill_inputs(interpreter, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for detail in interpreter.get_input_details():
        signature = [int(s) for s in detail.get("shape_signature", detail["shape"])]
        if any(s < 0 for s in signature):
            raise HostBenchmarkError(
                f"input {detail['name']!r} has a dynamic shape {signature}; benchmark a file exported with a "
                "fixed size (export/to_tflite.py --input-shape HxW)"
            )
        dtype = np.dtype(detail["dtype"])
        if dtype.kind == "f":
            value = rng.random(detail["shape"], dtype=np.float32).astype(dtype)
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            value = rng.integers(info.min, info.max, detail["shape"], dtype=dtype, endpoint=True)
        else:
            value = rng.integers(0, 2, detail["shape"]).astype(dtype)
        interpreter.set_tensor(detail["index"], value)


def measure(model: str | Path, delegate: str, threads: int, warmup: int, runs: int) -> dict:
    """Benchmark ``model`` in this process; microseconds and KiB (see the module's docstring)."""
    from ai_edge_litert.interpreter import (  # imported here: counted in the baseline
        Interpreter,
        OpResolverType,
    )

    if delegate not in HOST_DELEGATES:
        raise HostBenchmarkError(
            f"delegate {delegate!r} is not available on the host ({', '.join(HOST_DELEGATES)})"
        )
    resolver = (
        OpResolverType.BUILTIN if delegate == "xnnpack" else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    baseline = peak_rss_kb()
    started = time.perf_counter()
    interpreter = Interpreter(
        model_path=str(model), num_threads=threads, experimental_op_resolver_type=resolver
    )
    interpreter.allocate_tensors()
    init_us = (time.perf_counter() - started) * 1e6
    _fill_inputs(interpreter)
    after_init = peak_rss_kb()

    def timed(count: int) -> list[float]:
        times = []
        for _ in range(count):
            start = time.perf_counter()
            interpreter.invoke()
            times.append((time.perf_counter() - start) * 1e6)
        return times

    warmup_us, inference_us = timed(warmup), timed(runs)
    overall = peak_rss_kb()
    return {
        "init_us": init_us,
        "warmup_us": warmup_us,
        "inference_us": inference_us,
        "memory_kb": {"baseline": baseline, "after_init": after_init, "overall": overall},
        "coverage": delegated_nodes(interpreter) if delegate == "xnnpack" else None,
        "model_bytes": Path(model).stat().st_size,
    }


def _ms(us: float) -> float:
    return round(us / 1000.0, 4)


def timings(measured: dict) -> dict:
    """The results schema's ``timings`` from ``measure``'s samples (same definitions as benchmark_model)."""
    warm, runs = measured["warmup_us"], measured["inference_us"]
    first = (warm or runs)[0]
    return {
        "init_ms": _ms(measured["init_us"]),
        "first_inference_ms": _ms(first),
        "warmup_avg_ms": _ms(float(np.mean(warm))) if warm else None,
        "warmup_runs": len(warm),
        "inference_runs": len(runs),
        "inference_avg_ms": _ms(float(np.mean(runs))),
        "inference_std_ms": _ms(float(np.std(runs))),
        "inference_min_ms": _ms(min(runs)),
        "inference_max_ms": _ms(max(runs)),
        "percentiles_ms": {f"p{p}": _ms(percentile(runs, p)) for p in PERCENTILES},
    }


def _mib(kib: float) -> float:
    from pynet_tf.units import MIB  # here, not at the top: the fake benchmark_model loads this file without
    # pynet_tf, whose package init loads TensorFlow (4 s per call; it needs LiteRT only)

    return round(kib * 1024 / MIB, 3)


def memory(measured: dict) -> dict | None:
    kb = measured["memory_kb"]
    if kb["baseline"] is None:
        return None
    return {
        "init_mb": _mib(kb["after_init"] - kb["baseline"]),
        "overall_mb": _mib(kb["overall"] - kb["baseline"]),
        "peak_mb": _mib(kb["overall"]),
        "measure": "host: RSS high-water mark (VmHWM) of a fresh child process; init/overall = its "
        "growth over the baseline after imports, peak = the absolute high-water mark",
    }


def coverage(measured: dict) -> dict | None:
    nodes = measured["coverage"]
    if nodes is None:
        return None
    delegated, total = nodes["delegated"], nodes["total"]
    status = "full" if delegated == total else "partial" if delegated else "none"
    return {
        "status": status,
        "delegate": "TfLiteXNNPackDelegate",
        "delegated_nodes": delegated,
        "total_nodes": total,
        "cpu_nodes": total - delegated,
        "partitions": nodes["partitions"],
        "unsupported_ops": [],
    }


def child_command(
    model: Path, delegate: str, threads: int, warmup: int, runs: int, cpu_mask: str | None
) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "android_bench.host",
        str(model.absolute()),  # a name like -x.tflite stays a file name, not an option
        "--delegate",
        delegate,
        "--threads",
        str(threads),
        "--warmup",
        str(warmup),
        "--runs",
        str(runs),
    ]
    return command + (["--cpu-mask", cpu_mask] if cpu_mask else [])


def run_isolated(command: list[str], timeout_s: float) -> tuple[dict | None, str | None, str]:
    """Run ``child_command`` in a fresh process: (measurement, None, stderr) or (None, error, stderr)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as expired:
        stderr = (
            expired.stderr.decode(errors="replace") if isinstance(expired.stderr, bytes) else expired.stderr
        )
        return None, f"timed out after {timeout_s:g} s (--timeout)", stderr or ""
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        cause = lines[-1] if lines else f"exit status {done.returncode}"
        return None, f"host benchmark failed (exit {done.returncode}): {cause}", done.stderr
    try:
        return json.loads(done.stdout), None, done.stderr
    except ValueError:
        return None, f"host benchmark printed no result: {done.stdout[-200:]!r}", done.stderr


def command_line(command: list[str]) -> str:
    return shlex.join(command)


def mask_cpus(mask: str) -> set[int]:
    """CPU indices of a taskset-style hexadecimal mask (``f0`` = CPUs 4-7)."""
    value = int(mask, 16)
    return {bit for bit in range(value.bit_length()) if value >> bit & 1}


def main(argv: list[str] | None = None) -> int:
    from pynet_tf.cli import command_parser

    parser = command_parser("android_bench.host", __doc__)
    parser.add_argument("model", type=Path)
    parser.add_argument("--delegate", choices=HOST_DELEGATES, default="xnnpack")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--cpu-mask", help="hexadecimal CPU mask, as taskset (e.g. f0)")
    args = parser.parse_args(argv)
    try:
        if args.cpu_mask:
            os.sched_setaffinity(0, mask_cpus(args.cpu_mask))
        result = measure(args.model, args.delegate, args.threads, args.warmup, args.runs)
    except (HostBenchmarkError, ValueError, RuntimeError, OSError) as error:
        print(f"{type(error).__name__}: {error}".splitlines()[0], file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
