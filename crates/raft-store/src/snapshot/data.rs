//! The bytes of one snapshot as openraft streams them: a file in the node's snapshot directory
//! (RocksDB nodes), or memory (the in-memory store of the simulation, whose whole state is in
//! memory anyway). openraft reads and writes it in `snapshot_max_chunk_size` pieces, so a file
//! snapshot is sent and received without ever being loaded whole.

use std::io::{Cursor, SeekFrom};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

#[derive(Debug)]
pub enum SnapshotData {
    Memory(Cursor<Vec<u8>>),
    File {
        file: tokio::fs::File,
        /// Where the file is, so an install can rename the received file into place.
        path: PathBuf,
    },
}

impl SnapshotData {
    pub fn memory(bytes: Vec<u8>) -> Self {
        SnapshotData::Memory(Cursor::new(bytes))
    }
}

impl AsyncRead for SnapshotData {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SnapshotData::Memory(cursor) => Pin::new(cursor).poll_read(cx, buf),
            SnapshotData::File { file, .. } => Pin::new(file).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for SnapshotData {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            SnapshotData::Memory(cursor) => Pin::new(cursor).poll_write(cx, buf),
            SnapshotData::File { file, .. } => Pin::new(file).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SnapshotData::Memory(cursor) => Pin::new(cursor).poll_flush(cx),
            SnapshotData::File { file, .. } => Pin::new(file).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SnapshotData::Memory(cursor) => Pin::new(cursor).poll_shutdown(cx),
            SnapshotData::File { file, .. } => Pin::new(file).poll_shutdown(cx),
        }
    }
}

impl AsyncSeek for SnapshotData {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> std::io::Result<()> {
        match self.get_mut() {
            SnapshotData::Memory(cursor) => Pin::new(cursor).start_seek(position),
            SnapshotData::File { file, .. } => Pin::new(file).start_seek(position),
        }
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        match self.get_mut() {
            SnapshotData::Memory(cursor) => Pin::new(cursor).poll_complete(cx),
            SnapshotData::File { file, .. } => Pin::new(file).poll_complete(cx),
        }
    }
}
