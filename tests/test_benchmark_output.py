"""The benchmark_model parser on verbatim outputs of the real tool (tests/data/benchmark_model/, each file's
header names its source and TFLite version: 2.4.0, 2.6.0, 2.8, 2.9, 2.15.0, LiteRT 2.1.5; the 1.x one is assembled from
the old tool's source and docs). Expected numbers are read off the files by eye; the parser must reproduce them exactly
(they are printed decimals, parsed with float())."""

from pathlib import Path

import pytest

from android_bench.benchmark_output import coverage, message, parse
from android_bench.results import timings_from_output

DATA = Path(__file__).resolve().parent / "data" / "benchmark_model"


def load(name: str) -> str:
    """A fixture's tool output: the file without its leading '#' header lines."""
    lines = (DATA / name).read_text(encoding="utf-8").splitlines(keepends=True)
    start = next(index for index, line in enumerate(lines) if not line.startswith("#"))
    return "".join(lines[start:])


def test_every_fixture_names_its_source_and_version():
    files = sorted(DATA.glob("*.txt"))
    assert len(files) >= 4
    for path in files:
        header = [line for line in path.read_text().splitlines() if line.startswith("#")]
        assert any("Source: https://" in line for line in header), path.name
        assert any("TFLite version:" in line for line in header), path.name


# (file, init us, first us, warm-up avg us, inference avg us, (count, min, max, std) of the measured phase)
SUCCESSES = [
    ("tf2.4.0_cpu_int8_yolov5s.txt", 1779, 152949, 110690, 95788.3, (50, 93066, 99490, 1284)),
    ("tf2.9_nnapi_partial_logcat.txt", 126059, 32942, 12581.9, 12167.6, (75, 11787, 13649, 325)),
    ("tf2.15.0_nnapi_synap_npu.txt", 66002, 637079, 637079, 1885.74, (520, 1171, 9925, 870)),
    ("tf2.15.0_external_vx_delegate.txt", 25573, 201009, 1760.78, 1096.48, (876, 810, 6334, 476)),
]


@pytest.mark.parametrize("name, init, first, warm, avg, measured", SUCCESSES)
def test_summary_and_measured_phase(name, init, first, warm, avg, measured):
    out = parse(load(name))
    assert out.ok and out.error_message() is None
    assert (out.init_us, out.first_inference_us, out.warmup_avg_us, out.inference_avg_us) == (
        init,
        first,
        warm,
        avg,
    )
    phase = out.inference
    assert (phase.count, phase.min_us, phase.max_us, phase.std_us) == measured
    assert phase.avg_us == avg  # the phase line and the summary agree in every real output


def test_warmup_phase_including_a_single_run():
    # TF 2.15 prints a one-run warm-up as "count=1 curr=637079": first = min = max = avg = curr, std 0
    single = parse(load("tf2.15.0_nnapi_synap_npu.txt")).warmup
    assert (single.count, single.first_us, single.min_us, single.max_us, single.avg_us, single.std_us) == (
        1,
        637079,
        637079,
        637079,
        637079,
        0,
    )
    several = parse(load("tf2.9_nnapi_partial_logcat.txt")).warmup
    assert (several.count, several.first_us, several.avg_us, several.std_us) == (40, 32942, 12581.9, 3331)
    # an excerpt holding only the measured phase has no warm-up statistics
    assert parse(load("tf2.4.0_cpu_int8_yolov5s.txt")).warmup is None


def test_memory_lines_of_both_generations():
    old = parse(load("tf2.4.0_cpu_int8_yolov5s.txt"))
    assert (old.memory_measure, old.memory_init_mb, old.memory_overall_mb) == (
        "Peak memory footprint",
        5.15625,
        36.9883,
    )
    new = parse(load("tf2.15.0_nnapi_synap_npu.txt"))  # its last line ends in trailing spaces
    assert new.memory_measure == "Memory footprint delta from the start of the tool"
    assert (new.memory_init_mb, new.memory_overall_mb, new.peak_memory_mb) == (7.40234, 7.83203, None)


def test_model_size_session_init_and_version():
    out = parse(load("tf2.15.0_external_vx_delegate.txt"))
    assert (out.model_size_mb, out.session_init_ms, out.tool_version) == (0.497264, 25.573, "2.15.0")
    logcat = parse(load("tf2.9_nnapi_partial_logcat.txt"))
    assert (logcat.model_size_mb, logcat.session_init_ms, logcat.tool_version) == (0.113392, 126.059, None)


