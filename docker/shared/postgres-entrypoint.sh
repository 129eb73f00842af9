#!/bin/sh
# First start (empty PGDATA): initdb, then the role and database `gore` with GORE_POSTGRES_PASSWORD.
# Every start: PostgreSQL in the foreground, listening on every interface, password logins only.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${GORE_POSTGRES_PASSWORD:-}" ]; then
        echo "GORE_POSTGRES_PASSWORD is empty: set it (the role gore's password) before the first start" >&2
        exit 1
    fi
    # The superuser `postgres` logs in over the local socket only (peer); everyone else by password.
    initdb --username=postgres --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=peer --auth-host=scram-sha-256 >/dev/null
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    pg_ctl --wait --silent -o "-c listen_addresses=''" start
    # The password from the environment into a psql variable (:'password' quotes it): never on a
    # command line, never in a file.
    psql --quiet -v ON_ERROR_STOP=1 -U postgres -d postgres <<'SQL'
\getenv password GORE_POSTGRES_PASSWORD
CREATE ROLE gore LOGIN PASSWORD :'password';
CREATE DATABASE gore OWNER gore;
SQL
    pg_ctl --wait --silent -m fast stop
    echo "initdb: database gore made in $PGDATA"
fi
unset GORE_POSTGRES_PASSWORD
exec postgres -c listen_addresses='*' "$@"
