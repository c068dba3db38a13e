#!/usr/bin/env bash
# The local services pgfleet's tests need, all on loopback:
#   PostgreSQL (127.0.0.1:5432, trust auth, with PostGIS), RabbitMQ (127.0.0.1:5672, guest/guest,
#   with its management API on 127.0.0.1:15672) and an S3-compatible server, s3s-fs
#   (127.0.0.1:9000, pgfleet / pgfleet-secret).
#
# usage: deploy/local/services.sh [start|stop|status]     (default: start)
#
#   start   installs (Debian packages, `cargo install s3s-fs`) and starts whatever does not answer
#           yet; leaves running services alone. Idempotent; a few seconds when all runs already.
#   stop    stops only what this script started itself (s3s-fs); PostgreSQL and RabbitMQ are
#           system services and stay up.
#   status  one line per service; exits 3 when one of them does not answer.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_PORT=5432
AMQP_PORT=5672
AMQP_API_PORT=15672
S3_PORT=9000
S3_ACCESS_KEY=pgfleet
S3_SECRET_KEY=pgfleet-secret
S3S_VERSION=0.14.1
S3_DATA="$PGFLEET_LOCAL_DIR/s3"
S3_LOG="$PGFLEET_LOCAL_DIR/s3s-fs.log"
S3_PIDFILE="$PGFLEET_LOCAL_DIR/s3s-fs.pid"
PG_STATE_DB=pgfleet_state
MARK="pgfleet deploy/local/services.sh"

pgf_cargo_path

# ---------------------------------------------------------------- PostgreSQL

pg_ready() {
    if pgf_have pg_isready; then
        pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -t 2
    else
        pgf_port_open "$PG_PORT"
    fi
}

pg_psql() {
    psql -X -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -Atq "$@"
}

# Newest PostgreSQL major version with a Debian cluster, else the newest installed server.
pg_local_version() {
    local v
    v=$(find /etc/postgresql -mindepth 2 -maxdepth 2 -name main -type d 2>/dev/null |
        awk -F/ '{print $4}' | sort -V | tail -n 1)
    if [ -z "$v" ]; then
        v=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null |
            awk -F/ '{print $5}' | sort -V | tail -n 1)
    fi
    printf '%s' "$v"
}

# Loopback-only listening and trust auth for local connections, in the Debian cluster's config.
pg_configure() {
    local dir="/etc/postgresql/$1/main"
    local conf="$dir/conf.d/50-pgfleet-local.conf" hba="$dir/pg_hba.conf" tmp
    pgf_as_root mkdir -p "$dir/conf.d"
    if ! pgf_as_root test -f "$conf"; then
        printf "# %s: loopback only\nlisten_addresses = '127.0.0.1'\nport = %s\n" "$MARK" "$PG_PORT" |
            pgf_as_root tee "$conf" >/dev/null
        # postgresql.conf of Debian clusters includes conf.d; make sure this one does.
        if ! pgf_as_root grep -Eq "^[[:space:]]*include_dir[[:space:]]*=[[:space:]]*'conf.d'" "$dir/postgresql.conf"; then
            echo "include_dir = 'conf.d'" | pgf_as_root tee -a "$dir/postgresql.conf" >/dev/null
        fi
    fi
    if ! pgf_as_root grep -qF "$MARK" "$hba"; then
        # First matching line wins, so these go on top.
        tmp=$(mktemp)
        {
            printf '# %s: trust on the local socket and loopback (development only)\n' "$MARK"
            printf 'local   all   all                  trust\n'
            printf 'host    all   all   127.0.0.1/32   trust\n'
            printf 'host    all   all   ::1/128        trust\n'
            pgf_as_root cat "$hba"
        } >"$tmp"
        pgf_as_root cp "$tmp" "$hba"
        rm -f "$tmp"
    fi
}

