"""Browser tests: headless Debian chromium via Playwright, against the app under gunicorn on loopback."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Reuse the study app's fixture builders (the suite runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "study_app"))

from study_fixtures import fresh_postgres_database, shared_stimulus_set  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium missing in CI")
        pytest.skip("no /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def e2e_db_url(tmp_path_factory):
    """PostgreSQL (the production engine) when the test server is up; SQLite otherwise (local runs)."""
    admin = os.environ.get("ADVLEGIT_TEST_DATABASE_URL")
    if admin:
        with fresh_postgres_database(admin) as url:
            yield url
    else:
        if os.environ.get("CI"):
            pytest.fail("ADVLEGIT_TEST_DATABASE_URL is unset in CI")
        yield f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'e2e.db'}"


@pytest.fixture(scope="session")
def e2e_stimuli(tmp_path_factory):
    return shared_stimulus_set(tmp_path_factory)


@pytest.fixture(scope="session")
def e2e_model_cache(tmp_path_factory) -> Path:
    """One ADVLEGIT_CACHE_DIR for every `advlegit generate` of the e2e tests: explain-tiny.toml trains
    exactly examples/demo-quick.toml's models (same data, training and raters), so the explain test reuses the
    checkpoints the demo test trained instead of training its own. Checkpoints are written atomically
    under their content key and never changed afterwards, so sharing them shares no mutable state."""
    return tmp_path_factory.getbasetemp() / "e2e-model-cache"


@pytest.fixture()
def shots():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
