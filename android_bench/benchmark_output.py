"""Parse the text TFLite's ``benchmark_model`` prints (stdout and stderr merged) into numbers.

The tool's wording has moved between releases, and its lines arrive bare (``count=50 ...``), behind a
severity tag (``INFO: ``, ``VERBOSE: ``, LiteRT's ``INFO: [file.cc:12] ``) or inside Android logcat
(``05-30 15:16:44.857  3380  3380 I tflite  : ...``) when run through the benchmark APK. Every pattern is
therefore searched on the message with any such prefix removed. What is read, and from which releases
(tests/data/benchmark_model/ holds verbatim outputs of TF 2.4 to 2.15 and LiteRT 2.1.5, and a TF 1.x one
assembled from that tool's source and docs):

- ``Inference timings in us: Init: I, First inference: F, Warmup (avg): W, Inference (avg): A``, or TF 1.x's
  ``Average inference timings in us: Warmup: W, Init: I, Inference: A`` (older: ``no stats: A``), which has
  no first inference: that is then the warm-up phase's first run (TF's own graph tool,
  tensorflow/tools/benchmark, prints ``Warmup: W, no stats: .., with stats: ..`` without Init: not read)
- the per-phase statistics ``count=N first=.. curr=.. min=.. max=.. avg=.. std=..``, one after each
  ``Running benchmark for at least ...`` line (warm-up, then the measured runs); a single run prints
  ``count=1 curr=X``; LiteRT's ``StatWithPercentiles`` appends ``p5=.. median=.. p95=..``
- memory: ``Peak memory footprint (MB): init=.. overall=..`` (until ~TF 2.5: growth of the max RSS over the
  tool's start), ``Memory footprint delta from the start of the tool (MB): init=.. overall=..`` (later), and
  with ``--report_peak_memory_footprint=true`` ``Overall peak memory footprint (MB) via periodic monitoring``
- ``The input model file size (MB): S`` (MB = 10^6 bytes) and ``Tensorflow Version : V`` where printed
- delegation: ``Replacing N out of M node(s) with delegate (NAME) node, yielding K partitions``,
  ``Explicitly applied GPU delegate, and the model graph will be completely|partially executed by the
  delegate [w/ K delegate kernels]`` (older: ``Applied GPU delegate, ... executed w/ the delegate``),
  ``Though NNAPI delegate is explicitly applied, the model graph will not be executed by the delegate``,
  the GPU delegate's ``N operations will run on the GPU, and the remaining M operations will run on the
  CPU`` and its list of unsupported ops
- failure: ``Failed to apply GPU delegate.``, ``Benchmarking failed.``, ``ERROR: ...`` lines, or no summary.

LiteRT 2.x also ships a CompiledModel ``benchmark_model`` (litert/tools/benchmark_litert_model.h) whose
summary is a block of ``Model initialization: X ms``, ``Warmup (first)``, ``Warmup (avg): X ms (N runs)``,
``Inference (avg|min|max|std)`` and ``Init|Overall footprint: X MB`` lines; it is read into the same fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_LOGCAT = re.compile(r"^\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+([VDIWEF])\s+\S+?\s*: ?")
_TAG = re.compile(r"^(INFO|WARNING|WARN|ERROR|VERBOSE|DEBUG|FATAL): (?:\[[^\]]*\] )?")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"

_SUMMARY = re.compile(
    rf"Inference timings in us: Init: ({_NUMBER}), First inference: ({_NUMBER}), "
    rf"Warmup \(avg\): ({_NUMBER}), Inference \(avg\): ({_NUMBER})"
)
_TF1_SUMMARY = re.compile(
    rf"Average inference timings in us: Warmup: ({_NUMBER}), Init: ({_NUMBER}), "
    rf"(?:Inference|no stats): ({_NUMBER})"
)
_RUNNING = re.compile(r"^Running benchmark for at least (\d+) iterations")
_STAT = re.compile(r"^count=(\d+)\b(.*)$")
_STAT_FIELD = re.compile(rf"\b(\w+)=({_NUMBER})")
_MEMORY = re.compile(
    rf"(Peak memory footprint|Memory footprint delta from the start of the tool) \(MB\): "
    rf"init=({_NUMBER}) overall=({_NUMBER})"
)
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUMBER})")
_MODEL_SIZE = re.compile(rf"The input model file size \(MB\): ({_NUMBER})")
_VERSION = re.compile(r"Tensorflow Version\s*:\s*(\S+)")
_REPLACING = re.compile(
    r"Replacing (\d+)(?: out of (\d+))? node\(s\) with delegate \((.+?)\) node, yielding (\d+) partitions"
)
_APPLIED = re.compile(
    r"(?:Explicitly applied|Applied) (\S+) delegate, and the model graph will be (completely|partially) "
    r"executed (?:by|w/) the delegate(?: w/ (\d+) delegate kernels)?"
)
_NOT_APPLIED = re.compile(
    r"Though (\S+) delegate is explicitly applied, the model graph will not be executed by the delegate"
)
_GPU_SPLIT = re.compile(
    r"(?:First )?(\d+) operations will run on the GPU, and the remaining (\d+)(?: operations)?"
    r"(?: will run)? on the CPU"
)
_UNSUPPORTED_HEADER = re.compile(r"(?:Following|Next) operations are not supported by GPU delegate")
_UNSUPPORTED_OP = re.compile(r"^([A-Z][A-Z0-9_]+): ?(.*)$")
_FAILED = re.compile(r"^(Failed to .*|Benchmarking failed\.?)$")
_COMPILED = re.compile(
    rf"^(Model initialization|Warmup \(first\)|Warmup \(avg\)|Inference \((?:avg|min|max|std)\)):\s+"
    rf"({_NUMBER})(?: ms)?(?: \((\d+) runs\))?$"
)
_COMPILED_MEMORY = re.compile(rf"^(Init footprint|Overall footprint|Peak memory):\s+({_NUMBER}) MB$")

EXTENT_STATUS = {"completely": "full", "partially": "partial"}
# Substrings (lower case) of the names benchmark_model uses for each --delegates choice, in the
# "applied" lines (GPU, NNAPI, XNNPACK, Hexagon, EXTERNAL) and the "Replacing" lines (TfLiteGpuDelegateV2,
# LITERT_CL, TfLiteNnapiDelegate, TfLiteXNNPackDelegate, ...). An external delegate's kernel name is the
# vendor's own ("Vx Delegate", "TfLiteQnnDelegate"): any name matching no other family.
DELEGATE_NAMES = {
    "gpu": ("gpu", "litert_cl", "opencl", "opengl"),
    "nnapi": ("nnapi",),
    "xnnpack": ("xnnpack",),
    "hexagon": ("hexagon",),
}


@dataclass(frozen=True)
class PhaseStats:
    """One ``count=...`` line: microseconds per run of the warm-up or the measured phase."""

    count: int
    first_us: float | None
    curr_us: float | None
    min_us: float | None
    max_us: float | None
    avg_us: float | None
    std_us: float | None
    percentiles_us: dict[str, float]
    """As printed by LiteRT's StatWithPercentiles: ``p5``, ``p50`` (printed as ``median``), ``p95``."""