pg_start() {
    local how="found running" installed=0 v
    if ! pg_ready; then
        if ! pgf_have pg_ctlcluster || [ -z "$(pg_local_version)" ]; then
            echo "postgresql: not installed, installing postgresql postgresql-contrib (apt)..."
            pgf_apt_install postgresql postgresql-contrib || true
            { pgf_have pg_ctlcluster && [ -n "$(pg_local_version)" ]; } || pgf_die "could not install PostgreSQL"
            installed=1
        fi
        v=$(pg_local_version)
        [ -n "$v" ] || pgf_die "PostgreSQL is installed but no server was found under /usr/lib/postgresql"
        if [ ! -d "/etc/postgresql/$v/main" ]; then
            pgf_as_root pg_createcluster "$v" main >/dev/null
        fi
        pg_configure "$v"
        if pgf_as_root pg_ctlcluster "$v" main status >/dev/null 2>&1; then
            # Running (e.g. started by the package with its default auth and listen address)
            # but not usable on 127.0.0.1:5432: restart with the config above.
            pgf_as_root pg_ctlcluster --skip-systemctl-redirect "$v" main restart
            how="restarted (cluster $v/main)"
        else
            pgf_as_root pg_ctlcluster --skip-systemctl-redirect "$v" main start
            how="started (cluster $v/main)"
        fi
        [ "$installed" -eq 0 ] || how="installed and $how"
        local i
        for i in $(seq 60); do
            pg_ready && break
            [ "$i" -eq 60 ] && pgf_die "PostgreSQL did not answer on 127.0.0.1:$PG_PORT within 60 s (see /var/log/postgresql/)"
            sleep 1
        done
    fi

    # Client tools (tests and docs use psql, pg_dump and pg_restore).
    if ! pgf_have psql || ! pgf_have pg_dump || ! pgf_have pg_restore; then
        echo "postgresql: installing the client tools (apt)..."
        pgf_apt_install postgresql-client || pgf_die "could not install postgresql-client"
    fi

    local ver major
    ver=$(pg_psql -c 'SHOW server_version_num') ||
        pgf_die "PostgreSQL answers on 127.0.0.1:$PG_PORT but user postgres cannot log in without a password (needs trust auth for 127.0.0.1 in pg_hba.conf)"
    major=$((ver / 10000))

    # PostGIS, for the tests that CREATE EXTENSION postgis.
    local postgis="installed"
    if [ ! -f "/usr/share/postgresql/$major/extension/postgis.control" ]; then
        echo "postgresql: installing postgresql-$major-postgis-3 (apt)..."
        if pgf_apt_install "postgresql-$major-postgis-3" &&
            [ -f "/usr/share/postgresql/$major/extension/postgis.control" ]; then
            postgis="just installed"
        else
            postgis="MISSING"
            pgf_warn "PostGIS for PostgreSQL $major could not be installed; tests that CREATE EXTENSION postgis will fail"
        fi
    fi

    # The coordinator's state database (PGFLEET_STATE_URL in env.sh).
    local state_db="present"
    if [ -z "$(pg_psql -c "SELECT 1 FROM pg_database WHERE datname = '$PG_STATE_DB'")" ]; then
        state_db="created"
        pg_psql -c "CREATE DATABASE $PG_STATE_DB" 2>/dev/null ||
            [ -n "$(pg_psql -c "SELECT 1 FROM pg_database WHERE datname = '$PG_STATE_DB'")" ] ||
            pgf_die "could not create database $PG_STATE_DB"
    fi

    echo "postgresql: $how on 127.0.0.1:$PG_PORT (server $major, PostGIS $postgis, database $PG_STATE_DB $state_db)"
}

pg_status() {
    if pg_ready; then
        echo "postgresql: running on 127.0.0.1:$PG_PORT"
    else
        echo "postgresql: NOT answering on 127.0.0.1:$PG_PORT"
        return 1
    fi
}

# ---------------------------------------------------------------- RabbitMQ

