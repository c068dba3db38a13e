#!/usr/bin/env bash
# Build `coordinator` and `worker` as static binaries (musl libc, no shared library at all) and
# install them into OUT_DIR. The Dockerfile runs this script, so its runtime image can be
# `scratch`; run it here to get the very same binaries without Docker:
#
#   deploy/docker/build-static.sh /tmp/pgfleet-static
#   deploy/docker/check-static.sh /tmp/pgfleet-static   # run them in an empty root
#
# Needs musl-gcc (Debian: musl-tools) and strip (binutils) for the C in aws-lc-sys and zstd; the Rust target is added
# with rustup when missing. Fails if either binary asks for a dynamic loader or a shared library.
set -euo pipefail

die() {
    echo "build-static: $*" >&2
    exit 1
}

out=${1:-}
[ -n "$out" ] || die "usage: $0 OUT_DIR"
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

case "$(uname -m)" in
x86_64 | amd64) target=x86_64-unknown-linux-musl ;;
aarch64 | arm64) target=aarch64-unknown-linux-musl ;;
*) die "no musl target for $(uname -m)" ;;
esac
command -v musl-gcc >/dev/null || die "musl-gcc not found: apt-get install musl-tools"
if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi

# The cc crate would look for <arch>-linux-musl-gcc; Debian ships the wrapper as musl-gcc.
export "CC_${target//-/_}=musl-gcc"
cargo build --release --locked --target "$target" -p pgfleet-coordinator -p pgfleet-worker

mkdir -p "$out"
for bin in coordinator worker; do
    file="target/$target/release/$bin"
    if readelf -l "$file" | grep -q 'program interpreter'; then
        die "$bin asks for a dynamic loader: not static"
    fi
    if readelf -d "$file" 2>/dev/null | grep -q '(NEEDED)'; then
        die "$bin needs shared libraries: $(readelf -d "$file" | grep '(NEEDED)' | tr -s ' ')"
    fi
    # Line tables (the release profile keeps them) are 4/5 of the file; function names stay,
    # so a backtrace still names the frames.
    strip --strip-debug -o "$out/$bin" "$file"
    chmod 0755 "$out/$bin"
    echo "build-static: $out/$bin ($(du -h "$out/$bin" | cut -f1), static, $target)"
done
