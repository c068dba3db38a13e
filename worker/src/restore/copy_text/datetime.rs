//! Dates, times and timestamps as PostgreSQL reads them (ISO 8601, ` BC` for years <= 0),
//! computed by hand: no allocation, no time zone database.

use arrow::datatypes::TimeUnit;
use bytes::{BufMut, BytesMut};

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01 (H. Hinnant's
/// `civil_from_days`). Total over i64 inputs that come from i32 days or i64 seconds / 86400.
#[inline]
pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = era.saturating_mul(400).saturating_add(yoe) + i64::from(month <= 2);
    (year, month, day)
}

#[inline]
fn put_2(v: u32, out: &mut BytesMut) {
    out.put_slice(&[b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8]);
}

/// `YYYY-MM-DD`; returns whether the year is BC (year <= 0), whose ` BC` suffix the caller
/// writes after the whole value, as PostgreSQL does.
#[inline]
fn put_date(days: i64, out: &mut BytesMut) -> bool {
    let (year, month, day) = civil_from_days(days);
    let bc = year <= 0;
    let shown = if bc { 1 - year } else { year }.unsigned_abs();
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(shown).as_bytes();
    for _ in digits.len()..4 {
        out.put_u8(b'0');
    }
    out.put_slice(digits);
    out.put_u8(b'-');
    put_2(month, out);
    out.put_u8(b'-');
    put_2(day, out);
    bc
}

#[inline]
pub(super) fn write_date(days: i64, out: &mut BytesMut) {
    if put_date(days, out) {
        out.put_slice(b" BC");
    }
}

/// Units per second and fraction digits of a time unit.
#[inline]
fn unit_scale(unit: TimeUnit) -> (i64, usize) {
    match unit {
        TimeUnit::Second => (1, 0),
        TimeUnit::Millisecond => (1_000, 3),
        TimeUnit::Microsecond => (1_000_000, 6),
        TimeUnit::Nanosecond => (1_000_000_000, 9),
    }
}

/// `HH:MM:SS[.fraction]` of `secs` seconds into the day plus `frac` units of `digits` digits
/// (trailing zeros trimmed).
#[inline]
fn put_clock(secs: i64, frac: i64, digits: usize, out: &mut BytesMut) {
    let mut buf = itoa::Buffer::new();
    let hours = secs.div_euclid(3600);
    if (0..10).contains(&hours) {
        out.put_u8(b'0');
    }
    out.put_slice(buf.format(hours).as_bytes());
    out.put_u8(b':');
    put_2((secs.rem_euclid(3600) / 60) as u32, out);
    out.put_u8(b':');
    put_2(secs.rem_euclid(60) as u32, out);
    if frac != 0 && digits > 0 {
        let text = buf.format(frac).as_bytes();
        let mut fraction = [b'0'; 9];
        let digits = digits.min(9);
        let start = digits.saturating_sub(text.len());
        for (i, &c) in text.iter().take(digits).enumerate() {
            fraction[start + i] = c;
        }
        let mut end = digits;
        while end > 0 && fraction[end - 1] == b'0' {
            end -= 1;
        }
        out.put_u8(b'.');
        out.put_slice(&fraction[..end]);
    }
}

#[inline]
pub(super) fn write_time(v: i64, unit: TimeUnit, out: &mut BytesMut) {
    let (per_sec, digits) = unit_scale(unit);
    put_clock(v.div_euclid(per_sec), v.rem_euclid(per_sec), digits, out);
}

/// ISO 8601 as PostgreSQL reads it: `YYYY-MM-DD HH:MM:SS[.ffffff][+00][ BC]`.
#[inline]
pub(super) fn write_timestamp(v: i64, unit: TimeUnit, utc: bool, out: &mut BytesMut) {
    let (per_sec, digits) = unit_scale(unit);
    let secs = v.div_euclid(per_sec);
    let bc = put_date(secs.div_euclid(86_400), out);
    out.put_u8(b' ');
    put_clock(secs.rem_euclid(86_400), v.rem_euclid(per_sec), digits, out);
    if utc {
        out.put_slice(b"+00");
    }
    if bc {
        out.put_slice(b" BC");
    }
}
