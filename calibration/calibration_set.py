"""A calibration set: representative packed RAW inputs for int8 post-training quantization, on disk as .npz.

The exporter feeds ``inputs`` to TFLite's converter one at a time (``representative_dataset``) and records
``sha256`` beside the model it writes, so a quantized model names the exact data its ranges came from.
Each crop keeps its recipe (``CropSource``: example, box, resize or padding, unprocess seed), so it can
be traced to its image and made again; ``metadata`` holds how the set was chosen and how well it covers
its candidate pool (see ``calibration.selection``).

File layout (``numpy.savez``, no pickled objects: ``np.load(path, allow_pickle=False)`` reads it):

    inputs    float32 (N, H, W, 4)   packed Bayer crops (R, Gr, Gb, B) in [0, 1], in selection order
    features  float32 (N, F)         each crop's statistics, named by metadata["feature_names"]
    sources   str (JSON)             a list of N CropSource records
    metadata  str (JSON)             settings, pool size, coverage, and "sha256" of the inputs
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pynet_tf import atomic
from pynet_tf.nets.pynet.levels import validate_input_shape
from pynet_tf.shapes import InputShapeError, ShapeCheck

FORMAT = "pynet-tf calibration set"
VERSION = 1
KEYS = ("inputs", "features", "sources", "metadata")


def rebuild_command(shape: str = "HxW", arch: str | None = None) -> str:
    """The ``calibration/build.py`` command for a set of ``shape`` (``--arch`` when a network is named)."""
    network = f" --arch {arch}" if arch else ""
    return f"python calibration/build.py --data DATA --num N --shape {shape}{network} --out FILE"


REBUILD = rebuild_command()


class CalibrationError(ValueError):
    """A calibration set that cannot be built, read or used as asked; the message names the file and fix."""


@dataclass(frozen=True)
class CropSource:
    """Where one crop came from, enough to make it again."""

    example: str
    """The example's name in its source's train split."""
    file: str
    """The photo (synthetic RAW) or the RAW file the crop was taken from."""
    frame: tuple[int, int]
    """The example's packed size as read (half the photo's size for synthetic RAW)."""
    box: tuple[int, int, int, int]
    """(top, left, height, width) of the crop in packed pixels of the frame after resizing or padding."""
    made: str
    """``unprocess`` (synthetic RAW from the photo crop) or ``raw`` (cropped from the packed RAW)."""
    scale: float = 1.0
    """The photo was resized by this before cropping because it was smaller than the crop (1: not)."""
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    """Packed pixels of reflection added (top, bottom, left, right) to a RAW frame smaller than the crop."""
    seed: tuple[int, int] | None = None
    """The seed pair ``unprocess`` drew the camera and noise from (synthetic RAW only)."""
    cfa: str | None = None
    """The pattern ``unprocess`` sampled (synthetic RAW only)."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, record: dict) -> CropSource:
        tuples = {"frame", "box", "padding", "seed"}
        return cls(**{k: tuple(v) if k in tuples and v is not None else v for k, v in record.items()})


@dataclass(frozen=True, eq=False)
class CalibrationSet:
    """``inputs`` (N, H, W, 4) float32 in [0, 1] with each crop's ``features`` and ``sources``, and
    ``metadata`` (JSON-ready); validated on construction (``CalibrationError``), H x W by ``shape_rule``."""

    inputs: np.ndarray
    features: np.ndarray
    sources: tuple[CropSource, ...]
    metadata: dict
    path: Path | None = field(default=None, compare=False)
    """The file it was loaded from or saved to; None for a set built in memory."""
    shape_rule: ShapeCheck = field(default=validate_input_shape, compare=False, repr=False)
    """The input-size rule of the network the crops are for (``Architecture.validate_input_shape``), from
    the caller, who knows the model: PyNET's by default."""

    def __post_init__(self) -> None:
        _check_arrays(self.inputs, self.features, len(self.sources), self.shape_rule)

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def shape(self) -> tuple[int, int]:
        """The packed (height, width) of every crop: the exported model's static input size."""
        return int(self.inputs.shape[1]), int(self.inputs.shape[2])

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of ``"NxHxWx4"`` (ASCII) followed by the inputs' little-endian float32 bytes."""
        digest = hashlib.sha256("x".join(map(str, self.inputs.shape)).encode("ascii"))
        digest.update(np.ascontiguousarray(self.inputs, dtype="<f4").tobytes())
        return digest.hexdigest()

    def representative_dataset(self) -> Iterator[list[np.ndarray]]:
        """``[crop of shape (1, H, W, 4)]`` per crop: assign the bound method to
        ``converter.representative_dataset``."""
        for crop in self.inputs:
            yield [crop[np.newaxis]]

    def check_shape(self, height: int, width: int, arch: str | None = None) -> None:
        """Raise ``CalibrationError`` unless the crops are ``height`` x ``width`` packed pixels; the fix it
        names builds a set for network ``arch`` when given."""
        if self.shape != (height, width):
            where = self.path or "the calibration set"
            raise CalibrationError(
                f"{where}: holds {self.shape[0]}x{self.shape[1]} packed crops but the model's input is "
                f"{height}x{width}; build one with {rebuild_command(f'{height}x{width}', arch)}"
            )

    def save(self, path: str | Path) -> CalibrationSet:
        """Write the .npz atomically (temp file, then rename); returns the set with ``path`` set."""
        path = Path(path)
        metadata = {**self.metadata, "sha256": self.sha256}
        arrays = {
            "inputs": np.ascontiguousarray(self.inputs, np.float32),
            "features": np.ascontiguousarray(self.features, np.float32),
            "sources": np.array(json.dumps([source.to_dict() for source in self.sources])),
            "metadata": np.array(json.dumps(metadata)),
        }

        def write(temporary: Path) -> None:
            with open(temporary, "wb") as file:  # a file object: numpy adds no ".npz" to the name
                np.savez(file, **arrays)

        atomic.write_with(path, write)
        return dataclasses.replace(self, metadata=metadata, path=path)

    @classmethod
    def load(cls, path: str | Path, shape_rule: ShapeCheck = validate_input_shape) -> CalibrationSet:
        """Read and validate a set written by ``save`` (its crop size against ``shape_rule``, the network's);
        every problem is one ``CalibrationError``."""
        path = Path(path)
        fix = f"rebuild it with {REBUILD}"
        if not path.is_file():
            raise CalibrationError(f"{path}: no such calibration set; build one with {REBUILD}")
        if not zipfile.is_zipfile(path):
            raise CalibrationError(f"{path}: not an .npz archive (no zip signature); {fix}")
        try:
            with np.load(path, allow_pickle=False) as archive:
                missing = [key for key in KEYS if key not in archive.files]
                if missing:
                    missing_keys = ", ".join(missing)
                    raise CalibrationError(f"{path}: not a calibration set, missing {missing_keys}; {fix}")
                inputs, features = archive["inputs"], archive["features"]
                sources, metadata = json.loads(str(archive["sources"])), json.loads(str(archive["metadata"]))
        except CalibrationError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            cause = f"{type(error).__name__}: {error}".splitlines()[0]
            raise CalibrationError(f"{path}: cannot read it as a calibration set ({cause}); {fix}") from None
        if not isinstance(sources, list) or not isinstance(metadata, dict):
            raise CalibrationError(f"{path}: sources must be a JSON list and metadata a JSON object; {fix}")
        try:
            crops = tuple(CropSource.from_dict(s) for s in sources)
            loaded = cls(inputs, features, crops, metadata, path, shape_rule)
        except (TypeError, AttributeError) as error:
            raise CalibrationError(f"{path}: malformed sources ({error}); {fix}") from None
        except CalibrationError as error:
            raise CalibrationError(f"{path}: {error}; {fix}") from None
        if metadata.get("sha256") != loaded.sha256:
            raise CalibrationError(
                f"{path}: the inputs do not match the SHA-256 recorded when it was written "
                f"({metadata.get('sha256')!s:.12} vs {loaded.sha256:.12}); {fix}"
            )
        return loaded

    def summary(self) -> str:
        """The settings and coverage numbers in a few lines of text."""
        meta, (height, width) = self.metadata, self.shape
        lines = [
            (
                f"{len(self)} crops of {height}x{width}x4 packed from {meta.get('data')!r} ({meta.get('split')} "
                f"split), chosen from {meta.get('candidates')} candidates, seed {meta.get('seed')}"
            ),
            f"sha256 {self.sha256}",
        ]
        coverage = meta.get("coverage")
        if coverage:
            lines.append("distance from each candidate to its nearest chosen crop, in the pool's std devs:")
            lines.append(f"  {'':<30} {'max':>7} {'mean':>7}   (max: the covering radius)")
            radius, mean = coverage["radius"], coverage["mean_distance"]
            for key, label in (
                ("k_center", "k-center"),
                ("first_n", f"first {len(self)}"),
                ("random_n_mean", f"random {len(self)}, mean of {coverage['random_trials']}"),
                ("random_n_best", f"random {len(self)}, best of {coverage['random_trials']}"),
            ):
                lines.append(f"  {label:<30} {radius[key]:7.3f} {mean[key]:7.3f}")
            lines.append("feature ranges, pool -> chosen (share of the pool's range):")
            for name, row in coverage["feature_ranges"].items():
                (low, high), (chosen_low, chosen_high) = row["pool"], row["chosen"]
                lines.append(
                    f"  {name:<14} [{low:8.4f}, {high:8.4f}] -> [{chosen_low:8.4f}, {chosen_high:8.4f}] "
                    f"({100 * row['covered']:5.1f}%)"
                )
        resized = [s for s in self.sources if s.scale != 1.0 or any(s.padding)]
        if resized:
            lines.append(
                f"{len(resized)} of {len(self)} crops come from images smaller than {height}x{width}, "
                "resized (photos) or reflect-padded (RAW) to fit: see sources"
            )
        return "\n".join(lines)


