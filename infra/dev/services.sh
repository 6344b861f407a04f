#!/usr/bin/env bash
# Makes the services the tests talk to available on loopback:
#   PostgreSQL  127.0.0.1:5432  trust auth, database "test"
#   Redis       127.0.0.1:6379
#   S3          127.0.0.1:9000  OpenStack Swift + s3api, region us-east-1, test:tester / testing
# Starts what is installed but stopped, installs what is missing (apt, as root), waits for each
# to answer, creates the buckets, and prints `export PM_...=...` lines on stdout (progress goes
# to stderr), so `eval "$(bash infra/dev/services.sh)"` works. Safe to run any number of times,
# also concurrently (runs are serialised by a lock). When everything already runs it only probes.
#
# Usage: services.sh [up|reset|stop-s3|env]
#   up       (default) make everything available
#   reset    empty the test database, flush Redis, wipe the Swift store, then `up`
#   stop-s3  stop the Swift daemons and memcached that this script started
#   env      print the export lines only, without checking anything
#
# Environment:
#   PM_SWIFT_DIR         Swift state (configs, rings, data, logs, pids);
#                        default /var/lib/payload-manager-swift
#   PM_SERVICES_WAIT_S   how long to wait for each service to answer; default 60
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO_ROOT
readonly SWIFT_DIR="${PM_SWIFT_DIR:-/var/lib/payload-manager-swift}"
readonly WAIT_S="${PM_SERVICES_WAIT_S:-60}"

readonly PG_PORT=5432 PG_DB=test PG_USER=postgres
readonly REDIS_PORT=6379
readonly MEMCACHED_PORT=11211
readonly S3_PORT=9000 S3_REGION=us-east-1 S3_ACCESS_KEY=test:tester S3_SECRET=testing
readonly BUCKETS=(payload-manager payload-manager-test)
# Swift storage servers, name:port, as the rings describe them.
readonly SWIFT_SERVERS=(account:6212 container:6211 object:6210)

log() { printf '[services] %s\n' "$*" >&2; }
die() {
  printf '[services] error: %s\n' "$*" >&2
  exit 1
}

print_env() {
  cat <<EOF
export PM_TEST_DATABASE_URL=postgres://${PG_USER}@127.0.0.1:${PG_PORT}/${PG_DB}
export PM_REDIS_URL=redis://127.0.0.1:${REDIS_PORT}
export PM_S3_ENDPOINT=http://127.0.0.1:${S3_PORT}
export PM_S3_REGION=${S3_REGION}
export PM_S3_ACCESS_KEY_ID=${S3_ACCESS_KEY}
export PM_S3_SECRET_ACCESS_KEY=${S3_SECRET}
export PM_S3_FORCE_PATH_STYLE=true
export PM_S3_BUCKET=${BUCKETS[0]}
export PM_S3_TEST_BUCKET=${BUCKETS[1]}
EOF
}

# Root for apt and for starting the system PostgreSQL cluster; sudo -n when it is there.
as_root() {
  if ((EUID == 0)); then
    "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    die "needs root for: $* (run this script as root, or install/start it yourself)"
  fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_until <what> <log file or -> <command...>: polls until the command succeeds, or fails
# after WAIT_S seconds showing the end of the log.
wait_until() {
  local what=$1 logfile=$2
  shift 2
  local deadline=$((SECONDS + WAIT_S))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      if [[ $logfile != - && -f $logfile ]]; then
        printf '[services] last lines of %s:\n' "$logfile" >&2
        tail -n 25 "$logfile" >&2 || true
      fi
      die "$what did not answer within ${WAIT_S}s (PM_SERVICES_WAIT_S raises the limit)"
    fi
    sleep 0.1
  done
}

# --- probes (cheap; they make the fast path) ----------------------------------------------

pg_answers() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; }
pg_db_ok() { psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -w -d "$PG_DB" -tAc 'select 1' >/dev/null 2>&1; }
redis_answers() {
  command -v redis-cli >/dev/null && [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
}
s3_healthy() {
  [[ $(curl -fsS --max-time 2 "http://127.0.0.1:${S3_PORT}/healthcheck" 2>/dev/null) == OK ]]
}
swift_storage_up() {
  local s
  for s in "${SWIFT_SERVERS[@]}"; do port_open "${s#*:}" || return 1; done
}
deb_installed() { [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) == ii* ]]; }

