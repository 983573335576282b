"""Evaluation end to end at a tiny width: numbers recomputed independently, baselines per source, the CLI."""

import json
import math
import re
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import skimage.io
import skimage.metrics
import tensorflow as tf
import tf_keras as keras
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab

from pynet_tf import evaluate as evaluate_cli
from pynet_tf import evaluation as ev
from pynet_tf.data import isp
from pynet_tf.data.rawio import read_raw, read_zrr_raw
from pynet_tf.data.unprocess import unprocess
from pynet_tf.nets.pynet.model import build_pynet

KDC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "third_party" / "RAW_KODAK_DC50.KDC"
GREY = 128  # the 8-bit value of the flat test photos
# Float32 rounding between our metrics and scikit-image's float64 ones (see tests/test_metrics.py).
PSNR_TOLERANCE = 1e-4  # dB
SSIM_TOLERANCE = 1e-4
DELTA_E_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def tiny_net() -> keras.Model:
    return build_pynet(0, base_filters=2)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_net) -> Path:
    """The tiny level-0 PyNET saved in a run-style level folder, with its level.json."""
    level_dir = tmp_path_factory.mktemp("run") / "level_0"
    level_dir.mkdir()
    tiny_net.save(level_dir / "model.keras")
    (level_dir / "level.json").write_text(json.dumps({"level": 0, "base_filters": 2}))
    return level_dir


@pytest.fixture(scope="module")
def samples_result(tiny_run) -> ev.EvaluationResult:
    return ev.evaluate(tiny_run, "samples", max_size=(64, 64))


def constant_model(path: Path, value: float, level: int = 0) -> Path:
    """A "model" whatever its input: ``value`` everywhere, at level 0's size (2x) or level 5's (1/16)."""
    raw = keras.Input((None, None, 4))
    if level == 0:
        head = keras.layers.Conv2DTranspose(3, 2, strides=2, kernel_initializer="zeros")
        output = head(raw)
    else:
        head = keras.layers.Conv2D(3, 1, kernel_initializer="zeros")
        output = head(keras.layers.AveragePooling2D(16)(raw))
    head.bias.assign(np.full(3, value, np.float32))
    path.parent.mkdir(parents=True, exist_ok=True)
    keras.Model(raw, output).save(path)
    return path


def flat_photos(root: Path, *sizes: int) -> str:
    """``photos:DIR`` with flat grey PNGs of the given sides in its test/ folder."""
    for side in sizes:
        (root / "test").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((side, side, 3), GREY, np.uint8)).save(root / "test" / f"grey{side}.png")
    return f"photos:{root}"


def test_samples_numbers_match_an_independent_recomputation(samples_result, tiny_run, tiny_net):
    result = samples_result
    assert result.out_dir == tiny_run.parent / "eval_samples"
    assert [image.name for image in result.images] == ["chelsea", "ihc"]
    assert result.level == 0 and result.base_filters == 2 and result.baseline == "oracle_metadata"

    # ihc is 512x512: packed 256x256, capped at 64x64 and centred at packed (96, 96)
    ihc = result.images[1]
    assert (ihc.source_size, ihc.crop_offset, ihc.input_size, ihc.output_size) == (
        (256, 256),
        (96, 96),
        (64, 64),
        (128, 128),
    )
    photo = skimage.io.imread(Path(skimage.data.__file__).parent / "ihc.png")
    target = (photo[192:320, 192:320] / 255.0).astype(np.float32)
    packed, _, params = unprocess(target, tf.constant([0, zlib.crc32(b"ihc")], tf.int64))
    prediction = np.clip(tiny_net(packed[tf.newaxis])[0].numpy(), 0.0, 1.0)  # the network before saving
    baseline = isp.process(packed, params.white_balance, params.camera_to_srgb).numpy()
    for scores, image in ((ihc.model, prediction), (ihc.baseline, baseline)):
        image = image.astype(np.float64)
        expected_psnr = skimage.metrics.peak_signal_noise_ratio(target, image, data_range=1)
        assert scores["psnr"] == pytest.approx(expected_psnr, abs=PSNR_TOLERANCE)
        expected_ssim = skimage.metrics.structural_similarity(
            target.astype(np.float64),
            image,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=-1,
        )
        assert scores["ssim"] == pytest.approx(expected_ssim, abs=SSIM_TOLERANCE)
        expected_delta_e = deltaE_ciede2000(rgb2lab(target), rgb2lab(image)).mean()
        assert scores["delta_e2000"] == pytest.approx(expected_delta_e, abs=DELTA_E_TOLERANCE)
        assert 0 < scores["ms_ssim"] <= 1
    assert ihc.ms_ssim_scales == 4  # 128 pixels: room for 4 of the 5 scales
    np.testing.assert_allclose(ihc.camera["red_gain"], params.red_gain.numpy())
    # the oracle baseline is far better than an untrained network
    assert ihc.baseline["psnr"] > ihc.model["psnr"] + 5

    chelsea = result.images[0]  # 300x451: packed 150x225, the crop 64x64 at (43, 80)
    assert (chelsea.source_size, chelsea.crop_offset, chelsea.input_size) == ((150, 225), (43, 80), (64, 64))


