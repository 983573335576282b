"""What a training run does, as one typed record: the named presets, the flags that override them, its JSON.

Presets are plain dicts (``PRESETS``). ``reference`` is the paper's schedule (Ignatov et al. 2020,
train_model.py of the reference PyNET): Adam at 5e-5, 224x224 packed patches (448x448 Bayer, ZRR's patch
size), and per level the steps and batch size below. ``quick`` trains every level in minutes on a 2-core CPU
at base width 4 on the embedded sample photos, without instance norms, with the LAB loss next to MSE
(``lab_mse``: no VGG-19 weights needed). ``cpu`` is ``quick`` at width 8 with two to three times the steps:
about 40 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pynet_tf import losses
from pynet_tf.architectures import ARCHITECTURES, ArchitectureError, architecture, size_rules
from pynet_tf.architectures import DEFAULT as DEFAULT_ARCH
from pynet_tf.nets.mobile import model as mobile
from pynet_tf.nets.pynet.levels import LEVELS, check_level, output_size
from pynet_tf.nets.pynet.model import INITIALIZATIONS
from pynet_tf.runs import DEFAULT_ROOT, RunDir

STRATEGIES = ("auto", "one", "mirrored", "multiworker")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class LevelSchedule:
    steps: int
    batch_size: int
    """Global batch: split across replicas under a distribution strategy."""
    patch: int | None = None
    """This level's packed crop side; None: the run's ``patch``. ``--patch`` sets every level's."""


PRESETS: dict[str, dict[str, Any]] = {
    "reference": {
        "base_filters": 32,
        # the mobile ISP (level 0 only): 3.24M crops, as the six PyNET levels below see
        "mobile": {"schedule": {0: (324000, 10)}, "base_filters": None},
        "patch": 224,
        "lr": 5e-5,
        "loss": "pynet",
        # level: (steps, batch size)
        "schedule": {
            5: (5000, 50),
            4: (5000, 50),
            3: (20000, 48),
            2: (20000, 18),
            1: (35000, 12),
            0: (100000, 10),
        },
        "checkpoint_every": 1000,
        "validate_every": 1000,
        # A full-width level-0 step (batch 1) on a 2-core CPU with SameConv2D's gradients: 32.5 s without XLA,
        # 62.9 s with it (TF's own gradients: 206 s and 118 s; benchmarks/train_step.py, one loaded run).
        "jit": False,
    },
    "quick": {
        "base_filters": 4,
        "init": "he",
        # Instance norms subtract each crop's mean from every feature map, and with it the scene's colour:
        # level 5 alone, 1000 steps of lab_l1, reached 18.1 dB with them and 23.1 dB without (docs/design.md, note 4).
        "instance_norm": False,
        "patch": 64,
        "lr": 1e-3,
        # a few hundred steps of batch 2-8 at 1e-3 end wherever the last noisy step left them (level 0 once
        # fell from 19.9 to 12.6 dB in its last 50 steps); decayed, each level settles
        "lr_schedule": "cosine",
        # level 0's two new layers once turned level 1's colour grey while they were still random (20.66 dB
        # held out); holding the grown-from layers for the first quarter kept it (docs/design.md, note 7)
        "new_layers_first": 0.25,
        "loss": "lab_mse",
        # level: (steps, batch size[, patch]). Colour is learnt where it is cheap, at the coarse levels on
        # 64x64 crops (a 1000-step level 5 takes 32 s; doubling levels 5-3 lifted level 5 from 23.1 to 26.1 dB
        # and the held-out result by 0.2 dB). Level 4's new head must learn that colour again: at 1200 steps it
        # ended 2.9 dB under level 5, at 2400 1.2 dB. Levels 2-0 learn detail on the colour they warm-start
        # from, from 32x32 crops, four times as many in the same time: levels 1 and 0 at 64x64 (200 x 4,
        # 600 x 2) gave 21.93 dB held out, at 32x32 (400 x 16, 1200 x 8) 23.44 dB in less time (docs/design.md, note 8).
        "schedule": {
            5: (2000, 8),
            4: (2400, 8),
            3: (800, 8),
            2: (300, 16, 32),
            1: (400, 16, 32),
            0: (1200, 8, 32),
        },
        "checkpoint_every": 100,
        "validate_every": 100,
        # At small widths XLA was slower per step here (width 8: 22.5 against 17.7 s), and a few hundred
        # steps would not repay its compiling anyway.
        "jit": False,
        # The mobile ISP has level 0 only, at its own default width (the quick preset's width 4 is PyNET's),
        # trained about as long as PyNET's six levels above (9 min here); 2400 steps gave 24.37 dB held out
        "mobile": {"schedule": {0: (4800, 8)}, "base_filters": None},
    },
}
# ``cpu``: the quick preset at twice the width (level 1's decoder has 8 maps, not 4) and two to three times
# the steps, under an hour of training on a 2-core CPU (docs/usage.md, "Presets"). Half the rate: at 1e-3 its
# level 0 diverged (validation 24.0 dB at step 1200, loss 2 -> 45 at step 1430, saturated). Levels 2-0 see
# 64x64 crops, as many pixels a step as quick's 32x32 ones: at width 8 the 32x32 crops (level 2's input
# 8x8) let the coarse levels' colour drift, 21.76 dB held out against 24.56 (docs/design.md, note 10).
PRESETS["cpu"] = PRESETS["quick"] | {
    "base_filters": 8,
    "lr": 5e-4,
    "schedule": {5: (4000, 8), 4: (4800, 8), 3: (2000, 8), 2: (800, 4), 1: (1000, 4), 0: (3600, 2)},
    "checkpoint_every": 200,
    "validate_every": 200,
    "mobile": {"schedule": {0: (14400, 8)}, "base_filters": None},
}


