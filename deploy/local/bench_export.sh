#!/usr/bin/env bash
# Export benchmark (not a test): pgfleet exporting bench_db's order_items (8M rows at scale 1)
# to the local S3-compatible server with an `x-` prefix on every value, against a raw
# single-connection `COPY order_items TO STDOUT (FORMAT csv)` to /dev/null, in the same run.
#
#   deploy/local/bench_export.sh                 # scale 1 (8M rows), 2 workers
#   SCALE=0.1 WORKERS=2 CONCURRENCY=1 deploy/local/bench_export.sh
#   PGFLEET_BIN=/path/to/other/target/release deploy/local/bench_export.sh   # another build
#
# Prints the time ratio (pgfleet / baseline; lower is better), the PostgreSQL server's CPU
# seconds for each (and their ratio), and each worker's peak RSS.
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=deploy/local/env.sh
. "$PGFLEET_REPO/deploy/local/env.sh"
pgf_cargo_path

SCALE=${SCALE:-1}
WORKERS=${WORKERS:-2}
CONCURRENCY=${CONCURRENCY:-1}
IN_FLIGHT=${IN_FLIGHT:-$((WORKERS * CONCURRENCY))}
DB=${BENCH_DB:-bench}
PSQL=(psql -X -q -h 127.0.0.1 -U postgres)

bash "$PGFLEET_REPO/deploy/local/services.sh" start
pgf_bench_db "$SCALE" "$DB"
# PGFLEET_BIN: another build's release binaries (e.g. an older commit's, for a before/after).
if [ -n "${PGFLEET_BIN:-}" ]; then
    BIN=$PGFLEET_BIN
else
    pgf_release_build
    BIN="$PGFLEET_REPO/target/release"
fi

work=$(mktemp -d)
ns="bench-$$-$RANDOM"
bucket="bench-$$-$RANDOM"
state_url="postgresql://postgres@127.0.0.1:5432/pgfleet_bench_state"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    pgf_delete_namespace "$ns"
    rm -rf "$work"
}
trap cleanup EXIT

# The bucket: the S3 server is s3s-fs, whose buckets are folders of its data directory.
mkdir -p "$PGFLEET_LOCAL_DIR/s3/$bucket"

cat >"$work/export.toml" <<TOML
kind = "export"
name = "bench-order-items"
[source]
url = "postgresql://postgres@127.0.0.1:5432/$DB"
max_in_flight = $IN_FLIGHT
[tables]
include = ["public.order_items"]
[chunking]
rows_per_chunk = 500000
[output]
url = "s3://$bucket/bench/"
part_size = "8MiB"
parts_in_flight = 2
s3 = { endpoint = "$PGFLEET_TEST_S3_ENDPOINT", force_path_style = true }
[[transform]]
columns = "*"
prefix = "x-"
TOML

baseline() {
    local t0 t1
    t0=$(date +%s.%N)
    "${PSQL[@]}" -d "$DB" -c "COPY order_items TO STDOUT (FORMAT csv)" >/dev/null
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}

# The PostgreSQL server's CPU: the postmaster's reaped children (every backend, once its
# connection closed), in seconds. Includes autovacuum and the state database's sessions (same
# server), which is noise of well under a second here.
pg_data=$("${PSQL[@]}" -d postgres -Atc "SHOW data_directory")
postmaster=$(head -n 1 "$pg_data/postmaster.pid" 2>/dev/null || pgf_as_root head -n 1 "$pg_data/postmaster.pid")
ticks=$(getconf CLK_TCK)
server_cpu() {
    sleep 1 # a backend whose client just left is reaped a moment later
    awk -v t="$ticks" '{ printf "%.2f", ($16 + $17) / t }' "/proc/$postmaster/stat"
}
cpu_delta() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'
}

echo "warming the cache"
baseline >/dev/null
c0=$(server_cpu)
b1=$(baseline)
c1=$(server_cpu)
base_cpu=$(cpu_delta "$c0" "$c1")
echo "baseline COPY: ${b1}s, server CPU ${base_cpu}s"

