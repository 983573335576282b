"""Shared test set-up: Keras 2 is selected (by importing pynet_tf) before anything loads TensorFlow."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pynet_tf  # noqa: F401  (Keras 2 and the quiet console, before tf_keras loads TensorFlow)

# isort: split
import pytest
import tf_keras as keras

SLOW_MODULES = {
    "test_train.py": 348,
    "test_export.py": 143,
    "test_health.py": 115,
    "test_qat.py": 74,
    "test_import_official.py": 64,
    "test_model.py": 56,
    "test_distribute.py": 54,
    "test_android_bench_run.py": 44,
    "test_report.py": 42,
    "test_onnx.py": 55,
    "test_tensor_files.py": 30,
    "test_op_profile.py": 23,
    "test_align_register.py": 22,
}
"""Test files marked ``slow`` (``make test-fast`` leaves them out), with the seconds their tests took in one
process on CI's kind of machine (``pytest --durations=0``, 2026-12-06; the last four measured later that day,
when ``make test-fast`` had reached 3 minutes)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state, so a failure reproduces."""
    keras.utils.set_random_seed(1234)
