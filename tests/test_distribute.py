"""tf.distribute: mirrored training on two logical CPU devices, and two workers on loopback.

Each runs in its own process: logical devices must be configured before TensorFlow initialises, and a
multi-worker cluster is several processes by nature.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
# instance norms: a 3-step model this small has a non-flat output with them, as the collapse guard asks
TINY = [
    "--preset",
    "quick",
    "--levels",
    "5",
    "--base-filters",
    "2",
    "--patch",
    "32",
    "--batch-size",
    "4",
    "--steps",
    "3",
    "--checkpoint-every",
    "2",
    "--validate-every",
    "3",
    "--instance-norm",
]

MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import pynet_tf
    import numpy as np, tensorflow as tf, tf_keras as keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from pynet_tf import train, trainer
    from pynet_tf.distribute import make_strategy
    from pynet_tf.losses import Loss
    from pynet_tf.nets.pynet.model import build_pynet
    from pynet_tf.train_config import resolve

    def one_sgd_step(strategy):
        # SGD, not Adam: Adam's first step is lr * sign(gradient), blind to a mis-scaled gradient
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = build_pynet(5, base_filters=2)
            optimizer = keras.optimizers.SGD(0.5)
        initial = [w.numpy() for w in model.trainable_weights]
        step = trainer._make_step(model, optimizer, Loss({"mse": 1.0}), strategy, jit=False, mixed=False)
        rng = np.random.default_rng(1)
        batch = (rng.random((4, 32, 32, 4), np.float32), rng.random((4, 2, 2, 3), np.float32))
        dataset = tf.data.Dataset.from_tensors(batch)
        total, _ = step(next(iter(strategy.experimental_distribute_dataset(dataset))))
        return float(total), [w.numpy() for w in model.trainable_weights], initial

    mirrored = make_strategy("mirrored")
    single_loss, single, initial = one_sgd_step(make_strategy("default").strategy)
    mirrored_loss, replicated, _ = one_sgd_step(mirrored.strategy)
    difference = max(float(np.abs(a - b).max()) for a, b in zip(single, replicated))
    update = max(float(np.abs(a - b).max()) for a, b in zip(single, initial))
    train.train(resolve("quick", **json.loads(sys.argv[1])))
    print(json.dumps({"replicas": mirrored.replicas, "loss": [single_loss, mirrored_loss],
                      "max_weight_difference": difference, "max_update": update}))
    """
)


def test_mirrored_on_two_cpu_devices_matches_one_device_and_trains(tmp_path):
    run = tmp_path / "run"
    config = {
        "levels": [5],
        "base_filters": 2,
        "patch": 32,
        "batch_size": 4,
        "steps": 3,
        "checkpoint_every": 2,
        "validate_every": 3,
        "strategy": "mirrored",
        "out": str(run),
        "instance_norm": True,
    }
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, json.dumps(config)],
        check=False,
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["replicas"] == 2
    # Two replicas of 2 images and one device with all 4 compute the same mean loss and the same update: the
    # per-replica loss is divided by the replica count before the gradients are summed. A mis-scaled gradient
    # would be off by half the update (measured update 0.38); float32 summation order leaves 2e-5 of it.
    assert measured["loss"][0] == pytest.approx(measured["loss"][1], rel=1e-5)
    assert measured["max_weight_difference"] < 1e-3 * measured["max_update"]
    record = json.loads((run / "config.json").read_text())
    assert record["replicas"] == 2 and record["strategy"] == "mirrored"
    assert json.loads((run / "level_5" / "level.json").read_text())["steps"] == 3


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_loopback_train_together_and_only_the_chief_writes(tmp_path):
    run = tmp_path / "run"
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        (tmp_path / f"scratch{index}").mkdir()
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pynet_tf.train",
                    *TINY,
                    "--strategy",
                    "multiworker",
                    "--out",
                    str(run),
                ],
                cwd=ROOT,
                env={**ENV, "TF_CONFIG": tf_config, "TMPDIR": str(tmp_path / f"scratch{index}")},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    try:
        outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]
    record = json.loads((run / "config.json").read_text())
    assert record["strategy"] == "multiworker" and record["replicas"] == 2
    assert json.loads((run / "level_5" / "level.json").read_text())["steps"] == 3
    # the other worker took part in the checkpoint saves in its scratch folder, and cleaned it up
    assert not any((tmp_path / "scratch1").rglob("*.index"))
