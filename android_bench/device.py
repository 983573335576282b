"""One benchmark session on an Android device: push the tool and models, run rows, read the device, clean up.

Files go to ``/data/local/tmp/pynet_bench/`` under their own names (a file already there with the same
SHA-256 is not pushed again); ``cleanup`` removes only what this session pushed (``--keep`` skips it).
Each row runs ``benchmark_model`` with ``--warmup_runs``/``--num_runs`` and zero minimum durations, so the
counts asked for are the counts measured; ``--max_secs`` is --timeout, which the tool applies to the warm-up
and again to the measured runs, so a slow model ends each phase with fewer runs instead of being killed.
Where the device has ``timeout`` (toybox, Android 7+), it kills the tool (SIGKILL) when the row has run for
2 x --timeout plus a grace for init (``kill_after_s``); ``--cpu-mask`` prefixes ``taskset MASK``. With
``--inference-diff-binary`` the session also installs TFLite's inference_diff tool and runs it once per
(model, delegate) (``deviation``).
"""

from __future__ import annotations

import math
import shlex
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from android_bench import inference_diff, runtime_info, tensor_files
from android_bench.adb import Adb, AdbError, DeviceEntry, TransportError
from export.sidecar import sha256_file

REMOTE_DIR = "/data/local/tmp/pynet_bench"
RUNTIME_INFO_FILE = f"{REMOTE_DIR}/runtime_info.pb"
"""Where each row's benchmark_model writes its model runtime info (android_bench/runtime_info.py)."""
BINARY_NAME = "benchmark_model"
NPU_BINARY_NAME = "benchmark_model_litert"
"""LiteRT's benchmark_model for the npu rows (--npu-benchmark-binary), beside TFLite's."""
NPU_DIR = f"{REMOTE_DIR}/npu"
"""Where --npu-libraries go: the vendor's LiteRT dispatch library, compiler plugin and runtime libraries."""
# benchmark_model's flags per --delegates name. "cpu" turns off XNNPACK, which newer tools apply by default;
# "external" adds nothing: the vendor delegate comes from --extra-args (--external_delegate_path=...).
DELEGATE_FLAGS = {
    "cpu": ["--use_xnnpack=false"],
    "xnnpack": ["--use_xnnpack=true"],
    "gpu": ["--use_gpu=true"],
    "nnapi": ["--use_nnapi=true"],
    "hexagon": ["--use_hexagon=true"],
    "external": [],
    # LiteRT's NPU path (NNAPI is deprecated from Android 15): the flags and the library folder as LiteRT's own
    # command-line tool passes them (litert_cli's benchmark command). They belong to LiteRT's benchmark_model
    # (litert/tools, the CompiledModel API: --use_cpu/--use_gpu/--use_npu, no --use_xnnpack or --use_nnapi),
    # not to TFLite's: npu rows run that tool (--npu-benchmark-binary) where it is given
    "npu": [
        "--use_npu=true",
        f"--dispatch_library_path={NPU_DIR}",
        f"--compiler_plugin_library_path={NPU_DIR}",
    ],
}
NPU_ENVIRONMENT = [f"LD_LIBRARY_PATH={NPU_DIR}", f"ADSP_LIBRARY_PATH={NPU_DIR}"]
"""What an npu row's process needs to find the vendor's runtime (ADSP: Qualcomm's DSP loader), as LiteRT's
command-line tool sets it."""
# --extra-args flags that configure one delegate's provider (TFLite's tools/delegates/README.md) go to that
# delegate's rows only, so that e.g. a vendor library is not loaded on the cpu and gpu rows; others go to all.
DELEGATE_ARG_PREFIXES = {
    "external": ("--external_delegate",),
    "nnapi": ("--nnapi_", "--disable_nnapi_cpu"),
    "gpu": ("--gpu_",),
    "xnnpack": ("--xnnpack_",),
    "hexagon": ("--hexagon_",),
    "npu": ("--dispatch_library_path", "--compiler_plugin_library_path", "--qnn_", "--mediatek_"),
}
# Fills the row's memory.peak_mb ("Overall peak memory footprint (MB) via periodic monitoring"); a tool too
# old for it warns "Unconsumed cmdline flags" and goes on.
PEAK_MEMORY_FLAG = "--report_peak_memory_footprint=true"
KILL_GRACE_S = 30  # for init, after the two --max_secs phases; at most: a short --timeout gets half of itself
# ELF e_machine -> Android ABI, to catch a benchmark_model built for another CPU before any run.
ELF_ABIS = {0x28: "armeabi-v7a", 0xB7: "arm64-v8a", 0x03: "x86", 0x3E: "x86_64"}
NPU_BINARY_HINT = "LiteRT's benchmark_model (litert/tools) for the phone's ABI, which takes --use_npu"
BINARY_HINT = (
    "TFLite's prebuilt android_aarch64_benchmark_model (arm64-v8a) or android_arm_benchmark_model "
    "(armeabi-v7a), see https://www.tensorflow.org/lite/performance/measurement"
)
PROPS = {
    "model": "ro.product.model",
    "manufacturer": "ro.product.manufacturer",
    "brand": "ro.product.brand",
    "device": "ro.product.device",
    "board": "ro.product.board",
    "platform": "ro.board.platform",
    "soc_manufacturer": "ro.soc.manufacturer",
    "soc_model": "ro.soc.model",
    "hardware": "ro.hardware",
    "android_release": "ro.build.version.release",
    "sdk": "ro.build.version.sdk",
    "abi": "ro.product.cpu.abi",
    "abis": "ro.product.cpu.abilist",
    "fingerprint": "ro.build.fingerprint",
}
GOVERNORS_SCRIPT = (
    "for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor; "
    'do echo "$f $(cat "$f" 2>/dev/null)"; done'
)
THERMAL_SCRIPT = (
    "for z in /sys/class/thermal/thermal_zone*; "
    'do echo "$(cat "$z/type" 2>/dev/null) $(cat "$z/temp" 2>/dev/null)"; done'
)


