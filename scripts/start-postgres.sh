#!/usr/bin/env bash
# Start the local PostgreSQL cluster and make a role + database for the tests.
# Prints the SQLAlchemy URL on its last line.
set -euo pipefail
ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
cluster=main
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
if ! pg_lsclusters -h | awk -v v="$ver" -v c="$cluster" '$1==v && $2==c' | grep -q .; then
  $SUDO pg_createcluster "$ver" "$cluster" >/dev/null
fi
pg_lsclusters -h | awk -v v="$ver" -v c="$cluster" '$1==v && $2==c {print $4}' | grep -q online \
  || $SUDO pg_ctlcluster "$ver" "$cluster" start
port=$(pg_lsclusters -h | awk -v v="$ver" -v c="$cluster" '$1==v && $2==c {print $3}')
psql_as_postgres() {
  if [ -z "$SUDO" ]; then runuser -u postgres -- psql -p "$port" -qAt "$@"; else sudo -u postgres psql -p "$port" -qAt "$@"; fi
}
for _ in $(seq 1 30); do
  psql_as_postgres -c "select 1" >/dev/null 2>&1 && break
  sleep 1
done
psql_as_postgres -c "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='advlegit') THEN CREATE ROLE advlegit LOGIN PASSWORD 'advlegit' CREATEDB; END IF; END\$\$;"
psql_as_postgres -tc "SELECT 1 FROM pg_database WHERE datname='advlegit_test'" | grep -q 1 \
  || psql_as_postgres -c "CREATE DATABASE advlegit_test OWNER advlegit"
echo "postgresql+psycopg://advlegit:advlegit@127.0.0.1:${port}/advlegit_test"
