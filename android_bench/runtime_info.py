"""Where each op ran on the phone: ``benchmark_model``'s model runtime info, read per op type.

Why: the tool's delegate lines (``Replacing N out of M node(s) with delegate (NAME) node``) count nodes but do
not say which ops stayed off the delegate, so the report could compare the export's op tables
(``export/delegates.py``, kept by hand) with a phone only as full / partial / none. The runtime info is the
interpreter's graph after delegation: every node, the delegate kernels and the nodes each replaced.

What the tool does (sources, cited by commit; LiteRT = google-ai-edge/LiteRT, TF = tensorflow/tensorflow):

- Flags: ``--export_model_runtime_info`` (bool, default false, help "Enable Model Runtime Info Export") and
  ``--model_runtime_info_output_file`` (string, default "", "Proto File to export model runtime info to"),
  LiteRT ``tflite/tools/benchmark/benchmark_tflite_model.cc`` @ 01d971c556e3 (``DefaultParams``,
  ``GetFlags``); the same in TF's ``tensorflow/lite/tools/benchmark/`` from 2024 (``model_runtime_info.cc``
  and its proto are dated 2024, so no release before TF 2.16 has them; the TF fork tactipus/tensorflow @
  cb555037c534 has both flags), absent from TF @ 010f3edcdc2 and @ 0aa069c7491. A tool without them warns
  ``Unconsumed cmdline flags: ...`` (the oldest say nothing, ``tensor_files``) and writes nothing.
- When: with the first flag true, ``Init`` adds a ``ModelRuntimeInfoListener`` whose ``OnBenchmarkStart``
  writes the file; ``BenchmarkModel::Run`` (LiteRT ``benchmark_model.cc`` @ 7d88950ea445) calls that after
  ``Init`` (delegates applied, tensors allocated) and the input files' checks, before the warm-up. So a
  delegate that fails to apply (``Init`` fails) leaves no file, a run that fails later has one. Nothing is
  logged on success; a path that does not open logs ``Failed to open file: PATH`` and the message as text.
- What: LiteRT ``tflite/profiling/model_runtime_info.cc`` @ 12f8377eff40 (``GenerateModelRuntimeInfo``)
  serializes ``tflite.profiling.ModelRuntimeDetails`` (``tflite/profiling/proto/model_runtime_info.proto``,
  compiled in ``ai_edge_litert.model_runtime_info_pb2``): one ``RuntimeSubgraph`` per interpreter subgraph
  (id, type ``TFLITE_SUBGRAPH``, its name), every tensor as an ``Edge``, every node: a builtin op's ``name`` is
  its ``BuiltinOperator`` name (``CONV_2D``) and its ``type`` the enum's number, a custom op's both its custom
  name. A delegate kernel (a node TFLite adds after the model's own) has ``delegate_node_details``
  (``delegate_name``: ``TfLiteXNNPackDelegate``, ``TfLiteGpuDelegateV2``, ...; ``tflite_node_ids_replaced``),
  each node it replaced ``delegated_to_node_id``; ``execution_plan`` is what ``Invoke`` runs.

The schema is read through TensorFlow's compiled copy (``tensorflow.lite.profiling.proto``'s
``model_runtime_info_pb2``): the same messages and fields as LiteRT's (package ``tflite.profiling``;
tests/test_runtime_info.py parses a file serialized by LiteRT's), but the two register those names under
different file names and protobuf's default pool takes only one: TensorFlow imports its own
(``tensorflow.lite.python.lite``), and ``pynet_tf``, which every module here imports first, loads TensorFlow,
so importing LiteRT's beside it fails ("duplicate symbol").

Read here: the primary subgraph (id 0, the graph the export's op tables describe): per delegate kernel the op
types and node counts it replaced, the ops left on TFLite's own kernels, and for the row's ``--delegates``
name (``benchmark_output.delegate_matches``) how much of the graph it took and which ops it did not. Another
delegate's kernels count as off the row's delegate: the default XNNPACK takes what the GPU delegate leaves.
"""

from __future__ import annotations

from collections import Counter

from google.protobuf.message import DecodeError
from tensorflow.lite.profiling.proto import model_runtime_info_pb2

from android_bench.benchmark_output import delegate_matches, message
from android_bench.tensor_files import unconsumed_flags

EXPORT_FLAG = "--export_model_runtime_info"
FILE_FLAG = "--model_runtime_info_output_file"
TOO_OLD = (
    "this benchmark_model wrote no runtime info: it does not know {flag} ({how}), a flag of TFLite's tool "
    "since 2024 and LiteRT's; placement is from its delegate log lines"
)
STOPPED = (
    "the run stopped before benchmark_model wrote its runtime info (it does so after init, before the runs)"
)


class RuntimeInfoError(ValueError):
    """A file that is no ModelRuntimeDetails, has no primary subgraph, or names nodes it does not hold."""


