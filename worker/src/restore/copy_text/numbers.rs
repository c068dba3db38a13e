//! Floats and decimals, exactly, in PostgreSQL's spellings.

use bytes::{BufMut, BytesMut};

/// Shortest representation that reads back to the same value (`1e300`, `5e-324`, `-0.0`),
/// and PostgreSQL's spellings of the special values.
#[inline]
pub fn write_f64(v: f64, out: &mut BytesMut) {
    if v.is_nan() {
        out.put_slice(b"NaN");
    } else if v.is_infinite() {
        out.put_slice(if v > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else {
        out.put_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    }
}

#[inline]
pub fn write_f32(v: f32, out: &mut BytesMut) {
    if v.is_nan() {
        out.put_slice(b"NaN");
    } else if v.is_infinite() {
        out.put_slice(if v > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else {
        out.put_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    }
}

/// An unscaled integer with `scale` digits after the point, exactly (`12345`, 2 → `123.45`;
/// negative scales append zeros).
#[inline]
pub fn write_decimal(v: i128, scale: i8, out: &mut BytesMut) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(v.unsigned_abs()).as_bytes();
    if v < 0 {
        out.put_u8(b'-');
    }
    if scale <= 0 {
        out.put_slice(digits);
        if v != 0 {
            for _ in 0..scale.unsigned_abs() {
                out.put_u8(b'0');
            }
        }
        return;
    }
    let scale = usize::from(scale.unsigned_abs());
    if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.put_slice(int);
        out.put_u8(b'.');
        out.put_slice(frac);
    } else {
        out.put_slice(b"0.");
        for _ in digits.len()..scale {
            out.put_u8(b'0');
        }
        out.put_slice(digits);
    }
}
