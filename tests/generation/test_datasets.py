"""The published formats beyond IDX/NPZ, each read from small files written here in the real layout:
CIFAR-10's python pickle batches, SVHN's .mat files, an ImageFolder tree; a malformed file is refused
with an error naming it and what is wrong."""
from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from advlegit.generation.config import ConfigError, DataConfig, from_dict
from advlegit.generation.data import DataError, load_dataset, load_folder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dataset_files import CIFAR_NAMES, write_cifar10, write_image_folder, write_svhn  # noqa: E402


def _hwc(ds):
    return np.rint(ds.images.transpose(0, 2, 3, 1) * 255).astype(np.uint8)


def test_cifar10_batches_read_in_file_order_with_their_class_names(tmp_path):
    images, labels = write_cifar10(tmp_path, n_train=40, n_test=20, train_batches=2)
    ds = load_folder(tmp_path)  # auto: data_batch_1 names the format
    assert ds.images.shape == (60, 3, 32, 32) and ds.images.dtype == np.float32
    np.testing.assert_array_equal(_hwc(ds), images)   # channel-major rows -> the right colours
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.classes == CIFAR_NAMES


def test_cifar10_without_meta_numbers_its_classes_and_config_names_win(tmp_path):
    write_cifar10(tmp_path, n_train=20, n_test=10)
    (tmp_path / "batches.meta").unlink()
    assert load_folder(tmp_path, "cifar10").classes == [str(i) for i in range(10)]
    names = [f"c{i}" for i in range(10)]
    assert load_folder(tmp_path, "cifar10", classes=names).classes == names
    with pytest.raises(DataError, match="names 3 classes"):
        load_folder(tmp_path, "cifar10", classes=["a", "b", "c"])


def _pickle(path: Path, obj) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


@pytest.mark.parametrize("corrupt, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:500]), "not a readable CIFAR python pickle"),
    (lambda p: _pickle(p, [1, 2, 3]), "expected a pickled dict"),
    (lambda p: _pickle(p, {b"data": np.zeros((5, 3072), np.uint8)}), "expected keys b'data' and b'labels'"),
    (lambda p: _pickle(p, {b"data": np.zeros((5, 1024), np.uint8), b"labels": [0] * 5}), r"\(N, 3072\)"),
    (lambda p: _pickle(p, {b"data": np.zeros((5, 3072), np.uint8), b"labels": [0] * 4}), "5 images but 4 labels"),
])
def test_a_malformed_cifar_batch_is_refused_naming_the_file(tmp_path, corrupt, message):
    write_cifar10(tmp_path, n_train=20, n_test=10)
    corrupt(tmp_path / "data_batch_1")
    with pytest.raises(DataError, match=message) as exc:
        load_folder(tmp_path)
    assert str(tmp_path / "data_batch_1") in str(exc.value)


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path, monkeypatch):
    write_cifar10(tmp_path, n_train=20, n_test=10)
    monkeypatch.chdir(tmp_path)
    _pickle(tmp_path / "test_batch", {b"data": _Payload(), b"labels": [0]})
    with pytest.raises(DataError, match="test_batch.*refuses to load"):
        load_folder(tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_bad_cifar_meta_is_named(tmp_path):
    write_cifar10(tmp_path, n_train=20, n_test=10)
    _pickle(tmp_path / "batches.meta", {b"label_names": "cat"})
    with pytest.raises(DataError, match="batches.meta.*label_names"):
        load_folder(tmp_path)


def test_svhn_mat_files_read_with_label_10_as_digit_0(tmp_path):
    images, digits = write_svhn(tmp_path, n_train=30, n_test=10)
    ds = load_folder(tmp_path)
    assert ds.images.shape == (40, 3, 32, 32)
    np.testing.assert_array_equal(_hwc(ds), images)
    np.testing.assert_array_equal(ds.labels, digits)
    assert 0 in ds.labels and ds.classes == [str(d) for d in range(10)]


def test_malformed_svhn_files_are_named(tmp_path):
    import scipy.io

    (tmp_path / "train_32x32.mat").write_bytes(b"MATLAB 5.0 but not really")
    with pytest.raises(DataError, match="train_32x32.mat: not a readable MATLAB"):
        load_folder(tmp_path)
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"images": np.zeros((2, 2))})
    with pytest.raises(DataError, match="expected variables X and y"):
        load_folder(tmp_path)
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[0], [3]])})
    with pytest.raises(DataError, match=r"labels must lie in 1\.\.10"):
        load_folder(tmp_path)
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"X": np.zeros((32, 32, 2), np.uint8), "y": np.array([[1]])})
    with pytest.raises(DataError, match=r"\(H, W, 3, N\)"):
        load_folder(tmp_path)


