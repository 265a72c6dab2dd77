#!/usr/bin/env bash
# The official image's entrypoint, in short: as root, own PGDATA and drop to
# postgres; on an empty PGDATA, initdb with POSTGRES_USER and
# POSTGRES_PASSWORD, create POSTGRES_DB, run /docker-entrypoint-initdb.d on a
# server bound to its socket only; then exec postgres listening everywhere.
set -euo pipefail

if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
	exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
	mkdir -p "$PGDATA"
	chown postgres:postgres "$PGDATA"
	chmod 700 "$PGDATA"
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != trust ]; then
		echo "Error: Database is uninitialized and superuser password is not specified." >&2
		echo "       Set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust)." >&2
		exit 1
	fi
	pwfile=$(mktemp)
	printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
	initdb --username="$user" --pwfile="$pwfile" --auth-local=trust \
		--auth-host="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" \
		-D "$PGDATA" >/dev/null
	rm -f "$pwfile"
	printf 'host all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" \
		>>"$PGDATA/pg_hba.conf"
	pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
	if [ "$db" != postgres ]; then
		psql -v ON_ERROR_STOP=1 --username "$user" --dbname postgres \
			-c "CREATE DATABASE \"$db\"" >/dev/null
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
		*.sh) echo "running $f"; bash "$f" ;;
		*.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 --username "$user" --dbname "$db" -f "$f" ;;
		*) ;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
	echo "PostgreSQL init process complete; ready for start up."
fi
exec "$@" -c listen_addresses='*'
