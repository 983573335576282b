"""The loss study: variants, one run each under the same flags, the comparison table and the crop grid."""

import json

import pytest
from PIL import Image

from pynet_tf import study, vgg
from pynet_tf.losses import LAB_ALPHA
from pynet_tf.train_config import ConfigError

# Level 5 traces fastest; a 176-pixel patch gives it 11x11 outputs, room for the LAB loss's SSIM window.
TINY = {
    "levels": (5,),
    "base_filters": 2,
    "steps": 2,
    "batch_size": 2,
    "patch": 176,
    "checkpoint_every": 2,
    "validate_every": 2,
    "validation_batches": 1,
}


def test_variants_are_the_losses_then_the_alpha_grid():
    found = study.variants(["pynet", "mse=20,ssim=1"], [0.5, LAB_ALPHA, 0.95])
    assert [(v.name, v.loss, v.lab_alpha) for v in found] == [
        ("pynet", "pynet", LAB_ALPHA),
        ("mse=20,ssim=1", "mse=20,ssim=1", LAB_ALPHA),
        ("lab@0.5", "lab", 0.5),
        ("lab@0.95", "lab", 0.95),
    ]  # the default α is not repeated: it is what every other variant uses
    with pytest.raises(ConfigError, match="twice"):
        study.variants(["lab", "lab"], [])


@pytest.mark.parametrize(
    "text, specs",
    [
        ("pynet,lab,lab_vgg", ["pynet", "lab", "lab_vgg"]),
        ("mse=20,vgg=1", ["mse=20,vgg=1"]),
        ("mse=20,vgg=1;lab", ["mse=20,vgg=1", "lab"]),
    ],
)
def test_losses_flag_splits_presets_and_keeps_term_lists_whole(text, specs):
    assert study._split_losses(text) == specs


def test_study_trains_each_variant_under_the_same_flags_and_compares_them(tmp_path):
    out = tmp_path / "study"
    found = study.variants(["mse=100", "lab"], [0.5])
    record = study.run_study(out, found, preset="quick", **TINY)

    assert [v["name"] for v in record["variants"]] == ["mse=100", "lab", "lab@0.5"]
    for variant in record["variants"]:
        level = json.loads((tmp_path / variant["run"] / "level_5" / "level.json").read_text())
        assert level["steps"] == 2 and level["base_filters"] == 2  # same budget and model for every variant
        evaluation = json.loads((tmp_path / variant["run"] / "eval" / "evaluation.json").read_text())
        assert variant["mean"] == evaluation["mean"]["model"]
    assert (out / "lab@0.5" / "level_5" / "level.json").read_text().count('"lab_alpha": 0.5') == 1

    table = (out / "study.md").read_text()
    assert table.count("\n| ") == 2 + 3 + 1  # header, rule, the variants, the classical ISP
    best_psnr = max(v["mean"]["psnr"] for v in record["variants"])
    assert f"**{best_psnr:.2f}**" in table
    assert json.loads((out / "study.json").read_text()) == json.loads(json.dumps(record))

    with Image.open(out / "grid.png") as grid:  # 2 test images x (target, classical ISP, 3 variants)
        assert grid.size == (round(2.2 * 5 * 100), round(2.3 * 2 * 100))

    # a second run resumes: nothing is trained again
    stamp = (out / "lab" / "level_5" / "level.json").stat().st_mtime_ns
    study.run_study(out, found, preset="quick", **TINY)
    assert (out / "lab" / "level_5" / "level.json").stat().st_mtime_ns == stamp


def test_variants_with_a_vgg_term_need_weights_before_anything_trains(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(vgg.VggWeightsError, match="variants pynet, lab_vgg have a VGG-19 term"):
        study.run_study(
            tmp_path / "study", study.variants(["lab", "pynet", "lab_vgg"], []), preset="quick", **TINY
        )
    assert not (tmp_path / "study").exists()
