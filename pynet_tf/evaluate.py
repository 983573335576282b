"""Score a trained PyNET level on a test split, next to the classical ISP on the same inputs.

    python -m pynet_tf.evaluate --model runs/NAME/final --data zrr:/data/zrr      # the paper's protocol
    python -m pynet_tf.evaluate --model runs/quick --data samples --max-size 256x256 -o /tmp/eval

A learned ISP's PSNR means little on its own, so every image is also rendered by the classical ISP
(``data/isp.py``) from the very same packed input and scored against the same target. That baseline is the
reference point, and which one ran depends on what the source knows about its camera:

- synthetic RAW (``samples``, ``photos:DIR``): the white balance and colour matrix ``unprocess`` drew, an
  "oracle metadata" classical ISP, the best such a pipeline could do on these inputs (noise is not removed);
- camera RAW pairs (``pairs:DIR``): the file's as-shot white balance and colour matrix (``isp.process_raw``);
- ZRR (``zrr:DIR``, which ships no metadata): grey-world white balance and an identity colour matrix.

With ``zrr:DIR`` the numbers are comparable to the paper's: whole 448x448 test patches (224x224 packed),
PSNR with peak 1.0, SSIM and MS-SSIM with ``tf.image``'s settings (``pynet_tf.metrics``). Inputs are
deterministic: the test split, no augmentation, the largest centred crop whose packed sides are multiples
of 16 (optionally capped by ``--max-size``); synthetic RAW is drawn, noise included as in training, from
the seed pair (``--seed``, CRC-32 of the image's name). Predictions are clipped to [0, 1] as they would be
saved. Above level 0 the target, and the baseline's full-resolution render, are resized to the level's
output as training resizes targets (``augment.target_for_level``).

Writes ``evaluation.json`` and ``evaluation.md`` atomically into ``<run folder>/eval_<source>`` or ``-o DIR``.
PSNR is ``inf`` for identical images; JSON holds it as ``Infinity`` (what Python's json writes and reads).
"""

from __future__ import annotations

import argparse
import sys
import warnings

from pynet_tf import atomic, runs
from pynet_tf.cli import command_parser, image_size, settings_summary
from pynet_tf.data.pipeline import BadExampleError
from pynet_tf.data.rawio import RawReadError
from pynet_tf.data.sources import DataSourceError
from pynet_tf.evaluation import EvaluationError, evaluate


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("pynet_tf.evaluate", __doc__)
    add = parser.add_argument
    add("--model", required=True, help="a .keras file, a level folder or a run folder (its final level)")
    add("--data", default="samples", help="samples (default) | zrr:DIR | pairs:DIR | photos:DIR")
    add("-o", "--out", help="output folder (default: <run folder>/eval_<source>)")
    add("--max-size", type=image_size, help="cap on the packed input, HxW multiples of 16 (default: none)")
    add("--seed", type=int, default=0, help="seed of the synthetic RAW of photo sources (default 0)")
    add("--save-images", action="store_true", help="also write each scored image: model, baseline, target")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore", module="tf_keras")
    print(settings_summary("evaluate", vars(args)))
    try:
        result = evaluate(
            args.model,
            args.data,
            out=args.out,
            max_size=args.max_size,
            seed=args.seed,
            save_images=args.save_images,
        )
    except (
        EvaluationError,
        runs.RunError,
        DataSourceError,
        BadExampleError,
        RawReadError,
        atomic.OutputError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(result.to_markdown())
    print(f"written: {result.json_path}\n         {result.markdown_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
