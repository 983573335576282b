"""Import a checkpoint of the official PyNET code (TF1) as a run folder of this project.

    python -m pynet_tf.import_official models/original/pynet_level_0.ckpt --out runs/official
    python -m pynet_tf.import_official path/to/checkpoints/ --out runs/official --level all

The result is an ordinary run (``level_L/model.keras``, ``level.json``, ``final``) that evaluate, process, the
exporters and the benchmarks use unchanged; how the official variables map onto our layers:
``pynet_tf.official``. A bad checkpoint is one ``error:`` line and exit status 2, with no run folder left.
"""

from __future__ import annotations

import argparse
import sys

from pynet_tf.atomic import OutputError
from pynet_tf.cli import command_parser
from pynet_tf.nets.pynet.levels import LEVELS
from pynet_tf.official import OfficialCheckpointError, import_official


def _levels(text: str) -> tuple[int, ...]:
    if text == "all":
        return LEVELS
    if text not in {str(level) for level in LEVELS}:
        raise argparse.ArgumentTypeError(f"expected a level 0..5 or 'all', got {text!r}")
    return (int(text),)


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("pynet_tf.import_official", __doc__)
    parser.add_argument(
        "checkpoint", help="the official checkpoint's prefix (.../pynet_level_0.ckpt) or its folder"
    )
    parser.add_argument(
        "--out", required=True, help="the run folder to write (must not exist), e.g. runs/official"
    )
    parser.add_argument(
        "--level",
        type=_levels,
        default=(0,),
        help="the level to import, 0 (full resolution, default) to 5, or 'all'",
    )
    args = parser.parse_args(argv)
    try:
        run = import_official(args.checkpoint, args.out, args.level)
    except (OfficialCheckpointError, OutputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"imported: {run.root} (final -> {run.final.readlink()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
