"""android_bench/runtime_info.py: benchmark_model's runtime info read per op type, and why a row has none.

The file under test is built with LiteRT's own compiled schema (``ai_edge_litert.model_runtime_info_pb2``) in
a child process without TensorFlow: the module reads it through TensorFlow's copy, which this process has
loaded, and protobuf takes only one of the two per process (see the module's docstring).
"""

import re
import subprocess
import sys

import pytest

from android_bench import runtime_info

# Nodes 0-5 are the model's; 6 and 7 the delegate kernels TFLite appended: the GPU delegate took 0, 1, 3, the
# default XNNPACK 4, 5, and RSQRT (2) stayed on TFLite's own kernels. Ops by builtin name and enum number.
BUILD = """
import sys
from ai_edge_litert import model_runtime_info_pb2 as pb

details = pb.ModelRuntimeDetails()
graph = details.subgraphs.add(subgraph_id=0, subgraph_type=pb.RuntimeSubgraph.TFLITE_SUBGRAPH, name="main")
ops = [("CONV_2D", 3), ("MEAN", 40), ("RSQRT", 76), ("MUL", 18), ("CONV_2D", 3), ("ADD", 0)]
for index, (name, code) in enumerate(ops):
    graph.edges.add(id=index, name=f"t{index}", data_type=pb.Edge.FLOAT32, shape=[1, 8, 8, 4], size=1024)
    graph.nodes.add(id=index, name=name, type=str(code), inputs=[index], outputs=[index + 1])
for kernel, name, replaced in [(6, "TfLiteGpuDelegateV2", [0, 1, 3]), (7, "TfLiteXNNPackDelegate", [4, 5])]:
    node = graph.nodes.add(id=kernel, name=name, type=name)
    node.delegate_node_details.delegate_name = name
    node.delegate_node_details.tflite_node_ids_replaced.extend(replaced)
    for index in replaced:
        graph.nodes[index].delegated_to_node_id = kernel
graph.execution_plan.extend([6, 2, 7])
if sys.argv[1:2] == ["replaced"]:  # a kernel that names a node the file lacks
    graph.nodes[6].delegate_node_details.tflite_node_ids_replaced.append(int(sys.argv[2]))
if sys.argv[1:2] == ["plan"]:  # so does the execution plan
    graph.execution_plan.append(int(sys.argv[2]))
sys.stdout.buffer.write(details.SerializeToString())
"""


def litert_serialized(*args: str) -> bytes:
    """The hand-built ModelRuntimeDetails above, serialized by LiteRT's compiled schema (no TensorFlow)."""
    done = subprocess.run([sys.executable, "-c", BUILD, *args], capture_output=True, check=True)
    return done.stdout


@pytest.fixture(scope="module")
def details():
    return runtime_info.parse(litert_serialized())


def test_op_types_inside_each_delegate_kernel_and_on_the_cpu(details):
    record = runtime_info.record(details, "gpu")
    assert record["subgraph"] == "main" and record["total_nodes"] == 6
    assert record["kernels"] == [
        {
            "node": 6,
            "delegate": "TfLiteGpuDelegateV2",
            "nodes": 3,
            "ops": {"CONV_2D": 1, "MEAN": 1, "MUL": 1},
        },
        {"node": 7, "delegate": "TfLiteXNNPackDelegate", "nodes": 2, "ops": {"ADD": 1, "CONV_2D": 1}},
    ]
    assert record["cpu_ops"] == {"RSQRT": 1}
    # off the GPU: what XNNPACK took and what TFLite's own kernels run
    assert record["delegate"] == {
        "status": "partial",
        "delegated_nodes": 3,
        "outside_ops": {"ADD": 1, "CONV_2D": 1, "RSQRT": 1},
    }


@pytest.mark.parametrize(
    ("delegate", "expected"),
    [
        (
            "xnnpack",
            {
                "status": "partial",
                "delegated_nodes": 2,
                "outside_ops": {"CONV_2D": 1, "MEAN": 1, "MUL": 1, "RSQRT": 1},
            },
        ),
        (
            "nnapi",
            {
                "status": "none",
                "delegated_nodes": 0,
                "outside_ops": {"CONV_2D": 2, "ADD": 1, "MEAN": 1, "MUL": 1, "RSQRT": 1},
            },
        ),
        ("cpu", None),
    ],
)
def test_the_rows_own_delegate_decides_what_is_outside(details, delegate, expected):
    record = runtime_info.record(details, delegate)
    assert record["delegate"] == expected
    assert list((expected or {}).get("outside_ops", {})) == list(
        (record["delegate"] or {}).get("outside_ops", {})
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xff\xff\xff", "no ModelRuntimeDetails protobuf"),
        (b"", "holds no primary subgraph (subgraph_id 0)"),
    ],
)
def test_a_file_that_is_no_runtime_info_is_a_clear_error(content, expected):
    with pytest.raises(runtime_info.RuntimeInfoError, match=re.escape(expected)):
        runtime_info.parse(content)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("replaced", "delegate kernel 6 replaces node 42, which the file lacks"),
        ("plan", "the execution plan runs node 42, which the file lacks"),
    ],
)
def test_a_node_the_file_lacks_is_an_error(where, expected):
    details = runtime_info.parse(litert_serialized(where, "42"))
    with pytest.raises(runtime_info.RuntimeInfoError, match=expected):
        runtime_info.record(details, "gpu")


WARNED = (
    "INFO: Initialized session in 1.2ms.\n"
    "WARN: Unconsumed cmdline flags: --export_model_runtime_info=true "
    "--model_runtime_info_output_file=/data/local/tmp/pynet_bench/runtime_info.pb\n"
)


@pytest.mark.parametrize(
    ("output", "exit_code", "error", "status", "words"),
    [
        (
            WARNED,
            0,
            None,
            "unsupported",
            "it warned: Unconsumed cmdline flags: --export_model_runtime_info=true",
        ),
        ("INFO: Initialized session in 1.2ms.\n", 0, None, "unsupported", "it ignored the flag silently"),
        ("ERROR: Failed to open file: /nope/x.pb\n", 0, None, "error", "Failed to open file: /nope/x.pb"),
        ("ERROR: Failed to apply GPU delegate.\n", 1, None, "error", "the run stopped before"),
        ("", None, "timed out: killed after 90 s", "error", "the run stopped before"),
    ],
)
def test_why_a_row_has_no_runtime_info(output, exit_code, error, status, words):
    record = runtime_info.missing(output, exit_code, error)
    assert record["status"] == status and words in record["error"]
    if status == "unsupported":
        assert "placement is from its delegate log lines" in record["error"]


def test_the_flags_ask_for_the_file():
    assert runtime_info.flags("/data/local/tmp/x.pb") == [
        "--export_model_runtime_info=true",
        "--model_runtime_info_output_file=/data/local/tmp/x.pb",
    ]
