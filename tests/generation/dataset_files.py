"""Small data sets written in the published formats, for the loader tests and the e2e suite: CIFAR-10's
python pickle batches, SVHN's .mat files and an ImageFolder tree. The images are synthetic but easy to
learn (each class has its own colour and stripe), so a tiny model trained for a few steps tells them apart."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def colour_images(labels: np.ndarray, side: int = 32, seed: int = 0) -> np.ndarray:
    """uint8 (N, side, side, 3): class c has its own base colour and a stripe at row 3c."""
    rng = np.random.default_rng(seed)
    hues = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                     [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [128, 128, 128]])
    out = rng.integers(0, 60, size=(len(labels), side, side, 3)).astype(np.int64)
    for i, c in enumerate(labels):
        out[i] += hues[c % 10] * 3 // 4
        row = (3 * int(c)) % (side - 2)
        out[i, row:row + 2] = 255 - out[i, row:row + 2]
    return np.clip(out, 0, 255).astype(np.uint8)


def write_cifar10(folder: Path, n_train: int = 500, n_test: int = 100, seed: int = 0,
                  train_batches: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """data_batch_1..k, test_batch and batches.meta as CIFAR-10's python version has them (Python 2
    pickles: bytes keys; b'data' uint8 (N, 3072), channel-major rows; b'labels' a list of ints).
    Returns all images (N, 32, 32, 3) and labels in file order (train batches, then test)."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.arange(n_train + n_test) % 10
    np.random.default_rng(seed).shuffle(labels)
    images = colour_images(labels, seed=seed)
    chunks = np.array_split(np.arange(n_train), train_batches)
    batches = [(f"data_batch_{k + 1}", idx) for k, idx in enumerate(chunks)]
    batches.append(("test_batch", np.arange(n_train, n_train + n_test)))
    for name, idx in batches:
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in labels[idx]],
                 b"data": images[idx].transpose(0, 3, 1, 2).reshape(len(idx), 3072),
                 b"filenames": [f"img_{i}.png".encode() for i in idx]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in CIFAR_NAMES], b"num_cases_per_batch": 10000,
                     b"num_vis": 3072}, f, protocol=2)
    return images, labels


def write_svhn(folder: Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """train_32x32.mat and test_32x32.mat as SVHN's: X (32, 32, 3, N) uint8, y (N, 1) with 10 for the
    digit 0. Returns the images (N, 32, 32, 3) and the digits (0-9) in file order."""
    import scipy.io

    folder.mkdir(parents=True, exist_ok=True)
    digits = np.arange(n_train + n_test) % 10
    images = colour_images(digits, seed=seed)
    for name, idx in (
        ("train_32x32.mat", np.arange(n_train)),
        ("test_32x32.mat", np.arange(n_train, n_train + n_test)),
    ):
        y = np.where(digits[idx] == 0, 10, digits[idx]).astype(np.uint8)[:, None]
        scipy.io.savemat(folder / name, {"X": images[idx].transpose(1, 2, 3, 0), "y": y})
    return images, digits


def write_image_folder(folder: Path, classes: list[str], per_class: int = 4, side: int = 40,
                       suffix: str = ".png", seed: int = 0) -> None:
    """ROOT/<class>/<k><suffix>, colour images of side x side (not the configured size: the loader resizes)."""
    from PIL import Image

    for c, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        images = colour_images(np.full(per_class, c), side=side, seed=seed + c)
        for k, img in enumerate(images):
            Image.fromarray(img).save(folder / name / f"{k}{suffix}")
