//! Text and bytea values, escaped for COPY text format.

use bytes::{BufMut, BytesMut};

/// True when no byte of `s` needs an escape. Branch-free over 16-byte blocks so the compiler
/// vectorizes it; bytes <= `\r` (which include `\t` and `\n`) and `\` send a value to the slow
/// path, which escapes only the four framing bytes.
#[inline]
fn is_plain(s: &[u8]) -> bool {
    let mut blocks = s.chunks_exact(16);
    for block in &mut blocks {
        let mut special = false;
        for &b in block {
            special |= (b <= b'\r') | (b == b'\\');
        }
        if special {
            return false;
        }
    }
    blocks.remainder().iter().all(|&b| b > b'\r' && b != b'\\')
}

/// A text value, escaped for COPY text format.
#[inline]
pub fn write_text(s: &[u8], out: &mut BytesMut) {
    if is_plain(s) {
        out.put_slice(s);
        return;
    }
    out.reserve(s.len() + 16);
    // Next position of `\r` and of any of the other three, each searched again only once
    // passed, so the whole value is scanned once however many escapes it needs.
    let len = s.len();
    let find3 =
        |from: usize| memchr::memchr3(b'\\', b'\t', b'\n', &s[from..]).map_or(len, |o| from + o);
    let find_cr = |from: usize| memchr::memchr(b'\r', &s[from..]).map_or(len, |o| from + o);
    let (mut next3, mut next_cr) = (find3(0), find_cr(0));
    let mut start = 0;
    loop {
        let at = next3.min(next_cr);
        if at >= len {
            break;
        }
        out.put_slice(&s[start..at]);
        out.put_slice(match s[at] {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            _ => b"\\r",
        });
        start = at + 1;
        if at == next3 {
            next3 = find3(start);
        } else {
            next_cr = find_cr(start);
        }
    }
    out.put_slice(&s[start..]);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A bytea value in hex format. In COPY text the value's own backslash must be escaped, so the
/// field starts with `\\x`.
#[inline]
pub fn write_bytea(bytes: &[u8], out: &mut BytesMut) {
    out.reserve(3 + 2 * bytes.len());
    out.put_slice(b"\\\\x");
    for chunk in bytes.chunks(512) {
        let mut pairs = [0u8; 1024];
        for (i, &b) in chunk.iter().enumerate() {
            pairs[2 * i] = HEX[usize::from(b >> 4)];
            pairs[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        out.put_slice(&pairs[..2 * chunk.len()]);
    }
}
