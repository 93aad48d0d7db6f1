//! The snapshot stream: a header, the `State` family's rows in ascending key order, a trailer.
//! Written and read one row at a time, so building, sending, receiving and installing a
//! snapshot never holds more than one row (and a chunk) in memory, whatever the state's size.
//!
//! ```text
//! [FORMAT_VERSION][b"TSNP"][u32 header_len][header: codec-encoded SnapshotHeader]
//! repeated:  [1u8][u32 key_len][u32 value_len][key][value]
//! end:       [0u8][u64 rows][BLAKE3 of every byte before these 32]
//! ```
//! Integers are little-endian. The first byte is the format version so that a peer refuses a
//! snapshot of another release on its first chunk (`network.rs`).

use crate::codec::{decode, encode, FORMAT_VERSION};
use crate::kv::Row;
use crate::types::{LogId, StoredMembership};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

const MAGIC: &[u8; 4] = b"TSNP";
const TAG_ROW: u8 = 1;
const TAG_END: u8 = 0;
/// Bounds on what a reader allocates for one field, so a damaged length cannot ask for gigabytes.
pub const HEADER_BYTES_MAX: u32 = 1024 * 1024;
pub const ROW_KEY_BYTES_MAX: u32 = 64 * 1024;
pub const ROW_VALUE_BYTES_MAX: u32 = 16 * 1024 * 1024;

/// What a snapshot is of: the applied log id and membership, read from the same frozen view as
/// its rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("snapshot stream I/O failed: {0}")]
    Io(#[from] io::Error),
    #[error("snapshot stream is malformed: {0}")]
    Malformed(String),
    #[error("snapshot checksum mismatch: the stream was damaged")]
    Checksum,
}

fn malformed(reason: impl Into<String>) -> StreamError {
    StreamError::Malformed(reason.into())
}

/// Writes a snapshot stream into `out`, hashing every byte.
pub struct SnapshotWriter<W: Write> {
    out: W,
    hasher: blake3::Hasher,
    rows: u64,
    last_key: Option<Vec<u8>>,
}

impl<W: Write> SnapshotWriter<W> {
    pub fn new(out: W, header: &SnapshotHeader) -> io::Result<Self> {
        let encoded = encode(header);
        let mut writer = SnapshotWriter {
            out,
            hasher: blake3::Hasher::new(),
            rows: 0,
            last_key: None,
        };
        let header_len = u32::try_from(encoded.len())
            .ok()
            .filter(|len| *len <= HEADER_BYTES_MAX)
            .expect("a snapshot header (log id and membership) is far below 1 MiB");
        writer.put(&[FORMAT_VERSION])?;
        writer.put(MAGIC)?;
        writer.put(&header_len.to_le_bytes())?;
        writer.put(&encoded)?;
        Ok(writer)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.out.write_all(bytes)
    }

    /// Appends one row. Rows come from an ordered store scan: a key out of order is a bug.
    pub fn row(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        assert!(
            self.last_key.as_deref().is_none_or(|last| last < key),
            "snapshot rows must be written in strictly ascending key order"
        );
        let key_len = u32::try_from(key.len())
            .ok()
            .filter(|len| *len <= ROW_KEY_BYTES_MAX);
        let value_len = u32::try_from(value.len())
            .ok()
            .filter(|len| *len <= ROW_VALUE_BYTES_MAX);
        let (Some(key_len), Some(value_len)) = (key_len, value_len) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a state row of {} key bytes and {} value bytes exceeds the snapshot row bounds",
                    key.len(),
                    value.len()
                ),
            ));
        };
        self.put(&[TAG_ROW])?;
        self.put(&key_len.to_le_bytes())?;
        self.put(&value_len.to_le_bytes())?;
        self.put(key)?;
        self.put(value)?;
        self.rows += 1;
        self.last_key = Some(key.to_vec());
        Ok(())
    }

    /// Writes the trailer and hands back the sink, the row count and the checksum.
    pub fn finish(mut self) -> io::Result<(W, u64, [u8; 32])> {
        self.put(&[TAG_END])?;
        let rows = self.rows;
        self.put(&rows.to_le_bytes())?;
        let checksum = *self.hasher.finalize().as_bytes();
        self.out.write_all(&checksum)?;
        self.out.flush()?;
        Ok((self.out, rows, checksum))
    }
}

/// Reads a snapshot stream row by row, checking order, bounds and, at the end, the checksum.
/// A row is only trustworthy once [`SnapshotReader::next_row`] has returned `Ok(None)`: callers
/// stage rows and commit nothing before that.
pub struct SnapshotReader<R: Read> {
    input: R,
    hasher: blake3::Hasher,
    rows: u64,
    last_key: Option<Vec<u8>>,
    done: bool,
}

impl<R: Read> SnapshotReader<R> {
    pub fn open(input: R) -> Result<(Self, SnapshotHeader), StreamError> {
        let mut reader = SnapshotReader {
            input,
            hasher: blake3::Hasher::new(),
            rows: 0,
            last_key: None,
            done: false,
        };
        let mut version_and_magic = [0u8; 5];
        reader.take(&mut version_and_magic)?;
        if version_and_magic[0] != FORMAT_VERSION {
            return Err(malformed(format!(
                "snapshot is in format version {}, this build reads format version {FORMAT_VERSION}",
                version_and_magic[0]
            )));
        }
        if &version_and_magic[1..] != MAGIC {
            return Err(malformed("not a Tally snapshot (bad magic)"));
        }
        let header_len = reader.u32()?;
        if header_len > HEADER_BYTES_MAX {
            return Err(malformed(format!("header of {header_len} bytes")));
        }
        let header_bytes = reader.bytes(header_len)?;
        let header =
            decode(&header_bytes).map_err(|e| malformed(format!("header does not decode: {e}")))?;
        Ok((reader, header))
    }

