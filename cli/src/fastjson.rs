//! A fast path for the part of a JSONL item that is most of its bytes: the vector.
//!
//! `serde_json` spends about 40 ns per number of a 384-float vector; this scanner finds the
//! top-level `"vector": [...]` of a line and parses its numbers directly (about 10 ns each),
//! with the same arithmetic as serde for the common case, so the floats are identical. Any
//! line it does not fully understand (escaped keys, a nested value before the vector, a
//! number outside JSON's grammar) is left to serde, which parses it whole and reports errors.

use std::ops::Range;

/// Exact powers of ten as `f64` (10^22 is the largest that is exact).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The floats of the line's top-level `"vector"` array and the byte range of that array
/// (brackets included), or `None` to let serde parse the line.
pub(crate) fn split_vector(line: &str) -> Option<(Vec<f32>, Range<usize>)> {
    let b = line.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(b, i);
        let (key, after) = simple_string(b, i)?;
        i = skip_ws(b, after);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        if key == b"vector" {
            let start = i;
            let (vector, end) = number_array(b, i)?;
            return Some((vector, start..end));
        }
        i = skip_scalar(b, i)?;
        i = skip_ws(b, i);
        if b.get(i) != Some(&b',') {
            return None;
        }
        i += 1;
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

/// A string without escapes at `i`: its bytes and the index after its closing quote.
fn simple_string(b: &[u8], i: usize) -> Option<(&[u8], usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let len = b[i + 1..].iter().position(|&c| c == b'"' || c == b'\\')?;
    let end = i + 1 + len;
    (b[end] == b'"').then(|| (&b[i + 1..end], end + 1))
}

/// Skips a string (without escapes), number or literal; `None` for anything else.
fn skip_scalar(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => simple_string(b, i).map(|(_, after)| after),
        b'-' | b'0'..=b'9' => number(b, i).map(|(_, after)| after),
        b't' if b[i..].starts_with(b"true") => Some(i + 4),
        b'f' if b[i..].starts_with(b"false") => Some(i + 5),
        b'n' if b[i..].starts_with(b"null") => Some(i + 4),
        _ => None,
    }
}

/// An array of numbers at `i`: the floats and the index after `]`.
fn number_array(b: &[u8], i: usize) -> Option<(Vec<f32>, usize)> {
    if b.get(i) != Some(&b'[') {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / 12);
    let mut i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b']') {
        return Some((out, i + 1));
    }
    loop {
        let (x, after) = number(b, i)?;
        out.push(x);
        i = skip_ws(b, after);
        match b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b']' => return Some((out, i + 1)),
            _ => return None,
        }
    }
}

/// A JSON number at `i` as `f32` (through `f64`, as serde_json does) and the index after it.
fn number(b: &[u8], start: usize) -> Option<(f32, usize)> {
    let mut i = start;
    let negative = b.get(i) == Some(&b'-');
    if negative {
        i += 1;
    }
    // Every digit, leading zeros included, goes into the mantissa; more than 19 could
    // overflow it, and such numbers take std's parser instead.
    let mut mantissa: u64 = 0;
    let mut digits = 0usize;
    let mut exponent: i32 = 0;
    // Integer part: 0, or a non-zero digit and more.
    match b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => {
            let (m, n) = digit_run(b, i, 0);
            (mantissa, digits, i) = (m, n, i + n);
        }
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        let (m, n) = digit_run(b, i, mantissa);
        if n == 0 {
            return None;
        }
        mantissa = m;
        digits += n;
        exponent = -i32::try_from(n).ok()?;
        i += n;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        let sign = match b.get(i) {
            Some(b'-') => {
                i += 1;
                -1
            }
            Some(b'+') => {
                i += 1;
                1
            }
            _ => 1,
        };
        let first = i;
        let mut e: i32 = 0;
        while let Some(&c @ b'0'..=b'9') = b.get(i) {
            e = e.saturating_mul(10).saturating_add(i32::from(c - b'0'));
            i += 1;
        }
        if i == first {
            return None;
        }
        exponent = exponent.saturating_add(sign * e);
    }
    let value = if digits <= 19 && mantissa < (1 << 53) && exponent.unsigned_abs() <= 22 {
        // Exact mantissa and power of ten: one correctly rounded operation.
        let m = mantissa as f64;
        let p = POW10[exponent.unsigned_abs() as usize];
        if exponent < 0 { m / p } else { m * p }
    } else {
        std::str::from_utf8(&b[start..i])
            .ok()?
            .parse::<f64>()
            .ok()?
            .abs()
    };
    let value = if negative { -value } else { value };
    Some((value as f32, i))
}

