//! Large files from the page cache to the socket with `sendfile(2)`, under
//! hyper.
//!
//! hyper writes what a body yields, as bytes in memory: a streamed file is
//! read into a buffer (one copy) and written into the socket (another).
//! nginx sends large files with `sendfile`, which hands the page cache's
//! pages to the socket without either copy, and on a 10 MiB file that was the
//! difference between us and it (0.72× its requests/s, `scripts/bench`).
//!
//! hyper has no way to hand a file to its connection, so this module gives
//! it one without its knowing:
//!
//! 1. The handler maps the file read-only ([`Mappings::map`]) and gives hyper
//!    the mapping as the body: plain `Bytes`, which are the file's bytes.
//!    The mapping is registered with the connection's [`Mappings`].
//! 2. hyper queues body bytes without copying them when its connection's
//!    stream takes vectored writes (its `Queue` write strategy, hyper
//!    1.x `proto/h1/io.rs`), so what it asks the stream to write is a slice
//!    of the mapping itself.
//! 3. The connection's stream ([`Stream`]) recognizes a write that lies in a
//!    registered mapping and sends that range of the file with `sendfile`
//!    instead. Nothing reads the mapping: no page is faulted in, no byte is
//!    copied in user space.
//!
//! Correctness never depends on step 3: if anything does read the mapping
//! (another write strategy, a test with another stream), it reads the file's
//! own bytes. A file cut short while it is being sent ends the response the
//! way it ends nginx's: `sendfile` sends 0 bytes, hyper reports a zero-length
//! write, and the connection closes (the client sees a short body and must
//! not use it).

// Mapping a file is the one unsafe thing this crate does; see `map`.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use memmap2::Mmap;
use rustix::net::SendFlags;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The file mappings one connection's responses are sending, by address.
#[derive(Debug, Default)]
pub(crate) struct Mappings {
    live: Mutex<Vec<Registered>>,
}

/// One live mapping: where it is in memory, and the file behind it.
#[derive(Debug)]
struct Registered {
    start: usize,
    len: usize,
    file: Arc<File>,
}

/// A write's bytes found in a mapping: that file, from `offset`, `len`
/// bytes (no further than the mapping reaches).
struct Hit {
    file: Arc<File>,
    offset: u64,
    len: usize,
}

/// The owner of a mapping that a body's `Bytes` point into; dropping the
/// last of those `Bytes` unregisters the mapping, then unmaps it.
struct Owner {
    map: Mmap,
    mappings: Arc<Mappings>,
}

impl AsRef<[u8]> for Owner {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Before the unmap (the field drops after this): no write may find
        // an address range that is about to be reused by something else.
        let start = self.map.as_ptr() as usize;
        self.mappings.lock().retain(|r| r.start != start);
    }
}

impl Mappings {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Registered>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Maps the first `len` bytes of `file` read-only and registers them,
    /// so that a [`Stream`] of this connection sends them with `sendfile`.
    ///
    /// `len` is the length `fstat` gave when the response's headers were
    /// made: the body is exactly that long, whatever the file does later.
    pub(crate) fn map(self: &Arc<Self>, file: File, len: u64) -> io::Result<Bytes> {
        let len = usize::try_from(len).map_err(|_| io::Error::other("file too large to map"))?;
        // SAFETY: the mapping is read-only and private, and nothing in this
        // process reads it on the path it was made for (see the module
        // note). If a write does take its bytes from it (`writev` instead
        // of `sendfile`), the kernel reads them: a page beyond a file cut
        // short meanwhile then fails that write with EFAULT, not this
        // process with SIGBUS. Rust code reading the slice would risk
        // SIGBUS; no code here does, and hyper only passes it on.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(&file)? };
        let file = Arc::new(file);
        self.lock().push(Registered { start: map.as_ptr() as usize, len, file });
        Ok(Bytes::from_owner(Owner { map, mappings: self.clone() }))
    }

