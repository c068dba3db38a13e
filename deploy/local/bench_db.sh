#!/usr/bin/env bash
# Loads the bench/acceptance database (shared/fixtures/bench_db.sql) into the local PostgreSQL,
# optionally scaled down or up, then prints and checks the row count of every table.
#
# usage: deploy/local/bench_db.sh [--scale F] [--db NAME]
#
#   --scale F   multiply the fixture's row counts by F (default 1.0, the full ~11.6M rows).
#               customers 500000, products 20000, orders 2000000, order_items 8000000,
#               events 1000000 and no_pk_log 100000 become round(N*F) (at least 1), everywhere
#               the literal appears, so the generated foreign keys stay inside the scaled tables;
#               order_items is kept at exactly 4 x orders (each order has 4 items).
#               departments (50), employees (5000) and the odd-name table (1000) are not scaled.
#   --db NAME   database to (re)create, default bench. It is DROPPED first.
#
# Environment: PGFLEET_BENCH_SQL overrides the fixture path (default ../shared/fixtures/bench_db.sql
# next to the repository, else the copy in deploy/local/fixtures/). Connects as postgres to 127.0.0.1:5432 (deploy/local/services.sh).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

scale=1.0
db=bench
while [ $# -gt 0 ]; do
    case "$1" in
    --scale)
        [ $# -ge 2 ] || pgf_die "--scale needs a value"
        scale=$2
        shift 2
        ;;
    --scale=*)
        scale=${1#--scale=}
        shift
        ;;
    --db)
        [ $# -ge 2 ] || pgf_die "--db needs a value"
        db=$2
        shift 2
        ;;
    --db=*)
        db=${1#--db=}
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
done

[[ "$scale" =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$ ]] ||
    pgf_die "--scale must be a positive number, got '$scale'"
perl -e 'exit(($ARGV[0] > 0) ? 0 : 1)' "$scale" || pgf_die "--scale must be greater than 0, got '$scale'"
[[ "$db" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] ||
    pgf_die "--db must be a plain lower-case identifier (letters, digits, _), got '$db'"
case "$db" in
postgres | template0 | template1 | pgfleet_state)
    pgf_die "refusing to drop and recreate database '$db'; pick another --db"
    ;;
esac

# The project's shared fixture when this checkout sits next to it, else the copy kept in the
# repository (a clone on its own, CI), so the demo and the tests work from any clean clone.
if [ -n "${PGFLEET_BENCH_SQL:-}" ]; then
    sql=$PGFLEET_BENCH_SQL
elif [ -r "$PGFLEET_REPO/../shared/fixtures/bench_db.sql" ]; then
    sql=$PGFLEET_REPO/../shared/fixtures/bench_db.sql
else
    sql=$PGFLEET_REPO/deploy/local/fixtures/bench_db.sql
fi
[ -r "$sql" ] || pgf_die "fixture not found: $sql (set PGFLEET_BENCH_SQL to its path)"
sql=$(realpath "$sql")

pgf_have psql || pgf_die "psql not found: run deploy/local/services.sh first"
PSQL=(psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 5432 -U postgres)
"${PSQL[@]}" -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1 ||
    pgf_die "cannot connect to PostgreSQL as postgres on 127.0.0.1:5432: run deploy/local/services.sh first"

# Scaled row counts, one "literal=count" per line.
mapping=$(
    perl -e '
        my $f = $ARGV[0];
        sub sc { my $n = int($_[0] * $f + 0.5); $n < 1 ? 1 : $n }
        my %m = map { $_ => sc($_) } (500000, 20000, 2000000, 1000000, 100000);
        # order_items.order_id = 1 + (g-1)/4 must stay <= the number of orders.
        $m{8000000} = 4 * $m{2000000};
        print "$_=$m{$_}\n" for sort { $a <=> $b } keys %m;
    ' "$scale"
)
declare -A scaled
while IFS='=' read -r k v; do scaled[$k]=$v; done <<<"$mapping"

declare -A expected=(
    [departments]=50
    [employees]=5000
    [customers]=${scaled[500000]}
    [products]=${scaled[20000]}
    [orders]=${scaled[2000000]}
    [order_items]=${scaled[8000000]}
    [events]=${scaled[1000000]}
    ['"Odd ""Name"" Table"']=1000
    [no_pk_log]=${scaled[100000]}
)

echo "loading $sql into database $db at scale $scale"
echo "  customers=${scaled[500000]} products=${scaled[20000]} orders=${scaled[2000000]} order_items=${scaled[8000000]} events=${scaled[1000000]} no_pk_log=${scaled[100000]}"

rewritten=$(mktemp)
trap 'rm -f "$rewritten"' EXIT
PGF_MAPPING=$mapping PGF_DB=$db perl -ne '
    BEGIN {
        %m = map { split /=/ } split /\n/, $ENV{PGF_MAPPING};
        $alt = join "|", sort { $b <=> $a } keys %m;
        $db = $ENV{PGF_DB};
        $names = 0;
    }
    s/\b($alt)\b/$seen{$1}++; $m{$1}/ge;
    $names += s/^(DROP DATABASE IF EXISTS|CREATE DATABASE)\s+bench\s*;/$1 $db;/;
    $names += s/^\\c\s+bench\s*$/\\c $db\n/;
    print;
    END {
        my @missing = grep { !$seen{$_} } sort keys %m;
        die "bench_db.sh: the fixture no longer contains the row-count literal(s) @missing; update deploy/local/bench_db.sh\n" if @missing;
        die "bench_db.sh: expected DROP DATABASE / CREATE DATABASE / \\c for database bench in the fixture, found $names of 3\n" if $names != 3;
    }
' "$sql" >"$rewritten"

t0=$(pgf_now_ms)
PGOPTIONS="${PGOPTIONS:+$PGOPTIONS }-c client_min_messages=warning" "${PSQL[@]}" -d postgres -q <"$rewritten"
echo "loaded in $(pgf_fmt_ms $(($(pgf_now_ms) - t0))) (foreign keys are declared before the rows are inserted, so the load itself checks them)"

counts=$("${PSQL[@]}" -d "$db" -At -F '|' -c "
    SELECT c.oid::regclass::text,
           CASE WHEN c.relkind = 'p' THEN 'partitioned' WHEN c.relispartition THEN 'partition' ELSE 'table' END,
           (xpath('/row/n/text()',
                  query_to_xml(format('SELECT count(*) AS n FROM %s', c.oid::regclass), false, true, '')))[1]::text
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
    ORDER BY 1")

bad=0
declare -A seen=()
printf '\n%-26s %-12s %12s  %s\n' table kind rows check
while IFS='|' read -r name kind rows; do
    check=""
    if [ -n "${expected[$name]+x}" ]; then
        if [ "$rows" = "${expected[$name]}" ]; then
            check="ok"
        else
            check="EXPECTED ${expected[$name]}"
            bad=1
        fi
        seen[$name]=1
    fi
    printf '%-26s %-12s %12s  %s\n' "$name" "$kind" "$rows" "$check"
done <<<"$counts"
for name in "${!expected[@]}"; do
    if [ -z "${seen[$name]+x}" ]; then
        echo "MISSING table $name" >&2
        bad=1
    fi
done
[ "$bad" -eq 0 ] || pgf_die "row counts in database $db do not match the scaled fixture"
echo "database $db ready: every table has the expected row count"
