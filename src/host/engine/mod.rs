//! A minimal Docker Engine API client over the unix socket: [`http`] is the one HTTP exchange
//! (one request writer, one response reader, `httparse` for the head), `api` the typed
//! endpoints this tool calls (callers never format a URL), [`models`] the serde structs of
//! what they answer. This file holds the client itself: the socket, connecting with a
//! timeout, and the one mapping of an exchange's failure to an [`EngineError`].

mod api;
pub(crate) mod http;
pub(crate) mod models;

use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use http::{Response, parse_response};
#[cfg(test)]
pub(crate) use models::SwarmInfo;
pub(crate) use models::{
    Container, ContainerCreate, ContainerInspect, HostConfigCreate, ImageInspect, ImageSummary,
    Info, Version, Volume, containerd_store,
};

use http::{HttpError, Incoming, Limit, Outgoing};

/// Why a request to the Docker engine failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EngineError {
    /// The socket could not be connected to (missing, refused, or not accepted in time).
    #[error("cannot connect to the docker engine at {}: {source} (is docker running?)", socket.display())]
    Connect {
        /// The socket path.
        socket: PathBuf,
        /// What connect said.
        source: io::Error,
    },
    /// Sending the request or reading the answer failed; a timeout has kind `TimedOut`.
    #[error("talking to the docker engine at {}: {source}", socket.display())]
    Io {
        /// The socket path.
        socket: PathBuf,
        /// The error, `io::ErrorKind::TimedOut` when the engine did not answer in time.
        source: io::Error,
    },
    /// The local side of a stream failed: writing what the engine sends ([`Engine::export_image`]:
    /// a full disk, say) or reading what is sent to it ([`Engine::load_images`]). Not the
    /// engine's fault, so not worded as one; `source` keeps its kind (`StorageFull` for ENOSPC).
    #[error("{what}: {source}")]
    Local {
        /// What was being done.
        what: &'static str,
        /// What the write or read said.
        source: io::Error,
    },
    /// The answer is not the HTTP (or the API answer) it should be.
    #[error("malformed answer from the docker engine at {}: {reason}", socket.display())]
    Malformed {
        /// The socket path.
        socket: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The engine answered with a non-2xx status.
    #[error("the docker engine at {} answered {path} with HTTP {status}: {message}", socket.display())]
    Status {
        /// The socket path.
        socket: PathBuf,
        /// The request (`METHOD /path`).
        path: String,
        /// The HTTP status code.
        status: u16,
        /// The engine's `message`, else the start of the body.
        message: String,
    },
    /// The request itself cannot be sent: its path holds whitespace or control characters
    /// (the endpoints percent-encode what they put in a path), or its body does not serialize.
    #[error("invalid request to the docker engine: {method} {path:?}: {reason}")]
    Request {
        /// The method.
        method: String,
        /// The request path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The body is not the JSON expected.
    #[error("invalid JSON from the docker engine at {} for {path}: {source}", socket.display())]
    Json {
        /// The socket path.
        socket: PathBuf,
        /// The request (`METHOD /path`).
        path: String,
        /// The parse error.
        source: serde_json::Error,
    },
}

impl EngineError {
    /// The engine answered 404 (no such container, image or volume).
    pub(crate) fn not_found(&self) -> bool {
        matches!(self, EngineError::Status { status: 404, .. })
    }
}

/// A client for the engine's API socket. Each request uses a fresh connection.
#[derive(Debug, Clone)]
pub(crate) struct Engine {
    socket: PathBuf,
    timeout: Duration,
}

impl Engine {
    /// A client for `socket`; `timeout` bounds each request, from connect to the last byte.
    pub(crate) fn new(socket: impl Into<PathBuf>, timeout: Duration) -> Self {
        Engine {
            socket: socket.into(),
            timeout,
        }
    }

    /// The socket path.
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// The one exchange every endpoint goes through: checks the path, connects, sends, reads.
    /// `limit`: the whole exchange (plain requests) or each read and write (streams).
    fn exchange(
        &self,
        method: &str,
        path: &str,
        out: Outgoing<'_>,
        into: Incoming<'_>,
        limit: Limit,
    ) -> Result<(Response, u64), EngineError> {
        http::check_path(path).map_err(|reason| EngineError::Request {
            method: method.into(),
            path: path.into(),
            reason,
        })?;
        let connect_within = match limit {
            Limit::Total { timeout, .. } => timeout,
            Limit::Idle(_) => self.timeout,
        };
        let started = std::time::Instant::now();
        let stream = self.connect(connect_within)?;
        let r = http::exchange(http::Conn::new(stream, limit), method, path, out, into)
            .map_err(|e| self.http_error(e));
        // `-vv`: every call to the engine, with its status and how long it took.
        tracing::debug!(
            "engine: {method} {path}: {} in {:.1} ms",
            r.as_ref()
                .map_or_else(|_| "failed".to_string(), |(a, _)| a.status.to_string()),
            started.elapsed().as_secs_f64() * 1e3
        );
        r
    }

    /// `method path` with an optional JSON body, the whole exchange within `timeout`; the
    /// answer whatever its status.
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        timeout: Duration,
    ) -> Result<Response, EngineError> {
        let bytes = match body.map(serde_json::to_vec).transpose() {
            Ok(b) => b,
            Err(e) => {
                return Err(EngineError::Request {
                    method: method.into(),
                    path: path.into(),
                    reason: format!("the body does not serialize: {e}"),
                });
            }
        };
        let out = match &bytes {
            Some(b) => Outgoing::Bytes("application/json", b),
            None => Outgoing::Empty,
        };
        let limit = Limit::total(timeout);
        Ok(self.exchange(method, path, out, Incoming::Memory, limit)?.0)
    }

    /// `method path` (JSON body or none) whose 2xx answer is JSON read as `T` (an empty body
    /// as `null`); any other status is an [`EngineError::Status`].
    fn json<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        timeout: Duration,
    ) -> Result<T, EngineError> {
        let r = self.request(method, path, body, timeout)?;
        self.json_answer(&format!("{method} {path}"), &r)
    }

    fn json_answer<T: DeserializeOwned>(&self, what: &str, r: &Response) -> Result<T, EngineError> {
        if !r.success() {
            return Err(self.status_error(what, r));
        }
        let body = if r.body.trim_ascii().is_empty() {
            &b"null"[..]
        } else {
            &r.body
        };
        serde_json::from_slice(body).map_err(|source| EngineError::Json {
            socket: self.socket.clone(),
            path: what.into(),
            source,
        })
    }

    /// `GET path` with the body of a 2xx answer streamed into `out`, `idle` bounding each read.
    fn download(
        &self,
        path: &str,
        out: &mut dyn io::Write,
        idle: Duration,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, EngineError> {
        let into = Incoming::Stream { to: out, progress };
        let (r, n) = self.exchange("GET", path, Outgoing::Empty, into, Limit::Idle(idle))?;
        if !r.success() {
            return Err(self.status_error(&format!("GET {path}"), &r));
        }
        Ok(n)
    }

    /// `POST path` with `len` bytes of `from` streamed as the body, `idle` bounding each read
    /// and write; the answer read whole.
    fn upload(
        &self,
        path: &str,
        content_type: &str,
        from: &mut dyn io::Read,
        len: u64,
        idle: Duration,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Response, EngineError> {
        let out = Outgoing::Stream {
            content_type,
            from,
            len,
            progress,
        };
        let limit = Limit::Idle(idle);
        Ok(self.exchange("POST", path, out, Incoming::Memory, limit)?.0)
    }

    /// `UnixStream::connect` has no timeout (it blocks while dockerd's backlog is full): run it
    /// on a thread and stop waiting after `timeout`; a late stream is closed by that thread.
    fn connect(&self, timeout: Duration) -> Result<UnixStream, EngineError> {
        let (tx, rx) = mpsc::channel();
        let socket = self.socket.clone();
        let res = thread::Builder::new()
            .name("docker-connect".into())
            .spawn(move || drop(tx.send(UnixStream::connect(socket))))
            .and_then(|_| {
                rx.recv_timeout(timeout).unwrap_or_else(|_| {
                    let msg = format!("not accepted within {timeout:?}");
                    Err(io::Error::new(io::ErrorKind::TimedOut, msg))
                })
            });
        res.map_err(|source| EngineError::Connect {
            socket: self.socket.clone(),
            source,
        })
    }

    /// The one mapping of an exchange's failure (timeouts are worded in [`http::Limit`]).
    fn http_error(&self, e: HttpError) -> EngineError {
        match e {
            HttpError::Io(source) => EngineError::Io {
                socket: self.socket.clone(),
                source,
            },
            HttpError::Malformed(reason) => self.malformed(reason),
            HttpError::Local { what, source } => EngineError::Local { what, source },
        }
    }

    fn malformed(&self, reason: String) -> EngineError {
        EngineError::Malformed {
            socket: self.socket.clone(),
            reason,
        }
    }

    fn status_error(&self, what: &str, r: &Response) -> EngineError {
        let json = serde_json::from_slice::<Value>(&r.body).ok();
        let text = String::from_utf8_lossy(&r.body);
        let message = json.as_ref().and_then(|v| v.get("message")?.as_str());
        EngineError::Status {
            socket: self.socket.clone(),
            path: what.into(),
            status: r.status,
            message: message.unwrap_or(text.trim()).chars().take(200).collect(),
        }
    }
}

#[cfg(test)]
mod tests;