def test_prefixes_are_removed():
    assert message("05-30 15:16:44.858  3380  3380 I tflite  : Initialized session in 126.059ms.") == (
        "Initialized session in 126.059ms.",
        False,
    )
    assert message("07-17 12:07:28.132 22646 22646 E tflite: UNPACK: Operation is not supported.") == (
        "UNPACK: Operation is not supported.",
        True,
    )
    assert message("VERBOSE: Replacing 31 out of 31 node(s)") == ("Replacing 31 out of 31 node(s)", False)
    assert message("INFO: [benchmark_litert_model.h:94] Model initialization: 1.00 ms") == (
        "Model initialization: 1.00 ms",
        False,
    )


@pytest.mark.parametrize(
    "name, expected",
    [
        (
            "tf2.4.0_nnapi_failed_yolov5s.txt",
            (
                "NN API returned error ANEURALNETWORKS_OP_FAILED at line 3779 while completing NNAPI compilation. | "
                "Node number 248 (TfLiteNnapiDelegate) failed to prepare. | Restored original execution plan after "
                "delegate application failure. | Failed to apply NNAPI delegate. | Benchmarking failed."
            ),
        ),
        ("tf2.8_xnnpack_failed.txt", "Failed to apply XNNPACK delegate. | Benchmarking failed."),
    ],
)
def test_failures_carry_the_tools_message(name, expected):
    out = parse(load(name))
    assert not out.ok and out.benchmark_failed
    assert out.inference_avg_us is None and out.inference is None
    assert out.error_message() == expected


def test_coverage_complete_on_an_npu_and_an_external_delegate():
    nnapi = coverage(parse(load("tf2.15.0_nnapi_synap_npu.txt")), "nnapi")
    assert nnapi == {
        "status": "full",
        "delegate": "TfLiteNnapiDelegate",
        "delegated_nodes": 31,
        "total_nodes": 31,
        "cpu_nodes": 0,
        "partitions": 1,
        "unsupported_ops": [],
    }
    vx = coverage(parse(load("tf2.15.0_external_vx_delegate.txt")), "external")
    assert (vx["status"], vx["delegate"], vx["delegated_nodes"], vx["cpu_nodes"]) == (
        "full",
        "Vx Delegate",
        31,
        0,
    )
    # the same output says nothing about a GPU delegate
    assert coverage(parse(load("tf2.15.0_external_vx_delegate.txt")), "gpu")["status"] is None


def test_coverage_partial_from_the_delegates_verdict():
    cov = coverage(parse(load("tf2.9_nnapi_partial_logcat.txt")), "nnapi")
    assert (cov["status"], cov["partitions"], cov["delegated_nodes"]) == ("partial", 44, None)


def test_coverage_picks_the_gpu_line_among_xnnpack_ones():
    out = parse(load("runtime_gpu_partial_replacing.txt"))
    gpu = coverage(out, "gpu")
    assert (
        gpu["delegate"],
        gpu["delegated_nodes"],
        gpu["total_nodes"],
        gpu["cpu_nodes"],
        gpu["partitions"],
    ) == ("TfLiteGpuDelegateV2", 29, 65, 36, 3)
    assert gpu["status"] == "partial"
    xnnpack = coverage(out, "xnnpack")  # the last XNNPACK line: what ran around the GPU partitions
    assert (xnnpack["delegated_nodes"], xnnpack["total_nodes"]) == (25, 37)
    assert coverage(out, "cpu") is None


def test_gpu_op_split_and_unsupported_ops():
    cov = coverage(parse(load("tf2.6.0_gpu_unsupported_ops.txt")), "gpu")
    assert (cov["status"], cov["delegated_nodes"], cov["cpu_nodes"], cov["total_nodes"]) == (
        "partial",
        97,
        200,
        297,
    )
    assert len(cov["unsupported_ops"]) == 11
    assert cov["unsupported_ops"][0] == "ARG_MAX: Operation is not supported."
    assert cov["unsupported_ops"][-1] == "UNPACK: Operation is not supported."


