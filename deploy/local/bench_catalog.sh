#!/usr/bin/env bash
# Catalog-scale benchmark (not a test): many small tables, where planning and scheduling cost
# per table, not data, is what is measured. Creates (once) a database of TABLES tables of ROWS
# rows each (public.t1 .. public.tN, bigint primary key) and, with PARTITIONS > 0, a table
# parted.events with that many partitions; then times, for each binary directory given:
#
#   coordinator plan   (export of every table)
#   coordinator run    (that export end to end, in-process workers, to file:// or the local S3)
#   coordinator serve + worker + submit --wait   (FLEET=1: the same export through RabbitMQ and
#                       the PostgreSQL state store)
#   coordinator plan   (RESTORE=1: a restore of the export into a schema-only copy)
#
#   deploy/local/bench_catalog.sh                           # 10000 tables, 2 workers, file://
#   TABLES=2000 PARTITIONS=5000 deploy/local/bench_catalog.sh
#   OUTPUT=s3 FLEET=1 RESTORE=1 deploy/local/bench_catalog.sh
#   BINS="/tmp/base/release target/release" deploy/local/bench_catalog.sh   # before/after
#
# Without BINS it builds and times this checkout's release binaries. The tables are never
# analyzed (20-row tables never reach autovacuum's threshold), as on a real catalog of small
# tables: planning counts their rows.
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=deploy/local/env.sh
. "$PGFLEET_REPO/deploy/local/env.sh"
pgf_cargo_path

TABLES=${TABLES:-10000}
ROWS=${ROWS:-20}
PARTITIONS=${PARTITIONS:-0}
WORKERS=${WORKERS:-2}
OUTPUT=${OUTPUT:-file}   # file | s3
FLEET=${FLEET:-0}
RESTORE=${RESTORE:-0}
# A restore reads an rds-parquet export; CSV is the cheaper export otherwise.
FORMAT=${FORMAT:-$([ "$RESTORE" = 1 ] && echo rds-parquet || echo csv)}
DB=${BENCH_DB:-pgfleet_bench_catalog_${TABLES}_${PARTITIONS}}
PG="postgresql://postgres@127.0.0.1:5432"
PSQL=(psql -X -q -h 127.0.0.1 -U postgres)

bash "$PGFLEET_REPO/deploy/local/services.sh" start >/dev/null
if [ -z "${BINS:-}" ]; then
    pgf_release_build
    BINS="$PGFLEET_REPO/target/release"
fi

# The catalog, created once per (TABLES, PARTITIONS): a procedure that commits every 500
# tables, so one transaction never holds thousands of locks.
have=$("${PSQL[@]}" -d "$DB" -tAc "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'" 2>/dev/null || echo 0)
if [ "$have" != "$TABLES" ]; then
    echo "creating $DB: $TABLES tables of $ROWS rows, $PARTITIONS partitions"
    "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
    "${PSQL[@]}" -d "$DB" -v ON_ERROR_STOP=1 <<SQL
CREATE PROCEDURE pg_temp.make_catalog(n int, rows_per int, parts int) LANGUAGE plpgsql AS \$\$
BEGIN
  FOR i IN 1..n LOOP
    EXECUTE format('CREATE TABLE public.%I (id bigint PRIMARY KEY, v text NOT NULL)', 't' || i);
    EXECUTE format('INSERT INTO public.%I SELECT g, ''value '' || g FROM generate_series(1, %s) g',
                   't' || i, rows_per);
    IF i % 500 = 0 THEN COMMIT; END IF;
  END LOOP;
  COMMIT;
  IF parts > 0 THEN
    CREATE SCHEMA parted;
    CREATE TABLE parted.events (id bigint PRIMARY KEY, v text) PARTITION BY RANGE (id);
    FOR i IN 1..parts LOOP
      EXECUTE format('CREATE TABLE parted.%I PARTITION OF parted.events FOR VALUES FROM (%s) TO (%s)',
                     'events_' || i, (i - 1) * 1000, i * 1000);
      IF i % 500 = 0 THEN COMMIT; END IF;
    END LOOP;
    INSERT INTO parted.events SELECT g, 'v' FROM generate_series(0, parts * 1000 - 1, 50) g;
  END IF;
END \$\$;
CALL pg_temp.make_catalog($TABLES, $ROWS, $PARTITIONS);
SQL
fi

work=$(mktemp -d)
pids=()
namespaces=()
buckets=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for ns in "${namespaces[@]}"; do pgf_delete_namespace "$ns"; done
    for b in "${buckets[@]}"; do rm -rf "${PGFLEET_LOCAL_DIR:?}/s3/$b"; done
    "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS ${DB}_target WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# output_url TAG: a fresh export location.
output_url() {
    if [ "$OUTPUT" = s3 ]; then
        local bucket="bench-catalog-$$-$RANDOM"
        mkdir -p "$PGFLEET_LOCAL_DIR/s3/$bucket" # s3s-fs: a bucket is a folder
        buckets+=("$bucket")
        echo "s3://$bucket/$1/"
    else
        mkdir -p "$work/out/$1"
        echo "file://$work/out/$1/"
    fi
}

# export_spec FILE URL
export_spec() {
    cat >"$1" <<TOML
kind = "export"
name = "bench-catalog"
[source]
url = "$PG/$DB"
max_in_flight = $((WORKERS * 2))
[tables]
include = ["public.*", "parted.*"]
[output]
url = "$2"
format = "$FORMAT"
TOML
    if [ "$OUTPUT" = s3 ]; then
        echo "s3 = { endpoint = \"$PGFLEET_TEST_S3_ENDPOINT\", force_path_style = true }" >>"$1"
    fi
}

