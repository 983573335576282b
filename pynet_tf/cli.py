"""Pieces shared by the project's command-line interfaces."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any


def image_size(text: str) -> tuple[int, int]:
    """argparse type for ``HxW`` (e.g. ``224x224``): two positive integers."""
    parts = text.lower().split("x")
    try:
        height, width = (int(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 224x224, got {text!r}") from None
    if height <= 0 or width <= 0:
        raise argparse.ArgumentTypeError(f"height and width must be positive, got {text!r}")
    return height, width


def command_parser(module: str, doc: str, *, script: bool = False) -> argparse.ArgumentParser:
    """``python -m MODULE``'s parser (``python path/to/module.py`` for a ``script``): the docstring's first
    line as the description, the rest (usage examples) after the flags."""
    lines = doc.strip().splitlines()
    prog = f"python {module.replace('.', '/')}.py" if script else f"python -m {module}"
    return argparse.ArgumentParser(
        prog=prog,
        description=lines[0],
        epilog="\n".join(lines[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


SETTINGS_WIDTH = 110
"""Columns a settings summary wraps at (the project's line length)."""


def compact(value: Any) -> str:
    """One setting's value, short: ``-`` for none, ``a,b`` for sequences, ``{k=v, ...}`` for mappings."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key}={compact(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return ",".join(compact(item) for item in value)
    return str(value)


def settings_summary(title: str, values: Mapping[str, Any]) -> str:
    """What a command will run with, for a person: ``title: key value · key value ...`` in lines of at most
    ``SETTINGS_WIDTH`` columns (a pair longer than that gets a line of its own), not a one-line JSON blob."""
    lines, line = [], f"{title}:"
    for key, value in values.items():
        pair = f"{key} {compact(value)}"
        if len(line) + 3 + len(pair) > SETTINGS_WIDTH and line.strip():
            lines.append(line)
            line = "  " + pair
        else:
            line += (" " if line.endswith(":") else " · ") + pair
    return "\n".join([*lines, line])