def test_percentiles_as_litert_prints_them():
    # LiteRT's benchmark_model keeps StatWithPercentiles (tflite/tools/benchmark/benchmark_model.cc), whose
    # OutputToStream appends " p5=.. median=.. p95=.." to Stat's line
    # (tensorflow/core/util/stats_calculator.h).
    # No published log of it was found, so this line is built to that source's format.
    text = (
        "INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding "
        "150 seconds.\nINFO: count=50 first=2531 curr=2793 min=1171 max=9925 avg=1885.74 std=870 p5=1180 "
        "median=1802 p95=2950\n\nINFO: Inference timings in us: Init: 66002, First inference: 2600, "
        "Warmup (avg): 2600, Inference (avg): 1885.74\n"
    )
    out = parse(text)
    assert out.inference.percentiles_us == {"p5": 1180, "p50": 1802, "p95": 2950}
    timings = timings_from_output(out)
    assert timings["percentiles_ms"] == {"p5": 1.18, "p50": 1.802, "p95": 2.95}
    assert (timings["inference_avg_ms"], timings["inference_min_ms"], timings["init_ms"]) == (
        1.8857,
        1.171,
        66.002,
    )


def test_percentiles_when_every_run_took_as_long():
    # Stat::OutputToStream shortens its line to "count=N curr=X(all same)"; StatWithPercentiles still appends
    # the percentiles (a tiny model's 3 runs rounded to the same microsecond)
    text = (
        "INFO: count=3 curr=57(all same) p5=57 median=57 p95=57\n\nINFO: Inference timings in us: Init: 900, "
        "First inference: 80, Warmup (avg): 80, Inference (avg): 57\n"
    )
    stats = parse(text).inference
    assert (stats.count, stats.min_us, stats.max_us, stats.avg_us, stats.std_us) == (3, 57, 57, 57, 0.0)
    assert stats.percentiles_us == {"p5": 57, "p50": 57, "p95": 57}


def test_litert_compiled_model_summary():
    out = parse(load("litert2.1.5_compiled_model_gpu.txt"))
    assert out.ok
    assert (out.init_us, out.first_inference_us, out.warmup_avg_us, out.inference_avg_us) == pytest.approx(
        (23744730, 7441040, 7441040, 7430200)
    )  # printed in ms with 2 decimals, scaled to us
    assert (out.inference.count, out.warmup.count) == (10, 1)
    assert (out.inference.min_us, out.inference.max_us, out.inference.std_us) == pytest.approx(
        (7416400, 7448860, 9920)
    )
    assert (out.memory_init_mb, out.memory_overall_mb, out.peak_memory_mb) == (6391.74, 6391.74, None)
    timings = timings_from_output(out)
    assert (timings["init_ms"], timings["inference_avg_ms"], timings["inference_runs"]) == (
        23744.73,
        7430.2,
        10,
    )


def test_the_tf1_tools_average_inference_timings():
    # "Average inference timings in us: Warmup: W, Init: I, Inference: A": W is the warm-up runs' average and
    # the tool prints no first inference, so that is the warm-up phase's first run (its "count=1 curr=X")
    out = parse(load("tf1.x_average_inference_timings.txt"))
    assert out.ok and out.error_message() is None
    assert (out.init_us, out.first_inference_us, out.warmup_avg_us, out.inference_avg_us) == (
        38467,
        83235,
        83235,
        79760.9,
    )
    assert (out.inference.count, out.inference.min_us, out.inference.max_us, out.inference.std_us) == (
        50,
        78432,
        83002,
        921,
    )
    assert (out.warmup.count, out.session_init_ms) == (1, 38.467)
    timings = timings_from_output(out)
    assert (timings["init_ms"], timings["first_inference_ms"], timings["inference_avg_ms"]) == (
        38.467,
        83.235,
        79.7609,
    )


def test_the_oldest_wording_no_stats_and_without_a_warmup_phase():
    # TF 1.x builds before "Inference:" printed "no stats:" for the measured average (the 1.x
    # benchmark_model.cc's BenchmarkLoggingListener); an excerpt of that line alone has no first inference
    out = parse("Average inference timings in us: Warmup: 146161, Init: 4452, no stats: 137722\n")
    assert out.ok
    assert (out.init_us, out.first_inference_us, out.warmup_avg_us, out.inference_avg_us) == (
        4452,
        None,
        146161,
        137722,
    )


def test_tensorflows_own_benchmark_line_is_not_a_tflite_summary():
    # tensorflow/tools/benchmark (the TF graph tool, no Init) shares the opening words; its "no stats" and
    # "with stats" averages are not the fields above
    out = parse("Average inference timings in us: Warmup: 169371, no stats: 154047, with stats: 165939\n")
    assert not out.ok and out.init_us is None and out.inference_avg_us is None


def test_unrelated_text_parses_to_nothing():
    out = parse("hello\n\nsh: benchmark_model: not found\n")
    assert not out.ok and out.inference is None and out.replacements == [] and out.memory_measure is None
