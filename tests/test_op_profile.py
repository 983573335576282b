"""android_bench.op_profile on benchmark_model's per-operator profile (--enable_op_profiling=true).

Two verbatim profiles of the real tool (tests/data/benchmark_model/, each header names its source): LiteRT's
README sample (an old layout: no section headers, a [start] column, names without ":<node>") and a TF 2.4.0
NNAPI run (initialization tables first, then the regular runs' with three delegate kernels). Their expected
numbers are read off the files by eye. Then tests/fakes/benchmark_model's emulation on a PyNET model with
instance norms: its node names and types must be the model's own (read here with LiteRT), and its tables
must read back. Short snippets built to the formatter's source (LiteRT profile_summary_formatter.cc, TF
tsl/util/stats_calculator.cc) cover what no verbatim output here shows: CSV rows, "Delegate internal", other
subgraphs.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from android_bench import benchmark_output
from android_bench.op_profile import is_norm, norm_share, parse, record, top_types
from export.tflite import to_tflite_float32
from pynet_tf.nets.pynet.model import build_pynet

DATA = Path(__file__).resolve().parent / "data" / "benchmark_model"
FAKE = Path(__file__).resolve().parent / "fakes" / "benchmark_model"
README = "litert_readme_op_profiling_mobilenet.txt"
NNAPI = "tf2.4.0_nnapi_op_profile_yolov5s.txt"


def fixture_text(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def test_readme_sample_with_its_header_lines():
    profile = parse(fixture_text(README))  # the '#' source lines are not table rows: skipped
    assert profile is not None and len(profile.nodes) == 31  # "Number of nodes executed: 31"
    first, last = profile.nodes[0], profile.nodes[-1]
    # the [start] column (0.000) is not taken for [first]; old names carry no ":<node index>"
    assert (first.type, first.first_ms, first.avg_ms, first.share) == ("CONV_2D", 4.269, 4.269, 0.00107)
    assert first.tensors == ("MobilenetV1/MobilenetV1/Conv2d_0/Relu6",) and first.index is None
    assert (last.type, last.avg_ms, last.name) == ("SOFTMAX", 0.029, "[MobilenetV1/Predictions/Softmax]")
    # the summary by node type as printed (its CONV_2D 1.406 ms disagrees with the rows: the README's own)
    assert [(stat.type, stat.count, stat.avg_ms, stat.share) for stat in profile.by_type[:2]] == [
        ("CONV_2D", 15, 1.406, 0.8927),
        ("DEPTHWISE_CONV_2D", 13, 0.169, 0.1073),
    ]
    # "Timings (microseconds): count=50 ... avg=79732"
    assert (profile.runs, profile.run_avg_ms) == (50, 79.732)


def test_nnapi_profile_skips_the_initialization_tables():
    profile = parse(fixture_text(NNAPI))
    # the initialization's ModifyGraphWithDelegate/AllocateTensors and its "count=1" Timings are not read
    assert len(profile.nodes) == 14 and {node.type for node in profile.nodes}.isdisjoint({"AllocateTensors"})
    assert (profile.runs, profile.run_avg_ms) == (50, 164.609)
    kernel = profile.nodes[6]
    assert (kernel.type, kernel.first_ms, kernel.avg_ms, kernel.index) == (
        "TfLiteNnapiDelegate",
        86.415,
        83.75,
        270,
    )
    assert kernel.tensors == (
        "model/tf.math.multiply_23/Mul",
        "model/tf.math.multiply_38/Mul",
        "model/tf.math.multiply_49/Mul",
    )
    assert kernel.delegated and not profile.nodes[0].delegated
    assert [(stat.type, stat.avg_ms) for stat in top_types(profile, 2)] == [
        ("TfLiteNnapiDelegate", 152.261),
        ("STRIDED_SLICE", 8.338),
    ]


def test_record_of_the_nnapi_profile():
    row = record(parse(fixture_text(NNAPI)))
    assert row["nodes"] == 14 and row["total_ms"] == 164.609  # the tool's Timings average
    assert row["by_type"][0] == {
        "type": "TfLiteNnapiDelegate",
        "count": 3,
        "avg_ms": 152.261,
        "share": 0.92504,
    }
    # no "_norm" layer in this model; the three kernels (83.750 + 16.808 + 51.706 of the rows' 164.610 ms)
    # cannot be split by layer, and the record says how much that is
    assert row["norm"] == {
        "avg_ms": 0.0,
        "share": 0.0,
        "ops": 0,
        "by_type": {},
        "delegated_ms": 152.264,
        "delegated_share": 0.925,
    }


def test_no_profile_in_the_output():
    assert parse("") is None
    # a whole run without --enable_op_profiling: no tables
    assert parse(fixture_text("tf2.15.0_nnapi_synap_npu.txt")) is None
    # only the initialization profile (a run that failed before its regular runs)
    init_only = fixture_text(NNAPI).split("Operator-wise")[0]
    assert parse(init_only) is None


def test_logcat_prefixes_are_removed_line_by_line():
    # the benchmark APK's output read from logcat carries a prefix on every line (see benchmark_output)
    plain = parse(fixture_text(NNAPI))
    prefix = "05-30 15:16:44.857  3380  3380 I tflite  : "
    logcat = parse("\n".join(prefix + line for line in fixture_text(NNAPI).splitlines()))
    assert logcat == plain


# Built to TF tsl/util/stats_calculator.cc @ 639c8cdf8d2b's CSV branch (ProfileSummaryCSVFormatter): ", "
# between columns, C++'s default number format, commas in names turned into tabs; type names may hold commas.
CSV_RUN = """Operator-wise Profiling Info for Regular Benchmark Runs:
============================== Run Order ==============================
node type, first, avg_ms, %, cdf%, mem KB, times called, name
CONV_2D, 0.5, 0.4, 40%, 40%, 0, 1, [net/l2_enc_3x3a/Conv2D]:0
MEAN, 0.1, 0.1, 10%, 50%, 0, 1, [net/l2_enc_3x3a_norm/Mean]:1
Convolution (NHWC, F32) GEMM, 0.5, 0.5, 50%, 100%, 0, 1, Delegate/Convolution (NHWC, F32) GEMM:2
SPLIT, 0, 0, 0%, 100%, 0, 1, [net/a_norm/split\t net/b/split:1]:3

