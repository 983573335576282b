"""``python -m pynet_tf.align`` end to end on the real camera RAW (a Kodak DC50 KDC) against warped renditions
of itself, with bad pairs mixed in; pairing by name and by capture time; resuming an interrupted run."""

import contextlib
import io
import json
import shutil
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from pynet_tf import align
from pynet_tf.alignment import dataset
from pynet_tf.alignment.pairing import PairingError, capture_time, match_times, pair_files
from pynet_tf.alignment.synthetic import corner_error, random_homography, regrade
from pynet_tf.data import isp
from pynet_tf.data.photoio import encode_photo
from pynet_tf.data.pipeline import PipelineOptions, make_dataset
from pynet_tf.data.rawio import ZRR_SCALE, read_raw, read_zrr_raw
from pynet_tf.data.sources import parse_source
from pynet_tf.metrics import psnr

KDC = Path(__file__).resolve().parents[2] / "shared" / "data" / "third_party" / "RAW_KODAK_DC50.KDC"
PATCH = 128
GLOBAL_TOLERANCE_PX = 0.5
# A photo patch is the DSLR view resampled twice (the synthetic warp here, the alignment's warp back) and
# JPEG-coded at quality 95: 34.7 to 47 dB against the ideal crop when this was written. PSNR alone forgives a
# pixel of misalignment on smooth patches, so each patch must also beat the ideal crop moved by one pixel.
PATCH_PSNR_FLOOR_DB = 34.0


DSLR_GAIN = np.array([1.15, 1.0, 0.85], np.float32)
"""The DSLR's other exposure and colour: linear gains per channel."""


def dslr_view(render: np.ndarray, homography: np.ndarray, scale: float) -> np.ndarray:
    size = (round(render.shape[1] * scale), round(render.shape[0] * scale))
    view = cv2.warpPerspective(
        regrade(render, DSLR_GAIN), homography, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
    )
    return np.clip(view, 0, 1).astype(np.float32)


def write_exif_jpeg(path: Path, rgb: np.ndarray, taken: str, subsec: str) -> None:
    exif = Image.Exif()
    exif.get_ifd(0x8769).update({0x9003: taken, 0x9291: subsec})
    Image.fromarray(np.rint(rgb * 255).astype(np.uint8)).save(path, quality=95, exif=exif)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> dict:
    """Phone RAWs and DSLR photos as a user brings them: three good scenes by name, one good scene whose photo
    is named by the DSLR (paired by capture time), and four bad pairs or lone files."""
    root = tmp_path_factory.mktemp("shots")
    raws, photos = root / "phone", root / "dslr"
    raws.mkdir()
    photos.mkdir()
    render = isp.process_raw(read_raw(KDC)).numpy()
    height, width = render.shape[:2]
    truths = {}
    for seed, name in enumerate(("scene_a", "scene_b", "scene_c", "lonely")):
        shutil.copy(KDC, raws / f"{name}.KDC")
        truths[name] = random_homography(np.random.default_rng(seed), width, height, 1.2)
        view = dslr_view(render, truths[name], 1.2)
        if (
            name == "lonely"
        ):  # the DSLR's own name; shot 1.5 s after the KDC's timestamp (1997-04-23 08:00:47)
            write_exif_jpeg(photos / "IMG_0007.jpg", view, "1997:04:23 08:00:48", "50")
        elif name == "scene_c":
            (photos / f"{name}.png").write_bytes(encode_photo(view, "png", bits=16))
        else:
            (photos / f"{name}.jpg").write_bytes(encode_photo(view, "jpg", quality=95))
    (raws / "broken.dng").write_bytes(b"II*\x00" + bytes(range(256)) * 8)
    (photos / "broken.jpg").write_bytes(encode_photo(render, "jpg"))
    shutil.copy(KDC, raws / "other.KDC")
    coffee = cv2.resize(skimage.data.coffee().astype(np.float32) / 255, (width, height))
    (photos / "other.jpg").write_bytes(encode_photo(coffee, "jpg"))
    shutil.copy(KDC, raws / "tiny.KDC")
    (photos / "tiny.jpg").write_bytes(
        encode_photo(dslr_view(render, truths["scene_a"] * [[0.4], [0.4], [1]], 0.4), "jpg")
    )
    (photos / "stray.jpg").write_bytes(encode_photo(render[:64, :64], "jpg"))
    return {"raws": raws, "photos": photos, "render": render, "truths": truths}