# wait_for_port PORT SECONDS MESSAGE: wait until 127.0.0.1:PORT accepts, or die with MESSAGE.
wait_for_port() {
    local i
    for i in $(seq "$2"); do
        pgf_port_open "$1" && return 0
        sleep 1
    done
    pgf_die "$3"
}

rabbitmq_version() {
    dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || true
}

# Loopback-only config, written only when this script installs RabbitMQ (never over an existing
# broker's config), and before the package is installed so that its own start already uses it.
rabbitmq_write_config() {
    pgf_as_root mkdir -p /etc/rabbitmq
    if ! pgf_as_root test -e /etc/rabbitmq/rabbitmq.conf; then
        printf '# %s: AMQP on loopback only\nlisteners.tcp.default = 127.0.0.1:%s\nloopback_users.guest = true\n' \
            "$MARK" "$AMQP_PORT" | pgf_as_root tee /etc/rabbitmq/rabbitmq.conf >/dev/null
    fi
    if ! pgf_as_root test -e /etc/rabbitmq/rabbitmq-env.conf; then
        printf '# %s: node name, epmd and distribution on loopback only\nNODENAME=rabbit@localhost\nERL_EPMD_ADDRESS=127.0.0.1\nexport ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"\n' \
            "$MARK" | pgf_as_root tee /etc/rabbitmq/rabbitmq-env.conf >/dev/null
    fi
}

# The management API (queue counts incl. unacknowledged messages, which AMQP does not report)
# on loopback only. On a running broker: the listener address is set in the node first (and
# kept in rabbitmq.conf for its next start), then the plugin is enabled; no restart.
rabbitmq_enable_api() {
    pgf_port_open "$AMQP_API_PORT" && return 0
    PATH="$PATH:/usr/sbin"
    if ! pgf_as_root grep -q '^management.tcp.ip' /etc/rabbitmq/rabbitmq.conf 2>/dev/null; then
        printf '# %s: management API on loopback only\nmanagement.tcp.ip = 127.0.0.1\nmanagement.tcp.port = %s\n' \
            "$MARK" "$AMQP_API_PORT" | pgf_as_root tee -a /etc/rabbitmq/rabbitmq.conf >/dev/null
    fi
    pgf_as_root timeout 60 rabbitmqctl -q eval \
        "application:set_env(rabbitmq_management, tcp_config, [{ip, \"127.0.0.1\"}, {port, $AMQP_API_PORT}], [{persistent, true}])." >/dev/null ||
        pgf_die "could not set the RabbitMQ management listener to 127.0.0.1:$AMQP_API_PORT"
    pgf_as_root timeout 120 rabbitmq-plugins -q enable rabbitmq_management >/dev/null ||
        pgf_die "could not enable the rabbitmq_management plugin"
    wait_for_port "$AMQP_API_PORT" 30 "the RabbitMQ management API does not listen on 127.0.0.1:$AMQP_API_PORT"
    echo "rabbitmq: management API enabled on 127.0.0.1:$AMQP_API_PORT"
}

