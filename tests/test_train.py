"""Training end to end at a tiny width: the run folder, resuming, stopping, divergence and the CLI."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from model_fixtures import OFFICIAL, official_checkpoint
from test_console import NOISE, quiet_env

from pynet_tf import runs, train, train_config, trainer, training
from pynet_tf.data.sources import parse_source
from pynet_tf.nets.mobile.model import build_mobile
from pynet_tf.nets.pynet.model import build_pynet
from pynet_tf.official import import_official
from pynet_tf.train_config import ConfigError, resolve

ROOT = Path(__file__).resolve().parents[1]
# Levels 5 and 4 at base width 2 on 32x32 crops: a few seconds per level, every code path of the loop. Instance
# norms give a model this small a non-flat output within 3 steps, as the collapse guard asks of every run.
TINY = {
    "levels": (5, 4),
    "base_filters": 2,
    "patch": 32,
    "batch_size": 2,
    "validation_batches": 1,
    "instance_norm": True,
}


def tiny_config(out: Path, **overrides):
    return resolve(
        "quick",
        **{**TINY, "steps": 3, "checkpoint_every": 2, "validate_every": 2, "out": str(out), **overrides},
    )


def records(run: Path, kind: str, level: int) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind and r["level"] == level]


def latest_checkpoint_step(run: Path, level: int) -> int:
    latest = tf.train.latest_checkpoint(str(run / f"level_{level}" / "checkpoints"))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def test_each_level_is_saved_complete_and_final_points_to_the_finest(tmp_path):
    run = tmp_path / "run"
    final = training.train(tiny_config(run))
    assert final == run / "level_4"
    assert os.readlink(run / "final") == "level_4"
    for level in (5, 4):
        record = json.loads((run / f"level_{level}" / "level.json").read_text())
        assert record["level"] == level and record["steps"] == 3 and record["loss"] == {"lab_l1": 100}
        assert np.isfinite(record["validation"]["psnr"])
        # train losses, term by term, and validation scores in the machine-readable log
        assert [r["step"] for r in records(run, "train", level)] == [3]
        assert set(records(run, "train", level)[0]) >= {"loss", "lab_l1"}
        assert [r["step"] for r in records(run, "validation", level)] == [2, 3]
        assert list((run / "tensorboard" / f"level_{level}").glob("events.out.tfevents.*"))
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["base_filters"] == 2 and config["replicas"] == 1 and config["warnings"] == []

    # the .keras model and the export-ready SavedModel compute the same function
    model = runs.load_model(run)
    raw = np.random.default_rng(0).random((1, 32, 48, 4)).astype(np.float32)
    serving = tf.saved_model.load(str(run / "level_4" / "saved_model")).signatures["serving_default"]
    np.testing.assert_allclose(
        serving(raw=tf.constant(raw))["rgb"], model(raw), atol=1e-6
    )  # same float32 ops
    assert not list(run.rglob("*.tmp")), "no temporary files left behind"


def test_each_level_trains_and_validates_on_its_own_patch(tmp_path, monkeypatch):
    """A preset may give levels their own crop side (the quick preset's fine levels take smaller ones)."""
    monkeypatch.setitem(train_config.PRESETS["quick"], "schedule", {5: (3, 2, 48), 4: (3, 2, 32)})
    crops = []
    make_dataset = trainer.make_dataset
    monkeypatch.setattr(
        trainer,
        "make_dataset",
        lambda source, split, options: (
            crops.append((options.level, split, options.patch)) or make_dataset(source, split, options)
        ),
    )
    run = tmp_path / "run"
    training.train(tiny_config(run, patch=None))
    assert sorted(set(crops)) == [(4, "test", 32), (4, "train", 32), (5, "test", 48), (5, "train", 48)]
    assert [json.loads((run / f"level_{level}" / "level.json").read_text())["patch"] for level in (5, 4)] == [
        48,
        32,
    ]


def test_level_warm_starts_from_the_coarser_level(tmp_path):
    """Level 4's copy of level 5's layers starts where level 5 ended (checked on level 4's first checkpoint)."""
    run = tmp_path / "run"
    training.train(tiny_config(run, levels=(5,)))
    level5 = runs.load_model(run)
    training.train(tiny_config(run, levels=(4,), lr=1e-12, steps=1))  # a negligible step: weights stay put
    level4 = runs.load_model(run)
    shared = [layer.name for layer in level5.layers if layer.weights and layer.name != "l5_out_conv"]
    assert shared
    for name in shared:
        for before, after in zip(level5.get_layer(name).get_weights(), level4.get_layer(name).get_weights()):
            np.testing.assert_allclose(after, before, atol=1e-9)


def test_new_layers_first_holds_the_grown_from_layers_then_releases_them(tmp_path):
    run = tmp_path / "run"
    training.train(tiny_config(run, levels=(5,)))
    level5 = runs.load_model(run)
    config = tiny_config(run, levels=(4,), steps=3, new_layers_first=0.7)  # held for 2 steps, saved at step 2
    training.train(config)
    at_step_2 = trainer.build_network(config, 4)
    tf.train.Checkpoint(model=at_step_2).restore(
        str(run / "level_4" / "checkpoints" / "ckpt-2")
    ).expect_partial()
    final = runs.load_model(run)

    def moved(model: keras.Model, name: str) -> float:
        pairs = zip(level5.get_layer(name).get_weights(), model.get_layer(name).get_weights())
        return max(float(np.abs(after - before).max()) for before, after in pairs)

    shared = [layer.name for layer in level5.layers if layer.weights and layer.name != "l5_out_conv"]
    assert shared and max(moved(at_step_2, name) for name in shared) == 0.0  # exactly held
    # Step 3 is their first Adam step: lr * g / (|g| + eps), so the largest move is the rate at step 3, to the
    # epsilon's share (1e-7 over gradients of ~1e-3: 1e-4 relative, 1e-3 allowed). One Adam for all layers
    # would have bias-corrected their 1-step moments as 3 steps': 0.64x the rate here, up to 6.5x at step 1200.
    rate = float(trainer.learning_rate(config, 3)(2))
    assert max(moved(final, name) for name in shared) == pytest.approx(rate, rel=1e-3)
    new = [layer.name for layer in final.layers if layer.weights and layer.name.startswith("l4_")]
    assert new and all(
        np.abs(a - b).max() > 0
        for name in new
        for a, b in zip(at_step_2.get_layer(name).get_weights(), final.get_layer(name).get_weights())
    )


@contextmanager
def stop_after(calls: int):
    """Stands in for Ctrl-C: asks the loop to stop once it has checked ``calls`` times (once per step)."""
    count = [0]

    def asked() -> bool:
        count[0] += 1
        return count[0] >= calls

    yield asked


def test_an_interrupted_level_resumes_at_its_step_with_its_optimizer_state(tmp_path, monkeypatch, caplog):
    run = tmp_path / "run"
    config = tiny_config(run, levels=(5,), steps=6, checkpoint_every=100, validate_every=100)
    monkeypatch.setattr(training, "stop_requests", lambda: stop_after(2))
    with pytest.raises(trainer.TrainingInterrupted, match="level 5, step 2/6.*same command"):
        training.train(config)
    assert latest_checkpoint_step(run, 5) == 2  # saved on the way out, though checkpoint_every is 100
    assert not (run / "level_5" / "level.json").exists()

    model = build_pynet(5, base_filters=2)
    optimizer = keras.optimizers.Adam(trainer.learning_rate(config, 6))  # the run's schedule: its variables
    optimizer.build(model.trainable_variables)
    tf.train.Checkpoint(model=model, optimizer=optimizer).restore(
        tf.train.latest_checkpoint(str(run / "level_5" / "checkpoints"))
    ).assert_existing_objects_matched()
    assert int(optimizer.iterations) == 2
    moments = [v.numpy() for v in optimizer.variables if "m/" in v.name or v.name.endswith("_m:0")]
    assert moments and any(np.abs(m).max() > 0 for m in moments), "Adam's moments were saved"

    monkeypatch.undo()
    caplog.set_level("INFO", logger="pynet_tf.trainer")
    training.train(config)
    assert "resumed from" in caplog.text and "at step 2" in caplog.text
    assert [r["step"] for r in records(run, "train", 5)] == [6]  # steps 3..6 only: nothing ran twice
    assert latest_checkpoint_step(run, 5) == 6


def test_sigterm_asks_for_a_stop_and_the_command_exits_143(tmp_path, monkeypatch, capsys):
    """What a CI time-out or ``kill`` sends: the loop stops after the step, checkpoints, and the command exits
    with the shell's code for SIGTERM (128 + 15), as Ctrl-C exits 130."""
    with trainer.stop_requests() as stop_requested:
        assert stop_requested() == 0
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop_requested() == signal.SIGTERM

    @contextmanager
    def terminated_after_two_steps():
        with stop_after(2) as asked:
            yield lambda: signal.SIGTERM if asked() else 0

    monkeypatch.setattr(training, "stop_requests", terminated_after_two_steps)
    run = tmp_path / "run"
    argv = ["--preset", "quick", "--levels", "5", "--base-filters", "2", "--patch", "32", "--batch-size", "2"]
    argv += ["--steps", "6", "--checkpoint-every", "100", "--validate-every", "100", "--out", str(run)]
    assert train.main(argv) == 143
    assert "stopped at level 5, step 2/6" in capsys.readouterr().err
    assert latest_checkpoint_step(run, 5) == 2


def test_a_level_stopped_part_way_resumes_only_under_the_settings_it_started_with(tmp_path, monkeypatch):
    """Resuming with another batch, crop, loss, data or step count would make level.json claim steps the
    level did not take: refused before any step, naming each change and the fix; the settings that do not
    shape the level (validation and checkpoint intervals, jit) may change."""
    run = tmp_path / "run"
    config = tiny_config(run, levels=(5,), steps=6, checkpoint_every=100, validate_every=100)
    monkeypatch.setattr(training, "stop_requests", lambda: stop_after(2))
    with pytest.raises(trainer.TrainingInterrupted):
        training.train(config)
    monkeypatch.undo()
    before = (run / "config.json").read_bytes()
    changed = {"batch_size": 4, "patch": 64, "loss": "mse=1", "data": "photos:" + str(tmp_path), "steps": 20}
    with pytest.raises(ConfigError) as refused:
        training.train(tiny_config(run, levels=(5,), checkpoint_every=100, validate_every=100, **changed))
    message = str(refused.value)
    assert "level 5 stopped at step 2" in message and "give the same flags" in message
    for name, value in changed.items():
        assert f"{name} " in message and f"(now {value!r})" in message
    assert (run / "config.json").read_bytes() == before  # nothing rewritten by the refused invocation
    assert latest_checkpoint_step(run, 5) == 2

    training.train(replace(config, checkpoint_every=50, validate_every=3, jit=False))
    record = json.loads((run / "level_5" / "level.json").read_text())
    assert record["steps"] == 6 and latest_checkpoint_step(run, 5) == 6


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real_loss = trainer.Loss

    class NanFromStep4(real_loss):
        """The real loss, poisoned from the 4th call on (a diverging run)."""

        calls = tf.Variable(0)

        def __call__(self, target, prediction):
            total, terms = super().__call__(target, prediction)
            poison = tf.where(self.calls.assign_add(1) >= 4, np.nan, 0.0)
            return total + poison, terms

    monkeypatch.setattr(trainer, "Loss", NanFromStep4)
    run = tmp_path / "run"
    with pytest.raises(
        trainer.TrainingDivergedError, match=r"level 5, step 4: the loss is not finite.*ckpt-2"
    ):
        training.train(tiny_config(run, levels=(5,), steps=10, checkpoint_every=2))
    assert latest_checkpoint_step(run, 5) == 2
    assert not (run / "level_5" / "model.keras").exists()


def test_mixed_precision_trains_in_float16_and_saves_float32(tmp_path):
    run = tmp_path / "run"
    training.train(tiny_config(run, levels=(5,), steps=2, mixed_precision=True))
    model = runs.load_model(run)
    assert {w.dtype for w in model.weights} == {tf.float32} and model.output.dtype == tf.float32
    assert keras.mixed_precision.global_policy().name == "float32"  # the policy is not left behind


@pytest.mark.parametrize(
    "change, message",
    [
        ({"base_filters": 4}, "base_filters=2, not 4"),
        ({"instance_norm": False}, "instance_norm=True, not False"),
        ({"instance_norm_level_1": True}, "instance_norm_level_1=False, not True"),
    ],
)
def test_another_network_cannot_continue_a_run(tmp_path, change, message):
    run = tmp_path / "run"
    training.train(tiny_config(run, levels=(5,), steps=1))
    with pytest.raises(train_config.ConfigError, match=f"{message}.*another --out"):
        training.train(tiny_config(run, levels=(4,), **change))


@pytest.mark.parametrize("instance_norm", [True, False])
def test_the_network_has_the_norms_the_config_asks_for(instance_norm):
    model = trainer.build_network(resolve("quick", instance_norm=instance_norm), 2)
    assert any(type(layer).__name__ == "InstanceNorm" for layer in model.layers) == instance_norm


@pytest.mark.parametrize("instance_norm_level_1", [True, False])
def test_the_network_has_a_level_1_norm_if_the_config_asks_for_it(instance_norm_level_1):
    model = trainer.build_network(resolve("quick", instance_norm_level_1=instance_norm_level_1), 1)
    level_1_norms = [
        layer.name
        for layer in model.layers
        if type(layer).__name__ == "InstanceNorm" and layer.name.startswith("l1_")
    ]
    assert bool(level_1_norms) == instance_norm_level_1


# One Adam step at lr 1e-12 moves a weight by about 1e-12 (Adam's first step is lr * sign(gradient)), far under
# 1e-9; a start from other weights (random, or another level's) is off by 1e-3 or more.
ONE_TINY_STEP = 1e-9


def assert_same_weights(expected: keras.Model, actual: keras.Model, names: list[str] | None = None) -> None:
    names = names or [layer.name for layer in expected.layers if layer.weights]
    assert names
    for name in names:
        for before, after in zip(
            expected.get_layer(name).get_weights(), actual.get_layer(name).get_weights(), strict=True
        ):
            np.testing.assert_allclose(after, before, atol=ONE_TINY_STEP, rtol=0, err_msg=name)


@pytest.fixture(scope="module")
def source_run(tmp_path_factory) -> Path:
    """A tiny trained run with level 5 only (width 2, instance norms): what --init starts from."""
    run = tmp_path_factory.mktemp("init") / "source"
    training.train(tiny_config(run, levels=(5,)))
    return run


def test_init_starts_from_the_runs_weights_and_later_levels_warm_start_as_usual(tmp_path, source_run):
    """Level 5 starts from every layer of the source's level 5; level 4 (which the source lacks) grows from the
    level 5 this command trained, as without --init."""
    tuned = tmp_path / "tuned"
    training.train(tiny_config(tuned, levels=(5, 4), init_from=str(source_run), lr=1e-12, steps=1))
    source, level5, level4 = (
        runs.load_model(path) for path in (source_run, tuned / "level_5", tuned / "level_4")
    )
    assert_same_weights(source, level5)
    assert_same_weights(
        level5,
        level4,
        [layer.name for layer in level5.layers if layer.weights and layer.name != "l5_out_conv"],
    )
    expected = {"run": str(source_run.resolve()), "level": 5}
    record = json.loads((tuned / "config.json").read_text())
    assert record["init"] == expected and record["config"]["init_from"] == str(source_run)
    for level in (5, 4):
        assert json.loads((tuned / f"level_{level}" / "level.json").read_text())["init"] == expected


def test_init_holds_no_layer_as_every_one_is_trained(tmp_path, source_run):
    """--new-layers-first holds the layers a level grew from; from --init nothing is new, so nothing is held:
    every layer has moved after the first step."""
    config = tiny_config(
        tmp_path / "tuned",
        levels=(5,),
        init_from=str(source_run),
        steps=2,
        checkpoint_every=1,
        new_layers_first=0.5,
    )
    training.train(config)
    at_step_1 = trainer.build_network(config, 5)
    tf.train.Checkpoint(model=at_step_1).restore(
        str(tmp_path / "tuned" / "level_5" / "checkpoints" / "ckpt-1")
    ).expect_partial()
    source = runs.load_model(source_run)
    for layer in source.layers:
        for before, after in zip(
            layer.get_weights(), at_step_1.get_layer(layer.name).get_weights(), strict=True
        ):
            assert np.abs(after - before).max() > 0, layer.name


def test_an_interrupted_init_level_resumes_from_its_own_checkpoint(tmp_path, source_run, monkeypatch, caplog):
    """The --init weights are only the start: the same command continues from the level's checkpoint, and
    does not even load the source again."""
    config = tiny_config(
        tmp_path / "tuned",
        levels=(5,),
        init_from=str(source_run),
        steps=4,
        checkpoint_every=100,
        validate_every=100,
    )
    monkeypatch.setattr(training, "stop_requests", lambda: stop_after(2))
    with pytest.raises(trainer.TrainingInterrupted, match="level 5, step 2/4"):
        training.train(config)
    monkeypatch.undo()
    loaded = []
    load_model = runs.load_model
    monkeypatch.setattr(runs, "load_model", lambda path: loaded.append(path) or load_model(path))
    caplog.set_level("INFO", logger="pynet_tf.trainer")
    training.train(config)
    assert "resumed from" in caplog.text and "at step 2" in caplog.text and loaded == []
    assert [r["step"] for r in records(tmp_path / "tuned", "train", 5)] == [4]


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"arch": "mobile", "levels": None},
            r"arch=pynet, but this run asks for arch=mobile \(--arch mobile\)",
        ),
        ({"base_filters": 4}, r"base_filters=2, but this run asks for base_filters=4 \(--base-filters 4\)"),
        ({"instance_norm": False}, r"instance_norm=True, but .* instance_norm=False \(--no-instance-norm\)"),
        (
            {"instance_norm_level_1": True},
            r"instance_norm_level_1=False, but .* instance_norm_level_1=True \(--instance-norm-level-1\)",
        ),
        (
            {"levels": (4,)},
            r"has no trained level 4 to start level 4 from \(it has level 5\): start --levels at",
        ),
    ],
)
def test_init_refuses_another_network_or_a_missing_level_before_training(
    tmp_path, source_run, change, message
):
    with pytest.raises(train_config.ConfigError, match=f"^--init {re.escape(str(source_run))} .*{message}"):
        training.train(tiny_config(tmp_path / "tuned", init_from=str(source_run), **change))
    assert not (tmp_path / "tuned").exists()


