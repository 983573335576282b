"""The tf.data pipeline on a miniature ZRR tree (real 16-bit PNG / JPEG files) and on the embedded samples."""

import logging
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pynet_tf.data.photoio import read_photo
from pynet_tf.data.pipeline import PipelineOptions, make_dataset
from pynet_tf.data.rawio import read_raw, read_zrr_raw
from pynet_tf.data.sources import parse_source
from pynet_tf.nets.pynet.levels import output_size


@pytest.fixture(scope="module")
def zrr_root(tmp_path_factory):
    """Four 64x64 ZRR-style pairs per split: 10-bit mosaics in 16-bit PNGs and 8-bit JPEG targets."""
    root = tmp_path_factory.mktemp("zrr")
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / split / "huawei_raw").mkdir(parents=True)
        (root / split / "canon").mkdir(parents=True)
        for n in range(4):
            mosaic = rng.integers(0, 1024, size=(64, 64), dtype=np.uint16)
            Image.fromarray(mosaic).save(root / split / "huawei_raw" / f"{n}.png")
            photo = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
            Image.fromarray(photo).save(root / split / "canon" / f"{n}.jpg", quality=95)
    return root


def _first(dataset):
    return [t.numpy() for t in next(iter(dataset))]


@pytest.mark.parametrize("level", [0, 2, 5])
def test_zrr_batches_have_level_shapes(zrr_root, level):
    options = PipelineOptions(level=level, patch=16, batch_size=3, seed=1)
    packed, target = _first(make_dataset(parse_source(f"zrr:{zrr_root}"), "train", options))
    assert packed.shape == (3, 16, 16, 4) and packed.dtype == np.float32
    assert target.shape == (3, *output_size(level, 16, 16), 3)
    assert 0.0 <= target.min() and target.max() <= 1.0


def test_zrr_without_crop_or_augmentation_is_the_reference_loader(zrr_root):
    options = PipelineOptions(level=0, patch=32, batch_size=4, augment=False, training=False)
    packed, target = _first(make_dataset(parse_source(f"zrr:{zrr_root}"), "test", options))
    for n in range(4):  # evaluation order is the source's order
        np.testing.assert_array_equal(packed[n], read_zrr_raw(zrr_root / "test" / "huawei_raw" / f"{n}.png"))
        np.testing.assert_array_equal(target[n], read_photo(zrr_root / "test" / "canon" / f"{n}.jpg"))


def test_same_seed_same_batches_other_seed_other_batches(zrr_root):
    source = parse_source(f"zrr:{zrr_root}")
    first, again, other = (
        _first(make_dataset(source, "train", PipelineOptions(level=1, patch=16, batch_size=2, seed=seed)))
        for seed in (5, 5, 6)
    )
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_bad_pair_stops_with_its_name_or_is_skipped(zrr_root, tmp_path, caplog):
    bad = tmp_path / "zrr"
    for split in ("train", "test"):
        for sub in ("huawei_raw", "canon"):
            (bad / split / sub).mkdir(parents=True)
            for path in (zrr_root / split / sub).iterdir():
                (bad / split / sub / path.name).write_bytes(path.read_bytes())
    (bad / "train" / "huawei_raw" / "2.png").write_bytes(b"\x89PNG truncated")
    source = parse_source(f"zrr:{bad}")
    options = PipelineOptions(level=0, patch=32, batch_size=4, augment=False, training=False)

    with pytest.raises(tf.errors.OpError, match="cannot load example '2'"):
        _first(make_dataset(source, "train", options))

    skipping = PipelineOptions(level=0, patch=32, batch_size=4, augment=False, training=False, skip_bad=True)
    with caplog.at_level(logging.WARNING, logger="pynet_tf.data.pipeline"):
        packed, _ = _first(make_dataset(source, "train", skipping))
    assert packed.shape[0] == 3
    assert "skipping (1 so far): cannot load example '2'" in caplog.text


def test_patch_larger_than_the_photos_is_named(zrr_root):
    options = PipelineOptions(level=0, patch=32, batch_size=1, seed=0)  # augmenting needs 33 packed pixels
    with pytest.raises(
        tf.errors.OpError,
        match=r"/0\.\w+: packs to \d+x\d+, smaller than --patch 32 needs \(66x66 photo pixels, 33 packed\)",
    ):
        _first(make_dataset(parse_source(f"zrr:{zrr_root}"), "train", options))


def test_a_photo_too_small_for_any_crop_is_named_with_its_real_size(tmp_path):
    """A 1x1 photo: the message names the file and its size as stored (not the 0x0 left after pairing), and
    offers removing it, as no --patch makes a 1-pixel photo trainable."""
    (tmp_path / "train").mkdir()
    Image.new("RGB", (1, 1), (90, 120, 200)).save(tmp_path / "train" / "dot.png")
    options = PipelineOptions(level=0, patch=16, batch_size=1, augment=False)
    with pytest.raises(tf.errors.OpError) as raised:
        _first(make_dataset(parse_source(f"photos:{tmp_path}"), "train", options))
    message = raised.value.message
    assert f"{tmp_path / 'train' / 'dot.png'}: a 1x1 photo, smaller than --patch 16 needs" in message
    assert "remove it from --data" in message


def test_samples_unprocess_into_synthetic_raw():
    options = PipelineOptions(level=0, patch=32, batch_size=2, seed=3)
    dataset = make_dataset(parse_source("samples"), "train", options)
    packed, target = _first(dataset)
    assert packed.shape == (2, 32, 32, 4) and target.shape == (2, 64, 64, 3)
    assert 0.0 <= packed.min() and packed.max() <= 1.0
    # the synthetic RAW is darker than the photo: linear light under inverse gains and gamma
    assert packed.mean() < target.mean()
    again = _first(make_dataset(parse_source("samples"), "train", options))
    np.testing.assert_array_equal(packed, again[0])


KDC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "third_party" / "RAW_KODAK_DC50.KDC"


def test_camera_raw_pairs_crop_input_and_target_at_the_same_place(tmp_path):
    """A real camera RAW with a photo that encodes each pixel's position, so a crop's first target pixel
    says where the crop was taken: the RAW crop must be the packed frame at half that position."""
    raw = read_raw(KDC)
    (tmp_path / "train" / "raw").mkdir(parents=True)
    (tmp_path / "train" / "rgb").mkdir(parents=True)
    (tmp_path / "train" / "raw" / "frame.kdc").write_bytes(KDC.read_bytes())
    rows, cols = np.mgrid[: raw.size[0], : raw.size[1]]
    position = np.stack([rows, cols, np.zeros_like(rows)], axis=-1).astype(np.uint16)
    (tmp_path / "train" / "rgb" / "frame.png").write_bytes(tf.io.encode_png(position).numpy())  # 16-bit

    options = PipelineOptions(level=0, patch=48, batch_size=3, seed=2, augment=False)
    packed, target = _first(make_dataset(parse_source(f"pairs:{tmp_path}"), "train", options))
    full = raw.packed()
    for crop, photo in zip(packed, target):
        row, col = np.rint(photo[0, 0, :2] * 65535).astype(int)
        assert row % 2 == 0 and col % 2 == 0  # crops never split a 2x2 tile
        np.testing.assert_array_equal(crop, full[row // 2 : row // 2 + 48, col // 2 : col // 2 + 48])
