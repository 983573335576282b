"""Aligned pairs -> a training set in the Zurich RAW-to-RGB layout, written so it is never half there.

    OUT/train/huawei_raw/N.png   16-bit RGGB mosaic patch, samples x 1020 (what ``rawio.read_zrr_raw`` reads)
    OUT/train/canon/N.jpg        the photo's aligned patch
    OUT/test/...                 the same for held-out scenes: a scene's patches all go to one split
    OUT/checks/NAME.jpg, .gif    the visual checks of each pair (``preview``), shown by OUT/index.html
    OUT/alignment.json           per pair: how it was paired, matches, inliers, reprojection error, and per
                                 patch its shift, agreement and dataset index, or why it was dropped

Work goes to ``OUT.partial/``: each pair's patches and record land in ``pairs/NAME/`` (the record last), so an
interrupted run resumes at the first pair without a record, provided it is asked with the same settings;
the finished set is moved into place at the end in one rename. The samples are quantised like ZRR's
10-bit Huawei P20 frames (1/1020 steps), the scale the reader divides by.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from pynet_tf.alignment import preview
from pynet_tf.alignment.pairing import Pair, Pairing
from pynet_tf.alignment.patches import AlignOptions, align_pair
from pynet_tf.alignment.register import AlignmentError
from pynet_tf.atomic import write_bytes, write_json, write_text
from pynet_tf.data import bayer
from pynet_tf.data.photoio import PhotoReadError, encode_photo, read_photo
from pynet_tf.data.rawio import ZRR_SCALE, RawReadError, read_raw
from pynet_tf.data.sources import held_out

RECORD = "record.json"


class DatasetError(ValueError):
    """The run cannot produce a dataset (nothing aligned, or a partial run under other settings)."""


@dataclass(frozen=True)
class Settings:
    """What shapes the dataset: a partial run resumes only under the same values."""

    raw: str
    photos: str
    options: AlignOptions
    quality: int
    max_megapixels: float
    max_gap: float

    def to_dict(self) -> dict:
        return {**asdict(self), "options": asdict(self.options)}


def zrr_png(packed: np.ndarray) -> bytes:
    """Canonical packed samples in [0, 1] as a ZRR raw PNG: the 16-bit RGGB mosaic of the samples x 1020,
    which ``rawio.read_zrr_raw`` reads back to within half a 1/1020 step."""
    return tf.io.encode_png(bayer.unpack(packed, "RGGB", 0, ZRR_SCALE)[..., None]).numpy()


def staging_folder(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def open_staging(out: Path, settings: Settings) -> Path:
    """The partial folder for ``out``: created, or an earlier one reused when its settings match."""
    staging = staging_folder(out)
    recorded = staging / "settings.json"
    if recorded.is_file():
        earlier = json.loads(recorded.read_text())
        changed = sorted(key for key, value in settings.to_dict().items() if earlier.get(key) != value)
        if changed:
            raise DatasetError(
                f"{staging} holds an interrupted run with other settings ({', '.join(changed)}): run again with "
                "the same flags to resume it, or delete that folder to start over"
            )
        return staging
    staging.mkdir(parents=True, exist_ok=True)
    write_json(recorded, settings.to_dict())
    return staging


def align_into(pair: Pair, folder: Path, settings: Settings) -> dict:
    """Aligns one pair, writes its patches and checks into ``folder``, and returns its record (not yet saved)."""
    record: dict = {
        "name": pair.name,
        "raw": str(pair.raw),
        "photo": str(pair.photo),
        "paired_by": pair.paired_by,
        "capture_gap_s": pair.gap_s,
    }
    try:
        raw = read_raw(pair.raw, settings.max_megapixels)
        photo = read_photo(pair.photo, settings.max_megapixels)
        alignment = align_pair(raw, photo, settings.options)
    except (RawReadError, PhotoReadError) as error:
        return {**record, "error": str(error)}
    except AlignmentError as error:
        return {**record, "error": f"{pair.photo.name} on {pair.raw.name}: {error}"}
    fit = alignment.fit
    folder.mkdir(parents=True, exist_ok=True)
    packed = raw.packed()
    size = settings.options.patch
    patches = []
    for number, patch in enumerate(alignment.patches):
        entry = {"left": patch.left, "top": patch.top, "shift": patch.shift, "agreement": patch.agreement}
        if patch.dropped:
            patches.append({**entry, "dropped": patch.dropped})
            continue
        samples = packed[patch.top // 2 : (patch.top + size) // 2, patch.left // 2 : (patch.left + size) // 2]
        write_bytes(folder / f"{number}.png", zrr_png(samples))
        write_bytes(folder / f"{number}.jpg", encode_photo(patch.photo, "jpg", quality=settings.quality))
        patches.append({**entry, "file": number})
    write_bytes(
        folder / "check.jpg",
        preview.checkerboard(alignment.render, alignment.warped, alignment.patches, size),
    )
    write_bytes(folder / "flicker.gif", preview.flicker(alignment.render, alignment.warped))
    return {
        **record,
        "matches": fit.matches,
        "inliers": fit.inliers,
        "reprojection_px": round(fit.reprojection_px, 4),
        "photo_scale": round(fit.photo_scale, 4),
        "homography": fit.homography.tolist(),
        "kept": sum("file" in entry for entry in patches),
        "patches": patches,
    }


def summary_line(record: dict) -> str:
    """One line per pair for the console and the page: what was kept, what was dropped and why."""
    if "error" in record:
        return f"{record['name']}: {record['error']}"
    reasons = Counter(entry["dropped"] for entry in record["patches"] if "dropped" in entry)
    dropped = "; ".join(f"{count} {reason}" for reason, count in reasons.most_common())
    flat = sum("file" in entry and entry["shift"] is None for entry in record["patches"])
    return (
        f"{record['name']}: {record['inliers']} of {record['matches']} matches inliers, "
        f"{record['reprojection_px']:.2f} px; kept {record['kept']} of {len(record['patches'])} patches"
        + (f" ({flat} flat, on the global fit alone)" if flat else "")
        + (f"; dropped {dropped}" if dropped else "")
    )


def build(pairing: Pairing, out: Path, settings: Settings, log: Callable[[str], None] = print) -> dict:
    """Aligns every pair (resuming a partial run), then moves the finished dataset to ``out``; its record."""
    staging = open_staging(out, settings)
    records = []
    for count, pair in enumerate(pairing.pairs, 1):
        folder = staging / "pairs" / pair.name
        saved = folder / RECORD
        if saved.is_file():
            record = json.loads(saved.read_text())
            log(f"[{count}/{len(pairing.pairs)}] {summary_line(record)} (from the interrupted run)")
        else:
            record = align_into(pair, folder, settings)
            folder.mkdir(parents=True, exist_ok=True)
            write_json(saved, record)
            log(f"[{count}/{len(pairing.pairs)}] {summary_line(record)}")
        records.append(record)
    kept = [record for record in records if record.get("kept")]
    if not kept:
        shutil.rmtree(staging)
        raise DatasetError(
            f"no patch of any of the {len(records)} pairs was kept (see the lines above): nothing written to {out}"
        )
    result = assemble(staging, records, pairing, settings)
    if out.is_dir():
        out.rmdir()  # empty: check_output let it through
    os.replace(staging, out)
    return result


def splits(names: list[str]) -> dict[str, str]:
    """Scene -> split, by the sources' stable hash. One scene trains; with two or more, both splits get at
    least one (the smallest hash is held out, the largest trains, when the hash alone leaves a split empty)."""
    if len(names) < 2:
        return dict.fromkeys(names, "train")
    order = sorted(names, key=lambda name: (zlib.crc32(name.encode()) % 100, name))
    chosen = {name: "test" if held_out(name) else "train" for name in names}
    if "test" not in chosen.values():
        chosen[order[0]] = "test"
    if "train" not in chosen.values():
        chosen[order[-1]] = "train"
    return chosen


def assemble(staging: Path, records: list[dict], pairing: Pairing, settings: Settings) -> dict:
    """Moves the patches into the ZRR layout, numbered per split, and writes alignment.json and index.html."""
    chosen = splits([record["name"] for record in records if record.get("kept")])
    counters = Counter()
    for split in ("train", "test"):
        for kind in ("huawei_raw", "canon"):
            (staging / split / kind).mkdir(parents=True, exist_ok=True)
    (staging / "checks").mkdir(exist_ok=True)
    for record in records:
        folder = staging / "pairs" / record["name"]
        if "error" in record:
            continue
        for suffix, target in ((".jpg", "check.jpg"), (".gif", "flicker.gif")):
            os.replace(folder / target, staging / "checks" / f"{record['name']}{suffix}")
        split = chosen.get(record["name"])
        record["split"] = split
        for entry in record["patches"]:
            if "file" not in entry:
                continue
            number = counters[split]
            counters[split] += 1
            file = entry.pop("file")
            os.replace(folder / f"{file}.png", staging / split / "huawei_raw" / f"{number}.png")
            os.replace(folder / f"{file}.jpg", staging / split / "canon" / f"{number}.jpg")
            entry["index"] = number
    result = {
        "settings": settings.to_dict(),
        "clock_offset_s": pairing.clock_offset_s,
        "unpaired": [{"file": str(path), "why": why} for path, why in pairing.unpaired],
        "pairs": records,
        "patches": {"train": counters["train"], "test": counters["test"]},
    }
    shutil.rmtree(staging / "pairs")
    (staging / "settings.json").unlink()
    write_json(staging / "alignment.json", result)
    write_text(staging / "index.html", page(result))
    return result


def page(result: dict) -> str:
    """A small HTML page: one section per pair with its numbers, checkerboard and flicker."""
    parts = [
        "<!doctype html><meta charset='utf-8'><title>alignment</title>",
        "<style>body{font-family:sans-serif;margin:2em}img{max-width:48%;margin:0.5%}</style>",
        f"<h1>Alignment: {result['patches']['train']} train and {result['patches']['test']} test patches</h1>",
        (
            "<p>Left: the RAW's classical render and the photo in alternate squares (lines broken at the "
            "squares' edges mean misalignment); kept patches green, dropped red. Right: the two views in turn.</p>"
        ),
    ]
    for path_why in result["unpaired"]:
        parts.append(f"<p>unpaired: {html.escape(path_why['file'])}: {html.escape(path_why['why'])}</p>")
    for record in result["pairs"]:
        parts.append(f"<h2>{html.escape(record['name'])}</h2><p>{html.escape(summary_line(record))}</p>")
        if "error" not in record:
            name = html.escape(record["name"])
            parts.append(
                f"<img src='checks/{name}.jpg' alt='checkerboard'><img src='checks/{name}.gif' alt='flicker'>"
            )
    return "\n".join(parts) + "\n"
