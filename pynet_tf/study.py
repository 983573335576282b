"""The loss study as one command: the same PyNET under the same budget, trained once per loss, one table.

    python -m pynet_tf.study --preset quick --losses "lab;mse=100" --alphas 0.5,0.95
    python -m pynet_tf.study --preset reference --data zrr:/data/zrr --vgg-weights vgg19_..._notop.h5 \\
        --losses pynet,lab,lab_vgg --alphas 0.5,0.95

This repeats the experiment pynet-tf started from (PyNET's losses against the LAB loss and LAB + VGG-19, 21.19
against 22.02 dB on ZRR). Every variant gets the preset's schedule and the same flags (data, levels, width,
steps, seed); only ``--loss`` and, for the α grid, ``--lab-alpha`` differ. Each variant is an ordinary run in
``OUT/<variant>`` (so an interrupted study resumes where it stopped), evaluated on the same test split by
``pynet_tf.evaluate``. The study writes ``study.md`` and ``study.json`` (variant -> PSNR, SSIM, MS-SSIM, ΔE2000,
with the classical ISP on the same inputs as a reference row) and ``grid.png``, the same crop of each test
image from every variant.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
import tf_keras as keras

from pynet_tf import atomic, losses, runs, train_config, training, vgg
from pynet_tf.cli import command_parser, image_size
from pynet_tf.data.photoio import read_photo
from pynet_tf.data.sources import DataSourceError
from pynet_tf.evaluation import IMAGES_FOLDER, EvaluationError, EvaluationResult, evaluate
from pynet_tf.train_config import ConfigError
from pynet_tf.trainer import TrainingDivergedError, TrainingInterrupted

DEFAULT_LOSSES = ("pynet", "lab", "lab_vgg")
METRICS = (
    ("psnr", "PSNR (dB)", max),
    ("ssim", "SSIM", max),
    ("ms_ssim", "MS-SSIM", max),
    ("delta_e2000", "ΔE2000", min),
)
GRID_IMAGES = 3
GRID_CROP = 128
"""Side of the crops in grid.png, in output pixels (the centre of each test image)."""


@dataclass(frozen=True)
class Variant:
    name: str
    """Folder name and table label: the loss, plus ``@alpha`` for the α grid."""
    loss: str
    lab_alpha: float


def variants(loss_specs: list[str], alphas: list[float]) -> list[Variant]:
    """One variant per loss, then the LAB loss at each α of the grid (the default α is the ``lab`` variant)."""
    found = [Variant(spec, spec, losses.LAB_ALPHA) for spec in loss_specs]
    found += [Variant(f"lab@{alpha:g}", "lab", alpha) for alpha in alphas if alpha != losses.LAB_ALPHA]
    names = [v.name for v in found]
    if len(set(names)) != len(names):
        raise ConfigError(f"--losses/--alphas name a variant twice: {', '.join(names)}")
    return found


def run_study(
    out: str | Path,
    study_variants: list[Variant],
    *,
    preset: str,
    max_size: tuple[int, int] | None = None,
    **overrides,
) -> dict:
    """Train and evaluate every variant (resuming any already started), then write the table and the grid."""
    out = atomic.check_output(out)
    configs = {
        v.name: train_config.resolve(
            preset, loss=v.loss, lab_alpha=v.lab_alpha, out=str(out / _folder(v.name)), **overrides
        )
        for v in study_variants
    }  # every flag checked before the first variant trains
    _check_vgg(configs)
    results: dict[str, EvaluationResult] = {}
    for variant in study_variants:
        config = configs[variant.name]
        print(
            f"\n=== {variant.name}: --loss {variant.loss} --lab-alpha {variant.lab_alpha:g} -> {config.out}"
        )
        training.train(config)
        keras.backend.clear_session()
        results[variant.name] = evaluate(
            config.out,
            config.data,
            out=Path(config.out) / "eval",
            max_size=max_size,
            seed=config.seed,
            save_images=True,
        )
    record = _record(study_variants, configs, results)
    atomic.write_json(out / "study.json", record)
    atomic.write_text(out / "study.md", _markdown(record))
    atomic.write_with(out / "grid.png", lambda path: _grid(results, path))
    return record


def _folder(name: str) -> str:
    return name.replace("=", "-").replace(",", "_")


def _check_vgg(configs: dict[str, train_config.TrainConfig]) -> None:
    """Fail before the first variant trains, not hours later at the first variant with a VGG term."""
    needing = [name for name, config in configs.items() if losses.parse_loss(config.loss).uses_vgg]
    config = next(iter(configs.values()))
    if needing and not config.allow_random_vgg:
        try:
            vgg.load_vgg_features(config.vgg_layer, config.vgg_weights)
        except vgg.VggWeightsError as error:
            raise vgg.VggWeightsError(
                f"variants {', '.join(needing)} have a VGG-19 term: {error} (or leave them out of --losses)"
            ) from None


def _record(study_variants, configs, results: dict[str, EvaluationResult]) -> dict:
    first = next(iter(results.values()))
    return {
        "data": first.data,
        "level": first.level,
        "images": len(first.images),
        "baseline": first.baseline,
        "config": {
            k: v
            for k, v in configs[study_variants[0].name].to_json().items()
            if k not in ("loss", "out", "lab_alpha")
        },
        "variants": [
            {**dataclasses.asdict(v), "run": configs[v.name].out, "mean": results[v.name].mean["model"]}
            for v in study_variants
        ],
        "classical_isp": first.mean["baseline"],
    }


def _markdown(record: dict) -> str:
    config = record["config"]
    rows = [(v["name"], f"`{v['loss']}`", f"{v['lab_alpha']:g}", v["mean"]) for v in record["variants"]]
    best = {
        key: pick(value for *_, mean in rows if (value := mean.get(key)) is not None)
        for key, _, pick in METRICS
        if any(mean.get(key) is not None for *_, mean in rows)
    }

    def cell(key: str, value: float | None) -> str:
        if value is None:
            return "–"
        text = f"{value:.2f}" if key in ("psnr", "delta_e2000") else f"{value:.4f}"
        return f"**{text}**" if best.get(key) == value else text

    lines = [
        f"# Loss study: {len(rows)} variants, preset `{config['preset']}`, data `{record['data']}`",
        "",
        (
            f"Same model (base width {config['base_filters']}, levels {config['levels'][0]}..{config['levels'][-1]}), "
            f"same schedule and seed ({config['seed']}); scored at level {record['level']} on {record['images']} "
            "test images. Best value per column in bold."
        ),
        "",
        "| variant | loss | α | " + " | ".join(label for _, label, _ in METRICS) + " |",
        "| --- | --- | ---: |" + " ---: |" * len(METRICS),
    ]
    for name, loss, alpha, mean in rows:
        lines.append(
            f"| {name} | {loss} | {alpha} | " + " | ".join(cell(k, mean.get(k)) for k, _, _ in METRICS) + " |"
        )
    baseline = record["classical_isp"]
    lines.append(
        f"| classical ISP ({record['baseline']}) | | | "
        + " | ".join("–" if baseline.get(k) is None else f"{baseline[k]:.4g}" for k, _, _ in METRICS)
        + " |"
    )
    return "\n".join(lines) + "\n"


def _grid(results: dict[str, EvaluationResult], path: Path) -> None:
    """Rows: test images; columns: target, classical ISP, then every variant; the same centre crop in each."""
    first = next(iter(results.values()))
    names = [image.name for image in first.images[:GRID_IMAGES]]
    columns = [("target", first.out_dir, "target"), ("classical ISP", first.out_dir, "baseline")]
    columns += [(variant, result.out_dir, "model") for variant, result in results.items()]
    figure, axes = plt.subplots(
        len(names), len(columns), figsize=(2.2 * len(columns), 2.3 * len(names)), squeeze=False
    )
    for row, name in enumerate(names):
        for column, (label, folder, kind) in enumerate(columns):
            axis = axes[row][column]
            axis.imshow(
                _centre(read_photo(folder / IMAGES_FOLDER / f"{name}_{kind}.png")), interpolation="nearest"
            )
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(label, fontsize=9)
            if column == 0:
                axis.set_ylabel(name, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)


def _centre(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    top, left = max(0, (height - GRID_CROP) // 2), max(0, (width - GRID_CROP) // 2)
    return image[top : top + GRID_CROP, left : left + GRID_CROP]


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("pynet_tf.study", __doc__)
    add = parser.add_argument
    add(
        "--losses",
        default=",".join(DEFAULT_LOSSES),
        help="variants: loss presets or term=weight lists, separated by ';' if a list has commas "
        f"(default {','.join(DEFAULT_LOSSES)})",
    )
    add("--alphas", default="0.5,0.95", help="the LAB loss's α grid, besides its default (empty for none)")
    add(
        "--out",
        default=str(runs.DEFAULT_ROOT / "study"),
        help="study folder: one run per variant, the table and the grid",
    )
    add("--max-size", type=image_size, help="cap on the packed evaluation input, HxW multiples of 16")
    train_config.add_training_arguments(parser, skip=("--loss", "--lab-alpha", "--out", "--vgg-layer"))
    return parser


def _split_losses(text: str) -> list[str]:
    separator = ";" if ";" in text else ","
    specs = [spec.strip() for spec in text.split(separator) if spec.strip()]
    if separator == "," and any("=" in spec for spec in specs):
        specs = [text.strip()]  # one term list such as "mse=20,vgg=1"
    return specs


def _alphas(text: str) -> list[float]:
    try:
        return [float(alpha) for alpha in text.split(",") if alpha.strip()]
    except ValueError:
        raise ConfigError(f"--alphas {text!r}: expected numbers in [0, 1] separated by commas") from None


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    warnings.filterwarnings("ignore", module="tf_keras")
    try:
        study_variants = variants(_split_losses(args.pop("losses")), _alphas(args.pop("alphas")))
        record = run_study(
            args.pop("out"), study_variants, preset=args.pop("preset"), max_size=args.pop("max_size"), **args
        )
    except TrainingInterrupted as stop:
        print(stop, file=sys.stderr)
        return stop.exit_code
    except (
        ConfigError,
        atomic.OutputError,
        losses.LossSpecError,
        DataSourceError,
        vgg.VggWeightsError,
        runs.RunError,
        EvaluationError,
        TrainingDivergedError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(_markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
