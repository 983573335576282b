"""Read ``benchmark_model``'s per-operator profile (``--enable_op_profiling=true``) and say where the time goes.

Why: int8 PyNET can run slower than float32 on a phone, and the suspect is the instance norms (MEAN, SUB, MUL,
MEAN, ADD, RSQRT, MUL inside each Keras layer named ``*_norm``). The profile times every node; this module
reads it and adds up the nodes that belong to a norm.

What the tool prints (sources, cited by commit):

- LiteRT ``tflite/tools/benchmark/profiling_listener.cc`` @ 7d88950ea445 and
  ``tflite/profiling/profile_summary_formatter.{h,cc}`` @ 7994e0a0b514 / 155113663266: at the end, after the
  ``Inference timings`` and memory lines, one ``INFO:`` message ``Profiling Info for Benchmark Initialization:``
  (ModifyGraphWithDelegate, AllocateTensors: not read here) and one ``Operator-wise Profiling Info for Regular
  Benchmark Runs:`` (the warm-up runs are not profiled). Each holds tsl::StatsCalculator's tables, then its
  ``Timings (microseconds): count=.. avg=..`` (per-run sum of the node times) / ``Memory (bytes)`` / ``N nodes
  observed`` lines. With several subgraphs the primary one comes first (``Primary graph (name: ..) profile:``),
  then ``Subgraph (index: i, ...)``; a delegate's own internal events (type ``DelegateOpInvoke``) come last,
  under ``Delegate internal:``, and are already counted in its kernel's row.
- TF ``tensorflow/tsl/util/stats_calculator.cc`` @ 639c8cdf8d2b (the layout LiteRT prints today): titled tables
  ``Run Order`` (every node), ``Top by Computation Time`` (10), then ``Number of nodes executed: N`` and
  ``Summary by node type``; tab-separated right-aligned columns ``[node type] [first] [avg ms] [%] [cdf%]
  [mem KB] [times called] [Name]`` and ``[Node type] [count] [avg ms] [avg %] [cdf %] [mem KB] [times called]``
  (node type 40 wide; 24 in TF ``tensorflow/core/util/stats_calculator.cc`` @ 82a294b6d71e; TF 2.x before that,
  @ 31ccb01cd5f9, had a ``[start]`` column after the type). ``--profiling_output_csv_file=F`` (or
  ``--op_profiling_output_mode=csv``) writes the same tables to F as CSV: ``node type, first, avg_ms, %, cdf%,
  mem KB, times called, name`` rows, numbers in C++'s default format, commas in names turned into tabs.
- LiteRT ``tflite/profiling/profile_summarizer.cc`` @ 7d88950ea445: a node's type is its op (``CONV_2D``) or,
  for a delegate's kernel, the delegate's name (``TfLiteXNNPackDelegate``, ``TfLiteNnapiDelegate``,
  ``TfLiteGpuDelegateV2``: GetTFLiteOpName in LiteRT ``tflite/core/subgraph.cc`` @ 01d971c556e3); its name is
  its output tensors' names and its node index, ``[name_a, name_b]:12``. Ops a delegate profiles in place of
  its kernel (XNNPACK since TF 2.10; before, one ``TfLiteXNNPackDelegate`` row per partition:
  larq/compute-engine#748) are ``Delegate/<op>:N`` rows of the delegate's own op names (``Convolution (NHWC,
  F32) IGEMM``): no tensor names.
- LiteRT ``tflite/tools/benchmark/README.md`` @ 383870e03d1d ("Profiling model operators") shows an old sample
  without the section headers; tests/data/benchmark_model/ holds it and a TF 2.4.0 NNAPI profile verbatim.

A node belongs to an instance norm when one of its output tensor names has a ``*_norm`` path component: TFLite
names tensors after the Keras layers (``pynet_level5/l2_enc_3x3a_norm/Mean``). A delegate's kernel (and an op
profiled inside one) names no layer, so its time is reported apart (``delegated_ms``): with XNNPACK on, the
norms' time hides there; ``--use_xnnpack=false`` profiles every op by name, on TFLite's own kernels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from android_bench.benchmark_output import message

REGULAR = "Operator-wise Profiling Info for Regular Benchmark Runs:"
INIT = "Profiling Info for Benchmark Initialization:"

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TITLE = re.compile(r"^=+ (Run Order|Top by Computation Time|Top by Memory Use|Summary by node type) =+$")
_TIMINGS = re.compile(rf"^Timings \(microseconds\): count=(\d+)(?:.*\bavg=({_NUMBER})|.*\bcurr=({_NUMBER}))?")
_NODE_NAME = re.compile(r"^\[(.*)\](?::(\d+))?$")
_NORM_LAYER = re.compile(r"(?:^|[/;])[^/;]*_norm(?=[/;]|$)")


@dataclass(frozen=True)
class Node:
    """One row of a ``Run Order`` table: an op of the model, a delegate's kernel or an op inside one."""

    type: str
    name: str
    first_ms: float
    avg_ms: float
    share: float
    """The tool's ``[%]`` column / 100: this node's part of the profiled time."""
    times_called: int

    @property
    def index(self) -> int | None:
        """The node index after the name's ``:``; None in old tools' names (``[tensor]`` alone)."""
        match = _NODE_NAME.match(self.name)
        return int(match.group(2)) if match and match.group(2) else None

    @property
    def tensors(self) -> tuple[str, ...]:
        """The output tensor names in ``[a, b]:N`` (CSV files turn the comma into a tab)."""
        match = _NODE_NAME.match(self.name)
        return tuple(re.split(r"[,\t] ", match.group(1))) if match else ()

    @property
    def delegated(self) -> bool:
        """A delegate's kernel or an op run inside one: its time cannot be put on a layer."""
        return self.name.startswith("Delegate/") or "delegate" in self.type.lower()