@pytest.fixture(scope="module")
def aligned(shots, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("aligned") / "mycam"
    argv = [
        "--raw",
        str(shots["raws"]),
        "--photos",
        str(shots["photos"]),
        "--out",
        str(out),
        "--patch",
        str(PATCH),
    ]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = align.main(argv)
    return {"status": status, "out": out, "console": buffer.getvalue()}


def test_the_good_pairs_become_a_zrr_dataset_and_the_bad_ones_one_line_each(aligned):
    assert aligned["status"] == 0, aligned["console"]
    console = aligned["console"]
    assert "broken: " in console and "broken.dng: LibRaw cannot read it" in console
    assert "other: other.jpg on other.KDC: only" in console and "same scene?" in console
    assert "tiny: tiny.jpg on tiny.KDC: the photo has 0.4" in console and "full-resolution" in console
    assert "unpaired: " in console and "stray.jpg: no file of the same name, and no capture time" in console
    assert "photos' clock runs +1.5 s" in console
    record = json.loads((aligned["out"] / "alignment.json").read_text())
    by_name = {pair["name"]: pair for pair in record["pairs"]}
    assert set(by_name) == {"broken", "lonely", "other", "scene_a", "scene_b", "scene_c", "tiny"}
    assert by_name["lonely"]["paired_by"] == "capture time" and by_name["lonely"]["photo"].endswith(
        "IMG_0007.jpg"
    )
    good = ("lonely", "scene_a", "scene_b", "scene_c")
    assert all(by_name[name]["kept"] > 0 for name in good)
    assert {by_name[name]["split"] for name in good} == {"train", "test"}
    assert not Path(str(aligned["out"]) + ".partial").exists()


def test_the_recorded_homographies_match_the_warps_within_half_a_pixel(aligned, shots):
    record = json.loads((aligned["out"] / "alignment.json").read_text())
    height, width = shots["render"].shape[:2]
    fitted = [pair for pair in record["pairs"] if "error" not in pair]
    assert len(fitted) == 4
    for pair in fitted:
        error = corner_error(np.array(pair["homography"]), shots["truths"][pair["name"]], width, height)
        assert error <= GLOBAL_TOLERANCE_PX, pair["name"]


def test_each_patch_holds_the_raws_own_samples_and_the_aligned_photo(aligned, shots):
    """The mosaic PNG reads back (as ZRR reads) to the KDC's packed samples under the patch, to the 1/1020
    quantisation step; the photo patch is the regraded render under the same patch, not one pixel beside."""
    packed = read_raw(KDC).packed()
    expected_photo = regrade(shots["render"], DSLR_GAIN)
    record = json.loads((aligned["out"] / "alignment.json").read_text())
    checked = 0
    for pair in record["pairs"]:
        for patch in pair.get("patches", []):
            if "index" not in patch:
                continue
            folder = aligned["out"] / pair["split"]
            samples = read_zrr_raw(folder / "huawei_raw" / f"{patch['index']}.png")
            top, left = patch["top"], patch["left"]
            crop = packed[top // 2 : (top + PATCH) // 2, left // 2 : (left + PATCH) // 2]
            np.testing.assert_allclose(samples, crop, atol=0.5 / ZRR_SCALE + 1e-6)
            photo = np.asarray(Image.open(folder / "canon" / f"{patch['index']}.jpg"), np.float32) / 255
            score = float(psnr(photo, expected_photo[top : top + PATCH, left : left + PATCH]))
            assert score >= PATCH_PSNR_FLOOR_DB, (pair["name"], patch)
            for down, right in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                moved = expected_photo[
                    max(0, top + down) : top + down + PATCH, max(0, left + right) : left + right + PATCH
                ]
                if moved.shape == photo.shape:
                    assert score > float(psnr(photo, moved)), (pair["name"], patch, down, right)
            checked += 1
    assert checked >= 8


def test_training_reads_the_dataset_unchanged(aligned):
    source = parse_source(f"zrr:{aligned['out']}")
    record = json.loads((aligned["out"] / "alignment.json").read_text())
    assert {split: len(source.splits[split]) for split in ("train", "test")} == record["patches"]
    options = PipelineOptions(level=0, patch=32, batch_size=2)
    raw, target = next(iter(make_dataset(source, "train", options)))
    assert raw.shape == (2, 32, 32, 4) and target.shape == (2, 64, 64, 3)


def test_the_page_shows_every_aligned_pairs_checks(aligned):
    page = (aligned["out"] / "index.html").read_text()
    for name in ("lonely", "scene_a", "scene_b", "scene_c"):
        for suffix in (".jpg", ".gif"):
            assert f"checks/{name}{suffix}" in page
            assert (aligned["out"] / "checks" / f"{name}{suffix}").stat().st_size > 1000
    assert Image.open(aligned["out"] / "checks" / "scene_a.gif").n_frames == 2
    assert "stray.jpg" in page and "LibRaw cannot read it" in page


def test_nothing_aligned_is_an_error_and_writes_nothing(shots, tmp_path, capsys):
    raws, photos = tmp_path / "phone", tmp_path / "dslr"
    raws.mkdir()
    photos.mkdir()
    for name in ("other", "broken"):
        shutil.copy(shots["raws"] / ("other.KDC" if name == "other" else "broken.dng"), raws)
        shutil.copy(shots["photos"] / f"{name}.jpg", photos)
    status = align.main(["--raw", str(raws), "--photos", str(photos), "--out", str(tmp_path / "set")])
    captured = capsys.readouterr()
    assert status == 2
    assert "error: no patch of any of the 2 pairs was kept" in captured.err
    assert not (tmp_path / "set").exists() and not (tmp_path / "set.partial").exists()


def test_an_interrupted_run_resumes_where_it_stopped(shots, tmp_path, monkeypatch, capsys):
    raws, photos = tmp_path / "phone", tmp_path / "dslr"
    raws.mkdir()
    photos.mkdir()
    for name in ("scene_a", "scene_b"):
        shutil.copy(shots["raws"] / f"{name}.KDC", raws)
        shutil.copy(shots["photos"] / f"{name}.jpg", photos)
    argv = [
        "--raw",
        str(raws),
        "--photos",
        str(photos),
        "--out",
        str(tmp_path / "set"),
        "--patch",
        str(PATCH),
    ]
    real = dataset.align_into
    calls = []

    def interrupted_on_the_second(pair, folder, settings):
        calls.append(pair.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(pair, folder, settings)

    monkeypatch.setattr(dataset, "align_into", interrupted_on_the_second)
    assert align.main(argv) == 130
    assert "the same command resumes" in capsys.readouterr().err
    assert (tmp_path / "set.partial" / "pairs" / "scene_a" / "record.json").is_file()
    assert not (tmp_path / "set").exists()

    assert align.main([*argv, "--min-agreement", "0.9"]) == 2
    assert "other settings (options)" in capsys.readouterr().err

    calls.clear()
    monkeypatch.setattr(dataset, "align_into", lambda *args: (calls.append(args[0].name), real(*args))[1])
    assert align.main(argv) == 0
    assert calls == ["scene_b"]
    assert "scene_a: " in capsys.readouterr().out
    record = json.loads((tmp_path / "set" / "alignment.json").read_text())
    assert [pair["name"] for pair in record["pairs"]] == ["scene_a", "scene_b"]


def test_capture_times_pair_across_a_clock_offset():
    """The DSLR's clock runs an hour and 3 s ahead; shots 20 s apart; one RAW has no partner."""
    raws = {"r1": 1000.0, "r2": 1020.0, "r3": 1040.0, "r4": 1500.0}
    photos = {"p1": 4603.4, "p2": 4622.9, "p3": 4643.2}
    matched, offset = match_times(raws, photos, max_gap=2.0)
    assert offset == pytest.approx(3603.2)  # the median of the three pairs' differences
    assert sorted((raw, photo) for raw, photo, _ in matched) == [("r1", "p1"), ("r2", "p2"), ("r3", "p3")]
    assert max(gap for _, _, gap in matched) == pytest.approx(0.3)


def test_capture_time_reads_exif_with_its_fraction_and_libraws_timestamp(tmp_path):
    write_exif_jpeg(tmp_path / "a.jpg", np.zeros((8, 8, 3), np.float32), "2026:05:01 10:20:30", "25")
    assert capture_time(tmp_path / "a.jpg") == datetime(2026, 5, 1, 10, 20, 30, 250000)
    assert capture_time(KDC) == datetime(1997, 4, 23, 8, 0, 47)
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    assert capture_time(tmp_path / "plain.png") is None


def test_two_files_of_one_name_are_refused(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "photos").mkdir()
    shutil.copy(KDC, tmp_path / "raw" / "a.KDC")
    for suffix in (".jpg", ".png"):
        Image.new("RGB", (8, 8)).save(tmp_path / "photos" / f"a{suffix}")
    with pytest.raises(PairingError, match="two files named 'a'.*rename one of them"):
        pair_files(tmp_path / "raw", tmp_path / "photos")
