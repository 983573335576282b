"""Processing camera RAW files (or ZRR PNGs) at full resolution through a trained level 0, in tiles: the
library behind ``python -m pynet_tf.process`` (``process``, ``process_file``, ``load_level0``, ``encode``).

Tiles and instance norm
-----------------------
PyNET normalises every conv's output in levels 2-5 per image and channel over H and W, so a tile
normalises with its own statistics, not the whole image's, and its receptive field spans more than any
overlap: tiled output is not whole-image output, and no overlap makes it so. (Nor did the model see
whole-image statistics in training: the reference trains on 224 x 224 packed crops and runs test photos
whole.) The error shrinks with the tile size (statistics over more of the image, fewer tile borders) and
with overlap; the guard barely matters with instance norm (it is what makes a model without it exact).
What the project does about it:

- large tiles by default: ``--tile 1024`` cuts a 12 MP frame (1500 x 2000 packed) into 6 tiles of
  784 x 720, each normalising over ~0.56 M packed pixels, at a peak of ~2 GB whatever the frame size;
- ``--overlap 64`` with a guard of 16 on each side (dropped: the zero padding and missing context are
  there) and a raised-cosine cross-fade over the middle 32: the statistics mismatch becomes a smooth,
  low-frequency drift instead of a seam (without overlap, seams reach 0.45 of full scale, below);
- exact whole-image output when it matters: a ``--tile`` at least the frame's packed size processes it in
  one call, bit-identical to running the model on the whole frame. ``--tile 2048`` does that for frames
  up to 4096 pixels a side; a 12 MP frame whole peaks at 6.2 GB (measured below), within reach on 24 GB.

Measured with ``python benchmarks/tiled_vs_whole.py --guards 0,8,24`` (22 min on 2 CPU cores): PSNR in dB
of tiled vs whole-image output (clipped to [0, 1]; ``whole``: one tile, bit-identical) of a PyNET level 0
at ``base_filters=4`` on real content, packed sizes: the KDC camera RAW 256 x 384 and three embedded
photos unprocessed into RAW (motorcycle 250 x 370, hubble 436 x 500, retina 705 x 705). Number of tiles in
brackets. ``fitted``: 300 Adam steps from the reference init towards the photos (ISP-like, the
representative case); ``random``: He-style random weights, a chaotic network (a stress case: small
changes grow layer by layer; smaller random weights give a near-constant image instead):

    model   tile overlap guard     kdc          motorcycle   hubble        retina
    fitted    64     32      8   33.8 (77)    36.0 (77)    37.1 (195)    39.2 (484)
    fitted   128      0      0   33.1 (6)     35.5 (6)     31.9 (16)     33.7 (36)
    fitted   128     64     16   37.3 (15)    40.4 (15)    40.7 (42)     41.3 (121)
    fitted   192      0      0   33.7 (4)     36.8 (4)     37.3 (9)      38.6 (16)
    fitted   192     64     16   39.2 (6)     42.7 (6)     43.5 (12)     42.3 (36)
    fitted   384     32      8   whole        whole        47.8 (4)      51.4 (4)
    fitted   384     64     16   whole        whole        48.4 (4)      45.0 (9)
    random   192     64     16   16.5 (6)     18.1 (6)     19.8 (12)     16.9 (36)
    random   384     64     16   whole        whole        21.4 (4)      17.2 (9)
    random without instance norm:
             192     64     16   21.5 (6)     21.1 (6)     22.4 (12)     25.2 (36)
             384     64     16   whole        whole        26.2 (4)      29.3 (9)

Guards of 0, 8 or 24 instead of 16 (tile 384, overlap 64) change the fitted model's PSNR by at most
0.2 dB. Its largest single-pixel difference is 0.04-0.17 of full scale with overlap 64 (tiles of 128 and
up) and 0.17-0.45 without overlap: seams. The random network is far from its whole-image output even
without instance norm: it amplifies the small differences tile borders make anywhere in its receptive
field. So how close tiles come is a property of the weights: the fitted model, smooth like an ISP, is at
37-51 dB with overlap at these sizes, closer with larger tiles; a trained model that amplified small
differences would need a ``--tile`` covering the frame. Before trusting tiles for evaluation, compare a
trained model's output at the default with ``--tile 2048`` (exact) on one frame.

Defaults: ``--tile 1024 --overlap 64`` (guard 16). Measured with ``python benchmarks/process_memory.py``
(6 min; peak RSS of one child process per configuration, ``ru_maxrss``; a synthetic 12 MP frame through
PyNET level 0 at the paper's width 32 on 2 CPU cores; time extrapolated from the first 2 tiles; the last
row from ``--tiles '' --whole 1500x2000``):

    configuration          tiles  tile (packed)  RSS before  peak RSS  s/tile  12 MP time
    tile 256, overlap 64      88      256x240       0.93 G    1.36 G     9.8     861 s
    tile 512, overlap 64      20      432x464       0.93 G    1.51 G    18.8     377 s
    tile 1024, overlap 64      6      784x720       0.93 G    2.06 G   103.2     620 s   (55.0 s/tile, 331 s)
    whole 384x512              1      384x512       0.90 G    1.41 G    40.1      40 s   (0.8 MP, one call)
    whole 1500x2000            1    1504x2000       0.94 G    6.15 G   375.6     376 s   (12 MP, one call)

Another job shared the 2 cores during these runs: times vary up to 2x from run to run (in brackets: the
same configuration in a quieter run); peak memory does not (within 0.1 GB).

Peak memory grows with the pixels of one tile (~1.7 KB per packed pixel at width 32, plus the 144 MB
float output and ~0.9 GB of TensorFlow and the model), not with the frame. Time is ~0.1-0.2 ms per
packed pixel at width 32 on 2 cores, times the overlap recomputed: the tiles hold 1.13 x the frame's
pixels at tile 1024, 1.34 x at 512, 1.8 x at 256. ``--compare``'s classical ISP adds ~1 GB at 12 MP, after the
model's output is freed.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pynet_tf import atomic, runs
from pynet_tf.data.photoio import encode_photo
from pynet_tf.data.rawio import DEFAULT_MAX_MEGAPIXELS, RawImage, RawReadError, read_raw, read_zrr_raw
from pynet_tf.nets.pynet.levels import DOWNSAMPLING, level_of_output
from pynet_tf.tiling import (
    as_model_function,
    check_tiling,
    default_guard,
    measure_scale,
    plan_tiles,
    run_tiled,
)

DEFAULT_TILE = 1024
"""Packed pixels; the largest side of a tile (see the module docstring for why)."""
DEFAULT_OVERLAP = 64
"""Packed pixels shared by neighbouring tiles; a quarter on each side is discarded, the rest cross-faded."""
FORMATS = {"png": ".png", "jpg": ".jpg"}
ZRR_SUFFIX = ".png"


class ProcessError(ValueError):
    """A setting or model that cannot work (wrong level, bad tile size, ...); the message says the fix."""


@dataclass(frozen=True)
class ProcessOptions:
    tile: int = DEFAULT_TILE
    overlap: int = DEFAULT_OVERLAP
    format: str = "png"
    bits: int = 8
    quality: int = 95
    compare: bool = False
    progress: bool = True
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS

    def check(self) -> None:
        try:
            check_tiling(self.tile, self.overlap)
        except ValueError as error:
            raise ProcessError(f"--tile/--overlap: {error}") from None
        if self.format not in FORMATS:
            raise ProcessError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.bits not in (8, 16):
            raise ProcessError(f"--bits must be 8 or 16, got {self.bits!r}")
        if self.format == "jpg" and self.bits != 8:
            raise ProcessError("--bits 16 needs --format png: JPEG holds 8 bits per channel")
        if not 1 <= self.quality <= 100:
            raise ProcessError(f"--quality must be between 1 and 100, got {self.quality!r}")
        if not self.max_megapixels > 0:  # also refuses NaN
            raise ProcessError(f"--max-megapixels must be positive, got {self.max_megapixels!r}")

    @property
    def suffix(self) -> str:
        return FORMATS[self.format]


@dataclass
class FileResult:
    input: str
    outputs: list[str] = field(default_factory=list)
    size: tuple[int, int] | None = None
    """The output's (height, width)."""
    tiles: int = 0
    tile_size: tuple[int, int] | None = None
    seconds: float = 0.0
    error: str | None = None


