"""Pieces shared by the project's command-line interfaces."""

from __future__ import annotations

import argparse


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
        prog=prog, description=lines[0], epilog="\n".join(lines[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