def test_cli_init_mismatch_is_one_line_naming_the_flag(tmp_path, source_run, capsys):
    out = tmp_path / "tuned"
    assert (
        train.main(["--preset", "quick", "--init", str(source_run), "--base-filters", "4", "--out", str(out)])
        == 2
    )
    error = capsys.readouterr().err
    assert (
        error.startswith(f"error: --init {source_run} is a network of base_filters=2")
        and "--base-filters" in error
    )
    assert "Traceback" not in error and not out.exists()


@pytest.fixture
def official_run(tmp_path) -> Path:
    """The shared fixture's official checkpoint imported as a run of level 5 (the cheapest level to load)."""
    if not OFFICIAL.is_dir():
        pytest.skip(f"shared fixture {OFFICIAL} is not there")
    prefix = official_checkpoint(tmp_path / "checkpoint")
    return import_official(prefix, tmp_path / "official", levels=(5,)).root


def test_init_fine_tunes_an_imported_official_run(tmp_path, official_run):
    """Width and norms come from the imported run (not the quick preset's); level 5 starts from its weights,
    so the first validation scores the imported model (same crops, one step at lr 1e-12)."""
    config = tiny_config(
        tmp_path / "tuned",
        levels=(5,),
        init_from=str(official_run),
        base_filters=None,
        instance_norm=None,
        lr=1e-12,
        steps=1,
        validate_every=1,
    )
    assert (config.arch, config.base_filters, config.instance_norm, config.instance_norm_level_1) == (
        "pynet",
        32,
        True,
        False,
    )
    training.train(config)
    imported, tuned = runs.load_model(official_run), runs.load_model(tmp_path / "tuned")
    assert_same_weights(imported, tuned)
    expected = trainer._Validation(config, 5, parse_source(config.data), imported).score()
    record = json.loads((tmp_path / "tuned" / "level_5" / "level.json").read_text())
    # PSNR of outputs 1e-9 apart, well under the 1e-4 dB asked
    assert record["validation"]["psnr"] == pytest.approx(expected["psnr"], abs=1e-4)
    assert records(tmp_path / "tuned", "validation", 5)[0]["psnr"] == pytest.approx(
        expected["psnr"], abs=1e-4
    )
    assert record["init"]["run"] == str(official_run.resolve()) and record["init"]["level"] == 5
    assert record["init"]["imported"] == runs.level_record(official_run)["imported"]
    assert (record["base_filters"], record["instance_norm"], record["instance_norm_level_1"]) == (
        32,
        True,
        False,
    )


