"""Every benchmark run writes down what it printed: ``benchmarks/results/<script>.md`` with the command, the
machine and the date above the output, so a measurement can be regenerated and diffed instead of living in
prose. ``run(main)`` wraps a script's ``main``: standard output is shown as usual and kept; when ``main``
returns 0 the file is written atomically (a failed or interrupted run leaves the last good one).
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import shlex
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from pynet_tf import atomic

RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = ("tensorflow", "ai-edge-litert")


class _Tee(io.TextIOBase):
    """Writes go to the real stream and into a buffer."""

    def __init__(self, stream) -> None:
        self.stream, self.kept = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.kept.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def machine() -> str:
    """The CPU model and the cores this process may use, for the results' header."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {len(os.sched_getaffinity(0))} cores, {platform.system()} {platform.release()}"


def document(script: str, argv: list[str], output: str) -> str:
    versions = []
    for package in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{package} {metadata.version(package)}")
    command = shlex.join([".venv/bin/python", f"benchmarks/{script}.py", *argv])
    return (
        f"# {script}\n\n"
        f"- command: `{command}`\n"
        f"- machine: {machine()}\n"
        f"- date: {datetime.now(UTC).isoformat(timespec='seconds')}\n"
        f"- software: Python {platform.python_version()}, {', '.join(versions)}\n\n"
        f"```text\n{output.rstrip()}\n```\n"
    )


def run(main: Callable[[], int], script: str, out: Path = RESULTS) -> int:
    """``main()`` with its standard output kept; on success ``out/<script>.md`` holds it (see the module)."""
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        code = main() or 0  # some mains return None on success
    if code == 0:
        path = out / f"{script}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, document(script, sys.argv[1:], tee.kept.getvalue()))
        print(f"results: {path}")
    return code
