//! How an AWS RDS snapshot export types a PostgreSQL column in Parquet (see the type table of
//! `docs/rds-export-format.md`): the one rule used by the worker's `rds-parquet` encoder, the
//! coordinator's tables-info documents and the restore's type checks.

/// The Parquet storage of one exported column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RdsType {
    /// int2: INT32 with the INT(16) annotation.
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    /// bytea: raw bytes, no STRING annotation.
    Binary,
    /// Everything else: BYTE_ARRAY + STRING holding PostgreSQL's text output.
    Text,
}

impl RdsType {
    /// The storage of a column of type `typname` (`pg_type.typname`).
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

    /// `expectedExportedType` in the export's tables-info metadata.
    pub fn exported_type(self) -> &'static str {
        match self {
            Self::Int16 | Self::Int32 => "int32",
            Self::Int64 => "int64",
            Self::Float32 => "float",
            Self::Float64 => "double",
            Self::Boolean => "boolean",
            Self::Binary => "binary",
            Self::Text => "binary (UTF8)",
        }
    }

    /// Read an `expectedExportedType` written by AWS (or by [`Self::exported_type`]), ignoring
    /// case: any `binary…` naming UTF8 is text, any other `binary…` raw bytes. `int32` comes
    /// back as [`Self::Int32`] (the metadata does not tell int2 from int4). `None` for names
    /// never seen.
    pub fn from_exported_type(name: &str) -> Option<Self> {
        let name = name.to_ascii_lowercase();
        if name.starts_with("binary") {
            return Some(if name.contains("utf8") {
                Self::Text
            } else {
                Self::Binary
            });
        }
        Some(match name.as_str() {
            "int32" => Self::Int32,
            "int64" => Self::Int64,
            "float" => Self::Float32,
            "double" => Self::Float64,
            "boolean" => Self::Boolean,
            _ => return None,
        })
    }

    /// True for the numeric kinds.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Self::Int16 | Self::Int32 | Self::Int64 | Self::Float32 | Self::Float64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_mapping() {
        let cases = [
            ("int2", RdsType::Int16, "int32"),
            ("int4", RdsType::Int32, "int32"),
            ("int8", RdsType::Int64, "int64"),
            ("float4", RdsType::Float32, "float"),
            ("float8", RdsType::Float64, "double"),
            ("bool", RdsType::Boolean, "boolean"),
            ("bytea", RdsType::Binary, "binary"),
            ("varchar", RdsType::Text, "binary (UTF8)"),
            ("timestamptz", RdsType::Text, "binary (UTF8)"),
            ("_int4", RdsType::Text, "binary (UTF8)"),
            ("mood", RdsType::Text, "binary (UTF8)"),
            ("numeric", RdsType::Text, "binary (UTF8)"),
        ];
        for (typname, kind, exported) in cases {
            assert_eq!(RdsType::from_typname(typname), kind, "{typname}");
            assert_eq!(kind.exported_type(), exported, "{typname}");
            let back = RdsType::from_exported_type(exported).unwrap();
            assert_eq!(back.exported_type(), exported);
        }
    }

    #[test]
    fn exported_names_are_read_tolerantly() {
        assert_eq!(
            RdsType::from_exported_type("BINARY (UTF8)"),
            Some(RdsType::Text)
        );
        assert_eq!(
            RdsType::from_exported_type("binary(utf8)"),
            Some(RdsType::Text)
        );
        assert_eq!(RdsType::from_exported_type("Binary"), Some(RdsType::Binary));
        assert_eq!(
            RdsType::from_exported_type("binary (bytes)"),
            Some(RdsType::Binary)
        );
        assert_eq!(RdsType::from_exported_type("INT64"), Some(RdsType::Int64));
        assert_eq!(RdsType::from_exported_type("int96"), None);
        assert_eq!(RdsType::from_exported_type(""), None);
    }
}
