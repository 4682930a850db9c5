"""WSGI entry point for any server: `gunicorn 'advlegit.study_app.wsgi:app'`. Settings come from the environment
(DATABASE_URL, ADVLEGIT_SECRET_KEY, ...: docs/config-reference.md), read once per process by create_app."""
from . import create_app

app = create_app()
