"""python -m android_bench.run against a fake phone, and --host through LiteRT.

The phone is tests/fakes/adb (first on PATH; its /data/local/tmp is a temporary folder) running
tests/fakes/benchmark_model, which prints the real tool's format with timings from a host LiteRT run of the
model. Failure modes are the fakes' environment variables (see their docstrings). Models: PyNET level 5 at
base width 2 on a 32x32 packed input (converted once, ~2 s), with a real export sidecar; a 5-op graph whose
CUMSUM XNNPACK cannot take; and the third-party MicroISP (1x1500x2000x4).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from model_fixtures import informative

from android_bench import run, runtime_info
from android_bench.adb import Adb, AdbError, ShellResult, TransportError, choose_device, parse_devices
from android_bench.device import DeviceSession, parse_thermal
from export import sidecar
from export.tflite import to_tflite_float32
from pynet_tf.nets.pynet.model import build_pynet
from reporting import report

FAKES = Path(__file__).resolve().parent / "fakes"
REPO = Path(__file__).resolve().parents[1]
MICROISP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "third_party" / "MicroISP.tflite"
WEIRD = "a b;rm -rf x.tflite"


def _function_model(path: Path, shape) -> Path:
    """x -> relu(2x + 1) -> cumsum -> 3y + 1: MUL, ADD, CUMSUM, MUL, ADD (XNNPACK has no CUMSUM)."""
    module = tf.Module()
    module.f = tf.function(
        lambda x: tf.math.cumsum(tf.nn.relu(x * 2.0 + 1.0), axis=1) * 3.0 + 1.0,
        input_signature=[tf.TensorSpec(shape, tf.float32)],
    )
    path.write_bytes(
        tf.lite.TFLiteConverter.from_concrete_functions([module.f.get_concrete_function()], module).convert()
    )
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("models")
    content = to_tflite_float32(build_pynet(5, base_filters=2), (1, 32, 32, 4))
    pynet = folder / "pynet_level5_32x32_float32.tflite"
    pynet.write_bytes(content)
    side = sidecar.build_sidecar(
        pynet,
        content,
        export_format={"name": "float32", "description": "test"},
        source={"model": "build_pynet(5, base_filters=2)"},
        settings={"input_shape": "32x32"},
        calibration=None,
        fidelity=None,
    )
    sidecar.sidecar_path(pynet).write_text(json.dumps(side))
    weird = folder / "weird" / WEIRD
    weird.parent.mkdir()
    shutil.copyfile(pynet, weird)
    return {
        "pynet": pynet,
        "sidecar": side,
        "weird": weird,
        "partial": _function_model(folder / "partial.tflite", [1, 8, 8, 4]),
        "dynamic": _function_model(folder / "dynamic.tflite", [None, None, None, 4]),
    }


@pytest.fixture()
def phone(tmp_path, monkeypatch) -> dict:
    """The fake adb first on PATH, with `python3` meaning this interpreter (the fakes are Python scripts)."""
    bin_dir, device = tmp_path / "bin", tmp_path / "device"
    bin_dir.mkdir()
    device.mkdir()
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python3").chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), str(FAKES), os.environ.get("PATH", "")]))
    monkeypatch.setenv("FAKE_ADB_DEVICE_DIR", str(device))
    monkeypatch.setenv("FAKE_ADB_LOG", str(tmp_path / "adb.jsonl"))
    for name in (
        "FAKE_ADB_MODE",
        "FAKE_ADB_DISCONNECT_AFTER",
        "FAKE_BENCHMARK_FAIL_DELEGATE",
        "FAKE_BENCHMARK_GPU_FALLBACK",
        "FAKE_BENCHMARK_SLEEP",
        "FAKE_BENCHMARK_SLEEP_DELEGATE",
        "FAKE_BENCHMARK_CRASH",
        "FAKE_DIFF_FORMAT",
        "FAKE_BENCHMARK_NO_OUTPUT_FILEPATH",
        "FAKE_BENCHMARK_NO_RUNTIME_INFO",
    ):
        monkeypatch.delenv(name, raising=False)
    return {"device": device, "log": tmp_path / "adb.jsonl", "out": tmp_path / "results", "bin": bin_dir}


ONE_XNNPACK_RUN = ("--delegates", "xnnpack", "--threads", "1", "--runs", "1")
RUNTIME_INFO = "/data/local/tmp/pynet_bench/runtime_info.pb"


def device_run(phone, *flags: str) -> tuple[int, dict | None]:
    code = run.main(
        [*flags, "--benchmark-binary", str(FAKES / "benchmark_model"), "--out", str(phone["out"])]
    )
    files = sorted(phone["out"].glob("*.json"))
    return code, json.loads(files[-1].read_text()) if files else None


def adb_calls(phone) -> list[list[str]]:
    return [json.loads(line) for line in phone["log"].read_text().splitlines()]


def test_device_run_every_delegate(phone, models):
    code, doc = device_run(
        phone,
        "--models",
        str(models["pynet"]),
        "--delegates",
        "cpu,xnnpack,gpu,nnapi",
        "--threads",
        "1,2",
        "--warmup",
        "1",
        "--runs",
        "3",
        "--cpu-mask",
        "1",
        "--extra-args",
        "--enable_op_profiling=false",
    )
    assert code == 0
    assert (doc["format"], doc["version"], doc["run"]["mode"], doc["run"]["complete"]) == (
        "pynet-tf benchmark results",
        1,
        "device",
        True,
    )
    assert doc["run"]["finished"] is not None
    device = doc["device"]
    assert (
        device["serial"],
        device["model"],
        device["platform"],
        device["soc_model"],
        device["android_release"],
        device["abi"],
    ) == ("FAKE0001", "Pixel Fake", "fakesoc", "FS8000", "15", "arm64-v8a")
    assert device["timeout_command"] is True  # the fake device's shell has coreutils' timeout
    rows = doc["rows"]
    assert [(r["delegate"], r["threads"]) for r in rows] == [
        (d, t) for d in ("cpu", "xnnpack", "gpu", "nnapi") for t in (1, 2)
    ]
    total = sum(models["sidecar"]["ops"].values())  # the graph's nodes, counted by the exporter
    for row in rows:
        assert row["status"] == "ok" and row["error"] is None, row["error"]
        t = row["timings"]
        assert (t["warmup_runs"], t["inference_runs"]) == (1, 3)
        assert 0 < t["inference_min_ms"] <= t["inference_avg_ms"] <= t["inference_max_ms"]
        assert t["inference_min_ms"] <= t["percentiles_ms"]["p50"] <= t["inference_max_ms"]
        assert t["init_ms"] > 0 and t["first_inference_ms"] > 0
        assert row["memory"]["overall_mb"] >= row["memory"]["init_mb"] >= 0
        # the tool's periodic monitoring, asked for on every row: the process's peak, above the growth
        assert "--report_peak_memory_footprint=true" in row["command"]
        assert row["memory"]["peak_mb"] > row["memory"]["overall_mb"]
        assert (
            row["tool_model_size_mb"]
            == row["model"]["size_mb"]
            == round(models["pynet"].stat().st_size / 1e6, 6)
        )
        assert row["sidecar"] == models["sidecar"]
        assert (
            row["extra_args"] == ["--enable_op_profiling=false"]
            and row["command"][-1] == "--enable_op_profiling=false"
        )
        assert f"--num_threads={row['threads']}" in row["command"]
        assert row["command_line"].startswith("timeout -s KILL ") and " taskset 1 " in row["command_line"]
    coverage = {row["delegate"]: row["coverage"] for row in rows}
    assert coverage["cpu"] is None
    assert (
        coverage["xnnpack"]["status"],
        coverage["xnnpack"]["delegated_nodes"],
        coverage["xnnpack"]["cpu_nodes"],
    ) == ("full", total, 0)
    assert (coverage["gpu"]["status"], coverage["gpu"]["delegate"], coverage["gpu"]["total_nodes"]) == (
        "full",
        "TfLiteGpuDelegateV2",
        total,
    )
    assert coverage["nnapi"]["status"] == "none"
    assert "--use_xnnpack=false" in rows[0]["command"] and "--use_gpu=true" in rows[4]["command"]
    # where each op ran, from the runtime info file each row's tool wrote and the run pulled: the exporter's
    # op counts, all inside the delegate's kernels, as the "Replacing N out of M" lines count them (NNAPI
    # took nothing: the default XNNPACK ran it, as on a phone without an NNAPI accelerator for it)
    ops = models["sidecar"]["ops"]
    for row in rows:
        info = row["runtime_info"]
        assert info["status"] == "ok" and info["error"] is None, info
        assert info["total_nodes"] == total and info["subgraph"] == "main"
        assert f"--model_runtime_info_output_file={RUNTIME_INFO}" in row["command"]
        assert row["command"].index("--export_model_runtime_info=true") < row["command"].index(
            "--enable_op_profiling=false"
        )  # before the user's own flags, which come last
        inside = sum((Counter(kernel["ops"]) for kernel in info["kernels"]), Counter())
        assert inside + Counter(info["cpu_ops"]) == Counter(ops)
    info = {row["delegate"]: row["runtime_info"] for row in rows}
    assert info["cpu"]["kernels"] == [] and info["cpu"]["cpu_ops"] == ops and info["cpu"]["delegate"] is None
    for delegate in ("xnnpack", "gpu"):
        assert info[delegate]["delegate"] == {"status": "full", "delegated_nodes": total, "outside_ops": {}}
        assert info[delegate]["cpu_ops"] == {}
    assert [kernel["delegate"] for kernel in info["gpu"]["kernels"]] == ["TfLiteGpuDelegateV2"]
    assert info["xnnpack"]["delegate"]["delegated_nodes"] == coverage["xnnpack"]["delegated_nodes"]
    assert len(info["xnnpack"]["kernels"]) == coverage["xnnpack"]["partitions"]
    assert info["nnapi"]["delegate"] == {"status": "none", "delegated_nodes": 0, "outside_ops": ops}
    pulls = [call[3] for call in adb_calls(phone) if call[2:3] == ["pull"]]
    assert pulls.count(RUNTIME_INFO) == len(rows)
    # what was pushed is gone again (no --keep), the folder too, with the runtime info files
    assert not (phone["device"] / "pynet_bench").exists()


def test_shell_characters_stay_in_the_file_name_and_keep_skips_pushes(phone, models):
    canary = phone["device"] / "x.tflite"
    canary.write_text("must survive")
    code, doc = device_run(
        phone,
        "--models",
        str(models["weird"]),
        "--delegates",
        "xnnpack",
        "--threads",
        "1",
        "--runs",
        "2",
        "--keep",
    )
    assert code == 0 and canary.read_text() == "must survive"
    (row,) = doc["rows"]
    assert row["status"] == "ok" and row["model"]["name"] == WEIRD
    assert f"--graph=/data/local/tmp/pynet_bench/{WEIRD}" in row["command"]
    kept = phone["device"] / "pynet_bench" / WEIRD
    assert kept.read_bytes() == models["weird"].read_bytes()
    pushes = [call for call in adb_calls(phone) if call[2:3] == ["push"]]
    assert [call[-1] for call in pushes] == [
        "/data/local/tmp/pynet_bench/benchmark_model",
        f"/data/local/tmp/pynet_bench/{WEIRD}",
    ]
    # a second run finds both files with the same SHA-256 and pushes nothing; not having pushed them, it
    # leaves them in place even without --keep
    phone["log"].unlink()
    code, doc = device_run(
        phone, "--models", str(models["weird"]), "--delegates", "xnnpack", "--threads", "1", "--runs", "2"
    )
    assert code == 0 and doc["rows"][0]["status"] == "ok"
    assert not [call for call in adb_calls(phone) if call[2:3] == ["push"]]
    assert kept.is_file() and canary.read_text() == "must survive"


def test_a_delegates_own_extra_args_go_to_its_rows_only(phone, models):
    vendor = ["--external_delegate_path=/vendor/lib64/libfake.so", "--external_delegate_options=a:b"]
    gpu, shared = ["--gpu_precision_loss_allowed=false"], ["--enable_op_profiling=false"]
    code, doc = device_run(
        phone,
        "--models",
        str(models["pynet"]),
        "--delegates",
        "cpu,gpu,external",
        "--threads",
        "1",
        "--runs",
        "1",
        "--extra-args",
        " ".join([*vendor, *gpu, *shared]),
    )
    assert code == 0
    assert doc["run"]["settings"]["extra_args"] == [*vendor, *gpu, *shared]
    expected = {"cpu": shared, "gpu": [*gpu, *shared], "external": [*vendor, *shared]}
    for row in doc["rows"]:
        got = expected[row["delegate"]]
        assert row["extra_args"] == got and row["command"][-len(got) :] == got, row["delegate"]
        assert all(arg not in row["command"] for arg in {*vendor, *gpu} - {*got}), row["delegate"]
        assert ("EXTERNAL delegate created." in row["log"]) == (row["delegate"] == "external")
    assert doc["rows"][2]["coverage"]["status"] == "full"


@pytest.mark.parametrize("where", ["device", "host"])
def test_a_model_named_like_an_option_stays_a_file(phone, models, tmp_path, monkeypatch, where):
    """``--models .`` in a folder holding -x.tflite: adb push and the host child get it as a path."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    shutil.copyfile(models["pynet"], folder / "-x.tflite")
    monkeypatch.chdir(folder)
    flags = ["--models", ".", "--delegates", "cpu", "--threads", "1", "--runs", "1"]
    if where == "host":
        assert run.main(["--host", *flags, "--out", str(phone["out"])]) == 0
        (path,) = phone["out"].glob("*.json")
        (row,) = json.loads(path.read_text())["rows"]
    else:
        code, doc = device_run(phone, *flags)
        (row,) = doc["rows"]
        assert code == 0 and "--graph=/data/local/tmp/pynet_bench/-x.tflite" in row["command"]
    assert row["status"] == "ok" and row["model"]["name"] == "-x.tflite", row["error"]


