"""Static assets linked with ?v=<content hash>, so browsers may keep them for a year (create_app sets
SEND_FILE_MAX_AGE_DEFAULT) and still fetch a changed file at once."""
from __future__ import annotations

import hashlib
from pathlib import Path

from flask import Flask, current_app, url_for

_VERSIONS: dict[str, str] = {}


def asset_url(filename: str) -> str:
    """url_for('static') with ?v=<content hash>."""
    v = _VERSIONS.get(filename)
    if v is None:
        data = (Path(current_app.static_folder) / filename).read_bytes()
        v = _VERSIONS[filename] = hashlib.sha256(data).hexdigest()[:12]
    return url_for("static", filename=filename, v=v)


def init_app(app: Flask) -> None:
    app.jinja_env.globals["asset"] = asset_url
