//! How a target's input is cut into fields: each field is a little-endian `u16` length and that
//! many bytes; what follows the last field is the rest (usually a body). Simple enough that the
//! seed corpus is written by [`frame`] and the fuzzer learns the lengths from comparisons.

/// Cuts `N` fields off the front of `data`; `None` when `data` is too short for them.
pub fn fields<const N: usize>(mut data: &[u8]) -> Option<([&[u8]; N], &[u8])> {
    let mut out = [&[][..]; N];
    for slot in out.iter_mut() {
        let (field, rest) = field(data)?;
        *slot = field;
        data = rest;
    }
    Some((out, data))
}

/// Every field in `data`, in order; a trailing partial field is dropped.
pub fn all_fields(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Some((field, rest)) = field(data) {
        out.push(field);
        data = rest;
    }
    out
}

fn field(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = data.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_le_bytes(*len));
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// The input [`fields`] cuts into `fields` and `rest`.
pub fn frame(fields: &[&[u8]], rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for field in fields {
        let len = u16::try_from(field.len()).expect("a seed field fits in 64 KiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(field);
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framed_fields_cut_back_into_themselves() {
        let data = frame(&[b"ab", b"", b"cde"], b"rest");
        let (cut, rest) = fields::<3>(&data).unwrap();
        assert_eq!(cut, [&b"ab"[..], b"", b"cde"]);
        assert_eq!(rest, b"rest");
        assert!(fields::<4>(&frame(&[b"x"], b"")).is_none());
        assert_eq!(
            all_fields(&frame(&[b"k", b"v"], b"\x09")),
            vec![&b"k"[..], b"v"]
        );
    }
}
