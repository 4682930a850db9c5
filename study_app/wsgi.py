"""WSGI entry point for any server: `gunicorn 'study_app.wsgi:app'` (DATABASE_URL, ADVLEGIT_SECRET_KEY)."""
from . import create_app

app = create_app()
