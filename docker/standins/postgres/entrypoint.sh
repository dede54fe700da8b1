#!/bin/sh
# The official postgres image's first start, as far as docker-compose.yml uses it: a data directory made with
# POSTGRES_USER (default postgres) and POSTGRES_PASSWORD, POSTGRES_DB created, clients from any address
# authenticated by POSTGRES_HOST_AUTH_METHOD (default scram-sha-256); then the server, listening on every interface.
set -eu
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
method=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$method" != trust ]; then
    echo "postgres stand-in: set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust" >&2
    exit 1
  fi
  mkdir -p "$PGDATA" && chmod 700 "$PGDATA"
  pwfile=$(mktemp)
  printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
  initdb --pgdata="$PGDATA" --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host="$method" \
    --locale=C.UTF-8 --encoding=UTF8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all $method" >> "$PGDATA/pg_hba.conf"
  pg_ctl --pgdata="$PGDATA" --wait --silent --options="-c listen_addresses='' -c unix_socket_directories=$PGHOST" start
  if [ "$db" != postgres ]; then
    psql --username="$user" --dbname=postgres --quiet --command="CREATE DATABASE \"$db\""
  fi
  pg_ctl --pgdata="$PGDATA" --wait --silent --mode=fast stop
  echo "postgres stand-in: initialised $PGDATA (user $user, database $db, host auth $method)"
fi
if [ "$1" = postgres ]; then
  shift
  exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories="$PGHOST" "$@"
fi
exec "$@"
