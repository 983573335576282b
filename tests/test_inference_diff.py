"""android_bench.inference_diff: the tool's command and both of its output formats.

The text-proto case is the example output in TensorFlow's inference_diff README, verbatim; the log lines
are the current tool's (run_eval.cc's OutputResult: ``Num evaluation runs: ...``, ``Reference run latency:
avg=...(us), std_dev=...(us)``, ``OutputDiff[i]: avg_error=..., std_dev=...``) with TFLITE_LOG's tag.
"""

import pytest

from android_bench import inference_diff
from android_bench.device import extra_args_for

README_EXAMPLE = """num_runs: 50
process_metrics {
  inference_profiler_metrics {
    reference_latency {
      last_us: 43111
      max_us: 49314
      min_us: 42965
      sum_us: 6525771
      avg_us: 43505.14
    }
    test_latency {
      last_us: 26906
      max_us: 107118
      min_us: 26454
      sum_us: 5286197
      avg_us: 35241.313333333332
    }
    output_errors {
      max_value: 0.000999001
      min_value: 0
      avg_value: 1.9980019424110651e-05
      std_deviation: 0.00013986013
    }
  }
}
"""

CURRENT_LOG = """INFO: Initialized TensorFlow Lite runtime.
INFO: Test interpreter has been initialized.
INFO: Reference interpreter (1 thread on CPU) has been initialized.
INFO: Num evaluation runs: 50
INFO: Reference run latency: avg=43505.1(us), std_dev=1042.3(us)
INFO: Test run latency: avg=35241.3(us), std_dev=15034(us)
INFO: OutputDiff[0]: avg_error=1.998e-05, std_dev=0.00013986
INFO: OutputDiff[1]: avg_error=0, std_dev=0
"""


def test_text_proto_of_the_readme_example():
    parsed = inference_diff.parse_text_proto(README_EXAMPLE)
    assert parsed == {
        "runs": 50,
        "reference_avg_ms": 43.5051,  # avg_us / 1000, rounded to 0.1 us
        "reference_std_ms": None,  # the first tools wrote no std_deviation_us
        "test_avg_ms": 35.2413,
        "test_std_ms": None,
        "outputs": [
            {
                "index": 0,
                "mean_abs": 1.9980019424110651e-05,
                "std_over_runs": 0.00013986013,
                "worst_run_mean_abs": 0.000999001,
            },
        ],
    }
    assert inference_diff.parse_log(README_EXAMPLE) is None


def test_log_lines_of_the_current_tool():
    parsed = inference_diff.parse_log(CURRENT_LOG)
    assert parsed == {
        "runs": 50,
        "reference_avg_ms": 43.5051,
        "reference_std_ms": 1.0423,
        "test_avg_ms": 35.2413,
        "test_std_ms": 15.034,
        "outputs": [
            {"index": 0, "mean_abs": 1.998e-05, "std_over_runs": 0.00013986, "worst_run_mean_abs": None},
            {"index": 1, "mean_abs": 0.0, "std_over_runs": 0.0, "worst_run_mean_abs": None},
        ],
    }
    assert inference_diff.parse_text_proto(CURRENT_LOG) is None


def test_a_failed_run_has_no_metrics_and_says_why():
    output = "INFO: Loaded model m.tflite\nERROR: Failed to apply GPU delegate.\nINFO: bye\n"
    assert inference_diff.parse_log(output) is None and inference_diff.parse_text_proto(output) is None
    assert inference_diff.failure_message(output, 1) == (
        "inference_diff exit status 1: ERROR: Failed to apply GPU delegate."
    )
    assert inference_diff.failure_message("", 0) == "inference_diff no metrics in its output"


@pytest.mark.parametrize(
    "delegate, expected",
    [
        ("cpu", []),
        ("gpu", ["--delegate=gpu", "--gpu_precision_loss_allowed=false"]),
        ("external", ["--external_delegate_path=/v.so", "--external_delegate_options=a:b"]),
    ],
)
def test_argv_per_delegate(delegate, expected):
    """The tool gets the delegate's own --extra-args flags only: benchmark_model's others are not its own."""
    extra = [
        "--external_delegate_path=/v.so",
        "--gpu_precision_loss_allowed=false",
        "--external_delegate_options=a:b",
        "--enable_op_profiling=true",
    ]
    own = extra_args_for(delegate, extra, shared=False)
    argv = inference_diff.argv("/d/inference_diff", "/d/m.tflite", delegate, 4, 7, "/d/out.pb", own)
    assert argv == [
        "/d/inference_diff",
        "--model_file=/d/m.tflite",
        "--output_file_path=/d/out.pb",
        "--num_runs=7",
        "--num_interpreter_threads=4",
        *expected,
    ]
