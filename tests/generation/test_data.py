import gzip
import struct

import numpy as np
import pytest

from advlegit.generation.config import DataConfig
from advlegit.generation.data import DataError, load_embedded, load_folder, read_idx, split


def write_idx(path, array: np.ndarray, gz: bool = False) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.fixture(scope="module")
def digits():
    ds = load_embedded()
    pick = np.arange(0, 5000, 41)[:120]  # the embedded set is sorted by class: take every class
    images = (ds.images[pick, 0] * 255).round().astype(np.uint8)
    return images, ds.labels[pick].astype(np.uint8)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_round_trips(tmp_path, digits, gz):
    images, labels = digits
    sfx = ".gz" if gz else ""
    write_idx(tmp_path / f"train-images-idx3-ubyte{sfx}", images[:100], gz)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{sfx}", labels[:100], gz)
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{sfx}", images[100:], gz)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{sfx}", labels[100:], gz)
    ds = load_folder(tmp_path)
    assert ds.images.shape == (120, 1, 28, 28) and ds.images.dtype == np.float32
    assert 0 <= ds.images.min() and ds.images.max() <= 1
    np.testing.assert_array_equal(ds.labels, labels)
    np.testing.assert_allclose(ds.images[:, 0] * 255, images, atol=1e-3)
    assert ds.classes == [str(i) for i in range(10)]


def test_npz_folder(tmp_path, digits):
    images, labels = digits
    np.savez(tmp_path / "fashion.npz", x_train=images[:100], y_train=labels[:100],
             x_test=images[100:], y_test=labels[100:])
    ds = load_folder(tmp_path)
    assert ds.images.shape == (120, 1, 28, 28)
    np.testing.assert_array_equal(ds.labels, labels)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_folder(tmp_path / "nope")


def test_mismatched_counts_are_a_clear_error(tmp_path, digits):
    images, labels = digits
    write_idx(tmp_path / "train-images-idx3-ubyte", images[:100])
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels[:90])
    with pytest.raises(DataError, match="100 images but 90 labels"):
        load_folder(tmp_path)


def test_missing_label_file_is_named(tmp_path, digits):
    write_idx(tmp_path / "train-images-idx3-ubyte", digits[0])
    with pytest.raises(DataError, match="not the matching labels"):
        load_folder(tmp_path)


def test_bad_magic_and_truncation(tmp_path):
    (tmp_path / "x").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(DataError, match="magic"):
        read_idx(tmp_path / "x")
    (tmp_path / "y").write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 50) + b"\x00" * 10)
    with pytest.raises(DataError, match="50"):
        read_idx(tmp_path / "y")


def test_wrong_shapes_are_rejected(tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.zeros((10, 5, 7, 7, 2)), y=np.zeros(10))
    with pytest.raises(DataError, match="expected images shaped"):
        load_folder(tmp_path)


def test_splits_are_disjoint_and_seeded():
    ds = load_embedded()
    cfg = DataConfig(n_train=3000, n_rater=1000, n_test=1000, split_seed=3)
    a, b = split(ds, cfg), split(ds, cfg)
    assert np.array_equal(a.train, b.train)
    assert not set(a.train) & set(a.rater) and not set(a.train) & set(a.test) and not set(a.rater) & set(a.test)
    with pytest.raises(DataError, match="exceeds"):
        split(ds, DataConfig(n_train=5000, n_rater=1, n_test=1))