def test_image_folder_resizes_and_names_classes_by_folder(tmp_path):
    write_image_folder(tmp_path, ["B", "A", "J"], per_class=3, side=40)           # notMNIST_small's layout
    write_image_folder(tmp_path, ["K"], per_class=2, side=20, suffix=".JPG")
    ds = load_folder(tmp_path, image_size=28)
    assert ds.images.shape == (11, 3, 28, 28)
    assert ds.classes == ["A", "B", "J", "K"]                                     # sorted, as torchvision's
    np.testing.assert_array_equal(np.bincount(ds.labels), [3, 3, 3, 2])
    gray = load_folder(tmp_path, "image_folder", image_size=16, color="gray")
    assert gray.images.shape == (11, 1, 16, 16)


def test_image_folder_refuses_what_is_not_an_image(tmp_path):
    write_image_folder(tmp_path, ["A", "B"], per_class=2)
    (tmp_path / "A" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match="broken.png: not a readable image"):
        load_folder(tmp_path)
    (tmp_path / "A" / "broken.png").unlink()
    (tmp_path / "B" / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="notes.txt: not a PNG or JPEG"):
        load_folder(tmp_path)
    (tmp_path / "B" / "notes.txt").unlink()
    (tmp_path / "C").mkdir()
    with pytest.raises(DataError, match="C: class folder without images"):
        load_folder(tmp_path)


def test_npz_channel_last_colour_arrays(tmp_path):
    images, labels = write_cifar10(tmp_path / "src", n_train=20, n_test=10)
    np.savez(tmp_path / "cifar.npz", x_train=images[:20], y_train=labels[:20], x_test=images[20:], y_test=labels[20:])
    ds = load_folder(tmp_path, "npz")
    assert ds.images.shape == (30, 3, 32, 32)
    np.testing.assert_array_equal(_hwc(ds), images)


def test_a_file_that_is_not_an_npz_is_named(tmp_path):
    (tmp_path / "data.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="data.npz: not a readable .npz"):
        load_folder(tmp_path)


def test_an_unrecognised_folder_asks_for_the_format(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="set data.format"):
        load_folder(tmp_path)


def test_data_config_keys_are_checked():
    base = {"source": "folder", "path": "/x"}
    for data, message in (({"format": "tiff"}, "data.format must be one of"),
                          ({"mean": [0.5, 0.5, 0.5], "std": [0.2]}, "has 3 values but data.std 1"),
                          ({"mean": [0.5, 0.5], "std": [0.2, 0.2]}, "one value per channel"),
                          ({"mean": [0.5], "std": [0.0]}, "std values must be positive"),
                          ({"color": "cmyk"}, "data.color must be rgb or gray"),
                          ({"classes": ["cat", "cat"]}, "names a class twice"),
                          ({"image_size": 4}, "image_size must be at least 8")):
        with pytest.raises(ConfigError, match=message):
            from_dict({"data": base | data})


def test_normalisation_must_fit_the_channels(tmp_path):
    write_cifar10(tmp_path, n_train=20, n_test=10)
    cfg = DataConfig(source="folder", path=str(tmp_path), mean=[0.5, 0.5], std=[0.2, 0.2])
    with pytest.raises(DataError, match="2 values but the images of .* have 3 channel"):
        load_dataset(cfg)
    assert load_dataset(DataConfig(source="embedded", classes=list("abcdefghij"))).classes[3] == "d"