PGFLEET_NAMESPACE=$ns "$BIN/coordinator" serve --state-url "$state_url" --metrics-addr 127.0.0.1:0 >"$work/coordinator.log" 2>&1 &
pids+=($!)
wpids=()
for i in $(seq 1 "$WORKERS"); do
    PGFLEET_NAMESPACE=$ns "$BIN/worker" --concurrency "$CONCURRENCY" --metrics-addr 127.0.0.1:0 --name "bench$i" >"$work/worker$i.log" 2>&1 &
    pids+=($!)
    wpids+=($!)
done
# `submit` needs the state schema, which serve creates as it starts (submit never does).
for _ in $(seq 1 300); do
    "$BIN/coordinator" status --state-url "$state_url" >/dev/null 2>&1 && break
    sleep 0.1
done
sleep 1
c2=$(server_cpu)
t0=$(date +%s.%N)
"$BIN/coordinator" submit "$work/export.toml" --wait --state-url "$state_url" >/dev/null
t1=$(date +%s.%N)
fleet=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
echo "pgfleet export: ${fleet}s ($WORKERS workers x $CONCURRENCY, max_in_flight $IN_FLIGHT)"

# Where the time went: planning (coordinator log) and, per worker, seconds spent waiting on the
# source COPY and on the upload (its /metrics) and CPU seconds (/proc: the metrics' CPU counter
# has whole seconds only).
awk '/planning job/ { a = $1 } /job planned/ { b = $1 } END {
    if (a != "" && b != "") { split(a, x, "T"); split(b, y, "T"); split(x[2], p, ":"); split(y[2], q, ":");
      printf "planning: %.2fs\n", (q[1] * 3600 + q[2] * 60 + q[3]) - (p[1] * 3600 + p[2] * 60 + p[3]) } }' \
    "$work/coordinator.log"
for i in "${!wpids[@]}"; do
    n=$((i + 1))
    addr=$(grep -o 'addr=[^ ]*' "$work/worker$n.log" | head -1 | cut -d= -f2 | tr -d '"')
    cpu=$(awk -v t="$ticks" '{ printf "%.2f", ($14 + $15) / t }' "/proc/${wpids[$i]}/stat")
    [ -n "$addr" ] || continue
    curl -s "http://$addr/metrics" | awk -v w="$n" -v cpu="$cpu" '
        /^pgfleet_worker_phase_seconds_total\{kind="export",phase="source"\}/ { src = $2 }
        /^pgfleet_worker_phase_seconds_total\{kind="export",phase="upload"\}/ { up = $2 }
        END { printf "worker %s: waited on source COPY %.2fs, on upload %.2fs; CPU %ss\n", w, src, up, cpu }'
done

for i in "${!wpids[@]}"; do
    rss=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/${wpids[$i]}/status")
    echo "worker $((i + 1)) peak RSS: ${rss} MiB"
done
# The job's backends are reaped once the workers and serve close their pools.
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()
sleep 1
c3=$(server_cpu)
job_cpu=$(cpu_delta "$c2" "$c3")
b2=$(baseline)
c4=$(server_cpu)
base_cpu2=$(cpu_delta "$c3" "$c4")
echo "baseline COPY again: ${b2}s, server CPU ${base_cpu2}s"
echo "server CPU: pgfleet job ${job_cpu}s (planning, every chunk's COPY, state writes), raw COPY ${base_cpu}s / ${base_cpu2}s"
cpu_ratio=$(awk -v j="$job_cpu" -v x="$base_cpu" -v y="$base_cpu2" 'BEGIN { if (x + y > 0) printf "%.3f", j / ((x + y) / 2); else print "n/a" }')
echo "RESULT server CPU ratio pgfleet/baseline = $cpu_ratio (target <= 0.85)"
ratio=$(awk -v f="$fleet" -v x="$b1" -v y="$b2" 'BEGIN { printf "%.3f", f / ((x + y) / 2) }')
echo "RESULT ratio pgfleet/baseline = $ratio (target <= 1.0)"
rm -rf "${PGFLEET_LOCAL_DIR:?}/s3/$bucket"
