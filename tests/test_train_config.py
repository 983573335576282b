"""Training presets, flag overrides and the checks that run before any model is built."""

import json
from pathlib import Path

import pytest

from pynet_tf import train_config
from pynet_tf.losses import LossSpecError
from pynet_tf.nets.mobile import model as mobile
from pynet_tf.train_config import ConfigError, LevelSchedule, TrainConfig, parse_levels, resolve


def test_reference_preset_is_the_papers_schedule():
    """Ignatov et al. 2020: Adam 5e-5, and per level 5..0 the steps and batch sizes of train_model.py."""
    config = resolve("reference")
    assert config.lr == 5e-5 and config.base_filters == 32 and config.patch == 224 and config.loss == "pynet"
    assert {level: (s.steps, s.batch_size) for level, s in config.schedule.items()} == {
        5: (5000, 50),
        4: (5000, 50),
        3: (20000, 48),
        2: (20000, 18),
        1: (35000, 12),
        0: (100000, 10),
    }
    assert config.levels == (5, 4, 3, 2, 1, 0)
    assert config.out == "runs/reference"


def test_quick_preset_needs_no_vgg_weights_and_fits_its_patch():
    config = resolve("quick")
    assert config.loss == "lab_mse" and config.out == "runs/quick" and not config.instance_norm
    assert config.base_filters < 32 and config.patch_at(0) < config.patch_at(
        5
    )  # fine levels: more, smaller crops


def test_cpu_preset_is_the_quick_one_wider_and_longer():
    """An hour on a CPU buys width, steps, and at the fine levels larger crops (as many pixels a step, so
    that the coarse levels inside see more than 8x8); the rest is the quick preset's."""
    quick, cpu = resolve("quick"), resolve("cpu")
    assert cpu.base_filters == 2 * quick.base_filters and cpu.out == "runs/cpu"
    for level in quick.levels:
        quick_pixels, cpu_pixels = (
            c.schedule[level].batch_size * c.patch_at(level) ** 2 for c in (quick, cpu)
        )
        assert cpu_pixels == quick_pixels
        assert cpu.patch_at(level) == cpu.patch == 64
        assert cpu.schedule[level].steps >= 2 * quick.schedule[level].steps
    assert cpu.lr == quick.lr / 2  # twice the width, half the rate (at quick's, its level 0 diverged)
    same = ("loss", "lr_schedule", "init", "instance_norm", "new_layers_first", "patch")
    assert {key: getattr(cpu, key) for key in same} == {key: getattr(quick, key) for key in same}
    mobile_quick, mobile_cpu = resolve("quick", arch="mobile"), resolve("cpu", arch="mobile")
    assert mobile_cpu.schedule[0].steps > mobile_quick.schedule[0].steps
    assert mobile_cpu.base_filters == mobile_quick.base_filters


def test_overrides_replace_preset_values_and_steps_apply_to_every_level():
    config = resolve(
        "reference", steps=7, batch_size=3, lr=1e-4, base_filters=8, levels=(3, 2), out="x", seed=None
    )
    assert set(config.schedule.values()) == {LevelSchedule(7, 3)}
    assert (config.lr, config.base_filters, config.levels, config.out, config.seed) == (
        1e-4,
        8,
        (3, 2),
        "x",
        0,
    )


def test_a_level_may_name_its_own_patch_and_the_flag_sets_every_level(monkeypatch):
    schedule = {5: (10, 8), 0: (20, 4, 32)}
    monkeypatch.setitem(train_config.PRESETS["quick"], "schedule", schedule)
    config = resolve("quick", levels=(5, 0))
    assert (config.patch_at(5), config.patch_at(0)) == (config.patch, 32) and config.patch != 32
    flagged = resolve("quick", levels=(5, 0), patch=48)
    assert (flagged.patch_at(5), flagged.patch_at(0)) == (48, 48)
    with pytest.raises(ConfigError, match=r"--patch 40: .*\(level 0\)"):
        monkeypatch.setitem(schedule, 0, (20, 4, 40))
        resolve("quick", levels=(5, 0))


def test_runs_from_before_per_level_patches_load_with_the_runs_patch():
    record = resolve("quick", levels=(1,)).to_json()
    record["schedule"] = {"1": {"steps": 5, "batch_size": 2}}
    assert TrainConfig.from_json(record).patch_at(1) == record["patch"]