rabbitmq_start() {
    local how="found running"
    if ! pgf_port_open "$AMQP_PORT"; then
        if ! pgf_have rabbitmq-server && [ ! -x /usr/sbin/rabbitmq-server ]; then
            echo "rabbitmq: not installed, installing rabbitmq-server (apt)..."
            rabbitmq_write_config
            # A failing start inside the package's postinst (no init system) is not fatal here:
            # the broker is started below.
            pgf_apt_install rabbitmq-server || true
            [ -x /usr/sbin/rabbitmq-server ] || pgf_die "could not install rabbitmq-server"
            how="installed and started"
        else
            how="started"
        fi
        PATH="$PATH:/usr/sbin"
        if ! pgf_port_open "$AMQP_PORT"; then
            mkdir -p "$PGFLEET_LOCAL_DIR"
            # Fails harmlessly when the package's own start already launched the node.
            pgf_as_root rabbitmq-server -detached >>"$PGFLEET_LOCAL_DIR/rabbitmq-start.log" 2>&1 || true
            local deadline=$((SECONDS + 120))
            until pgf_as_root timeout 70 rabbitmqctl -q await_startup --timeout 60 >/dev/null 2>&1; do
                [ "$SECONDS" -lt "$deadline" ] ||
                    pgf_die "RabbitMQ did not start within 120 s (see /var/log/rabbitmq/ and $PGFLEET_LOCAL_DIR/rabbitmq-start.log)"
                sleep 2
            done
            wait_for_port "$AMQP_PORT" 15 "RabbitMQ runs but does not listen on 127.0.0.1:$AMQP_PORT (check listeners.tcp in /etc/rabbitmq/rabbitmq.conf)"
        fi
    fi
    local v
    v=$(rabbitmq_version)
    if [ -n "$v" ] && dpkg --compare-versions "$v" lt 3.8; then
        pgf_die "rabbitmq-server $v is too old: pgfleet needs quorum queues (RabbitMQ 3.8 or newer)"
    fi
    echo "rabbitmq: $how on 127.0.0.1:$AMQP_PORT${v:+ (rabbitmq-server $v)}"
    rabbitmq_enable_api
}

rabbitmq_status() {
    if pgf_port_open "$AMQP_PORT"; then
        echo "rabbitmq: running on 127.0.0.1:$AMQP_PORT"
        pgf_port_open "$AMQP_API_PORT" || {
            echo "rabbitmq: management API NOT answering on 127.0.0.1:$AMQP_API_PORT"
            return 1
        }
    else
        echo "rabbitmq: NOT answering on 127.0.0.1:$AMQP_PORT"
        return 1
    fi
}

# ---------------------------------------------------------------- s3s-fs

