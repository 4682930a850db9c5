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
