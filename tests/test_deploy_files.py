"""The container files (deploy/) agree with the project: every package and the migrations are in the
image, torch comes through constraints.txt, the schema is upgraded before serving, and every variable
compose requires is in the example environment. (Building and running the image needs a container
engine that can run here; docs/deployment.md says what was run.)"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def test_dockerfile_ships_every_package_and_pins_torch():
    text = (DEPLOY / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) ", text, re.M))
    code = re.search(r"^CODE = \((.*?)\)", (ROOT / "setup.py").read_text(), re.M).group(1)  # what a wheel installs
    packages = re.findall(r'"(\w+)"', code)
    assert {"generation", "study_app", "analysis", "demo", "contracts"} <= set(packages)
    for package in packages:
        assert package in copied, f"{package} is not copied into the image"
    assert {"migrations", "examples", "deploy/entrypoint.sh"} <= copied
    assert "-c constraints.txt" in text and "torch==" not in text  # the pin lives in constraints.txt only
    assert re.search(r"^USER (?!root)", text, re.M), "the app must not run as root"


def test_entrypoint_upgrades_the_schema_then_serves_in_production_mode():
    entry = DEPLOY / "entrypoint.sh"
    assert os.access(entry, os.X_OK)
    subprocess.run(["sh", "-n", str(entry)], check=True)  # syntax
    text = entry.read_text()
    assert text.index("advlegit db upgrade") < text.index("advlegit serve --production")
    assert "0.0.0.0" in text  # reachable from the proxy container


def test_compose_wires_app_database_and_tls_proxy():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"db", "app", "proxy"}
    app = services["app"]
    assert (DEPLOY / app["build"]["context"] / app["build"]["dockerfile"]).resolve() == (
        DEPLOY / "Dockerfile"
    ).resolve()
    assert (
        app["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://")
        and "@db:5432/" in app["environment"]["DATABASE_URL"]
    )
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    assert "443:443" in services["proxy"]["ports"]
    caddy = services["proxy"]["volumes"][0].split(":")[0]
    assert (DEPLOY / caddy).exists() and "reverse_proxy app:8000" in (DEPLOY / caddy).read_text()
    required = set(re.findall(r"\$\{(\w+):\?", (DEPLOY / "compose.yaml").read_text()))
    example = {line.split("=", 1)[0] for line in (DEPLOY / "example.env").read_text().splitlines()
               if line and not line.startswith("#")}
    assert required and required <= example, f"missing from example.env: {required - example}"