# --- installation -------------------------------------------------------------------------

MISSING_PKGS=()
need_pkg() { MISSING_PKGS+=("$@"); }

collect_missing_packages() {
  command -v curl >/dev/null || need_pkg curl
  if ! command -v pg_isready >/dev/null || ! command -v psql >/dev/null; then need_pkg postgresql-client; fi
  if ! pg_answers && ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
    need_pkg postgresql
  fi
  command -v redis-cli >/dev/null || need_pkg redis-tools
  if ! redis_answers && ! command -v redis-server >/dev/null; then need_pkg redis-server; fi
  if ! { s3_healthy && swift_storage_up; }; then
    local b
    for b in swift-ring-builder swift-proxy-server swift-account-server swift-container-server \
      swift-object-server; do
      if ! command -v "$b" >/dev/null; then
        need_pkg swift swift-proxy swift-object swift-container swift-account
        break
      fi
    done
  fi
  if ! port_open "$MEMCACHED_PORT" && ! command -v memcached >/dev/null; then need_pkg memcached; fi
  # Test-only tools: a third-party gRPC client (run with /usr/bin/python3) and protoc.
  deb_installed python3-grpcio || need_pkg python3-grpcio
  command -v protoc >/dev/null || need_pkg protobuf-compiler
}

install_missing_packages() {
  ((${#MISSING_PKGS[@]} == 0)) && return 0
  command -v apt-get >/dev/null || die "missing (no apt-get to install them): ${MISSING_PKGS[*]}"
  local pkgs
  pkgs=$(printf '%s\n' "${MISSING_PKGS[@]}" | sort -u | tr '\n' ' ')
  log "installing: $pkgs"
  local out
  out=$(mktemp)
  # shellcheck disable=SC2086 # word splitting of the package list is intended
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$out" 2>&1 ||
    ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      $pkgs >>"$out" 2>&1; then
    tail -n 30 "$out" >&2
    rm -f "$out"
    die "apt-get could not install: $pkgs"
  fi
  rm -f "$out"
  # On a systemd host apt also enables Debian's own Swift services (all interfaces, proxy on
  # 8080, configs in /etc/swift). This script runs its own instance, so switch those off.
  if [[ " $pkgs " == *" swift-proxy "* && -d /run/systemd/system ]]; then
    local units
    units=$(systemctl list-unit-files --no-legend 'swift-*' 2>/dev/null | awk '$1 !~ /@/ {print $1}')
    # shellcheck disable=SC2086
    [[ -z $units ]] || as_root systemctl disable --now $units >/dev/null 2>&1 || true
  fi
}

# --- PostgreSQL ---------------------------------------------------------------------------

# The newest cluster version configured, else the newest installed.
pg_version() {
  local base v
  for base in /etc/postgresql /usr/lib/postgresql; do
    v=$(find "$base" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)
    [[ -z $v ]] || break
  done
  [[ -n $v ]] || die "PostgreSQL server is not installed"
  printf '%s' "$v"
}

ensure_postgres() {
  if ! pg_answers; then
    local v
    v=$(pg_version)
    # A fresh `apt-get install postgresql` creates 15/main; create it if something removed it.
    [[ -d /etc/postgresql/$v/main ]] || as_root pg_createcluster "$v" main >&2
    log "starting PostgreSQL $v"
    as_root pg_ctlcluster --skip-systemctl-redirect "$v" main start 9>&- >&2 ||
      die "pg_ctlcluster could not start PostgreSQL $v (see /var/log/postgresql/postgresql-$v-main.log)"
    wait_until "PostgreSQL on 127.0.0.1:$PG_PORT" "/var/log/postgresql/postgresql-$v-main.log" pg_answers
  fi
  pg_db_ok && return 0

  local err
  err=$(psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -w -d postgres -tAc 'select 1' 2>&1 >/dev/null) || true
  if [[ $err == *password* || $err == *authentication* ]]; then
    # Debian's default pg_hba asks for a password on loopback TCP; tests connect without one.
    local v hba
    v=$(pg_version)
    hba=/etc/postgresql/$v/main/pg_hba.conf
    [[ -f $hba ]] || die "cannot log in as $PG_USER on 127.0.0.1 and $hba is not there to fix: $err"
    log "allowing trust auth on loopback in $hba (development machine)"
    as_root sed -i '1i # payload-manager dev (infra/dev/services.sh): loopback TCP without a password\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$v" main reload 9>&- >&2
    wait_until "PostgreSQL trust login" - psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -w -d postgres -tAc 'select 1'
  elif [[ -n $err ]]; then
    die "cannot connect to PostgreSQL as $PG_USER: $err"
  fi
  log "creating database $PG_DB"
  psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -w -d postgres -qc "CREATE DATABASE \"$PG_DB\"" >&2 || pg_db_ok ||
    die "could not create database $PG_DB"
}

# --- Redis --------------------------------------------------------------------------------

ensure_redis() {
  redis_answers && return 0
  local logfile=/dev/null
  [[ -d /var/log/redis && -w /var/log/redis ]] && logfile=/var/log/redis/payload-manager-dev.log
  log "starting Redis on 127.0.0.1:$REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --logfile "$logfile" 9>&- >&2 || die "redis-server did not start"
  wait_until "Redis on 127.0.0.1:$REDIS_PORT" "$logfile" redis_answers
}

# --- Swift (S3) ---------------------------------------------------------------------------

SWIFT_CONF_CHANGED=0

# put_file <path> <content>: writes only when the content differs, and notes the change.
put_file() {
  if [[ ! -f $1 ]] || [[ $(<"$1") != "$2" ]]; then
    printf '%s\n' "$2" >"$1"
    SWIFT_CONF_CHANGED=1
  fi
}

write_swift_config() {
  local etc=$SWIFT_DIR/etc user
  user=$(id -un)
  mkdir -p "$etc" "$SWIFT_DIR/node/d1" "$SWIFT_DIR/log" "$SWIFT_DIR/run"

  # The hash prefix/suffix only has to stay the same for the life of this store; a fixed value
  # is fine for a throwaway development store and keeps reruns idempotent.
  put_file "$etc/swift.conf" "[swift-hash]
swift_hash_path_suffix = payload-manager-dev-suffix
swift_hash_path_prefix = payload-manager-dev-prefix

[storage-policy:0]
name = Policy-0
default = yes"

  local s name port
  for s in "${SWIFT_SERVERS[@]}"; do
    name=${s%%:*} port=${s#*:}
    put_file "$etc/$name-server.conf" "[DEFAULT]
devices = $SWIFT_DIR/node
mount_check = false
bind_ip = 127.0.0.1
bind_port = $port
workers = 1
swift_dir = $etc
user = $user

[pipeline:main]
pipeline = $name-server

[app:$name-server]
use = egg:swift#$name"
    if [[ ! -f $etc/$name.ring.gz ]]; then
      log "building the $name ring"
      rm -f "$etc/$name.builder"
      swift-ring-builder "$etc/$name.builder" create 8 1 1 >/dev/null
      swift-ring-builder "$etc/$name.builder" add "r1z1-127.0.0.1:$port/d1" 100 >/dev/null
      # rebalance exits 1 with a warning about min_part_hours on a one-device ring; the ring
      # file is what matters.
      swift-ring-builder "$etc/$name.builder" rebalance >/dev/null || true
      [[ -f $etc/$name.ring.gz ]] || die "swift-ring-builder did not write $etc/$name.ring.gz"
    fi
  done

  # slo is required for S3 multipart uploads; cache (memcached) holds tempauth tokens.
  put_file "$etc/proxy-server.conf" "[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $S3_PORT
workers = 1
swift_dir = $etc
user = $user

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$MEMCACHED_PORT

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:s3api]
use = egg:swift#s3api
location = $S3_REGION
s3_acl = false

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = $S3_SECRET .admin

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo"
}

# The pid in run/<name>.pid is alive and is the process this script started with that config.
daemon_alive() {
  local pidfile=$SWIFT_DIR/run/$1.pid pid
  [[ -f $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2"
}

# stop_daemons <name...>: SIGTERM to each recorded pid at once (a Swift server takes about 1.5 s
# to exit), then SIGKILL whatever is left after 10 s.
stop_daemons() {
  local name pidfile pid pids=() i
  for name in "$@"; do
    pidfile=$SWIFT_DIR/run/$name.pid
    [[ -f $pidfile ]] || continue
    pid=$(<"$pidfile")
    rm -f "$pidfile"
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && pids+=("$pid")
  done
  for ((i = 0; i < 100 && ${#pids[@]} > 0; i++)); do
    for pid in "${!pids[@]}"; do kill -0 "${pids[$pid]}" 2>/dev/null || unset "pids[$pid]"; done
    ((${#pids[@]} == 0)) || sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
}

# start_daemon <name> <command...>: detached (own session, no inherited descriptors, so it
# outlives this script and does not hold a caller's pipe open), output in log/<name>.log.
start_daemon() {
  local name=$1
  shift
  printf -- '---- %s started by infra/dev/services.sh: %s\n' "$(date -Is)" "$*" >>"$SWIFT_DIR/log/$name.log"
  setsid nohup "$@" </dev/null >>"$SWIFT_DIR/log/$name.log" 2>&1 9>&- &
  printf '%s\n' "$!" >"$SWIFT_DIR/run/$name.pid"
}

ensure_memcached() {
  port_open "$MEMCACHED_PORT" && return 0
  log "starting memcached on 127.0.0.1:$MEMCACHED_PORT"
  local args=(-l 127.0.0.1 -p "$MEMCACHED_PORT" -m 64)
  ((EUID == 0)) && args+=(-u memcache)
  start_daemon memcached memcached "${args[@]}"
  wait_until "memcached on 127.0.0.1:$MEMCACHED_PORT" "$SWIFT_DIR/log/memcached.log" port_open "$MEMCACHED_PORT"
}

ensure_swift() {
  write_swift_config
  local s name conf
  if ((SWIFT_CONF_CHANGED)) && compgen -G "$SWIFT_DIR/run/*-server.pid" >/dev/null; then
    log "Swift configuration changed; restarting its servers"
    stop_daemons account-server container-server object-server proxy-server
  fi
  ensure_memcached
  for s in "${SWIFT_SERVERS[@]}" proxy:$S3_PORT; do
    name=${s%%:*}-server
    conf=$SWIFT_DIR/etc/$name.conf
    if daemon_alive "$name" "$conf" || port_open "${s#*:}"; then
      continue
    fi
    log "starting swift-$name"
    # -v logs to the console, i.e. into log/<name>.log (there is no syslog here).
    start_daemon "$name" "swift-$name" "$conf" -v
  done
  for s in "${SWIFT_SERVERS[@]}"; do
    name=${s%%:*}-server
    wait_until "swift-$name on 127.0.0.1:${s#*:}" "$SWIFT_DIR/log/$name.log" port_open "${s#*:}"
  done
  if ! daemon_alive proxy-server "$SWIFT_DIR/etc/proxy-server.conf" && port_open "$S3_PORT" && ! s3_healthy; then
    log "127.0.0.1:$S3_PORT is taken by something that is not this Swift proxy:"
    ss -ltnp "sport = :$S3_PORT" >&2 || true
  fi
  wait_until "Swift proxy (S3) on 127.0.0.1:$S3_PORT/healthcheck" "$SWIFT_DIR/log/proxy-server.log" s3_healthy
}

# Prints the tempauth token and storage URL (one per line) for test:tester.
swift_auth() {
  curl -fsS --max-time 5 -o /dev/null -D - -H "X-Auth-User: $S3_ACCESS_KEY" -H "X-Auth-Key: $S3_SECRET" \
    "http://127.0.0.1:$S3_PORT/auth/v1.0" |
    tr -d '\r' | awk -F': ' 'tolower($1)=="x-auth-token"{t=$2} tolower($1)=="x-storage-url"{u=$2} END{print t; print u}'
}

# Buckets are Swift containers of the test account; checking them through the Swift API is a
# few milliseconds, so only a missing bucket costs a Node start.
missing_buckets() {
  local auth token url b code
  auth=$(swift_auth) || die "Swift tempauth refused $S3_ACCESS_KEY (see $SWIFT_DIR/log/proxy-server.log)"
  token=$(sed -n 1p <<<"$auth") url=$(sed -n 2p <<<"$auth")
  [[ -n $token && -n $url ]] || die "Swift tempauth returned no token"
  for b in "${BUCKETS[@]}"; do
    code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -I -H "X-Auth-Token: $token" "$url/$b")
    case $code in
    2??) ;;
    404) printf '%s\n' "$b" ;;
    *) die "checking bucket $b answered HTTP $code (see $SWIFT_DIR/log/proxy-server.log)" ;;
    esac
  done
}

# Creates the buckets through S3 with the AWS SDK from the repository (which also proves the
# S3 credentials work). Exit status 3: the SDK is not installed (a fresh clone before npm ci).
create_buckets_s3() {
  # shellcheck disable=SC2016 # the JavaScript is meant to be single-quoted
  PM_RESOLVE_FROM="$REPO_ROOT/apps/api/package.json" PM_BUCKETS="$*" \
    PM_S3_ENDPOINT="http://127.0.0.1:$S3_PORT" PM_S3_REGION=$S3_REGION \
    PM_S3_ACCESS_KEY_ID=$S3_ACCESS_KEY PM_S3_SECRET_ACCESS_KEY=$S3_SECRET \
    node --no-warnings --input-type=module -e '
import { createRequire } from "node:module";
const env = process.env;
let sdk;
try {
  sdk = createRequire(env.PM_RESOLVE_FROM)("@aws-sdk/client-s3");
} catch {
  process.exit(3);
}
const { S3Client, CreateBucketCommand } = sdk;
const s3 = new S3Client({
  endpoint: env.PM_S3_ENDPOINT,
  region: env.PM_S3_REGION,
  forcePathStyle: true,
  credentials: { accessKeyId: env.PM_S3_ACCESS_KEY_ID, secretAccessKey: env.PM_S3_SECRET_ACCESS_KEY },
});
for (const bucket of env.PM_BUCKETS.split(" ")) {
  try {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    console.error(`[services] created bucket ${bucket}`);
  } catch (err) {
    if (err?.name !== "BucketAlreadyOwnedByYou") throw err;
  }
}
'
}

create_buckets_swift() {
  local auth token url b
  auth=$(swift_auth)
  token=$(sed -n 1p <<<"$auth") url=$(sed -n 2p <<<"$auth")
  for b in "$@"; do
    curl -fsS --max-time 10 -o /dev/null -X PUT -H "X-Auth-Token: $token" "$url/$b" ||
      die "could not create bucket $b"
    log "created bucket $b (Swift API)"
  done
}

ensure_buckets() {
  local list missing
  list=$(missing_buckets) # not `< <(...)`: a failure in there must stop the script
  [[ -n $list ]] || return 0
  mapfile -t missing <<<"$list"
  local rc=0
  command -v node >/dev/null && { create_buckets_s3 "${missing[@]}" || rc=$?; } || rc=3
  if ((rc == 3)); then
    log "@aws-sdk/client-s3 not installed yet; creating buckets through the Swift API"
    create_buckets_swift "${missing[@]}"
  elif ((rc != 0)); then
    die "creating buckets through S3 failed (see $SWIFT_DIR/log/proxy-server.log)"
  fi
}

# --- commands -----------------------------------------------------------------------------

cmd_up() {
  local started=${EPOCHREALTIME/./}
  collect_missing_packages
  install_missing_packages
  ensure_postgres
  ensure_redis
  ensure_swift
  ensure_buckets
  local ms=$(((${EPOCHREALTIME/./} - started) / 1000))
  log "ready in $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s${PM_SWIFT_DIR:+ (PM_SWIFT_DIR=$SWIFT_DIR)}"
  print_env
}

cmd_stop_s3() {
  stop_daemons proxy-server account-server container-server object-server memcached
  log "stopped the Swift daemons started from $SWIFT_DIR"
}

cmd_reset() {
  if pg_answers; then
    log "recreating database $PG_DB"
    psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -w -d postgres -qc "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >&2
  fi
  if redis_answers; then
    log "flushing Redis"
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" flushall >/dev/null
  fi
  cmd_stop_s3
  case $SWIFT_DIR in
  / | "") die "refusing to delete PM_SWIFT_DIR=$SWIFT_DIR" ;;
  esac
  log "deleting $SWIFT_DIR"
  rm -rf -- "$SWIFT_DIR"
  cmd_up
}

main() {
  local cmd=${1:-up}
  if [[ $cmd == env ]]; then
    print_env
    return 0
  fi
  case $cmd in
  up | reset | stop-s3) ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    return 0
    ;;
  *) die "unknown command: $cmd (up, reset, stop-s3, env)" ;;
  esac

  # One run at a time; a second waits and then finds everything running.
  exec 9>"${TMPDIR:-/tmp}/payload-manager-services.lock"
  flock -w "$((WAIT_S * 4))" 9 || die "another services.sh run holds the lock"
  case $cmd in
  up) cmd_up ;;
  reset) cmd_reset ;;
  stop-s3) cmd_stop_s3 ;;
  esac
}

main "$@"