def _check_arrays(inputs: np.ndarray, features: np.ndarray, sources: int, shape_rule: ShapeCheck) -> None:
    """Shapes, types and range of a set's arrays; raises ``CalibrationError`` saying what is wrong."""
    if not isinstance(inputs, np.ndarray) or inputs.ndim != 4 or inputs.shape[-1] != 4 or not len(inputs):
        shape = getattr(inputs, "shape", type(inputs).__name__)
        raise CalibrationError(f"inputs must be packed Bayer crops (N, H, W, 4) with N >= 1, got {shape}")
    if inputs.dtype != np.float32:
        raise CalibrationError(f"inputs must be float32, got {inputs.dtype}")
    try:
        shape_rule(inputs.shape[1], inputs.shape[2])
    except InputShapeError as error:
        raise CalibrationError(f"inputs: {error}") from None
    if not np.all(np.isfinite(inputs)) or inputs.min() < 0 or inputs.max() > 1:
        raise CalibrationError(
            f"inputs must lie in [0, 1], got values in [{np.nanmin(inputs):g}, {np.nanmax(inputs):g}]"
            + ("" if np.all(np.isfinite(inputs)) else " and non-finite values")
        )
    if not isinstance(features, np.ndarray) or features.ndim != 2 or len(features) != len(inputs):
        shape = getattr(features, "shape", type(features).__name__)
        raise CalibrationError(f"features must be one row per crop ({len(inputs)}, F), got {shape}")
    if sources != len(inputs):
        raise CalibrationError(f"{len(inputs)} crops but {sources} sources")
