"""Where training pairs come from: ``samples`` | ``zrr:DIR`` | ``pairs:DIR`` | ``photos:DIR``.

A source lists its examples per split (``train``/``test``) by name; loading them is the pipeline's job.
Sources with real RAW inputs (ZRR, pairs) give (RAW file, RGB photo); photo sources (photos, samples)
give an RGB photo only, and the pipeline makes the RAW input from it with ``unprocess``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "test")
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
RAW_SUFFIXES = (
    ".dng",
    ".nef",
    ".nrw",
    ".cr2",
    ".cr3",
    ".crw",
    ".arw",
    ".srf",
    ".sr2",
    ".raf",
    ".orf",
    ".rw2",
    ".pef",
    ".srw",
    ".kdc",
    ".dcr",
    ".mrw",
    ".3fr",
    ".iiq",
    ".erf",
    ".mos",
    ".x3f",
    ".raw",
)
TEST_FRACTION_PERCENT = 10
"""Folders without train/ and test/ subfolders: this share of names (by a stable hash) is held out."""
SAMPLE_PHOTOS = {
    "train": ("astronaut", "coffee", "hubble_deep_field", "motorcycle_left", "motorcycle_right", "rocket"),
    "test": ("chelsea", "ihc"),
}
"""The embedded default: real photos inside scikit-image's package data (no download). The stereo pair
motorcycle_left/right share one split, so no scene is both trained on and tested on."""


class DataSourceError(ValueError):
    """A data source is malformed: unknown kind, missing folder, unmatched files."""


@dataclass(frozen=True)
class Example:
    name: str
    target: Path
    """The RGB photo (the DSLR image of a pair, or the photo to unprocess)."""
    raw: Path | None = None
    """The RAW input, or None when the pipeline synthesises it from ``target``."""


@dataclass(frozen=True)
class Source:
    kind: str
    """``zrr`` (16-bit PNG mosaics, the reference loader), ``raw`` (camera RAW files) or ``photos``."""
    spec: str
    splits: dict[str, tuple[Example, ...]]
    full_resolution: tuple[Path, ...] = ()
    """Whole-frame RAW inputs without targets (ZRR's test/huawei_full_resolution), for visual checks."""

    @property
    def synthetic(self) -> bool:
        return self.kind == "photos"

    def examples(self, split: str) -> tuple[Example, ...]:
        if split not in SPLITS:
            raise DataSourceError(f"split must be one of {SPLITS}, got {split!r}")
        found = self.splits[split]
        if not found:
            raise DataSourceError(f"data source {self.spec!r} has no {split} examples")
        return found


def parse_source(spec: str) -> Source:
    """``--data`` value -> Source; errors name the flag value and what was expected."""
    kind, _, folder = spec.partition(":")
    if kind == "samples" and not folder:
        return _samples()
    readers = {"zrr": _zrr, "pairs": _pairs, "photos": _photos}
    if kind not in readers or not folder:
        raise DataSourceError(f"--data {spec!r}: expected samples, zrr:DIR, pairs:DIR or photos:DIR")
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataSourceError(f"--data {spec!r}: {root} is not a folder")
    return readers[kind](root, spec)


def _samples() -> Source:
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    splits = {}
    for split, names in SAMPLE_PHOTOS.items():
        splits[split] = tuple(
            Example(name, next(p for p in folder.iterdir() if p.stem == name)) for name in names
        )
    return Source("photos", "samples", splits)


def _zrr(root: Path, spec: str) -> Source:
    """``DIR/{train,test}/huawei_raw/N.png`` with ``DIR/{train,test}/canon/N.jpg``, as the dataset ships."""
    splits = {}
    for split in SPLITS:
        raws = index_files(root / split / "huawei_raw", (".png",))
        photos = index_files(root / split / "canon", (".jpg",))
        _check_matched(spec, split, raws, photos, "huawei_raw", "canon")
        splits[split] = tuple(Example(name, photos[name], raws[name]) for name in _numeric_order(raws))
    if not any(splits.values()):
        raise DataSourceError(
            f"--data {spec!r}: no train/huawei_raw/*.png or test/huawei_raw/*.png under {root}"
        )
    full = index_files(root / "test" / "huawei_full_resolution", (".png",))
    return Source("zrr", spec, splits, tuple(full[name] for name in _numeric_order(full)))


def _pairs(root: Path, spec: str) -> Source:
    """RAW files and aligned RGB photos with the same file stem, anywhere under DIR (e.g. raw/ and rgb/)."""
    raws = index_files(root, RAW_SUFFIXES, recursive=True)
    photos = index_files(root, PHOTO_SUFFIXES, recursive=True)
    _check_matched(spec, "", raws, photos, "RAW", "RGB")
    if not raws:
        raise DataSourceError(f"--data {spec!r}: no RAW files ({', '.join(RAW_SUFFIXES[:6])}, ...) in {root}")
    return Source("raw", spec, _split(root, {name: Example(name, photos[name], raws[name]) for name in raws}))


def _photos(root: Path, spec: str) -> Source:
    photos = index_files(root, PHOTO_SUFFIXES, recursive=True)
    if not photos:
        raise DataSourceError(f"--data {spec!r}: no photos ({', '.join(PHOTO_SUFFIXES)}) in {root}")
    return Source("photos", spec, _split(root, {name: Example(name, path) for name, path in photos.items()}))


def _numeric_order(names) -> list[str]:
    """ZRR's files are numbered 0.png, 1.png, ...: 2 before 10."""
    return sorted(names, key=lambda name: (len(name), name))


def index_files(folder: Path, suffixes: tuple[str, ...], recursive: bool = False) -> dict[str, Path]:
    """Files by stem, refusing two files of one stem (they could not be paired unambiguously)."""
    if not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*") if recursive else folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes:
            name = path.stem
            if name in found:
                raise DataSourceError(f"two files named {name!r}: {found[name]} and {path}")
            found[name] = path
    return found


def held_out(name: str) -> bool:
    """Whether a scene of this name goes to the test split, by a stable hash (the same on every machine)."""
    return zlib.crc32(name.encode()) % 100 < TEST_FRACTION_PERCENT


def _check_matched(spec: str, split: str, raws: dict, photos: dict, raw_label: str, photo_label: str) -> None:
    missing_photo = sorted(set(raws) - set(photos))
    missing_raw = sorted(set(photos) - set(raws))
    if missing_photo or missing_raw:
        where = f" ({split})" if split else ""
        parts = []
        if missing_photo:
            parts.append(f"{raw_label} without {photo_label}: {', '.join(missing_photo[:10])}")
        if missing_raw:
            parts.append(f"{photo_label} without {raw_label}: {', '.join(missing_raw[:10])}")
        raise DataSourceError(f"--data {spec!r}{where}: unmatched files; " + "; ".join(parts))


def _split(root: Path, examples: dict[str, Example]) -> dict[str, tuple[Example, ...]]:
    """A train/ or test/ folder on the photo's path decides; otherwise a stable hash of the name."""

    def split_of(example: Example) -> str:
        for part in example.target.relative_to(root).parts[:-1]:
            if part in SPLITS:
                return part
        return "test" if held_out(example.name) else "train"

    ordered = [examples[name] for name in sorted(examples)]
    return {split: tuple(ex for ex in ordered if split_of(ex) == split) for split in SPLITS}
