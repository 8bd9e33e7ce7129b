//! A fast path for the part of a JSONL item that is most of its bytes: the vector.
//!
//! `serde_json` spends about 40 ns per number of a 384-float vector; this scanner finds the
//! top-level `"vector": [...]` of a line and parses its numbers directly, with the same
//! arithmetic as serde for the common case, so the floats are identical. Any line it does not
//! fully understand (escaped keys, a nested value before the vector, a number outside JSON's
//! grammar) is left to serde, which parses it whole and reports errors.
//!
//! About 9 ns a number (20k lines of 384 `f32`s as `export` writes them): digits are read
//! eight at a time, the common `-0.DDD` shape converts from two words without a branch on
//! its length, and the array is scanned as two halves side by side, because where a number
//! starts is known only once the one before it is parsed (one scan waits on that chain).
//!
//! Why it is kept rather than a maintained crate (issue #40): an interleaved A/B of
//! `ciphervec import` of 50,000 JSONL lines of 384 floats (wordnet-minilm-50k as `export`
//! writes it, databases in /dev/shm, `--batch 10000`, 5 rounds in rotating order, 2 shared
//! cores, 2026-12-08) took a median 2.05 s with this scanner (24,300 rows/s), 3.29 s with
//! the library's `Item::from_json_line` alone (serde_json's float parsing: 0.62x), and
//! 5.70 s with sonic-rs 0.5 finding and parsing the vector (0.36x: its SIMD paths need
//! `-C target-cpu=native`, and this binary is built portable, with the kernels' runtime
//! dispatch). Everything but the vector goes through the library, so the item's rules
//! (unknown keys refused) are the library's either way.

use std::ops::Range;