# PID of our s3s-fs from the pid file, when that process still runs.
s3_our_pid() {
    local pid
    [ -f "$S3_PIDFILE" ] || return 1
    pid=$(cat "$S3_PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "s3s-fs" ] || return 1
    echo "$pid"
}

# PID of whatever listens on 127.0.0.1:9000 (needs ss from iproute2; empty if unknown).
s3_listener_pid() {
    pgf_have ss || return 0
    { ss -Hltnp "sport = :$S3_PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2; } || true
}

# The data directory of a running s3s-fs (its last argument, relative to its cwd).
s3_root_of() {
    local pid=$1 root
    root=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | tail -n 1) || return 0
    case "$root" in
    /*) echo "$root" ;;
    *) echo "$(readlink "/proc/$pid/cwd" 2>/dev/null)/$root" ;;
    esac
}

s3_describe_running() {
    local pid lpid root
    if pid=$(s3_our_pid); then
        echo "started by services.sh, pid $pid, data $S3_DATA"
        return
    fi
    lpid=$(s3_listener_pid)
    if [ -n "$lpid" ] && [ "$(cat "/proc/$lpid/comm" 2>/dev/null)" = "s3s-fs" ]; then
        root=$(s3_root_of "$lpid")
        echo "not started by services.sh, pid $lpid, data $root"
    else
        echo "not started by services.sh${lpid:+, pid $lpid}"
    fi
}

s3_install() {
    if pgf_have s3s-fs; then
        return
    fi
    pgf_have cargo ||
        pgf_die "s3s-fs is missing and there is no cargo to install it with (install Rust, then: cargo install s3s-fs@$S3S_VERSION --features binary --locked)"
    mkdir -p "$PGFLEET_LOCAL_DIR"
    echo "s3s-fs: not installed, running cargo install s3s-fs@$S3S_VERSION (a few minutes; log $PGFLEET_LOCAL_DIR/cargo-install-s3s-fs.log)..."
    if ! cargo install "s3s-fs@$S3S_VERSION" --features binary --locked >"$PGFLEET_LOCAL_DIR/cargo-install-s3s-fs.log" 2>&1; then
        tail -n 30 "$PGFLEET_LOCAL_DIR/cargo-install-s3s-fs.log" >&2
        pgf_die "cargo install s3s-fs@$S3S_VERSION failed"
    fi
    pgf_cargo_path
    pgf_have s3s-fs || pgf_die "s3s-fs was installed but is not on PATH (add \${CARGO_HOME:-~/.cargo}/bin to PATH)"
}

s3_start() {
    local lpid root
    if pgf_port_open "$S3_PORT"; then
        lpid=$(s3_listener_pid)
        if [ -n "$lpid" ] && [ "$(cat "/proc/$lpid/comm" 2>/dev/null)" = "s3s-fs" ]; then
            root=$(s3_root_of "$lpid")
            if [ -n "$root" ] && [ ! -d "$root" ]; then
                # Left behind by an earlier run whose checkout is gone: it cannot store anything.
                echo "s3s-fs: pid $lpid serves a data directory that no longer exists ($root); stopping it"
                kill "$lpid" 2>/dev/null || true
                local i
                for i in $(seq 20); do
                    pgf_port_open "$S3_PORT" || break
                    [ "$i" -eq 20 ] && pgf_die "s3s-fs pid $lpid did not stop; stop it and run again"
                    sleep 0.5
                done
            fi
        fi
    fi
    if pgf_port_open "$S3_PORT"; then
        echo "s3s-fs: found running on 127.0.0.1:$S3_PORT ($(s3_describe_running))"
        return
    fi

    s3_install
    mkdir -p "$S3_DATA"
    local bin pid
    bin=$(command -v s3s-fs)
    {
        echo "---- $(date -u +%FT%TZ) starting $bin on 127.0.0.1:$S3_PORT, data $S3_DATA"
    } >>"$S3_LOG"
    # setsid: its own session, so the terminal's or CI step's end does not take it down.
    # stdin/stdout/stderr are detached so that nothing waits on it.
    setsid "$bin" --host 127.0.0.1 --port "$S3_PORT" \
        --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" \
        "$S3_DATA" </dev/null >>"$S3_LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$S3_PIDFILE"
    local i
    for i in $(seq 60); do
        pgf_port_open "$S3_PORT" && break
        if ! kill -0 "$pid" 2>/dev/null || [ "$i" -eq 60 ]; then
            tail -n 20 "$S3_LOG" >&2
            rm -f "$S3_PIDFILE"
            pgf_die "s3s-fs did not start on 127.0.0.1:$S3_PORT (log: $S3_LOG)"
        fi
        sleep 0.5
    done
    echo "s3s-fs: started on 127.0.0.1:$S3_PORT (pid $pid, data $S3_DATA, log $S3_LOG)"
}

s3_stop() {
    local pid i
    if pid=$(s3_our_pid); then
        kill "$pid"
        for i in $(seq 20); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$S3_PIDFILE"
        echo "s3s-fs: stopped (pid $pid)"
    else
        rm -f "$S3_PIDFILE"
        if pgf_port_open "$S3_PORT"; then
            echo "s3s-fs: left running on 127.0.0.1:$S3_PORT ($(s3_describe_running))"
        else
            echo "s3s-fs: not running"
        fi
    fi
}

s3_status() {
    if pgf_port_open "$S3_PORT"; then
        echo "s3s-fs: running on 127.0.0.1:$S3_PORT ($(s3_describe_running))"
    else
        echo "s3s-fs: NOT answering on 127.0.0.1:$S3_PORT"
        return 1
    fi
}

# ---------------------------------------------------------------- main

action=${1:-start}
case "$action" in
start)
    pg_start
    rabbitmq_start
    s3_start
    ;;
stop)
    s3_stop
    echo "postgresql, rabbitmq: system services, left running"
    ;;
status)
    rc=0
    pg_status || rc=3
    rabbitmq_status || rc=3
    s3_status || rc=3
    exit "$rc"
    ;;
-h | --help | help)
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    ;;
*)
    echo "usage: $0 [start|stop|status]" >&2
    exit 2
    ;;
esac
