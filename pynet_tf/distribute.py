"""``--strategy``: which tf.distribute strategy trains the model, and who writes the run's files.

    auto         several GPUs -> mirrored, otherwise the default (one device)
    one          one device: the first GPU, or the CPU
    mirrored     every local GPU (or every logical CPU device, which is how the tests run it)
    multiworker  MultiWorkerMirroredStrategy over the cluster in TF_CONFIG (one process per machine)

Under multi-worker training every worker runs the same steps and takes part in every checkpoint save (the
save is a collective), but only the chief writes into the run folder; the others write to a scratch folder
that is deleted afterwards, as TensorFlow's multi-worker guide prescribes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import tensorflow as tf


class StrategyError(RuntimeError):
    """The requested strategy cannot run here; the message says why and what to change."""


@dataclass(frozen=True)
class Placement:
    name: str
    """What runs: default, one, mirrored or multiworker (``auto`` resolved)."""
    strategy: tf.distribute.Strategy
    is_chief: bool
    worker_index: int

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync


def make_strategy(name: str) -> Placement:
    """Call before anything else touches TensorFlow's devices: multi-worker collectives are configured at
    start-up, and listing devices starts the runtime."""
    if name == "multiworker":
        return _multiworker()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return Placement(name, tf.distribute.get_strategy(), True, 0)
    if name == "one":
        return Placement(name, tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0"), True, 0)
    if name == "mirrored":
        devices = [device.name for device in gpus or tf.config.list_logical_devices("CPU")]
        return Placement(name, tf.distribute.MirroredStrategy(devices), True, 0)
    raise StrategyError(f"--strategy {name!r}: choose auto, one, mirrored or multiworker")


def _multiworker() -> Placement:
    if "TF_CONFIG" not in os.environ:
        raise StrategyError(
            "--strategy multiworker needs TF_CONFIG describing the cluster, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}, '
            "set in the environment of each worker"
        )
    try:
        task = json.loads(os.environ["TF_CONFIG"])["task"]
        kind, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise StrategyError(f"TF_CONFIG is not valid JSON with a task type and index: {error}") from None
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
        )
    )
    # The chief is "chief" if the cluster names one, otherwise worker 0.
    has_chief = "chief" in json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
    is_chief = kind == "chief" or (not has_chief and kind == "worker" and index == 0)
    return Placement("multiworker", strategy, is_chief, index)