def elf_abi(path: Path) -> str | None:
    """The Android ABI an ELF executable is built for; None for other files (scripts) or unknown CPUs."""
    with open(path, "rb") as file:
        header = file.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    return ELF_ABIS.get(machine)


def delegate_of(arg: str) -> str | None:
    """The --delegates name whose provider reads this benchmark_model flag; None for a flag of every row."""
    return next((name for name, prefixes in DELEGATE_ARG_PREFIXES.items() if arg.startswith(prefixes)), None)


def extra_args_for(delegate: str, extra_args: list[str], *, shared: bool = True) -> list[str]:
    """The --extra-args for ``delegate``: its own provider's flags and, with ``shared``, those of no delegate
    (a benchmark_model row takes both; inference_diff only the first)."""
    return [arg for arg in extra_args if delegate_of(arg) in ((delegate, None) if shared else (delegate,))]


def parse_getprop(text: str) -> dict[str, str]:
    props = {}
    for line in text.splitlines():
        if line.startswith("[") and "]: [" in line:
            key, _, value = line.partition("]: [")
            props[key[1:]] = value.rstrip().removesuffix("]")
    return props


def parse_thermal(text: str) -> dict[str, float]:
    """``type milli-degrees`` lines -> {type: degrees C}; unreadable or implausible zones are left out."""
    zones: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.strip().rpartition(" ")
        try:
            reading = float(value)
        except ValueError:
            continue
        celsius = reading / 1000.0 if abs(reading) >= 1000 else reading
        if name and -40.0 <= celsius <= 150.0:
            key = name if name not in zones else f"{name}#{sum(k.split('#')[0] == name for k in zones) + 1}"
            zones[key] = round(celsius, 1)
    return zones


@dataclass(frozen=True)
class Outcome:
    """One benchmark_model run: its merged output and exit status, or why it did not complete."""

    output: str
    exit_code: int | None
    error: str | None