@dataclass(frozen=True)
class Replacement:
    delegate: str
    delegated: int
    total: int | None
    partitions: int


@dataclass(frozen=True)
class Applied:
    delegate: str
    status: str
    """``full``, ``partial`` or ``none``."""
    kernels: int | None


@dataclass
class BenchmarkOutput:
    """Everything read from one run's text; ``None`` where the tool did not print it."""

    init_us: float | None = None
    first_inference_us: float | None = None
    warmup_avg_us: float | None = None
    inference_avg_us: float | None = None
    warmup: PhaseStats | None = None
    inference: PhaseStats | None = None
    memory_init_mb: float | None = None
    memory_overall_mb: float | None = None
    memory_measure: str | None = None
    """The tool's own label: ``Peak memory footprint`` or ``Memory footprint delta from the start of ...``."""
    peak_memory_mb: float | None = None
    model_size_mb: float | None = None
    session_init_ms: float | None = None
    tool_version: str | None = None
    replacements: list[Replacement] = field(default_factory=list)
    applied: list[Applied] = field(default_factory=list)
    gpu_split: tuple[int, int] | None = None
    unsupported_ops: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    benchmark_failed: bool = False

    @property
    def ok(self) -> bool:
        """The tool got through: a summary line and no ``Benchmarking failed``."""
        return self.inference_avg_us is not None and not self.benchmark_failed

    def error_message(self, limit: int = 600) -> str | None:
        """The tool's own error lines, de-duplicated, in order (``None`` when it printed none)."""
        unique = list(dict.fromkeys(self.errors))
        return " | ".join(unique)[:limit] if unique else None