/// Exact powers of ten as `f64` (10^22 is the largest that is exact).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The floats of the line's top-level `"vector"` array and the byte range of that array
/// (brackets included), or `None` to let serde parse the line.
pub(crate) fn split_vector(b: &[u8]) -> Option<(Vec<f32>, Range<usize>)> {
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
///
/// Where a number starts is known only once the one before it is parsed, so a scan that goes
/// from number to number waits on that chain at every number. The array is therefore cut in
/// two at a comma near its middle and the halves are scanned together, one number of each in
/// turn: the processor runs the two chains side by side.
fn number_array(b: &[u8], i: usize) -> Option<(Vec<f32>, usize)> {
    if b.get(i) != Some(&b'[') {
        return None;
    }
    // Numbers hold no `]`, so the first one closes the array (or the line is not one for the
    // fast path, which a number that fails to parse then shows).
    let close = i + 1 + memchr::memchr(b']', &b[i + 1..])?;
    if b[i + 1..close].trim_ascii().is_empty() {
        return Some((Vec::new(), close + 1));
    }
    let middle = (i + 1 + close) / 2;
    let Some(cut) = memchr::memchr(b',', &b[middle..close]).map(|k| middle + k) else {
        // No comma in the second half: one scan.
        let mut floats = Vec::with_capacity((close - i) / 8);
        scan_numbers(b, i + 1, close, &mut floats)?;
        floats.shrink_to_fit();
        return Some((floats, close + 1));
    };
    // Room for both halves in the first (numbers of eight bytes or more), so that appending
    // the second does not move it.
    let mut first = Vec::with_capacity((close - i) / 8);
    let mut second = Vec::with_capacity((close - cut) / 8);
    // Each half ends at its separator: the cut's comma, then the closing bracket.
    let (mut p, mut q) = (i + 1, cut + 1);
    while p <= cut && q <= close {
        let (x, after_x) = array_number(b, p)?;
        let (y, after_y) = array_number(b, q)?;
        first.push(x);
        second.push(y);
        (p, q) = (after_x, after_y);
    }
    let p = scan_numbers(b, p, cut, &mut first)?;
    let q = scan_numbers(b, q, close, &mut second)?;
    (p == cut + 1 && q == close + 1).then_some(())?;
    first.append(&mut second);
    // The estimate's spare room back (the item holds its vector until its batch is written).
    first.shrink_to_fit();
    Some((first, close + 1))
}

/// The numbers from `p` until the one whose separator is at `last`: the index after it.
fn scan_numbers(b: &[u8], mut p: usize, last: usize, floats: &mut Vec<f32>) -> Option<usize> {
    while p <= last {
        let (x, after) = array_number(b, p)?;
        floats.push(x);
        p = after;
    }
    Some(p)
}

/// The array element at `p` (whitespace around it allowed) as serde_json reads it and
/// converts it to `f32`, and the index after the `,` or `]` that ends it.
// Inlined into the loop over both halves: a call per number returned through memory and
// kept the two scans from overlapping (10.3 -> 9.0 ns a number once inlined).
#[inline(always)]
fn array_number(b: &[u8], p: usize) -> Option<(f32, usize)> {
    match short_fraction(b, p) {
        Some(parsed) => Some(parsed),
        None => other_number(b, p),
    }
}

/// `array_number` for any number that is not a short fraction.
#[inline(never)]
fn other_number(b: &[u8], p: usize) -> Option<(f32, usize)> {
    let i = skip_ws(b, p);
    let ((numerator, denominator), after) = match common_number(b, i) {
        Some(parsed) => parsed,
        None => number(b, i)?,
    };
    let j = skip_ws(b, after);
    matches!(b.get(j)?, b',' | b']').then_some(())?;
    // As serde_json: the f64 nearest the decimal, then to f32.
    Some(((numerator / denominator) as f32, j + 1))
}

/// The most common shape of an embedding's number, `-?0.D+` with 1 to 15 fraction digits
/// directly followed by `,` or `]`; `None` for anything else.
///
/// The fraction's digits fill two words from the front and the bytes after them become '0',
/// so the words hold `m * 10^(16 - k)` for the `k` digits' value `m`: exact in an `f64`
/// (below 2^53 for `k <= 15`), as 10^16 is, so the one division gives the same correctly
/// rounded `f64` as serde_json's `m / 10^k`.
#[inline(always)]
fn short_fraction(b: &[u8], p: usize) -> Option<(f32, usize)> {
    let negative = *b.get(p)? == b'-';
    let zero = p + usize::from(negative);
    if b.get(zero..zero + 2)? != b"0." {
        return None;
    }
    let (high, low) = (word_at(b, zero + 2)?, word_at(b, zero + 10)?);
    let k_high = leading_digits(high);
    // The low word counts only after eight digits (a product, not a branch).
    let k_low = leading_digits(low) * usize::from(k_high == 8);
    let digits = k_high + k_low;
    let end = zero + 2 + digits;
    if digits == 0 || digits > 15 || !matches!(b[end], b',' | b']') {
        return None;
    }
    let scaled = eight_digits_value(keep_front(high, k_high)) * 100_000_000
        + eight_digits_value(keep_front(low, k_low));
    // The sign goes in as a bit: a branch on it would be mispredicted half the time.
    // Below 2^53, so exact as `i64` (one instruction to `f64`, where `u64` takes several).
    let magnitude = scaled.cast_signed() as f64;
    let value = f64::from_bits(magnitude.to_bits() | (u64::from(negative) << 63));
    Some(((value / 1e16) as f32, end + 1))
}

/// `word` with its bytes after the first `keep` (0 to 8, little-endian) replaced by '0'.
fn keep_front(word: u64, keep: usize) -> u64 {
    // FRONT[k]: the first k bytes of a little-endian word.
    const FRONT: [u64; 9] = {
        let mut table = [0u64; 9];
        let mut k = 1;
        while k < 9 {
            table[k] = !0u64 >> (8 * (8 - k));
            k += 1;
        }
        table
    };
    (word & FRONT[keep]) | (ZEROS & !FRONT[keep])
}

/// The common shape of a vector's number, `-?D+.D+` with at most 7 integer digits, 15
/// fraction digits and 19 digits in all (and 16 bytes to read after the point), parsed
/// without a data-dependent branch; `None` for anything else, which `number` then parses
/// (to the same fraction when it is this shape after all).
fn common_number(b: &[u8], start: usize) -> Option<((f64, f64), usize)> {
    let negative = *b.get(start)? == b'-';
    let i = start + usize::from(negative);
    // Unit-norm embeddings are mostly "0.ddd": that integer part needs no conversion.
    let (integer, k1) = if b.get(i..i + 2)? == b"0." {
        (0, 1)
    } else {
        let int_word = word_at(b, i)?;
        let k1 = leading_digits(int_word);
        // No digit, too many, or a leading zero (JSON forbids it: `number` says so).
        if k1 == 0 || k1 == 8 || (k1 > 1 && b[i] == b'0') || b[i + k1] != b'.' {
            return None;
        }
        (first_digits_value(int_word, k1), k1)
    };
    let f = i + k1 + 1;
    let (high_word, low_word) = (word_at(b, f)?, word_at(b, f + 8)?);
    let k2 = leading_digits(high_word);
    // The low word counts only after eight digits (a product, not a branch: whether a
    // fraction has 8 digits or 9 is a coin toss the branch predictor would lose).
    let k3 = leading_digits(low_word) * usize::from(k2 == 8);
    let end = f + k2 + k3;
    if k2 == 0 || k3 == 8 || k1 + k2 + k3 > 19 || matches!(b.get(end), Some(b'e' | b'E')) {
        return None;
    }
    // The fraction's last eight digits, and those before them, as words that end where the
    // digits end: the bytes in front of the digits are masked to '0', no shift needed.
    let n = k2 + k3;
    let last = word_at(b, end.checked_sub(8)?)?;
    let before = word_at(b, end.checked_sub(16)?)?;
    let fraction = eight_digits_value(keep_top(before, n.saturating_sub(8))) * 100_000_000
        + eight_digits_value(keep_top(last, n.min(8)));
    let mantissa = integer * POW10_U64[n] + fraction;
    if mantissa >= 1 << 53 {
        return None;
    }
    // Below 2^53 the mantissa is exact as `i64` (one instruction to `f64`) and as `f64`.
    // The sign goes in as a bit: a branch on it would be mispredicted half the time.
    let magnitude = mantissa.cast_signed() as f64;
    let value = f64::from_bits(magnitude.to_bits() | (u64::from(negative) << 63));
    Some(((value, POW10[k2 + k3]), end))
}

/// The eight bytes at `i` as a little-endian word, if there are eight.
fn word_at(b: &[u8], i: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?))
}

