#!/usr/bin/env bash
# Makes sure Postgres answers at $DATABASE_URL and Redis at $REDIS_URL, starting
# whatever is missing: with docker compose when a Docker engine is reachable,
# otherwise with local programs (installed with apt-get when absent).
# Quiet when both already answer; one line per service it had to act on.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bulkd?sslmode=disable}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
wait_seconds=${SERVICES_WAIT_SECONDS:-30}

say() { printf '%s\n' "$*"; }
die() { printf 'services.sh: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

# parse_url URL: sets url_scheme url_user url_pass url_host url_port url_path url_query
# for scheme://[user[:pass]@]host[:port][/path][?query]; host may be [ipv6].
parse_url() {
  local url=$1 rest authority userinfo hostport
  url_scheme=${url%%://*}
  rest=${url#*://}
  url_query=""
  if [[ $rest == *\?* ]]; then url_query=${rest#*\?}; rest=${rest%%\?*}; fi
  authority=${rest%%/*}
  url_path=""
  if [[ $rest == */* ]]; then url_path=${rest#*/}; fi
  url_user="" url_pass=""
  if [[ $authority == *@* ]]; then
    userinfo=${authority%@*}
    hostport=${authority##*@}
    url_user=${userinfo%%:*}
    if [[ $userinfo == *:* ]]; then url_pass=${userinfo#*:}; fi
  else
    hostport=$authority
  fi
  url_port=""
  if [[ $hostport == \[*\]* ]]; then # [::1]:5432
    url_host=${hostport#\[}
    url_host=${url_host%%\]*}
    rest=${hostport#*\]}
    if [[ $rest == :* ]]; then url_port=${rest#:}; fi
  else
    url_host=${hostport%%:*}
    if [[ $hostport == *:* ]]; then url_port=${hostport#*:}; fi
  fi
}

parse_url "$DATABASE_URL"
pg_url_scheme=$url_scheme pg_authority=${DATABASE_URL#*://}
pg_authority=${pg_authority%%/*}
pg_authority=${pg_authority%%\?*}
pg_query=$url_query
pg_host=${url_host:-127.0.0.1}
pg_port=${url_port:-5432}
pg_user=${url_user:-postgres}
pg_pass=$url_pass
pg_db=${url_path:-$pg_user}
[[ $pg_host == localhost ]] && pg_listen=localhost || pg_listen=$pg_host

parse_url "$REDIS_URL"
redis_host=${url_host:-127.0.0.1}
redis_port=${url_port:-6379}
redis_pass=$url_pass
[[ $redis_host == localhost ]] && redis_bind=127.0.0.1 || redis_bind=$redis_host

is_local() { [[ $1 == 127.* || $1 == localhost || $1 == ::1 || $1 == 0.0.0.0 ]]; }

# tcp_open HOST PORT: a plain TCP connect, for machines without the client tools.
tcp_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" >/dev/null 2>&1; }

pg_up() {
  if have pg_isready; then
    pg_isready -q -t 2 -h "$pg_host" -p "$pg_port" >/dev/null 2>&1
  else
    tcp_open "$pg_host" "$pg_port"
  fi
}

redis_up() {
  if have redis-cli; then
    local reply
    if [[ -n $redis_pass ]]; then export REDISCLI_AUTH=$redis_pass; fi
    reply=$(timeout 3 redis-cli -h "$redis_host" -p "$redis_port" ping 2>/dev/null) || return 1
    [[ $reply == PONG ]]
  else
    # Speak RESP by hand: any reply ("+PONG" or "-NOAUTH ...") means a Redis is there.
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "PING\r\n" >&3 && IFS= read -r line <&3 && [[ $line == [+-]* ]]' \
      _ "$redis_host" "$redis_port" >/dev/null 2>&1
  fi
}

# wait_for NAME CHECK: polls CHECK for up to $wait_seconds.
wait_for() {
  local name=$1 check=$2 i
  for ((i = 0; i < wait_seconds * 2; i++)); do
    "$check" && return 0
    sleep 0.5
  done
  die "$name did not answer within ${wait_seconds}s"
}

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif have sudo; then sudo "$@"
  else die "need root to run: $* (no sudo found); install it by hand"
  fi
}

apt_updated=""
apt_install() {
  have apt-get || die "cannot install $* here: no apt-get; install it by hand"
  if [[ -z $apt_updated ]]; then
    as_root apt-get update -qq >/dev/null || die "apt-get update failed"
    apt_updated=1
  fi
  say "installing $* with apt-get (this takes a minute the first time)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
}

docker_ok() {
  [[ -f $root/docker-compose.yml ]] && have docker && docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1
}

# as_pg_owner CMD...: runs CMD as the owner of a private cluster (initdb refuses root).
as_pg_owner() {
  if [[ $(id -u) -ne 0 ]]; then "$@"
  elif have runuser; then runuser -u postgres -- "$@"
  else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
  fi
}

pg_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [[ -z $dir ]] && have pg_ctl; then dir=$(dirname "$(command -v pg_ctl)"); fi
  [[ -n $dir && -x $dir/postgres && -x $dir/initdb ]] || return 1
  printf '%s\n' "$dir"
}

# start_private_cluster: a throwaway cluster with trust auth on $pg_host:$pg_port.
start_private_cluster() {
  local bin=$1 data
  if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    data=/tmp/bulkd-pgdata-$pg_port
  else
    data=$root/.local/pgdata-$pg_port
  fi
  if [[ ! -f $data/PG_VERSION ]]; then
    mkdir -p "$data"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$data"
    chmod 700 "$data"
    as_pg_owner "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale >"$data.initdb.log" 2>&1 ||
      die "initdb failed, see $data.initdb.log"
    cat >>"$data/postgresql.conf" <<EOF
# written by bulkd scripts/services.sh
listen_addresses = '$pg_listen'
port = $pg_port
unix_socket_directories = ''
max_connections = 200
synchronous_commit = off
EOF
  fi
  as_pg_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t "$wait_seconds" start >/dev/null ||
    die "pg_ctl start failed, see $data/server.log"
  local stop="$bin/pg_ctl -D $data stop"
  [[ $(id -u) -eq 0 ]] && stop="runuser -u postgres -- $stop"
  say "postgres: started a private cluster on $pg_host:$pg_port (data in $data; stop with: $stop)"
}

# trust_ok: does user $pg_user get in over TCP without a password?
trust_ok() {
  PGCONNECT_TIMEOUT=3 psql -w -X -q -h "$pg_host" -p "$pg_port" -U "$pg_user" -d postgres -c 'select 1' >/dev/null 2>&1
}

# start_debian_cluster VERSION NAME: starts a pg_createcluster cluster if it is down
# and makes sure TCP logins from localhost are trusted (a fresh install asks for scram).
start_debian_cluster() {
  local ver=$1 name=$2 hba did="found running"
  if ! pg_up; then
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start || die "pg_ctlcluster $ver $name start failed"
    wait_for postgres pg_up
    did=started
  fi
  if [[ -z $pg_pass ]] && ! trust_ok; then
    hba=/etc/postgresql/$ver/$name/pg_hba.conf
    as_root sed -i '1i # added by bulkd scripts/services.sh: local development and tests\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload
    say "postgres: trusted TCP logins from localhost in $hba"
  fi
  say "postgres: $did Debian cluster $ver/$name on port $pg_port"
}

start_postgres() {
  if ! is_local "$pg_host"; then
    die "Postgres does not answer at $pg_host:$pg_port and is not on this machine; start it or fix DATABASE_URL"
  fi
  if docker_ok; then
    POSTGRES_PORT=$pg_port docker compose up -d postgres >/dev/null || die "docker compose up postgres failed"
    wait_for postgres pg_up
    say "postgres: started with docker compose on port $pg_port"
    return
  fi
  local bin cluster="" ver name
  pg_bindir >/dev/null || apt_install postgresql
  # The package's own cluster if one is on our port (a fresh install may have started it already).
  if have pg_lsclusters; then
    cluster=$(pg_lsclusters -h 2>/dev/null | awk -v p="$pg_port" '$3 == p { print $1, $2; exit }')
  fi
  if [[ -n $cluster ]]; then
    read -r ver name <<<"$cluster"
    start_debian_cluster "$ver" "$name"
    return
  fi
  bin=$(pg_bindir) || die "no Postgres server programs found"
  start_private_cluster "$bin"
  wait_for postgres pg_up
}

start_redis() {
  if ! is_local "$redis_host"; then
    die "Redis does not answer at $redis_host:$redis_port and is not on this machine; start it or fix REDIS_URL"
  fi
  if docker_ok; then
    REDIS_PORT=$redis_port docker compose up -d redis >/dev/null || die "docker compose up redis failed"
    wait_for redis redis_up
    say "redis: started with docker compose on port $redis_port"
    return
  fi
  if ! have redis-server; then
    apt_install redis-server redis-tools
    if redis_up; then say "redis: installed; the package's service answers on $redis_port"; return; fi
  fi
  local args=(--daemonize yes --bind "$redis_bind" --port "$redis_port" --save "" --appendonly no --dir /tmp
    --logfile "/tmp/bulkd-redis-$redis_port.log" --pidfile "/tmp/bulkd-redis-$redis_port.pid")
  [[ -n $redis_pass ]] && args+=(--requirepass "$redis_pass")
  redis-server "${args[@]}" >/dev/null || die "redis-server failed to start, see /tmp/bulkd-redis-$redis_port.log"
  wait_for redis redis_up
  say "redis: started redis-server on $redis_bind:$redis_port (pid $(cat "/tmp/bulkd-redis-$redis_port.pid" 2>/dev/null || echo '?'), log /tmp/bulkd-redis-$redis_port.log)"
}

# ensure_database: creates the database named in DATABASE_URL unless it is "postgres".
ensure_database() {
  [[ $pg_db == postgres || -z $pg_db ]] && return 0
  local admin_url="$pg_url_scheme://$pg_authority/postgres${pg_query:+?$pg_query}"
  local exists_sql="select 1 from pg_database where datname = '${pg_db//\'/\'\'}'"
  local create_sql="create database \"${pg_db//\"/\"\"}\""
  local out
  if have psql; then
    out=$(PGCONNECT_TIMEOUT=5 psql -w -X -tA "$admin_url" -c "$exists_sql" 2>&1) ||
      die "cannot connect to Postgres as $pg_user: $out"
    [[ $out == 1 ]] && return 0
    if out=$(psql -w -X -q "$admin_url" -c "$create_sql" 2>&1); then
      say "postgres: created database $pg_db"
    elif [[ $out != *"already exists"* ]]; then
      die "cannot create database $pg_db: $out"
    fi
  elif docker_ok && [[ -n $(docker compose ps -q postgres 2>/dev/null) ]]; then
    out=$(docker compose exec -T postgres psql -U postgres -tAc "$exists_sql" 2>&1) || die "cannot query Postgres: $out"
    [[ $out == 1 ]] && return 0
    if out=$(docker compose exec -T postgres psql -U postgres -qc "$create_sql" 2>&1); then
      say "postgres: created database $pg_db"
    elif [[ $out != *"already exists"* ]]; then
      die "cannot create database $pg_db: $out"
    fi
  else
    say "postgres: no psql here to check that database $pg_db exists; create it if needed (apt-get install postgresql-client)"
  fi
}

pg_up || start_postgres
ensure_database
redis_up || start_redis

# The fault tests (make test, make chaos) start redis-server processes of their
# own, to kill and restart, as sentinels and as a cluster (set up with
# redis-cli); they need the programs even when a Redis answers.
if [[ ${NEED_REDIS_SERVER:-} == 1 ]] && { ! have redis-server || ! have redis-cli; }; then
  # The package may fail to start its own service when our Redis holds the
  # port; the programs are installed all the same, which is all the tests need.
  (apt_install redis-server redis-tools) || true
  have redis-server || die "redis-server could not be installed; the fault tests need it (apt-get install redis-server)"
  have redis-cli || die "redis-cli could not be installed; the Redis Cluster test needs it (apt-get install redis-tools)"
fi

# The queue UI test (make test) drives Debian's headless Chromium at this path.
if [[ ${NEED_CHROMIUM:-} == 1 ]] && [[ ! -x /usr/bin/chromium ]]; then
  apt_install chromium
  [[ -x /usr/bin/chromium ]] || die "chromium could not be installed; the queue UI test needs it (apt-get install chromium)"
fi

# The queue UI test (make test) starts Debian's Prometheus at this path, scraping the test's
# METRICS_ADDR, for the UI's charts to read. Only the binary is used: the test runs its own
# on a loopback port, so the daemon the package starts under systemd is stopped and disabled.
if [[ ${NEED_PROMETHEUS:-} == 1 ]] && [[ ! -x /usr/bin/prometheus ]]; then
  apt_install --no-install-recommends prometheus
  [[ -x /usr/bin/prometheus ]] || die "prometheus could not be installed; the queue UI test needs it (apt-get install prometheus)"
  if have systemctl && [[ -d /run/systemd/system ]]; then
    as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi
