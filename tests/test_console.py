"""The quiet console (``pynet_tf.console``): TensorFlow's banners and log chatter hidden, shown on request."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pynet_tf import console

ROOT = Path(__file__).resolve().parent.parent

NOISE = re.compile(
    r"absl::InitializeLog|^[IWEF]\d{4} \d\d:\d\d:\d\d|oneDNN|cuInit|cudart|retracing|Assets written|"
    r"^(INFO|WARNING) (absl|tensorflow)|^WARNING:absl|fully_quantize: |^INFO: Created TensorFlow Lite",
    re.MULTILINE,
)
"""What a newcomer must not see: absl's pre-init notice, C++ log lines (``I0000 00:00:...``), the oneDNN and
CUDA banners, retracing warnings, SavedModel's asset lines, the libraries' Python log records, the TFLite
converter's per-quantization line and LiteRT's XNNPACK announcement."""

# Imports TensorFlow and runs an op (the op is what logs cuInit's error on a machine without a GPU), as the
# project's command lines do.
SCRIPT = "import pynet_tf, tensorflow as tf; print(int(tf.constant(1) + 1))"


def quiet_env(**extra: str) -> dict[str, str]:
    """This environment without the switches the test process set (conftest sets TF_CPP_MIN_LOG_LEVEL)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", console.VERBOSE_ENV)}
    return env | extra


def run(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout == "2\n"
    return done.stderr


def test_tensorflow_says_nothing_by_default_and_everything_when_verbose():
    """The same script: silent by default; with PYNET_VERBOSE=1 TensorFlow's own lines are back (so the quiet
    run is quiet because of the console, not because this TensorFlow has nothing to say)."""
    assert run(quiet_env()) == ""
    assert NOISE.search(run(quiet_env(**{console.VERBOSE_ENV: "1"})))


def test_native_quiet_drops_native_writes_unless_verbose(capfd, monkeypatch):
    monkeypatch.delenv(console.VERBOSE_ENV, raising=False)
    with console.native_quiet():
        os.write(2, b"fully_quantize: 0\n")
    assert capfd.readouterr().err == ""
    monkeypatch.setenv(console.VERBOSE_ENV, "1")
    with console.native_quiet():
        os.write(2, b"fully_quantize: 0\n")
    assert capfd.readouterr().err == "fully_quantize: 0\n"


def test_stderr_silenced_drops_file_descriptor_writes_and_restores_after_an_error(capfd):
    with console.stderr_silenced():
        os.write(2, b"from C\n")
    with pytest.raises(ValueError, match="surfaces"), console.stderr_silenced():
        raise ValueError("surfaces")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"
