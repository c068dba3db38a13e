//! The columns of an `rds-parquet` file: each column's kind from its `pg_type.typname`, and
//! the Arrow schema of the file.
//!
//! Types (see the RDS export reference): int2 → INT32 annotated INT(16), int4 → INT32,
//! int8 → INT64, float4 → FLOAT, float8 → DOUBLE, bool → BOOLEAN, bytea → BYTE_ARRAY (raw
//! bytes), everything else → BYTE_ARRAY + STRING holding PostgreSQL's text output. Every column
//! is OPTIONAL.

use crate::error::TaskError;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use protocol::ColumnExport;
use std::sync::Arc;

/// How one column is stored, from its `pg_type.typname`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// int2: INT32 with the INT(16) annotation (Arrow Int16).
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    /// bytea: raw bytes, no STRING annotation.
    Binary,
    /// Everything else: PostgreSQL's text output.
    Text,
}

impl ColumnKind {
    pub fn from_typname(typname: &str) -> Self {
        match typname {
            "int2" => Self::Int16,
            "int4" => Self::Int32,
            "int8" => Self::Int64,
            "float4" => Self::Float32,
            "float8" => Self::Float64,
            "bool" => Self::Boolean,
            "bytea" => Self::Binary,
            _ => Self::Text,
        }
    }

    pub fn data_type(self) -> DataType {
        match self {
            Self::Int16 => DataType::Int16,
            Self::Int32 => DataType::Int32,
            Self::Int64 => DataType::Int64,
            Self::Float32 => DataType::Float32,
            Self::Float64 => DataType::Float64,
            Self::Boolean => DataType::Boolean,
            Self::Binary => DataType::Binary,
            Self::Text => DataType::Utf8,
        }
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
            .map(|c| Field::new(c.name.clone(), c.kind.data_type(), true))
            .collect::<Vec<_>>(),
    ))
}