def test_the_mobile_isp_trains_distilled_from_a_teacher(tmp_path):
    """--arch mobile (one level) with --teacher: the teacher term is logged, the model saved is the mobile ISP.
    The teacher is any saved model of the level (a wider mobile ISP here: a PyNET level 0 loads the same way
    and only makes the test trace its far larger graph)."""
    keras.utils.set_random_seed(0)
    build_mobile(4).save(tmp_path / "teacher.keras")
    run = tmp_path / "run"
    config = tiny_config(
        run,
        arch="mobile",
        levels=None,
        base_filters=2,
        steps=2,
        teacher=str(tmp_path / "teacher.keras"),
        teacher_weight=0.5,
    )
    assert training.train(config) == run / "level_0"
    record = json.loads((run / "level_0" / "level.json").read_text())
    assert record["arch"] == "mobile" and record["base_filters"] == 2
    assert set(records(run, "train", 0)[0]) >= {"loss", "lab", "teacher"}
    assert json.loads((run / "config.json").read_text())["teacher"] == str(tmp_path / "teacher.keras")
    model = runs.load_model(run)
    assert any(type(layer).__name__ == "DepthToSpace" for layer in model.layers)
    assert model(tf.zeros([1, 32, 32, 4])).shape == (1, 64, 64, 3)
    # a teacher of another level, and another network in the same run folder, are refused up front
    with pytest.raises(
        train_config.ConfigError, match="computes level 0, but this run trains levels \\[5\\]"
    ):
        training.train(tiny_config(tmp_path / "other", levels=(5,), teacher=str(tmp_path / "teacher.keras")))
    with pytest.raises(train_config.ConfigError, match="arch=mobile, not pynet"):
        training.train(tiny_config(run, levels=(5,)))


