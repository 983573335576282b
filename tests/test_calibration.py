"""Calibration sets: k-center selection, building from photos and RAW, the .npz file, its errors, the CLI."""

import itertools
import json
import re
import zipfile

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

from calibration import build as cb
from calibration import crops
from calibration.calibration_set import CalibrationError, CalibrationSet, CropSource
from calibration.selection import FEATURE_NAMES, covering_radius, crop_features, k_center, standardise
from pynet_tf.data.rawio import read_zrr_raw
from pynet_tf.nets.mobile import model as mobile

SHAPE = (64, 64)
NUM = 6


@pytest.fixture(scope="module")
def built() -> CalibrationSet:
    return crops.build_calibration("samples", NUM, SHAPE, seed=0)


@pytest.fixture(scope="module")
def saved(built, tmp_path_factory) -> CalibrationSet:
    return built.save(tmp_path_factory.mktemp("calibration") / "set.npz")


def _clusters(seed: int, sizes=(40, 10, 5, 3), dims: int = 5) -> np.ndarray:
    """Points in clusters of unequal sizes: the first rows all come from the biggest one."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (len(sizes), dims))
    return np.concatenate([rng.normal(centre, 0.5, (size, dims)) for centre, size in zip(centres, sizes)])


# ---- selection ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_k_center_covers_better_than_first_n_and_random_n(seed):
    points = _clusters(seed)
    k = 6
    greedy = covering_radius(points, k_center(points, k))
    assert greedy < covering_radius(points, np.arange(k))
    rng = np.random.default_rng(seed)
    randoms = [covering_radius(points, rng.choice(len(points), k, replace=False)) for _ in range(20)]
    assert greedy <= np.median(randoms)
    assert len(set(k_center(points, k).tolist())) == k


def test_k_center_is_within_twice_the_optimum():
    rng = np.random.default_rng(3)
    for _ in range(5):
        points = rng.normal(size=(11, 3))
        for k in (2, 3, 4):
            subsets = itertools.combinations(range(len(points)), k)
            optimum = min(covering_radius(points, list(subset)) for subset in subsets)
            greedy = covering_radius(points, k_center(points, k))
            assert optimum - 1e-12 <= greedy <= 2 * optimum + 1e-12


def test_k_center_starts_near_the_mean_is_deterministic_and_takes_duplicates_last():
    points = _clusters(0)
    first = k_center(points, 8)
    assert first[0] == np.argmin(np.linalg.norm(points - points.mean(axis=0), axis=1))
    np.testing.assert_array_equal(first, k_center(points.copy(), 8))
    assert not np.array_equal(first, k_center(_clusters(1), 8))
    # prefixes are the greedy choice for smaller k
    np.testing.assert_array_equal(k_center(points, 4), first[:4])
    duplicates = np.array([[0.0], [0.0], [1.0], [5.0], [5.0]])
    assert sorted(k_center(duplicates, 3).tolist()) in ([0, 2, 3], [1, 2, 3], [0, 2, 4], [1, 2, 4])
    assert sorted(k_center(duplicates, 5).tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="between 1 and"):
        k_center(duplicates, 6)


def test_features_of_known_crops():
    flat = np.full((16, 16, 4), 0.25, np.float32)
    values = dict(zip(FEATURE_NAMES, crop_features(flat)))
    assert values["mean_r"] == pytest.approx(0.25) and values["luma_p99"] == pytest.approx(0.25)
    assert values["log_r_over_g"] == pytest.approx(0.0) and values["gradient"] == 0.0
    assert values["clipped_high"] == 0.0 and values["clipped_low"] == 0.0
    half = np.zeros((16, 16, 4), np.float32)
    half[:, 8:] = 1.0
    values = dict(zip(FEATURE_NAMES, crop_features(half)))
    assert values["clipped_high"] == 0.5 and values["clipped_low"] == 0.5
    assert values["gradient"] > 0 and values["luma_std"] == pytest.approx(0.5)
    z, _, _ = standardise(np.stack([crop_features(flat), crop_features(half)]))
    assert np.all(np.isfinite(z))  # constant features (the colour ratios here) do not divide by zero


# ---- building -----------------------------------------------------------------------------------------


def test_build_from_samples(built):
    assert built.inputs.shape == (NUM, *SHAPE, 4) and built.inputs.dtype == np.float32
    assert 0.0 <= built.inputs.min() and built.inputs.max() <= 1.0 and built.inputs.std() > 0
    assert built.features.shape == (NUM, len(FEATURE_NAMES))
    np.testing.assert_allclose(built.features, np.stack([crop_features(c) for c in built.inputs]), atol=1e-6)
    meta = built.metadata
    assert meta["data"] == "samples" and meta["shape"] == list(SHAPE) and meta["seed"] == 0
    assert meta["candidates"] == crops.MIN_CANDIDATES and meta["images"] == 6 and meta["enlarged_images"] == 0
    for source in built.sources:
        assert source.made == "unprocess" and source.cfa == "RGGB" and source.seed[0] == 0
        assert source.box[2:] == SHAPE and source.scale == 1.0
        top, left = source.box[:2]
        assert 0 <= top <= source.frame[0] - SHAPE[0] and 0 <= left <= source.frame[1] - SHAPE[1]
    assert len({source.example for source in built.sources}) >= 3


def test_chosen_crops_spread_over_the_pool(built):
    coverage = built.metadata["coverage"]
    radius = coverage["radius"]
    assert radius["k_center"] < radius["first_n"] and radius["k_center"] <= radius["random_n_mean"]
    for name in ("luma_p50", "mean_r", "mean_b", "gradient"):
        assert coverage["feature_ranges"][name]["covered"] >= 0.8, name


def test_build_is_deterministic_and_seeded(built):
    again = crops.build_calibration("samples", NUM, SHAPE, seed=0)
    assert again.sha256 == built.sha256 and again.sources == built.sources
    other = crops.build_calibration("samples", NUM, SHAPE, seed=1, candidates=NUM * 2)
    assert other.sha256 != built.sha256
    assert {s.box for s in other.sources}.isdisjoint({s.box for s in built.sources})


def test_sources_make_the_crops_again(built):
    """A crop's recorded source is a full recipe: photo crop at the box, unprocess with the seed."""
    from pynet_tf.data.photoio import read_photo
    from pynet_tf.data.unprocess import unprocess

    source = built.sources[-1]
    top, left, height, width = source.box
    photo = read_photo(source.file)[2 * top : 2 * (top + height), 2 * left : 2 * (left + width)]
    packed = unprocess(photo, np.array(source.seed, np.int64), pattern=source.cfa)[0].numpy()
    np.testing.assert_allclose(packed, built.inputs[-1], atol=1e-6)


