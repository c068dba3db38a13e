#!/usr/bin/env bash
# pgfleet's full check, the same locally and in CI (.ci/run):
#   Rust toolchain and build dependencies, local services (deploy/local/services.sh),
#   then cargo fmt --check, cargo clippy -D warnings and cargo test --workspace.
# Stops at the first failing step with a non-zero exit code.
#
# usage: deploy/local/test.sh
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PGFLEET_REPO"

T0=$(pgf_now_ms)
CURRENT_STEP=""

on_exit() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ -n "$CURRENT_STEP" ]; then
        printf '\nFAILED: %s (exit %d, after %s in all)\n' "$CURRENT_STEP" "$rc" "$(pgf_fmt_ms $(($(pgf_now_ms) - T0)))" >&2
    fi
    # In CI the checkout goes away after the run: stop the s3s-fs this checkout started
    # (services.sh stop touches nothing else).
    if [ -n "${CI:-}" ] && [ "${CI}" != "false" ]; then
        bash "$PGFLEET_REPO/deploy/local/services.sh" stop >/dev/null 2>&1 || true
    fi
}
trap on_exit EXIT

# step NAME COMMAND...: runs COMMAND, prints its duration, exits on failure.
step() {
    CURRENT_STEP=$1
    shift
    local t rc=0
    t=$(pgf_now_ms)
    printf '\n==> %s\n' "$CURRENT_STEP"
    "$@" || rc=$?
    if [ "$rc" -ne 0 ]; then
        printf '<== %s: FAILED after %s\n' "$CURRENT_STEP" "$(pgf_fmt_ms $(($(pgf_now_ms) - t)))" >&2
        exit "$rc"
    fi
    printf '<== %s: ok (%s)\n' "$CURRENT_STEP" "$(pgf_fmt_ms $(($(pgf_now_ms) - t)))"
}

# "1.85" from the workspace's Cargo.toml, if it sets rust-version.
required_rust() {
    sed -nE 's/^[[:space:]]*rust-version[[:space:]]*=[[:space:]]*"([0-9.]+)".*/\1/p' Cargo.toml | head -n 1
}

ensure_rust() {
    pgf_cargo_path
    if ! pgf_have cargo; then
        echo "cargo not found: installing a Rust toolchain from Debian's packages"
        # Debian's rustup package exists from Debian 13 on; its toolchain download needs
        # static.rust-lang.org. Otherwise Debian's own rustc/cargo.
        if apt-cache show rustup >/dev/null 2>&1 && pgf_apt_install rustup &&
            rustup default stable && rustup component add rustfmt clippy; then
            pgf_cargo_path
        else
            pgf_apt_install cargo rustc rustfmt rust-clippy || true
        fi
        pgf_have cargo || { echo "error: could not install cargo" >&2; return 1; }
    fi
    local have need
    have=$(rustc --version | awk '{print $2}' | cut -d- -f1)
    need=$(required_rust)
    if [ -n "$need" ] && [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n 1)" != "$need" ]; then
        echo "error: rustc $have is older than the workspace's rust-version $need." >&2
        echo "       Install a newer toolchain with rustup and put ~/.cargo/bin first on PATH." >&2
        return 1
    fi
    local c
    for c in fmt clippy; do
        if ! cargo "$c" --version >/dev/null 2>&1; then
            if pgf_have rustup; then
                rustup component add "$([ "$c" = fmt ] && echo rustfmt || echo clippy)" || true
            fi
            cargo "$c" --version >/dev/null 2>&1 ||
                { echo "error: cargo $c is missing (rustup component add $([ "$c" = fmt ] && echo rustfmt || echo clippy))" >&2; return 1; }
        fi
    done
    echo "$(cargo --version), $(cargo clippy --version), $(cargo fmt --version)"
}

# C compiler, make and pkg-config for crates with C parts (aws-lc-sys, ring, ...), and the
# OpenSSL headers. Installed only when something is missing.
ensure_build_deps() {
    local missing=()
    pgf_have cc || missing+=(cc)
    pgf_have c++ || missing+=(c++)
    pgf_have make || missing+=(make)
    pgf_have pkg-config || missing+=(pkg-config)
    if ! { pgf_have pkg-config && pkg-config --exists openssl; } && [ ! -f /usr/include/openssl/ssl.h ]; then
        missing+=(openssl-headers)
    fi
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "build dependencies present (cc, c++, make, pkg-config, OpenSSL headers)"
        return 0
    fi
    echo "missing: ${missing[*]}; installing pkg-config libssl-dev build-essential (apt)"
    pgf_apt_install pkg-config libssl-dev build-essential
}

if [ -n "${CI:-}" ] && [ "${CI}" != "false" ]; then
    # Clean checkout: incremental compilation only costs time.
    export CARGO_INCREMENTAL=0
fi

# Tools the deployment tests run: promtool/prometheus (Debian) and cfn-lint (PyPI).
ensure_test_tools() {
    if ! pgf_have promtool || ! pgf_have prometheus; then
        echo "installing prometheus (Debian package; used only by the tests, on loopback)"
        pgf_apt_install prometheus
        # Debian's package may start a daemon listening on every interface: the tests start
        # their own on 127.0.0.1, so stop the packaged one.
        pgf_as_root service prometheus stop >/dev/null 2>&1 || true
    fi
    if ! pgf_have cfn-lint; then
        echo "installing cfn-lint (pip)"
        python3 -m pip install --quiet cfn-lint ||
            { echo "error: could not install cfn-lint (python3 -m pip install cfn-lint)" >&2; return 1; }
        if pgf_have pyenv; then pyenv rehash; fi
    fi
    echo "$(promtool --version 2>&1 | head -n 1), cfn-lint $(cfn-lint --version 2>&1 | awk '{print $2}')"
}

step "rust toolchain" ensure_rust
step "test tools (prometheus, cfn-lint)" ensure_test_tools
step "build dependencies" ensure_build_deps
step "local services (deploy/local/services.sh)" bash deploy/local/services.sh start

# Test namespaces that interrupted runs left on the local broker. Each is four quorum queues;
# hundreds of them make every broker start (and the restart test) slow, and once left the
# broker unresponsive. Only names the tests make (pgfleet-test-*, pgfleet-tls-*, pgfleet-cw-*).
clean_test_queues() {
    if ! pgf_have rabbitmqctl; then
        echo "no local rabbitmqctl (remote broker?): nothing cleaned"
        return 0
    fi
    local n
    n=$(pgf_as_root timeout 120 rabbitmqctl -q eval 'length([rabbit_amqqueue:delete(Q, false, false, <<"pgfleet-tests">>) || Q <- rabbit_amqqueue:list(), binary:match(element(4, amqqueue:get_name(Q)), [<<"pgfleet-test-">>, <<"pgfleet-tls-">>, <<"pgfleet-cw-">>]) =/= nomatch]).' 2>&1) ||
        { echo "warning: could not clean leftover test queues: $n"; return 0; }
    echo "deleted $n leftover test queue(s)"
}
step "leftover test queues (RabbitMQ)" clean_test_queues

# shellcheck source=env.sh
. deploy/local/env.sh

step "cargo fmt --all -- --check" cargo fmt --all -- --check
step "cargo clippy --workspace --all-targets -- -D warnings" cargo clippy --workspace --all-targets -- -D warnings
# The end-to-end tests run the real `coordinator` and `worker` binaries.
step "cargo build --workspace --bins" cargo build --workspace --bins
step "cargo test --workspace" cargo test --workspace

CURRENT_STEP=""
printf '\nall checks passed in %s\n' "$(pgf_fmt_ms $(($(pgf_now_ms) - T0)))"