def test_a_patch_the_teachers_network_cannot_take_is_refused_up_front(tmp_path):
    """--arch mobile --patch 60 (a multiple of 4) with a PyNET teacher (multiples of 16): one ConfigError
    before training, naming both flags and a patch both networks take, not an InputShapeError when the step
    is traced."""
    build_pynet(0, base_filters=2).save(tmp_path / "pynet.keras")  # bare: its network read off its layers
    config = tiny_config(
        tmp_path / "run",
        arch="mobile",
        levels=None,
        base_filters=2,
        patch=60,
        teacher=str(tmp_path / "pynet.keras"),
    )
    expected = r"--patch 60 does not fit --teacher .*pynet.keras, a pynet model .*16.*--patch 64 or a mobile"
    with pytest.raises(train_config.ConfigError, match=expected):
        training.train(config)
    assert not (tmp_path / "run" / "level_0").exists()


def test_prune_trains_to_the_sparsity_and_saves_a_plain_model(tmp_path):
    run = tmp_path / "run"
    training.train(tiny_config(run, levels=(5,), steps=6, prune=0.5))
    model = runs.load_model(run)
    assert not any("prune" in type(layer).__name__.lower() for layer in model.layers)  # stripped
    kernels = [layer.kernel.numpy() for layer in model.layers if hasattr(layer, "kernel")]
    # every kernel at the target: 50% of its weights zero, to the rounding of its size
    for kernel in kernels:
        assert np.mean(kernel == 0) == pytest.approx(0.5, abs=1 / kernel.size + 1e-9)


