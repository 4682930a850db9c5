"""Packaging (issue 18 item 4, issue 19 item 2): a non-editable install works from any directory, and a
researcher's own `analysis.py` (or `generation.py`, ...) next to their notebook shadows nothing."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("generation", "study_app", "analysis", "demo", "contracts")
sys.path.insert(0, str(ROOT / "tests" / "study_app"))


def _shadowing_folder(tmp_path: Path) -> Path:
    """A working directory holding a researcher's own modules named like ours, each failing on import."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in PACKAGES:
        (tmp_path / f"{name}.py").write_text(f"raise RuntimeError('the researcher\\'s own {name}.py was imported')\n")
    return tmp_path


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ADVLEGIT_INSTANCE")}


IMPORT_ALL = ("import advlegit.analysis as a, advlegit.generation.manifest, advlegit.study_app, advlegit.demo.run, "
              "advlegit.contracts.export; a.load_export; "
              f"bare = sorted({{m.split('.')[0] for m in sys.modules}} & set({PACKAGES!r})); "
              "assert not bare, bare; print(a.__file__)")


def test_own_modules_in_the_working_directory_shadow_nothing(tmp_path):
    cwd = _shadowing_folder(tmp_path)
    # `python -c` puts the working directory first on sys.path, as a notebook kernel does
    done = subprocess.run([sys.executable, "-c", "import sys; " + IMPORT_ALL], cwd=cwd, env=_env(),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for args in (["--help"], ["analyze", "--help"], ["study", "list", "--help"], ["generate", "--help"]):
        run = subprocess.run([sys.executable, "-m", "advlegit", *args], cwd=cwd, env=_env(), capture_output=True,
                             text=True)
        assert run.returncode == 0 and "Usage:" in run.stdout, (args, run.stderr)


def test_the_checkout_without_our_prefix_is_not_a_package_name():
    """No module of ours imports a sibling by its bare folder name (that would load it twice, and let a
    researcher's file of that name in)."""
    import re

    bare = re.compile(rf"^\s*(from|import)\s+({'|'.join(PACKAGES)})\b", re.M)
    offenders = [str(p.relative_to(ROOT)) for top in (*PACKAGES, "advlegit", "tests", "benchmarks", "scripts",
                                                      "migrations")
                 for p in (ROOT / top).rglob("*.py") if bare.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_installed_copy_runs_from_any_directory(installed_advlegit, tmp_path):
    from study_fixtures import write_stimulus_set

    cwd = _shadowing_folder(tmp_path / "elsewhere")
    env = _env() | {"DATABASE_URL": f"sqlite:///{tmp_path / 'lab.db'}", "ADVLEGIT_INSTANCE": str(tmp_path / "inst")}
    where = subprocess.run(installed_advlegit.python(IMPORT_ALL), cwd=cwd, env=env, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(installed_advlegit.site)), where.stdout  # not the checkout

    def advlegit(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*installed_advlegit.command, *args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=300)

    up = advlegit("db", "upgrade")
    assert up.returncode == 0, up.stderr
    shipped = installed_advlegit.site / "advlegit" / "examples" / "design-identify.toml"
    assert shipped.is_file() and (installed_advlegit.site / "advlegit" / "migrations" / "versions").is_dir()
    stimuli = write_stimulus_set(tmp_path / "stimuli")
    design = tmp_path / "design.toml"  # the shipped example with this set's defense names
    from study_fixtures import DEFENSES
    text = shipped.read_text()
    for demo_name, ours in zip(("normal", "fgsm_adv", "gradreg_y", "gradreg_uniform"), DEFENSES, strict=True):
        text = text.replace(f'"{demo_name}"', f'"{ours}"')
    assert text != shipped.read_text()
    design.write_text(text)
    made = advlegit("study", "create", "--stimuli", str(stimuli), "--design", str(design))
    assert made.returncode == 0, made.stderr
    listed = advlegit("study", "list")
    assert made.stdout.split()[-1] in listed.stdout


@pytest.mark.parametrize("name", ["examples", "migrations"])
def test_data_folders_resolve_in_the_checkout(name):
    from advlegit.resources import resource_dir

    assert resource_dir(name) == ROOT / name
