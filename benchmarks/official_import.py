"""The official PyNET at its real width, measured side by side in one run: its import and exports.

    .venv/bin/python benchmarks/official_import.py                  # level 0, 224x224, 1 and 2 threads
    .venv/bin/python benchmarks/official_import.py --out bench/official   # keeps the files and a JSON
    .venv/bin/python benchmarks/official_import.py --smoke          # every step, cheaply: level 5, 32x32

1. Writes the shared fixture's official checkpoint (``tests/model_fixtures.official_checkpoint``: the
   official PyNET's 437 variables, 47,548,170 values, by its fill rule; random, not trained weights).
2. Imports it with ``pynet_tf.official.import_official`` (width 32, ``--level``, default 0) in a child
   process of its own, so that the peak is the import's alone: the import's seconds, and the child's resident
   high-water mark (VmHWM, ``android_bench.host.peak_rss_kb``) after TensorFlow loaded and at the end.
3. Exports the imported run to each of ``--formats`` (default float32, fp16, int8) with
   ``export.pipeline.export_model`` at ``--shape`` packed (default 224x224): the conversion's
   seconds (the sidecar's ``timing.convert_s``; int8's holds its calibration passes and per-layer analysis),
   the file's size, and its PSNR against the float Keras model on the held-out samples as the sidecar
   records it. PSNR against ground truth is left out: the fixture's weights are random, so it means nothing.
4. Times every file through LiteRT with XNNPACK (``benchmarks.export_fidelity.time_files``: ``--rounds`` interleaved
   rounds of ``--runs``, the median) at each of ``--threads`` (default 1,2).

One row per format. ``--out`` keeps the checkpoint, the run, the files and ``official_import.json`` (the
table's numbers); without it everything goes to a temporary folder. ``--smoke`` imports level 5 (the import
still reads and builds the whole width-32 network; the level-5 exports are small) at 32x32, 2 runs, 1 round.

Measured (2-core Intel Xeon with AVX-512 VNNI, 2026-12-06, ``--out bench/official2 --runs 3 --rounds 1``;
sizes in MiB; latency at 224x224 packed, 448x448 RGB out)::

    official PyNET (fixture weights, 47,548,170 checkpoint values, written in 1.9 s), level 0, packed 224x224
    import: 36.5 s (43.2 s with the process's start), peak RSS 1863 MiB (628 MiB after TensorFlow loaded)
    export: 793.8 s in all; PSNR vs the float model on 2 held-out samples; LiteRT XNNPACK, median of 1 x 3 runs
    format    status            convert s size MiB PSNR vs float    ms 1t    ms 2t
    float32   ok                     26.4   181.50        111.74  6059.87  3084.94
    fp16      ok                     25.4    90.92         64.42  6075.26  3182.40
    int8      ok                    659.8    45.94         25.29   886.29   441.14

int8 takes 11 minutes: calibration, the QuantizationDebugger's layer-by-layer pass and the float statistics of
the per-layer analysis, which reads the float model's 2.26 GiB of tensors in three passes of at most 1 GiB
(``export/sensitivity.py``; kept all at once, LiteRT's ``allocate_tensors`` failed with an empty RuntimeError,
the previous run of this benchmark). int8 runs 6.8x faster than float32 here: this Xeon has int8 dot-product
instructions (docs/design.md, "int8 and PyNET's instance norms"). The PSNRs against float are of random weights, not
of a trained PyNET: fp16's 64 dB is their rounding; for int8's 25 dB the sidecar's per-layer analysis ranks
instance norms' MEAN and RSQRT as 11 of the 12 worst tensors (the other a level-1 LeakyReLU). What int8 keeps
of a trained PyNET is for its real checkpoint to say.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from benchmarks import record
from pynet_tf.cli import command_parser, image_size
from pynet_tf.nets.pynet.levels import LEVELS
from pynet_tf.units import MIB

FORMATS = ("float32", "fp16", "int8")
SMOKE = {"level": 5, "shape": (32, 32), "runs": 2, "rounds": 1}
"""What ``--smoke`` sets: every step of the benchmark at a fraction of its cost."""


def _model_fixtures():
    """tests/model_fixtures.py, the writer of the shared fixture's checkpoint (the tests are no package)."""
    spec = importlib.util.spec_from_file_location("model_fixtures", ROOT / "tests" / "model_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def child(config: dict) -> None:
    """The import, in this fresh process; prints one JSON line (KiB, seconds)."""
    from android_bench.host import peak_rss_kb
    from pynet_tf.official import import_official  # TensorFlow and Keras load here

    baseline = peak_rss_kb()
    started = time.perf_counter()
    import_official(config["checkpoint"], config["out"], (config["level"],))
    seconds = time.perf_counter() - started
    print(json.dumps({"import_s": seconds, "baseline_rss_kb": baseline, "peak_rss_kb": peak_rss_kb()}))


def run_import(checkpoint: Path, out: Path, level: int) -> dict:
    """``child`` in a fresh process (its VmHWM is its own, not this process's): its JSON and wall seconds."""
    config = {"checkpoint": str(checkpoint), "out": str(out), "level": level}
    started = time.perf_counter()
    command = [sys.executable, __file__, "--child", json.dumps(config)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"official_import: the import failed (exit {done.returncode})")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "process_s": time.perf_counter() - started}


def thread_counts(text: str) -> tuple[int, ...]:
    """argparse type for ``--threads``: comma-separated positive thread counts, e.g. ``1,2``."""
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected thread counts such as 1,2, got {text!r}")
    return counts


