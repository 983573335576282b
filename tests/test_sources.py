"""``--data`` sources: what they list, in which split, and their errors."""

import numpy as np
import pytest
from PIL import Image

from pynet_tf.data.sources import SAMPLE_PHOTOS, DataSourceError, parse_source


def _touch(path, content=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_samples_are_real_photos_split_by_name():
    source = parse_source("samples")
    assert source.synthetic
    for split, names in SAMPLE_PHOTOS.items():
        examples = source.examples(split)
        assert [ex.name for ex in examples] == list(names)
        for ex in examples:
            with Image.open(ex.target) as image:
                assert image.mode in ("RGB", "RGBA") and min(image.size) >= 256
    assert not set(SAMPLE_PHOTOS["train"]) & set(SAMPLE_PHOTOS["test"])


def test_zrr_tree_pairs_by_number_in_numeric_order(tmp_path):
    for split, numbers in (("train", (0, 2, 10, 1)), ("test", (5,))):
        for n in numbers:
            _touch(tmp_path / split / "huawei_raw" / f"{n}.png")
            _touch(tmp_path / split / "canon" / f"{n}.jpg")
    for n in (11, 3):
        _touch(tmp_path / "test" / "huawei_full_resolution" / f"{n}.png")
    source = parse_source(f"zrr:{tmp_path}")
    assert source.kind == "zrr" and not source.synthetic
    assert [path.name for path in source.full_resolution] == ["3.png", "11.png"]
    assert [ex.name for ex in source.examples("train")] == ["0", "1", "2", "10"]
    ex = source.examples("test")[0]
    assert ex.raw == tmp_path / "test" / "huawei_raw" / "5.png" and ex.target.name == "5.jpg"


def test_zrr_mismatch_names_the_files(tmp_path):
    _touch(tmp_path / "train" / "huawei_raw" / "0.png")
    _touch(tmp_path / "train" / "huawei_raw" / "7.png")
    _touch(tmp_path / "train" / "canon" / "0.jpg")
    _touch(tmp_path / "train" / "canon" / "9.jpg")
    with pytest.raises(
        DataSourceError, match=r"\(train\).*huawei_raw without canon: 7; canon without huawei_raw: 9"
    ):
        parse_source(f"zrr:{tmp_path}")


def test_pairs_match_by_stem_and_split_by_folder(tmp_path):
    for split in ("train", "test"):
        _touch(tmp_path / split / "raw" / f"{split}_a.DNG")
        _touch(tmp_path / split / "rgb" / f"{split}_a.png")
    source = parse_source(f"pairs:{tmp_path}")
    assert [ex.name for ex in source.examples("train")] == ["train_a"]
    assert source.examples("test")[0].raw.name == "test_a.DNG"
    _touch(tmp_path / "extra.nef")
    with pytest.raises(DataSourceError, match="RAW without RGB: extra"):
        parse_source(f"pairs:{tmp_path}")


def test_photos_without_split_folders_are_split_by_a_stable_hash(tmp_path):
    for i in range(40):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / f"img{i:02d}.png")
    first = parse_source(f"photos:{tmp_path}")
    again = parse_source(f"photos:{tmp_path}")
    assert first.splits == again.splits
    train, test = ({ex.name for ex in first.examples(s)} for s in ("train", "test"))
    assert train | test == {f"img{i:02d}" for i in range(40)} and not train & test
    assert 1 <= len(test) <= 12  # ~10% held out


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("imagenet:/tmp", "expected samples, zrr:DIR, pairs:DIR or photos:DIR"),
        ("zrr:", "expected samples"),
        ("photos:/does/not/exist", "is not a folder"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(DataSourceError, match=message):
        parse_source(spec)


def test_empty_folders(tmp_path):
    with pytest.raises(DataSourceError, match="no photos"):
        parse_source(f"photos:{tmp_path}")
    with pytest.raises(DataSourceError, match="no train/huawei_raw"):
        parse_source(f"zrr:{tmp_path}")
