"""export/third_party.py: a third-party ISP (the real MicroISP file) at our input shape, scored against ground truth,
then benchmarked and reported in one section, on one Pareto chart, with our mobile ISP's files of that shape.

Module fixture: MicroISP fixed at 96x96 packed (the smallest of our sizes it computes finitely at: 64x64 gives
NaN), a width-4 mobile ISP with informative weights exported to float32 and int8 at 96x96, all three
benchmarked on the host (xnnpack, 1 thread, 3 runs) and reported through the CLI (crops included).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import tf_keras as keras
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from model_fixtures import informative
from skimage.metrics import peak_signal_noise_ratio

from android_bench import report, run
from export import fidelity, sidecar, third_party
from export.formats import STATUS_OK
from export.pipeline import export_model
from pynet_tf.data import bayer
from pynet_tf.nets.mobile.model import build_mobile
from reporting import plots

MICROISP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "third_party" / "MicroISP.tflite"
SHAPE = (96, 96)
REFERENCE = bayer.CHANNEL_ORDERS["reference"]
# PSNR of the same outputs and targets from our TF metric (float32) and scikit-image's (float64): their mean
# squared errors differ by float32 rounding only, ~1e-6 relative, i.e. ~1e-5 dB.
PSNR_TOL_DB = 1e-4


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("imported")
    result = third_party.import_file(MICROISP, input_shape=SHAPE, channel_order=REFERENCE, out=out)
    assert result.status == STATUS_OK and result.psnr_vs_float is None  # no float model to compare with
    return {"path": result.path, "sidecar": result.sidecar, "out": out}


def test_the_copy_has_the_shape_and_computes_what_the_resized_original_does(imported):
    fixed = Interpreter(model_path=str(imported["path"]))
    fixed.allocate_tensors()
    assert list(fixed.get_input_details()[0]["shape"]) == [1, *SHAPE, 4]
    assert list(fixed.get_output_details()[0]["shape"]) == [1, 2 * SHAPE[0], 2 * SHAPE[1], 3]
    original = Interpreter(
        model_path=str(MICROISP),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    assert list(original.get_input_details()[0]["shape"]) == [1, 1500, 2000, 4]  # the file as shipped
    original.resize_tensor_input(original.get_input_details()[0]["index"], [1, *SHAPE, 4])
    original.allocate_tensors()
    batch = np.random.default_rng(3).uniform(0.0, 0.6, (1, *SHAPE, 4)).astype(np.float32)
    outputs = []
    for interpreter in (fixed, original):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    # XNNPACK (the copy's default) against the reference kernels: same float32 graph, summation order only
    assert np.max(np.abs(outputs[0] - outputs[1])) <= 1e-5
    assert imported["path"].read_bytes() != MICROISP.read_bytes()


def test_sidecar_records_the_source_the_order_and_accuracy_versus_ground_truth_only(imported):
    side = json.loads(sidecar.sidecar_path(imported["path"]).read_text())
    assert side == json.loads(json.dumps(imported["sidecar"]))
    assert side["export_format"]["name"] == third_party.FORMAT["name"]
    assert side["file"]["sha256"] == sidecar.sha256_file(imported["path"])
    assert side["source"]["third_party"] == str(MICROISP)
    assert side["source"]["sha256"] == sidecar.sha256_file(MICROISP) and side["source"]["model"] is None
    assert side["settings"]["channel_order"] == "B,Gr,R,Gb" and side["settings"]["input_shape"] == "96x96"
    assert side["fidelity"]["vs_float"] is None and side["fidelity"]["vs_ground_truth"]["delta_psnr"] is None
    assert side["delegates"]["gpu"]["supported"] in ("full", "partial", "none")
    # Independently: the original file (resized, reference kernels) on the held-out inputs in its channel
    # order, scored by scikit-image
    original = Interpreter(
        model_path=str(MICROISP),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    original.resize_tensor_input(original.get_input_details()[0]["index"], [1, *SHAPE, 4])
    original.allocate_tensors()
    items = fidelity.held_out_targets(SHAPE, "samples")
    per_image = {row["name"]: row for row in side["fidelity"]["per_image"]}
    assert sorted(per_image) == sorted(item.name for item in items) and len(items) == 2
    for item in items:
        # our canonical (R, Gr, Gb, B) reordered by hand into the reference loaders' (B, Gr, R, Gb)
        packed = np.stack(
            [item.packed[..., 3], item.packed[..., 1], item.packed[..., 0], item.packed[..., 2]], -1
        )
        original.set_tensor(original.get_input_details()[0]["index"], packed[np.newaxis])
        original.invoke()
        output = np.clip(original.get_tensor(original.get_output_details()[0]["index"])[0], 0.0, 1.0)
        output = output[: item.target.shape[0], : item.target.shape[1]].astype(np.float64)
        expected = peak_signal_noise_ratio(item.target.astype(np.float64), output, data_range=1.0)
        assert per_image[item.name]["vs_ground_truth"]["file"]["psnr"] == pytest.approx(
            expected, abs=PSNR_TOL_DB
        )
        assert per_image[item.name]["vs_float"] is None
        # the classical ISP on the same input, scored alike (its render: evaluate's baseline, at level 0)
        render = item.classical_isp.image.astype(np.float64)
        expected = peak_signal_noise_ratio(item.target.astype(np.float64), render, data_range=1.0)
        classical = per_image[item.name]["vs_ground_truth"]["classical_isp"]["psnr"]
        assert classical == pytest.approx(expected, abs=PSNR_TOL_DB)
    assert side["fidelity"]["classical_isp"]["label"] == "classical ISP (oracle metadata)"


def test_an_input_too_small_for_the_network_is_one_clear_error_and_writes_nothing(tmp_path):
    with pytest.raises(
        third_party.ThirdPartyError,
        match=r"MicroISP.tflite: at 64x64 its output is not finite.*"
        r"larger --input-shape",
    ):
        third_party.import_file(MICROISP, input_shape=(64, 64), out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _same_size_model(path: Path) -> Path:
    """A 4 -> 3 channel network that keeps the packed size (not a full-resolution ISP)."""
    import tensorflow as tf

    conv = keras.layers.Conv2D(3, 3, padding="same")
    conv.build((None, None, None, 4))
    function = tf.function(lambda x: conv(x), input_signature=[tf.TensorSpec([1, 32, 32, 4], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], conv)
    path.write_bytes(converter.convert())
    return path


def test_files_that_are_no_packed_isp_are_refused_with_the_reason(tmp_path):
    same = _same_size_model(tmp_path / "same.tflite")
    with pytest.raises(
        third_party.ThirdPartyError,
        match=r"same.tflite: .* output is \[1, 32, 32, 3\], not "
        r"\[1, 64, 64, 3\]",
    ):
        third_party.import_file(same, out=tmp_path / "out")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer")
    with pytest.raises(third_party.ThirdPartyError, match="junk.tflite: not a TFLite file"):
        third_party.import_file(junk, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--channel-order", "R,G,B"], "--channel-order: channel order 'R,G,B': give canonical or reference"),
        (["--input-shape", "96"], "--input-shape: expected HEIGHTxWIDTH"),
        (["--input-shape", "96x96", "--data", "nowhere"], "--data 'nowhere'"),
    ],
)
def test_cli_bad_flags_are_one_line_errors(flags, expected, tmp_path, capsys):
    assert third_party.main([str(MICROISP), *flags, "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {expected}") and "\n" not in err, err
    assert not (tmp_path / "out").exists()


def test_cli_missing_file(tmp_path, capsys):
    assert third_party.main([str(tmp_path / "absent.tflite")]) == 2
    assert "absent.tflite: no such file" in capsys.readouterr().err


@pytest.fixture(scope="module")
def compared(imported, tmp_path_factory) -> dict:
    """The mobile ISP's float32 and int8 files and the imported MicroISP, benchmarked and reported together."""
    folder = tmp_path_factory.mktemp("compared")
    keras.utils.set_random_seed(0)
    informative(build_mobile(4)).save(folder / "mobile.keras")
    exported = export_model(
        folder / "mobile.keras", ("float32", "int8"), out=folder / "exported", input_shape=SHAPE
    )
    assert [result.status for result in exported] == [STATUS_OK] * 2, [r.message for r in exported]
    flags = ["--delegates", "xnnpack", "--threads", "1", "--warmup", "1", "--runs", "3"]
    results = folder / "results"
    models = [str(folder / "exported"), str(imported["path"])]
    assert run.main(["--host", "--models", *models, *flags, "--out", str(results)]) == 0
    out = folder / "report"
    assert report.main([str(results), "-o", str(out)]) == 0
    return {"json": json.loads((out / "report.json").read_text()), "md": (out / "report.md").read_text()}