# timed LABEL OUT CMD...: run CMD (stdout to OUT, stderr to OUT.log), print LABEL and its wall
# time; the milliseconds go to $elapsed.
timed() {
    local label=$1 out=$2 t0 t1
    shift 2
    t0=$(pgf_now_ms)
    "$@" >"$out" 2>"$out.log" || { tail -5 "$out.log" >&2; pgf_die "$label failed (log: $out.log)"; }
    t1=$(pgf_now_ms)
    elapsed=$((t1 - t0))
    printf '  %-34s %8s\n' "$label" "$(pgf_fmt_ms "$elapsed")"
}

per_second() { awk -v n="$1" -v ms="$2" 'BEGIN { if (ms > 0) printf "%.0f", n * 1000 / ms; else print "-" }'; }

tables_total=$((TABLES + (PARTITIONS > 0 ? 1 : 0)))
echo "catalog: $TABLES tables x $ROWS rows + $PARTITIONS partitions ($tables_total exported tables), $WORKERS workers, $FORMAT to $OUTPUT"
summary=()
for bin in $BINS; do
    [ -x "$bin/coordinator" ] || pgf_die "$bin/coordinator not found"
    echo "binaries: $bin"
    tag="b$RANDOM"
    export_spec "$work/$tag-export.toml" "$(output_url "$tag")"

    timed "plan (export)" "$work/$tag-plan.txt" "$bin/coordinator" plan "$work/$tag-export.toml"
    plan_ms=$elapsed
    # Newer binaries log what planning sent to the source.
    statements=$(grep -o 'statements=[0-9]*' "$work/$tag-plan.txt.log" | head -1 || true)
    [ -z "$statements" ] || echo "    $statements"
    timed "run --workers $WORKERS" "$work/$tag-run.txt" "$bin/coordinator" run --workers "$WORKERS" "$work/$tag-export.toml"
    run_ms=$elapsed
    echo "    $(per_second "$tables_total" "$run_ms") tables/s; $(tail -1 "$work/$tag-run.txt")"
    line="$bin: plan $(pgf_fmt_ms "$plan_ms"), run $(pgf_fmt_ms "$run_ms") ($(per_second "$tables_total" "$run_ms") tables/s)"

    if [ "$FLEET" = 1 ]; then
        ns="bench-catalog-$$-$RANDOM"
        namespaces+=("$ns")
        state_url="$PG/pgfleet_bench_catalog_state"
        PGFLEET_NAMESPACE=$ns "$bin/coordinator" serve --state-url "$state_url" --metrics-addr 127.0.0.1:0 >"$work/$tag-serve.log" 2>&1 &
        serve_pid=$!
        pids+=("$serve_pid")
        fleet_pids=()
        for i in $(seq 1 "$WORKERS"); do
            PGFLEET_NAMESPACE=$ns "$bin/worker" --metrics-addr 127.0.0.1:0 --name "bench$i" >"$work/$tag-worker$i.log" 2>&1 &
            pids+=($!)
            fleet_pids+=($!)
        done
        for _ in $(seq 1 300); do
            "$bin/coordinator" status --state-url "$state_url" >/dev/null 2>&1 && break
            sleep 0.1
        done
        export_spec "$work/$tag-fleet.toml" "$(output_url "$tag-fleet")"
        timed "serve + submit --wait" "$work/$tag-submit.txt" "$bin/coordinator" submit "$work/$tag-fleet.toml" --wait --state-url "$state_url"
        echo "    $(per_second "$tables_total" "$elapsed") tables/s"
        line="$line, fleet $(pgf_fmt_ms "$elapsed") ($(per_second "$tables_total" "$elapsed") tables/s)"
        kill "$serve_pid" "${fleet_pids[@]}" 2>/dev/null || true
        wait "$serve_pid" "${fleet_pids[@]}" 2>/dev/null || true
    fi

    if [ "$RESTORE" = 1 ]; then
        target="${DB}_target"
        if ! "${PSQL[@]}" -d "$target" -tAc "SELECT 1" >/dev/null 2>&1; then
            "${PSQL[@]}" -d postgres -c "CREATE DATABASE $target"
            pg_dump --schema-only --no-owner "$PG/$DB" | "${PSQL[@]}" -d "$target" -v ON_ERROR_STOP=1 >/dev/null
        fi
        url=$(awk -F'"' '/^url = "(file|s3):/ { print $2 }' "$work/$tag-export.toml")
        cat >"$work/$tag-restore.toml" <<TOML
kind = "restore"
name = "bench-catalog-restore"
[export]
url = "$url"
database = "$DB"
[target]
url = "$PG/$target"
TOML
        if [ "$OUTPUT" = s3 ]; then
            sed -i "/^url = \"s3:/a s3 = { endpoint = \"$PGFLEET_TEST_S3_ENDPOINT\", force_path_style = true }" "$work/$tag-restore.toml"
        fi
        timed "plan (restore)" "$work/$tag-restore-plan.txt" "$bin/coordinator" plan "$work/$tag-restore.toml"
        line="$line, restore plan $(pgf_fmt_ms "$elapsed")"
    fi
    summary+=("$line")
done
echo
for line in "${summary[@]}"; do echo "RESULT $line"; done
