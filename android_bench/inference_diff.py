"""Per-delegate output deviation on the phone, through TFLite's ``inference_diff`` tool (``run_eval``).

The tool runs one model in two interpreters on the device, the reference on one CPU thread without any
delegate and the test one with the delegate and thread count asked for, on the same Gaussian random
inputs, and reports both latencies and, per output tensor, the mean absolute difference between the two
outputs of each run, summarised over the runs (mean, standard deviation, and the worst run where the tool
writes it). The difference is in the output's raw values: image units in [0, 1] for our float-io files,
quantized steps for integer-io ones. That is what the
host cannot tell: whether the GPU (fp16 arithmetic), NNAPI or a vendor NPU computes what the CPU computes.

Users build it from TensorFlow (``bazel build -c opt --config=android_arm64
//tensorflow/lite/tools/evaluation/tasks/inference_diff:run_eval``) and pass it as
``--inference-diff-binary``.

Two output formats are read: current tools log the metrics (``Num evaluation runs: 50``, ``Reference run
latency: avg=43505.1(us), std_dev=...``, ``Test run latency: ...``, ``OutputDiff[0]: avg_error=...,
std_dev=...``) and write a binary proto to ``--output_file_path``; the first tools (TF 2.2) printed nothing
and wrote the proto's text form (``num_runs: 50 process_metrics { inference_profiler_metrics {
reference_latency { ... avg_us: ... } test_latency { ... } output_errors { max_value: ... min_value: ...
avg_value: ... std_deviation: ... } } }``) to that file, which is pulled and read when the log has no metrics.
"""

from __future__ import annotations

import re

TOOL_NAME = "inference_diff"
BUILD_HINT = (
    "TFLite's inference_diff tool for the phone's ABI: bazel build -c opt --config=android_arm64 "
    "//tensorflow/lite/tools/evaluation/tasks/inference_diff:run_eval (bazel-bin/.../run_eval)"
)
# run_eval's --delegate per --delegates name ("" = the test interpreter runs TFLite's CPU kernels).
# "external" keeps "" and gets the vendor delegate from the --external_delegate_* flags of --extra-args,
# which the tool's delegate providers read (as they read the other delegates' own flags).
DELEGATE_VALUES = {
    "cpu": "",
    "xnnpack": "xnnpack",
    "gpu": "gpu",
    "nnapi": "nnapi",
    "hexagon": "hexagon",
    "external": "",
}
DEFAULT_RUNS = 10

_NUMBER = r"([-+0-9.eEinfa]+)"
_LOG_RUNS = re.compile(r"Num evaluation runs: (\d+)")
_LOG_LATENCY = re.compile(rf"(Reference|Test) run latency: avg={_NUMBER}\(us\), std_dev={_NUMBER}\(us\)")
_LOG_OUTPUT = re.compile(rf"OutputDiff\[(\d+)\]: avg_error={_NUMBER}, std_dev={_NUMBER}")
_BLOCK = re.compile(r"(reference_latency|test_latency|output_errors)\s*\{([^{}]*)\}")
_FIELD = re.compile(rf"(\w+):\s*{_NUMBER}")


def argv(
    tool: str, model: str, delegate: str, threads: int, runs: int, output: str, delegate_args: list[str]
) -> list[str]:
    """The device command for one (model, delegate): the row's thread count for the test interpreter;
    ``delegate_args``: the --extra-args flags of this delegate's provider (``device.extra_args_for``), the
    only ones that concern the tool."""
    chosen = DELEGATE_VALUES[delegate]
    return [
        tool,
        f"--model_file={model}",
        f"--output_file_path={output}",
        f"--num_runs={runs}",
        f"--num_interpreter_threads={threads}",
        *([f"--delegate={chosen}"] if chosen else []),
        *delegate_args,
    ]


def _ms(us: float) -> float:
    return round(us / 1000.0, 4)


def _output(index: int, mean: float, std: float, worst: float | None) -> dict:
    """One output's per-run mean |test - reference|: its mean and std over the runs, and the worst run's."""
    return {"index": index, "mean_abs": mean, "std_over_runs": std, "worst_run_mean_abs": worst}


def parse_log(text: str) -> dict | None:
    """The metrics a current tool logs; None when the text holds none (an old tool, or a failure)."""
    latencies = {kind.lower(): (float(avg), float(std)) for kind, avg, std in _LOG_LATENCY.findall(text)}
    outputs = [
        _output(int(index), float(mean), float(std), None) for index, mean, std in _LOG_OUTPUT.findall(text)
    ]
    runs = _LOG_RUNS.search(text)
    if not outputs or "test" not in latencies:
        return None
    return _metrics(
        int(runs.group(1)) if runs else None,
        latencies.get("reference", (None, None)),
        latencies["test"],
        outputs,
    )


def parse_text_proto(text: str) -> dict | None:
    """The metrics of an ``EvaluationStageMetrics`` in text form (the first tools' output file)."""
    blocks = [(name, dict(_FIELD.findall(body))) for name, body in _BLOCK.findall(text)]
    latency = {name: fields for name, fields in blocks if name.endswith("_latency")}
    errors = [fields for name, fields in blocks if name == "output_errors"]
    runs = re.search(r"^\s*num_runs:\s*(\d+)", text, re.MULTILINE)
    if not errors or "test_latency" not in latency:
        return None

    def avg_std(fields: dict | None) -> tuple[float | None, float | None]:
        fields = fields or {}
        return (
            float(fields["avg_us"]) if "avg_us" in fields else None,
            float(fields["std_deviation_us"]) if "std_deviation_us" in fields else None,
        )

    outputs = [
        _output(
            index,
            float(fields.get("avg_value", "nan")),
            float(fields.get("std_deviation", "nan")),
            float(fields["max_value"]) if "max_value" in fields else None,
        )
        for index, fields in enumerate(errors)
    ]
    return _metrics(
        int(runs.group(1)) if runs else None,
        avg_std(latency.get("reference_latency")),
        avg_std(latency["test_latency"]),
        outputs,
    )


def _metrics(runs: int | None, reference: tuple, test: tuple, outputs: list[dict]) -> dict:
    def ms(value: float | None) -> float | None:
        return None if value is None else _ms(value)

    return {
        "runs": runs,
        "reference_avg_ms": ms(reference[0]),
        "reference_std_ms": ms(reference[1]),
        "test_avg_ms": ms(test[0]),
        "test_std_ms": ms(test[1]),
        "outputs": outputs,
    }


def failure_message(text: str, exit_code: int | None) -> str:
    """One line for a run without metrics: the tool's own ERROR/WARN lines, else its last lines."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    flagged = [line for line in lines if re.match(r"^(ERROR|E\d{4}|WARN(ING)?)\b", line)]
    shown = flagged[-3:] or lines[-3:]
    what = f"exit status {exit_code}" if exit_code else "no metrics in its output"
    return f"{TOOL_NAME} {what}" + (f": {' | '.join(shown)}" if shown else "")