/// The decimal digits from `i` appended to `mantissa` (wrapping: callers check the count)
/// and how many there were. Eight digits at a time while eight are there, then one by one.
fn digit_run(b: &[u8], i: usize, mut mantissa: u64) -> (u64, usize) {
    let mut n = 0;
    while let Some(chunk) = b.get(i + n..i + n + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        match eight_digits(word) {
            Some(v) => {
                mantissa = mantissa.wrapping_mul(100_000_000).wrapping_add(v);
                n += 8;
            }
            None => break,
        }
    }
    while let Some(&c @ b'0'..=b'9') = b.get(i + n) {
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
        n += 1;
    }
    (mantissa, n)
}

/// The value of eight ASCII digits read little-endian from a word, or `None` when any byte
/// is not a digit (the SWAR method of simdjson and fast_float).
fn eight_digits(word: u64) -> Option<u64> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const HIGH: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    // A byte is a digit when its high nibble is 3 and adding 6 does not carry past 9.
    let all_digits =
        word & HIGH == ZEROS && (word.wrapping_add(0x0606_0606_0606_0606) & HIGH) == ZEROS;
    if !all_digits {
        return None;
    }
    let v = word - ZEROS;
    // Pairs, then quads, then the eight: each step multiplies the higher half by 10^k.
    let v = (v * 10) + (v >> 8);
    let v = ((v & 0x0000_00ff_0000_00ff).wrapping_mul(100 + (1_000_000 << 32))
        + ((v >> 16) & 0x0000_00ff_0000_00ff).wrapping_mul(1 + (10_000 << 32)))
        >> 32;
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_vector(line: &str) -> Vec<f32> {
        #[derive(serde::Deserialize)]
        struct V {
            vector: Vec<f32>,
        }
        serde_json::from_str::<V>(line).unwrap().vector
    }

    #[test]
    fn floats_equal_serde_json_bit_for_bit() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for _ in 0..2000 {
            let values: Vec<String> = (0..50)
                .map(|_| {
                    let x = f32::from_bits((next() as u32) & 0x7f7f_ffff);
                    let y = (next() % 2_000_001) as f64 / 1e6 - 1.0;
                    match next() % 4 {
                        0 => format!("{x}"),
                        1 => format!("{x:e}"),
                        2 => format!("{}", y as f32),
                        _ => format!("{y}"),
                    }
                })
                .collect();
            let line = format!(
                "{{\"id\": \"a\", \"vector\": [{}], \"x\": 1}}",
                values.join(", ")
            );
            let (fast, range) = split_vector(&line).unwrap();
            let want = serde_vector(&line);
            assert_eq!(
                fast.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
                "{line}"
            );
            assert!(line[range].starts_with('['));
        }
    }

    #[test]
    fn eight_digits_parse_as_decimal_and_refuse_other_bytes() {
        for text in ["00000000", "12345678", "99999999", "40000001", "09876543"] {
            let word = u64::from_le_bytes(text.as_bytes().try_into().unwrap());
            assert_eq!(eight_digits(word), Some(text.parse().unwrap()), "{text}");
        }
        for text in [
            "1234567a", "/0000000", ":0000000", "1234 678", "-1234567", "1.345678",
        ] {
            let word = u64::from_le_bytes(text.as_bytes().try_into().unwrap());
            assert_eq!(eight_digits(word), None, "{text}");
        }
    }

    #[test]
    fn long_and_edge_numbers_equal_serde_json() {
        let numbers = [
            "0.000000000000000000001234",
            "123456789012345678901234567890",
            "0.1234567890123456789",
            "1234567890123456789e-30",
            "9007199254740993",
            "0.30000000000000004",
            "1e38",
            "3.4028235e38",
            "1e39",
            "1e-46",
            "-0.0",
            "12345678.87654321",
            "100000000000000000000",
        ];
        let line = format!("{{\"vector\": [{}]}}", numbers.join(","));
        let (fast, _) = split_vector(&line).unwrap();
        let want = serde_vector(&line);
        assert_eq!(
            fast.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|f| f.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn unusual_lines_are_left_to_serde() {
        for line in [
            r#"{"id": {"a": 1}, "vector": [1]}"#,
            r#"{"i\"d": 1, "vector": [1]}"#,
            r#"{"vector": [1, 2,]}"#,
            r#"{"vector": [01]}"#,
            r#"{"vector": [1.]}"#,
            r#"{"vector": [.5]}"#,
            r#"{"vector": [1e]}"#,
            r#"{"vector": [NaN]}"#,
            r#"{"vector": "x"}"#,
            r#"{"id": "a"}"#,
            r#"[1, 2]"#,
        ] {
            assert!(split_vector(line).is_none(), "{line}");
        }
        let (v, r) =
            split_vector(r#" { "id" : 7 , "ok": true, "vector" : [ -0 , 2.5E+1,1e-2 ] }"#).unwrap();
        assert_eq!(v, [-0.0, 25.0, 0.01]);
        assert!(r.start > 0);
    }
}