class ConfigError(ValueError):
    """A flag value or combination training cannot run with; the message names the flag."""


LEVEL_SETTINGS = (
    "arch",
    "data",
    "base_filters",
    "init",
    "instance_norm",
    "instance_norm_level_1",
    "init_from",
    "loss",
    "lab_alpha",
    "vgg_weights",
    "vgg_layer",
    "allow_random_vgg",
    "lr",
    "lr_schedule",
    "new_layers_first",
    "mixed_precision",
    "seed",
    "teacher",
    "teacher_weight",
    "prune",
)
"""The ``TrainConfig`` fields a level's training depends on besides its schedule (``level_settings``)."""


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "reference"
    arch: str = DEFAULT_ARCH
    """The network (``pynet_tf.architectures``); the preset's ``<arch>`` entry overrides its values for it."""
    data: str = "samples"
    levels: tuple[int, ...] = LEVELS
    """Coarsest first: each level warm-starts from the one before it."""
    base_filters: int = 32
    init: str = "reference"
    """PyNET's kernel initialisation (``model.INITIALIZATIONS``, flag ``--kernel-init``): the reference's std
    0.01, or He's."""
    instance_norm: bool = True
    """PyNET's instance norms in levels 2-5 (the reference's); they remove each crop's absolute colour."""
    instance_norm_level_1: bool = False
    """Instance norms in level 1's 9x9 blocks too: an option of the official code (its checkpoints of that
    variant have 501 variables, ``import_official``), off in the paper's model."""
    init_from: str | None = None
    """``--init RUN``: a run of the same network (``NETWORK_FIELDS``) whose trained weights of the first level
    in ``levels`` that level starts from, every layer (fine-tuning; ``check_init``). Later levels warm-start
    from the level before them, as without it."""
    loss: str = "pynet"
    lab_alpha: float = losses.LAB_ALPHA
    vgg_weights: str | None = None
    vgg_layer: str = "relu5_4"
    allow_random_vgg: bool = False
    schedule: dict[int, LevelSchedule] = field(default_factory=dict)
    patch: int = 224
    """Packed input side of a training crop, at every level whose schedule names none (``patch_at``)."""
    lr: float = 5e-5
    lr_schedule: str = "constant"
    """``constant`` (the reference's), or ``cosine``: each level's rate decays to 0 over its steps."""
    new_layers_first: float = 0.0
    """The share of each level's first steps in which only its new layers (those the coarser level lacks: the
    new decoder and output head) learn, while the layers it grew from hold: gradients from a random new head
    would otherwise rewrite what they learnt (linear probing then fine-tuning, Kumar et al., ICLR 2022)."""
    out: str = "runs/reference"
    strategy: str = "auto"
    mixed_precision: bool = False
    jit: bool = True
    seed: int = 0
    checkpoint_every: int = 1000
    validate_every: int = 1000
    validation_batches: int = 4
    """Batches of the test split scored at each validation (the same crops every time)."""
    teacher: str | None = None
    """A trained model (run, level folder or .keras) whose outputs the loss also fits: distillation."""
    teacher_weight: float = 1.0
    """The teacher term's weight: loss(target, out) + teacher_weight * loss(teacher(raw), out)."""
    prune: float | None = None
    """Magnitude pruning to this fraction of zero weights per kernel over each level (``pynet_tf.pruning``)."""

    def patch_at(self, level: int) -> int:
        """The packed crop side level ``level`` trains and validates on."""
        return self.schedule[level].patch or self.patch

    def level_settings(self, level: int) -> dict[str, Any]:
        """Every setting that shapes what level ``level`` learns, step by step: a level stopped part-way may
        resume only under the same values (``runs.RunDir.started``), or its record would be untrue. Left out:
        where and how fast it runs (``out``, ``strategy``, ``jit``), when it checkpoints and validates, and
        which other levels this invocation trains."""
        schedule = self.schedule[level]
        shaping = {name: getattr(self, name) for name in LEVEL_SETTINGS}
        return shaping | {
            "steps": schedule.steps,
            "batch_size": schedule.batch_size,
            "patch": self.patch_at(level),
        }

    def to_json(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["schedule"] = {str(level): dataclasses.asdict(s) for level, s in self.schedule.items()}
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> TrainConfig:
        record = dict(record)
        record["levels"] = tuple(record["levels"])
        record["schedule"] = {int(level): LevelSchedule(**s) for level, s in record["schedule"].items()}
        return cls(**record)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        return cls.from_json(json.loads(Path(path).read_text()))


def parse_levels(text: str) -> tuple[int, ...]:
    """``5-0`` (a range, either direction) or ``3`` -> levels coarsest first."""
    first, _, last = text.partition("-")
    try:
        bounds = [int(first)] + ([int(last)] if last else [])
    except ValueError:
        raise ConfigError(f"--levels {text!r}: expected a level 0..5 or a range such as 5-0") from None
    for level in bounds:
        if level not in LEVELS:
            raise ConfigError(f"--levels {text!r}: levels are 0..5 (0 = full resolution), got {level}")
    high, low = max(bounds), min(bounds)
    return tuple(range(high, low - 1, -1))


NETWORK_FIELDS = {
    "arch": "--arch",
    "base_filters": "--base-filters",
    "instance_norm": "--instance-norm",
    "instance_norm_level_1": "--instance-norm-level-1",
}
"""The fields that say which network a run is, and their flags: ``--init RUN`` takes them from RUN where no
flag sets them, and refuses a flag that asks for another value."""


@dataclass(frozen=True)
class InitRun:
    """The run ``--init`` names, as its level records describe it."""

    path: Path
    """Resolved."""
    records: dict[int, dict]
    """Its completed levels' ``level.json`` records, by level."""

    def network(self, level: int | None = None) -> dict[str, Any]:
        """``NETWORK_FIELDS``' values of ``level`` (default: its finest), as recorded: the record's own (an
        imported level's), its training config's, or for runs from before a field existed, its default."""
        record = self.records[min(self.records) if level is None else level]
        return {
            name: record.get(name, record.get("config", {}).get(name, getattr(TrainConfig, name)))
            for name in NETWORK_FIELDS
        }

    def provenance(self, level: int) -> dict[str, Any]:
        """What a run started from it records (``init`` in config.json and level.json): the run, the level,
        and where that level came from (an official checkpoint, or another ``--init``) if it says."""
        record = self.records[level]
        return {
            "run": str(self.path),
            "level": level,
            **{key: record[key] for key in ("imported", "init") if record.get(key) is not None},
        }


def init_run(path: str | Path) -> InitRun:
    """The run folder ``--init`` names, with its completed levels; ``ConfigError`` if it holds none."""
    run = RunDir(Path(path).expanduser().resolve())
    if not run.root.is_dir():
        raise ConfigError(
            f"--init {path}: no such run folder; pass a run written by pynet_tf.train or "
            "pynet_tf.import_official (runs/NAME)"
        )
    records = {
        level: json.loads(run.level_record(level).read_text()) for level in LEVELS if run.completed(level)
    }
    if not records:
        hint = (
            f" ({path} is a level folder: pass its run, {run.root.parent})"
            if (run.root / "level.json").is_file()
            else ""
        )
        raise ConfigError(
            f"--init {path}: holds no trained level{hint}; pass a run folder written by "
            "pynet_tf.train or pynet_tf.import_official (runs/NAME)"
        )
    return InitRun(run.root, records)


def resolve(preset: str = "reference", **overrides: Any) -> TrainConfig:
    """The preset's values, then every override that is not None; ``steps`` / ``batch_size`` / ``patch``
    apply to all levels. With ``init_from`` (``--init RUN``), the network fields no override sets are RUN's.
    Checks the result (see ``validate``)."""
    if preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r}: presets are {', '.join(PRESETS)}")
    if overrides.get("init_from") is not None:
        init = init_run(overrides["init_from"])
        asked = overrides.get("levels")
        network = init.network(asked[0] if asked and asked[0] in init.records else None)
        overrides |= {name: value for name, value in network.items() if overrides.get(name) is None}
    arch_name = overrides.get("arch") or DEFAULT_ARCH
    try:
        arch = architecture(arch_name)
    except ArchitectureError as error:
        raise ConfigError(str(error)) from None
    settings = {key: value for key, value in PRESETS[preset].items() if key not in ARCHITECTURES}
    settings |= PRESETS[preset].get(arch.name, {})
    if settings["base_filters"] is None:
        settings["base_filters"] = arch.default_width
    settings.setdefault("levels", arch.levels)
    values = {key: value for key, value in settings.items() if key != "schedule"}
    schedule = {level: LevelSchedule(*pair) for level, pair in settings["schedule"].items()}
    steps, batch_size, patch = (overrides.pop(key, None) for key in ("steps", "batch_size", "patch"))
    schedule = {
        level: LevelSchedule(
            s.steps if steps is None else steps,
            s.batch_size if batch_size is None else batch_size,
            None if patch is not None else s.patch,
        )
        for level, s in schedule.items()
    }
    if patch is not None:
        values["patch"] = patch
    values.update({key: value for key, value in overrides.items() if value is not None})
    values.setdefault("out", str(DEFAULT_ROOT / preset))
    config = TrainConfig(preset=preset, schedule=schedule, **values)
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    """Everything that can be checked before a model is built, so a bad flag fails in a second, not an hour in."""
    arch = architecture(config.arch)
    missing = [level for level in config.levels if level not in arch.levels]
    if missing:
        raise ConfigError(
            f"--levels: the {arch.name} network has levels {arch.levels}, not {missing} (--arch "
            f"{arch.name}: {arch.description})"
        )
    positive = {
        "--base-filters": config.base_filters,
        "--checkpoint-every": config.checkpoint_every,
        "--validate-every": config.validate_every,
    }
    for flag, value in positive.items():
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{flag} must be a positive integer, got {value!r}")
    for level in config.levels:
        check_level(level)
        schedule = config.schedule[level]
        for flag, value in (("--steps", schedule.steps), ("--batch-size", schedule.batch_size)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{flag} must be a positive integer, got {value!r} (level {level})")
    if not config.lr > 0:
        raise ConfigError(f"--lr must be positive, got {config.lr}")
    if not 0.0 <= config.new_layers_first < 1.0:
        raise ConfigError(f"--new-layers-first must be a fraction in [0, 1), got {config.new_layers_first}")
    if config.lr_schedule not in LR_SCHEDULES:
        raise ConfigError(f"--lr-schedule {config.lr_schedule!r}: choose one of {', '.join(LR_SCHEDULES)}")
    if config.init not in INITIALIZATIONS:
        raise ConfigError(f"--kernel-init {config.init!r}: choose one of {', '.join(INITIALIZATIONS)}")
    if config.strategy not in STRATEGIES:
        raise ConfigError(f"--strategy {config.strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if config.prune is not None and not 0.0 < config.prune < 1.0:
        raise ConfigError(f"--prune is the fraction of each kernel pruned, in (0, 1); got {config.prune}")
    if not config.teacher_weight > 0:
        raise ConfigError(f"--teacher-weight must be > 0, got {config.teacher_weight}")
    spec = losses.parse_loss(config.loss)
    for level in config.levels:
        patch = config.patch_at(level)
        if not isinstance(patch, int) or patch < 1:
            raise ConfigError(f"--patch must be a positive integer, got {patch!r} (level {level})")
        try:
            arch.validate_input_shape(patch, patch)
        except ValueError as error:
            raise ConfigError(f"--patch {patch}: {error} (level {level})") from None
        height, width = output_size(level, patch, patch)
        losses.check_loss_fits(spec.weights(level), height, width, f"level {level} at --patch {patch}")
    if not 0.0 <= config.lab_alpha <= 1.0:
        raise ConfigError(f"--lab-alpha must be in [0, 1], got {config.lab_alpha}")
    if config.init_from is not None:
        check_init(config)


def check_init(config: TrainConfig) -> InitRun:
    """``--init RUN`` fits ``config``: RUN is the same network (``NETWORK_FIELDS``) and has trained the first
    level the config trains, and is not its ``--out``. Returns RUN."""
    init = init_run(config.init_from)
    first = config.levels[0]
    network = init.network(first if first in init.records else None)
    for name, flag in NETWORK_FIELDS.items():
        theirs, ours = network[name], getattr(config, name)
        if theirs != ours:
            raise ConfigError(
                f"--init {config.init_from} is a network of {name}={theirs}, but this run asks for "
                f"{name}={ours} ({_flag(flag, ours)}): leave {flag} out to take the run's value, or --init a "
                f"run of {name}={ours}"
            )
    if first not in init.records:
        have = ", ".join(map(str, sorted(init.records, reverse=True)))
        raise ConfigError(
            f"--init {config.init_from} has no trained level {first} to start level {first} from (it has "
            f"level{'s' if len(init.records) > 1 else ''} {have}): start --levels at one of those, or --init a "
            f"run with level {first}"
        )
    if Path(config.out).expanduser().resolve() == init.path:
        raise ConfigError(
            f"--init {config.init_from} and --out {config.out} are the same run: fine-tune into another --out"
        )
    return init


def _flag(flag: str, value: Any) -> str:
    """How ``flag`` sets ``value`` on the command line: ``--base-filters 4``, ``--no-instance-norm``."""
    if isinstance(value, bool):
        return flag if value else f"--no-{flag.removeprefix('--')}"
    return f"{flag} {value}"


def add_training_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """The training flags (all but those in ``skip``), shared with ``pynet_tf.study``. Defaults are None: an
    unset flag keeps the preset's value (``resolve``)."""
    flags: list[tuple[str, dict]] = [
        ("--data", {"default": "samples", "help": "samples (default) | zrr:DIR | pairs:DIR | photos:DIR"}),
        ("--levels", {"type": _levels, "help": "a range such as 5-0 (default) or one level"}),
        (
            "--preset",
            {
                "default": "reference",
                "choices": list(PRESETS),
                "help": "reference: the paper's schedule; quick: minutes on a CPU; cpu: an hour on a "
                "CPU (default: reference)",
            },
        ),
        (
            "--arch",
            {
                "choices": list(ARCHITECTURES),
                "help": "network: pynet (default) | mobile (pynet_tf/nets/mobile/)",
            },
        ),
        (
            "--base-filters",
            {
                "type": int,
                "help": "width: PyNET's level 1 (paper: 32); the mobile ISP's full "
                f"resolution (default {mobile.DEFAULT_WIDTH})",
            },
        ),
        (
            "--kernel-init",
            {
                "dest": "init",
                "choices": list(INITIALIZATIONS),
                "help": "PyNET's kernel initialisation: reference (std 0.01, the paper's) or he "
                "(scaled to each layer's fan-in)",
            },
        ),
        (
            "--instance-norm",
            {
                "action": argparse.BooleanOptionalAction,
                "default": None,
                "help": "PyNET's instance norms in levels 2-5 (the paper's; off in the quick preset)",
            },
        ),
        (
            "--instance-norm-level-1",
            {
                "action": argparse.BooleanOptionalAction,
                "default": None,
                "help": "instance norms in level 1's 9x9 blocks too (an option of the "
                "official code; off by default)",
            },
        ),
        (
            "--init",
            {
                "dest": "init_from",
                "metavar": "RUN",
                "help": "fine-tune: the first level trained starts from RUN's weights of that level (a run "
                "of the same network, e.g. one pynet_tf.import_official wrote); width and norms "
                "default to RUN's",
            },
        ),
        (
            "--loss",
            {
                "help": f"a preset ({', '.join(losses.PRESETS)}) or term=weight,... ({', '.join(losses.TERMS)})"
            },
        ),
        (
            "--lab-alpha",
            {"type": float, "help": f"weight of MS-SSIM in the LAB loss (default {losses.LAB_ALPHA})"},
        ),
        (
            "--vgg-weights",
            {"help": "VGG-19 weights: Keras' *_notop.h5 or MatConvNet's imagenet-vgg-verydeep-19.mat"},
        ),
        ("--vgg-layer", {"help": "VGG-19 layer of the content loss (default relu5_4)"}),
        (
            "--allow-random-vgg",
            {"action": "store_true", "default": None, "help": "random VGG weights (smoke tests only)"},
        ),
        (
            "--batch-size",
            {"type": int, "help": "global batch size at every level (default: the preset's per level)"},
        ),
        ("--steps", {"type": int, "help": "steps at every level (default: the preset's per level)"}),
        (
            "--patch",
            {
                "type": int,
                "help": f"packed training crop side at every level (default: the preset's per "
                f"level), {size_rules()} as --arch and --teacher's network are",
            },
        ),
        ("--lr", {"type": float, "help": "Adam learning rate"}),
        (
            "--lr-schedule",
            {
                "choices": LR_SCHEDULES,
                "help": "constant (reference) or cosine: decayed to 0 over each level's steps",
            },
        ),
        (
            "--new-layers-first",
            {
                "type": float,
                "help": "share of each level's steps in which only its new layers "
                "learn (0: none, the reference's; quick: 0.25)",
            },
        ),
        ("--out", {"help": "run folder (default runs/PRESET); an existing run is continued"}),
        ("--strategy", {"choices": STRATEGIES, "help": "tf.distribute strategy (default auto)"}),
        ("--mixed-precision", {"action": "store_true", "default": None, "help": "float16 compute (GPUs)"}),
        (
            "--jit",
            {
                "action": argparse.BooleanOptionalAction,
                "default": None,
                "help": "XLA-compile the training step",
            },
        ),
        ("--seed", {"type": int}),
        ("--checkpoint-every", {"type": int, "help": "steps between checkpoints"}),
        ("--validate-every", {"type": int, "help": "steps between validations"}),
        (
            "--teacher",
            {
                "help": "distillation: a trained model (run, level folder, .keras) of the level trained, "
                "whose outputs the loss also fits"
            },
        ),
        ("--teacher-weight", {"type": float, "help": "weight of the teacher term (default 1)"}),
        (
            "--prune",
            {
                "type": float,
                "help": "magnitude pruning (tfmot) to this sparsity per kernel, e.g. 0.5: "
                "ramped over 80%% of each level's steps, stripped before saving",
            },
        ),
    ]
    for flag, options in flags:
        if flag not in skip:
            parser.add_argument(flag, **options)


def _levels(text: str) -> tuple[int, ...]:
    try:
        return parse_levels(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
