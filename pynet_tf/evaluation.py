"""Scoring a trained level on a test split, next to the classical ISP on the same inputs (``evaluate``): the
per-image and mean PSNR, SSIM, MS-SSIM and ΔE2000, written as evaluation.json and evaluation.md.
``python -m pynet_tf.evaluate`` is its command line, whose help says what is measured and how."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from pynet_tf import atomic, metrics, runs
from pynet_tf.data.photoio import encode_photo
from pynet_tf.data.sources import parse_source
from pynet_tf.held_out import BASELINES, SPLIT, SYNTHETIC_CFA, EvaluationError, prepare_test_input
from pynet_tf.nets.pynet.levels import DOWNSAMPLING, level_of_output, validate_input_shape
from pynet_tf.shapes import InputShapeError

JSON_FILE = "evaluation.json"
MARKDOWN_FILE = "evaluation.md"
IMAGES_FOLDER = "images"
METRICS = ("psnr", "ssim", "ms_ssim", "delta_e2000")


METRIC_SETTINGS = {
    "prediction": "clipped to [0, 1] before scoring",
    "target": "level 0: the photo as it is; level > 0: resized like training's targets (bicubic, "
    "antialiased), the baseline's render too",
    "psnr": {"unit": "dB", "peak": metrics.MAX_VALUE},
    "ssim": {
        "filter_size": metrics.SSIM_FILTER_SIZE,
        "filter_sigma": metrics.SSIM_FILTER_SIGMA,
        "k1": metrics.SSIM_K1,
        "k2": metrics.SSIM_K2,
        "min_side": metrics.SSIM_FILTER_SIZE,
    },
    "ms_ssim": {
        "power_factors": list(metrics.MS_SSIM_POWER_FACTORS),
        "min_side": metrics.SSIM_FILTER_SIZE,
        "scales": "as many as fit (all 5 from 161 px on), fewer re-weighted to sum to 1; per image",
    },
    "delta_e2000": "mean CIEDE2000 per image, CIELAB (D65) from sRGB",
    "mean": "mean of the per-image values (null where no image has the metric)",
}


@dataclass(frozen=True)
class ImageResult:
    """One test image: where its input came from, and the scores of the model and of the baseline."""

    name: str
    source_size: tuple[int, int]
    """The example's whole packed size (the photo's half for synthetic RAW)."""
    crop_offset: tuple[int, int]
    """Top-left of the centred crop, in packed pixels."""
    input_size: tuple[int, int]
    """The packed input the model and the baseline saw."""
    output_size: tuple[int, int]
    model: dict[str, float | None]
    baseline: dict[str, float | None]
    ms_ssim_scales: int | None
    camera: dict | None = None
    """Synthetic RAW only: the parameters ``unprocess`` drew (``UnprocessParams.to_dict``)."""


@dataclass(frozen=True)
class EvaluationResult:
    """What ``evaluate`` measured and wrote: the settings, every image's scores, and their means."""

    model_path: Path
    level: int
    base_filters: int | None
    """From the model's ``level.json``; None without one."""
    data: str
    source_kind: str
    baseline: str
    """A key of ``BASELINES``."""
    max_size: tuple[int, int] | None
    seed: int
    images: tuple[ImageResult, ...]
    out_dir: Path

    @property
    def json_path(self) -> Path:
        return self.out_dir / JSON_FILE

    @property
    def markdown_path(self) -> Path:
        return self.out_dir / MARKDOWN_FILE

    @property
    def mean(self) -> dict[str, dict[str, float | None]]:
        """Per-image means for ``model`` and ``baseline``, metric by metric."""
        return {who: _means([getattr(image, who) for image in self.images]) for who in ("model", "baseline")}

    def to_json(self) -> dict:
        inputs = {
            "split": SPLIT,
            "crop": f"largest centred crop whose packed sides are multiples of {DOWNSAMPLING}",
            "max_size": list(self.max_size) if self.max_size else None,
        }
        if self.source_kind == "photos":
            inputs["synthetic_raw"] = {
                "cfa": SYNTHETIC_CFA,
                "noise": True,
                "seed": self.seed,
                "image_seed": "(seed, zlib.crc32(name))",
            }
        return {
            "model": str(self.model_path),
            "level": self.level,
            "base_filters": self.base_filters,
            "data": self.data,
            "source_kind": self.source_kind,
            "inputs": inputs,
            "baseline": BASELINES[self.source_kind].record(),
            "metrics": METRIC_SETTINGS,
            "mean": self.mean,
            "images": [
                {key: list(value) if isinstance(value, tuple) else value for key, value in vars(row).items()}
                for row in self.images
            ],
        }

    def to_markdown(self) -> str:
        base = f", base filters {self.base_filters}" if self.base_filters is not None else ""
        cap = f", capped at {self.max_size[0]}x{self.max_size[1]}" if self.max_size else ""
        labels = ("PSNR (dB)", "SSIM", "MS-SSIM", "ΔE2000")
        columns = [f"{who} {label}" for who in ("model", "baseline") for label in labels]
        lines = [
            f"# Evaluation of `{self.model_path}` (level {self.level}{base})",
            "",
            (
                f"- data: `{self.data}`, {SPLIT} split, {len(self.images)} images; inputs: the largest centred "
                f"crop whose packed sides are multiples of {DOWNSAMPLING}{cap}"
            ),
            f"- baseline: {BASELINES[self.source_kind].description}",
            "- predictions clipped to [0, 1]; PSNR peak 1.0; means are of the per-image values",
            "",
            "| image | packed input | " + " | ".join(columns) + " |",
            "| --- | --- |" + " ---: |" * len(columns),
        ]
        for image in self.images:
            size = f"{image.input_size[0]}x{image.input_size[1]}"
            lines.append(f"| {image.name} | {size} | {_cells(image.model, image.baseline)} |")
        mean = self.mean
        lines.append(f"| **mean** | | {_cells(mean['model'], mean['baseline'])} |")
        return "\n".join(lines) + "\n"