def test_json_and_markdown_hold_the_per_image_numbers_and_their_means(samples_result):
    result = samples_result
    written = json.loads(result.json_path.read_text())
    assert written["model"] == str(result.model_path) and written["data"] == "samples"
    assert written["level"] == 0 and written["base_filters"] == 2
    assert written["inputs"]["max_size"] == [64, 64]
    assert written["baseline"]["name"] == "oracle_metadata" and "oracle" in written["baseline"]["description"]
    assert written["metrics"]["psnr"]["peak"] == 1.0
    for who in ("model", "baseline"):
        for name in ev.METRICS:
            values = [image[who][name] for image in written["images"]]
            assert written["mean"][who][name] == pytest.approx(np.mean(values), rel=1e-12)
            assert written["mean"][who][name] == result.mean[who][name]
    assert [image["model"] for image in written["images"]] == [image.model for image in result.images]

    markdown = result.markdown_path.read_text()
    assert markdown == result.to_markdown()
    assert "oracle metadata" in markdown and "capped at 64x64" in markdown
    rows = {line.split("|")[1].strip(): line for line in markdown.splitlines() if line.startswith("| ")}
    cells = [cell.strip() for cell in rows["**mean**"].split("|")[3:-1]]
    mean = result.mean
    places = {"psnr": 2, "ssim": 4, "ms_ssim": 4, "delta_e2000": 2}
    expected = [f"{mean[who][name]:.{places[name]}f}" for who in ("model", "baseline") for name in places]
    assert cells == expected
    assert rows["ihc"].split("|")[2].strip() == "64x64"
    assert not list(result.out_dir.glob("*.tmp")) and not list(result.out_dir.glob(".*"))


