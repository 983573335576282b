"""Peak memory and time of full-resolution processing: a 12 MP frame through PyNET level 0, in tiles.

    python benchmarks/process_memory.py                                   # width 32 (the paper's), ~8 min
    python benchmarks/process_memory.py --base-filters 8 --compute-tiles 0   # every tile computed, quick width
    python benchmarks/process_memory.py --tiles 512 --whole 256x256,512x512

Every configuration runs in its own child process (so one's memory cannot hide another's), which builds
the model, processes a synthetic packed frame (default 1500 x 2000 x 4 -> 3000 x 4000 RGB, 12 MP) with
``pynet_tf.tiling.run_tiled`` exactly as ``python -m pynet_tf.process`` does, and encodes the result as an
8-bit PNG. The parent prints, side by side: the child's peak RSS (``ru_maxrss`` from ``os.wait4``: the
kernel's count, including TensorFlow and the model), its RSS before processing (the fixed cost), and the
time. The whole-image rows process a smaller frame in one call, for reference: memory grows with the pixels
in one call, which is what tiling bounds.

At the paper's width a 12 MP frame takes many minutes on a 2-core CPU, so by default only the first
``--compute-tiles`` tiles of each configuration go through the model; the other tiles are zeros of the
right shape, so that the output image, the blending and the PNG encoding still happen at full size and
count in the peak. The time is then extrapolated (seconds per computed tile x tiles + the measured rest)
and labelled so. ``--compute-tiles 0`` computes every tile: an end-to-end measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import record
from pynet_tf.cli import image_size

DEFAULT_TILES = "256,512,1024"
DEFAULT_WHOLE = "384x512"


def _rss_mb() -> float:
    """This process's resident set now, MB (from /proc; ru_maxrss is the peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(config: dict) -> None:
    """One configuration, in this process; prints one JSON line."""
    import numpy as np

    import pynet_tf  # noqa: F401  (selects Keras 2)
    from pynet_tf.nets.pynet.model import build_pynet
    from pynet_tf.processing import encode
    from pynet_tf.tiling import as_model_function, plan_tiles, round_up, run_tiled

    model = build_pynet(0, base_filters=config["base_filters"])
    function = as_model_function(model)
    function(np.zeros((1, 16, 16, 4), np.float32))  # trace once (as process does when it checks the level)
    height, width = config["size"]
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    packed = (
        0.3
        + 0.2 * np.sin(yy / 37)[..., None] * np.cos(xx / 53)[..., None]
        + rng.normal(0, 0.02, (height, width, 4))
    ).astype(np.float32)
    del yy, xx
    tile = config["tile"] or None  # None: the whole frame in one call
    overlap = config["overlap"] if tile else 0
    grid = plan_tiles(height, width, tile or round_up(max(height, width), 16), overlap)
    limit = config["compute_tiles"] or len(grid)
    base_rss = _rss_mb()
    seconds = []

    def limited(batch):
        if len(seconds) >= limit:
            return np.zeros((1, 2 * batch.shape[1], 2 * batch.shape[2], 3), np.float32)
        started = time.perf_counter()
        result = function(batch)
        seconds.append(time.perf_counter() - started)
        return result

    started = time.perf_counter()
    rgb = run_tiled(limited, packed, tile=tile, overlap=overlap, scale=2)
    with tempfile.TemporaryDirectory() as folder:
        data = encode(rgb, "png", 8)
        (Path(folder) / "out.png").write_bytes(data)
    total = time.perf_counter() - started
    rest = total - sum(seconds)  # padding, blending, clipping, encoding, writing, and the skipped tiles
    print(
        json.dumps(
            {
                "tiles": len(grid),
                "tile_size": list(grid.tile),
                "computed": len(seconds),
                "seconds_per_tile": sum(seconds) / len(seconds),
                "seconds": sum(seconds) / len(seconds) * len(grid) + rest,
                "base_rss_mb": base_rss,
                "peak_rss_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "output": list(rgb.shape),
            }
        )
    )


def run_child(config: dict) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with tempfile.TemporaryFile("w+") as errors:  # TensorFlow's start-up chatter; shown if the child fails
        process = subprocess.Popen(
            [sys.executable, __file__, "--child", json.dumps(config)],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=env,
        )
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage, not all children's
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            sys.stderr.write(errors.read()[-4000:])
            raise SystemExit(f"configuration {config} failed (exit {process.returncode})")
    result = json.loads(output.strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KB
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]),
    )
    parser.add_argument("--base-filters", type=int, default=32, help="PyNET width (32: the paper's)")
    parser.add_argument(
        "--size", type=image_size, default=(1500, 2000), help="packed frame HxW (default 1500x2000)"
    )
    parser.add_argument(
        "--tiles", default=DEFAULT_TILES, help=f"tile sizes to compare (default {DEFAULT_TILES})"
    )
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument(
        "--compute-tiles",
        type=int,
        default=2,
        help="tiles per configuration that go through the model (0: all; default 2)",
    )
    parser.add_argument(
        "--whole",
        default=DEFAULT_WHOLE,
        help=f"whole-image reference frames, packed HxW,... ('' for none; default {DEFAULT_WHOLE})",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return

    height, width = args.size
    configs = [
        (f"tile {t}, overlap {args.overlap}", {"tile": int(t), "size": [height, width]})
        for t in args.tiles.split(",")
        if t
    ]
    configs += [(f"whole {s}", {"tile": 0, "size": list(image_size(s))}) for s in args.whole.split(",") if s]
    print(
        f"PyNET level 0, base_filters {args.base_filters}; frame {height}x{width}x4 packed -> "
        f"{2 * height}x{2 * width} RGB ({4 * height * width / 1e6:.1f} MP); {os.cpu_count()} CPUs",
        flush=True,
    )
    header = (
        f"{'configuration':<24} {'tiles':>5} {'tile (packed)':>13} {'RSS before':>10} {'peak RSS':>9} "
        f"{'s/tile':>7} {'time':>8}  note"
    )
    print(header)
    print("-" * len(header), flush=True)
    for label, config in configs:
        config = {
            **config,
            "base_filters": args.base_filters,
            "overlap": args.overlap,
            "compute_tiles": args.compute_tiles,
        }
        result = run_child(config)
        note = ""
        if result["computed"] < result["tiles"]:
            note = f"extrapolated: {result['computed']} of {result['tiles']} tiles computed"
        if config["tile"] == 0:
            note = f"{result['output'][1]}x{result['output'][0]} RGB in one call"
        tile = f"{result['tile_size'][0]}x{result['tile_size'][1]}"
        print(
            f"{label:<24} {result['tiles']:>5} {tile:>13} {result['base_rss_mb'] / 1024:>8.2f} G "
            f"{result['peak_rss_mb'] / 1024:>7.2f} G {result['seconds_per_tile']:>7.1f} "
            f"{result['seconds']:>7.0f}s  {note}",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(record.run(main, "process_memory"))