Number of nodes executed: 4
============================== Summary by node type ==============================
node type, count, avg_ms, avg %, cdf %, mem KB, times called
Convolution (NHWC, F32) GEMM, 1, 0.5, 50%, 50%, 0, 1
CONV_2D, 1, 0.4, 40%, 90%, 0, 1

Timings (microseconds): count=2 curr=1000(all same)
"""


def test_csv_rows_with_commas_in_types_and_tabs_in_names():
    profile = parse(CSV_RUN)
    assert [node.type for node in profile.nodes] == [
        "CONV_2D",
        "MEAN",
        "Convolution (NHWC, F32) GEMM",
        "SPLIT",
    ]
    assert profile.nodes[3].tensors == ("net/a_norm/split", "net/b/split:1") and profile.nodes[3].index == 3
    assert profile.by_type[0].type == "Convolution (NHWC, F32) GEMM" and profile.by_type[0].share == 0.5
    assert (profile.runs, profile.run_avg_ms) == (2, 1.0)  # "curr=1000(all same)"
    # the norm: the MEAN and the SPLIT (a "_norm" tensor among its outputs); the delegate's op names no layer
    assert [node.type for node in profile.nodes if is_norm(node)] == ["MEAN", "SPLIT"]
    share = norm_share(profile)
    assert (share["avg_ms"], share["share"], share["ops"], share["delegated_share"]) == (0.1, 0.1, 2, 0.5)


# Built to LiteRT profile_summary_formatter.cc @ 7994e0a0b514's GenerateReport with two subgraphs and
# delegate-internal events: the primary graph's tables, the other subgraph's, then "Delegate internal: ".
HEADER = "\t[node type]\t[first]\t[avg ms]\t[%]\t[cdf%]\t[mem KB]\t[times called]\t[Name]"
SUBGRAPHS = f"""INFO: Operator-wise Profiling Info for Regular Benchmark Runs:
Primary graph (name: main) profile:
============================== Run Order ==============================
{HEADER}
\tTfLiteGpuDelegateV2\t2.000\t2.000\t100.000%\t100.000%\t0.000\t1\t[out]:5

Timings (microseconds): count=3 first=2000 curr=2000 min=2000 max=2000 avg=2000 std=0
Subgraph (index: 1, name: body) profile:
============================== Run Order ==============================
{HEADER}
\tADD\t0.100\t0.100\t100.000%\t100.000%\t0.000\t1\t[body/add]:0

Subgraph (index: 1, name: body) Timings (microseconds): count=3 curr=100(all same)
Delegate internal: 
============================== Run Order ==============================
{HEADER}
\tDelegateOpInvoke\t1.500\t1.500\t75.000%\t75.000%\t0.000\t1\tDelegate/conv_kernel:0