@dataclass
class LoadedModel:
    """A level-0 model, ready to run: ``function`` maps (1, h, w, 4) to (1, 2h, 2w, 3)."""

    path: Path
    function: object
    base_filters: int | None


def load_level0(path: str | Path) -> LoadedModel:
    """Load a trained model and check it is PyNET level 0 (packed 4-channel in, RGB at 2x out)."""
    try:
        file = runs.resolve_model_path(path)
    except runs.RunError as error:
        raise ProcessError(f"--model {error}") from None
    try:
        model = runs.load_model(file)
    except Exception as error:  # noqa: BLE001  (Keras raises many types for a bad file; one line for all)
        raise ProcessError(f"--model {file}: cannot load it ({type(error).__name__}: {error})") from None
    shape = model.input_shape if isinstance(model.input_shape, tuple) else None
    if shape is None or len(shape) != 4 or shape[-1] != 4:
        raise ProcessError(
            f"--model {file}: takes input of shape {model.input_shape}, not packed Bayer (H, W, 4)"
        )
    if shape[1] is not None or shape[2] is not None:
        raise ProcessError(
            f"--model {file}: built for {shape[1]}x{shape[2]} inputs only; tiles need a model built for any size "
            "(build_pynet's default input_shape (None, None, 4), as python -m pynet_tf.train saves them)"
        )
    function = as_model_function(model)
    scale, out_channels = measure_scale(function, 4, DOWNSAMPLING)
    side = DOWNSAMPLING * scale  # the output side for a 16x16 input
    level = level_of_output((DOWNSAMPLING, DOWNSAMPLING), (side, side)) if side.denominator == 1 else None
    if level != 0:
        what = f"a PyNET level-{level} model" if level is not None else "not a PyNET level"
        raise ProcessError(
            f"--model {file}: {what} (its RGB output is {scale} x the packed input size); full-resolution "
            "processing needs level 0 (2 x): train the run down to level 0 (python -m pynet_tf.train "
            "--levels ...-0 --out runs/NAME) and pass runs/NAME/final or runs/NAME/level_0"
        )
    if out_channels != 3:
        raise ProcessError(f"--model {file}: outputs {out_channels} channels, not RGB")
    return LoadedModel(file, function, runs.level_record(file).get("base_filters"))


