//! The restore ledger: which pieces of an export are already loaded into the target, so that a
//! redelivered task is a no-op. It lives in the target database itself, and a piece's ledger row
//! is written in the same transaction as its rows: either both are there or neither is.
//!
//! ```sql
//! CREATE SCHEMA pgfleet_restore;
//! CREATE TABLE pgfleet_restore.ledger (
//!     export       text NOT NULL,   -- the export's identity (its root URL)
//!     piece        text NOT NULL,   -- object key plus row-group range, e.g. `…/part-00000.gz.parquet#0-4`
//!     table_schema text NOT NULL,   -- the target table the piece went into
//!     table_name   text NOT NULL,
//!     rows         bigint,          -- rows loaded (the COPY command tag); set before COMMIT
//!     loaded_at    timestamptz NOT NULL DEFAULT now(),
//!     PRIMARY KEY (export, piece)
//! );
//! CREATE INDEX ledger_table ON pgfleet_restore.ledger (export, table_schema, table_name);
//! ```
//!
//! Protocol of one load transaction:
//! 1. `INSERT … ON CONFLICT DO NOTHING RETURNING 1` of the piece's row, first: a concurrent
//!    delivery of the same piece blocks on the primary key until this transaction ends, then
//!    sees the conflict (committed) or inserts (rolled back).
//! 2. No row returned: the piece is already loaded; read its `rows`, COMMIT, done.
//! 3. Otherwise COPY, `UPDATE … SET rows = <COPY tag>`, COMMIT.

use protocol::QualifiedName;
use tokio_postgres::GenericClient;

/// DDL for the ledger; idempotent. The coordinator runs it once at job start.
pub const LEDGER_DDL: &str = "\
CREATE SCHEMA IF NOT EXISTS pgfleet_restore;
CREATE TABLE IF NOT EXISTS pgfleet_restore.ledger (
    export text NOT NULL,
    piece text NOT NULL,
    table_schema text NOT NULL,
    table_name text NOT NULL,
    rows bigint,
    loaded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (export, piece)
);
CREATE INDEX IF NOT EXISTS ledger_table ON pgfleet_restore.ledger (export, table_schema, table_name);
";

/// Rows recorded in the ledger for one table of one export (all of its loaded pieces).
pub async fn loaded_rows<C: GenericClient + Sync>(
    client: &C,
    export: &str,
    table: &QualifiedName,
) -> Result<u64, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT coalesce(sum(rows), 0)::bigint FROM pgfleet_restore.ledger \
             WHERE export = $1 AND table_schema = $2 AND table_name = $3",
            &[&export, &table.schema, &table.name],
        )
        .await?;
    let rows: i64 = row.try_get(0)?;
    Ok(u64::try_from(rows).unwrap_or(0))
}

/// Step 1: claim the piece. True when this transaction inserted the row (the piece is ours to
/// load), false when it was already loaded by a committed transaction.
pub async fn claim<C: GenericClient + Sync>(
    client: &C,
    export: &str,
    piece: &str,
    table: &QualifiedName,
) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "INSERT INTO pgfleet_restore.ledger (export, piece, table_schema, table_name) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1",
            &[&export, &piece, &table.schema, &table.name],
        )
        .await?;
    Ok(row.is_some())
}

/// What the ledger says about a piece already loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedPiece {
    pub rows: Option<i64>,
    pub table: QualifiedName,
}

pub async fn loaded_piece<C: GenericClient + Sync>(
    client: &C,
    export: &str,
    piece: &str,
) -> Result<Option<LoadedPiece>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT rows, table_schema, table_name FROM pgfleet_restore.ledger \
             WHERE export = $1 AND piece = $2",
            &[&export, &piece],
        )
        .await?;
    row.map(|r| {
        Ok(LoadedPiece {
            rows: r.try_get(0)?,
            table: QualifiedName::new(r.try_get::<_, String>(1)?, r.try_get::<_, String>(2)?),
        })
    })
    .transpose()
}

/// Step 3: record the COPY's row count on the claimed row.
pub async fn record_rows<C: GenericClient + Sync>(
    client: &C,
    export: &str,
    piece: &str,
    rows: u64,
) -> Result<(), tokio_postgres::Error> {
    let rows = i64::try_from(rows).unwrap_or(i64::MAX);
    client
        .execute(
            "UPDATE pgfleet_restore.ledger SET rows = $3 WHERE export = $1 AND piece = $2",
            &[&export, &piece, &rows],
        )
        .await?;
    Ok(())
}
