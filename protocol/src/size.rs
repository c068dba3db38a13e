//! Byte sizes written by humans in job specs: `16MiB`, `512 KiB`, `1GB`, or a plain integer.

use crate::ident::shown;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const MIB: u64 = 1024 * 1024;

    /// Parse `16MiB`, `512 KiB`, `1.5GB`, `1_048_576`. Values beyond `u64::MAX` bytes are an
    /// error, not a silent clamp; plain integers are exact (no trip through `f64`).
    pub fn parse(input: &str) -> Result<Self, String> {
        let s = input.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let num = num.replace('_', "");
        let bad = || {
            format!(
                "invalid size {}: expected e.g. 16MiB or 1048576",
                shown(input)
            )
        };
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1000,
            "kib" => 1024,
            "m" | "mb" => 1000 * 1000,
            "mib" => 1024 * 1024,
            "g" | "gb" => 1000 * 1000 * 1000,
            "gib" => 1024 * 1024 * 1024,
            _ if num.is_empty() => return Err(bad()),
            _ => {
                return Err(format!(
                    "invalid size unit {} in {}: use B, KB, KiB, MB, MiB, GB or GiB",
                    shown(unit.trim()),
                    shown(input)
                ))
            }
        };
        let too_big = || format!("size {} is too large", shown(input));
        if !num.contains('.') {
            let n: u64 = num.parse().map_err(|e: std::num::ParseIntError| {
                if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) {
                    too_big()
                } else {
                    bad()
                }
            })?;
            return n.checked_mul(mult).map(Self).ok_or_else(too_big);
        }
        let num: f64 = num.parse().map_err(|_| bad())?;
        let bytes = (num * mult as f64).round();
        if !bytes.is_finite() || bytes < 0.0 {
            return Err(bad());
        }
        // 2^64 is exactly representable; anything at or above it does not fit.
        if bytes >= 18_446_744_073_709_551_616.0 {
            return Err(too_big());
        }
        Ok(Self(bytes as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b >= Self::MIB && b.is_multiple_of(Self::MIB) {
            write!(f, "{}MiB", b / Self::MIB)
        } else {
            write!(f, "{b}")
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size in bytes, e.g. 16777216 or \"16MiB\"")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(n))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<ByteSize, E> {
                u64::try_from(n)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("size {n} is negative")))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ByteSize, E> {
                ByteSize::parse(s).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(ByteSize::parse("16MiB").unwrap().0, 16 * 1024 * 1024);
        assert_eq!(ByteSize::parse("512 KiB").unwrap().0, 512 * 1024);
        assert_eq!(ByteSize::parse("1GB").unwrap().0, 1_000_000_000);
        assert_eq!(ByteSize::parse("1_048_576").unwrap().0, 1_048_576);
        assert_eq!(ByteSize::parse("1.5MiB").unwrap().0, 1_572_864);
        assert!(ByteSize::parse("12 parsecs").is_err());
        assert!(ByteSize::parse("MiB").is_err());
    }
}
