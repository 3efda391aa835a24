# shellcheck shell=bash
# Shared by up, down and ctl: where a cluster's parts live, which ports they
# use, and how each part is started and stopped. Sourced, never run.
#
# A cluster folder DIR holds:
#   cluster.env          the settings `up` chose (ports, binary, manifest);
#                        down and ctl read them back, so they never guess
#   pg/a, pg/b           PostgreSQL data folders: a starts as the primary,
#                        b as its synchronous standby (roles swap on failover)
#   pg/a.log, pg/b.log   their server logs
#   nodes/N/nebula.log   Nebula node N's output (banner and log lines)
#   haproxy/haproxy.cfg  the balancer's generated config; haproxy.log its log
#   cache/               the compile cache every node shares
#   pids/                one file per process started (node-N, haproxy,
#                        proxy-N); PostgreSQL keeps its own postmaster.pid
#
# Ports, from CLUSTER_PORT_BASE (B, default 7400):
#   B        HAProxy: the site        B+1    HAProxy statistics (/, ;csv)
#   B+2      PostgreSQL a             B+3    PostgreSQL b
#   B+10+N   node N                   B+20+N node N's metrics (--admin)
#   B+30+N   node N's database proxy (ctl proxy-node), when there is one

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

die() {
    echo "cluster: $*" >&2
    exit 1
}

say() { echo "cluster: $*"; }

# The folder argument, made absolute (default .cluster in the repository).
cluster_dir() {
    local dir=${1:-$REPO/.cluster}
    mkdir -p "$dir"
    (cd "$dir" && pwd)
}

# PostgreSQL's programs are not on PATH on Debian: they live in the version's
# bindir (pg_config knows it when the -dev package is there).
pg_bindir() {
    local d
    for d in "${PG_BINDIR:-}" "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/*/bin; do
        if [[ -n "$d" && -x "$d/initdb" ]]; then
            echo "$d"
            return
        fi
    done
    die "no PostgreSQL server programs (initdb) found: apt-get install postgresql, or set PG_BINDIR"
}