def test_cooldown_pauses_between_rows(phone, models, monkeypatch):
    sleep, pauses = run.time.sleep, []

    def recorded(seconds: float) -> None:
        if seconds != 7.5:
            return sleep(seconds)  # someone else's (subprocess polls)
        shells = [call for call in adb_calls(phone) if call[2:3] == ["shell"]]
        pauses.append(sum("--graph=" in " ".join(call) for call in shells))  # rows run by then

    monkeypatch.setattr(run.time, "sleep", recorded)
    code, doc = device_run(
        phone,
        "--models",
        str(models["pynet"]),
        "--delegates",
        "cpu,xnnpack",
        "--threads",
        "1,2",
        "--runs",
        "1",
        "--cooldown",
        "7.5",
    )
    assert code == 0 and doc["run"]["settings"]["cooldown_s"] == 7.5
    assert pauses == [1, 2, 3]  # before every row but the first


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("unauthorized", "FAKE0001 is unauthorized: unlock the phone and accept"),
        ("offline", "FAKE0001 is offline: reconnect"),
        ("none", "no device: connect a phone"),
        ("two", "2 devices attached: FAKE0001 (device), FAKE0002 (device); pass --serial SERIAL"),
    ],
)
def test_device_states_are_one_line_errors(phone, models, monkeypatch, capsys, mode, expected):
    monkeypatch.setenv("FAKE_ADB_MODE", mode)
    code, doc = device_run(phone, "--models", str(models["pynet"]), "--delegates", "xnnpack")
    err = capsys.readouterr().err
    assert code == 2 and doc is None
    assert expected in err and len(err.strip().splitlines()) == 1


