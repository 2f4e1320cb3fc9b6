//! HTTP/1.x over a byte stream, as the Engine API speaks it: ONE request writer
//! ([`write_head`]), ONE response reader ([`Reader`]: the head parsed by `httparse`, then a
//! body framed by `Content-Length`, `Transfer-Encoding: chunked` or the end of the
//! connection), and ONE exchange ([`exchange`]) that plain requests, streamed downloads and
//! streamed uploads all go through. Timeouts and the wording of an IO error live in [`Conn`].
//! Knows nothing of the engine's endpoints or JSON.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// The most a body read into memory may hold; more is treated as malformed.
pub(crate) const MAX_BODY: usize = 64 << 20;
/// The most the status line and headers may hold.
const MAX_HEAD: usize = 1 << 20;
/// The most headers (or trailers) an answer may have.
const MAX_HEADERS: usize = 100;
/// The most of a non-2xx answer's body read when the body was to be streamed.
const MAX_ERROR_BODY: usize = 1 << 20;
/// How much is read from the socket at a time.
const READ_SIZE: usize = 64 << 10;

/// Why an exchange failed, before the engine client names the socket.
#[derive(Debug)]
pub(crate) enum HttpError {
    /// Reading or writing the connection failed (a timeout: kind `TimedOut`, worded by
    /// [`Conn`]).
    Io(io::Error),
    /// The answer is not HTTP as it should be: what is wrong with it.
    Malformed(String),
    /// The local end of a stream failed: writing a downloaded body, or reading an uploaded one.
    Local {
        /// What was being done.
        what: &'static str,
        /// What the write or read said.
        source: io::Error,
    },
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        HttpError::Io(e)
    }
}

fn malformed(reason: impl Into<String>) -> HttpError {
    HttpError::Malformed(reason.into())
}

