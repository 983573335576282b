"""Which phone RAW goes with which DSLR photo: by file name, else by capture time.

Files of the same stem pair first (``IMG_0001.dng`` with ``IMG_0001.jpg``). The rest pair by capture time
(a RAW's from LibRaw, a photo's EXIF DateTimeOriginal with its sub-seconds): two cameras' clocks are rarely
set alike, so the offset between them is found first, as the one under which most shots have a partner
within ``max_gap`` seconds; each RAW then takes the nearest free photo under that offset. Whatever is left
is reported with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import rawpy
from PIL import Image

from pynet_tf.data.rawio import PILLOW_ERRORS
from pynet_tf.data.sources import PHOTO_SUFFIXES, RAW_SUFFIXES, index_files

DEFAULT_MAX_GAP = 2.0
"""Seconds between a RAW and its photo, once the clocks' offset is taken out (a tripod pair is shot
within a second or two of each other)."""

# EXIF tags (Exif 2.32, CIPA DC-008): the Exif sub-IFD, its DateTimeOriginal and SubSecTimeOriginal, and
# IFD0's DateTime (the last write, for files without the original's).
_EXIF_IFD, _DATE_TIME_ORIGINAL, _SUBSEC_ORIGINAL, _DATE_TIME = 0x8769, 0x9003, 0x9291, 0x0132


@dataclass(frozen=True)
class Pair:
    name: str
    """The RAW's stem: the scene's name in the dataset and its records."""
    raw: Path
    photo: Path
    paired_by: str
    """"name" or "capture time"."""
    gap_s: float | None = None
    """Capture-time pairs: seconds between the two shots after the clock offset."""


@dataclass(frozen=True)
class Pairing:
    pairs: tuple[Pair, ...]
    unpaired: tuple[tuple[Path, str], ...]
    """Each file left without a partner, and why."""
    clock_offset_s: float | None
    """Photo clock minus RAW clock, when any pair was made by time."""


class PairingError(ValueError):
    """The folders cannot be paired at all (missing, or two files of one name)."""


def capture_time(path: Path) -> datetime | None:
    """When a RAW (LibRaw's timestamp) or a photo (EXIF) was taken; None when the file does not say."""
    if path.suffix.lower() in RAW_SUFFIXES:
        try:
            with rawpy.imread(str(path)) as raw:
                stamp = raw.other.timestamp
        except (rawpy.LibRawError, OSError):
            return None
        return stamp if stamp and stamp.year > 1970 else None
    try:
        with Image.open(path) as image:
            exif = image.getexif()
    except PILLOW_ERRORS:
        return None
    details = exif.get_ifd(_EXIF_IFD)
    text = details.get(_DATE_TIME_ORIGINAL) or exif.get(_DATE_TIME)
    try:
        stamp = datetime.strptime(str(text).strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    fraction = str(details.get(_SUBSEC_ORIGINAL, "")).strip("\x00 ")
    return stamp.replace(microsecond=int(float(f"0.{fraction}") * 1e6)) if fraction.isdigit() else stamp


def _offset(raw_times: dict[str, float], photo_times: dict[str, float], max_gap: float) -> float:
    """The clock offset under which most RAWs have a photo within ``max_gap`` (ties: the smallest offset)."""
    photos = sorted(photo_times.values())

    def support(offset: float) -> int:
        return sum(
            any(abs(photo - raw - offset) <= max_gap for photo in photos) for raw in raw_times.values()
        )

    candidates = sorted({photo - raw for raw in raw_times.values() for photo in photos}, key=abs)
    return max(candidates, key=support)


def _nearest(
    raw_times: dict[str, float], photo_times: dict[str, float], offset: float, max_gap: float
) -> list[tuple[str, str, float]]:
    """(RAW, photo, gap) one to one, nearest first, within ``max_gap`` under ``offset``."""
    candidates = sorted(
        (abs(photo - raw - offset), raw_name, photo_name)
        for raw_name, raw in raw_times.items()
        for photo_name, photo in photo_times.items()
    )
    used_raws, used_photos, matched = set(), set(), []
    for gap, raw_name, photo_name in candidates:
        if gap <= max_gap and raw_name not in used_raws and photo_name not in used_photos:
            used_raws.add(raw_name)
            used_photos.add(photo_name)
            matched.append((raw_name, photo_name, gap))
    return matched


def match_times(
    raw_times: dict[str, float], photo_times: dict[str, float], max_gap: float
) -> tuple[list[tuple[str, str, float]], float | None]:
    """(RAW, photo, gap) by capture time in seconds, and the clock offset: first the offset most shots
    agree on, then the median of the pairs it makes (one pair's own delay does not set everyone's)."""
    if not raw_times or not photo_times:
        return [], None
    matched = _nearest(raw_times, photo_times, _offset(raw_times, photo_times, max_gap), max_gap)
    if not matched:
        return [], None
    offset = float(np.median([photo_times[photo] - raw_times[raw] for raw, photo, _ in matched]))
    return _nearest(raw_times, photo_times, offset, max_gap), offset


def pair_files(raw_dir: Path, photo_dir: Path, max_gap: float = DEFAULT_MAX_GAP) -> Pairing:
    """Pairs of the RAW files in ``raw_dir`` and the photos in ``photo_dir`` (not their subfolders)."""
    for flag, folder in (("--raw", raw_dir), ("--photos", photo_dir)):
        if not folder.is_dir():
            raise PairingError(f"{flag} {folder}: no such folder")
    try:
        raws, photos = index_files(raw_dir, RAW_SUFFIXES), index_files(photo_dir, PHOTO_SUFFIXES)
    except ValueError as error:
        raise PairingError(f"{error}: rename one of them") from error
    if not raws:
        raise PairingError(f"--raw {raw_dir}: no RAW files ({', '.join(RAW_SUFFIXES[:6])}, ...)")
    if not photos:
        raise PairingError(f"--photos {photo_dir}: no photos ({', '.join(PHOTO_SUFFIXES)})")
    named = raws.keys() & photos.keys()
    pairs = [Pair(name, raws[name], photos[name], "name") for name in sorted(named)]
    raws = {name: path for name, path in raws.items() if name not in named}
    photos = {name: path for name, path in photos.items() if name not in named}
    if not raws or not photos:  # nothing left on one side to pair by time
        alone = [
            (path, "no file of the same name on the other side")
            for path in (*raws.values(), *photos.values())
        ]
        return Pairing(tuple(pairs), tuple(sorted(alone)), None)
    unpaired: list[tuple[Path, str]] = []
    times: dict[str, dict[str, float]] = {"raw": {}, "photo": {}}
    for kind, files in (("raw", raws), ("photo", photos)):
        for name, path in files.items():
            stamp = capture_time(path)
            if stamp is None:
                unpaired.append((path, "no file of the same name, and no capture time readable in it"))
            else:
                times[kind][name] = stamp.timestamp()
    matched, offset = match_times(times["raw"], times["photo"], max_gap)
    for raw_name, photo_name, gap in matched:
        pairs.append(Pair(raw_name, raws[raw_name], photos[photo_name], "capture time", gap))
    paired_raws = {raw for raw, _, _ in matched}
    paired_photos = {photo for _, photo, _ in matched}
    for kind, files, paired in (("raw", raws, paired_raws), ("photo", photos, paired_photos)):
        for name in sorted(times[kind].keys() - paired):
            unpaired.append(
                (files[name], f"no file of the same name, nor one shot within {max_gap:g} s of it")
            )
    return Pairing(tuple(sorted(pairs, key=lambda pair: pair.name)), tuple(sorted(unpaired)), offset)