def evaluate(
    model_path: str | Path,
    data_spec: str,
    *,
    out: str | Path | None = None,
    max_size: tuple[int, int] | None = None,
    seed: int = 0,
    save_images: bool = False,
) -> EvaluationResult:
    """Score the model at ``model_path`` (see ``runs.resolve_model_path``) and the baseline on ``data_spec``'s
    test split; writes ``evaluation.json`` and ``evaluation.md`` into ``out`` (default: beside the run).

    ``save_images`` also writes ``images/<name>_{model,baseline,target}.png`` (8-bit), what was scored.
    """
    if max_size is not None:
        try:
            validate_input_shape(*max_size)
        except InputShapeError as error:
            raise EvaluationError(f"--max-size {max_size[0]}x{max_size[1]}: {error}") from None
    model_file = runs.resolve_model_path(model_path)
    source = parse_source(data_spec)
    examples = source.examples(SPLIT)
    out_dir = atomic.check_output(out if out is not None else default_out_dir(model_file, data_spec))
    try:
        model = runs.load_model(model_file)
    except (OSError, ValueError) as error:
        cause = f"{type(error).__name__}: {error}"
        raise EvaluationError(f"{model_file}: cannot load the model ({cause})") from error
    record = runs.level_record(model_file)
    # one trace for every input size: the model takes any multiple of 16
    spec = tf.TensorSpec([1, None, None, 4], tf.float32)
    predict = tf.function(lambda raw: model(raw, training=False), input_signature=[spec])
    level = _model_level(model_file, predict, record.get("level"))

    images = []
    for example in tqdm(examples, desc="evaluate", unit="image", disable=None, mininterval=1.0):
        item = prepare_test_input(example, source.kind, max_size, seed)
        prediction = np.clip(predict(tf.constant(item.packed[np.newaxis]))[0].numpy(), 0.0, 1.0)
        target, baseline = item.at_level(level)
        fits = min(target.shape[:2]) >= metrics.SSIM_FILTER_SIZE
        if save_images:
            for kind, image in (("model", prediction), ("baseline", baseline), ("target", target)):
                atomic.write_bytes(
                    out_dir / IMAGES_FOLDER / f"{example.name}_{kind}.png", encode_photo(image)
                )
        images.append(
            ImageResult(
                name=example.name,
                source_size=item.source_size,
                crop_offset=item.offset,
                input_size=item.packed.shape[:2],
                output_size=target.shape[:2],
                model=score(prediction, target),
                baseline=score(baseline, target),
                ms_ssim_scales=metrics.ms_ssim_scales(*target.shape[:2]) if fits else None,
                camera=item.camera,
            )
        )

    result = EvaluationResult(
        model_path=model_file,
        level=level,
        base_filters=record.get("base_filters"),
        data=data_spec,
        source_kind=source.kind,
        baseline=BASELINES[source.kind].name,
        max_size=tuple(max_size) if max_size else None,
        seed=seed,
        images=tuple(images),
        out_dir=out_dir,
    )
    atomic.write_json(result.json_path, result.to_json())
    atomic.write_text(result.markdown_path, result.to_markdown())
    return result