class DeviceSession:
    def __init__(
        self,
        adb: Adb,
        binary: Path,
        *,
        keep: bool,
        timeout_s: float,
        diff_binary: Path | None = None,
        npu_libraries: tuple[Path, ...] = (),
        npu_binary: Path | None = None,
    ):
        self.adb = adb
        self.binary = binary
        self.diff_binary = diff_binary
        self.npu_libraries = npu_libraries
        self.npu_binary = npu_binary
        self.keep = keep
        self.timeout_s = timeout_s
        self.pushed: list[str] = []
        self.has_timeout = False
        self.lost = False
        self.kill_after_s = math.ceil(2 * timeout_s + min(KILL_GRACE_S, timeout_s / 2))

    def facts(self, entry: DeviceEntry) -> dict:
        props = parse_getprop(self.adb.shell("getprop").output)
        facts = {"kind": "android", "serial": entry.serial, "adb_details": entry.details}
        facts.update({key: props.get(prop) or None for key, prop in PROPS.items()})
        governors = {}
        for line in self.adb.shell(GOVERNORS_SCRIPT).output.splitlines():
            path, _, governor = line.partition(" ")
            cpu = next(
                (part for part in path.split("/") if part.startswith("cpu") and part[3:].isdigit()), None
            )
            if cpu and governor.strip():
                governors[cpu] = governor.strip()
        facts["governors"] = governors
        facts["thermal_c"] = self.temperatures()
        return facts

    def check_binary(self, abis: str | None) -> None:
        """Refuse a tool built for another CPU than the device's, before anything is pushed."""
        device_abis = [abi for abi in (abis or "").split(",") if abi]
        tools = [("--benchmark-binary", self.binary, BINARY_HINT)]
        if self.diff_binary is not None:
            tools.append(("--inference-diff-binary", self.diff_binary, inference_diff.BUILD_HINT))
        if self.npu_binary is not None:
            tools.append(("--npu-benchmark-binary", self.npu_binary, NPU_BINARY_HINT))
        for flag, path, hint in tools:
            built_for = elf_abi(path)
            if built_for and device_abis and built_for not in device_abis:
                raise AdbError(
                    f"{flag} {path} is built for {built_for} but the device runs {', '.join(device_abis)}: "
                    f"use {hint}"
                )

    def temperatures(self) -> dict[str, float]:
        try:
            return parse_thermal(self.adb.shell(THERMAL_SCRIPT, timeout=30).output)
        except TransportError:
            return {}

    def prepare(self) -> None:
        """Create the folder, install the tool (executable) and see whether ``timeout`` exists."""
        created = self.adb.run(["mkdir", "-p", REMOTE_DIR])
        if created.exit_code != 0:
            raise AdbError(f"cannot create {REMOTE_DIR} on the device: {created.output.strip()}")
        tools = [self.install(self.binary, BINARY_NAME)]
        if self.diff_binary is not None:
            tools.append(self.install(self.diff_binary, inference_diff.TOOL_NAME))
        if self.npu_binary is not None:
            tools.append(self.install(self.npu_binary, NPU_BINARY_NAME))
        self.adb.run(["chmod", "755", *tools])
        if self.npu_libraries:
            self.adb.run(["mkdir", "-p", NPU_DIR])
            for library in self.npu_libraries:
                self.install(library, f"npu/{library.name}")
        self.has_timeout = self.adb.shell("command -v timeout >/dev/null").exit_code == 0

    def install(self, local: Path, name: str) -> str:
        """Push ``local`` as ``REMOTE_DIR/name`` unless a file with the same SHA-256 is already there."""
        remote = f"{REMOTE_DIR}/{name}"
        if self.adb.remote_sha256(remote) != sha256_file(local):
            self.adb.push(str(local), remote)
            self.pushed.append(remote)
        return remote

    def fresh(self, remote: str) -> None:
        """Clear the way for a file the tool writes (one left by an earlier run is no answer); ``cleanup``
        removes it with the pushed files."""
        if remote not in self.pushed:
            self.pushed.append(remote)
        self.adb.run(["rm", "-f", remote])

    def benchmark_argv(
        self,
        remote_model: str,
        delegate: str,
        threads: int,
        warmup: int,
        runs: int,
        extra_args: list[str],
        runtime_info_file: str,
    ) -> list[str]:
        """benchmark_model's argv for one row; ``extra_args`` are the row's own (``extra_args_for``), last so
        that they win; the tool writes its runtime info (where each op ran) to ``runtime_info_file``."""
        return [
            self.tool(delegate),
            f"--graph={remote_model}",
            f"--num_threads={threads}",
            f"--warmup_runs={warmup}",
            "--warmup_min_secs=0",
            f"--num_runs={runs}",
            "--min_secs=0",
            f"--max_secs={self.timeout_s:g}",
            PEAK_MEMORY_FLAG,
            *runtime_info.flags(runtime_info_file),
            *DELEGATE_FLAGS[delegate],
            *extra_args,
        ]

    def accuracy_argv(
        self,
        remote_model: str,
        delegate: str,
        threads: int,
        extra_args: list[str],
        tensors: tuple[str, tuple[int, ...], str, str],
    ) -> list[str]:
        """benchmark_model's argv for one held-out input through the row's delegate and threads: one run,
        no warm-up; ``tensors`` is (input name, input shape, remote input file, remote output dump)."""
        name, shape, remote_input, remote_output = tensors
        return [
            self.tool(delegate),
            f"--graph={remote_model}",
            f"--num_threads={threads}",
            "--warmup_runs=0",
            "--warmup_min_secs=0",
            "--num_runs=1",
            "--min_secs=0",
            f"--input_layer={name}",
            f"--input_layer_shape={','.join(map(str, shape))}",
            f"--input_layer_value_files={name}:{remote_input}",
            f"{tensor_files.OUTPUT_DUMP_FLAG}={remote_output}",
            *DELEGATE_FLAGS[delegate],
            *extra_args,
        ]

    def tool(self, delegate: str) -> str:
        """The device path of the benchmark tool that runs ``delegate``'s rows."""
        name = NPU_BINARY_NAME if delegate == "npu" and self.npu_binary is not None else BINARY_NAME
        return f"{REMOTE_DIR}/{name}"

    def command_line(self, argv: list[str], cpu_mask: str | None, delegate: str | None = None) -> str:
        """The device-shell string: [timeout -s KILL N] [taskset MASK] [env NPU_ENVIRONMENT] argv..., stderr
        merged into stdout."""
        prefix = ["timeout", "-s", "KILL", str(self.kill_after_s)] if self.has_timeout else []
        prefix += ["taskset", cpu_mask] if cpu_mask else []
        prefix += ["env", *NPU_ENVIRONMENT] if delegate == "npu" else []
        return f"{shlex.join(prefix + argv)} 2>&1"

    def run(self, command_line: str) -> Outcome:
        started = time.monotonic()
        try:
            result = self.adb.shell(command_line, timeout=self.kill_after_s + KILL_GRACE_S)
        except TransportError as error:
            if self.adb.state() != "device":
                self.lost = True
                return Outcome("", None, f"device {self.adb.serial} disconnected during the run ({error})")
            return Outcome("", None, str(error))
        ran_s, killed = time.monotonic() - started, result.exit_code == 128 + signal.SIGKILL
        # only a run as long as the timer was ended by it: an earlier SIGKILL came from elsewhere
        if self.has_timeout and (killed or result.exit_code == 124) and ran_s >= 0.9 * self.kill_after_s:
            return Outcome(
                result.output,
                result.exit_code,
                f"timed out: killed after {self.kill_after_s} s (--timeout {self.timeout_s:g})",
            )
        if killed:
            return Outcome(
                result.output,
                result.exit_code,
                f"killed by SIGKILL (exit status {result.exit_code}) after {ran_s:.1f} s, not by --timeout: "
                "e.g. out of memory (Android's low-memory killer)",
            )
        return Outcome(result.output, result.exit_code, None)

    def deviation(
        self,
        remote_model: str,
        delegate: str,
        threads: int,
        runs: int,
        extra_args: list[str],
        cpu_mask: str | None,
    ) -> dict:
        """Run inference_diff on one (model, delegate): its metrics, or the error that stopped it."""
        if delegate not in inference_diff.DELEGATE_VALUES:
            return {
                "tool": inference_diff.TOOL_NAME,
                "status": "error",
                "error": f"inference_diff has no {delegate} delegate",
            }
        output = f"{REMOTE_DIR}/{inference_diff.TOOL_NAME}_metrics.pb"
        argv = inference_diff.argv(
            f"{REMOTE_DIR}/{inference_diff.TOOL_NAME}",
            remote_model,
            delegate,
            threads,
            runs,
            output,
            extra_args_for(delegate, extra_args, shared=False),
        )
        line = self.command_line(argv, cpu_mask)
        record = {
            "tool": inference_diff.TOOL_NAME,
            "reference": "1 CPU thread, no delegate",
            "threads": threads,
            "command_line": line,
            "status": "error",
            "error": None,
        }
        outcome = self.run(line)
        metrics = inference_diff.parse_log(outcome.output)
        try:
            if metrics is None and outcome.error is None and outcome.exit_code == 0:
                metrics = inference_diff.parse_text_proto(self.adb.run(["cat", output]).output)
            self.adb.run(["rm", "-f", output])
        except TransportError as error:
            self.lost = self.adb.state() != "device"
            outcome = Outcome(outcome.output, outcome.exit_code, outcome.error or str(error))
        if metrics is not None and outcome.error is None and outcome.exit_code == 0:
            record.update(status="ok", **metrics)
        else:
            record["error"] = outcome.error or inference_diff.failure_message(
                outcome.output, outcome.exit_code
            )
            record["log"] = outcome.output[-2000:]
        return record

    def cleanup(self) -> str | None:
        """Remove what this session pushed (and the folder if then empty); a warning if that failed."""
        if self.keep or not self.pushed:
            return None
        try:
            removed = self.adb.run(["rm", "-f", "--", *self.pushed])
            self.adb.shell(f"rmdir {shlex.quote(NPU_DIR)} {shlex.quote(REMOTE_DIR)} 2>/dev/null || true")
        except TransportError as error:
            return f"could not remove the pushed files from the device: {error}"
        return None if removed.exit_code == 0 else f"rm on the device failed: {removed.output.strip()}"


def failure_text(output: str, exit_code: int | None) -> str:
    """A failed benchmark_model run in one line: its exit status (or that it printed no timings) and its last
    lines, for when the output holds no error message of its own."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    what = exit_status_text(exit_code) if exit_code else "printed no timings"
    return f"benchmark_model {what}" + (f": {' | '.join(lines[-3:])}" if lines else "")


def exit_status_text(code: int) -> str:
    if code > 128:
        try:
            return f"exit status {code} ({signal.Signals(code - 128).name})"
        except ValueError:
            pass
    return f"exit status {code}"