def read_packed(path: Path, max_megapixels: float) -> tuple[np.ndarray, RawImage | None]:
    """The canonical packed (H/2, W/2, 4) of a camera RAW (with its metadata) or a ZRR PNG (None)."""
    if path.suffix.lower() == ZRR_SUFFIX:
        return read_zrr_raw(path, max_megapixels), None
    raw = read_raw(path, max_megapixels)
    return raw.packed(), raw


def classical(packed: np.ndarray, raw: RawImage | None) -> np.ndarray:
    """The classical ISP's rendering: the RAW's own white balance and colour matrix, or for a ZRR PNG
    (no metadata) grey-world white balance and the identity colour matrix (camera RGB)."""
    import tensorflow as tf

    from pynet_tf.data import isp

    if raw is not None:
        return isp.process_raw(raw).numpy()
    image = tf.constant(packed)
    return isp.process(image, isp.gray_world(image), tf.eye(3), "RGGB").numpy()


def output_paths(inputs: list[Path], out: Path, options: ProcessOptions) -> dict[Path, Path | str]:
    """Each input's output file, or a message when two inputs would write the same file."""
    taken: dict[Path, Path] = {}
    result: dict[Path, Path | str] = {}
    for path in inputs:
        target = out / f"{path.stem}{options.suffix}"
        if target in taken:
            result[path] = (
                f"{path}: its output {target} is already {taken[target]}'s; rename one, or process it separately"
            )
        else:
            taken[target] = path
            result[path] = target
    return result