def test_config_round_trips_through_json(tmp_path):
    config = resolve("quick", levels=(2, 1), vgg_weights="w.h5")
    assert TrainConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    "text, levels",
    [("5-0", (5, 4, 3, 2, 1, 0)), ("0-5", (5, 4, 3, 2, 1, 0)), ("3", (3,)), ("2-1", (2, 1))],
)
def test_levels_are_ranges_trained_coarsest_first(text, levels):
    assert parse_levels(text) == levels


@pytest.mark.parametrize("text", ["6", "5-x", "", "a"])
def test_bad_levels_are_refused(text):
    with pytest.raises(ConfigError, match="--levels"):
        parse_levels(text)


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        ({"patch": 72}, ConfigError, r"--patch 72: .*nearest valid size is 64x64"),
        ({"patch": 0}, ConfigError, "--patch must be a positive integer"),
        ({"steps": -1}, ConfigError, "--steps must be a positive integer, got -1"),
        # 0 is the user's value, not "unset": it must reach the check, not become the preset's
        ({"steps": 0}, ConfigError, "--steps must be a positive integer, got 0"),
        ({"batch_size": 0}, ConfigError, "--batch-size must be a positive integer, got 0"),
        ({"lr": 0.0}, ConfigError, "--lr must be positive"),
        ({"strategy": "tpu"}, ConfigError, "--strategy 'tpu'"),
        ({"lab_alpha": 2.0}, ConfigError, "--lab-alpha"),
        ({"loss": "msee=1"}, LossSpecError, "did you mean 'mse'"),
        # level 3 outputs patch / 4 = 8 px: no room for the 11-px window of the LAB loss's MS-SSIM part
        ({"patch": 32, "loss": "lab"}, LossSpecError, "level 3 at --patch 32 gives 8x8"),
        ({"arch": "mobil"}, ConfigError, "--arch 'mobil': did you mean 'mobile'"),
        (
            {"arch": "mobile", "levels": (1, 0)},
            ConfigError,
            r"the mobile network has levels \(0,\), not \[1\]",
        ),
        ({"arch": "mobile", "patch": 30}, ConfigError, r"--patch 30: .*not a multiple of 4 .*stride-2"),
        ({"teacher_weight": 0.0}, ConfigError, "--teacher-weight must be > 0"),
        ({"prune": 1.0}, ConfigError, r"--prune is the fraction of each kernel pruned, in \(0, 1\)"),
        ({"init": "glorot"}, ConfigError, r"--kernel-init 'glorot': choose one of reference, he"),
        (
            {"new_layers_first": 1.0},
            ConfigError,
            r"--new-layers-first must be a fraction in \[0, 1\), got 1.0",
        ),
        ({"lr_schedule": "step"}, ConfigError, r"--lr-schedule 'step': choose one of constant, cosine"),
    ],
)
def test_bad_values_fail_before_training_naming_the_flag(overrides, error, message):
    with pytest.raises(error, match=message):
        resolve("quick", **overrides)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ConfigError, match="reference, quick, cpu"):
        resolve("fast")
    assert set(train_config.PRESETS) == {"reference", "quick", "cpu"}


def test_the_mobile_arch_takes_the_presets_mobile_entry():
    """Level 0 only, the preset's schedule for it and the mobile width; the rest as PyNET's quick preset."""
    config = resolve("quick", arch="mobile")
    pynet = resolve("quick")
    assert config.arch == "mobile" and config.levels == (0,) and config.base_filters == mobile.DEFAULT_WIDTH
    assert config.schedule == {
        0: train_config.LevelSchedule(*train_config.PRESETS["quick"]["mobile"]["schedule"][0])
    }
    assert (config.lr, config.loss, config.patch) == (pynet.lr, pynet.loss, pynet.patch)
    assert resolve("quick", arch="mobile", base_filters=8).base_filters == 8
    assert pynet.arch == "pynet" and TrainConfig.from_json(config.to_json()) == config


def test_cosine_schedule_decays_each_level_from_lr_to_0_and_constant_holds():
    from pynet_tf.trainer import learning_rate

    cosine = learning_rate(resolve("quick", lr=1e-3), steps=200)
    # CosineDecay: lr * (1 + cos(pi * step / steps)) / 2, exact in float32 up to 1e-9 here
    for step, expected in ((0, 1e-3), (100, 5e-4), (200, 0.0)):
        assert float(cosine(step)) == pytest.approx(expected, abs=1e-9)
    assert learning_rate(resolve("reference"), steps=200) == 5e-5


