#!/bin/sh
# Container start: bring the database schema to this version, then serve with gunicorn behind the proxy.
# With arguments, runs them instead (e.g. `advlegit create-admin`, `advlegit study create ...`).
set -eu
if [ "$#" -gt 0 ]; then exec "$@"; fi
: "${DATABASE_URL:?set DATABASE_URL (postgresql+psycopg://user:password@host:5432/db)}"
: "${ADVLEGIT_SECRET_KEY:?set ADVLEGIT_SECRET_KEY (a long random string; keep it across restarts)}"
# Several app containers may start at once: Alembic's upgrade is idempotent, and PostgreSQL's DDL is
# transactional, so a second upgrade of the same revision waits and then finds nothing to do.
advlegit db upgrade
exec advlegit serve --production --host 0.0.0.0 --port "${PORT:-8000}" \
  --workers "${WEB_CONCURRENCY:-2}" --threads "${ADVLEGIT_THREADS:-4}"