def flags(remote_path: str) -> list[str]:
    """What makes benchmark_model write its runtime info to ``remote_path``."""
    return [f"{EXPORT_FLAG}=true", f"{FILE_FLAG}={remote_path}"]


def parse(content: bytes) -> model_runtime_info_pb2.ModelRuntimeDetails:
    """The ``ModelRuntimeDetails`` in ``content``; ``RuntimeInfoError`` when it is none."""
    details = model_runtime_info_pb2.ModelRuntimeDetails()
    try:
        details.ParseFromString(content)
    except DecodeError as error:
        raise RuntimeInfoError(f"the runtime info file is no ModelRuntimeDetails protobuf: {error}") from None
    if not any(subgraph.subgraph_id == 0 for subgraph in details.subgraphs):
        raise RuntimeInfoError(
            f"the runtime info ({len(content)} bytes) holds no primary subgraph (subgraph_id 0)"
        )
    return details


def _counts(types: list[str]) -> dict[str, int]:
    """``{op type: nodes}``, most frequent first (ties by name)."""
    return dict(sorted(Counter(types).items(), key=lambda item: (-item[1], item[0])))


def record(details: model_runtime_info_pb2.ModelRuntimeDetails, delegate: str) -> dict:
    """JSON-ready placement of the primary subgraph's ops for a row of ``--delegates`` ``delegate``.

    ``kernels``: each delegate kernel in execution order, {node, delegate, nodes, ops}; ``cpu_ops``: the
    model's nodes TFLite runs on its own kernels; ``total_nodes``: the model's nodes (delegate kernels not
    counted). ``delegate``: for the row's own delegate (None on cpu rows) its ``status`` (full / partial /
    none), ``delegated_nodes`` and ``outside_ops``, the op types of the nodes it did not run.
    """
    primary = next(subgraph for subgraph in details.subgraphs if subgraph.subgraph_id == 0)
    nodes = {node.id: node for node in primary.nodes}
    if unknown := [index for index in primary.execution_plan if index not in nodes]:
        raise RuntimeInfoError(f"the execution plan runs node {unknown[0]}, which the file lacks")
    kernels = [
        nodes[index] for index in primary.execution_plan if nodes[index].HasField("delegate_node_details")
    ]
    model_nodes = [node for node in primary.nodes if not node.HasField("delegate_node_details")]
    replaced: dict[int, int] = {}
    for kernel in kernels:
        for index in kernel.delegate_node_details.tflite_node_ids_replaced:
            if index not in nodes:
                raise RuntimeInfoError(
                    f"delegate kernel {kernel.id} replaces node {index}, which the file lacks"
                )
            replaced[index] = kernel.id
    result = {
        "subgraph": primary.name,
        "total_nodes": len(model_nodes),
        "kernels": [
            {
                "node": kernel.id,
                "delegate": kernel.delegate_node_details.delegate_name,
                "nodes": len(kernel.delegate_node_details.tflite_node_ids_replaced),
                "ops": _counts(
                    [nodes[i].name for i in kernel.delegate_node_details.tflite_node_ids_replaced]
                ),
            }
            for kernel in kernels
        ],
        "cpu_ops": _counts([node.name for node in model_nodes if node.id not in replaced]),
        "delegate": None,
    }
    if delegate != "cpu":
        mine = {
            kernel.id
            for kernel in kernels
            if delegate_matches(kernel.delegate_node_details.delegate_name, delegate)
        }
        inside = sum(1 for node in model_nodes if replaced.get(node.id) in mine)
        total = len(model_nodes)
        result["delegate"] = {
            "status": "full" if inside == total else "partial" if inside else "none",
            "delegated_nodes": inside,
            "outside_ops": _counts([node.name for node in model_nodes if replaced.get(node.id) not in mine]),
        }
    return result


def missing(output: str, exit_code: int | None, error: str | None) -> dict:
    """The row's record when the tool wrote no file: the run stopped first (``error``), the tool does not know
    the flags (``unsupported``: it warned, or said nothing), or it could not write (its own error lines)."""
    if error is not None or exit_code != 0:
        return {"status": "error", "error": STOPPED}
    ignored = [arg for arg in unconsumed_flags(output) if arg.startswith((EXPORT_FLAG, FILE_FLAG))]
    if ignored:
        how = f"it warned: Unconsumed cmdline flags: {' '.join(ignored)}"
        return {"status": "unsupported", "error": TOO_OLD.format(flag=EXPORT_FLAG, how=how)}
    failed = [
        text
        for text, is_error in map(message, output.splitlines())
        if is_error and ("runtime info" in text or text.startswith("Failed to open file"))
    ]
    if failed:
        return {"status": "error", "error": " | ".join(failed)}
    return {
        "status": "unsupported",
        "error": TOO_OLD.format(flag=EXPORT_FLAG, how="it ignored the flag silently"),
    }