# The servers refuse to run as root, so as root they run as an unprivileged
# user (CLUSTER_PG_USER, default postgres, which Debian's package makes).
as_pg() {
    if [[ $(id -u) == 0 ]]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

# Reads DIR/cluster.env (written by `up`) and derives every path and port.
load_env() {
    DIR=$1
    [[ -f $DIR/cluster.env ]] || die "$DIR is not a cluster folder (no cluster.env): run deploy/cluster/up first"
    # shellcheck source=/dev/null
    source "$DIR/cluster.env"
    derive
}

# shellcheck disable=SC2034 # used by the scripts that source this.
derive() {
    HAPROXY_PORT=$PORT_BASE
    STATS_PORT=$((PORT_BASE + 1))
    PG_PORT_A=$((PORT_BASE + 2))
    PG_PORT_B=$((PORT_BASE + 3))
    PIDS=$DIR/pids
    PG_DIR=$DIR/pg
    DB_URL="postgres://nebula@127.0.0.1:$PG_PORT_A,127.0.0.1:$PG_PORT_B/academemes?target_session_attrs=read-write"
}

node_port() { echo $((PORT_BASE + 10 + $1)); }
admin_port() { echo $((PORT_BASE + 20 + $1)); }
proxy_port() { echo $((PORT_BASE + 30 + $1)); }
pg_port() { if [[ $1 == a ]]; then echo "$PG_PORT_A"; else echo "$PG_PORT_B"; fi; }

alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

pid_of() { cat "$PIDS/$1" 2>/dev/null || true; }

# Waits up to $2 seconds for `$1` (a command) to succeed.
wait_for() {
    local what=$1 end=$((SECONDS + $2))
    until eval "$what" >/dev/null 2>&1; do
        ((SECONDS < end)) || return 1
        sleep 0.1
    done
}

# ------------------------------------------------------------------ PostgreSQL

pg_running() { [[ -f $PG_DIR/$1/postmaster.pid ]] && alive "$(head -1 "$PG_DIR/$1/postmaster.pid")"; }

pg_start() {
    local name=$1
    pg_running "$name" && return 0
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/$name" -l "$PG_DIR/$name.log" -w -t 60 start >/dev/null ||
        die "PostgreSQL $name did not start; see $PG_DIR/$name.log"
}

# mode: fast (roll back sessions, clean shutdown) or immediate (like a crash).
pg_stop() {
    local name=$1 mode=${2:-fast}
    pg_running "$name" || return 0
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/$name" -m "$mode" -w -t 60 stop >/dev/null
}

# SQL as the superuser on one server; prints unaligned rows.
pg_sql() {
    local name=$1
    shift
    psql -X -q -At -h 127.0.0.1 -p "$(pg_port "$name")" -U postgres -d "${PGDATABASE:-postgres}" \
        -v ON_ERROR_STOP=1 "$@"
}

# Which server is the primary now: the running one not in recovery.
pg_primary() {
    local name
    for name in a b; do
        if pg_running "$name" && [[ $(pg_sql "$name" -c 'SELECT pg_is_in_recovery()' 2>/dev/null) == f ]]; then
            echo "$name"
            return 0
        fi
    done
    return 1
}

# ------------------------------------------------------------------ Nebula

# Starts node N (its own process group, so a test's Ctrl-C does not reach
# it); DB is the URL it connects with (default: the cluster's).
node_start() {
    local n=$1 db=${2:-$DB_URL} dir=$DIR/nodes/$1
    alive "$(pid_of "node-$n")" && die "node $n is already running (pid $(pid_of "node-$n"))"
    mkdir -p "$dir"
    local args=(up -f "$MANIFEST" --listen "127.0.0.1:$(node_port "$n")" --admin "127.0.0.1:$(admin_port "$n")"
        --db "$db" --no-build --cache-dir "$CACHE_DIR" --drain-delay-ms "$DRAIN_DELAY_MS")
    # shellcheck disable=SC2206 # NODE_ARGS is a list of words by design.
    args+=($NODE_ARGS)
    echo "--- $(date -Is) nebula ${args[*]}" >>"$dir/nebula.log"
    setsid "$NEBULA" "${args[@]}" </dev/null >>"$dir/nebula.log" 2>&1 &
    echo $! >"$PIDS/node-$n"
}

# Waits until node N answers its liveness check (no database round trip).
node_wait() {
    local n=$1 url
    url="http://127.0.0.1:$(node_port "$n")/.well-known/nebula/health?live"
    wait_for "alive $(pid_of "node-$n") && curl -fsS -o /dev/null --max-time 2 '$url'" "${2:-120}" ||
        die "node $n did not come up; see $DIR/nodes/$n/nebula.log"
}

# signal: TERM (drain: health fails, keeps serving DRAIN_DELAY_MS, then
# finishes what is in flight) or KILL.
node_stop() {
    local n=$1 sig=${2:-TERM} pid
    pid=$(pid_of "node-$n")
    if alive "$pid"; then
        kill -s "$sig" "$pid"
        # Drain delay + shutdown grace (10 s by default) + a margin.
        wait_for "! alive $pid" $((DRAIN_DELAY_MS / 1000 + 15)) || kill -s KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDS/node-$n"
}

# ------------------------------------------------------------------ proxies

# A TCP proxy (socat) between node N and the current primary: `ctl cut-node`
# kills it, and with it every connection it carries.
proxy_start() {
    local n=$1 primary
    primary=$(pg_primary) || die "no PostgreSQL primary is running"
    setsid socat "TCP-LISTEN:$(proxy_port "$n"),bind=127.0.0.1,reuseaddr,fork" \
        "TCP:127.0.0.1:$(pg_port "$primary")" </dev/null >>"$DIR/nodes/$n/proxy.log" 2>&1 &
    echo $! >"$PIDS/proxy-$n"
    wait_for "(exec 3<>/dev/tcp/127.0.0.1/$(proxy_port "$n"))" 10 || die "the proxy for node $n did not start"
}

# socat forks a child per connection: the whole process group goes.
proxy_stop() {
    local pid
    pid=$(pid_of "proxy-$1")
    if alive "$pid"; then
        kill -s KILL -- "-$pid" 2>/dev/null || kill -s KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDS/proxy-$1"
}

# ------------------------------------------------------------------ HAProxy

haproxy_start() {
    alive "$(pid_of haproxy)" && return 0
    haproxy -c -q -f "$DIR/haproxy/haproxy.cfg" || die "the generated HAProxy config is invalid"
    # -db: stay in the foreground (its log goes to stdout), here in the background.
    setsid haproxy -db -f "$DIR/haproxy/haproxy.cfg" </dev/null >>"$DIR/haproxy/haproxy.log" 2>&1 &
    echo $! >"$PIDS/haproxy"
}

haproxy_stop() {
    local pid
    pid=$(pid_of haproxy)
    if alive "$pid"; then
        kill -s USR1 "$pid" # soft stop: finish what is in flight
        wait_for "! alive $pid" 10 || kill -s KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDS/haproxy"
}

# The statistics as CSV: one line per frontend, backend and server.
haproxy_stats() { curl -fsS --max-time 5 "http://127.0.0.1:$STATS_PORT/;csv"; }

# How many servers of backend `nodes` HAProxy sees as UP.
nodes_up() { haproxy_stats | awk -F, '$1 == "nodes" && $2 != "BACKEND" && $18 == "UP" { n++ } END { print n + 0 }'; }