def test_the_third_party_file_shares_the_section_and_the_pareto_chart(compared, imported):
    document = compared["json"]
    (section,) = {row["section"] for row in document["rows"]}
    assert section.endswith("96x96->192x192") and len(document["rows"]) == 3
    (micro,) = [row for row in document["rows"] if row["file"] == imported["path"].name]
    truth = imported["sidecar"]["fidelity"]["vs_ground_truth"]["file"]
    assert (micro["psnr_vs_gt"], micro["ssim_vs_gt"]) == (truth["psnr"], truth["ssim"])
    assert micro["psnr_vs_float"] is None and micro["speedup_vs_fp32"] is None
    assert (micro["precision"], micro["precision_from"], micro["precision_note"]) == (
        "float32",
        "tensor types",
        "third-party",
    )
    front = document["pareto"][section]
    assert front["metric"] == "psnr_vs_gt" and set(front["points"]) == {row["id"] for row in document["rows"]}
    # the chart tells the networks apart: MicroISP by its name, our two files as one network (a bare .keras)
    networks = {row["file"]: row["network"] for row in document["rows"]}
    assert networks.pop(micro["file"]) == "MicroISP"
    assert len(set(networks.values())) == 1 and next(iter(networks.values())).startswith("mobile (")
    assert plots._groups(document["rows"]) == [row["network"] for row in document["rows"]]
    assert document["figures"][section][0].startswith("figures/pareto_")
    assert any(
        note.startswith(f"{micro['file']}: a third-party file: scored against the ground truth only")
        for note in document["notes"]
    )
    # it cannot be shipped at a bar versus the float model (it has none); our files can
    (overall,) = [choice for choice in document["ship"] if choice["delegate"] is None]
    assert overall["file"] != micro["file"]
    # MicroISP on a sensor it was not trained for: far below the classical ISP on the same inputs, flagged
    (reference,) = document["classical_isp"][section]
    assert micro["classical_isp_psnr_vs_gt"] == reference["psnr_vs_gt"] > micro["psnr_vs_gt"] + 6.0
    assert micro["not_working_isp"] is True and micro["id"] in reference["rows"]


def test_the_third_party_file_gets_crops_against_the_ground_truth(compared, imported):
    (crop,) = [c for c in compared["json"]["crops"] if c["source"] == str(MICROISP)]
    first = imported["sidecar"]["fidelity"]["per_image"][0]
    assert (
        crop["files"] == [imported["path"].name]
        and crop["reason"] is None
        and crop["example"] == first["name"]
    )
    (score,) = crop["scores"]
    # the same file, inputs and LiteRT kernels as the sidecar's measurement
    assert score["psnr_vs_gt"] == pytest.approx(first["vs_ground_truth"]["file"]["psnr"], abs=1e-9)
    assert score["psnr_vs_float"] is None
    assert len(compared["json"]["figures"]["crops"]) == 2  # the mobile ISP's files, and MicroISP's
    (line,) = [
        line for line in compared["md"].splitlines() if line.startswith(f"- {MICROISP} (96x96), example")
    ]
    assert line.endswith(f"{imported['path'].name} {score['psnr_vs_gt']:.2f} dB vs GT"), line