def message(line: str) -> tuple[str, bool]:
    """The line without logcat/severity prefixes, and whether that prefix marks it as an error."""
    text = line.strip()
    error = False
    logcat = _LOGCAT.match(text)
    if logcat:
        error = logcat.group(1) in "EF"
        text = text[logcat.end() :]
    tag = _TAG.match(text)
    if tag:
        error = error or tag.group(1) in ("ERROR", "FATAL")
        text = text[tag.end() :]
    return text.strip(), error


def _stats(rest: str, count: int) -> PhaseStats:
    fields = {key: float(value) for key, value in _STAT_FIELD.findall(rest)}
    if count == 1 or (
        "min" not in fields and "curr" in fields
    ):  # "count=1 curr=X" / "count=N curr=X(all same)"
        same = fields.get("curr")
        fields = {"first": same, "curr": same, "min": same, "max": same, "avg": same, "std": 0.0, **fields}
    percentiles = {
        ("p50" if key == "median" else key): fields[key] for key in ("p5", "median", "p95") if key in fields
    }
    return PhaseStats(
        count,
        fields.get("first"),
        fields.get("curr"),
        fields.get("min"),
        fields.get("max"),
        fields.get("avg"),
        fields.get("std"),
        percentiles,
    )


def parse(text: str) -> BenchmarkOutput:
    """Read one ``benchmark_model`` run; never raises on unexpected text (missing facts stay ``None``)."""
    out = BenchmarkOutput()
    phases: list[PhaseStats] = []
    compiled: dict[str, tuple[float, int | None]] = {}
    in_unsupported = False
    for line in text.splitlines():
        msg, is_error = message(line)
        if not msg:
            continue
        if in_unsupported:
            op = _UNSUPPORTED_OP.match(msg)
            if op and not _GPU_SPLIT.search(msg):
                out.unsupported_ops.append(msg)
                continue
            in_unsupported = False
        if is_error or _FAILED.match(msg):
            out.errors.append(msg)
            out.benchmark_failed = out.benchmark_failed or msg.startswith("Benchmarking failed")
        if match := _SUMMARY.search(msg):
            out.init_us, out.first_inference_us, out.warmup_avg_us, out.inference_avg_us = map(
                float, match.groups()
            )
        elif match := _TF1_SUMMARY.search(msg):
            out.warmup_avg_us, out.init_us, out.inference_avg_us = map(float, match.groups())
        elif match := _COMPILED.match(msg):
            compiled[match.group(1)] = (
                float(match.group(2)),
                int(match.group(3)) if match.group(3) else None,
            )
        elif match := _COMPILED_MEMORY.match(msg):
            compiled[match.group(1)] = (float(match.group(2)), None)
        elif match := _STAT.match(msg):
            if out.inference_avg_us is None:  # op-profiling tables after the summary reuse "count="
                phases.append(_stats(match.group(2), int(match.group(1))))
        elif match := _MEMORY.search(msg):
            out.memory_measure = match.group(1)
            out.memory_init_mb, out.memory_overall_mb = float(match.group(2)), float(match.group(3))
        elif match := _PEAK.search(msg):
            out.peak_memory_mb = float(match.group(1))
        elif match := _MODEL_SIZE.search(msg):
            out.model_size_mb = float(match.group(1))
        elif match := re.search(rf"Initialized session in ({_NUMBER})\s*ms", msg):
            out.session_init_ms = float(match.group(1))
        elif match := _VERSION.search(msg):
            out.tool_version = match.group(1)
        elif match := _REPLACING.search(msg):
            total = int(match.group(2)) if match.group(2) else None
            out.replacements.append(
                Replacement(match.group(3), int(match.group(1)), total, int(match.group(4)))
            )
        elif match := _APPLIED.search(msg):
            kernels = int(match.group(3)) if match.group(3) else None
            out.applied.append(Applied(match.group(1), EXTENT_STATUS[match.group(2)], kernels))
        elif match := _NOT_APPLIED.search(msg):
            out.applied.append(Applied(match.group(1), "none", 0))
        elif match := _GPU_SPLIT.search(msg):
            out.gpu_split = (int(match.group(1)), int(match.group(2)))
        elif _UNSUPPORTED_HEADER.search(msg):
            in_unsupported = True
    # The measured phase is the last statistics line before the summary, the warm-up the one before it
    # (an excerpt may hold only the former).
    if phases:
        out.inference = phases[-1]
        out.warmup = phases[-2] if len(phases) > 1 else None
    if out.first_inference_us is None and out.warmup_avg_us is not None and out.warmup is not None:
        out.first_inference_us = out.warmup.first_us  # TF 1.x's summary has no first inference
    if out.inference_avg_us is None and "Inference (avg)" in compiled:
        _read_compiled_summary(out, compiled)
    return out


