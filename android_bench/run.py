"""Benchmark exported .tflite files on a phone over adb (TFLite's benchmark_model), or here with --host.

    python -m android_bench.run --models exported/*.tflite --benchmark-binary android_aarch64_benchmark_model
    python -m android_bench.run --models exported/ --delegates cpu,gpu,nnapi --threads 1,4 --cooldown 30 ...
    python -m android_bench.run --models m.tflite --delegates cpu,gpu,external --benchmark-binary ...
        --extra-args "--external_delegate_path=/vendor/lib64/libvx_delegate.so"   (one command; the
        external rows only get it: a delegate's own flags go to its rows, the others to every row)
    python -m android_bench.run --models exported/ --delegates cpu,gpu --benchmark-binary ...
        --inference-diff-binary run_eval   (adds each delegate's output deviation from the device's CPU)
    python -m android_bench.run --host --models exported/*.tflite --delegates cpu,xnnpack --threads 1,2

One row per (model, delegate, threads), written to --out/<UTC time>_<serial|host>.json after every row
(schema: android_bench/results.py). A failing combination (delegate unsupported, crash, timeout, device
unplugged) is that row's error with the tool's message; the others still run. Exit status: 0 all rows ok,
1 some row failed (results saved), 2 bad flags or no usable device (one line on stderr), 130 Ctrl-C (SIGINT)
and 143 SIGTERM (a CI time-out, `kill`): either stops the running tool, cleans the device, keeps the finished
rows and says so on stderr.
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import re
import shlex
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from android_bench import device_accuracy, host, inference_diff, op_profile, results, runtime_info
from android_bench.adb import Adb, AdbError, TransportError, choose_device, find_adb, list_devices
from android_bench.benchmark_output import coverage, parse
from android_bench.device import (
    BINARY_HINT,
    DELEGATE_ARG_PREFIXES,
    DELEGATE_FLAGS,
    KILL_GRACE_S,
    NPU_BINARY_HINT,
    REMOTE_DIR,
    RUNTIME_INFO_FILE,
    DeviceSession,
    Outcome,
    delegate_of,
    extra_args_for,
    failure_text,
    parse_thermal,
)
from export.fidelity import FidelityError
from export.sidecar import sha256_file
from pynet_tf import atomic
from pynet_tf.cli import command_parser

OP_PROFILE_FLAG = op_profile.FLAG
DEFAULT_DEVICE_DELEGATES = "cpu,xnnpack,gpu,nnapi"
DEFAULT_HOST_DELEGATES = "cpu,xnnpack"
DEVICE_ONLY = (
    "serial",
    "benchmark_binary",
    "extra_args",
    "keep",
    "inference_diff_binary",
    "npu_libraries",
    "npu_benchmark_binary",
    "op_profile",
)


class UsageError(Exception):
    """Bad flags: one line naming the flag and the fix; exit 2."""


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so it unwinds through the same clean-up as Ctrl-C."""


STOPS = (KeyboardInterrupt, Terminated)