def cli(*args: str, env: dict | None = None, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pynet_tf.train", *args],
        cwd=ROOT,
        text=True,
        env=quiet_env(**(env or {})),
        **popen,  # the console as a user's shell leaves it
    )


def wait_for_step(run: Path, level: int, step: int, process: subprocess.Popen, timeout: float = 240) -> int:
    """Poll metrics.jsonl until ``level`` logged ``step`` or later; returns the latest step seen."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, "training ended before it could be stopped"
        log = run / "metrics.jsonl"
        seen = [r["step"] for r in map(json.loads, log.read_text().splitlines()[:-1])] if log.exists() else []
        if seen and max(seen) >= step:
            return max(seen)
        time.sleep(0.05)
    raise TimeoutError(f"level {level} did not reach step {step} in {timeout} s")


def test_cli_ctrl_c_saves_and_kill_9_loses_at_most_one_checkpoint_interval(tmp_path):
    """A real process: SIGINT -> checkpoint at that step and exit 130; SIGKILL -> the same command resumes from
    the last checkpoint, at most --checkpoint-every steps back, and finishes."""
    run = tmp_path / "run"
    args = [
        "--preset",
        "quick",
        "--levels",
        "5",
        "--base-filters",
        "2",
        "--patch",
        "32",
        "--batch-size",
        "2",
        "--steps",
        "400",
        "--checkpoint-every",
        "10",
        "--validate-every",
        "1000",
        "--out",
        str(run),
    ]
    process = cli(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_step(run, 5, 20, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    stopped = latest_checkpoint_step(run, 5)
    assert f"stopped at level 5, step {stopped}/400" in stderr and stopped >= 20

    process = cli(*args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = wait_for_step(run, 5, stopped + 40, process)
    process.kill()
    process.wait(timeout=60)
    assert (
        latest_checkpoint_step(run, 5) >= seen - 10
    )  # the loss is logged every 10 steps, as checkpoints are

    process = cli(*args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    assert json.loads((run / "level_5" / "level.json").read_text())["steps"] == 400
    assert "trained:" in output
    assert not NOISE.findall(output), output  # training, validating, saving: none of TensorFlow's chatter


@pytest.mark.parametrize(
    "args, message",
    [
        (["--patch", "40"], "error: --patch 40: .*nearest valid size is 32x32"),
        (["--patch", "256", "--levels", "5"], "error: .*: a \\d+x\\d+ photo, smaller than --patch 256 needs"),
        (["--loss", "mse=1,vgg=1", "--vgg-weights", "/nope/vgg.h5"], "error: .*/nope/vgg.h5"),
        (
            ["--loss", "pynet"],
            "error: .*vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5.*imagenet-vgg-verydeep-19",
        ),
        (["--data", "zrr:/nope"], "error: --data 'zrr:/nope': /nope is not a folder"),
        (["--strategy", "multiworker"], "error: --strategy multiworker needs TF_CONFIG"),
    ],
)
def test_cli_errors_are_one_line_without_a_traceback(tmp_path, args, message):
    process = cli(
        "--preset",
        "quick",
        "--out",
        str(tmp_path / "run"),
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"KERAS_HOME": str(tmp_path / "keras")},
    )
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2
    assert "Traceback" not in stderr
    assert any(re.search(message, line) for line in stderr.splitlines()), stderr
