//! A set of fixed-width numbers (the archived payments' id fingerprints) coded densely
//! into bytes: sorted, each stored as its gap from the one before, Golomb-Rice coded.
//!
//! `n` numbers spread uniformly over `[0, 2^width)` have gaps close to geometrically
//! distributed with mean `2^width / n`; a Rice code with the right parameter `k` spends
//! about `width - log2(n) + 1.5` bits on each (a gap's high part `gap >> k` in unary, its
//! `k` low bits as they are), against `width` bits for the numbers themselves.
//!
//! Layout: one byte `width` (1..=32), one byte `k` (0..=width), the count as an unsigned
//! LEB128 number, then each gap's code, most significant bit first, the last byte padded
//! with zero bits. A gap is the number itself for the first, and the difference from the
//! one before less one for the others (the numbers are distinct). [`decode`] accepts only
//! what [`encode`] gives, and refuses anything else with an error, never a panic: a stored
//! snapshot is input from outside.

use crate::CoreError;

/// Why bytes are not a coded set (or numbers cannot be coded).
fn corrupt(problem: &'static str) -> CoreError {
    CoreError::Corrupt {
        what: "fingerprint set",
        problem,
    }
}

/// The set of `values` (any order, repeats allowed: a set keeps one of each), each below
/// `2^width`, coded. Errors when `width` is not 1..=32 or a value does not fit in it.
pub fn encode(values: &[u32], width: u32) -> Result<Vec<u8>, CoreError> {
    if !(1..=32).contains(&width) {
        return Err(corrupt("the width is not 1 to 32 bits"));
    }
    let limit = 1u64 << width;
    if values.iter().any(|&v| u64::from(v) >= limit) {
        return Err(corrupt("a value does not fit in the width"));
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let gaps: Vec<u64> = sorted
        .iter()
        .scan(None, |previous: &mut Option<u32>, &v| {
            let gap = match *previous {
                None => u64::from(v),
                Some(p) => u64::from(v - p - 1),
            };
            *previous = Some(v);
            Some(gap)
        })
        .collect();
    // The parameter that gives the fewest bits (every one is tried: a few dozen sums).
    let bits_with = |k: u32| -> u64 { gaps.iter().map(|g| (g >> k) + 1 + u64::from(k)).sum() };
    let k = (0..=width).min_by_key(|&k| bits_with(k)).unwrap_or(0);
    let mut out = vec![width as u8, k as u8];
    let mut count = sorted.len() as u64;
    loop {
        let low = (count & 0x7f) as u8;
        count >>= 7;
        if count == 0 {
            out.push(low);
            break;
        }
        out.push(low | 0x80);
    }
    let mut bits = BitWriter { out, used: 0 };
    for gap in gaps {
        for _ in 0..gap >> k {
            bits.push(true);
        }
        bits.push(false);
        for at in (0..k).rev() {
            bits.push((gap >> at) & 1 == 1);
        }
    }
    Ok(bits.out)
}

/// The width and the numbers (ascending, distinct) of a coded set.
pub fn decode(bytes: &[u8]) -> Result<(u32, Vec<u32>), CoreError> {
    let [width, k, rest @ ..] = bytes else {
        return Err(corrupt("too short for its header"));
    };
    let (width, k) = (u32::from(*width), u32::from(*k));
    if !(1..=32).contains(&width) {
        return Err(corrupt("the width is not 1 to 32 bits"));
    }
    if k > width {
        return Err(corrupt("the Rice parameter exceeds the width"));
    }
    let mut count: u64 = 0;
    let mut header = 0;
    loop {
        let Some(&byte) = rest.get(header) else {
            return Err(corrupt("the count is cut short"));
        };
        if header == 5 {
            return Err(corrupt("the count is too long"));
        }
        count |= u64::from(byte & 0x7f) << (7 * header);
        header += 1;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let mut bits = BitReader {
        bytes: &rest[header..],
        at: 0,
    };
    // Each code takes at least k + 1 bits: a count beyond that is a lie, refused before
    // anything is allocated for it.
    if count > bits.remaining() / (u64::from(k) + 1) {
        return Err(corrupt("more numbers than bits to hold them"));
    }
    let limit = 1u64 << width;
    let mut values = Vec::with_capacity(count as usize);
    let mut next: u64 = 0;
    for _ in 0..count {
        let mut high: u64 = 0;
        while bits.pop()? {
            high += 1;
        }
        let mut low: u64 = 0;
        for _ in 0..k {
            low = (low << 1) | u64::from(bits.pop()?);
        }
        // `high` is at most the bits read (far below 2^32), `k` at most 32: no overflow.
        let value = next + ((high << k) | low);
        if value >= limit {
            return Err(corrupt("a number does not fit in the width"));
        }
        values.push(value as u32);
        next = value + 1;
    }
    if bits.remaining() >= 8 {
        return Err(corrupt("bytes after the last number"));
    }
    while bits.remaining() > 0 {
        if bits.pop()? {
            return Err(corrupt("padding bits that are not zero"));
        }
    }
    Ok((width, values))
}

/// Bits appended to bytes, most significant first.
struct BitWriter {
    out: Vec<u8>,
    /// Bits used in the last byte (0: a new byte is started by the next bit).
    used: u32,
}

impl BitWriter {
    fn push(&mut self, bit: bool) {
        if self.used == 0 {
            self.out.push(0);
        }
        if bit {
            if let Some(last) = self.out.last_mut() {
                *last |= 0x80 >> self.used;
            }
        }
        self.used = (self.used + 1) % 8;
    }
}

/// Bits read from bytes, most significant first.
struct BitReader<'a> {
    bytes: &'a [u8],
    /// Bits read so far.
    at: u64,
}

impl BitReader<'_> {
    fn remaining(&self) -> u64 {
        self.bytes.len() as u64 * 8 - self.at
    }

    fn pop(&mut self) -> Result<bool, CoreError> {
        let byte = self
            .bytes
            .get((self.at / 8) as usize)
            .ok_or(corrupt("the codes are cut short"))?;
        let bit = byte & (0x80 >> (self.at % 8)) != 0;
        self.at += 1;
        Ok(bit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(values: &[u32], width: u32) -> Vec<u32> {
        let bytes = encode(values, width).unwrap();
        let (w, decoded) = decode(&bytes).unwrap();
        assert_eq!(w, width);
        decoded
    }

    #[test]
    fn the_empty_set_round_trips_in_three_bytes() {
        let bytes = encode(&[], 24).unwrap();
        assert_eq!(bytes.len(), 3, "{bytes:?}");
        assert_eq!(decode(&bytes).unwrap(), (24, Vec::new()));
    }

    #[test]
    fn repeats_and_order_make_no_difference() {
        let coded = encode(&[7, 3, 7, 1, 3, 3], 8).unwrap();
        assert_eq!(coded, encode(&[1, 3, 7], 8).unwrap());
        assert_eq!(decode(&coded).unwrap(), (8, vec![1, 3, 7]));
    }

    #[test]
    fn the_extreme_values_of_each_width_round_trip() {
        for width in 1..=32u32 {
            let max = ((1u64 << width) - 1) as u32;
            assert_eq!(round_trip(&[max], width), vec![max], "width {width}");
            assert_eq!(round_trip(&[0, max], width), vec![0, max], "width {width}");
            assert_eq!(round_trip(&[0], width), vec![0], "width {width}");
        }
        assert_eq!(
            round_trip(&[u32::MAX, u32::MAX - 1, 0, 1], 32),
            vec![0, 1, u32::MAX - 1, u32::MAX]
        );
        // Every value of a small width: gaps of zero.
        let all: Vec<u32> = (0..256).collect();
        assert_eq!(round_trip(&all, 8), all);
    }

    #[test]
    fn values_that_do_not_fit_and_bad_widths_are_refused() {
        assert!(encode(&[256], 8).is_err());
        assert!(encode(&[1], 0).is_err());
        assert!(encode(&[1], 33).is_err());
    }

    #[test]
    fn uniform_fingerprints_take_about_width_less_log2_count_plus_two_bits_each() {
        // SHA-256 spreads ids uniformly: what the archived payments' fingerprints are.
        use sha2::{Digest, Sha256};
        let n = 5000u32;
        let values: Vec<u32> = (0..n)
            .map(|k| {
                let d = Sha256::digest(format!("P{k}").as_bytes());
                u32::from_be_bytes([d[0], d[1], d[2], d[3]]) >> 8
            })
            .collect();
        let bytes = encode(&values, 24).unwrap();
        let bits_each = bytes.len() as f64 * 8.0 / f64::from(n);
        let bound = 24.0 - f64::from(n).log2() + 2.0;
        assert!(bits_each < bound, "{bits_each} bits each, bound {bound}");
        let mut sorted = values.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(decode(&bytes).unwrap(), (24, sorted));
    }

    #[test]
    fn corrupt_headers_and_codes_are_errors() {
        let good = encode(&[5, 900, 70_000], 24).unwrap();
        assert!(decode(&good).is_ok());
        // Too short, a bad width, a parameter beyond the width, a count that never ends.
        for bad in [
            &[][..],
            &[24][..],
            &[24, 3][..],
            &[0, 0, 0][..],
            &[33, 0, 0][..],
            &[8, 9, 0][..],
            &[24, 3, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01][..],
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        // Cut short, or with a byte too many, or with non-zero padding.
        assert!(decode(&good[..good.len() - 1]).is_err());
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        // A huge count with few bits behind it: refused before allocating for it.
        assert!(decode(&[24, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0]).is_err());
        // All ones: a unary run that never ends.
        assert!(decode(&[8, 0, 1, 0xff, 0xff]).is_err());
        // A value past the width (width 1, k 0: the gap 2 in unary is 110).
        assert!(decode(&[1, 0, 1, 0b1100_0000]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any set of any width round-trips, and its code is canonical.
        #[test]
        fn any_set_round_trips(width in 1u32..=32, raw in proptest::collection::vec(any::<u32>(), 0..300)) {
            let values: Vec<u32> = raw
                .iter()
                .map(|v| if width == 32 { *v } else { v & ((1u32 << width) - 1) })
                .collect();
            let mut expected = values.clone();
            expected.sort_unstable();
            expected.dedup();
            let bytes = encode(&values, width).unwrap();
            prop_assert_eq!(decode(&bytes).unwrap(), (width, expected.clone()));
            prop_assert_eq!(encode(&expected, width).unwrap(), bytes);
        }

        /// Arbitrary bytes decode to an error or to a set that encodes back to them: never
        /// a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok((width, values)) = decode(&bytes) {
                let again = encode(&values, width).unwrap();
                // The same set; the bytes may differ only in the Rice parameter chosen.
                prop_assert_eq!(decode(&again).unwrap(), (width, values));
            }
        }

        /// A valid code with one byte changed: an error or some set, never a panic.
        #[test]
        fn corrupted_codes_never_panic(
            raw in proptest::collection::vec(any::<u32>(), 0..50),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let values: Vec<u32> = raw.iter().map(|v| v >> 8).collect();
            let mut bytes = encode(&values, 24).unwrap();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = decode(&bytes);
        }
    }
}
