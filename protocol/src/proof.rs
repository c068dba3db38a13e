//! What proves an export part after the fact, computed while it is written (no extra pass):
//! - [`ObjectChecksum`]: CRC32C (Castagnoli) of the object's bytes exactly as stored, so a
//!   truncated, extended or corrupted object is caught by reading it back;
//! - [`RowFingerprint`]: the rows as the source sent them, before any transform: the row count
//!   and the wrapping sum of each row's XXH3-64. PostgreSQL sends one CopyData message per row
//!   in COPY TO, so each message is one row and the digest does not depend on how the stream is
//!   cut. A sum is order-independent: the same query run again (`coordinator verify --source`)
//!   gives the same digest for the same rows in any order.

use serde::{Deserialize, Serialize};

/// What `_manifest.json` says about how these were computed.
pub const OBJECT_CHECKSUM_ALGORITHM: &str = "crc32c";
pub const ROW_FINGERPRINT_ALGORITHM: &str =
    "count and wrapping 64-bit sum of XXH3-64 (seed 0) of each COPY row as the source sent it";

/// Running CRC32C of an object's bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectChecksum(u32);

impl ObjectChecksum {
    pub fn add(&mut self, bytes: &[u8]) {
        self.0 = crc32c::crc32c_append(self.0, bytes);
    }

    /// Append a piece whose own CRC32C is already known (an upload part): no second pass.
    pub fn add_piece(&mut self, piece: ObjectChecksum, len: usize) {
        self.0 = crc32c::crc32c_combine(self.0, piece.0, len);
    }

    /// The CRC32C of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(crc32c::crc32c(bytes))
    }

    /// Base64 of the big-endian value: the `x-amz-checksum-crc32c` form.
    pub fn to_base64(self) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let b = self.0.to_be_bytes();
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        let mut out = String::with_capacity(8);
        for shift in [18, 12, 6, 0] {
            out.push(char::from(ALPHABET[(n >> shift & 63) as usize]));
        }
        let m = u32::from(b[3]) << 16;
        out.push(char::from(ALPHABET[(m >> 18 & 63) as usize]));
        out.push(char::from(ALPHABET[(m >> 12 & 63) as usize]));
        out.push_str("==");
        out
    }

    pub fn value(self) -> u32 {
        self.0
    }

    /// Eight lowercase hex digits, as manifests write it.
    pub fn to_hex(self) -> String {
        format!("{:08x}", self.0)
    }
}

/// Order-independent digest of a multiset of rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowFingerprint {
    pub rows: u64,
    /// Sixteen lowercase hex digits.
    #[serde(with = "hex_u64")]
    pub sum: u64,
}

impl RowFingerprint {
    /// One row, exactly as one COPY message carried it.
    #[inline]
    pub fn add_row(&mut self, row: &[u8]) {
        self.rows += 1;
        self.sum = self.sum.wrapping_add(xxhash_rust::xxh3::xxh3_64(row));
    }

    /// The digest of both sets together (chunks of one table add up).
    pub fn combine(self, other: RowFingerprint) -> RowFingerprint {
        RowFingerprint {
            rows: self.rows + other.rows,
            sum: self.sum.wrapping_add(other.sum),
        }
    }
}

/// What a worker reports about the part it wrote (export tasks). Either may be missing: a part
/// found already written by an earlier delivery of the same task was not read from the source
/// this time, and older workers send neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartProof {
    /// CRC32C of the object as stored, eight hex digits.
    #[serde(default, with = "hex_u32_opt", skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<RowFingerprint>,
}

impl PartProof {
    pub fn is_empty(&self) -> bool {
        self.crc32c.is_none() && self.fingerprint.is_none()
    }
}

mod hex_u32_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&format!("{v:08x}")),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => u32::from_str_radix(&s, 16)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

mod hex_u64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        u64::from_str_radix(&s, 16).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_crc32c_and_streams() {
        // The CRC-32C check value (RFC 3720 / iSCSI).
        let mut c = ObjectChecksum::default();
        c.add(b"123456789");
        assert_eq!(c.value(), 0xe306_9283);
        let mut parts = ObjectChecksum::default();
        parts.add(b"1234");
        parts.add(b"56789");
        assert_eq!(parts, c);
        assert_eq!(c.to_hex(), "e3069283");
        let mut combined = ObjectChecksum::of(b"1234");
        combined.add_piece(ObjectChecksum::of(b"56789"), 5);
        assert_eq!(combined, c);
        // What S3 returns for "hello world\n" (checked against s3s-fs): 8P9ykg==.
        assert_eq!(ObjectChecksum::of(b"hello world\n").to_base64(), "8P9ykg==");
    }

    #[test]
    fn fingerprint_ignores_order_and_sees_every_row() {
        let mut a = RowFingerprint::default();
        let mut b = RowFingerprint::default();
        for r in ["1,x\n", "2,y\n", "3,z\n"] {
            a.add_row(r.as_bytes());
        }
        for r in ["3,z\n", "1,x\n", "2,y\n"] {
            b.add_row(r.as_bytes());
        }
        assert_eq!(a, b);
        let mut changed = RowFingerprint::default();
        for r in ["1,x\n", "2,Y\n", "3,z\n"] {
            changed.add_row(r.as_bytes());
        }
        assert_ne!(a, changed);
        let mut half = RowFingerprint::default();
        half.add_row(b"1,x\n");
        let mut rest = RowFingerprint::default();
        rest.add_row(b"2,y\n");
        rest.add_row(b"3,z\n");
        assert_eq!(half.combine(rest), a);
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.contains("\"rows\":3"), "{json}");
        assert_eq!(serde_json::from_str::<RowFingerprint>(&json).unwrap(), a);
        let proof = PartProof {
            crc32c: Some(0xe306_9283),
            fingerprint: Some(a),
        };
        let json = serde_json::to_string(&proof).unwrap();
        assert!(json.contains("\"crc32c\":\"e3069283\""), "{json}");
        assert_eq!(serde_json::from_str::<PartProof>(&json).unwrap(), proof);
        assert_eq!(
            serde_json::from_str::<PartProof>("{}").unwrap(),
            PartProof::default()
        );
        assert_eq!(serde_json::to_string(&PartProof::default()).unwrap(), "{}");
    }
}
