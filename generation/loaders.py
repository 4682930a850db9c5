"""Readers of the published formats beyond IDX/NPZ: SVHN (.mat), CIFAR-10 (python pickle batches) and
an ImageFolder tree (one subfolder of PNG/JPEG files per class). Each returns (images, labels, class
names) with images float32 (N, C, H, W) in [0, 1]; a malformed file is a DataError naming the file
and what is wrong. Nothing is downloaded: the files must already be on disk."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from .data import DataError, as_images, check_pair

Loaded = tuple[np.ndarray, np.ndarray, list[str] | None]


def _unit(raw: np.ndarray) -> np.ndarray:
    """8-bit pixels as float32 in [0, 1] (an all-black image stays black, not read as already scaled)."""
    if raw.dtype != np.uint8:
        raise DataError(f"expected 8-bit pixels, got {raw.dtype}")
    return np.ascontiguousarray(raw, dtype=np.float32) / 255.0

# ---- SVHN (Netzer et al. 2011), the "cropped digits" .mat files: X (32, 32, 3, N) uint8, y (N, 1) 1..10
SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")   # extra_32x32.mat is read too when present
SVHN_EXTRA = "extra_32x32.mat"


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except Exception as exc:  # scipy raises ValueError, TypeError, MatReadError... on a bad file
        raise DataError(f"{path}: not a readable MATLAB .mat file ({exc})") from None
    if "X" not in mat or "y" not in mat:
        raise DataError(f"{path}: expected variables X and y (the SVHN layout), found "
                        f"{sorted(k for k in mat if not k.startswith('__'))}")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"])
    if x.ndim != 4 or x.shape[2] != 3 or x.dtype != np.uint8:
        raise DataError(f"{path}: X must be uint8 shaped (H, W, 3, N) as SVHN's, got {x.dtype} {x.shape}")
    y = y.reshape(-1)
    if len(y) != x.shape[3]:
        raise DataError(f"{path}: {x.shape[3]} images but {len(y)} labels")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise DataError(f"{path}: SVHN labels must lie in 1..10 (10 is the digit 0), got {y.min()}..{y.max()}")
    labels = (y.astype(np.int64) % 10)  # SVHN writes the digit 0 as label 10
    images = as_images(_unit(x.transpose(3, 2, 0, 1)), str(path))
    check_pair(images, labels, str(path))
    return images, labels


def load_svhn(folder: Path) -> Loaded:
    files = [folder / n for n in (*SVHN_FILES, SVHN_EXTRA) if (folder / n).is_file()]
    if not files:
        files = sorted(folder.glob("*.mat"))
    if not files:
        raise DataError(f"{folder}: no SVHN .mat file (expected {' and '.join(SVHN_FILES)})")
    parts = [read_svhn_mat(f) for f in files]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            [str(d) for d in range(10)])


# ---- CIFAR-10 (Krizhevsky 2009), "CIFAR-10 python version": pickled dicts with bytes keys.
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"
CIFAR_META = "batches.meta"


class _ArraysOnly(pickle.Unpickler):
    """Unpickling runs whatever callable a file names; a data file may name only numpy's array
    reconstruction (how numpy arrays are pickled), nothing else."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refuses to load {module}.{name} (only numpy arrays are allowed)")


def read_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _ArraysOnly(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            ImportError, OSError) as exc:
        raise DataError(f"{path}: not a readable CIFAR python pickle ({exc})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict (the CIFAR layout), got {type(obj).__name__}")
    # Python 2 pickles (the published batches) have bytes keys; a re-pickle may have str keys.
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = read_pickle(path)
    if "data" not in batch or "labels" not in batch:
        raise DataError(f"{path}: expected keys b'data' and b'labels', found {sorted(batch)}")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"])
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.dtype != np.uint8:
        raise DataError(f"{path}: b'data' must be uint8 shaped (N, 3072) (32x32 RGB, channel-major), "
                        f"got {data.dtype} {data.shape}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: b'labels' must be a list of integers")
    images = as_images(_unit(data.reshape(-1, 3, 32, 32)), str(path))
    check_pair(images, labels, str(path))
    return images, labels.astype(np.int64)


def load_cifar10(folder: Path) -> Loaded:
    files = [folder / n for n in (*CIFAR_TRAIN, CIFAR_TEST) if (folder / n).is_file()]
    if not files:
        raise DataError(f"{folder}: no CIFAR-10 batch (expected data_batch_1..5 and/or test_batch)")
    parts = [read_cifar_batch(f) for f in files]
    names = None
    meta_path = folder / CIFAR_META
    if meta_path.is_file():
        meta = read_pickle(meta_path)
        raw = meta.get("label_names")
        if not isinstance(raw, list) or not all(isinstance(n, (bytes, str)) for n in raw):
            raise DataError(f"{meta_path}: expected b'label_names', a list of names")
        names = [n.decode() if isinstance(n, bytes) else n for n in raw]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), names


# ---- ImageFolder: ROOT/<class name>/<image>.png|jpg|jpeg, classes in sorted folder order (torchvision's).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_image(path: Path, size: int, color: str) -> np.ndarray:
    """One image as uint8 (C, size, size): converted to RGB or grayscale, resized with Lanczos."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            im = im.convert("RGB" if color == "rgb" else "L")
            if im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.LANCZOS)
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def load_image_folder(folder: Path, size: int, color: str) -> Loaded:
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{folder}: no class subfolders (ImageFolder layout: {folder}/<class>/<image>.png)")
    images, labels = [], []
    for label, d in enumerate(class_dirs):
        files = sorted(p for p in d.iterdir() if not p.name.startswith("."))
        other = [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
        if other:
            raise DataError(f"{other[0]}: not a PNG or JPEG file (a class folder holds only "
                            f"{', '.join(IMAGE_SUFFIXES)} images)")
        if not files:
            raise DataError(f"{d}: class folder without images")
        images += [read_image(p, size, color) for p in files]
        labels += [label] * len(files)
    stacked = as_images(_unit(np.stack(images)), str(folder))
    return stacked, np.asarray(labels, dtype=np.int64), [d.name for d in class_dirs]