def process_file(model: LoadedModel, path: Path, target: Path, options: ProcessOptions) -> FileResult:
    """One input -> ``target`` (and its classical rendering with ``compare``); raises RawReadError."""
    started = time.perf_counter()
    packed, raw = read_packed(path, options.max_megapixels)
    grid = plan_tiles(packed.shape[0], packed.shape[1], options.tile, options.overlap)
    rgb = run_tiled(
        model.function,
        packed,
        tile=options.tile,
        overlap=options.overlap,
        scale=2,
        progress=path.name if options.progress else False,
    )
    atomic.write_bytes(target, encode_photo(rgb, options.format, options.bits, options.quality))
    result = FileResult(str(path), [str(target)], (rgb.shape[0], rgb.shape[1]), len(grid), grid.tile)
    del rgb
    if options.compare:
        classical_target = target.with_name(f"{target.stem}_classical{target.suffix}")
        image = classical(packed, raw)
        atomic.write_bytes(
            classical_target, encode_photo(image, options.format, options.bits, options.quality)
        )
        result.outputs.append(str(classical_target))
    result.seconds = round(time.perf_counter() - started, 2)
    return result


def process(
    model_path: str | Path,
    inputs: list[str | Path],
    out: str | Path,
    options: ProcessOptions,
    report=print,
    error=None,
) -> list[FileResult]:
    """Process every input; a bad input is recorded (and reported) and the others still run.

    ``report`` gets one summary line per processed file, ``error`` one line per failed one (default: stderr).
    """
    import tensorflow as tf

    error = error or (lambda line: print(f"error: {line}", file=sys.stderr))
    options.check()
    out = atomic.check_output(out)
    model = load_level0(model_path)
    inputs = [Path(path) for path in inputs]
    results = []
    for path, target in output_paths(inputs, out, options).items():
        if isinstance(target, str):
            results.append(FileResult(str(path), error=target))
            error(target)
            continue
        try:
            result = process_file(model, path, target, options)
        except RawReadError as failure:
            results.append(FileResult(str(path), error=str(failure)))
            error(str(failure))
            continue
        except (MemoryError, tf.errors.ResourceExhaustedError) as failure:
            message = (
                f"{path}: out of memory ({type(failure).__name__}); use a smaller --tile (now {options.tile})"
            )
            results.append(FileResult(str(path), error=message))
            error(message)
            continue
        except OSError as failure:  # writing into OUT: full disk, permissions
            message = f"{path}: cannot write its output in {out} ({failure.strerror or failure})"
            results.append(FileResult(str(path), error=message))
            error(message)
            continue
        results.append(result)
        height, width = result.size
        outputs = " + ".join(result.outputs)
        report(
            f"{path.name}: {width}x{height} RGB ({width * height / 1e6:.1f} MP, {result.tiles} tiles of "
            f"{result.tile_size[0]}x{result.tile_size[1]} packed) in {result.seconds:.1f} s -> {outputs}"
        )
    record = {
        "model": str(model.path),
        "base_filters": model.base_filters,
        "options": {**asdict(options), "guard": default_guard(options.overlap)},
        "files": [asdict(result) for result in results],
    }
    if any(result.error is None for result in results):  # a run that wrote nothing keeps an earlier record
        atomic.write_json(out / "process.json", record)
    return results
