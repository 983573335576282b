"""The collapse guard: its two tests on known images, and training runs that must and must not trip it."""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from test_train import records, tiny_config

from pynet_tf import health, runs, training
from pynet_tf.data.pipeline import PipelineOptions, make_dataset
from pynet_tf.data.sources import parse_source


def test_contrast_is_0_for_a_constant_image_and_1_for_the_target_itself():
    target = tf.constant(np.random.default_rng(0).random((2, 16, 16, 3)), tf.float32)
    assert health.contrast(target, target) == pytest.approx(1.0, abs=1e-6)  # float32 round trip
    assert health.contrast(tf.fill([2, 16, 16, 3], 0.5), target) == 0.0
    # a copy with half the contrast around its mean: exactly half the standard deviation
    half = 0.5 * target + 0.25
    assert health.contrast(half, target) == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize(
    "scores, warm, expected",
    [
        ({"psnr": 20.0, "contrast": 0.8, "saturated": 0.01}, 21.0, None),
        ({"psnr": 20.0, "contrast": 0.8, "saturated": 0.01}, None, None),
        ({"psnr": 20.0, "contrast": 0.09, "saturated": 0.0}, None, r"^flat output: spatial contrast 0.090"),
        ({"psnr": 9.0, "contrast": 5.3, "saturated": 0.51}, None, r"^saturated output: 51% of its values"),
        (
            {"psnr": 14.9, "contrast": 0.5, "saturated": 0.0},
            21.0,
            r"^collapsed: PSNR 14.90 dB, more than 6 dB below the 21.00",
        ),
        ({"psnr": 15.1, "contrast": 0.5, "saturated": 0.0}, 21.0, None),  # 5.9 dB below: hard, not collapsed
        ({"psnr": 5.5, "contrast": 0.0, "saturated": 1.0}, 16.3, r"flat output.*; saturated.*; collapsed"),
    ],
)
def test_problem_names_each_failed_test(scores, warm, expected):
    found = health.problem(scores, warm)
    assert (found is None) if expected is None else (found is not None and re.search(expected, found))


def test_an_absurd_learning_rate_collapses_and_the_run_stops_before_it_is_final(tmp_path):
    """lr 10 pins the output tanh at its ends (a salt-and-pepper image, PSNR ~6 dB): the guard must catch it
    and the run must not present it as trained (no 'final' link, not 'completed', the same command fails
    the same way)."""
    run = tmp_path / "run"
    config = tiny_config(run, levels=(2,), patch=32, steps=6, validate_every=3, lr=10.0)
    with pytest.raises(
        health.TrainingCollapsedError, match=r"level 2 is not a working ISP \(saturated output"
    ):
        training.train(config)
    record = json.loads((run / "level_2" / "level.json").read_text())
    assert (
        record["problem"].startswith("saturated")
        and record["validation"]["saturated"] > health.SATURATED_SHARE
    )
    notes = records(run, "health", 2)
    assert notes and notes[0]["text"].startswith("saturated output")
    assert not os.path.lexists(run / "final") and not runs.RunDir(run).completed(2)
    with pytest.raises(health.TrainingCollapsedError):
        training.train(config)  # resumed at its last step: scored again, refused again


def test_a_tiny_pynet_learns_a_non_flat_image_and_passes_the_guard(tmp_path):
    """A few dozen steps at width 2 must lower the loss and give an output with the target's structure: the
    test that would have caught the flat grey quick model."""
    run = tmp_path / "run"
    training.train(
        tiny_config(
            run,
            levels=(2,),
            patch=32,
            steps=40,
            validate_every=20,
            lr=2e-3,
            batch_size=4,
            loss="mse=1",
            validation_batches=2,
        )
    )
    losses = [r["loss"] for r in records(run, "train", 2)]
    assert losses[-1] < 0.7 * losses[0], losses
    record = json.loads((run / "level_2" / "level.json").read_text())
    assert record["problem"] is None and not records(run, "health", 2)
    assert record["validation"]["contrast"] > 2 * health.FLAT_CONTRAST
    model = runs.load_model(run)
    raw, target = next(
        iter(
            make_dataset(
                parse_source("samples"),
                "test",
                PipelineOptions(level=2, patch=32, batch_size=2, augment=False),
            )
        )
    )
    assert health.contrast(tf.clip_by_value(model(raw), 0, 1), target) > 2 * health.FLAT_CONTRAST
