"""Synthetic pairs as benchmarks/align_training.py uses them: the RAW written as a DNG
(``synthetic.write_raw_dng``) reads back as the same frame, and a DSLR view wider than the RAW (``margin``)
still shows at ``truth(x)`` what the RAW sees at x."""

import cv2
import numpy as np
import rawpy
import skimage.data

from pynet_tf.alignment.synthetic import WHITE_LEVEL, make_pair, write_raw_dng
from pynet_tf.data import isp
from pynet_tf.data.rawio import read_raw

# AsShotNeutral is written with six decimals (denominators up to 10**6) and LibRaw keeps the gains in float32.
WB_RTOL = 1e-5
# ColorMatrix1 is written with six decimals too; LibRaw inverts it in float32 (rawpy's color_matrix).
MATRIX_ATOL = 1e-4


def test_a_synthetic_raw_survives_its_dng(tmp_path):
    photo = skimage.data.astronaut()[:64, :96].astype(np.float32) / 255
    raw = make_pair(photo, seed=4, noise=True).raw
    path = write_raw_dng(tmp_path / "scene.dng", raw)
    image = read_raw(path)
    np.testing.assert_array_equal(image.mosaic, raw.mosaic)
    assert image.pattern == raw.pattern == "RGGB"
    assert image.black_levels == (0.0, 0.0, 0.0, 0.0) and image.white_level == WHITE_LEVEL
    # a DNG's white balance is a neutral, ratios only: unprocess's brightness gain (green's) is not in it
    red, green, blue = raw.white_balance
    np.testing.assert_allclose(image.white_balance, (red / green, 1.0, blue / green), rtol=WB_RTOL)
    # LibRaw renders with ColorMatrix1: its camera -> sRGB is the one isp.process_raw derives from the matrix,
    # and read_raw recovers the matrix from it (LibRaw's rgb_xyz_matrix stays zero for a DNG): the rendering
    # matrix of the frame read back is the one the synthetic camera drew.
    with rawpy.imread(str(path)) as libraw:
        assert not np.any(libraw.rgb_xyz_matrix)
        camera_to_srgb = np.array(libraw.color_matrix)[:, :3]
    expected = np.linalg.inv(isp.srgb_to_camera(raw.color_matrix).numpy())
    np.testing.assert_allclose(camera_to_srgb, expected, atol=MATRIX_ATOL)
    read_back = np.linalg.inv(isp.srgb_to_camera(image.color_matrix).numpy())
    np.testing.assert_allclose(read_back, expected, atol=MATRIX_ATOL)


def test_a_wider_view_shows_the_raw_scene_at_the_true_positions():
    margin = 32
    photo = skimage.data.astronaut()[:256, :320].astype(np.float32) / 255
    pair = make_pair(photo, seed=3, scale=1.2, amplitude=2.0, cell=64, margin=margin)
    assert pair.raw.mosaic.shape == (256 - 2 * margin, 320 - 2 * margin)
    assert pair.photo.shape == (round(256 * 1.2), round(320 * 1.2), 3)
    points = np.stack(np.meshgrid(np.arange(0, 256, 5.0), np.arange(0, 192, 5.0)), -1).reshape(-1, 2)
    seen = pair.regrade(photo[margin:-margin, margin:-margin])[
        points[:, 1].astype(int), points[:, 0].astype(int)
    ]

    def view_at(offset: float) -> np.ndarray:
        where = (pair.truth(points) + (offset, 0)).astype(np.float32)
        return cv2.remap(pair.photo, where[:, :1], where[:, 1:], cv2.INTER_LINEAR)[:, 0]

    # the corners of the RAW frame lie inside the view, and the view there is the scene the RAW saw
    assert (pair.truth(points) > 0).all() and (pair.truth(points) < pair.photo.shape[1::-1]).all()
    assert np.abs(view_at(0.0) - seen).mean() < 0.5 * np.abs(view_at(1.2) - seen).mean()
