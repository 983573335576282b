"""Pieces every command line shares (``pynet_tf.cli``): size parsing and the settings summary."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from pynet_tf.cli import SETTINGS_WIDTH, compact, image_size, settings_summary


def test_image_size_parses_and_rejects():
    assert image_size("224x160") == (224, 160) and image_size("32X48") == (32, 48)
    for bad in ("224", "0x4", "ax4", "4x4x4"):
        with pytest.raises(argparse.ArgumentTypeError):
            image_size(bad)


def test_compact_values():
    assert compact(None) == "-" and compact(5e-4) == "0.0005" and compact(1.0) == "1"
    assert compact((5, 4, 3)) == "5,4,3" and compact([]) == ""
    assert compact({"a": 1, "b": {"c": None}}) == "{a=1, b={c=-}}"


def test_settings_summary_wraps_pairs_whole_and_keeps_every_setting():
    values = {f"key{i}": "v" * (1 + i % 7) for i in range(40)} | {"long": "x" * 200}
    text = settings_summary("train", values)
    lines = text.splitlines()
    assert lines[0].startswith("train: key0 ")
    assert all(line.startswith("  ") for line in lines[1:])
    # only a pair longer than the width may exceed it, alone on its line
    assert [line for line in lines if len(line) > SETTINGS_WIDTH] == ["  long " + "x" * 200]
    pairs = [pair for line in lines for pair in line.removeprefix("train:").strip().split(" · ")]
    assert pairs == [f"{key} {value}" for key, value in values.items()]  # in order, none split


def test_every_command_is_an_installed_script():
    """pyproject's [project.scripts]: each names a module's ``main(argv)`` and is installed beside Python
    (make installs the project into the virtualenv); one of them runs."""
    scripts = {
        ep.name: ep for ep in metadata.entry_points(group="console_scripts") if ep.name.startswith("pynet-")
    }
    assert set(scripts) >= {
        "pynet-train",
        "pynet-evaluate",
        "pynet-export-tflite",
        "pynet-bench",
        "pynet-report",
    }
    for name, entry in scripts.items():
        module, _, function = entry.value.partition(":")
        assert function == "main" and importlib.util.find_spec(module) is not None, name
        assert (Path(sys.executable).parent / name).is_file(), f"{name} is not installed: make reinstalls it"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "pynet-summary"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and "--base-filters" in done.stdout, done.stderr
