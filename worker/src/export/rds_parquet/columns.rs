//! The columns of an `rds-parquet` file: each column's kind from its `pg_type.typname`, and
//! the Arrow schema of the file.
//!
//! Types (see the RDS export reference): int2 → INT32 annotated INT(16), int4 → INT32,
//! int8 → INT64, float4 → FLOAT, float8 → DOUBLE, bool → BOOLEAN, bytea → BYTE_ARRAY (raw
//! bytes), everything else → BYTE_ARRAY + STRING holding PostgreSQL's text output. Every column
//! is OPTIONAL.

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use fleet_io::error::TaskError;
use protocol::{ColumnExport, RdsType};
use std::sync::Arc;

/// How one column is stored: the protocol's rule ([`RdsType::from_typname`]), the same the
/// coordinator writes into the export's tables-info documents.
pub type ColumnKind = RdsType;

/// The Arrow type a column's values are built in before they are written.
pub fn data_type(kind: ColumnKind) -> DataType {
    match kind {
        RdsType::Int16 => DataType::Int16,
        RdsType::Int32 => DataType::Int32,
        RdsType::Int64 => DataType::Int64,
        RdsType::Float32 => DataType::Float32,
        RdsType::Float64 => DataType::Float64,
        RdsType::Boolean => DataType::Boolean,
        RdsType::Binary => DataType::Binary,
        RdsType::Text => DataType::Utf8,
    }
}

/// One exported column: its name (the Parquet field name, exactly) and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    pub name: String,
    pub kind: ColumnKind,
    /// For messages.
    pub typname: String,
}

/// The columns of a task. Every column must carry its type: the coordinator sends them for this
/// format, and guessing would silently change the output.
pub fn column_specs(columns: &[ColumnExport]) -> Result<Vec<ColumnSpec>, TaskError> {
    if columns.is_empty() {
        return Err(TaskError::fatal("the task lists no columns to export"));
    }
    columns
        .iter()
        .map(|c| {
            let ty = c.pg_type.as_ref().ok_or_else(|| {
                TaskError::fatal(format!(
                    "column {:?} has no pg_type: the rds-parquet format needs every column's type \
                     from the coordinator (re-plan the job with a coordinator that sends them)",
                    c.name
                ))
            })?;
            if c.transform.is_some() {
                return Err(TaskError::fatal(format!(
                    "column {:?} has a transform: transforms apply to CSV outputs only, not to \
                     rds-parquet",
                    c.name
                )));
            }
            Ok(ColumnSpec {
                name: c.name.clone(),
                kind: ColumnKind::from_typname(&ty.typname),
                typname: ty.typname.clone(),
            })
        })
        .collect()
}

/// The Arrow schema of the file: field names are the column names exactly, all nullable.
pub fn arrow_schema(columns: &[ColumnSpec]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(c.name.clone(), data_type(c.kind), true))
            .collect::<Vec<_>>(),
    ))
}