/// A JSON number at `i` as a fraction whose quotient is the `f64` serde_json reads (an exact
/// signed mantissa over an exact power of ten, or the value over 1), and the index after it.
fn number(b: &[u8], start: usize) -> Option<((f64, f64), usize)> {
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
    // Rounding to nearest is symmetric in the sign, so the sign may go on the mantissa.
    let sign = if negative { -1.0 } else { 1.0 };
    let fraction = if digits <= 19 && mantissa < (1 << 53) && exponent.unsigned_abs() <= 22 {
        // Exact mantissa and power of ten: one correctly rounded operation.
        let m = sign * mantissa as f64;
        let p = POW10[exponent.unsigned_abs() as usize];
        if exponent < 0 { (m, p) } else { (m * p, 1.0) }
    } else {
        let text = std::str::from_utf8(&b[start..i]).ok()?;
        // serde_json refuses a number beyond f64's range ("number out of range"); it then
        // parses the line and says so.
        let value = text.parse::<f64>().ok().filter(|x| x.is_finite())?;
        (value, 1.0)
    };
    Some((fraction, i))
}

/// Powers of ten as `u64`, 10^0 to 10^15.
const POW10_U64: [u64; 16] = {
    let mut table = [1u64; 16];
    let mut k = 1;
    while k < 16 {
        table[k] = table[k - 1] * 10;
        k += 1;
    }
    table
};

/// `word` with its bytes below the top `keep` (0 to 8) replaced by ASCII '0'.
fn keep_top(word: u64, keep: usize) -> u64 {
    // TOP[k]: the top k bytes of a word.
    const TOP: [u64; 9] = {
        let mut table = [0u64; 9];
        let mut k = 1;
        while k < 9 {
            table[k] = !0u64 << (8 * (8 - k));
            k += 1;
        }
        table
    };
    (word & TOP[keep]) | (ZEROS & !TOP[keep])
}

/// The decimal digits from `i` appended to `mantissa` (wrapping: callers check the count)
/// and how many there were. Reads eight bytes at a time while eight are there, taking the
/// digits they start with, then byte by byte near the end of the line.
fn digit_run(b: &[u8], i: usize, mut mantissa: u64) -> (u64, usize) {
    let mut n = 0;
    while let Some(chunk) = b.get(i + n..i + n + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let k = leading_digits(word);
        if k == 0 {
            return (mantissa, n);
        }
        mantissa = mantissa
            .wrapping_mul(POW10_U64[k])
            .wrapping_add(first_digits_value(word, k));
        n += k;
        if k < 8 {
            return (mantissa, n);
        }
    }
    while let Some(&c @ b'0'..=b'9') = b.get(i + n) {
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
        n += 1;
    }
    (mantissa, n)
}

const ZEROS: u64 = 0x3030_3030_3030_3030;
const HIGH: u64 = 0xf0f0_f0f0_f0f0_f0f0;

