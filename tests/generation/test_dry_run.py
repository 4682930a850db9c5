"""`advlegit generate --dry-run`: validates and prints the plan; trains, loads and writes nothing."""
from __future__ import annotations

import gzip
import os
import struct
import tomllib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from advlegit import main

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.toml"))
GENERATION_CONFIGS = [p for p in EXAMPLES if "study" not in tomllib.loads(p.read_text())]
STUDY_DESIGNS = [p for p in EXAMPLES if p not in GENERATION_CONFIGS]


def dry_run(path, *extra):
    return CliRunner().invoke(main, ["generate", "--dry-run", str(path), *extra])


def test_the_paper_configs_are_there():
    names = {p.name for p in GENERATION_CONFIGS}
    assert {"paper-ross-mnist.toml", "paper-etmann-mnist.toml", "paper-chen-mnist.toml",
            "paper-boopathy-cifar10.toml"} <= names


@pytest.mark.parametrize("path", GENERATION_CONFIGS, ids=lambda p: p.name)
def test_dry_run_passes_on_every_example_config(path, tmp_path):
    cache = Path(os.environ["ADVLEGIT_CACHE_DIR"])
    before = set(cache.rglob("*")) if cache.exists() else set()
    result = dry_run(path)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "valid" in out.splitlines()[0] and "data:" in out and "stimuli:" in out and "training work:" in out
    assert "parameters" in out and "MMAC/image" in out
    after = set(cache.rglob("*")) if cache.exists() else set()
    assert after == before, "a dry run trained or cached something"


def test_missing_data_folder_is_a_warning_not_an_error():
    result = dry_run(Path(__file__).resolve().parents[2] / "examples" / "paper-boopathy-cifar10.toml")
    assert result.exit_code == 0, result.output
    assert "WARNING data.path: data/cifar-10-batches-py does not exist here" in result.output
    assert "3x32x32 (fixed by the cifar10 format)" in result.output
    # Boopathy's CIFAR "Small": 3*16*16+16 = 784 in the first layer
    assert "gap_cnn (width 1): 166,908 parameters" in result.output


@pytest.mark.parametrize("path", STUDY_DESIGNS, ids=lambda p: p.name)
def test_a_study_design_is_pointed_to_study_create(path):
    result = dry_run(path)
    assert result.exit_code == 1 and "a study design" in result.output and "study create" in result.output


def test_an_invalid_config_fails_with_the_field_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[training]\nsteps = "many"\n')
    result = dry_run(bad)
    assert result.exit_code == 1 and "training.steps: expected int" in result.output


def test_the_image_shape_comes_from_the_idx_header_only(tmp_path):
    folder = tmp_path / "mnist32"
    folder.mkdir()
    n = 12
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, n, 32, 32) + np.zeros(n * 32 * 32, np.uint8).tobytes())
    with gzip.open(folder / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">BBBBI", 0, 0, 8, 1, n) + (np.arange(n) % 10).astype(np.uint8).tobytes())
    config = tmp_path / "c.toml"
    config.write_text(f'[data]\nsource = "folder"\npath = "{folder}"\nn_train = 6\nn_rater = 2\nn_test = 4\n'
                      '[[defenses]]\nname = "mine"\nload = "absent.pt"\narchitecture = "smallnet"\n')
    result = dry_run(config)
    assert result.exit_code == 0, result.output
    assert "images 1x32x32 (from the file header)" in result.output
    # smallnet at 32x32: 320 + 18,496 + 73,856 + (4*4*128)*128+128 = 262,272 + 1,290
    assert "loaded from absent.pt (state_dict, NOT FOUND), 356,234 parameters" in result.output
    assert "WARNING model mine: absent.pt does not exist here" in result.output


def test_generate_without_out_or_dry_run_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["generate", str(EXAMPLES[0])])
    assert result.exit_code == 2 and "'--output'" in result.output


def test_dry_run_warns_that_a_set_of_more_than_ten_classes_cannot_serve_identify(tmp_path):
    config = tmp_path / "eleven.toml"
    names = ", ".join(f'"c{i}"' for i in range(11))
    config.write_text(f'[data]\nsource = "folder"\npath = "{tmp_path}"\nformat = "image_folder"\nclasses = [{names}]\n')
    result = dry_run(config)
    assert result.exit_code == 0, result.output
    assert "WARNING data: 11 classes; a study of this set cannot use the identify task" in result.output
    ten = tmp_path / "ten.toml"
    ten.write_text(config.read_text().replace(', "c10"', ""))
    assert "identify task" not in dry_run(ten).output
