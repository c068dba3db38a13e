# shellcheck shell=bash
# Helpers shared by deploy/local/*.sh. Sourced by those scripts, not run directly.

PGFLEET_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PGFLEET_LOCAL_DIR="$PGFLEET_REPO/.pgfleet-local"

pgf_die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

pgf_warn() {
    printf 'warning: %s\n' "$*" >&2
}

pgf_have() {
    command -v "$1" >/dev/null 2>&1
}

# Runs a command as root: directly when we are root, else through sudo (never prompting
# when there is no terminal, so CI fails with a message instead of hanging).
pgf_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif pgf_have sudo; then
        if [ -t 0 ]; then sudo "$@"; else sudo -n "$@"; fi
    else
        pgf_die "root is needed to run: $* (run as root or install sudo)"
    fi
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
pgf_port_open() {
    timeout 3 bash -c ": >/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Puts the rustup toolchain (~/.cargo/bin) on PATH when it exists.
pgf_cargo_path() {
    local bin="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
    if [ -d "$bin" ]; then
        case ":$PATH:" in
        *":$bin:"*) ;;
        *) PATH="$bin:$PATH" ;;
        esac
    fi
    export PATH
}

_PGF_APT_UPDATED=0

# apt-get install, with one `apt-get update` per script run. Output goes to
# .pgfleet-local/apt.log; its tail is shown when apt fails.
pgf_apt_install() {
    pgf_have apt-get || pgf_die "apt-get not found: install $* with your system's package manager"
    mkdir -p "$PGFLEET_LOCAL_DIR"
    local log="$PGFLEET_LOCAL_DIR/apt.log"
    local opts=(-o DPkg::Lock::Timeout=300 -q)
    if [ "$_PGF_APT_UPDATED" -eq 0 ]; then
        if ! pgf_as_root apt-get "${opts[@]}" update >>"$log" 2>&1; then
            tail -n 20 "$log" >&2
            pgf_die "apt-get update failed (full log: $log)"
        fi
        _PGF_APT_UPDATED=1
    fi
    if ! pgf_as_root env DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" install -y "$@" >>"$log" 2>&1; then
        tail -n 20 "$log" >&2
        pgf_warn "apt-get install $* failed (full log: $log)"
        return 1
    fi
}

# Milliseconds since the epoch (bash 5's EPOCHREALTIME, else whole seconds).
pgf_now_ms() {
    if [ -n "${EPOCHREALTIME:-}" ]; then
        local t=${EPOCHREALTIME/[.,]/}
        echo $((10#$t / 1000))
    else
        echo $(($(date +%s) * 1000))
    fi
}

# Formats a duration in milliseconds as seconds with one decimal.
pgf_fmt_ms() {
    printf '%d.%ds' $(($1 / 1000)) $((($1 % 1000) / 100))
}

# Make sure database DB holds bench_db.sql at SCALE (order_items = 8M x SCALE rows), loading it
# when it does not. Used by the benchmark scripts.
pgf_bench_db() {
    local scale=$1 db=$2 expected have
    expected=$(awk -v s="$scale" 'BEGIN { printf "%d", 8000000 * s + 0.5 }')
    have=$(psql -X -q -h 127.0.0.1 -U postgres -d "$db" -tAc "SELECT count(*) FROM order_items" 2>/dev/null || echo 0)
    if [ "$have" != "$expected" ]; then
        echo "loading bench database $db at scale $scale ($expected order_items rows)"
        bash "$PGFLEET_REPO/deploy/local/bench_db.sh" --scale "$scale" --db "$db"
    fi
}

# Build the release binaries the benchmarks time.
pgf_release_build() {
    echo "building release binaries"
    (cd "$PGFLEET_REPO" && cargo build --release -q -p pgfleet-coordinator -p pgfleet-worker)
}

# pgf_delete_namespace NS: delete a pgfleet namespace's queues and dead-letter exchange from the
# local RabbitMQ (benchmarks make a fresh namespace per run; quorum queues left behind slow every
# later broker start). Best effort.
pgf_delete_namespace() {
    local q
    for q in tasks results dead; do
        pgf_as_root timeout 20 rabbitmqctl -q delete_queue "$1.$q" >/dev/null 2>&1 || true
    done
    curl -s -o /dev/null -u guest:guest -X DELETE "http://127.0.0.1:15672/api/exchanges/%2F/$1.dlx" || true
}
