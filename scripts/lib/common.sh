# Shared helpers for deedkit's scripts. Source it; do not run it.

DEEDKIT_PACKAGES=(
  build-essential cmake ccache pkg-config
  libpqxx-dev libpq-dev libprotobuf-dev protobuf-compiler libssl-dev libboost-dev
  libgtest-dev libgmock-dev libbenchmark-dev libnats-dev nats-server libcpp-httplib-dev
  libspdlog-dev libcli11-dev postgresql-15 postgresql-client-15
)

log() { printf '[deedkit] %s\n' "$*" >&2; }

# Installs whatever deedkit needs that is missing. apt-get update runs only when a package
# is missing, so a machine that has everything does no network work at all.
ensure_packages() {
  local missing=()
  for package in "${DEEDKIT_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0

  log "installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    $sudo apt-get update >/dev/null
    $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
  }
}

# Configures and builds into build/ (or $DEEDKIT_BUILD_DIR) with two jobs.
build_deedkit() {
  local root=$1; shift
  local build_dir=${DEEDKIT_BUILD_DIR:-$root/build}
  cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$build_dir" -j2
}

PG_BIN=/usr/lib/postgresql/15/bin

# Runs a command as the postgres user when we are root (PostgreSQL refuses to run as root).
as_pg_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# start_private_postgres DIR [extra postgres -c settings...]
# initdb in DIR/data, listening only on a Unix socket in DIR; prints nothing, sets
# DEEDKIT_PG_SOCKET_DIR and DEEDKIT_PG_DATA.
start_private_postgres() {
  local dir=$1; shift
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
  DEEDKIT_PG_DATA=$dir/data
  DEEDKIT_PG_SOCKET_DIR=$dir
  if [ ! -f "$DEEDKIT_PG_DATA/PG_VERSION" ]; then
    as_pg_owner "$PG_BIN/initdb" -D "$DEEDKIT_PG_DATA" -U postgres --auth=trust \
      -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; return 1; }
  fi
  local options="-c listen_addresses='' -c unix_socket_directories='$dir' -c max_connections=300"
  for setting in "$@"; do options+=" -c $setting"; done
  as_pg_owner "$PG_BIN/pg_ctl" -D "$DEEDKIT_PG_DATA" -l "$dir/postgres.log" -w -t 60 \
    -o "$options" start >/dev/null || { cat "$dir/postgres.log" >&2; return 1; }
}

stop_private_postgres() {
  if [ -n "${DEEDKIT_PG_DATA:-}" ] && [ -f "$DEEDKIT_PG_DATA/postmaster.pid" ]; then
    as_pg_owner "$PG_BIN/pg_ctl" -D "$DEEDKIT_PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  return 0
}

# start_private_nats DIR: nats-server with JetStream on a free loopback port; sets
# DEEDKIT_NATS_URL and DEEDKIT_NATS_PID. The server picks the port itself (-p -1) and says
# which in its log, so nothing races for a port chosen beforehand.
start_private_nats() {
  local dir=$1
  mkdir -p "$dir/jetstream"
  nats-server -a 127.0.0.1 -p -1 -js -sd "$dir/jetstream" >"$dir/nats.log" 2>&1 &
  DEEDKIT_NATS_PID=$!
  for _ in $(seq 1 100); do
    if grep -q "Server is ready" "$dir/nats.log"; then
      local port
      port=$(sed -n 's/.*Listening for client connections on 127\.0\.0\.1:\([0-9]*\).*/\1/p' \
        "$dir/nats.log" | head -n 1)
      [ -n "$port" ] || break
      DEEDKIT_NATS_URL="nats://127.0.0.1:$port"
      return 0
    fi
    kill -0 "$DEEDKIT_NATS_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$dir/nats.log" >&2
  return 1
}

stop_private_nats() {
  if [ -n "${DEEDKIT_NATS_PID:-}" ]; then
    kill "$DEEDKIT_NATS_PID" 2>/dev/null || true
    wait "$DEEDKIT_NATS_PID" 2>/dev/null || true
  fi
  return 0
}