def test_kernel_init_sets_the_init_scheme_and_init_names_the_run_to_start_from():
    from pynet_tf.train import build_parser

    args = vars(build_parser().parse_args(["--kernel-init", "he", "--instance-norm-level-1"]))
    assert (args["init"], args["init_from"], args["instance_norm_level_1"]) == ("he", None, True)
    config = resolve(args.pop("preset"), **args)
    assert (config.init, config.init_from, config.instance_norm_level_1) == ("he", None, True)
    assert vars(build_parser().parse_args(["--init", "runs/official"]))["init_from"] == "runs/official"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--kernel-init", "glorot"])


def test_configs_from_before_init_from_and_the_level_1_norm_load_with_their_defaults():
    config = resolve("quick", levels=(5,))
    record = config.to_json()
    del record["init_from"], record["instance_norm_level_1"]
    assert TrainConfig.from_json(record) == config
    assert (config.init_from, config.instance_norm_level_1) == (None, False)


def fake_run(root: Path, levels: tuple[int, ...], **record) -> Path:
    """A run folder whose levels are complete as far as their records go (empty model files): what --init's
    checks read, before any model is loaded."""
    for level in levels:
        folder = root / f"level_{level}"
        folder.mkdir(parents=True)
        (folder / "model.keras").write_bytes(b"")
        (folder / "level.json").write_text(json.dumps({"level": level, **record}))
    return root


# what import_official records: the network at the top level, the reference preset's config beside it
IMPORTED = {
    "arch": "pynet",
    "base_filters": 32,
    "instance_norm": True,
    "instance_norm_level_1": True,
    "imported": {"checkpoint": "pynet_level_0.ckpt"},
    "config": {"base_filters": 32, "instance_norm": True},
}


def test_init_takes_the_runs_network_where_no_flag_sets_it(tmp_path):
    run = fake_run(tmp_path / "official", (5, 0), **IMPORTED)
    config = resolve("quick", init_from=str(run))  # the quick preset: width 4, no norms
    assert (config.arch, config.base_filters, config.instance_norm, config.instance_norm_level_1) == (
        "pynet",
        32,
        True,
        True,
    )
    assert resolve("quick", init_from=str(run), base_filters=32, levels=(0,)).levels == (
        0,
    )  # the same value: fine
    assert train_config.check_init(config).provenance(5) == {
        "run": str(run.resolve()),
        "level": 5,
        "imported": {"checkpoint": "pynet_level_0.ckpt"},
    }


def test_init_reads_an_older_runs_network_from_its_config_or_the_defaults(tmp_path):
    """A trained level records arch and width; its norms are in its config, and a run from before
    instance_norm_level_1 existed had none at level 1 (the default)."""
    run = fake_run(
        tmp_path / "old", (5,), level=5, arch="pynet", base_filters=2, config={"instance_norm": False}
    )
    config = resolve("reference", init_from=str(run), levels=(5,))
    assert (config.base_filters, config.instance_norm, config.instance_norm_level_1) == (2, False, False)


@pytest.mark.parametrize(
    "make, overrides, message",
    [
        (lambda tmp: tmp / "nope", {}, r"--init .*nope: no such run folder"),
        (
            lambda tmp: fake_run(tmp / "run", (5,), **IMPORTED) / "level_5",
            {},
            r"--init .*level_5: holds no trained level \(.*is a level folder: pass its run, .*run\)",
        ),
        (
            lambda tmp: fake_run(tmp / "run", (5, 0), **IMPORTED),
            {"levels": (3,)},
            r"has no trained level 3 to start level 3 from \(it has levels 5, 0\)",
        ),
        (
            lambda tmp: fake_run(tmp / "run", (5,), **IMPORTED),
            {"levels": (5,), "out": "{run}"},
            r"--init .*run and --out .*run are the same run: fine-tune into another --out",
        ),
        (
            lambda tmp: fake_run(tmp / "run", (5,), **IMPORTED),
            {"levels": (5,), "instance_norm_level_1": False},
            (
                r"--init .*run is a network of instance_norm_level_1=True, .*\(--no-instance-norm-level-1\): leave "
                r"--instance-norm-level-1 out to take the run's value"
            ),
        ),
    ],
)
def test_init_refuses_what_cannot_start_this_run(tmp_path, make, overrides, message):
    run = make(tmp_path)
    overrides = {
        key: value.format(run=run) if isinstance(value, str) else value for key, value in overrides.items()
    }
    with pytest.raises(ConfigError, match=message):
        resolve("quick", init_from=str(run), **overrides)