def _terminate(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the clean-up short
    raise Terminated


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """SIGTERM's default would end Python at once, leaving the tool on the device, its adb shell running
    and the results file incomplete; the previous handler is back afterwards (tests call ``main``)."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stopped(stop: BaseException, rows: int | None, path: Path | None) -> int:
    """Say on stderr what the signal left behind; the exit status a shell gives for it (128 + number)."""
    number = signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT
    kept = f"{rows} finished row(s) kept in {path}" if path is not None else "before any row ran"
    print(f"interrupted by {number.name}: {kept}", file=sys.stderr)
    return 128 + number


def _csv(text: str, flag: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items or len(set(items)) != len(items):
        raise UsageError(f"{flag} {text!r}: give a comma-separated list without repeats")
    return items


def expand_models(patterns: list[str]) -> list[Path]:
    """--models: files, folders (their *.tflite) and quoted globs; in order, without repeats."""
    models: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found = sorted(path.glob("*.tflite"))
            if not found:
                raise UsageError(f"--models {pattern}: the folder holds no .tflite file")
        elif path.is_file():
            found = [path]
        elif glob.has_magic(pattern) and (matches := sorted(glob.glob(pattern))):
            found = [Path(match) for match in matches]
        else:
            raise UsageError(f"--models {pattern}: no such file")
        for model in found:
            if model.suffix != ".tflite":
                raise UsageError(f"--models {model}: not a .tflite file")
            if model.resolve() not in [m.resolve() for m in models]:
                models.append(model)
    return models


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("android_bench.run", __doc__)
    parser.add_argument(
        "--models", nargs="+", required=True, metavar="MODEL", help=".tflite files, folders of them, or globs"
    )
    parser.add_argument(
        "--delegates",
        help=f"comma-separated: {', '.join(DELEGATE_FLAGS)} (default "
        f"{DEFAULT_DEVICE_DELEGATES}; with --host: cpu, xnnpack, default {DEFAULT_HOST_DELEGATES})",
    )
    parser.add_argument("--threads", default="1,4", help="comma-separated CPU thread counts (default 1,4)")
    parser.add_argument(
        "--serial", help="the device's serial (adb devices -l), needed when several are attached"
    )
    parser.add_argument(
        "--benchmark-binary",
        type=Path,
        metavar="PATH",
        help=f"benchmark_model for the phone's ABI: {BINARY_HINT}",
    )
    parser.add_argument(
        "--inference-diff-binary",
        type=Path,
        metavar="PATH",
        help=f"also measure each (model, delegate)'s output deviation from the device's CPU with "
        f"{inference_diff.BUILD_HINT}",
    )
    parser.add_argument(
        "--inference-diff-runs",
        type=int,
        default=inference_diff.DEFAULT_RUNS,
        metavar="N",
        help=f"inference_diff's random-input runs, 3 inferences each (default {inference_diff.DEFAULT_RUNS})",
    )
    parser.add_argument("--warmup", type=int, default=1, help="warm-up runs (default 1)")
    parser.add_argument("--runs", type=int, default=50, help="measured runs (default 50)")
    parser.add_argument(
        "--cooldown",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="pause between rows against thermal throttling (default 0)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="per row: benchmark_model's --max_secs, which ends the warm-up and again the measured runs "
        f"early (fewer runs); the tool is killed when the row has run 2 x SECONDS + min({KILL_GRACE_S}, "
        "SECONDS / 2). With --host: the limit on the whole row (default 600)",
    )
    parser.add_argument("--out", type=Path, default=Path("results"), help="results folder (default results/)")
    parser.add_argument("--keep", action="store_true", help="leave the pushed tool and models on the device")
    parser.add_argument(
        "--extra-args",
        default="",
        metavar="ARGS",
        help="more benchmark_model flags, e.g. vendor delegate options; a delegate's own flags ("
        + ", ".join(f"{p}*" for prefixes in DELEGATE_ARG_PREFIXES.values() for p in prefixes)
        + ") go to its rows only, the others to every row (each row records those it got)",
    )
    parser.add_argument("--cpu-mask", metavar="HEX", help="pin to CPUs, as taskset (e.g. f0 = CPUs 4-7)")
    parser.add_argument(
        "--host", action="store_true", help="benchmark here through LiteRT instead of a phone"
    )
    parser.add_argument(
        "--op-profile",
        action="store_true",
        help="phone rows: also profile every op (benchmark_model --enable_op_profiling): time and share per op "
        "type and the instance norms' part, in the results and the report",
    )
    parser.add_argument(
        "--npu-benchmark-binary",
        type=Path,
        metavar="PATH",
        help="npu rows: LiteRT's benchmark_model (the CompiledModel API's tool, which takes --use_npu), when "
        "--benchmark-binary is TFLite's (default: --benchmark-binary runs every row)",
    )
    parser.add_argument(
        "--npu-libraries",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="--delegates npu: the vendor's LiteRT NPU libraries for the phone (dispatch library, compiler "
        "plugin, runtime .so files, or folders of them), pushed to the device and found through "
        "LD_LIBRARY_PATH/ADSP_LIBRARY_PATH on the npu rows",
    )
    parser.add_argument(
        "--no-device-accuracy",
        dest="device_accuracy",
        action="store_false",
        help="skip running the export's held-out inputs through each row's delegate on the phone (its "
        "on-device PSNR/SSIM against the float model and the ground truth)",
    )
    return parser


def validate(args: argparse.Namespace) -> argparse.Namespace:
    """Check every flag before anything runs; sets ``models``, ``delegate_list``, ``thread_list``, ``extra``
    (the parsed --extra-args)."""
    args.models = expand_models(args.models)
    allowed = host.HOST_DELEGATES if args.host else tuple(DELEGATE_FLAGS)
    args.delegate_list = _csv(
        args.delegates or (DEFAULT_HOST_DELEGATES if args.host else DEFAULT_DEVICE_DELEGATES), "--delegates"
    )
    for delegate in args.delegate_list:
        if delegate not in allowed:
            where = (
                "--host runs LiteRT on this machine's CPU; drop --host to use a phone"
                if args.host and delegate in DELEGATE_FLAGS
                else f"choose from {', '.join(allowed)}"
            )
            raise UsageError(f"--delegates {delegate}: not available ({where})")
    try:
        args.thread_list = [int(item) for item in _csv(args.threads, "--threads")]
    except ValueError:
        raise UsageError(f"--threads {args.threads!r}: give whole numbers, e.g. 1,4") from None
    if any(n < 1 for n in args.thread_list):
        raise UsageError(f"--threads {args.threads!r}: thread counts must be at least 1")
    for flag, value, low in (
        ("--warmup", args.warmup, 0),
        ("--runs", args.runs, 1),
        ("--inference-diff-runs", args.inference_diff_runs, 1),
    ):
        if value < low:
            raise UsageError(f"{flag} {value}: must be at least {low}")
    if args.cooldown < 0 or args.timeout <= 0:
        raise UsageError("--cooldown must be >= 0 and --timeout > 0 seconds")
    if args.cpu_mask is not None and not (
        re.fullmatch(r"(0x)?[0-9a-fA-F]+", args.cpu_mask) and int(args.cpu_mask, 16) > 0
    ):
        raise UsageError(f"--cpu-mask {args.cpu_mask!r}: give a non-zero hexadecimal CPU mask such as f0")
    try:
        atomic.check_output(args.out)
    except atomic.OutputError as error:
        raise UsageError(str(error)) from None
    try:
        args.extra = shlex.split(args.extra_args)
    except ValueError as error:
        raise UsageError(f"--extra-args {args.extra_args!r}: {error}") from None
    if args.host:
        given = [f"--{name.replace('_', '-')}" for name in DEVICE_ONLY if getattr(args, name)]
        if given:
            raise UsageError(f"{', '.join(given)}: only for a phone run; drop them with --host")
        return args
    if args.benchmark_binary is None or not args.benchmark_binary.is_file():
        raise UsageError(f"--benchmark-binary {args.benchmark_binary or ''}: give the path of {BINARY_HINT}")
    if args.inference_diff_binary is not None and not args.inference_diff_binary.is_file():
        raise UsageError(
            f"--inference-diff-binary {args.inference_diff_binary}: no such file; give the path of "
            f"{inference_diff.BUILD_HINT}"
        )
    if clash := _same_name(args.models):
        raise UsageError(
            f"--models {clash[0]} and {clash[1]}: both are named {clash[0].name!r} and the device folder holds "
            "one file per name; rename one"
        )
    for arg in args.extra:
        owner = delegate_of(arg)
        if owner is not None and owner not in args.delegate_list:
            raise UsageError(
                f"--extra-args {arg}: a {owner} delegate flag, given only to {owner} rows, and --delegates "
                f"has none; add {owner} to --delegates or drop the flag"
            )
    args.npu_libraries = _npu_libraries(args.npu_libraries, "npu" in args.delegate_list)
    if args.npu_benchmark_binary is not None:
        if "npu" not in args.delegate_list:
            raise UsageError(
                "--npu-benchmark-binary: only for npu rows; add npu to --delegates or drop the flag"
            )
        if not args.npu_benchmark_binary.is_file():
            raise UsageError(
                f"--npu-benchmark-binary {args.npu_benchmark_binary}: no such file; give the path of "
                f"{NPU_BINARY_HINT}"
            )
    if "external" in args.delegate_list and not any(
        a.startswith("--external_delegate_path") for a in args.extra
    ):
        raise UsageError(
            "--delegates external needs --extra-args '--external_delegate_path=/path/on/device.so'"
        )
    return args


def _npu_libraries(paths: list[Path] | None, wanted: bool) -> tuple[Path, ...]:
    """The .so files of --npu-libraries (folders expanded); ``UsageError`` unless given exactly when
    --delegates has npu, and every path holds libraries."""
    if not wanted:
        if paths:
            raise UsageError("--npu-libraries: only for npu rows; add npu to --delegates or drop the flag")
        return ()
    if not paths:
        raise UsageError(
            "--delegates npu needs --npu-libraries: the vendor's LiteRT dispatch library "
            "(libLiteRtDispatch_*.so), compiler plugin (libLiteRtCompilerPlugin_*.so) and runtime libraries "
            "for the phone's SoC"
        )
    found: list[Path] = []
    for path in paths:
        libraries = sorted(path.glob("*.so")) if path.is_dir() else [path] if path.is_file() else []
        if not libraries:
            raise UsageError(f"--npu-libraries {path}: no such file, or a folder without .so files")
        found += libraries
    if clash := _same_name(found):
        raise UsageError(f"--npu-libraries {clash[0]} and {clash[1]}: two libraries of one name; keep one")
    return tuple(found)


def _same_name(models: list[Path]) -> tuple[Path, Path] | None:
    """The first two models with one file name (they would overwrite each other on the device)."""
    by_name: dict[str, Path] = {}
    for model in models:
        if model.name in by_name:
            return by_name[model.name], model
        by_name[model.name] = model
    return None


def _tool(path: Path | None) -> dict | None:
    if path is None:
        return None
    return {
        "path": str(path.resolve()),
        "name": path.name,
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
    }


def settings(args: argparse.Namespace) -> dict:
    return {
        "delegates": args.delegate_list,
        "threads": args.thread_list,
        "warmup": args.warmup,
        "runs": args.runs,
        "cooldown_s": args.cooldown,
        "timeout_s": args.timeout,
        "extra_args": args.extra,
        "cpu_mask": args.cpu_mask,
        "keep": args.keep,
        "benchmark_binary": _tool(args.benchmark_binary),
        "inference_diff_binary": _tool(args.inference_diff_binary),
        "inference_diff_runs": args.inference_diff_runs if args.inference_diff_binary else None,
        "device_accuracy": args.device_accuracy and not args.host,
        "npu_libraries": [_tool(path) for path in args.npu_libraries or ()],
        "npu_benchmark_binary": _tool(args.npu_benchmark_binary),
        "op_profile": bool(args.op_profile),
    }


def _sysfs(pattern: str) -> list[tuple[Path, str]]:
    """(path, stripped text) of the readable files matching ``pattern``."""
    found = []
    for path in sorted(glob.glob(pattern)):
        try:
            found.append((Path(path), Path(path).read_text().strip()))
        except OSError:
            continue
    return found


def host_temperatures() -> dict[str, float]:
    types = dict(_sysfs("/sys/class/thermal/thermal_zone*/type"))
    return parse_thermal(
        "\n".join(
            f"{types.get(path.with_name('type'), path.parent.name)} {value}"
            for path, value in _sysfs("/sys/class/thermal/thermal_zone*/temp")
        )
    )


def host_facts() -> dict:
    processor = platform.processor() or None
    for _, text in _sysfs("/proc/cpuinfo"):
        names = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")]
        processor = names[0] if names else processor
    governors = {
        path.parts[5]: value
        for path, value in _sysfs("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor")
    }
    versions = {}
    for package in ("ai-edge-litert", "numpy"):
        try:
            versions[package.replace("-", "_")] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package.replace("-", "_")] = None
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "kind": "host",
        "hostname": socket.gethostname(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "processor": processor,
        "cpu_count": os.cpu_count(),
        "cpus_allowed": allowed,
        "governors": governors,
        "thermal_c": host_temperatures(),
        "python": platform.python_version(),
        **versions,
    }


class Runner:
    """Runs the rows, saving the document after each one."""

    def __init__(self, args: argparse.Namespace, document: dict, path: Path, scratch: Path):
        self.args, self.document, self.path, self.scratch = args, document, path, scratch
        self.held_out: dict[Path, device_accuracy.HeldOutInputs | str] = {}
        """Per model file: its held-out inputs on this machine, or why it has none."""

    def add(self, row: dict) -> None:
        self.document["rows"].append(row)
        results.save(self.path, self.document)
        timings, cov = row["timings"] or {}, row["coverage"] or {}
        summary = (
            f"avg {timings.get('inference_avg_ms')} ms, min {timings.get('inference_min_ms')} ms"
            + (f", coverage {cov.get('status')}" if row["coverage"] else "")
            if row["status"] == "ok"
            else f"ERROR {row['error']}"
        )
        print(
            f"{row['model']['name']}  {row['delegate']:<8} threads={row['threads']:<3} {summary}", flush=True
        )

    def cooldown(self, first: bool) -> None:
        if not first and self.args.cooldown > 0:
            time.sleep(self.args.cooldown)

    def rows(self):
        """(model Path, model record, sidecar, sidecar error, delegate, threads) per row, in order."""
        for model in self.args.models:
            record = results.model_record(model)
            side, side_error = results.load_sidecar(model)
            for delegate in self.args.delegate_list:
                for threads in self.args.thread_list:
                    yield model, record, side, side_error, delegate, threads

    def new_row(self, record, side, side_error, delegate, threads) -> dict:
        return results.new_row(
            record,
            side,
            side_error,
            delegate,
            threads,
            extra_args_for(delegate, self.args.extra),
            self.args.cpu_mask,
        )

    def run_host(self) -> None:
        first = True
        for model, record, side, side_error, delegate, threads in self.rows():
            self.cooldown(first)
            first = False
            row = self.new_row(record, side, side_error, delegate, threads)
            command = host.child_command(
                model, delegate, threads, self.args.warmup, self.args.runs, self.args.cpu_mask
            )
            row.update(
                command=command, command_line=host.command_line(command), temperature_c=host_temperatures()
            )
            started = time.perf_counter()
            measured, error, stderr = host.run_isolated(command, self.args.timeout)
            row["wall_s"] = round(time.perf_counter() - started, 3)
            row["log"] = results.tail(stderr)
            if measured is None:
                row["error"] = error
            else:
                row.update(
                    status="ok",
                    timings=host.timings(measured),
                    memory=host.memory(measured),
                    coverage=host.coverage(measured),
                    tool_model_size_mb=record["size_mb"],
                )
            self.add(row)

    def run_device(self, session: DeviceSession) -> None:
        first, remote, deviations = True, {}, {}
        for model, record, side, side_error, delegate, threads in self.rows():
            row = self.new_row(record, side, side_error, delegate, threads)
            if session.lost:
                row["error"] = f"not run: device {session.adb.serial} disconnected earlier in this run"
                self.add(row)
                continue
            try:
                if model not in remote:
                    remote[model] = session.install(model, model.name)
                session.fresh(RUNTIME_INFO_FILE)
            except TransportError as error:
                session.lost = session.adb.state() != "device"
                row["error"] = f"could not push {model.name}: {error}"
                self.add(row)
                continue
            self.cooldown(first)
            first = False
            argv = session.benchmark_argv(
                remote[model],
                delegate,
                threads,
                self.args.warmup,
                self.args.runs,
                row["extra_args"],
                RUNTIME_INFO_FILE,
            ) + ([OP_PROFILE_FLAG] if self.args.op_profile else [])
            line = session.command_line(argv, self.args.cpu_mask, delegate)
            row.update(command=argv, command_line=line, temperature_c=session.temperatures())
            started = time.perf_counter()
            outcome = session.run(line)
            row["wall_s"] = round(time.perf_counter() - started, 3)
            row["log"] = results.tail(outcome.output)
            self.fill_from_output(row, outcome.output, outcome.exit_code, outcome.error, delegate)
            if not session.lost:
                row["runtime_info"] = self.runtime_info(session, outcome, delegate)
            if session.diff_binary is not None and not session.lost:
                if (model, delegate) not in deviations:
                    deviations[model, delegate] = session.deviation(
                        remote[model],
                        delegate,
                        threads,
                        self.args.inference_diff_runs,
                        self.args.extra,
                        self.args.cpu_mask,
                    )
                row["deviation"] = deviations[model, delegate]
            if self.args.device_accuracy and row["status"] == "ok" and not session.lost:
                row["device_accuracy"] = self.device_accuracy(session, model, side, remote[model], row)
            self.add(row)

    def runtime_info(self, session: DeviceSession, outcome: Outcome, delegate: str) -> dict:
        """Where each op of the row ran: the tool's runtime info file, pulled and read here, or why there is
        none (the report then compares the export's op tables with the log lines' counts)."""
        local = self.scratch / "runtime_info.pb"
        try:
            if session.adb.run(["test", "-f", RUNTIME_INFO_FILE]).exit_code != 0:
                return runtime_info.missing(outcome.output, outcome.exit_code, outcome.error)
            local.unlink(missing_ok=True)
            session.adb.pull(RUNTIME_INFO_FILE, str(local))
        except TransportError as error:
            session.lost = session.adb.state() != "device"
            return {"status": "error", "error": f"could not pull the runtime info: {error}"}
        try:
            details = runtime_info.parse(local.read_bytes())
            return {"status": "ok", "error": None, **runtime_info.record(details, delegate)}
        except runtime_info.RuntimeInfoError as error:
            return {"status": "error", "error": str(error)}

    def inputs_of(self, model: Path, side: dict | None) -> device_accuracy.HeldOutInputs | str:
        """``model``'s held-out inputs (prepared once per file), or why there are none."""
        if model not in self.held_out:
            try:
                self.held_out[model] = device_accuracy.prepare(model, side, self.scratch / model.stem)
            except (device_accuracy.AccuracyUnavailable, FidelityError, OSError, ValueError) as error:
                self.held_out[model] = str(error)
        return self.held_out[model]

    def device_accuracy(
        self, session: DeviceSession, model: Path, side: dict | None, remote_model: str, row: dict
    ) -> dict:
        """The row's held-out inputs through its own delegate and threads on the device, scored here."""
        held = self.inputs_of(model, side)
        if isinstance(held, str):
            return {"status": "unavailable", "error": held}
        remote_output = f"{REMOTE_DIR}/{model.stem}_output.raw"
        local_output = self.scratch / "output.raw"
        dumps = []
        try:
            remote_inputs = [session.install(path, path.name) for path in held.files]
            for remote_input in remote_inputs:
                session.fresh(remote_output)
                tensors = (held.input_name, held.input_shape, remote_input, remote_output)
                argv = session.accuracy_argv(
                    remote_model, row["delegate"], row["threads"], row["extra_args"], tensors
                )
                outcome = session.run(session.command_line(argv, self.args.cpu_mask, row["delegate"]))
                dumped = (
                    outcome.error is None and session.adb.run(["test", "-f", remote_output]).exit_code == 0
                )
                failure = device_accuracy.run_failure(
                    outcome.output, outcome.exit_code, outcome.error, dumped
                )
                if failure is not None:
                    status, message = failure
                    return {"status": status, "error": message, "log": results.tail(outcome.output)}
                local_output.unlink(missing_ok=True)
                session.adb.pull(remote_output, str(local_output))
                dumps.append(local_output.read_bytes())
        except TransportError as error:
            session.lost = session.adb.state() != "device"
            return {"status": "error", "error": f"could not move the held-out tensors: {error}"}
        try:
            record = device_accuracy.score(held, dumps)
        except device_accuracy.tensor_files.TensorFileError as error:
            return {"status": "error", "error": str(error)}
        return {"status": "ok", **device_accuracy.summary(record), "fidelity": record}

    @staticmethod
    def fill_from_output(
        row: dict, output: str, exit_code: int | None, error: str | None, delegate: str
    ) -> None:
        parsed = parse(output)
        profile = op_profile.parse(output)
        row.update(
            op_profile=None if profile is None else op_profile.record(profile),
            tool_version=parsed.tool_version,
            tool_model_size_mb=parsed.model_size_mb,
            coverage=coverage(parsed, delegate),
            memory=results.memory_from_output(parsed),
        )
        if error is None and exit_code == 0 and parsed.ok:
            row.update(status="ok", timings=results.timings_from_output(parsed))
            return
        if parsed.inference_avg_us is not None:
            row["timings"] = results.timings_from_output(parsed)
        row["error"] = error or parsed.error_message() or failure_text(output, exit_code)


def open_device(args: argparse.Namespace) -> tuple[DeviceSession, dict]:
    """Pick the device, install the tool and read the device's facts; ``AdbError`` when that fails (what was
    pushed by then is removed again, unless --keep)."""
    executable = find_adb()
    entry = choose_device(list_devices(executable), args.serial)
    session = DeviceSession(
        Adb(executable, entry.serial),
        args.benchmark_binary,
        keep=args.keep,
        timeout_s=args.timeout,
        diff_binary=args.inference_diff_binary,
        npu_libraries=args.npu_libraries,
        npu_binary=args.npu_benchmark_binary,
    )
    opened = False
    try:
        facts = session.facts(entry)
        session.check_binary(facts.get("abis") or facts.get("abi"))  # before anything is pushed
        session.prepare()
        opened = True
    except TransportError as error:
        raise AdbError(f"device {entry.serial}: {error}") from error
    finally:
        if not opened and (warning := session.cleanup()):  # what prepare() pushed before it stopped
            print(f"warning: {warning}", file=sys.stderr)
    facts["timeout_command"] = session.has_timeout
    return session, facts


def attach_extra_args(argv: list[str]) -> list[str]:
    """``--extra-args "--flag=x"`` as ``--extra-args=--flag=x``: argparse would take a value that starts with
    ``--`` for an option of its own, and benchmark_model's flags all do."""
    joined, position = [], 0
    while position < len(argv):
        if argv[position] == "--extra-args" and position + 1 < len(argv):
            joined.append(f"--extra-args={argv[position + 1]}")
            position += 2
        else:
            joined.append(argv[position])
            position += 1
    return joined


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = validate(build_parser().parse_args(attach_extra_args(argv)))
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with sigterm_unwinds():
        return benchmark(args, argv)


def benchmark(args: argparse.Namespace, argv: list[str]) -> int:
    """Open the device (or the host) and run every row; a stop signal at any point unwinds through the clean-up
    of what is open by then."""
    started = time.time()
    try:
        config = settings(args)
        session, device = (None, host_facts()) if args.host else open_device(args)
    except AdbError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except STOPS as stop:
        return stopped(stop, None, None)
    mode = "host" if args.host else "device"
    document = results.new_document(
        mode, ["python", "-m", "android_bench.run", *argv], config, device, started
    )
    path = results.result_path(args.out, started, device.get("serial") or "host")
    interrupted = None
    scratch = tempfile.TemporaryDirectory(prefix="pynet_bench_")
    try:
        results.save(path, document)
        runner = Runner(args, document, path, Path(scratch.name))
        runner.run_host() if session is None else runner.run_device(session)
        document["run"]["complete"] = True
    except STOPS as stop:
        interrupted = stop
    finally:
        scratch.cleanup()
        warning = session.cleanup() if session is not None and not session.lost else None
        if warning:
            document["run"]["cleanup_warning"] = warning
            print(f"warning: {warning}", file=sys.stderr)
        document["run"]["finished"] = results.utc_now()
        results.save(path, document)
    print(f"results: {path}")
    if interrupted is not None:
        return stopped(interrupted, len(document["rows"]), path)
    return 0 if all(row["status"] == "ok" for row in document["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