def _read_compiled_summary(out: BenchmarkOutput, compiled: dict[str, tuple[float, int | None]]) -> None:
    """LiteRT's CompiledModel tool: milliseconds and MB lines (see the module's docstring)."""

    def us(key: str) -> float | None:
        return compiled[key][0] * 1000.0 if key in compiled else None

    out.init_us, out.first_inference_us = us("Model initialization"), us("Warmup (first)")
    out.warmup_avg_us, out.inference_avg_us = us("Warmup (avg)"), us("Inference (avg)")
    if out.inference is None:
        out.inference = PhaseStats(
            compiled["Inference (avg)"][1] or 0,
            None,
            None,
            us("Inference (min)"),
            us("Inference (max)"),
            out.inference_avg_us,
            us("Inference (std)"),
            {},
        )
    if out.warmup is None and "Warmup (avg)" in compiled:
        out.warmup = PhaseStats(
            compiled["Warmup (avg)"][1] or 0,
            out.first_inference_us,
            None,
            None,
            None,
            out.warmup_avg_us,
            None,
            {},
        )
    if "Init footprint" in compiled:  # the same mem_footprint_kb deltas as the classic tool's line
        out.memory_measure = "Memory footprint delta from the start of the tool"
        out.memory_init_mb = compiled["Init footprint"][0]
        out.memory_overall_mb = compiled.get("Overall footprint", (None,))[0]
    if "Peak memory" in compiled:
        out.peak_memory_mb = compiled["Peak memory"][0]


def _family(name: str) -> str | None:
    lowered = name.lower()
    return next((family for family, keys in DELEGATE_NAMES.items() if any(k in lowered for k in keys)), None)


def delegate_matches(name: str, delegate: str) -> bool:
    """Whether a delegate name the tool prints (``TfLiteGpuDelegateV2``, ``GPU``) is ``delegate``'s family; a
    vendor's delegate and LiteRT's NPU dispatch delegate have names of their own: any of no known family."""
    family = _family(name)
    if delegate in ("external", "npu"):
        return family is None or name.lower() == "external"
    return family == delegate


def coverage(out: BenchmarkOutput, delegate: str) -> dict | None:
    """How much of the graph ``delegate`` (a ``--delegates`` name) took, from the tool's own lines.

    ``status``: ``full`` / ``partial`` / ``none``, or ``None`` when the tool printed nothing about it;
    ``delegated_nodes`` / ``total_nodes`` / ``cpu_nodes`` (nodes left to the CPU's kernels) from the
    ``Replacing N out of M`` line or the GPU delegate's op split; ``partitions`` (delegate kernels);
    ``unsupported_ops`` the GPU delegate's list. ``None`` for ``cpu`` (no delegate asked for).
    """
    if delegate == "cpu":
        return None
    applied = [a for a in out.applied if delegate_matches(a.delegate, delegate)]
    replaced = [r for r in out.replacements if delegate_matches(r.delegate, delegate)]
    result = {
        "status": None,
        "delegate": None,
        "delegated_nodes": None,
        "total_nodes": None,
        "cpu_nodes": None,
        "partitions": None,
        "unsupported_ops": list(out.unsupported_ops) if delegate == "gpu" else [],
    }
    if replaced:
        last = replaced[-1]
        result.update(
            delegate=last.delegate,
            delegated_nodes=last.delegated,
            total_nodes=last.total,
            partitions=last.partitions,
        )
        if last.total is not None:
            result["cpu_nodes"] = last.total - last.delegated
            result["status"] = (
                "full" if last.delegated == last.total else "partial" if last.delegated else "none"
            )
    elif delegate == "gpu" and out.gpu_split:
        on_gpu, on_cpu = out.gpu_split
        result.update(
            delegated_nodes=on_gpu,
            total_nodes=on_gpu + on_cpu,
            cpu_nodes=on_cpu,
            status="full" if on_cpu == 0 else "partial" if on_gpu else "none",
        )
    if applied:  # the tool's verdict wins over counts
        last = applied[-1]
        result["status"] = last.status
        result["delegate"] = result["delegate"] or last.delegate
        if result["partitions"] is None:
            result["partitions"] = last.kernels
        if last.status == "full" and result["cpu_nodes"] is None:
            result["cpu_nodes"] = 0
    return result
