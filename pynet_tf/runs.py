"""The layout of a training run's folder, and loading the models it holds.

runs/NAME/
  config.json            the resolved configuration of the latest invocation (with VGG source, warnings)
  metrics.jsonl          one JSON object per line: train losses every few steps, validation scores
  tensorboard/level_K/   the same, for TensorBoard
  level_K/
    checkpoints/         tf.train.CheckpointManager: model, optimizer (and its step); resume point
    started.json         the settings the level started with; resuming under others is refused
    model.keras          the trained level (float32, loads with ``load_model``)
    saved_model/         the same as an export-ready SavedModel: signature serving_default, raw -> rgb
    level.json           written last: the level is complete (network, steps, validation, the run
                         ``--init`` started it from if any; or the official checkpoint it was imported
                         from, ``pynet_tf.import_official``)
  final -> level_K       the finest level trained so far

Importing this module does not load TensorFlow (the report reads run names with it); loading a model does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from pynet_tf.nets.pynet.levels import DOWNSAMPLING, level_of_output

if TYPE_CHECKING:
    import tf_keras as keras

MODEL_FILE = "model.keras"
LEVEL_RECORD = "level.json"
DEFAULT_ROOT = Path("runs")
"""Where ``python -m pynet_tf.train`` puts runs unless ``--out`` says otherwise."""
MODEL_FOLDER = re.compile(r"level_\d+|final")
"""The folders of a run that hold a ``model.keras``: ``level_K`` and ``final``."""


class RunError(FileNotFoundError):
    """A run folder or model path that holds no trained model; the message says what was looked for."""


class RunDir:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def metrics_log(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def final(self) -> Path:
        return self.root / "final"

    def level_dir(self, level: int) -> Path:
        return self.root / f"level_{level}"

    def checkpoints(self, level: int) -> Path:
        return self.level_dir(level) / "checkpoints"

    def started(self, level: int) -> Path:
        """The settings the level started with (``TrainConfig.level_settings``): what a resume must match."""
        return self.level_dir(level) / "started.json"

    def model_file(self, level: int) -> Path:
        return self.level_dir(level) / MODEL_FILE

    def saved_model(self, level: int) -> Path:
        return self.level_dir(level) / "saved_model"

    def level_record(self, level: int) -> Path:
        return self.level_dir(level) / LEVEL_RECORD

    def tensorboard(self, level: int) -> Path:
        return self.root / "tensorboard" / f"level_{level}"

    def completed(self, level: int) -> bool:
        """Trained and healthy: a level the collapse guard stopped at (``problem`` in its record) is not."""
        if not (self.level_record(level).is_file() and self.model_file(level).is_file()):
            return False
        return not json.loads(self.level_record(level).read_text()).get("problem")


def resolve_model_path(path: str | Path) -> Path:
    """A ``.keras`` file, a level folder, or a run folder (its ``final`` level) -> the ``.keras`` file."""
    path = Path(path).expanduser()
    candidates = [path, path / MODEL_FILE, path / "final" / MODEL_FILE]
    for candidate in candidates:
        if candidate.is_file() and candidate.suffix == ".keras":
            return candidate
    raise RunError(
        f"{path}: no trained model there; pass a .keras file, a level folder (runs/NAME/level_0) or a run "
        f"folder with a 'final' level (runs/NAME), as written by python -m pynet_tf.train"
    )


def run_of(model_file: str | Path) -> Path | None:
    """The run folder holding ``model_file`` (``runs/NAME`` for ``runs/NAME/level_K/model.keras`` or
    ``.../final/model.keras``); None for a model file outside a run."""
    folder = Path(model_file).parent
    return folder.parent if MODEL_FOLDER.fullmatch(folder.name) and folder.parent.name else None


def newest_run(root: str | Path = DEFAULT_ROOT) -> Path:
    """The most recently modified ``ROOT/*/final``: the exporters' default ``--model``."""
    finals = [path for path in Path(root).glob("*/final") if path.exists()]
    if not finals:
        raise RunError(f"{root}/: no run with a 'final' level; pass --model, or train one first")
    return max(finals, key=lambda path: path.stat().st_mtime)


def load_model(path: str | Path) -> keras.Model:
    """Load a trained PyNET level (see ``resolve_model_path`` for what ``path`` may be)."""
    import tf_keras as keras

    return keras.models.load_model(resolve_model_path(path), compile=False)


def model_level(model: keras.Model) -> int | None:
    """The level a model computes, read off its output size for a 16x16 packed input; None: no level's."""
    import tensorflow as tf

    side = DOWNSAMPLING
    output = model(tf.zeros([1, side, side, 4]), training=False)
    return level_of_output((side, side), tuple(output.shape[1:3]))


def level_record(path: str | Path) -> dict:
    """The ``level.json`` beside a model file (level, base width, training config), or {} if absent."""
    record = resolve_model_path(path).with_name(LEVEL_RECORD)
    return json.loads(record.read_text()) if record.is_file() else {}