def test_shape_larger_than_every_sample_resizes_the_photos():
    big = crops.build_calibration("samples", 2, (512, 512), candidates=6)
    assert big.inputs.shape == (2, 512, 512, 4) and 0 <= big.inputs.min() and big.inputs.max() <= 1
    assert all(source.scale > 1 for source in big.sources)
    assert big.metadata["enlarged_images"] == 6 and "resized" in big.metadata["enlarged_how"]
    assert "resized (photos)" in big.summary()


def test_raw_source_is_cropped_and_padded_when_small(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (tmp_path / split / "huawei_raw").mkdir(parents=True)
        (tmp_path / split / "canon").mkdir(parents=True)
        for n in range(3):
            mosaic = rng.integers(0, 1024, size=(64, 96), dtype=np.uint16)  # packs to 32x48
            Image.fromarray(mosaic).save(tmp_path / split / "huawei_raw" / f"{n}.png")
            Image.new("RGB", (96, 64)).save(tmp_path / split / "canon" / f"{n}.jpg")
    cropped = crops.build_calibration(f"zrr:{tmp_path}", 2, (32, 32), candidates=6)
    for source, crop in zip(cropped.sources, cropped.inputs):
        assert source.made == "raw" and source.seed is None and source.padding == (0, 0, 0, 0)
        top, left, height, width = source.box
        packed = np.clip(read_zrr_raw(source.file), 0, 1)
        np.testing.assert_array_equal(crop, packed[top : top + height, left : left + width])
    padded = crops.build_calibration(f"zrr:{tmp_path}", 2, (48, 64), candidates=3)
    assert padded.metadata["enlarged_images"] == 3 and "reflect" in padded.metadata["enlarged_how"]
    for source, crop in zip(padded.sources, padded.inputs):
        assert source.padding == (8, 8, 8, 8) and source.box == (0, 0, 48, 64) and source.frame == (32, 48)
        np.testing.assert_array_equal(crop[8:40, 8:56], np.clip(read_zrr_raw(source.file), 0, 1))


def test_bad_settings_are_one_line_errors():
    with pytest.raises(CalibrationError, match=r"--shape 100x100: .*nearest valid size is 96x96"):
        crops.build_calibration("samples", 4, (100, 100))
    with pytest.raises(CalibrationError, match="--candidates 3 is fewer than --num 4"):
        crops.build_calibration("samples", 4, SHAPE, candidates=3)
    with pytest.raises(CalibrationError, match="--num must be at least 1"):
        crops.build_calibration("samples", 0, SHAPE)


def test_the_networks_own_size_rule_checks_the_shape(tmp_path):
    """--arch mobile: 36x52 (multiples of its 4, not of PyNET's 16) is built, saved and loaded with the mobile
    ISP's rule; PyNET's (the default) refuses it, and a size mismatch's fix names the network."""
    with pytest.raises(CalibrationError, match=r"--shape 36x52: .*not a multiple of 16"):
        crops.build_calibration("samples", 2, (36, 52), candidates=4)
    with pytest.raises(CalibrationError, match="--arch 'mobil': did you mean 'mobile'"):
        crops.build_calibration("samples", 2, (36, 52), candidates=4, arch="mobil")
    built = crops.build_calibration("samples", 2, (36, 52), candidates=4, arch="mobile")
    assert built.shape == (36, 52) and built.metadata["arch"] == "mobile"
    saved = built.save(tmp_path / "mobile.npz")
    assert CalibrationSet.load(saved.path, mobile.validate_input_shape).sha256 == built.sha256
    _check_error(saved.path, "not a multiple of 16.*nearest valid size is 32x48")
    with pytest.raises(CalibrationError, match=r"--shape 32x32 --arch mobile --out"):
        saved.check_shape(32, 32, "mobile")
    assert crops.default_calibration((36, 52), num=2, arch="mobile").shape == (36, 52)


def test_unreadable_images_are_skipped_and_none_is_an_error(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(CalibrationError, match="none of its 1 train examples could be read .broken."):
        crops.build_calibration(f"photos:{tmp_path}", 1, (16, 16), candidates=1)
    photo = np.random.default_rng(0).integers(0, 256, (40, 40, 3), np.uint8)
    Image.fromarray(photo).save(tmp_path / "train" / "ok.png")
    built = crops.build_calibration(f"photos:{tmp_path}", 1, (16, 16), candidates=2)
    assert built.metadata["skipped_images"] == ["broken"] and built.sources[0].example == "ok"


def test_default_calibration_uses_the_samples():
    default = crops.default_calibration((32, 32), num=4)
    assert default.shape == (32, 32) and len(default) == 4 and default.metadata["data"] == "samples"


# ---- the file -----------------------------------------------------------------------------------------


def test_save_load_round_trip_is_exact(built, saved):
    assert saved.path.is_file() and saved.metadata["sha256"] == built.sha256
    loaded = CalibrationSet.load(saved.path)
    assert loaded.inputs.dtype == np.float32
    assert loaded.inputs.tobytes() == built.inputs.tobytes() and loaded.sha256 == built.sha256
    np.testing.assert_array_equal(loaded.features, built.features)
    assert loaded.sources == built.sources and loaded.metadata == saved.metadata
    with np.load(saved.path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["features", "inputs", "metadata", "sources"]
        assert json.loads(str(archive["metadata"]))["feature_names"] == list(FEATURE_NAMES)
    assert not list(saved.path.parent.glob(".*tmp"))  # nothing left beside it


def test_representative_dataset_and_shape_check(saved):
    batches = list(saved.representative_dataset())
    assert len(batches) == NUM
    assert all(len(b) == 1 and b[0].shape == (1, *SHAPE, 4) and b[0].dtype == np.float32 for b in batches)
    saved.check_shape(*SHAPE)
    expected = rf"{saved.path}: holds 64x64 .* input is 224x224; .*--shape 224x224"
    with pytest.raises(CalibrationError, match=expected):
        saved.check_shape(224, 224)


def test_representative_dataset_quantizes_a_model_to_int8(saved):
    import tensorflow as tf

    from pynet_tf.nets.pynet.model import build_pynet

    model = build_pynet(5, base_filters=2)
    function = tf.function(lambda raw: model(raw, training=False))
    concrete = function.get_concrete_function(tf.TensorSpec([1, *SHAPE, 4], tf.float32))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = saved.representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    interpreter = Interpreter(model_content=converter.convert())
    scale, zero_point = interpreter.get_input_details()[0]["quantization"]
    # the input's int8 range is the calibration inputs' range, [0, max]
    assert zero_point == -128 and scale == pytest.approx(saved.inputs.max() / 255, rel=1e-3)


def _write_npz(path, **arrays):
    with open(path, "wb") as file:
        np.savez(file, **arrays)
    return path


def _check_error(path, pattern):
    with pytest.raises(CalibrationError) as caught:
        CalibrationSet.load(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message and "calibration/build.py" in message
    assert re.search(pattern, message), message


def test_load_errors_name_the_file_and_the_fix(saved, tmp_path):
    _check_error(tmp_path / "missing.npz", "no such calibration set")
    (tmp_path / "garbage.npz").write_bytes(b"\x00not an archive")
    _check_error(tmp_path / "garbage.npz", "not an .npz archive")
    np.save(tmp_path / "array.npy", np.zeros(3))
    _check_error(tmp_path / "array.npy", "not an .npz archive")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(saved.path.read_bytes()[: saved.path.stat().st_size // 2])
    _check_error(truncated, "not an .npz archive|cannot read it")
    with np.load(saved.path) as archive:
        good = {key: archive[key] for key in archive.files}
    only_inputs = _write_npz(tmp_path / "keys.npz", inputs=good["inputs"])
    _check_error(only_inputs, "missing features, sources, metadata")
    wrong = {**good, "inputs": np.zeros((NUM, *SHAPE, 3), np.float32)}
    _check_error(_write_npz(tmp_path / "shape.npz", **wrong), r"\(N, H, W, 4\).*got \(6, 64, 64, 3\)")
    _check_error(
        _write_npz(tmp_path / "dtype.npz", **{**good, "inputs": good["inputs"].astype(np.float64)}),
        "must be float32, got float64",
    )
    doubled = {**good, "inputs": good["inputs"] * 2}
    _check_error(_write_npz(tmp_path / "range.npz", **doubled), r"lie in \[0, 1\]")
    odd = {**good, "inputs": good["inputs"][:, :60]}
    _check_error(_write_npz(tmp_path / "odd.npz", **odd), "nearest valid size is 64x64")
    pickled = {**good, "sources": np.array([{"a": 1}], dtype=object)}
    with open(tmp_path / "pickled.npz", "wb") as file:
        np.savez(file, **pickled)
    _check_error(tmp_path / "pickled.npz", "allow_pickle")
    tampered = {**good, "inputs": good["inputs"].copy()}
    tampered["inputs"][0, 0, 0, 0] = 0.5 if tampered["inputs"][0, 0, 0, 0] != 0.5 else 0.25
    _check_error(_write_npz(tmp_path / "tampered.npz", **tampered), "do not match the SHA-256")
    assert zipfile.is_zipfile(saved.path)


# ---- the CLI ------------------------------------------------------------------------------------------


def test_cli_arch_names_the_network_whose_sizes_shape_takes(tmp_path, capsys):
    flags = ["--num", "2", "--candidates", "4", "--shape", "20x36", "--out"]
    assert cb.main(["--arch", "mobile", *flags, str(tmp_path / "mobile.npz")]) == 0
    loaded = CalibrationSet.load(tmp_path / "mobile.npz", mobile.validate_input_shape)
    assert loaded.shape == (20, 36) and loaded.metadata["arch"] == "mobile"
    assert cb.main([*flags, str(tmp_path / "x.npz")]) == 2
    assert "not a multiple of 16" in capsys.readouterr().err and not (tmp_path / "x.npz").exists()


def test_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "cli.npz"
    flags = ["--data", "samples", "--num", "3", "--shape", "32x48", "--seed", "2", "--out", str(out)]
    assert cb.main(flags) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("calibration: ") and " · shape 32x48 · " in printed
    assert f" · candidates {crops.MIN_CANDIDATES}" in printed
    assert "k-center" in printed and "first 3" in printed and f"written: {out}" in printed
    loaded = CalibrationSet.load(out)
    assert loaded.shape == (32, 48) and len(loaded) == 3 and loaded.metadata["seed"] == 2
    assert loaded.sha256 in printed


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--shape", "100x100"], "error: --shape 100x100: .*nearest valid size is 96x96"),
        (["--shape", "32x32", "--data", "photos:/none"], "error: --data 'photos:/none': .* not a folder"),
        (["--shape", "32x32", "--num", "8", "--candidates", "4"], "error: --candidates 4 is fewer"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, flags, message):
    assert cb.main([*flags, "--out", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert re.match(message, err) and "\n" not in err, err
    assert not (tmp_path / "x.npz").exists()


def test_crop_source_round_trips_through_json():
    source = CropSource("a", "/a.png", (10, 20), (1, 2, 16, 16), "unprocess", 1.5, seed=(0, 3), cfa="GRBG")
    assert CropSource.from_dict(json.loads(json.dumps(source.to_dict()))) == source