/// An HTTP response, its body already de-chunked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers in order, names as sent.
    pub(crate) headers: Vec<(String, String)>,
    /// The body (empty when it was streamed elsewhere).
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name`, compared case-insensitively.
    #[cfg(test)]
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// A 2xx status.
    pub(crate) fn success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let found = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
    found.map(|(_, v)| v.as_str())
}

/// A request path must start with `/` and hold no whitespace or control characters (it goes
/// into the request line verbatim).
pub(crate) fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("the path does not start with /".into());
    }
    match path.chars().find(|c| c.is_whitespace() || c.is_control()) {
        Some(c) => Err(format!(
            "the path holds {c:?}; names in a path must be percent-encoded"
        )),
        None => Ok(()),
    }
}

/// The request line and headers: HTTP/1.0 (so the engine answers without chunks where it
/// can and closes the connection after the answer). `body` is the content type and length of
/// what follows; a request without one says `Content-Length: 0` unless it is a GET.
pub(crate) fn write_head(method: &str, path: &str, body: Option<(&str, u64)>) -> Vec<u8> {
    let mut head =
        format!("{method} {path} HTTP/1.0\r\nHost: docker\r\nUser-Agent: docker-userns\r\n");
    match body {
        Some((t, len)) => head.push_str(&format!(
            "Content-Type: {t}\r\nContent-Length: {len}\r\n\r\n"
        )),
        None if method == "GET" => head.push_str("\r\n"),
        None => head.push_str("Content-Length: 0\r\n\r\n"),
    }
    head.into_bytes()
}

/// How long the connection may take: the whole exchange from connect to the last byte
/// (plain requests), or each read and write (streams of any length).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    /// The whole exchange; `deadline` None when the timeout is too large for the clock.
    Total {
        /// When the exchange must be done.
        deadline: Option<Instant>,
        /// The timeout it came from, for the message.
        timeout: Duration,
    },
    /// Each read and write.
    Idle(Duration),
}

impl Limit {
    /// The whole exchange within `timeout` from now.
    pub(crate) fn total(timeout: Duration) -> Self {
        Limit::Total {
            deadline: Instant::now().checked_add(timeout),
            timeout,
        }
    }

    /// The time the next read or write may take; zero when the deadline has passed.
    fn left(&self) -> Duration {
        match *self {
            Limit::Total { deadline, .. } => deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            }),
            Limit::Idle(d) => d,
        }
    }

    /// The one wording of an IO error of the connection: a timeout (or `WouldBlock`, what a
    /// socket timeout reads as) becomes `TimedOut` saying which limit passed.
    pub(crate) fn io_error(&self, e: io::Error) -> io::Error {
        if !matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            return e;
        }
        let msg = match self {
            Limit::Total { timeout, .. } => format!("no complete answer within {timeout:?}"),
            Limit::Idle(d) => format!("nothing moved for {d:?}"),
        };
        io::Error::new(io::ErrorKind::TimedOut, msg)
    }
}

/// A connection with its [`Limit`] applied before every read and write, and its IO errors
/// worded by [`Limit::io_error`].
pub(crate) struct Conn {
    stream: UnixStream,
    limit: Limit,
}

impl Conn {
    /// `stream` bounded by `limit`.
    pub(crate) fn new(stream: UnixStream, limit: Limit) -> Self {
        Conn { stream, limit }
    }

    fn budget(&self) -> io::Result<Duration> {
        let left = self.limit.left();
        if left.is_zero() {
            return Err(self.limit.io_error(io::ErrorKind::TimedOut.into()));
        }
        Ok(left)
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.budget()?;
        self.stream
            .set_read_timeout(Some(left))
            .and_then(|()| self.stream.read(buf))
            .map_err(|e| self.limit.io_error(e))
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.budget()?;
        self.stream
            .set_write_timeout(Some(left))
            .and_then(|()| self.stream.write(buf))
            .map_err(|e| self.limit.io_error(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// What is sent after the request's head.
pub(crate) enum Outgoing<'a> {
    /// Nothing.
    Empty,
    /// These bytes, of this content type.
    Bytes(&'a str, &'a [u8]),
    /// `len` bytes read from a reader, of this content type; `progress` gets the bytes sent
    /// so far.
    Stream {
        /// The content type.
        content_type: &'a str,
        /// What is sent.
        from: &'a mut dyn Read,
        /// How many bytes (the Content-Length).
        len: u64,
        /// Told the bytes sent so far.
        progress: &'a mut dyn FnMut(u64),
    },
}

/// Where the body of the answer goes.
pub(crate) enum Incoming<'a> {
    /// Into [`Response::body`] (at most [`MAX_BODY`]).
    Memory,
    /// A 2xx answer's body into `to` (`progress` gets the bytes written so far); the body of
    /// any other answer into [`Response::body`] (its first MiB), for the error.
    Stream {
        /// Where the body goes.
        to: &'a mut dyn Write,
        /// Told the bytes written so far.
        progress: &'a mut dyn FnMut(u64),
    },
}

/// Sends `method path` with `out` over `conn`, reads the answer and puts its body where `into`
/// says. Returns the answer and how many body bytes were streamed into `into`. The path must
/// have passed [`check_path`].
pub(crate) fn exchange<S: Read + Write>(
    conn: S,
    method: &str,
    path: &str,
    out: Outgoing<'_>,
    into: Incoming<'_>,
) -> Result<(Response, u64), HttpError> {
    let mut conn = conn;
    match out {
        Outgoing::Empty => conn.write_all(&write_head(method, path, None))?,
        Outgoing::Bytes(t, bytes) => {
            let mut all = write_head(method, path, Some((t, bytes.len() as u64)));
            all.extend_from_slice(bytes);
            conn.write_all(&all)?;
        }
        Outgoing::Stream {
            content_type,
            from,
            len,
            progress,
        } => {
            conn.write_all(&write_head(method, path, Some((content_type, len))))?;
            send_body(&mut conn, from, len, progress)?;
        }
    }
    let mut reader = Reader::new(conn);
    let head = reader.head()?;
    let mut body = reader.body(&head)?;
    let mut r = Response {
        status: head.status,
        headers: head.headers,
        body: Vec::new(),
    };
    match into {
        Incoming::Stream { to, progress } if r.success() => {
            let done = body.copy_to(to, progress)?;
            Ok((r, done))
        }
        Incoming::Stream { .. } => {
            r.body = body.read_to_vec(MAX_ERROR_BODY, true)?;
            Ok((r, 0))
        }
        Incoming::Memory => {
            r.body = body.read_to_vec(MAX_BODY, false)?;
            Ok((r, 0))
        }
    }
}

/// Copies `len` bytes (or until `from` ends) from `from` to `conn`.
fn send_body(
    conn: &mut dyn Write,
    from: &mut dyn Read,
    len: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<(), HttpError> {
    let mut chunk = vec![0u8; 1 << 20];
    let mut sent = 0u64;
    while sent < len {
        let want = usize::try_from(len - sent).map_or(chunk.len(), |l| l.min(chunk.len()));
        let n = match from.read(&mut chunk[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(HttpError::Local {
                    what: "cannot read what is sent to the docker engine",
                    source,
                });
            }
        };
        conn.write_all(&chunk[..n])?;
        sent += n as u64;
        progress(sent);
    }
    Ok(())
}

/// The status line and headers of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// The status code.
    pub(crate) status: u16,
    /// The headers in order, names as sent.
    pub(crate) headers: Vec<(String, String)>,
}

/// How the body of an answer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// After this many more bytes (of the Content-Length).
    Length { left: u64, total: u64 },
    /// Chunked: inside a chunk with this many bytes left, or (None) at a chunk-size line.
    Chunked { left: Option<u64> },
    /// When the connection ends.
    Eof,
    /// Ended.
    Done,
}

/// The response reader: buffers what the connection gives, parses the head, then decodes
/// the body piece by piece. A read of `WouldBlock` is passed up unchanged (the pure
/// [`parse_response`] uses it for "need more").
pub(crate) struct Reader<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
}

impl<R: Read> Reader<R> {
    /// A reader of what `inner` gives.
    pub(crate) fn new(inner: R) -> Self {
        Reader {
            inner,
            buf: Vec::new(),
            pos: 0,
            eof: false,
        }
    }

    /// The bytes buffered and not used yet.
    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more into the buffer; false at the end of the connection.
    fn fill(&mut self) -> Result<bool, HttpError> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let start = self.buf.len();
        self.buf.resize(start + READ_SIZE, 0);
        let got = loop {
            match self.inner.read(&mut self.buf[start..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let n = got.inspect_err(|_| self.buf.truncate(start))?;
        self.buf.truncate(start + n);
        self.eof = n == 0;
        Ok(n > 0)
    }

    /// Reads and parses the status line and headers.
    pub(crate) fn head(&mut self) -> Result<Head, HttpError> {
        loop {
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut slots);
            let status = parsed
                .parse(self.pending())
                .map_err(|e| malformed(format!("bad status line or header: {e}")))?;
            if let httparse::Status::Complete(used) = status {
                let code = parsed.code.ok_or_else(|| malformed("no status code"))?;
                let headers = parsed
                    .headers
                    .iter()
                    .map(|h| {
                        let value = std::str::from_utf8(h.value)
                            .map_err(|_| malformed(format!("header {} is not UTF-8", h.name)))?;
                        Ok((h.name.to_string(), value.trim().to_string()))
                    })
                    .collect::<Result<Vec<_>, HttpError>>()?;
                self.pos += used;
                return Ok(Head {
                    status: code,
                    headers,
                });
            }
            if self.pending().len() > MAX_HEAD {
                return Err(malformed("headers larger than 1 MiB"));
            }
            if !self.fill()? {
                return Err(malformed("connection closed before the end of the headers"));
            }
        }
    }

    /// The body that follows `head`: chunked when the last transfer coding is `chunked`,
    /// else `Content-Length` bytes, else up to the end of the connection (none for 204 and
    /// 304).
    pub(crate) fn body(self, head: &Head) -> Result<Body<R>, HttpError> {
        let last_coding = header(&head.headers, "transfer-encoding")
            .map(|v| v.rsplit(',').next().unwrap_or("").trim());
        let framing = if last_coding.is_some_and(|c| c.eq_ignore_ascii_case("chunked")) {
            Framing::Chunked { left: None }
        } else if matches!(head.status, 204 | 304) {
            Framing::Done
        } else if let Some(len) = header(&head.headers, "content-length") {
            let total: u64 = len
                .parse()
                .map_err(|_| malformed(format!("bad Content-Length {len:?}")))?;
            Framing::Length { left: total, total }
        } else {
            Framing::Eof
        };
        Ok(Body {
            reader: self,
            framing,
        })
    }
}

/// The body of an answer, decoded as it is read.
pub(crate) struct Body<R> {
    reader: Reader<R>,
    framing: Framing,
}

impl<R: Read> Body<R> {
    /// The next piece of the body (decoded), or None at its end.
    pub(crate) fn next_piece(&mut self) -> Result<Option<&[u8]>, HttpError> {
        loop {
            match self.framing {
                Framing::Done => return Ok(None),
                Framing::Eof => {
                    if self.reader.pending().is_empty() && !self.reader.fill()? {
                        self.framing = Framing::Done;
                        return Ok(None);
                    }
                    return Ok(Some(self.take(usize::MAX)));
                }
                Framing::Length { left: 0, .. } => self.framing = Framing::Done,
                Framing::Length { left, total } => {
                    if self.reader.pending().is_empty() && !self.reader.fill()? {
                        return Err(malformed(format!(
                            "connection closed inside the {total}-byte body"
                        )));
                    }
                    let piece = usize::try_from(left).unwrap_or(usize::MAX);
                    let n = piece.min(self.reader.pending().len());
                    self.framing = Framing::Length {
                        left: left - n as u64,
                        total,
                    };
                    return Ok(Some(self.take(n)));
                }
                Framing::Chunked { left: None } => self.chunk_size()?,
                Framing::Chunked { left: Some(0) } => {
                    // The CRLF after a chunk's data.
                    self.need(2)?;
                    if !self.reader.pending().starts_with(b"\r\n") {
                        return Err(malformed("chunk data not followed by CRLF"));
                    }
                    self.reader.pos += 2;
                    self.framing = Framing::Chunked { left: None };
                }
                Framing::Chunked { left: Some(left) } => {
                    if self.reader.pending().is_empty() && !self.reader.fill()? {
                        return Err(malformed("connection closed inside the chunked body"));
                    }
                    let piece = usize::try_from(left).unwrap_or(usize::MAX);
                    let n = piece.min(self.reader.pending().len());
                    self.framing = Framing::Chunked {
                        left: Some(left - n as u64),
                    };
                    return Ok(Some(self.take(n)));
                }
            }
        }
    }

    /// Takes up to `n` pending bytes.
    fn take(&mut self, n: usize) -> &[u8] {
        let r = &mut self.reader;
        let start = r.pos;
        let end = start + n.min(r.buf.len() - start);
        r.pos = end;
        &r.buf[start..end]
    }

    /// Reads until at least `n` bytes are pending; the end of the connection before is an
    /// error.
    fn need(&mut self, n: usize) -> Result<(), HttpError> {
        while self.reader.pending().len() < n {
            if !self.reader.fill()? {
                return Err(malformed("connection closed inside the chunked body"));
            }
        }
        Ok(())
    }

    /// Parses a chunk-size line (extensions ignored); at the last chunk, the trailers too.
    fn chunk_size(&mut self) -> Result<(), HttpError> {
        let size = loop {
            match httparse::parse_chunk_size(self.reader.pending()) {
                Ok(httparse::Status::Complete((used, size))) => {
                    self.reader.pos += used;
                    break size;
                }
                Ok(httparse::Status::Partial) => {
                    if self.reader.pending().len() > MAX_HEAD {
                        return Err(malformed("chunk size line larger than 1 MiB"));
                    }
                    self.need(self.reader.pending().len() + 1)?;
                }
                Err(_) => {
                    // The rest of the line too, to name it whole (as far as it comes).
                    while !self.reader.pending().contains(&b'\n')
                        && self.reader.pending().len() < 80
                        && self.reader.fill().unwrap_or(false)
                    {}
                    let line = self.reader.pending();
                    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
                    return Err(malformed(format!(
                        "bad chunk size line {:?}",
                        String::from_utf8_lossy(&line[..end.min(80)]).trim_end()
                    )));
                }
            }
        };
        if size > 0 {
            self.framing = Framing::Chunked { left: Some(size) };
            return Ok(());
        }
        // Trailers, up to an empty line.
        loop {
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            match httparse::parse_headers(self.reader.pending(), &mut slots) {
                Ok(httparse::Status::Complete((used, _))) => {
                    self.reader.pos += used;
                    self.framing = Framing::Done;
                    return Ok(());
                }
                Ok(httparse::Status::Partial) => {
                    if self.reader.pending().len() > MAX_HEAD {
                        return Err(malformed("trailers larger than 1 MiB"));
                    }
                    self.need(self.reader.pending().len() + 1)?;
                }
                Err(e) => return Err(malformed(format!("bad trailer: {e}"))),
            }
        }
    }

    /// The whole body, at most `max` bytes: more is malformed, unless `cut` (then the rest
    /// is left unread).
    pub(crate) fn read_to_vec(&mut self, max: usize, cut: bool) -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::new();
        while let Some(piece) = self.next_piece()? {
            let room = max - out.len();
            if piece.len() > room {
                if cut {
                    out.extend_from_slice(&piece[..room]);
                    return Ok(out);
                }
                return Err(malformed(format!("response larger than {} MiB", max >> 20)));
            }
            out.extend_from_slice(piece);
        }
        Ok(out)
    }

    /// Writes the whole body to `to`; `progress` gets the bytes written so far. Returns them.
    pub(crate) fn copy_to(
        &mut self,
        to: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, HttpError> {
        let mut done = 0u64;
        while let Some(piece) = self.next_piece()? {
            to.write_all(piece).map_err(|source| HttpError::Local {
                what: "cannot write what the docker engine sends",
                source,
            })?;
            done += piece.len() as u64;
            progress(done);
        }
        Ok(done)
    }
}

/// What a slice gives as a connection: its bytes, then the end (`eof`) or `WouldBlock`.
struct Slice<'a> {
    rest: &'a [u8],
    eof: bool,
}

impl Read for Slice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.rest.is_empty() && !self.eof {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.rest.len());
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        Ok(n)
    }
}

/// Parses a whole HTTP/1.x response from `buf`, as read so far from the engine's socket, with
/// the same [`Reader`] the client uses.
///
/// Returns `Ok(Some(response))` once it is complete (body delimited by `Content-Length`, by
/// `Transfer-Encoding: chunked`, which is decoded, or by the end of the connection),
/// `Ok(None)` while more is needed and may come (`eof` false), and `Err(reason)` for a
/// malformed answer or one cut short by `eof`. Never panics, whatever `buf` holds (fuzzed:
/// `fuzz/fuzz_targets/engine_response.rs`).
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Option<Response>, String> {
    let parsed = (|| {
        let mut reader = Reader::new(Slice { rest: buf, eof });
        let head = reader.head()?;
        let body = reader.body(&head)?.read_to_vec(MAX_BODY, false)?;
        Ok(Response {
            status: head.status,
            headers: head.headers,
            body,
        })
    })();
    match parsed {
        Ok(r) => Ok(Some(r)),
        Err(HttpError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(HttpError::Malformed(reason)) => Err(reason),
        Err(HttpError::Io(e) | HttpError::Local { source: e, .. }) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection that gives its bytes `step` at a time, then ends.
    struct Trickle {
        rest: Vec<u8>,
        step: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.rest.len());
            buf[..n].copy_from_slice(&self.rest[..n]);
            self.rest.drain(..n);
            Ok(n)
        }
    }

    /// Reads `text` whole through [`Reader`], `step` bytes per read.
    fn read(text: &[u8], step: usize) -> Result<Response, HttpError> {
        let mut reader = Reader::new(Trickle {
            rest: text.to_vec(),
            step,
        });
        let head = reader.head()?;
        let body = reader.body(&head)?.read_to_vec(MAX_BODY, false)?;
        Ok(Response {
            status: head.status,
            headers: head.headers,
            body,
        })
    }

    fn reason(e: HttpError) -> String {
        match e {
            HttpError::Malformed(r) => r,
            other => panic!("not malformed: {other:?}"),
        }
    }

    #[test]
    fn a_length_body_stops_at_its_length_in_any_split() {
        let text = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nX-A:  b \r\n\r\n{\"a\":1}junk";
        for step in [1, 2, 3, 5, 64, 4096] {
            let r = read(text, step).unwrap();
            assert_eq!(
                (r.status, r.body.as_slice()),
                (200, &b"{\"a\":1}"[..]),
                "{step}"
            );
            assert_eq!(r.header("x-a"), Some("b"));
            assert_eq!(r.header("content-LENGTH"), Some("7"));
        }
    }

    #[test]
    fn a_chunked_body_with_extensions_and_trailers_is_decoded_in_any_split() {
        let text = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n\
            5;name=value\r\nhello\r\n1 ; x\r\n,\r\nA\r\n world!!!!\r\n0\r\nX-Trailer: t\r\nY: u\r\n\r\nafter";
        for step in [1, 2, 3, 7, 4096] {
            let r = read(text, step).unwrap();
            assert_eq!(r.body, b"hello, world!!!!", "{step}");
        }
        let plain = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
        assert_eq!(read(plain, 1).unwrap().body, b"hi");
    }

    #[test]
    fn without_length_or_chunks_the_body_ends_with_the_connection() {
        for step in [1, 4096] {
            let r = read(b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nall of\r\nthis", step).unwrap();
            assert_eq!(r.body, b"all of\r\nthis");
        }
        // 204 and 304 have no body, whatever follows.
        let r = read(b"HTTP/1.1 204 No Content\r\n\r\nextra", 3).unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
    }

    #[test]
    fn garbage_is_an_error_naming_what_is_wrong() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"garbage\r\n\r\n",
                "bad status line or header: invalid HTTP version",
            ),
            (b"HTTP/1.1 +12 x\r\n\r\n", "invalid response status"),
            (
                b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
                "invalid header name",
            ),
            (
                b"HTTP/1.1 200 OK\r\nA: \xff\r\n\r\n",
                "header A is not UTF-8",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: x1\r\n\r\n",
                "bad Content-Length \"x1\"",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                "bad Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                "connection closed inside the 10-byte body",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
                "connection closed before the end of the headers",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
                "bad chunk size line \"zz\"",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n",
                "bad chunk size line",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n",
                "bad chunk size line",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n\r\n",
                "chunk data not followed by CRLF",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                "connection closed inside the chunked body",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n",
                "bad trailer",
            ),
        ];
        for (text, want) in cases {
            for step in [1, 4096] {
                let got = reason(read(text, step).unwrap_err());
                assert!(
                    got.contains(want),
                    "{:?}: {got:?}",
                    String::from_utf8_lossy(text)
                );
            }
        }
    }

    #[test]
    fn a_body_too_large_for_memory_is_malformed_and_a_cut_one_is_cut() {
        let text = b"HTTP/1.1 500 x\r\n\r\n0123456789";
        let mut reader = Reader::new(&text[..]);
        let head = reader.head().unwrap();
        let mut body = reader.body(&head).unwrap();
        assert_eq!(body.read_to_vec(4, true).unwrap(), b"0123");
        let mut reader = Reader::new(&text[..]);
        let head = reader.head().unwrap();
        let err = reason(
            reader
                .body(&head)
                .unwrap()
                .read_to_vec(4, false)
                .unwrap_err(),
        );
        assert!(err.starts_with("response larger than"), "{err}");
    }

    #[test]
    fn parse_response_needs_more_until_complete_and_never_at_eof() {
        let text = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
        for at in 0..text.len() {
            assert_eq!(parse_response(&text[..at], false), Ok(None), "{at}");
            assert!(parse_response(&text[..at], true).is_err(), "{at}");
        }
        let r = parse_response(text, false).unwrap().unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hi"[..]));
        // Up to the end of the connection: complete only at eof.
        let eof = b"HTTP/1.0 200 OK\r\n\r\nOK";
        assert_eq!(parse_response(eof, false), Ok(None));
        assert_eq!(parse_response(eof, true).unwrap().unwrap().body, b"OK");
    }

    #[test]
    fn the_writer_frames_each_kind_of_request() {
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        let base = "Host: docker\r\nUser-Agent: docker-userns\r\n";
        assert_eq!(
            text(write_head("GET", "/_ping", None)),
            format!("GET /_ping HTTP/1.0\r\n{base}\r\n")
        );
        assert_eq!(
            text(write_head("POST", "/containers/x/start", None)),
            format!("POST /containers/x/start HTTP/1.0\r\n{base}Content-Length: 0\r\n\r\n")
        );
        assert_eq!(
            text(write_head(
                "POST",
                "/images/load",
                Some(("application/x-tar", 12))
            )),
            format!(
                "POST /images/load HTTP/1.0\r\n{base}Content-Type: application/x-tar\r\nContent-Length: 12\r\n\r\n"
            )
        );
    }

    /// A connection that records what is written and answers with `answer`.
    struct Fake {
        written: Vec<u8>,
        answer: io::Cursor<Vec<u8>>,
    }

    impl Read for &mut Fake {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.answer.read(buf)
        }
    }

    impl Write for &mut Fake {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn fake(answer: &str) -> Fake {
        Fake {
            written: Vec::new(),
            answer: io::Cursor::new(answer.as_bytes().to_vec()),
        }
    }

    #[test]
    fn one_exchange_sends_bytes_streams_and_reads_or_streams_the_answer() {
        // Bytes out, answer into memory.
        let mut f = fake("HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}");
        let (r, n) = exchange(
            &mut f,
            "POST",
            "/volumes/create",
            Outgoing::Bytes("application/json", b"{\"Name\":\"v\"}"),
            Incoming::Memory,
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice(), n), (201, &b"{}"[..], 0));
        let sent = String::from_utf8(f.written).unwrap();
        assert!(
            sent.starts_with("POST /volumes/create HTTP/1.0\r\n")
                && sent.ends_with(
                    "Content-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"Name\":\"v\"}"
                ),
            "{sent}"
        );
        // A stream out (cut at its length), progress told.
        let mut f =
            fake("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{}\n\r\n0\r\n\r\n");
        let mut seen = Vec::new();
        let (r, _) = exchange(
            &mut f,
            "POST",
            "/images/load?quiet=1",
            Outgoing::Stream {
                content_type: "application/x-tar",
                from: &mut &b"tar bytes and more"[..],
                len: 9,
                progress: &mut |n| seen.push(n),
            },
            Incoming::Memory,
        )
        .unwrap();
        assert_eq!(
            (r.body.as_slice(), seen.as_slice()),
            (&b"{}\n"[..], &[9][..])
        );
        assert!(f.written.ends_with(b"Content-Length: 9\r\n\r\ntar bytes"));
        // A 2xx body streamed out; another status's body kept for the error.
        let mut f = fake("HTTP/1.0 200 OK\r\n\r\ntar bytes");
        let mut out = Vec::new();
        let (r, n) = exchange(
            &mut f,
            "GET",
            "/images/get?names=x",
            Outgoing::Empty,
            Incoming::Stream {
                to: &mut out,
                progress: &mut |_| {},
            },
        )
        .unwrap();
        assert_eq!((r.body.len(), n, out.as_slice()), (0, 9, &b"tar bytes"[..]));
        let mut f = fake("HTTP/1.0 404 Not Found\r\n\r\n{\"message\":\"no\"}");
        let mut out = Vec::new();
        let (r, n) = exchange(
            &mut f,
            "GET",
            "/images/get?names=x",
            Outgoing::Empty,
            Incoming::Stream {
                to: &mut out,
                progress: &mut |_| {},
            },
        )
        .unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), n),
            (404, &b"{\"message\":\"no\"}"[..], 0)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn an_upload_source_that_fails_is_a_local_error() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk read error"))
            }
        }
        let mut f = fake("HTTP/1.0 200 OK\r\n\r\n");
        let err = exchange(
            &mut f,
            "POST",
            "/images/load",
            Outgoing::Stream {
                content_type: "application/x-tar",
                from: &mut Broken,
                len: 5,
                progress: &mut |_| {},
            },
            Incoming::Memory,
        )
        .unwrap_err();
        assert!(matches!(err, HttpError::Local { .. }), "{err:?}");
    }

    #[test]
    fn timeouts_are_worded_by_their_limit() {
        let e = Limit::total(Duration::from_millis(200)).io_error(io::ErrorKind::WouldBlock.into());
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(
            e.to_string().contains("no complete answer within 200ms"),
            "{e}"
        );
        let e = Limit::Idle(Duration::from_secs(3)).io_error(io::ErrorKind::TimedOut.into());
        assert!(e.to_string().contains("nothing moved for 3s"), "{e}");
        let e = Limit::Idle(Duration::from_secs(3)).io_error(io::ErrorKind::BrokenPipe.into());
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }

    proptest::proptest! {
        /// What the fuzz target checks, on answers with a real head and a body made of the
        /// bytes chunked framing is built from: no panic; what is complete before the end of
        /// the connection is the same at its end; at the end there is no "need more"; and the
        /// live reader, fed in pieces of any size, agrees with `parse_response` at the end.
        #[test]
        fn the_reader_agrees_with_itself_in_any_split(
            framing in 0usize..4,
            body in proptest::collection::vec(
                proptest::sample::select(b"0123456789aAfF;=x: \r\n".to_vec()),
                0..60,
            ),
            step in 1usize..9,
            cut in 0usize..100,
        ) {
            let head = [
                "Transfer-Encoding: chunked\r\n",
                "Content-Length: 5\r\n",
                "",
                "Transfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n",
            ][framing];
            let mut text = format!("HTTP/1.1 200 OK\r\n{head}\r\n").into_bytes();
            text.extend_from_slice(&body);
            let at = cut.min(text.len());
            let _ = parse_response(&text[..at], false);
            let whole = parse_response(&text, false);
            let closed = parse_response(&text, true);
            proptest::prop_assert!(!matches!(closed, Ok(None)));
            if let Ok(Some(r)) = &whole {
                let at_end = closed.clone().ok().flatten();
                proptest::prop_assert_eq!(at_end.as_ref(), Some(r));
            }
            let live = read(&text, step).map_err(|e| match e {
                HttpError::Malformed(r) => r,
                other => format!("{other:?}"),
            });
            proptest::prop_assert_eq!(live.ok(), closed.ok().flatten());
        }
    }
}