def test_serial_picks_one_of_two_devices(phone, models, monkeypatch):
    monkeypatch.setenv("FAKE_ADB_MODE", "two")
    code, doc = device_run(
        phone,
        "--models",
        str(models["pynet"]),
        *ONE_XNNPACK_RUN,
        "--serial",
        "FAKE0002",
    )
    assert code == 0 and doc["device"]["serial"] == "FAKE0002"
    assert all(call[:2] == ["-s", "FAKE0002"] for call in adb_calls(phone) if call[0] != "devices")


def test_missing_adb_says_how_to_install_it(phone, models, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(phone["bin"]))  # python3 only, no adb
    code, _ = device_run(phone, "--models", str(models["pynet"]))
    assert code == 2 and "adb not found on PATH" in capsys.readouterr().err


def test_delegate_failure_is_that_rows_error_and_partial_gpu(phone, models, monkeypatch):
    monkeypatch.setenv("FAKE_BENCHMARK_FAIL_DELEGATE", "nnapi")
    monkeypatch.setenv("FAKE_BENCHMARK_GPU_FALLBACK", "3")
    code, doc = device_run(
        phone, "--models", str(models["pynet"]), "--delegates", "nnapi,gpu", "--threads", "1", "--runs", "2"
    )
    assert code == 1 and doc["run"]["complete"]
    nnapi, gpu = doc["rows"]
    assert nnapi["status"] == "error" and nnapi["timings"] is None
    assert "Failed to apply NNAPI delegate." in nnapi["error"] and "Benchmarking failed." in nnapi["error"]
    # init failed before the tool writes its runtime info: no file, and the row says why
    assert nnapi["runtime_info"]["status"] == "error"
    assert nnapi["runtime_info"]["error"].startswith("the run stopped before benchmark_model wrote")
    assert gpu["status"] == "ok"
    total = sum(models["sidecar"]["ops"].values())
    assert gpu["coverage"] | {"unsupported_ops": None} == {
        "status": "partial",
        "delegate": "TfLiteGpuDelegateV2",
        "delegated_nodes": total - 3,
        "total_nodes": total,
        "cpu_nodes": 3,
        "partitions": 2,
        "unsupported_ops": None,
    }
    # the runtime info names the 3 nodes the GPU left: the graph's last three ops, on TFLite's own kernels
    last = [op["op_name"] for op in Interpreter(model_path=str(models["pynet"]))._get_ops_details()][-3:]
    assert gpu["runtime_info"]["delegate"] == {
        "status": "partial",
        "delegated_nodes": total - 3,
        "outside_ops": dict(Counter(last)),
    }
    assert gpu["runtime_info"]["cpu_ops"] == dict(Counter(last))


def test_disconnect_mid_run_keeps_what_ran(phone, models, monkeypatch):
    monkeypatch.setenv("FAKE_ADB_DISCONNECT_AFTER", "1")
    code, doc = device_run(
        phone,
        "--models",
        str(models["pynet"]),
        "--delegates",
        "cpu,xnnpack,gpu",
        "--threads",
        "1",
        "--runs",
        "2",
    )
    assert code == 1
    first, lost, skipped = doc["rows"]
    assert first["status"] == "ok"
    assert "FAKE0001 disconnected during the run" in lost["error"] and "error: closed" in lost["error"]
    assert skipped["error"] == "not run: device FAKE0001 disconnected earlier in this run"
    assert doc["run"]["finished"] is not None