def show(value: float | None, spec: str) -> str:
    """``value`` formatted by ``spec`` (e.g. ``9.2f``), or ``-`` in the same width when not measured."""
    return format("-", f">{spec.split('.')[0]}") if value is None else format(value, spec)


def measure(args: argparse.Namespace, formats: list[str], out: Path) -> dict:
    """Steps 1-4 of the docstring, files under ``out``: the report ``official_import.json`` holds."""
    import tensorflow as tf

    from benchmarks.export_fidelity import time_files

    official_checkpoint = _model_fixtures().official_checkpoint

    from export.pipeline import export_model  # first: selects Keras 2

    started = time.perf_counter()
    prefix = official_checkpoint(out / "checkpoint")
    written_s = time.perf_counter() - started
    imported = run_import(prefix, out / "official", args.level)
    started = time.perf_counter()
    results = export_model(out / "official", formats, out=out / "exported", input_shape=args.shape)
    export_s = time.perf_counter() - started
    written = {result.format: result.path for result in results if result.path}
    latency = {threads: time_files(written, threads, args.runs, args.rounds) for threads in args.threads}
    rows = [
        {
            "format": result.format,
            "status": result.status,
            "message": result.message,
            "convert_s": result.sidecar["timing"]["convert_s"] if result.sidecar else None,
            "size_bytes": result.size_bytes,
            "psnr_vs_float": result.psnr_vs_float,
            "ms": {threads: latency[threads].get(result.format) for threads in args.threads},
        }
        for result in results
    ]
    return {
        "checkpoint_values": sum(math.prod(shape) for _, shape in tf.train.list_variables(str(prefix))),
        "checkpoint_write_s": written_s,
        "import": imported,
        "export_s": export_s,
        "settings": {
            "level": args.level,
            "shape": "x".join(map(str, args.shape)),
            "threads": list(args.threads),
            "runs": args.runs,
            "rounds": args.rounds,
            "held_out_images": next((r.sidecar["fidelity"]["images"] for r in results if r.sidecar), 0),
        },
        "formats": rows,
    }


def print_report(report: dict) -> None:
    settings, imported = report["settings"], report["import"]
    print(
        f"official PyNET (fixture weights, {report['checkpoint_values']:,} checkpoint values, written in "
        f"{report['checkpoint_write_s']:.1f} s), level {settings['level']}, packed {settings['shape']}"
    )
    peak, baseline = imported["peak_rss_kb"] / 1024, imported["baseline_rss_kb"] / 1024
    print(
        f"import: {imported['import_s']:.1f} s ({imported['process_s']:.1f} s with the process's start), "
        f"peak RSS {peak:.0f} MiB ({baseline:.0f} MiB after TensorFlow loaded)"
    )
    print(
        f"export: {report['export_s']:.1f} s in all; PSNR vs the float model on "
        f"{settings['held_out_images']} held-out samples; LiteRT XNNPACK, median of {settings['rounds']} x "
        f"{settings['runs']} runs"
    )
    threads = settings["threads"]
    columns = "".join(f"{f'ms {count}t':>9}" for count in threads)
    print(f"{'format':<9} {'status':<17} {'convert s':>9} {'size MiB':>8} {'PSNR vs float':>13}{columns}")
    for row in report["formats"]:
        size = row["size_bytes"] / MIB if row["size_bytes"] else None
        latency = "".join(show(row["ms"][count], "9.2f") for count in threads)
        print(
            f"{row['format']:<9} {row['status']:<17} {show(row['convert_s'], '9.1f')} {show(size, '8.2f')} "
            f"{show(row['psnr_vs_float'], '13.2f')}{latency}"
        )
        if row["message"]:
            print(f"  {row['message']}")


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("benchmarks/official_import", __doc__, script=True)
    parser.add_argument(
        "--level", type=int, choices=LEVELS, default=0, help="the level to import and export (default 0)"
    )
    parser.add_argument("--shape", type=image_size, default=(224, 224), help="packed HxW (default 224x224)")
    parser.add_argument(
        "--formats", default=",".join(FORMATS), help=f"comma-separated (default {','.join(FORMATS)})"
    )
    parser.add_argument(
        "--threads",
        type=thread_counts,
        default=(1, 2),
        help="LiteRT/XNNPACK thread counts, comma-separated (default 1,2)",
    )
    parser.add_argument("--runs", type=int, default=10, help="timed inferences per file per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--smoke", action="store_true", help="level 5, 32x32, 2 runs, 1 round: every step, cheaply"
    )
    parser.add_argument("--out", type=Path, help="keep everything here (default: a temporary folder)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0
    if args.smoke:
        vars(args).update(SMOKE)
    formats = [name.strip() for name in args.formats.split(",") if name.strip()]
    if args.runs < 1 or args.rounds < 1:
        print("official_import: --runs and --rounds must be at least 1", file=sys.stderr)
        return 2
    if args.out and args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        print(f"official_import: --out {args.out} is not empty; pass a new folder", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as scratch:
        try:
            report = measure(args, formats, args.out or Path(scratch))
        except ValueError as error:  # ExportError, CalibrationError, FidelityError: the fix
            print(f"official_import: {error}".splitlines()[0], file=sys.stderr)
            return 2
    print_report(report)
    if args.out:
        path = args.out / "official_import.json"
        path.write_text(json.dumps(report, indent=1) + "\n")
        print(f"written: {path}")
    return 0 if all(row["status"] == "ok" for row in report["formats"]) else 1


if __name__ == "__main__":
    if "--child" in sys.argv:  # the import's own process: its JSON line is for the parent, not a result
        sys.exit(main())
    sys.exit(record.run(main, "official_import_smoke" if "--smoke" in sys.argv else "official_import"))