def test_cli_run_reproduces_the_inputs_and_the_baseline_exactly(samples_result, tmp_path, capsys):
    """A second run, through the CLI and with another model: the same synthetic RAW (camera draws) and the
    same baseline numbers, bit for bit; the table and the paths are printed."""
    model = constant_model(tmp_path / "other" / "model.keras", 0.5)
    out = tmp_path / "again"
    assert (
        evaluate_cli.main(["--model", str(model), "--data", "samples", "--max-size", "64x64", "-o", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    again = json.loads((out / "evaluation.json").read_text())
    assert [image["name"] for image in again["images"]] == ["chelsea", "ihc"]
    for before, after in zip(samples_result.images, again["images"]):
        assert after["camera"] == before.camera
        assert after["baseline"] == before.baseline
    assert "| **mean** |" in printed and "oracle metadata" in printed
    assert str(out / "evaluation.json") in printed and str(out / "evaluation.md") in printed


def test_a_perfect_model_scores_inf_psnr_and_zero_delta_e(tmp_path):
    """Flat grey photos and a "model" that outputs exactly that grey: the check fails if predictions and
    targets are misaligned, resized or rescaled anywhere on the way."""
    model = constant_model(tmp_path / "perfect" / "model.keras", np.float32(GREY) / 255.0)
    result = ev.evaluate(model, flat_photos(tmp_path / "photos", 64, 70))
    assert result.level == 0 and result.base_filters is None  # no level.json: read from the output size
    assert result.out_dir == tmp_path / "perfect" / "eval_photos_photos"
    for image in result.images:
        assert image.model["psnr"] == math.inf and image.model["delta_e2000"] == 0.0
        assert image.model["ssim"] == pytest.approx(1.0, abs=1e-6)
        assert image.model["ms_ssim"] == pytest.approx(1.0, abs=1e-6)
        assert math.isfinite(image.baseline["psnr"])  # the noisy synthetic RAW, demosaicked
    assert [image.input_size for image in result.images] == [(32, 32), (32, 32)]  # 70 -> 35 packed -> 32
    assert result.mean["model"]["psnr"] == math.inf
    assert json.loads(result.json_path.read_text())["mean"]["model"]["psnr"] == math.inf  # JSON's Infinity
    assert "| inf |" in result.markdown_path.read_text()


def test_coarse_levels_score_against_resized_targets_and_skip_ssim_below_11_pixels(tmp_path):
    model = constant_model(tmp_path / "level5" / "model.keras", np.float32(GREY) / 255.0, level=5)
    result = ev.evaluate(model, flat_photos(tmp_path / "photos", 64))
    image = result.images[0]
    assert result.level == 5 and image.output_size == (2, 2)  # 32 packed / 16
    assert image.model["ssim"] is None and image.model["ms_ssim"] is None and image.ms_ssim_scales is None
    assert image.model["psnr"] > 60 and image.model["delta_e2000"] < 0.01  # the resized flat target is flat
    assert result.mean["model"]["ssim"] is None
    assert "| – |" in result.to_markdown()


@pytest.fixture(scope="module")
def zrr_root(tmp_path_factory) -> Path:
    """Two ZRR test patches as the dataset ships them: 448x448 10-bit mosaics in 16-bit PNGs, JPEG photos."""
    root = tmp_path_factory.mktemp("zrr")
    rng = np.random.default_rng(0)
    (root / "test" / "huawei_raw").mkdir(parents=True)
    (root / "test" / "canon").mkdir(parents=True)
    for n in range(2):
        mosaic = rng.integers(0, 1024, (448, 448), dtype=np.uint16)
        Image.fromarray(mosaic).save(root / "test" / "huawei_raw" / f"{n}.png")
        photo = rng.integers(0, 256, (448, 448, 3), dtype=np.uint8)
        Image.fromarray(photo).save(root / "test" / "canon" / f"{n}.jpg", quality=95)
    return root


def test_zrr_whole_patches_like_the_paper_with_a_grey_world_baseline(tiny_run, zrr_root, tmp_path):
    result = ev.evaluate(tiny_run, f"zrr:{zrr_root}", out=tmp_path / "eval")
    assert result.baseline == "gray_world" and result.max_size is None
    assert [image.name for image in result.images] == ["0", "1"]
    for image in result.images:
        assert (image.input_size, image.crop_offset, image.output_size) == ((224, 224), (0, 0), (448, 448))
        assert image.ms_ssim_scales == 5
    packed = read_zrr_raw(zrr_root / "test" / "huawei_raw" / "1.png")
    rendered = isp.process(packed, isp.gray_world(packed), np.eye(3)).numpy()
    target = np.asarray(Image.open(zrr_root / "test" / "canon" / "1.jpg"), np.float64) / 255
    expected = skimage.metrics.peak_signal_noise_ratio(target, rendered.astype(np.float64), data_range=1)
    assert result.images[1].baseline["psnr"] == pytest.approx(expected, abs=PSNR_TOLERANCE)
    markdown = (tmp_path / "eval" / "evaluation.md").read_text()
    assert "grey-world white balance and an identity colour matrix" in markdown


def test_camera_raw_pairs_use_the_files_as_shot_metadata(tmp_path):
    """The KDC frame, paired with its own classical rendering: the baseline on the centred crop is that
    rendering up to the crop's border (demosaicking sees no neighbours there), so it must be aligned."""
    assert KDC.is_file(), f"the shared test data is missing: {KDC}"
    (tmp_path / "data" / "test").mkdir(parents=True)
    shutil.copy(KDC, tmp_path / "data" / "test" / "frame.kdc")
    rendered = isp.process_raw(read_raw(KDC)).numpy()
    png = tf.io.encode_png(tf.constant(np.round(rendered * 65535).astype(np.uint16))).numpy()
    (tmp_path / "data" / "test" / "frame.png").write_bytes(png)
    model = constant_model(tmp_path / "model" / "model.keras", 0.5)
    result = ev.evaluate(model, f"pairs:{tmp_path / 'data'}", max_size=(64, 64))
    image = result.images[0]
    assert result.baseline == "as_shot_metadata"
    assert image.source_size == (256, 384) and image.crop_offset == (96, 160) and image.input_size == (64, 64)
    assert image.baseline["psnr"] > 40 > image.model["psnr"]  # 45 dB; one packed pixel off: 23-25 dB


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing model", r"error: .*/nope: no trained model there"),
        ("bad data", r"error: --data 'zrr:/nope': /nope is not a folder"),
        ("level mismatch", r"error: .*level\.json says level 2, but the model outputs 32x32 .*as level 0"),
        ("max size", r"error: --max-size 40x40: .*nearest valid size is 32x32"),
        ("small image", r"error: example 'grey20' packs to 10x10, smaller than the 16x16 packed pixels"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, case, message):
    model = constant_model(tmp_path / "run" / "level_0" / "model.keras", 0.5)
    args = {"--model": str(model.parent), "--data": flat_photos(tmp_path / "photos", 32)}
    if case == "missing model":
        args["--model"] = str(tmp_path / "nope")
    elif case == "bad data":
        args["--data"] = "zrr:/nope"
    elif case == "level mismatch":
        (model.parent / "level.json").write_text(json.dumps({"level": 2}))
    elif case == "max size":
        args["--max-size"] = "40x40"
    else:
        args["--data"] = flat_photos(tmp_path / "photos", 20)
    assert evaluate_cli.main([part for pair in args.items() for part in pair]) == 2
    stderr = capsys.readouterr().err
    assert len(stderr.splitlines()) == 1 and re.fullmatch(message + ".*\n", stderr), stderr
    assert not (tmp_path / "run" / "eval_photos_photos").exists()