@pytest.mark.parametrize("form", ["log", "textproto"])
def test_inference_diff_per_model_and_delegate(phone, models, monkeypatch, form):
    """--inference-diff-binary: one inference_diff run per (model, delegate), its metrics on each of the
    pair's rows, read from the current tool's log or (FAKE_DIFF_FORMAT=textproto) the TF 2.2 tool's output
    file."""
    if form == "textproto":
        monkeypatch.setenv("FAKE_DIFF_FORMAT", "textproto")
    monkeypatch.setenv("FAKE_BENCHMARK_FAIL_DELEGATE", "gpu")
    code, doc = device_run(
        phone,
        "--models",
        str(models["pynet"]),
        "--delegates",
        "cpu,xnnpack,gpu",
        "--threads",
        "1,2",
        "--runs",
        "1",
        "--inference-diff-binary",
        str(FAKES / "inference_diff"),
        "--inference-diff-runs",
        "3",
    )
    assert code == 1  # the GPU rows
    shells = [" ".join(call[3:]) for call in adb_calls(phone) if call[2:3] == ["shell"]]
    diff_calls = [line for line in shells if "inference_diff --model_file" in line]
    assert len(diff_calls) == 3  # once per delegate, not per thread count
    by_delegate = {}
    for row in doc["rows"]:
        by_delegate.setdefault(row["delegate"], []).append(row["deviation"])
    for delegate, (first, second) in by_delegate.items():
        assert first == second and first["threads"] == 1, delegate
    cpu, xnnpack, gpu = (by_delegate[d][0] for d in ("cpu", "xnnpack", "gpu"))
    for record in (cpu, xnnpack):
        assert record["status"] == "ok" and record["runs"] == 3, record
        assert record["reference_avg_ms"] > 0 and record["test_avg_ms"] > 0
        assert [output["index"] for output in record["outputs"]] == [0]
        worst = record["outputs"][0]["worst_run_mean_abs"]
        assert (worst is None) == (form == "log")  # only the output file carries the worst run
    # the same kernels on one thread compute the same bits; XNNPACK's float kernels differ by rounding only
    assert cpu["outputs"][0]["mean_abs"] == 0.0
    assert 0.0 <= xnnpack["outputs"][0]["mean_abs"] < 1e-5
    assert "--delegate=xnnpack" in xnnpack["command_line"] and "--delegate" not in cpu["command_line"]
    assert gpu["status"] == "error" and "GPU delegate could not be created" in gpu["error"]
    assert doc["run"]["settings"]["inference_diff_runs"] == 3
    assert not (phone["device"] / "pynet_bench").exists()  # the tool and its output file are gone too
    # the report shows it in its own column, after the fidelity columns
    made = report.build(sorted(phone["out"].glob("*.json")), crops=False)
    table = [line for line in report.to_markdown(made).splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    column = header.index("mean abs Δ vs device CPU")
    cells = {line.split("|")[1].strip(): line.split("|")[column + 1].strip() for line in table[1:]}
    on_xnnpack = f"{xnnpack['outputs'][0]['mean_abs']:.2g}"
    assert [cells[row["id"]] for row in made.rows] == ["0", "0", on_xnnpack, on_xnnpack, "–", "–"]


@pytest.mark.parametrize(
    "env, flags, expected",
    [
        ({"FAKE_BENCHMARK_SLEEP": "20"}, ["--timeout", "1"], "timed out: killed after 3 s (--timeout 1)"),
        ({"FAKE_BENCHMARK_CRASH": "SEGV"}, [], "benchmark_model exit status 139 (SIGSEGV): "),
        # a SIGKILL long before the kill timer (Android's low-memory killer) is no timeout
        ({"FAKE_BENCHMARK_CRASH": "KILL"}, ["--timeout", "60"], "killed by SIGKILL (exit status 137) after "),
    ],
)
def test_hang_and_crash_are_row_errors(phone, models, monkeypatch, env, flags, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, doc = device_run(
        phone,
        "--models",
        str(models["pynet"]),
        *ONE_XNNPACK_RUN,
        *flags,
    )
    assert code == 1
    assert doc["rows"][0]["error"].startswith(expected), doc["rows"][0]["error"]


@pytest.mark.parametrize("timeout, kill", [(1, 3), (4, 10), (600, 1230)])
def test_the_kill_timer_leaves_both_max_secs_phases_and_init(timeout, kill):
    """benchmark_model applies --max_secs to the warm-up and again to the measured runs, so a row that ends
    both phases at the limit runs twice --timeout plus init and is not to be killed."""
    session = DeviceSession(Adb("adb", "FAKE0001"), FAKES / "benchmark_model", keep=False, timeout_s=timeout)
    session.has_timeout = True
    assert session.kill_after_s == kill
    assert session.command_line(["tool"], None) == f"timeout -s KILL {kill} tool 2>&1"


def test_a_failed_prepare_removes_what_it_pushed(phone, models, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_ADB_PUSH_FAIL", "inference_diff")  # after benchmark_model is on the device
    code, doc = device_run(
        phone,
        "--models",
        str(models["pynet"]),
        *ONE_XNNPACK_RUN,
        "--inference-diff-binary",
        str(FAKES / "inference_diff"),
    )
    assert code == 2 and doc is None
    assert "remote No space left on device" in capsys.readouterr().err
    pushes = [call[-1] for call in adb_calls(phone) if call[2:3] == ["push"]]
    assert pushes == [f"/data/local/tmp/pynet_bench/{name}" for name in ("benchmark_model", "inference_diff")]
    assert not (phone["device"] / "pynet_bench").exists()


def test_ctrl_c_while_opening_the_device_exits_130_and_cleans_up(phone, models, monkeypatch):
    shell = Adb.shell

    def interrupted(self, command: str, timeout: float | None = 120):
        if command.startswith("command -v timeout"):  # prepare()'s last step, after the push
            raise KeyboardInterrupt
        return shell(self, command, timeout)

    monkeypatch.setattr(Adb, "shell", interrupted)
    code, doc = device_run(phone, "--models", str(models["pynet"]), *ONE_XNNPACK_RUN)
    assert code == 130 and doc is None
    assert not (phone["device"] / "pynet_bench").exists()


def fake_adb_processes(device: Path) -> list[int]:
    """Live tests/fakes/adb processes of the fake phone at ``device`` (Linux /proc; zombies read empty)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline, environ = (proc / "cmdline").read_bytes(), (proc / "environ").read_bytes()
        except OSError:  # not a process, gone, or another user's
            continue
        if str(FAKES / "adb").encode() in cmdline and f"FAKE_ADB_DEVICE_DIR={device}".encode() in environ:
            found.append(int(proc.name))
    return found


def terminate_when(ready, command: list[str], env: dict) -> tuple[subprocess.Popen, str]:
    """Run ``command`` (python -m android_bench.run ...), SIGTERM it once ``ready()``; (process, stderr)."""
    child = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 240  # TensorFlow's import and the first row on a busy 2-core machine
        while not ready():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the run never got there"
            time.sleep(0.1)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=30)  # well before the hanging row's 60 s would end
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    return child, err


def saved(out: Path) -> dict | None:
    files = sorted(out.glob("*.json"))
    return json.loads(files[-1].read_text()) if files else None


def test_sigterm_mid_row_cleans_the_device_and_keeps_the_finished_rows(phone, models):
    """What CI time-outs and `kill` send, while the second row's benchmark_model runs: handled as Ctrl-C,
    with exit status 128 + 15."""
    env = {**os.environ, "FAKE_BENCHMARK_SLEEP": "60", "FAKE_BENCHMARK_SLEEP_DELEGATE": "gpu"}
    command = [sys.executable, "-m", "android_bench.run", "--models", str(models["pynet"]), "--delegates"]
    command += [
        "xnnpack,gpu",
        "--threads",
        "1",
        "--runs",
        "1",
        "--benchmark-binary",
        str(FAKES / "benchmark_model"),
    ]
    command += ["--out", str(phone["out"])]

    def gpu_row_running() -> bool:
        return phone["log"].is_file() and sum("--graph=" in " ".join(call) for call in adb_calls(phone)) == 2

    child, err = terminate_when(gpu_row_running, command, env)
    assert child.returncode == 143, err
    assert len(err.strip().splitlines()) == 1 and "SIGTERM" in err and "Traceback" not in err, err
    doc = saved(phone["out"])
    assert [(row["delegate"], row["status"]) for row in doc["rows"]] == [("xnnpack", "ok")]
    assert doc["run"]["complete"] is False and doc["run"]["finished"] is not None
    assert not (phone["device"] / "pynet_bench").exists()  # benchmark_model and the model removed
    assert not fake_adb_processes(phone["device"])  # the adb shell running the tool was killed, not orphaned


def test_sigterm_during_a_host_run_keeps_the_finished_rows(models, tmp_path):
    out = tmp_path / "results"
    command = [sys.executable, "-m", "android_bench.run", "--host", "--models", str(models["pynet"])]
    command += [
        "--delegates",
        "cpu,xnnpack",
        "--threads",
        "1",
        "--runs",
        "1",
        "--cooldown",
        "60",
        "--out",
        str(out),
    ]

    def first_row_saved() -> bool:
        try:
            return bool((saved(out) or {}).get("rows"))
        except ValueError:  # read while being replaced
            return False

    child, err = terminate_when(first_row_saved, command, dict(os.environ))
    assert child.returncode == 143, err
    assert len(err.strip().splitlines()) == 1 and "SIGTERM" in err and "Traceback" not in err, err
    doc = saved(out)
    assert [(row["delegate"], row["status"]) for row in doc["rows"]] == [("cpu", "ok")]
    assert doc["run"]["complete"] is False


def test_two_models_of_one_name_are_both_named(phone, models, tmp_path, capsys):
    """The device folder holds one file per name: the error says which two files collide."""
    other = tmp_path / "other" / models["pynet"].name
    other.parent.mkdir()
    shutil.copyfile(models["pynet"], other)
    code, doc = device_run(phone, "--models", str(models["pynet"]), str(other), *ONE_XNNPACK_RUN)
    err = capsys.readouterr().err
    assert code == 2 and doc is None
    assert err.startswith("error: --models ") and len(err.strip().splitlines()) == 1, err
    assert str(models["pynet"]) in err and str(other) in err, err


def test_binary_for_another_cpu_is_refused(phone, models, tmp_path, capsys):
    elf = tmp_path / "benchmark_model_x86_64"
    elf.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(11) + (0x3E).to_bytes(2, "little") + bytes(44))
    code = run.main(
        ["--models", str(models["pynet"]), "--benchmark-binary", str(elf), "--out", str(phone["out"])]
    )
    err = capsys.readouterr().err
    assert code == 2 and "is built for x86_64 but the device runs arm64-v8a" in err
    assert not [call for call in adb_calls(phone) if call[2:3] == ["push"]]


DEVICE = ["--models", "{pynet}", "--benchmark-binary", "{binary}"]
HOST = ["--host", "--models", "{pynet}"]


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--models", "nope.tflite", "--benchmark-binary", "{binary}"], "--models nope.tflite: no such file"),
        ([*DEVICE, "--threads", "0"], "--threads '0': thread counts must be at least 1"),
        ([*DEVICE, "--threads", "one"], "--threads 'one': give whole numbers"),
        ([*DEVICE, "--delegates", "tpu"], "--delegates tpu: not available"),
        ([*DEVICE, "--delegates", "gpu,gpu"], "without repeats"),
        ([*DEVICE, "--runs", "0"], "--runs 0: must be at least 1"),
        ([*DEVICE, "--cpu-mask", "zz"], "--cpu-mask 'zz'"),
        ([*DEVICE, "--extra-args", "'unclosed"], "--extra-args"),
        ([*DEVICE, "--delegates", "external"], "--delegates external needs --extra-args"),
        (
            [*DEVICE, "--delegates", "cpu", "--extra-args", "--gpu_precision_loss_allowed=false"],
            "--extra-args --gpu_precision_loss_allowed=false: a gpu delegate flag, given only to gpu rows",
        ),
        (["--models", "{pynet}"], "--benchmark-binary : give the path of"),
        ([*HOST, "--delegates", "gpu"], "--delegates gpu: not available (--host runs LiteRT on this machine"),
        ([*HOST, "--serial", "X"], "--serial: only for a phone run"),
        ([*DEVICE, "--inference-diff-binary", "run_eval"], "--inference-diff-binary run_eval: no such file"),
        ([*DEVICE, "--inference-diff-runs", "0"], "--inference-diff-runs 0: must be at least 1"),
        ([*DEVICE, "--delegates", "npu"], "--delegates npu needs --npu-libraries: the vendor's LiteRT"),
        ([*DEVICE, "--npu-libraries", "{binary}"], "--npu-libraries: only for npu rows"),
        ([*DEVICE, "--delegates", "npu", "--npu-libraries", "/nope"], "--npu-libraries /nope: no such file"),
        ([*HOST, "--npu-libraries", "{binary}"], "--npu-libraries: only for a phone run"),
        ([*HOST, "--op-profile"], "--op-profile: only for a phone run"),
        ([*DEVICE, "--npu-benchmark-binary", "{binary}"], "--npu-benchmark-binary: only for npu rows"),
    ],
)
def test_bad_flags_are_one_line_errors(models, tmp_path, capsys, flags, expected):
    names = {"pynet": models["pynet"], "binary": FAKES / "benchmark_model"}
    assert run.main([flag.format(**names) for flag in flags] + ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.json"))


def test_host_run_rows_memory_and_coverage(models, tmp_path):
    out = tmp_path / "results"
    code = run.main(
        [
            "--host",
            "--models",
            str(models["pynet"]),
            str(models["partial"]),
            str(models["dynamic"]),
            "--delegates",
            "cpu,xnnpack",
            "--threads",
            "1,2",
            "--warmup",
            "1",
            "--runs",
            "3",
            "--out",
            str(out),
        ]
    )
    (path,) = out.glob("*_host.json")
    doc = json.loads(path.read_text())
    assert code == 1  # the dynamic-shape rows fail, the others run
    assert (
        doc["run"]["mode"] == "host" and doc["device"]["kind"] == "host" and doc["device"]["cpu_count"] >= 1
    )
    rows = {(Path(r["model"]["path"]).name, r["delegate"], r["threads"]): r for r in doc["rows"]}
    assert len(rows) == 12
    for (name, delegate, threads), row in rows.items():
        if name == "dynamic.tflite":
            assert row["status"] == "error" and "has a dynamic shape [-1, -1, -1, 4]" in row["error"]
            continue
        assert row["status"] == "ok", row["error"]
        t, memory = row["timings"], row["memory"]
        assert (t["warmup_runs"], t["inference_runs"]) == (1, 3)
        assert (
            t["inference_min_ms"]
            <= t["percentiles_ms"]["p50"]
            <= t["percentiles_ms"]["p90"]
            <= t["inference_max_ms"]
        )
        # peak: the child's absolute high-water mark, at least Python + LiteRT (~37 MB measured)
        assert memory["peak_mb"] > 20 and memory["peak_mb"] >= memory["overall_mb"] >= memory["init_mb"] >= 0
        assert row["command"][row["command"].index("--threads") + 1] == str(threads)
    total = sum(models["sidecar"]["ops"].values())
    pynet_xnnpack = rows[(models["pynet"].name, "xnnpack", 2)]["coverage"]
    assert (pynet_xnnpack["status"], pynet_xnnpack["delegated_nodes"], pynet_xnnpack["total_nodes"]) == (
        "full",
        total,
        total,
    )
    assert rows[(models["pynet"].name, "xnnpack", 2)]["sidecar"] == models["sidecar"]
    partial = rows[("partial.tflite", "xnnpack", 1)]["coverage"]
    assert (
        partial["status"],
        partial["delegated_nodes"],
        partial["total_nodes"],
        partial["cpu_nodes"],
        partial["partitions"],
    ) == ("partial", 4, 5, 1, 2)  # CUMSUM splits MUL, ADD | MUL, ADD
    assert rows[("partial.tflite", "cpu", 1)]["coverage"] is None


def test_host_timeout_is_the_rows_error(models, tmp_path):
    code = run.main(
        [
            "--host",
            "--models",
            str(models["pynet"]),
            "--delegates",
            "cpu",
            "--threads",
            "1",
            "--timeout",
            "0.01",
            "--out",
            str(tmp_path),
        ]
    )
    (path,) = tmp_path.glob("*.json")
    assert code == 1
    assert json.loads(path.read_text())["rows"][0]["error"] == "timed out after 0.01 s (--timeout)"


def test_host_runs_the_third_party_microisp(tmp_path):
    # One inference of a 1x1500x2000x4 input, with LiteRT's built-in kernels: XNNPACK takes ~37 s and 10 GB
    # to initialise on this model here (measured), too much for a test.
    code = run.main(
        [
            "--host",
            "--models",
            str(MICROISP),
            "--delegates",
            "cpu",
            "--threads",
            "2",
            "--warmup",
            "0",
            "--runs",
            "1",
            "--timeout",
            "300",
            "--out",
            str(tmp_path),
        ]
    )
    (path,) = tmp_path.glob("*.json")
    (row,) = json.loads(path.read_text())["rows"]
    assert code == 0 and row["status"] == "ok", row["error"]
    assert row["sidecar"] is None and row["coverage"] is None
    assert (row["timings"]["warmup_runs"], row["timings"]["inference_runs"]) == (0, 1)
    # its output alone, 1x3000x4000x3 float32, is 137.3 MiB that must become resident (measured: 331 MiB)
    assert row["memory"]["overall_mb"] > 3000 * 4000 * 3 * 4 / 2**20


def test_parse_devices_and_choose():
    # the format `adb devices -l` prints (developer.android.com/tools/adb), plus the states users meet
    listing = (
        "List of devices attached\n"
        "emulator-5556 device product:sdk_google_phone_x86_64 model:Android_SDK_built_for_x86_64 "
        "device:generic_x86_64 transport_id:1\n"
        "0a388e93      no permissions (user in plugdev group; are your udev rules wrong?); see "
        "[http://developer.android.com/tools/device.html] usb:1-1\n\n"
    )
    entries = parse_devices(listing)
    assert [(e.serial, e.state) for e in entries] == [
        ("emulator-5556", "device"),
        ("0a388e93", "no permissions"),
    ]
    assert entries[0].details["model"] == "Android_SDK_built_for_x86_64"
    assert choose_device(entries, "emulator-5556").serial == "emulator-5556"
    with pytest.raises(AdbError, match="0a388e93 is no permissions: the USB device is not accessible"):
        choose_device(entries, "0a388e93")
    with pytest.raises(AdbError, match="--serial nope: no such device"):
        choose_device(entries, "nope")


@pytest.mark.parametrize(
    "stdout, output, code",
    [
        ('{\n  "a": 1\n}__PYNET_BENCH_EXIT__=0\n', '{\n  "a": 1\n}', 0),  # no final newline before the marker
        ("x\r\n__PYNET_BENCH_EXIT__=3\r\n", "x", 3),  # a pty shell (no shell v2) ends lines in CR LF
        ("__PYNET_BENCH_EXIT__=0\n", "", 0),
    ],
)
def test_shell_reads_the_exit_marker_at_the_end(monkeypatch, stdout, output, code):
    adb = Adb("adb", "FAKE0001")
    monkeypatch.setattr(adb, "call", lambda *args, **kw: subprocess.CompletedProcess(args, 0, stdout, ""))
    assert adb.shell("cat f") == ShellResult(output, code)


def test_shell_without_the_marker_is_a_transport_error(monkeypatch):
    adb = Adb("adb", "FAKE0001")
    monkeypatch.setattr(adb, "call", lambda *args, **kw: subprocess.CompletedProcess(args, 1, "", "closed\n"))
    with pytest.raises(TransportError, match="adb shell failed: closed"):
        adb.shell("true")


def test_thermal_zones_in_millidegrees_or_degrees():
    text = "cpu-0-0-usr 41200\nbattery 28\nskin-therm 39800\nbroken \nbms -273000\ncpu-0-0-usr 42000\n"
    assert parse_thermal(text) == {
        "cpu-0-0-usr": 41.2,
        "battery": 28.0,
        "skin-therm": 39.8,
        "cpu-0-0-usr#2": 42.0,
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    """A float32 and an int8 file of a saved PyNET level 5 (width 2) with their sidecars: what the device's
    accuracy is scored against (the float model the sidecar names is on this machine)."""
    from export.pipeline import export_model

    folder = tmp_path_factory.mktemp("exported")
    tf.keras.utils.set_random_seed(0)
    informative(build_pynet(5, base_filters=2)).save(folder / "model.keras")
    results = export_model(
        folder / "model.keras", ["float32", "int8"], out=folder / "out", input_shape=(32, 32)
    )
    assert [result.status for result in results] == ["ok", "ok"], [result.message for result in results]
    return {result.format: result for result in results}


def _builtin_kernels_psnr(path: Path, sidecar: dict, folder: Path) -> float:
    """PSNR vs the float model of ``path`` run here on LiteRT's built-in kernels (no XNNPACK), on the held-out
    inputs the device gets: the independent figure a cpu row must reproduce."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from android_bench import device_accuracy

    held = device_accuracy.prepare(path, sidecar, folder)
    dumps = []
    for tensor_file in held.files:
        interpreter = Interpreter(
            model_path=str(path),
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        interpreter.allocate_tensors()
        (detail,) = interpreter.get_input_details()
        interpreter.set_tensor(
            detail["index"], np.frombuffer(tensor_file.read_bytes(), detail["dtype"]).reshape(detail["shape"])
        )
        interpreter.invoke()
        dumps.append(
            b"".join(interpreter.get_tensor(o["index"]).tobytes() for o in interpreter.get_output_details())
        )
    return device_accuracy.score(held, dumps)["vs_float"]["psnr"]


# The fake runs the pushed input bytes with LiteRT and the row's kernels (built-in for cpu, XNNPACK for
# xnnpack), as a phone runs them with its own. The sidecar was measured through LiteRT's default (XNNPACK):
# an xnnpack row reproduces it exactly (the same bytes through the same kernels; 1e-9 dB is float printing),
# a cpu row reproduces the built-in kernels' own figure computed here. Measured on this int8 file: 15.76 dB
# vs float through XNNPACK, 9.94 dB through the built-in int8 kernels: what on-device accuracy is for.
SAME_KERNELS_DB = 1e-9


def test_accuracy_on_the_device_per_delegate(phone, exported, models, tmp_path):
    files = [str(exported[name].path) for name in ("float32", "int8")]
    code, doc = device_run(
        phone,
        "--models",
        *files,
        str(models["pynet"]),
        "--delegates",
        "cpu,xnnpack",
        "--threads",
        "1",
        "--runs",
        "1",
    )
    assert code == 0
    for row in doc["rows"]:
        measured = row["device_accuracy"]
        if row["model"]["name"] == models["pynet"].name:  # its sidecar names no float model file
            assert measured["status"] == "unavailable" and "is not on this machine" in measured["error"]
            continue
        host = row["sidecar"]["fidelity"]
        assert measured["status"] == "ok", measured
        assert measured["images"] == host["images"]
        assert measured["fidelity"]["classical_isp"] == host["classical_isp"]
        if row["delegate"] == "xnnpack":
            assert abs(measured["psnr_vs_float"] - host["vs_float"]["psnr"]) <= SAME_KERNELS_DB
            assert abs(measured["psnr_vs_gt"] - host["vs_ground_truth"]["file"]["psnr"]) <= SAME_KERNELS_DB
        else:
            path = Path(row["model"]["path"])
            expected = _builtin_kernels_psnr(path, row["sidecar"], tmp_path / path.stem)
            assert abs(measured["psnr_vs_float"] - expected) <= SAME_KERNELS_DB
    shells = [" ".join(call[3:]) for call in adb_calls(phone) if call[2:3] == ["shell"]]
    held_out_runs = [line for line in shells if "--input_layer_value_files=" in line]
    assert len(held_out_runs) == 2 * 2 * exported["float32"].sidecar["fidelity"]["images"]
    assert all("--output_filepath=" in line and "--num_runs=1" in line for line in held_out_runs)
    assert not (phone["device"] / "pynet_bench").exists()  # inputs and dumps removed with the rest


@pytest.mark.parametrize(
    ("mode", "how"), [("warn", "Unconsumed cmdline flags: --output_filepath"), ("silent", "silently")]
)
def test_a_tool_too_old_to_dump_outputs_keeps_the_latency_and_says_why(
    phone, exported, monkeypatch, mode, how
):
    monkeypatch.setenv("FAKE_BENCHMARK_NO_OUTPUT_FILEPATH", mode)
    code, doc = device_run(phone, "--models", str(exported["float32"].path), *ONE_XNNPACK_RUN)
    assert code == 0
    (row,) = doc["rows"]
    assert row["status"] == "ok" and row["timings"]["inference_avg_ms"] > 0
    assert row["device_accuracy"]["status"] == "unsupported"
    assert (
        "wrote no output dump" in row["device_accuracy"]["error"] and how in row["device_accuracy"]["error"]
    )
    # such a tool (before mid-2022) knows no runtime info flags either
    assert row["runtime_info"]["status"] == "unsupported"
    said = {"warn": "Unconsumed cmdline flags: --export_model_runtime_info=true", "silent": "flag silently"}
    assert said[mode] in row["runtime_info"]["error"]


def test_the_fakes_runtime_info_is_the_placement_its_delegate_lines_count(models, tmp_path):
    """The fake tool run directly on the 5-op graph whose CUMSUM XNNPACK cannot take: its runtime info puts the
    other 4 nodes in 2 XNNPACK kernels, as its "Replacing" line counts; a path that does not open is logged as
    the real tool logs it (with the message as text), and the row then says why it has none."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_BENCHMARK_")}
    written, unwritable = tmp_path / "info.pb", tmp_path / "no" / "info.pb"
    outputs = []
    for path in (written, unwritable):
        flags = [
            f"--graph={models['partial']}",
            "--num_runs=1",
            "--use_xnnpack=true",
            *runtime_info.flags(str(path)),
        ]
        done = subprocess.run(
            [sys.executable, str(FAKES / "benchmark_model"), *flags],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        outputs.append(done.stdout)
    assert (
        "Replacing 4 out of 5 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 2 partitions"
        in outputs[0]
    )
    record = runtime_info.record(runtime_info.parse(written.read_bytes()), "xnnpack")
    assert record["delegate"] == {"status": "partial", "delegated_nodes": 4, "outside_ops": {"CUMSUM": 1}}
    assert [(kernel["delegate"], kernel["ops"]) for kernel in record["kernels"]] == [
        ("TfLiteXNNPackDelegate", {"ADD": 1, "MUL": 1})
    ] * 2
    assert f"ERROR: Failed to open file: {unwritable}\nINFO: subgraphs {{" in outputs[1]
    assert runtime_info.missing(outputs[1], 0, None) == {
        "status": "error",
        "error": f"Failed to open file: {unwritable}",
    }


def _predicting(folder: Path, model: Path, delegates: dict) -> Path:
    """A copy of ``model`` in ``folder`` whose sidecar's op tables say ``delegates`` (export/delegates.py's
    entries), as if the hand-kept tables had drifted from the delegates."""
    copy = folder / model.name
    shutil.copyfile(model, copy)
    side = json.loads(sidecar.sidecar_path(model).read_text())
    side["delegates"] |= delegates
    sidecar.sidecar_path(copy).write_text(json.dumps(side))
    return copy


def test_the_report_names_the_ops_the_runtime_info_and_the_op_tables_disagree_on(phone, models, tmp_path):
    """The tables say the GPU refuses TANH and NNAPI takes the whole graph; on the (fake) phone the GPU ran
    every op, TANH included, and NNAPI none: the report flags both rows, from the runtime info, and names the
    op types where the counts differ."""
    refusing = {"gpu": {"supported": "partial", "unsupported_ops": {"TANH": 1}}}
    model = _predicting(tmp_path, models["pynet"], refusing)
    code, doc = device_run(
        phone, "--models", str(model), "--delegates", "gpu,nnapi", "--threads", "1", "--runs", "1"
    )
    assert code == 0 and [row["runtime_info"]["status"] for row in doc["rows"]] == ["ok", "ok"]
    made = report.build(sorted(phone["out"].glob("*.json")), crops=False)
    gpu, nnapi = made.rows
    assert (gpu["placement_from"], gpu["predicted_coverage"], gpu["placement_mismatch"]) == (
        "runtime info",
        "partial",
        True,
    )
    assert gpu["placement_note"] == (
        "the export's op tables predicted partial (TANH x1 unsupported), the runtime info has the delegate run "
        "full (no ops off it): they disagree on TANH (1 refused, 0 off it)"
    )
    ops = models["sidecar"]["ops"]
    assert nnapi["placement_mismatch"] is True and nnapi["placement_from"] == "runtime info"
    assert nnapi["placement_note"].endswith(
        "they disagree on " + ", ".join(f"{op} (0 refused, {ops[op]} off it)" for op in sorted(ops))
    )
    assert any(
        note.startswith(f"#{gpu['id']} {model.name} on gpu: the export's op tables") for note in made.notes()
    )


def test_a_tool_without_runtime_info_falls_back_to_the_log_lines(phone, models, monkeypatch, tmp_path):
    """A tool from between mid-2022 and 2024 dumps outputs but knows no runtime info flags: it warns, the row
    says so, and the report compares the tables with the delegate log lines' full/partial/none instead."""
    monkeypatch.setenv("FAKE_BENCHMARK_NO_RUNTIME_INFO", "1")
    monkeypatch.setenv("FAKE_BENCHMARK_GPU_FALLBACK", "3")
    code, doc = device_run(
        phone, "--models", str(models["pynet"]), "--delegates", "gpu", "--threads", "1", "--runs", "1"
    )
    assert code == 0
    (row,) = doc["rows"]
    assert row["status"] == "ok" and row["coverage"]["status"] == "partial"
    written = f"{phone['device']}/pynet_bench/runtime_info.pb"  # the fake adb maps /data/local/tmp there
    how = "it warned: Unconsumed cmdline flags: --export_model_runtime_info=true "
    how += f"--model_runtime_info_output_file={written}"
    assert row["runtime_info"] == {
        "status": "unsupported",
        "error": runtime_info.TOO_OLD.format(flag="--export_model_runtime_info", how=how),
    }
    (made,) = report.build(sorted(phone["out"].glob("*.json")), crops=False).rows
    assert (made["placement_from"], made["placement_mismatch"]) == ("log lines", True)
    assert made["placement_note"] == (
        "the export's op tables predicted full (no ops unsupported), the tool ran partial (no ops unsupported)"
    )


def test_no_device_accuracy_skips_the_held_out_runs(phone, exported):
    code, doc = device_run(
        phone, "--models", str(exported["float32"].path), *ONE_XNNPACK_RUN, "--no-device-accuracy"
    )
    assert code == 0 and doc["rows"][0]["device_accuracy"] is None
    assert doc["run"]["settings"]["device_accuracy"] is False
    assert not any("--input_layer_value_files=" in " ".join(call) for call in adb_calls(phone))


def test_npu_rows_push_the_vendor_libraries_and_find_them(phone, models, tmp_path):
    """--delegates npu: the --npu-libraries go to pynet_bench/npu once, the npu rows run with LiteRT's NPU
    flags and LD_LIBRARY_PATH/ADSP_LIBRARY_PATH pointing there (as LiteRT's own command-line tool runs
    them), the cpu rows without, and everything is removed afterwards. Only this plumbing is tested: the
    fake tool has no NPU, and no vendor SDK or phone is here."""
    vendor = tmp_path / "qnn"
    vendor.mkdir()
    for name in ("libLiteRtDispatch_Qualcomm.so", "libLiteRtCompilerPlugin_Qualcomm.so", "libQnnHtp.so"):
        (vendor / name).write_bytes(name.encode())
    flags = ("--delegates", "cpu,npu", "--threads", "1", "--runs", "1", "--no-device-accuracy")
    litert_tool = tmp_path / "litert_benchmark_model"  # LiteRT's tool for the npu rows: here the same fake
    shutil.copyfile(FAKES / "benchmark_model", litert_tool)
    litert_tool.chmod(0o755)
    npu_flags = ("--npu-libraries", str(vendor), "--npu-benchmark-binary", str(litert_tool))
    code, doc = device_run(phone, "--models", str(models["pynet"]), *flags, *npu_flags)
    assert code == 0
    cpu, npu = doc["rows"]
    assert npu["status"] == "ok" and npu["delegate"] == "npu"
    npu_dir = "/data/local/tmp/pynet_bench/npu"
    expected = [
        "--use_npu=true",
        f"--dispatch_library_path={npu_dir}",
        f"--compiler_plugin_library_path={npu_dir}",
    ]
    assert all(flag in npu["command"] for flag in expected)
    assert f"env LD_LIBRARY_PATH={npu_dir} ADSP_LIBRARY_PATH={npu_dir} " in npu["command_line"]
    assert "--use_npu=true" not in cpu["command"] and "LD_LIBRARY_PATH" not in cpu["command_line"]
    assert npu["command"][0].endswith("/benchmark_model_litert") and cpu["command"][0].endswith(
        "/benchmark_model"
    )
    pushes = [call[-1] for call in adb_calls(phone) if call[2:3] == ["push"]]
    assert sorted(p for p in pushes if p.startswith(npu_dir)) == sorted(
        f"{npu_dir}/{p.name}" for p in vendor.iterdir()
    )
    assert [entry["name"] for entry in doc["run"]["settings"]["npu_libraries"]] == sorted(
        p.name for p in vendor.iterdir()
    )
    assert not (phone["device"] / "pynet_bench").exists()


def test_op_profile_per_row_with_the_instance_norms_share(phone, exported, tmp_path):
    """--op-profile: each row keeps the tool's per-op tables as time by op type and the instance norms' part.
    On built-in kernels (cpu) every op is named, so the norms' ops are found by their layers (7 ops per norm:
    MEAN, SUB, MUL, MEAN, ADD, RSQRT, MUL); through XNNPACK they sit inside delegate kernels, which the
    record says (delegated share) instead of calling the norms free. The fake splits each run's measured time
    over the ops it really runs (see the fake), so only the structure is checked here, not the times."""
    code, doc = device_run(
        phone,
        "--models",
        str(exported["int8"].path),
        "--delegates",
        "cpu,xnnpack",
        "--threads",
        "1",
        "--runs",
        "2",
        "--op-profile",
        "--no-device-accuracy",
    )
    assert code == 0 and doc["run"]["settings"]["op_profile"] is True
    cpu, xnnpack = doc["rows"]
    assert all("--enable_op_profiling=true" in row["command"] for row in doc["rows"])
    import tf_keras as keras

    norms = [
        layer
        for layer in keras.models.load_model(exported["int8"].sidecar["source"]["model"]).layers
        if layer.name.endswith("_norm")
    ]
    assert cpu["op_profile"]["norm"]["ops"] == 7 * len(norms) > 0
    assert 0 < cpu["op_profile"]["norm"]["share"] < 1 and cpu["op_profile"]["norm"]["delegated_share"] == 0
    assert sum(stat["count"] for stat in cpu["op_profile"]["by_type"]) == cpu["op_profile"]["nodes"]
    assert xnnpack["op_profile"]["norm"]["delegated_share"] > 0
    made = report.build(sorted(phone["out"].glob("*.json")), crops=False)
    headers = [name for name, _ in report.columns(made.rows)]
    assert "top ops" in headers and "norm share" in headers
    assert report.PROFILE_LEGEND in report.to_markdown(made)
