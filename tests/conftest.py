"""Shared test fixtures. Package-specific fixtures live in tests/<package>/conftest.py."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the real PostgreSQL database started by scripts/start-postgres.sh.

    Skipped only outside CI when no server was started; in CI a missing server is a failure.
    """
    url = os.environ.get("ADVLEGIT_TEST_DATABASE_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("ADVLEGIT_TEST_DATABASE_URL is unset in CI: scripts/test.sh must start PostgreSQL")
        pytest.skip("no PostgreSQL (run via scripts/test.sh to start one)")
    return url


@pytest.fixture(scope="session")
def installed_advlegit(tmp_path_factory):
    """The `advlegit` command of a non-editable install (`pip install .` into a folder of its own), so
    tests see what a user's wheel holds: the code, the migrations and examples as package data.
    Dependencies come from the test environment's site-packages."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    base = tmp_path_factory.mktemp("installed")
    src, target = base / "src", base / "site"
    # a copy, so the build's egg-info and build/ folders never touch the checkout
    shutil.copytree(root, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "tests", "docs", "benchmarks", "runs", "instance", "test-artifacts", "build",
        "*.egg-info", "__pycache__", "*.db"))
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-compile", "--target", str(target), str(src)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return InstalledCopy(target)


class InstalledCopy:
    """`python(code)` runs code against the installed copy; `command` is its `advlegit` command."""

    def __init__(self, site):
        self.site = site
        self.command = self.python("from advlegit.cli import main; main()")

    def python(self, code: str) -> list[str]:
        import sys

        # first on sys.path, before the checkout an editable install or PYTHONPATH would give
        return [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(self.site)!r}); {code}"]