Timings (microseconds): count=3 curr=2000(all same)
"""


def test_delegate_internal_and_other_subgraphs_are_kept_apart():
    profile = parse(SUBGRAPHS)
    assert [node.name for node in profile.nodes] == ["[out]:5"]  # not the other subgraph's ADD
    assert profile.run_avg_ms == 2.0
    # what the delegate timed inside its kernel is already in the kernel's 2 ms: listed apart
    assert [node.name for node in profile.delegate_internal.nodes] == ["Delegate/conv_kernel:0"]


# --- the fake tool's emulation, on PyNET level 5 (instance norms at levels 2-5) ---


@pytest.fixture(scope="module")
def pynet(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "pynet_level5_64x64_float32.tflite"
    path.write_bytes(to_tflite_float32(pynet_level5(), (1, 64, 64, 4)))
    return path


def pynet_level5():
    return build_pynet(5, base_filters=2)  # instance norms on (the default)


def model_nodes(path: Path) -> list[tuple[str, str]]:
    """(op type, "[output tensor names]:index") of every op, as LiteRT's ProfileSummarizer names nodes."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    names = {detail["index"]: detail["name"] for detail in interpreter.get_tensor_details()}
    return [
        (op["op_name"], f"[{', '.join(names[int(t)] for t in op['outputs'])}]:{op['index']}")
        for op in interpreter._get_ops_details()
    ]


def run_fake(model: Path, *flags: str) -> str:
    done = subprocess.run(
        [sys.executable, str(FAKE), f"--graph={model}", "--num_runs=3", "--num_threads=1", *flags],
        capture_output=True,
        text=True,
        check=True,
        env={name: value for name, value in os.environ.items() if not name.startswith("FAKE_")},
    )
    return done.stdout


def test_fake_profile_on_tflite_kernels_names_every_op(pynet):
    stdout = run_fake(pynet, "--use_xnnpack=false", "--enable_op_profiling=true")
    profile = parse(stdout)
    expected = model_nodes(pynet)
    # every op of the model, in order, under its own type and output tensor names
    assert [(node.type, node.name) for node in profile.nodes] == expected
    assert sum(stat.count for stat in profile.by_type) == len(expected)
    # the ops named after a "*_norm" layer are those of every Keras norm layer and of no other layer; the
    # converter turns each norm into the same 7 ops
    norms = [node for node in profile.nodes if is_norm(node)]
    layers = {re.search(r"/(\w+_norm)/", node.tensors[0]).group(1) for node in norms}
    assert layers == {layer.name for layer in pynet_level5().layers if layer.name.endswith("_norm")}
    assert [node.type for node in norms[:7]] == ["MEAN", "SUB", "MUL", "MEAN", "ADD", "RSQRT", "MUL"]
    assert len(norms) == 7 * len(layers)
    share = norm_share(profile)
    assert share["ops"] == len(norms) and 0 < share["share"] < 1 and share["delegated_share"] == 0
    # the per-op times split the measured runs: the profile's Timings average is the summary's
    summary = benchmark_output.parse(stdout)
    assert summary.ok and summary.inference.count == profile.runs == 3  # the profile did not disturb it
    assert profile.run_avg_ms == pytest.approx(summary.inference_avg_us / 1000.0)


def test_fake_profile_with_xnnpack_is_one_kernel(pynet):
    stdout = run_fake(pynet, "--enable_op_profiling=true")
    (kernel,) = parse(stdout).nodes  # XNNPACK takes the whole float32 PyNET: one partition
    ops = model_nodes(pynet)
    output_name = re.search(r"\[(.*)\]", ops[-1][1]).group(1)  # the last op writes the model's output
    assert (kernel.type, kernel.name) == ("TfLiteXNNPackDelegate", f"[{output_name}]:{len(ops)}")
    assert norm_share(parse(stdout))["delegated_share"] == 1.0  # the norms hide inside it


def test_fake_writes_the_csv_file(pynet, tmp_path):
    csv = tmp_path / "profile.csv"
    stdout = run_fake(
        pynet, "--use_xnnpack=false", "--enable_op_profiling=true", f"--profiling_output_csv_file={csv}"
    )
    assert "Operator-wise" not in stdout and f"CSV File to export profiling data to: [{csv}]" in stdout
    text = csv.read_text()
    assert text.startswith("Profiling Info for Benchmark Initialization:\n")
    assert "node type, first, avg_ms, %, cdf%, mem KB, times called, name" in text
    assert [(node.type, node.name) for node in parse(text).nodes] == model_nodes(pynet)


def test_fake_logs_the_csv_when_the_file_cannot_be_opened(pynet, tmp_path):
    stdout = run_fake(
        pynet,
        "--use_xnnpack=false",
        "--enable_op_profiling=true",
        f"--profiling_output_csv_file={tmp_path / 'missing' / 'profile.csv'}",
    )
    assert "INFO: Operator-wise Profiling Info for Regular Benchmark Runs:" in stdout
    assert len(parse(stdout).nodes) == len(model_nodes(pynet))


def test_fake_prints_no_profile_unless_asked(pynet):
    assert parse(run_fake(pynet, "--enable_op_profiling=false")) is None
