"""Shared test set-up: Keras 2 is selected (by importing pynet_tf) before anything loads TensorFlow."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
import tf_keras as keras

import pynet_tf  # noqa: F401


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state, so a failure reproduces."""
    keras.utils.set_random_seed(1234)
