"""The report's inputs: the results files ``python -m android_bench.run`` writes, one clear error per bad one.

A path is a results file or a folder of them (its ``*.json``, not recursive). A file named on the command line
must be a results file of a supported version; in a folder, JSON files of another kind (export sidecars,
an earlier report.json) or that cannot be read are skipped and listed in the report, so nothing is left out
silently; a folder where that leaves nothing is an error naming each file and why, as if it were named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from android_bench import results

ROW_KEYS = ("model", "delegate", "threads", "status")
RUN_HINT = "give the --out folder (or a file) written by python -m android_bench.run"


class ReportInputError(ValueError):
    """A results path the report cannot read; the message names the path and the fix."""


@dataclass(frozen=True)
class ResultsFile:
    path: Path
    document: dict


@dataclass
class Inputs:
    files: list[ResultsFile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """'<path>: why' for JSON files in a folder that are not benchmark results."""


def _kind(path: Path) -> tuple[dict | None, str | None]:
    """(document, None) for a results file, else (None, what the file is instead)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        return None, f"unreadable ({type(error).__name__}: {error})"
    except ValueError as error:
        return None, f"not JSON ({error})"
    if not isinstance(document, dict) or document.get("format") != results.FORMAT:
        what = document.get("format") if isinstance(document, dict) else None
        return None, f"not a benchmark results file (format {what!r}, expected {results.FORMAT!r})"
    return document, None


def _check(path: Path, document: dict) -> None:
    """Refuse a results file of another schema version, or one whose rows lack what the report reads."""
    if document.get("version") != results.VERSION:
        raise ReportInputError(
            f"{path}: results schema version {document.get('version')!r}, but this report reads version "
            f"{results.VERSION}; re-run python -m android_bench.run with this pynet-tf, or use the pynet-tf "
            "release that wrote it"
        )
    rows = document.get("rows")
    if not isinstance(rows, list) or not isinstance(document.get("run"), dict):
        raise ReportInputError(f"{path}: malformed results file (no 'run' or 'rows'); {RUN_HINT}")
    for number, row in enumerate(rows, 1):
        missing = [key for key in ROW_KEYS if not isinstance(row, dict) or key not in row]
        if missing:
            raise ReportInputError(f"{path}: row {number} lacks {', '.join(missing)}; {RUN_HINT}")


def _candidates(given: Path) -> list[Path]:
    if given.is_dir():
        return sorted(given.glob("*.json"))
    if given.is_file():
        return [given]
    raise ReportInputError(f"{given}: no such file or folder; {RUN_HINT}")


def _nothing_read(folder: Path, passed_over: list[str]) -> ReportInputError:
    """A folder without a results file: each JSON file's reason, else that it holds none."""
    if not passed_over:
        return ReportInputError(f"{folder}: the folder holds no benchmark results file (*.json); {RUN_HINT}")
    return ReportInputError(
        f"{folder}: no benchmark results file could be read there: {'; '.join(passed_over)}; {RUN_HINT}"
    )


def load(paths: list[Path]) -> Inputs:
    """The results files at ``paths`` (files or folders), in order, each once."""
    inputs, seen = Inputs(), set()
    for given in map(Path, paths):
        found, passed_over = 0, []
        for path in _candidates(given):
            if path.resolve() in seen:
                found += 1
                continue
            document, why = _kind(path)
            if document is None:
                if given.is_file():
                    raise ReportInputError(f"{path}: {why}; {RUN_HINT}")
                passed_over.append(f"{path}: {why}")
                continue
            _check(path, document)
            seen.add(path.resolve())
            inputs.files.append(ResultsFile(path, document))
            found += 1
        if given.is_dir() and not found:
            raise _nothing_read(given, passed_over)
        inputs.skipped += passed_over
    return inputs
