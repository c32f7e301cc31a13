#!/bin/sh
# First start: create the cluster in the (empty) data volume, the application role with the
# password from POSTGRES_PASSWORD_FILE, and its database; then run PostgreSQL in the foreground.
# POSTGRES_CLIENT_NETWORK (CIDR) is the only network allowed to log in (scram-sha-256).
set -eu
BIN=/usr/lib/postgresql/15/bin
: "${POSTGRES_PASSWORD_FILE:?POSTGRES_PASSWORD_FILE is required}"
: "${POSTGRES_CLIENT_NETWORK:?POSTGRES_CLIENT_NETWORK is required (the intake network, CIDR)}"
DB=${POSTGRES_DB:-shinsei}
USERNAME=${POSTGRES_USER:-shinsei}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  "$BIN/initdb" --pgdata="$PGDATA" --username=postgres --auth-local=peer --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  echo "host $DB $USERNAME $POSTGRES_CLIENT_NETWORK scram-sha-256" >> "$PGDATA/pg_hba.conf"
  "$BIN/pg_ctl" --pgdata="$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=/run/postgresql" start >/dev/null
  password=$(cat "$POSTGRES_PASSWORD_FILE")
  "$BIN/psql" -v ON_ERROR_STOP=1 -q -h /run/postgresql -U postgres -d postgres \
    -v username="$USERNAME" -v password="$password" -v db="$DB" <<'SQL'
CREATE ROLE :"username" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"username";
ALTER DATABASE :"db" SET jit = off;
SQL
  "$BIN/pg_ctl" --pgdata="$PGDATA" -w stop >/dev/null
fi
exec "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/run/postgresql \
  -c password_encryption=scram-sha-256 -c log_min_messages=warning