/// How many of the eight bytes of a little-endian word, from the first, are ASCII digits.
fn leading_digits(word: u64) -> usize {
    // A byte is a digit when its high nibble is 3 and adding 6 does not carry past 9. A carry
    // out of a byte comes only from a non-digit, and bytes after the first non-digit do not
    // count, so the lowest non-zero byte of `not_digit` is the first non-digit.
    let not_digit =
        ((word & HIGH) ^ ZEROS) | ((word.wrapping_add(0x0606_0606_0606_0606) & HIGH) ^ ZEROS);
    (not_digit.trailing_zeros() / 8) as usize
}

/// The value of the first `k` (0 to 8) bytes of a word, all ASCII digits: they move to the
/// top of the word behind '0' bytes and the eight are converted together (the shifts go
/// through `u128` so that 64-bit shifts, for `k` 0 and 8, need no branch).
fn first_digits_value(word: u64, k: usize) -> u64 {
    let digits_on_top = (u128::from(word) << (8 * (8 - k))) as u64;
    let zeros_below = (u128::from(ZEROS) >> (8 * k)) as u64;
    eight_digits_value(digits_on_top | zeros_below)
}

/// The value of eight ASCII digits read little-endian from a word (the SWAR method of
/// simdjson and fast_float).
fn eight_digits_value(word: u64) -> u64 {
    let v = word - ZEROS;
    // Pairs, then quads, then the eight: each step multiplies the higher half by 10^k.
    let v = (v * 10) + (v >> 8);
    ((v & 0x0000_00ff_0000_00ff).wrapping_mul(100 + (1_000_000 << 32))
        + ((v >> 16) & 0x0000_00ff_0000_00ff).wrapping_mul(1 + (10_000 << 32)))
        >> 32
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
                    match next() % 5 {
                        0 => format!("{x}"),
                        1 => format!("{x:e}"),
                        2 => format!("{}", y as f32),
                        3 => format!("{y}"),
                        _ => {
                            // Integer and fraction digits around every limit of the
                            // common shape (7 integer, 15 fraction, 19 in all).
                            let int_digits = (next() % 10) as u32;
                            let frac_digits = 1 + (next() % 18) as usize;
                            let int = next() % 10u64.pow(int_digits);
                            let frac = next() % 10u64.pow(frac_digits.min(19) as u32);
                            let sign = if next() % 2 == 0 { "-" } else { "" };
                            format!("{sign}{int}.{frac:0frac_digits$}")
                        }
                    }
                })
                .collect();
            let line = format!(
                "{{\"id\": \"a\", \"vector\": [{}], \"x\": 1}}",
                values.join(", ")
            );
            let (fast, range) = split_vector(line.as_bytes()).unwrap();
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
    fn digit_words_count_and_convert_their_leading_digits() {
        for text in [
            "00000000",
            "12345678",
            "99999999",
            "40000001",
            "09876543",
            "1234567a",
            "/0000000",
            ":0000000",
            "1234 678",
            "-1234567",
            "1.345678",
            "7,\"id\":",
            "0]}\n\n\n\n\n",
        ] {
            let bytes: Vec<u8> = text
                .bytes()
                .chain(std::iter::repeat(b'x'))
                .take(8)
                .collect();
            let w = u64::from_le_bytes(bytes.clone().try_into().unwrap());
            let k = bytes.iter().take_while(|c| c.is_ascii_digit()).count();
            assert_eq!(leading_digits(w), k, "{text}");
            if k > 0 {
                let want: u64 = std::str::from_utf8(&bytes[..k]).unwrap().parse().unwrap();
                assert_eq!(first_digits_value(w, k), want, "{text}");
            }
        }
        // Every byte value in every position, after a run of digits.
        for pos in 0..8 {
            for c in 0..=255u8 {
                let mut bytes = *b"31415926";
                bytes[pos] = c;
                let k = bytes.iter().take_while(|c| c.is_ascii_digit()).count();
                assert_eq!(leading_digits(u64::from_le_bytes(bytes)), k, "{pos} {c}");
            }
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
            "1e-400",
            "-0.0",
            "12345678.87654321",
            "100000000000000000000",
        ];
        let line = format!("{{\"vector\": [{}]}}", numbers.join(","));
        let (fast, _) = split_vector(line.as_bytes()).unwrap();
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
            assert!(split_vector(line.as_bytes()).is_none(), "{line}");
        }
        let (v, r) =
            split_vector(br#" { "id" : 7 , "ok": true, "vector" : [ -0 , 2.5E+1,1e-2 ] }"#)
                .unwrap();
        assert_eq!(v, [-0.0, 25.0, 0.01]);
        assert!(r.start > 0);
    }
}