@dataclass(frozen=True)
class TypeStat:
    """One row of ``Summary by node type``: all nodes of a type, per run."""

    type: str
    count: int
    avg_ms: float
    share: float
    """The tool's ``[avg %]`` / 100."""


@dataclass
class OpProfile:
    """The regular runs' profile of the primary graph; ``delegate_internal`` what a delegate timed inside."""

    nodes: list[Node] = field(default_factory=list)
    """In run order."""
    by_type: list[TypeStat] = field(default_factory=list)
    runs: int | None = None
    run_avg_ms: float | None = None
    """``Timings (microseconds)``'s average: the node times' sum per run."""
    delegate_internal: OpProfile | None = None


FLAG = "--enable_op_profiling=true"
"""What makes benchmark_model print the tables (``python -m android_bench.run --op-profile``)."""


def parse(text: str) -> OpProfile | None:
    """The regular runs' profile in ``benchmark_model``'s stdout or its CSV file; None when there is none.

    Lines may carry the tool's or logcat's prefixes; ``#`` lines and any other text around the tables are
    skipped, and so is the initialization profile.
    """
    lines = _regular_lines([message(line)[0] for line in text.splitlines()])
    if lines is None:
        return None
    profile = OpProfile()
    section: OpProfile | None = profile
    kind, pattern, header_next = None, None, False
    for line in lines:
        if line.startswith(("Subgraph (index:", INIT)):
            section = None  # another subgraph's tables, or a later benchmark's initialization
        elif line.startswith("Delegate internal:"):
            section = profile.delegate_internal = OpProfile()
        elif title := _TITLE.match(line):
            kind, header_next = title.group(1), True
        elif header_next:
            pattern, header_next = _row_pattern(kind, line), False
        elif not line:
            kind, pattern = None, None  # every table ends with an empty line
        elif section is not None:
            _read_line(section, kind, pattern, line)
    return profile if profile.nodes or profile.by_type else None


def _regular_lines(lines: list[str]) -> list[str] | None:
    """The lines after the last regular-runs header; all of them in an old tool's output, which has no headers
    (None when only an initialization profile is there)."""
    starts = [index for index, line in enumerate(lines) if line.startswith(REGULAR)]
    if starts:
        return lines[starts[-1] + 1 :]
    return None if any(line.startswith(INIT) for line in lines) else lines