def score(prediction: np.ndarray, target: np.ndarray) -> dict[str, float | None]:
    """The four metrics of one image (h, w, 3) in [0, 1]; SSIM and MS-SSIM are None below 11 pixels a side."""
    if min(target.shape[:2]) >= metrics.SSIM_FILTER_SIZE:
        return metrics.evaluate_pair(prediction, target)
    prediction, target = tf.constant(prediction, tf.float32), tf.constant(target, tf.float32)
    return {
        "psnr": float(metrics.psnr(prediction, target)),
        "ssim": None,
        "ms_ssim": None,
        "delta_e2000": float(metrics.delta_e2000(prediction, target)),
    }


def default_out_dir(model_file: Path, data_spec: str) -> Path:
    """``<run folder>/eval_<source>``: the run folder is the level folder's parent, else the model's own."""
    run = runs.run_of(model_file) or model_file.parent
    kind, _, path = data_spec.partition(":")
    return run / (f"eval_{kind}_{Path(path).expanduser().resolve().name}" if path else f"eval_{kind}")


def _model_level(model_file: Path, predict, recorded: int | None) -> int:
    """The level the model computes, from its output for a 16x16 input; must agree with ``level.json``."""
    side = DOWNSAMPLING
    output = predict(tf.zeros([1, side, side, 4]))
    level = level_of_output((side, side), output.shape[1:3])
    if level is None or output.shape[-1] != 3:
        raise EvaluationError(
            f"{model_file}: outputs {tuple(output.shape[1:])} for a {side}x{side}x4 input, which is no PyNET "
            "level's RGB output; pass a model written by python -m pynet_tf.train"
        )
    if recorded is not None and recorded != level:
        raise EvaluationError(
            f"{model_file}: level.json says level {recorded}, but the model outputs {output.shape[1]}x"
            f"{output.shape[2]} for a {side}x{side} input, as level {level} does; the model file and its "
            "level.json do not belong together"
        )
    return level


def _means(rows: list[dict[str, float | None]]) -> dict[str, float | None]:
    means: dict[str, float | None] = {}
    for name in METRICS:
        values = [row[name] for row in rows if row[name] is not None]
        means[name] = float(np.mean(values)) if values else None
    return means


def _cells(model: dict[str, float | None], baseline: dict[str, float | None]) -> str:
    digits = {"psnr": 2, "ssim": 4, "ms_ssim": 4, "delta_e2000": 2}
    values = [(row[name], digits[name]) for row in (model, baseline) for name in METRICS]
    return " | ".join("–" if value is None else f"{value:.{places}f}" for value, places in values)