    /// Where in which file `buf` starts, if it lies in a mapping.
    fn find(&self, buf: &[u8]) -> Option<Hit> {
        let at = buf.as_ptr() as usize;
        let live = self.lock();
        let mapping = live.iter().find(|r| at >= r.start && at < r.start + r.len)?;
        let offset = at - mapping.start;
        Some(Hit {
            file: mapping.file.clone(),
            offset: offset as u64,
            len: buf.len().min(mapping.len - offset),
        })
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// A connection's TCP stream that sends registered mappings with
/// `sendfile`; every other read and write goes to the stream unchanged.
#[derive(Debug)]
pub(crate) struct Stream {
    tcp: TcpStream,
    mappings: Arc<Mappings>,
}

impl Stream {
    pub(crate) fn new(tcp: TcpStream, mappings: Arc<Mappings>) -> Stream {
        Stream { tcp, mappings }
    }

    /// The first of `bufs` that lies in a mapping, by index, with what
    /// [`Mappings::find`] says of it.
    fn first_mapped(&self, bufs: &[IoSlice<'_>]) -> Option<(usize, Hit)> {
        if self.mappings.is_empty() {
            return None;
        }
        bufs.iter().enumerate().find_map(|(i, buf)| self.mappings.find(buf).map(|hit| (i, hit)))
    }

    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        file: &File,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let mut at = offset;
            match self.tcp.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(&self.tcp, file, Some(&mut at), len).map_err(io::Error::from)
            }) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                result => return Poll::Ready(result),
            }
        }
    }
}

impl Stream {
    fn poll_send_more(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            match self.tcp.try_io(Interest::WRITABLE, || {
                rustix::net::sendmsg(
                    &self.tcp,
                    bufs,
                    &mut Default::default(),
                    SendFlags::MORE | SendFlags::NOSIGNAL,
                )
                .map_err(io::Error::from)
            }) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                result => return Poll::Ready(result),
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.first_mapped(bufs) {
            None => Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs),
            // The bytes before the mapping first (the response head), marked
            // as followed by more, so that they share a segment with the
            // file's first bytes; hyper comes back with the rest.
            Some((i, _)) if i > 0 => this.poll_send_more(cx, &bufs[..i]),
            Some((_, hit)) => this.poll_sendfile(cx, &hit.file, hit.offset, hit.len),
        }
    }

    fn is_write_vectored(&self) -> bool {
        // What makes hyper queue body bytes instead of copying them.
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A connected pair on loopback: (our stream, the client's end).
    async fn pair(mappings: &Arc<Mappings>) -> (Stream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Stream::new(server, mappings.clone()), client)
    }

    fn file_with(content: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(content).unwrap();
        let file = File::open(tmp.path()).unwrap();
        (tmp, file)
    }

    #[tokio::test]
    async fn a_mapped_body_arrives_after_the_head_and_its_registration_ends_with_it() {
        let mappings = Arc::new(Mappings::default());
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let (_tmp, file) = file_with(&content);
        let body = mappings.map(file, content.len() as u64).unwrap();
        let (mut stream, mut client) = pair(&mappings).await;
        let head = b"HTTP/1.1 200 OK\r\n\r\n";
        // A head and a mapped body in one vectored write: the head goes
        // alone first, as the caller (hyper) expects of a partial write.
        let n = stream.write_vectored(&[IoSlice::new(head), IoSlice::new(&body)]).await.unwrap();
        assert_eq!(n, head.len());
        stream.write_all(&body[..]).await.unwrap();
        drop(body);
        assert!(mappings.is_empty(), "the registration outlived the body");
        drop(stream);
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        assert_eq!(&received[..head.len()], head);
        assert!(received[head.len()..] == content[..], "the body differs from the file");
    }

    /// Proves the write went through `sendfile`: a file emptied after it
    /// was mapped gives `sendfile` nothing to send (a zero-length write),
    /// where a write taking its bytes from the mapping would fail with
    /// EFAULT.
    #[tokio::test]
    async fn a_mapped_range_is_sent_from_the_file_not_from_memory() {
        let mappings = Arc::new(Mappings::default());
        let (tmp, file) = file_with(&[7u8; 100_000]);
        let body = mappings.map(file, 100_000).unwrap();
        std::fs::OpenOptions::new().write(true).open(tmp.path()).unwrap().set_len(0).unwrap();
        let (mut stream, _client) = pair(&mappings).await;
        let written = stream.write(&body[..]).await;
        assert_eq!(written.unwrap(), 0, "the bytes did not come from sendfile");
    }

    #[tokio::test]
    async fn unmapped_bytes_are_written_as_they_are() {
        let mappings = Arc::new(Mappings::default());
        let (mut stream, mut client) = pair(&mappings).await;
        stream.write_all(b"plain bytes").await.unwrap();
        drop(stream);
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        assert_eq!(received, b"plain bytes");
    }
}
