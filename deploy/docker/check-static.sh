#!/usr/bin/env bash
# Run the static binaries the way the `scratch` image runs them, without Docker: in a chroot
# holding only those binaries, the CA bundle, and the /etc/hosts and /etc/resolv.conf that
# Docker puts into every container. Checks --help and the version, then a real export through
# `coordinator run` against the local PostgreSQL and s3s-fs (deploy/local/services.sh), as uid
# 10001 like the image's USER. Needs root (chroot).
#
#   deploy/docker/build-static.sh /tmp/pgfleet-static
#   deploy/docker/check-static.sh /tmp/pgfleet-static
set -euo pipefail

die() {
    echo "check-static: $*" >&2
    exit 1
}

bins=${1:-}
[ -n "$bins" ] && [ -x "$bins/coordinator" ] && [ -x "$bins/worker" ] ||
    die "usage: $0 DIR_WITH_STATIC_BINARIES (from build-static.sh)"
[ "$(id -u)" = 0 ] || die "needs root for chroot"
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../local/env.sh
. "$repo/deploy/local/env.sh"

root=$(mktemp -d /tmp/pgfleet-scratch-XXXXXX)
chmod 0755 "$root"
db=pgfleet_static_$$
cleanup() {
    rm -rf "$root"
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# The image's filesystem, and what Docker adds at run time.
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/out"
install -m 0755 "$bins/coordinator" "$bins/worker" "$root/usr/local/bin/"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
cp /etc/hosts /etc/resolv.conf "$root/etc/"
chown 10001:10001 "$root/out"

in_image() {
    local chroot_bin
    chroot_bin=$(command -v chroot)
    env -i PATH=/usr/local/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
        AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
        AWS_REGION="${AWS_REGION:-us-east-1}" PGFLEET_LOG_FORMAT=text \
        "$chroot_bin" --userspec=10001:10001 "$root" "$@"
}

echo "check-static: the root holds: $(cd "$root" && find . -type f | sort | tr '\n' ' ')"
in_image coordinator --version
in_image worker --version
in_image coordinator --help >/dev/null
in_image worker --help >/dev/null

psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $db" >/dev/null
psql -q -h 127.0.0.1 -U postgres -d "$db" -c \
    "CREATE TABLE t (id bigint PRIMARY KEY, v text); INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 20000) g; ANALYZE t;" >/dev/null

bucket=pgfleet
prefix="static-check-$$"
cat >"$root/out/export.toml" <<EOF
kind = "export"
name = "static-check"
[source]
url = "postgresql://postgres@localhost:5432/$db"
max_in_flight = 2
[tables]
include = ["public.t"]
[chunking]
rows_per_chunk = 5000
[output]
url = "s3://$bucket/$prefix/"
s3 = { endpoint = "$PGFLEET_TEST_S3_ENDPOINT", force_path_style = true }
[[transform]]
columns = "*"
prefix = "x-"
EOF
# `localhost` goes through /etc/hosts; S3 and PostgreSQL through TCP on loopback.
in_image coordinator run /out/export.toml --workers 2

# s3s-fs keeps objects as files: its data directory is its last argument.
s3dir=$(ps -o args= -C s3s-fs | awk '{print $NF}' | head -1)
[ -d "$s3dir/$bucket/$prefix" ] || die "nothing under s3://$bucket/$prefix/ (s3s-fs data: ${s3dir:-not found})"
lines=$(cat "$s3dir/$bucket/$prefix"/public.t/part-*.csv | grep -c '^x-' || true)
[ "$lines" = 20000 ] || die "expected 20000 prefixed rows in the parts, found $lines"
echo "check-static: export from the empty root: $(find "$s3dir/$bucket/$prefix" -type f | wc -l) objects, $lines rows, every one prefixed"
rm -rf "${s3dir:?}/$bucket/$prefix"
echo "check-static: OK (static binaries run in an empty root as uid 10001)"
