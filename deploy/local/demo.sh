#!/usr/bin/env bash
# The README's first quick-start command: pgfleet end to end on local defaults.
#   1. starts PostgreSQL, RabbitMQ and the S3-compatible server if needed (loopback only),
#   2. builds the binaries and loads a small demo database (bench_db at 1% scale),
#   3. shows the plan, exports with `coordinator run` to files,
#   4. exports through the fleet (coordinator serve + 2 workers + RabbitMQ) to S3,
#   5. exports it again in the AWS RDS snapshot-export layout (rds-parquet) and restores that
#      into a schema-only copy of the database, in foreign-key waves,
#   6. prints what landed and compares the restored tables with the originals.
# usage: deploy/local/demo.sh        (DEMO_SCALE=0.01 by default)
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PGFLEET_REPO"
pgf_cargo_path
pgf_have cargo || pgf_die "cargo not found: run deploy/local/test.sh once (it installs the toolchain) or install Rust"

SCALE=${DEMO_SCALE:-0.01}
DB=pgfleet_demo
DEMO_DIR="$PGFLEET_LOCAL_DIR/demo"
BUCKET=pgfleet-demo

bash deploy/local/services.sh start
# shellcheck source=deploy/local/env.sh
. deploy/local/env.sh

echo "==> building coordinator and worker"
cargo build -q --bins
BIN="$PGFLEET_REPO/target/debug"

echo "==> loading the demo database '$DB' (bench_db.sql at scale $SCALE)"
bash deploy/local/bench_db.sh --scale "$SCALE" --db "$DB" >/dev/null

rm -rf "$DEMO_DIR" "${PGFLEET_LOCAL_DIR:?}/s3/$BUCKET"
mkdir -p "$DEMO_DIR" "$PGFLEET_LOCAL_DIR/s3/$BUCKET" # s3s-fs: a bucket is a folder

spec() { # spec OUTPUT_URL
    cat <<TOML
kind = "export"
name = "demo"
[source]
url = "postgresql://postgres@127.0.0.1:5432/$DB"
max_in_flight = 2
[tables]
include = ["public.*"]
[chunking]
rows_per_chunk = 20000
[output]
url = "$1"
s3 = { endpoint = "$PGFLEET_TEST_S3_ENDPOINT", force_path_style = true }
[[transform]]
columns = "*"
prefix = "x-"
TOML
}
spec "file://$DEMO_DIR/run/" >"$DEMO_DIR/export-files.toml"
spec "s3://$BUCKET/export/" >"$DEMO_DIR/export-s3.toml"

echo
echo "==> coordinator plan"
"$BIN/coordinator" plan "$DEMO_DIR/export-files.toml"

echo
echo "==> coordinator run (one process, 2 in-process workers) → file://$DEMO_DIR/run/"
"$BIN/coordinator" run "$DEMO_DIR/export-files.toml" --workers 2
echo "first lines of $DEMO_DIR/run/public.customers/part-00000.csv:"
head -n 3 "$DEMO_DIR/run/public.customers/part-00000.csv"

echo
echo "==> the fleet: coordinator serve + 2 workers over RabbitMQ → s3://$BUCKET/export/"
ns="pgfleet-demo-$$"
state_url="postgresql://postgres@127.0.0.1:5432/pgfleet_demo_state"
pids=()
stop_fleet() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap stop_fleet EXIT
PGFLEET_NAMESPACE=$ns "$BIN/coordinator" serve --state-url "$state_url" --metrics-addr 127.0.0.1:0 >"$DEMO_DIR/coordinator.log" 2>&1 &
pids+=($!)
for i in 1 2; do
    PGFLEET_NAMESPACE=$ns "$BIN/worker" --concurrency 1 --name "demo$i" --metrics-addr 127.0.0.1:0 >"$DEMO_DIR/worker$i.log" 2>&1 &
    pids+=($!)
done
# `submit` needs the state schema, which serve creates as it starts (submit never does).
for _ in $(seq 1 300); do
    "$BIN/coordinator" status --state-url "$state_url" >/dev/null 2>&1 && break
    sleep 0.1
done
job=$("$BIN/coordinator" submit "$DEMO_DIR/export-s3.toml" --wait --state-url "$state_url")
echo
"$BIN/coordinator" status "$job" --state-url "$state_url"
echo
echo "manifest of public.orders (s3://$BUCKET/export/public.orders/_manifest.json), abridged:"
head -n 12 "$PGFLEET_LOCAL_DIR/s3/$BUCKET/export/public.orders/_manifest.json"

echo
echo "==> restore: $DB as an RDS snapshot export (rds-parquet) → a schema-only copy, through the fleet"
RESTORED=pgfleet_demo_restored
PSQL=(psql -X -q -h 127.0.0.1 -U postgres)
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $RESTORED WITH (FORCE)" -c "CREATE DATABASE $RESTORED" >/dev/null
pg_dump --schema-only --no-owner -h 127.0.0.1 -U postgres "$DB" | "${PSQL[@]}" -d "$RESTORED" -v ON_ERROR_STOP=1 >/dev/null
cat >"$DEMO_DIR/export-rds.toml" <<TOML
kind = "export"
name = "demo-rds"
[source]
url = "postgresql://postgres@127.0.0.1:5432/$DB"
snapshot = "consistent"
[tables]
include = ["public.*"]
[output]
url = "s3://$BUCKET/rds/demo-export/"
format = "rds-parquet"
s3 = { endpoint = "$PGFLEET_TEST_S3_ENDPOINT", force_path_style = true }
TOML
cat >"$DEMO_DIR/restore.toml" <<TOML
kind = "restore"
name = "demo-restore"
[export]
url = "s3://$BUCKET/rds/demo-export/"
database = "$DB"
s3 = { endpoint = "$PGFLEET_TEST_S3_ENDPOINT", force_path_style = true }
[target]
url = "postgresql://postgres@127.0.0.1:5432/$RESTORED"
TOML
"$BIN/coordinator" submit "$DEMO_DIR/export-rds.toml" --wait --state-url "$state_url" >/dev/null
echo "coordinator plan restore.toml:"
"$BIN/coordinator" plan "$DEMO_DIR/restore.toml"
job=$("$BIN/coordinator" submit "$DEMO_DIR/restore.toml" --wait --state-url "$state_url")
"$BIN/coordinator" status "$job" --state-url "$state_url"
echo
echo "original vs restored (rows and an ordered checksum of every table):"
checksum() { # checksum DATABASE: "table rows md5" for every table, ordered
    local t
    "${PSQL[@]}" -d "$1" -tAc "SELECT format('%I', relname) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') ORDER BY relname" |
        while IFS= read -r t; do
            printf '%-22s %s\n' "$t" "$("${PSQL[@]}" -d "$1" -tAc "SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '-') FROM $t x")"
        done
}
checksum "$DB" >"$DEMO_DIR/original.txt"
checksum "$RESTORED" >"$DEMO_DIR/restored.txt"
paste -d'|' "$DEMO_DIR/original.txt" "$DEMO_DIR/restored.txt" | awk -F'|' '{ printf "  %s  %s\n", $1, ($1 == $2 ? "identical" : "DIFFERENT: " $2) }'
cmp -s "$DEMO_DIR/original.txt" "$DEMO_DIR/restored.txt" || pgf_die "the restored database differs from the original"

echo
echo "demo done: files under $DEMO_DIR/run/, objects in s3://$BUCKET/ (data in $PGFLEET_LOCAL_DIR/s3/$BUCKET/), restored database $RESTORED"