def _row_pattern(kind: str, header: str) -> re.Pattern | None:
    """The row pattern of the table ``kind`` whose column header is ``header``; None for tables not read."""
    csv = header.startswith("node type,")
    sep = ", " if csv else r"\s+"
    stats = rf"(?P<pct>{_NUMBER})%{sep}(?P<cdf>{_NUMBER})%{sep}(?P<mem>{_NUMBER}){sep}(?P<called>\d+)"
    if kind == "Run Order":
        start = rf"{_NUMBER}{sep}" if re.search(r"\bstart\b", header) else ""
        return re.compile(
            rf"^(?P<type>.+?){sep}{start}(?P<first>{_NUMBER}){sep}(?P<avg>{_NUMBER}){sep}{stats}{sep}(?P<name>.+)$"
        )
    if kind == "Summary by node type":
        return re.compile(rf"^(?P<type>.+?){sep}(?P<count>\d+){sep}(?P<avg>{_NUMBER}){sep}{stats}$")
    return None


def _read_line(section: OpProfile, kind: str | None, pattern: re.Pattern | None, line: str) -> None:
    if timings := _TIMINGS.match(line):
        section.runs = int(timings.group(1))
        average = timings.group(2) or timings.group(3)
        section.run_avg_ms = float(average) / 1000.0 if average else None
    elif pattern and (row := pattern.match(line)):
        values = row.groupdict()
        share = round(float(values["pct"]) / 100.0, 8)  # without float noise
        if kind == "Run Order":
            section.nodes.append(
                Node(
                    values["type"],
                    values["name"].strip(),
                    float(values["first"]),
                    float(values["avg"]),
                    share,
                    int(values["called"]),
                )
            )
        else:
            section.by_type.append(
                TypeStat(values["type"], int(values["count"]), float(values["avg"]), share)
            )


def is_norm(node: Node) -> bool:
    """An op of an instance norm layer (``*_norm``), named by its output tensors; never a delegate's kernel."""
    return not node.delegated and any(_NORM_LAYER.search(tensor) for tensor in node.tensors)


def norm_share(profile: OpProfile) -> dict:
    """The instance norms' time per run and share of the nodes' time, their op count and time by op type, and
    the time in delegate nodes, which the profile cannot split by layer (norm ops may hide there).

    Shares are of the Run Order's summed ``avg ms`` (old tools' ``%`` column is not a share of it).
    """
    total = sum((node.avg_ms for node in profile.nodes), 0.0)
    norm = [node for node in profile.nodes if is_norm(node)]
    by_type: dict[str, float] = {}
    for node in norm:
        by_type[node.type] = by_type.get(node.type, 0.0) + node.avg_ms
    norm_ms = sum(by_type.values(), 0.0)
    delegated_ms = sum((node.avg_ms for node in profile.nodes if node.delegated), 0.0)
    return {
        "avg_ms": round(norm_ms, 3),
        "share": _share(norm_ms, total),
        "ops": len(norm),
        "by_type": {kind: round(ms, 3) for kind, ms in sorted(by_type.items(), key=lambda item: -item[1])},
        "delegated_ms": round(delegated_ms, 3),
        "delegated_share": _share(delegated_ms, total),
    }


def _share(part: float, total: float) -> float:
    return round(part / total, 4) if total > 0 else 0.0


def top_types(profile: OpProfile, n: int) -> list[TypeStat]:
    """The ``n`` node types that take the most time per run."""
    return sorted(profile.by_type, key=lambda stat: -stat.avg_ms)[:n]


def record(profile: OpProfile) -> dict:
    """JSON-ready summary for a results row: time by node type, the instance norms' part, node count and the
    profiled time per run (the tool's Timings average, else the nodes' sum)."""
    total = (
        profile.run_avg_ms if profile.run_avg_ms is not None else sum(node.avg_ms for node in profile.nodes)
    )
    return {
        "by_type": [
            {"type": stat.type, "count": stat.count, "avg_ms": stat.avg_ms, "share": stat.share}
            for stat in profile.by_type
        ],
        "norm": norm_share(profile),
        "nodes": len(profile.nodes),
        "total_ms": round(total, 3),
    }
