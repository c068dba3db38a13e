#!/usr/bin/env bash
# Restore benchmark (not a test): in one run on bench_db, pgfleet restoring its own rds-parquet
# export through the fleet (coordinator serve + workers over RabbitMQ, from the local
# S3-compatible server) vs `pg_restore -j2 --data-only --disable-triggers` of a `pg_dump -Fd` of
# the same data, each into a fresh schema-only copy of the database.
#
#   deploy/local/bench_restore.sh                     # SCALE=1 (bench_db as shipped), 2 workers
#   SCALE=0.1 WORKERS=2 CONCURRENCY=1 deploy/local/bench_restore.sh
#
# Prints both times and the ratio (pgfleet / pg_restore; lower is better). The export that
# feeds pgfleet is not timed.
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=deploy/local/env.sh
. "$PGFLEET_REPO/deploy/local/env.sh"
pgf_cargo_path

SCALE=${SCALE:-1}
WORKERS=${WORKERS:-2}
CONCURRENCY=${CONCURRENCY:-1}
MAX_CONN=${MAX_CONN:-$((WORKERS * CONCURRENCY))}
DB=${BENCH_DB:-bench}
PSQL=(psql -X -q -h 127.0.0.1 -U postgres)
PG="postgresql://postgres@127.0.0.1:5432"

bash "$PGFLEET_REPO/deploy/local/services.sh" start
pgf_bench_db "$SCALE" "$DB"
pgf_release_build
BIN="$PGFLEET_REPO/target/release"

work=$(mktemp -d)
ns="bench-restore-$$-$RANDOM"
bucket="bench-restore-$$-$RANDOM"
state_url="$PG/pgfleet_bench_state"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    pgf_delete_namespace "$ns"
    rm -rf "$work" "${PGFLEET_LOCAL_DIR:?}/s3/$bucket"
    for d in bench_pgrestore bench_pgfleet; do
        "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT
mkdir -p "$PGFLEET_LOCAL_DIR/s3/$bucket" # s3s-fs: a bucket is a folder

fresh_target() { # fresh_target NAME: a schema-only copy of the bench database
    "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null
    pg_dump --schema-only --no-owner "$PG/$DB" | "${PSQL[@]}" -d "$1" -v ON_ERROR_STOP=1 >/dev/null
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

echo "pg_dump -Fd -j2 of $DB (not timed)"
pg_dump -Fd -j2 -f "$work/dump" "$PG/$DB"
fresh_target bench_pgrestore
t0=$(now)
pg_restore -j2 --data-only --disable-triggers -d "$PG/bench_pgrestore" "$work/dump"
t1=$(now)
base=$(elapsed "$t0" "$t1")
echo "pg_restore -j2 --data-only --disable-triggers: ${base}s"

PGFLEET_NAMESPACE=$ns "$BIN/coordinator" serve --state-url "$state_url" --metrics-addr 127.0.0.1:0 >"$work/coordinator.log" 2>&1 &
pids+=($!)
for i in $(seq 1 "$WORKERS"); do
    PGFLEET_NAMESPACE=$ns "$BIN/worker" --concurrency "$CONCURRENCY" --metrics-addr 127.0.0.1:0 --name "bench$i" >"$work/worker$i.log" 2>&1 &
    pids+=($!)
done

# `submit` needs the state schema, which serve creates as it starts (submit never does).
for _ in $(seq 1 300); do
    "$BIN/coordinator" status --state-url "$state_url" >/dev/null 2>&1 && break
    sleep 0.1
done

root="s3://$bucket/exports/bench-export/"
cat >"$work/export.toml" <<TOML
kind = "export"
name = "bench-export"
[source]
url = "$PG/$DB"
max_in_flight = $MAX_CONN
[tables]
include = ["public.*"]
[chunking]
rows_per_chunk = 1000000
[output]
url = "$root"
format = "rds-parquet"
part_size = "16MiB"
s3 = { endpoint = "$PGFLEET_TEST_S3_ENDPOINT", force_path_style = true }
TOML
cat >"$work/restore.toml" <<TOML
kind = "restore"
name = "bench-restore"
[export]
url = "$root"
database = "$DB"
s3 = { endpoint = "$PGFLEET_TEST_S3_ENDPOINT", force_path_style = true }
[target]
url = "$PG/bench_pgfleet"
max_connections = $MAX_CONN
TOML

echo "pgfleet rds-parquet export of $DB (not timed)"
"$BIN/coordinator" submit "$work/export.toml" --wait --state-url "$state_url" >/dev/null
fresh_target bench_pgfleet
t0=$(now)
"$BIN/coordinator" submit "$work/restore.toml" --wait --state-url "$state_url" >/dev/null
t1=$(now)
fleet=$(elapsed "$t0" "$t1")
echo "pgfleet restore ($WORKERS workers x $CONCURRENCY, max_connections $MAX_CONN): ${fleet}s"

for t in order_items orders customers; do
    a=$("${PSQL[@]}" -d bench_pgrestore -tAc "SELECT count(*) FROM $t")
    b=$("${PSQL[@]}" -d bench_pgfleet -tAc "SELECT count(*) FROM $t")
    [ "$a" = "$b" ] || pgf_die "$t: pg_restore loaded $a rows, pgfleet $b"
done
ratio=$(awk -v f="$fleet" -v b="$base" 'BEGIN { printf "%.3f", f / b }')
echo "RESULT ratio pgfleet/pg_restore = $ratio (target <= 1.0, goal 0.8)"