    fn take(&mut self, buf: &mut [u8]) -> Result<(), StreamError> {
        self.input.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => malformed("the stream ends early (truncated)"),
            _ => StreamError::Io(e),
        })?;
        self.hasher.update(buf);
        Ok(())
    }

    fn u32(&mut self) -> Result<u32, StreamError> {
        let mut buf = [0u8; 4];
        self.take(&mut buf)?;
        Ok(u32::from_le_bytes(buf))
    }

    fn bytes(&mut self, len: u32) -> Result<Vec<u8>, StreamError> {
        let mut buf = vec![0u8; len as usize];
        self.take(&mut buf)?;
        Ok(buf)
    }

    /// The next row, or `None` once the trailer has been read and the checksum and row count
    /// proved right.
    pub fn next_row(&mut self) -> Result<Option<Row>, StreamError> {
        if self.done {
            return Ok(None);
        }
        let mut tag = [0u8; 1];
        self.take(&mut tag)?;
        match tag[0] {
            TAG_ROW => {
                let key_len = self.u32()?;
                let value_len = self.u32()?;
                if key_len > ROW_KEY_BYTES_MAX || value_len > ROW_VALUE_BYTES_MAX {
                    return Err(malformed(format!(
                        "row {} claims {key_len} key bytes and {value_len} value bytes",
                        self.rows
                    )));
                }
                let key = self.bytes(key_len)?;
                let value = self.bytes(value_len)?;
                if self.last_key.as_ref().is_some_and(|last| *last >= key) {
                    return Err(malformed(format!("row {} is out of key order", self.rows)));
                }
                self.rows += 1;
                self.last_key = Some(key.clone());
                Ok(Some((key, value)))
            }
            TAG_END => {
                let mut count = [0u8; 8];
                self.take(&mut count)?;
                let expected = *self.hasher.finalize().as_bytes();
                let mut checksum = [0u8; 32];
                self.input
                    .read_exact(&mut checksum)
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::UnexpectedEof => {
                            malformed("the stream ends early (truncated)")
                        }
                        _ => StreamError::Io(e),
                    })?;
                if checksum != expected {
                    return Err(StreamError::Checksum);
                }
                if u64::from_le_bytes(count) != self.rows {
                    return Err(malformed("the trailer's row count disagrees with the rows"));
                }
                let mut extra = [0u8; 1];
                if self.input.read(&mut extra)? != 0 {
                    return Err(malformed("bytes after the trailer"));
                }
                self.done = true;
                Ok(None)
            }
            other => Err(malformed(format!("unknown frame tag {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SnapshotHeader {
        SnapshotHeader {
            last_applied: None,
            membership: StoredMembership::default(),
        }
    }

    fn stream(rows: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut writer = SnapshotWriter::new(Vec::new(), &header()).unwrap();
        for (key, value) in rows {
            writer.row(key, value).unwrap();
        }
        writer.finish().unwrap().0
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Row>, StreamError> {
        let (mut reader, read_header) = SnapshotReader::open(bytes)?;
        assert_eq!(read_header, header());
        let mut rows = Vec::new();
        while let Some(row) = reader.next_row()? {
            rows.push(row);
        }
        Ok(rows)
    }

    #[test]
    fn rows_round_trip_in_order() {
        let bytes = stream(&[(b"a", b"1"), (b"b", b""), (b"c", b"333")]);
        let rows = read_all(&bytes).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2], (b"c".to_vec(), b"333".to_vec()));
        assert!(read_all(&stream(&[])).unwrap().is_empty());
    }

    #[test]
    fn any_flipped_byte_or_truncation_is_refused() {
        let bytes = stream(&[(b"a", b"one"), (b"b", b"two")]);
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x01;
            assert!(read_all(&damaged).is_err(), "flip at {at} went unnoticed");
        }
        for len in 0..bytes.len() {
            assert!(read_all(&bytes[..len]).is_err(), "truncation to {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(read_all(&longer).is_err(), "trailing bytes");
    }

    #[test]
    fn a_length_beyond_the_bounds_is_refused_before_allocating() {
        let mut bytes = stream(&[(b"a", b"one")]);
        let header_len = u32::from_le_bytes(bytes[5..9].try_into().unwrap()) as usize;
        let row = 9 + header_len;
        bytes[row + 5..row + 9].copy_from_slice(&u32::MAX.to_le_bytes());
        let error = read_all(&bytes).unwrap_err();
        assert!(error.to_string().contains("value bytes"), "{error}");
    }

    #[test]
    fn another_format_version_is_named() {
        let mut bytes = stream(&[]);
        bytes[0] = FORMAT_VERSION + 1;
        let error = read_all(&bytes).unwrap_err().to_string();
        assert!(
            error.contains(&format!("format version {}", FORMAT_VERSION + 1)),
            "{error}"
        );
    }
}
