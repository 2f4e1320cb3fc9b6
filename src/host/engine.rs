//! A minimal Docker Engine API client over the unix socket (std only): ping, info, containers.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// The most a response may hold; more is treated as malformed.
const MAX_RESPONSE: usize = 64 << 20;
/// How often [`Engine::wait_ping`] retries.
const PING_INTERVAL: Duration = Duration::from_millis(20);

/// Why a request to the Docker engine failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
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
    /// The local side of a stream failed: writing what the engine sends ([`Engine::download`]:
    /// a full disk, say) or reading what is sent to it ([`Engine::upload`]). Not the engine's
    /// fault, so not worded as one; `source` keeps its kind (`StorageFull` for ENOSPC).
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
        /// The request path.
        path: String,
        /// The HTTP status code.
        status: u16,
        /// The engine's `message`, else the start of the body.
        message: String,
    },
    /// The request itself cannot be sent: its path holds whitespace or control characters
    /// (callers percent-encode what they put in a path with [`encode`]).
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
    #[error("invalid JSON from the docker engine at {} for GET {path}: {source}", socket.display())]
    Json {
        /// The socket path.
        socket: PathBuf,
        /// The request path.
        path: String,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// An HTTP response, its body already de-chunked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        let found = self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name));
        found.map(|(_, v)| v.as_str())
    }
}

/// What `GET /info` says, as far as this tool cares; missing fields are defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, rename_all(deserialize = "PascalCase"))]
pub struct Info {
    /// Security options, such as `name=seccomp,profile=default` or `name=userns`.
    #[serde(deserialize_with = "nullable")]
    pub security_options: Vec<String>,
    /// The data root, e.g. `/var/lib/docker/100000.100000` with remapping on.
    pub docker_root_dir: String,
    /// The engine's version.
    pub server_version: String,
    /// How many containers run.
    pub containers_running: u64,
    /// `live-restore` is on: containers keep running while dockerd is stopped.
    pub live_restore_enabled: bool,
    /// The node's swarm membership.
    #[serde(deserialize_with = "nullable")]
    pub swarm: SwarmInfo,
    /// The storage driver: a graph driver (`overlay2`, `vfs`, ...) or, with the containerd
    /// image store, the snapshotter (`overlayfs`; see [`Info::image_store`]).
    pub driver: String,
    /// The driver's facts as `[name, value]` pairs; the containerd image store says
    /// `["driver-type", "io.containerd.snapshotter.v1"]` there.
    #[serde(deserialize_with = "nullable")]
    pub driver_status: Vec<Vec<String>>,
}

/// `DriverStatus`' `driver-type` of the containerd image store.
pub const SNAPSHOTTER_TYPE: &str = "io.containerd.snapshotter.v1";

/// `Swarm` in `GET /info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, rename_all(deserialize = "PascalCase"))]
pub struct SwarmInfo {
    /// `inactive`, `pending`, `active`, `error` or `locked` (empty: not reported).
    pub local_node_state: String,
    /// The node is a manager.
    pub control_available: bool,
    /// The node's id in the swarm.
    #[serde(rename(deserialize = "NodeID"))]
    pub node_id: String,
}

impl SwarmInfo {
    /// The node is in a swarm or joining one (anything but `inactive` or unreported).
    pub fn member(&self) -> bool {
        !matches!(self.local_node_state.as_str(), "" | "inactive")
    }
}

impl Info {
    /// The image store the engine uses, as this tool names it: `containerd (overlayfs
    /// snapshotter)` for the containerd image store (docker 29's default on fresh installs),
    /// else the graph driver (`overlay2`); None when the engine names no driver.
    pub fn image_store(&self) -> Option<String> {
        let driver = self.driver.trim();
        if driver.is_empty() {
            return None;
        }
        let containerd = self
            .driver_status
            .iter()
            .any(|kv| kv.len() == 2 && kv[0] == "driver-type" && kv[1] == SNAPSHOTTER_TYPE);
        Some(if containerd {
            containerd_store(driver)
        } else {
            driver.to_string()
        })
    }

    /// Whether user-namespace remapping is on (`name=userns[,...]`, or legacy `userns`).
    pub fn userns(&self) -> bool {
        self.security_options
            .iter()
            .any(|o| o == "userns" || o == "name=userns" || o.starts_with("name=userns,"))
    }
}

/// A container as listed by `GET /containers/json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, rename_all(deserialize = "PascalCase"))]
pub struct Container {
    /// The full id.
    pub id: String,
    /// Its names, each with a leading `/`.
    #[serde(deserialize_with = "nullable")]
    pub names: Vec<String>,
    /// The image it runs.
    pub image: String,
    /// Its state, e.g. `running`.
    pub state: String,
}

impl Container {
    /// The first name without its leading `/`, else the short (12-character) id.
    pub fn name(&self) -> &str {
        self.names
            .first()
            .map(|n| n.strip_prefix('/').unwrap_or(n))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.id.get(..12).unwrap_or(&self.id))
    }
}

/// The containerd image store with `snapshotter`, as [`Info::image_store`] names it.
pub fn containerd_store(snapshotter: &str) -> String {
    format!("containerd ({snapshotter} snapshotter)")
}

fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A client for the engine's API socket. Each request uses a fresh connection.
#[derive(Debug, Clone)]
pub struct Engine {
    socket: PathBuf,
    timeout: Duration,
}

impl Engine {
    /// A client for `socket`; `timeout` bounds each request, from connect to the last byte.
    pub fn new(socket: impl Into<PathBuf>, timeout: Duration) -> Self {
        Engine {
            socket: socket.into(),
            timeout,
        }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET path` (e.g. `/info`), whatever the status. A path with whitespace or control
    /// characters is an [`EngineError::Request`]; put names in paths with [`encode`].
    pub fn get(&self, path: &str) -> Result<Response, EngineError> {
        self.request(path, self.timeout)
    }

    /// `GET path` as JSON; a non-2xx status is an [`EngineError::Status`].
    pub fn get_json(&self, path: &str) -> Result<Value, EngineError> {
        let r = self.get(path)?;
        if !(200..300).contains(&r.status) {
            return Err(self.status_error(&format!("GET {path}"), &r));
        }
        serde_json::from_slice(&r.body).map_err(|e| self.json_error(path, e))
    }

    /// `GET /_ping`: Ok when the engine answers 200 `OK`.
    pub fn ping(&self) -> Result<(), EngineError> {
        self.ping_within(self.timeout)
    }

    /// `GET /info`.
    pub fn info(&self) -> Result<Info, EngineError> {
        self.get_as("/info")
    }

    /// `GET /containers/json`: the running containers.
    pub fn running_containers(&self) -> Result<Vec<Container>, EngineError> {
        self.get_as("/containers/json")
    }

    /// Pings every 20 ms until the engine answers or `deadline` passes; returns how long it
    /// took, or the last error. Each ping's timeout is cut to the time left.
    pub fn wait_ping(&self, deadline: Instant) -> Result<Duration, EngineError> {
        let start = Instant::now();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let err = match self.ping_within(self.timeout.min(left).max(Duration::from_millis(1))) {
                Ok(()) => return Ok(start.elapsed()),
                Err(e) => e,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(err);
            }
            thread::sleep(PING_INTERVAL.min(left));
        }
    }

    fn ping_within(&self, timeout: Duration) -> Result<(), EngineError> {
        let r = self.request("/_ping", timeout)?;
        if r.status != 200 {
            return Err(self.status_error("GET /_ping", &r));
        }
        if r.body.trim_ascii() != b"OK" {
            return Err(self.malformed(format!(
                "GET /_ping answered {:?}, not \"OK\"",
                String::from_utf8_lossy(&r.body)
            )));
        }
        Ok(())
    }

    fn get_as<T: DeserializeOwned>(&self, path: &str) -> Result<T, EngineError> {
        serde_json::from_value(self.get_json(path)?).map_err(|e| self.json_error(path, e))
    }

    fn request(&self, path: &str, timeout: Duration) -> Result<Response, EngineError> {
        self.send("GET", path, None, timeout)
    }

    /// `POST path` with a JSON body (or none); the answer as JSON (`null` when empty). A
    /// non-2xx status is an [`EngineError::Status`].
    pub fn post_json(&self, path: &str, body: Option<&Value>) -> Result<Value, EngineError> {
        let bytes = match body.map(serde_json::to_vec).transpose() {
            Ok(b) => b,
            Err(e) => {
                return Err(EngineError::Request {
                    method: "POST".into(),
                    path: path.into(),
                    reason: format!("the body does not serialize: {e}"),
                });
            }
        };
        self.json_answer(
            &format!("POST {path}"),
            self.send("POST", path, bytes, self.timeout)?,
        )
    }

    /// `POST /containers/{id}/stop?t=GRACE`: SIGTERM, then SIGKILL after `grace`. A container
    /// that is already stopped (304) counts as stopped.
    pub fn stop_container(&self, id: &str, grace: Duration) -> Result<(), EngineError> {
        let path = format!("/containers/{}/stop?t={}", encode(id), grace.as_secs());
        let r = self.send("POST", &path, None, self.timeout + grace)?;
        match r.status {
            204 | 304 => Ok(()),
            _ => Err(self.status_error(&format!("POST {path}"), &r)),
        }
    }

    /// `POST /containers/{id}/start`; one that runs already (304) counts as started.
    pub fn start_container(&self, id: &str) -> Result<(), EngineError> {
        let path = format!("/containers/{}/start", encode(id));
        let r = self.send("POST", &path, None, self.timeout)?;
        match r.status {
            204 | 304 => Ok(()),
            _ => Err(self.status_error(&format!("POST {path}"), &r)),
        }
    }

    /// `DELETE path`; a non-2xx status is an [`EngineError::Status`].
    pub fn delete(&self, path: &str) -> Result<(), EngineError> {
        self.json_answer(path, self.send("DELETE", path, None, self.timeout)?)
            .map(drop)
    }

    /// `GET path` with its own timeout, for long calls such as a container wait.
    pub fn get_within(&self, path: &str, timeout: Duration) -> Result<Response, EngineError> {
        self.send("GET", path, None, timeout)
    }

    /// `POST path` with its own timeout, for long calls such as `/containers/{id}/wait`.
    pub fn post_json_within(&self, path: &str, timeout: Duration) -> Result<Value, EngineError> {
        self.json_answer(
            &format!("POST {path}"),
            self.send("POST", path, None, timeout)?,
        )
    }

    fn json_answer(&self, path: &str, r: Response) -> Result<Value, EngineError> {
        if !(200..300).contains(&r.status) {
            return Err(self.status_error(path, &r));
        }
        if r.body.trim_ascii().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&r.body).map_err(|e| self.json_error(path, e))
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Response, EngineError> {
        let io_err = |e: io::Error| EngineError::Io {
            socket: self.socket.clone(),
            source: match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    let msg = format!("no complete answer within {timeout:?}");
                    io::Error::new(io::ErrorKind::TimedOut, msg)
                }
                _ => e,
            },
        };
        check_path(path).map_err(|reason| EngineError::Request {
            method: method.into(),
            path: path.into(),
            reason,
        })?;
        // A timeout too large for the clock means no deadline to speak of.
        let deadline = Instant::now().checked_add(timeout);
        let left = || {
            deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            })
        };
        let mut stream = self.connect(timeout)?;
        let mut request =
            format!("{method} {path} HTTP/1.0\r\nHost: docker\r\nUser-Agent: docker-userns\r\n");
        match &body {
            Some(b) => request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                b.len()
            )),
            None if method == "GET" => request.push_str("\r\n"),
            None => request.push_str("Content-Length: 0\r\n\r\n"),
        }
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body.as_deref().unwrap_or_default());
        stream
            .set_write_timeout(Some(left().max(Duration::from_millis(1))))
            .and_then(|()| stream.write_all(&bytes))
            .map_err(io_err)?;
        let (mut buf, mut chunk) = (Vec::new(), [0u8; 16 << 10]);
        loop {
            if left().is_zero() {
                return Err(io_err(io::ErrorKind::TimedOut.into()));
            }
            stream.set_read_timeout(Some(left())).map_err(io_err)?;
            let n = match stream.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(e)),
            };
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > MAX_RESPONSE {
                return Err(self.malformed("response larger than 64 MiB".into()));
            }
            if let Some(r) = parse_response(&buf, n == 0).map_err(|e| self.malformed(e))? {
                return Ok(r);
            }
        }
    }

    /// `GET path` with the body streamed into `out` (for `/images/get`, which can be gigabytes):
    /// the headers are read first, a non-2xx answer is an error (its body read into memory),
    /// then everything until the engine closes the connection (an HTTP/1.0 answer has no chunked
    /// coding) goes to `out`; `progress` gets the bytes written so far. `idle` bounds each read,
    /// not the whole transfer. Returns the bytes written.
    pub fn download(
        &self,
        path: &str,
        out: &mut dyn Write,
        idle: Duration,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, EngineError> {
        let mut stream = self.open_request("GET", path, None, idle)?;
        let (head, mut rest) = self.read_head(&mut stream, idle)?;
        if !(200..300).contains(&head.status) {
            let mut body = rest;
            stream
                .take(1 << 20)
                .read_to_end(&mut body)
                .map_err(|e| self.io(e, idle))?;
            let r = Response { body, ..head };
            return Err(self.status_error(&format!("GET {path}"), &r));
        }
        let mut done = 0u64;
        let mut chunk = vec![0u8; 1 << 20];
        loop {
            if !rest.is_empty() {
                out.write_all(&rest).map_err(|source| EngineError::Local {
                    what: "cannot write what the docker engine sends",
                    source,
                })?;
                done += rest.len() as u64;
                progress(done);
                rest.clear();
            }
            let n = match stream.read(&mut chunk) {
                Ok(0) => return Ok(done),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io(e, idle)),
            };
            rest.extend_from_slice(&chunk[..n]);
        }
    }

    /// `POST path` with `len` bytes of `body` streamed as the request body (for `/images/load`),
    /// `content_type` given; the answer is read whole (it is a short JSON stream). `idle` bounds
    /// each write and read; `progress` gets the bytes sent so far.
    pub fn upload(
        &self,
        path: &str,
        content_type: &str,
        body: &mut dyn Read,
        len: u64,
        idle: Duration,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Response, EngineError> {
        let mut stream = self.open_request("POST", path, Some((content_type, len)), idle)?;
        let mut chunk = vec![0u8; 1 << 20];
        let mut sent = 0u64;
        while sent < len {
            let n = match body.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(EngineError::Local {
                        what: "cannot read what is sent to the docker engine",
                        source,
                    });
                }
            };
            stream
                .write_all(&chunk[..n])
                .map_err(|e| self.io(e, idle))?;
            sent += n as u64;
            progress(sent);
        }
        let (head, mut rest) = self.read_head(&mut stream, idle)?;
        stream
            .take(MAX_RESPONSE as u64)
            .read_to_end(&mut rest)
            .map_err(|e| self.io(e, idle))?;
        let mut r = Response { body: rest, ..head };
        if let Some(len) = r
            .header("content-length")
            .and_then(|l| l.parse::<usize>().ok())
        {
            r.body.truncate(len);
        } else if r
            .header("transfer-encoding")
            .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"))
        {
            r.body = dechunk(&r.body)
                .map_err(|e| self.malformed(e))?
                .ok_or_else(|| {
                    self.malformed("connection closed inside the chunked body".into())
                })?;
        }
        Ok(r)
    }

    fn io(&self, e: io::Error, idle: Duration) -> EngineError {
        EngineError::Io {
            socket: self.socket.clone(),
            source: match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("nothing moved for {idle:?}"),
                ),
                _ => e,
            },
        }
    }

    /// Connects and sends a request's line and headers (`body`: its content type and length).
    fn open_request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, u64)>,
        idle: Duration,
    ) -> Result<UnixStream, EngineError> {
        check_path(path).map_err(|reason| EngineError::Request {
            method: method.into(),
            path: path.into(),
            reason,
        })?;
        let mut stream = self.connect(self.timeout)?;
        let mut head =
            format!("{method} {path} HTTP/1.0\r\nHost: docker\r\nUser-Agent: docker-userns\r\n");
        match body {
            Some((t, len)) => head.push_str(&format!(
                "Content-Type: {t}\r\nContent-Length: {len}\r\n\r\n"
            )),
            None => head.push_str("\r\n"),
        }
        stream
            .set_write_timeout(Some(idle))
            .and_then(|()| stream.set_read_timeout(Some(idle)))
            .and_then(|()| stream.write_all(head.as_bytes()))
            .map_err(|e| self.io(e, idle))?;
        Ok(stream)
    }

    /// Reads up to the end of the headers; returns them (empty body) and the bytes after.
    fn read_head(
        &self,
        stream: &mut UnixStream,
        idle: Duration,
    ) -> Result<(Response, Vec<u8>), EngineError> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 << 10];
        loop {
            let n = match stream.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io(e, idle)),
            };
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                let head = std::str::from_utf8(&buf[..end])
                    .map_err(|_| self.malformed("headers are not UTF-8".into()))?;
                let (status, headers) = parse_head(head).map_err(|e| self.malformed(e))?;
                let rest = buf[end + 4..].to_vec();
                return Ok((
                    Response {
                        status,
                        headers,
                        body: Vec::new(),
                    },
                    rest,
                ));
            }
            if n == 0 {
                return Err(
                    self.malformed("connection closed before the end of the headers".into())
                );
            }
            if buf.len() > 1 << 20 {
                return Err(self.malformed("headers larger than 1 MiB".into()));
            }
        }
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

    fn malformed(&self, reason: String) -> EngineError {
        EngineError::Malformed {
            socket: self.socket.clone(),
            reason,
        }
    }

    fn json_error(&self, path: &str, source: serde_json::Error) -> EngineError {
        EngineError::Json {
            socket: self.socket.clone(),
            path: path.into(),
            source,
        }
    }

    fn status_error(&self, path: &str, r: &Response) -> EngineError {
        let json = serde_json::from_slice::<Value>(&r.body).ok();
        let text = String::from_utf8_lossy(&r.body);
        let message = json.as_ref().and_then(|v| v.get("message")?.as_str());
        EngineError::Status {
            socket: self.socket.clone(),
            path: path.into(),
            status: r.status,
            message: message.unwrap_or(text.trim()).chars().take(200).collect(),
        }
    }
}

/// Percent-encodes `s` for use inside a request path or query value: ASCII letters, digits
/// and `-._~` stay, and so do `/`, `:` and `@` (image references such as
/// `registry:5000/team/app:1.0@sha256:…` are addressed by their plain name); every other byte
/// (space, `%`, `?`, `#`, `&`, `=`, control characters, non-ASCII) becomes `%XX`.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A request path must start with `/` and hold no whitespace or control characters (it goes
/// into the request line verbatim).
fn check_path(path: &str) -> Result<(), String> {
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

/// Parses a whole HTTP/1.x response from `buf`, as read so far from the engine's socket.
///
/// Returns `Ok(Some(response))` once it is complete (body delimited by `Content-Length`, by
/// `Transfer-Encoding: chunked`, which is decoded, or by the end of the connection),
/// `Ok(None)` while more is needed and may come (`eof` false), and `Err(reason)` for a
/// malformed answer or one cut short by `eof`. Never panics, whatever `buf` holds (fuzzed:
/// `fuzz/fuzz_targets/engine_response.rs`).
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Option<Response>, String> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return if eof {
            Err("connection closed before the end of the headers".into())
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "headers are not UTF-8")?;
    let (status, headers) = parse_head(head)?;
    let mut r = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &buf[end + 4..];
    let last_coding = r
        .header("transfer-encoding")
        .map(|v| v.rsplit(',').next().unwrap_or("").trim());
    if last_coding.is_some_and(|c| c.eq_ignore_ascii_case("chunked")) {
        // The last chunk and trailers end in an empty line: only then is decoding worth a try.
        if !eof && !rest.ends_with(b"\r\n\r\n") {
            return Ok(None);
        }
        match dechunk(rest)? {
            Some(body) => r.body = body,
            None if eof => return Err("connection closed inside the chunked body".into()),
            None => return Ok(None),
        }
    } else if let Some(len) = r.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad Content-Length {len:?}"))?;
        match rest.get(..len) {
            Some(body) => r.body = body.to_vec(),
            None if eof => return Err(format!("connection closed inside the {len}-byte body")),
            None => return Ok(None),
        }
    } else if eof {
        r.body = rest.to_vec();
    } else {
        return Ok(None);
    }
    Ok(Some(r))
}

/// Decodes a chunked body; `Ok(None)` when it is incomplete.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = find(rest, b"\r\n") else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&rest[..eol]);
        let hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(hex, 16)
            .ok()
            .filter(|&s| s <= MAX_RESPONSE && !hex.starts_with('+'))
            .ok_or_else(|| format!("bad chunk size line {line:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            // Trailers, up to an empty line.
            while let Some(eol) = find(rest, b"\r\n") {
                if eol == 0 {
                    return Ok(Some(body));
                }
                rest = &rest[eol + 2..];
            }
            return Ok(None);
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        if &rest[size..size + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF".into());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// Parses the status line and headers (without the final empty line).
fn parse_head(head: &str) -> Result<(u16, Vec<(String, String)>), String> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    let status = code.parse().ok().filter(|_| {
        code.len() == 3
            && code.bytes().all(|b| b.is_ascii_digit())
            && version.starts_with("HTTP/1.")
    });
    let status = status.ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers = lines
        .map(|l| match l.split_once(':') {
            Some((n, v)) if !n.trim().is_empty() => {
                Ok((n.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(format!("bad header line {l:?}")),
        })
        .collect::<Result<_, _>>()?;
    Ok((status, headers))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;

    /// What the fake engine does after reading a request: `Some((text, false))` writes and
    /// hangs up; `Some((text, true))` trickles it 3 bytes at a time and stays open; `None`
    /// says nothing. It holds the connection until the client hangs up, unless it hung up.
    type Reply = Option<(String, bool)>;

    fn close(text: &str) -> Reply {
        Some((text.into(), false))
    }

    /// A fake engine in a fresh tempdir answering one connection per reply; the thread returns
    /// the requests it read.
    fn serve(replies: Vec<Reply>) -> (tempfile::TempDir, Engine, thread::JoinHandle<Vec<String>>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server =
            thread::spawn(move || replies.into_iter().map(|r| answer(&listener, r)).collect());
        (dir, Engine::new(path, Duration::from_secs(5)), server)
    }

    fn answer(listener: &UnixListener, reply: Reply) -> String {
        let (mut s, _) = listener.accept().unwrap();
        let (mut request, mut byte) = (Vec::new(), [0u8; 1]);
        while !request.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap() == 1 {
            request.push(byte[0]);
        }
        match reply {
            Some((text, false)) => s.write_all(text.as_bytes()).unwrap(),
            Some((text, true)) => {
                for piece in text.as_bytes().chunks(3) {
                    s.write_all(piece).unwrap();
                    thread::sleep(Duration::from_micros(300));
                }
                io::copy(&mut s, &mut io::sink()).unwrap();
            }
            None => drop(io::copy(&mut s, &mut io::sink())),
        }
        String::from_utf8(request).unwrap()
    }

    #[test]
    fn ping_ok_sends_an_http10_get() {
        let (_dir, engine, server) = serve(vec![close(
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK",
        )]);
        engine.ping().unwrap();
        let expected = "GET /_ping HTTP/1.0\r\nHost: docker\r\nUser-Agent: docker-userns\r\n\r\n";
        assert_eq!(server.join().unwrap(), [expected]);
    }

    #[test]
    fn ping_with_another_body_or_status_fails() {
        let (_dir, engine, _server) = serve(vec![
            close("HTTP/1.1 200 OK\r\n\r\nnope"),
            close("HTTP/1.1 503 No\r\n\r\n"),
        ]);
        let err = engine.ping().unwrap_err();
        assert!(
            matches!(err, EngineError::Malformed { .. }) && err.to_string().contains("nope"),
            "{err}"
        );
        assert!(matches!(
            engine.ping(),
            Err(EngineError::Status { status: 503, .. })
        ));
    }

    #[test]
    fn the_image_store_is_named_from_driver_and_driver_status() {
        // As docker 29.7.2 answers, fresh (containerd store) and remapped (overlay2).
        let c8d: Info = serde_json::from_str(
            r#"{"Driver":"overlayfs","DriverStatus":[["driver-type","io.containerd.snapshotter.v1"]]}"#,
        )
        .unwrap();
        assert_eq!(
            c8d.image_store().as_deref(),
            Some("containerd (overlayfs snapshotter)")
        );
        let graph: Info = serde_json::from_str(
            r#"{"Driver":"overlay2","DriverStatus":[["Backing Filesystem","extfs"],["Supports d_type","true"]]}"#,
        )
        .unwrap();
        assert_eq!(graph.image_store().as_deref(), Some("overlay2"));
        let old: Info = serde_json::from_str(r#"{"Driver":"","DriverStatus":null}"#).unwrap();
        assert_eq!(old.image_store(), None);
    }

    #[test]
    fn info_parses_and_detects_userns() {
        let on = r#"{"ServerVersion":"27.3.1","DockerRootDir":"/var/lib/docker/100000.100000","ContainersRunning":3,
            "SecurityOptions":["name=apparmor","name=seccomp,profile=builtin","name=userns","name=cgroupns"]}"#;
        let off = r#"{"ServerVersion":"20.10.24","SecurityOptions":null,"Containers":9}"#;
        let ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n";
        let (_dir, engine, _server) = serve(vec![
            close(&format!("{ok}{on}")),
            close(&format!("{ok}{off}")),
        ]);
        let info = engine.info().unwrap();
        assert_eq!(
            (info.server_version.as_str(), info.containers_running),
            ("27.3.1", 3)
        );
        assert_eq!(info.docker_root_dir, "/var/lib/docker/100000.100000");
        assert!(info.userns());
        let info = engine.info().unwrap();
        assert_eq!(
            info,
            Info {
                server_version: "20.10.24".into(),
                ..Info::default()
            }
        );
        assert!(!info.userns());
        let with = |o: &str| Info {
            security_options: vec!["name=seccomp,profile=default".into(), o.into()],
            ..info.clone()
        };
        for yes in ["name=userns", "name=userns,foo=bar", "userns"] {
            assert!(with(yes).userns(), "{yes}");
        }
        for no in ["name=usernsx", "name=rootless", "name=seccomp,userns"] {
            assert!(!with(no).userns(), "{no}");
        }
    }

    #[test]
    fn chunked_body_is_decoded_without_waiting_for_close() {
        let json = r#"[{"Id":"0123456789abcdef0123","Names":["/web"],"Image":"nginx","State":"running"},
            {"Id":"fedcba9876543210fedc","Names":null,"Image":"redis","State":"running"}]"#;
        let mut text = String::from("HTTP/1.1 200 OK\r\nTRANSFER-ENCODING: chunked\r\n\r\n");
        for piece in json.as_bytes().chunks(37) {
            text += &format!(
                "{:X};ext=1\r\n{}\r\n",
                piece.len(),
                std::str::from_utf8(piece).unwrap()
            );
        }
        let (_dir, engine, _server) = serve(vec![Some((text + "0\r\nX-Trailer: t\r\n\r\n", true))]);
        let containers = engine.running_containers().unwrap();
        let names: Vec<&str> = containers.iter().map(Container::name).collect();
        assert_eq!(names, ["web", "fedcba987654"]);
        assert_eq!(
            (containers[1].image.as_str(), containers[1].state.as_str()),
            ("redis", "running")
        );
    }

    #[test]
    fn content_length_is_honoured_without_waiting_for_close() {
        let text =
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 7\r\n\r\n{\"a\":1}junk";
        let (_dir, engine, _server) = serve(vec![Some((text.into(), true))]);
        let r = engine.get("/version").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{\"a\":1}"[..]));
        assert_eq!(r.header("Content-Type"), Some("text/plain"));
    }

    #[test]
    fn http_error_carries_status_and_message() {
        let text = "HTTP/1.1 500 Internal Server Error\r\n\r\n{\"message\":\"boom\"}\n";
        let (dir, engine, _server) =
            serve(vec![close(text), close("HTTP/1.1 200 OK\r\n\r\n{\"Id\":")]);
        let err = engine.get_json("/info").unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, EngineError::Status { status: 500, message, .. } if message == "boom"),
            "{msg}"
        );
        assert!(
            msg.contains("500")
                && msg.contains(&dir.path().join("docker.sock").display().to_string()),
            "{msg}"
        );
        assert!(matches!(engine.info(), Err(EngineError::Json { .. })));
    }

    #[test]
    fn malformed_answers_are_errors() {
        let replies = [
            "garbage\r\n\r\n",
            "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
        ];
        let (_dir, engine, _server) = serve(replies.iter().map(|r| close(r)).collect());
        for reply in replies {
            let err = engine.get("/info").unwrap_err();
            assert!(
                matches!(err, EngineError::Malformed { .. }),
                "{reply:?}: {err}"
            );
        }
    }

    #[test]
    fn missing_socket_is_a_connect_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.sock");
        let err = Engine::new(&path, Duration::from_secs(1))
            .ping()
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, EngineError::Connect { .. }), "{msg}");
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains("is docker running?"),
            "{msg}"
        );
    }

    #[test]
    fn silent_engine_times_out() {
        let (_dir, engine, _server) = serve(vec![None]);
        let engine = Engine::new(engine.socket(), Duration::from_millis(200));
        let started = Instant::now();
        let err = engine.ping().unwrap_err();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(190) && took < Duration::from_secs(1),
            "{took:?}"
        );
        assert!(
            matches!(&err, EngineError::Io { source, .. } if source.kind() == io::ErrorKind::TimedOut),
            "{err}"
        );
        assert!(err.to_string().contains("200ms"), "{err}");
    }

    #[test]
    fn wait_ping_succeeds_once_the_engine_starts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let late = path.clone();
        let server = thread::spawn(move || {
            thread::sleep(Duration::from_millis(150));
            answer(
                &UnixListener::bind(&late).unwrap(),
                close("HTTP/1.1 200 OK\r\n\r\nOK"),
            )
        });
        let engine = Engine::new(&path, Duration::from_secs(1));
        let took = engine
            .wait_ping(Instant::now() + Duration::from_secs(5))
            .unwrap();
        assert!(
            took >= Duration::from_millis(100) && took < Duration::from_secs(4),
            "{took:?}"
        );
        assert!(server.join().unwrap().starts_with("GET /_ping "));
    }

    #[test]
    fn names_in_paths_are_percent_encoded() {
        assert_eq!(encode("a b"), "a%20b");
        assert_eq!(
            encode("registry:5000/team/app:1.0@sha256:ab"),
            "registry:5000/team/app:1.0@sha256:ab"
        );
        assert_eq!(encode("x?y#z&w=%\n\u{e9}"), "x%3Fy%23z%26w%3D%25%0A%C3%A9");
    }

    #[test]
    fn a_bad_path_is_an_error_not_a_panic_and_nothing_is_sent() {
        // No listener at all: a request that got as far as connecting would be a Connect error.
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(dir.path().join("none.sock"), Duration::from_secs(1));
        for path in ["/images/a b/json", "/x\r\nHost: evil", "/\t", "info", ""] {
            let err = engine.get(path).unwrap_err();
            assert!(
                matches!(err, EngineError::Request { .. }),
                "{path:?}: {err}"
            );
            assert!(err.to_string().contains("invalid request"), "{err}");
        }
        assert!(matches!(
            engine.post_json("/a b", None),
            Err(EngineError::Request { .. })
        ));
        assert!(matches!(
            engine.delete("/a\u{0}b"),
            Err(EngineError::Request { .. })
        ));
    }

    #[test]
    fn a_huge_timeout_does_not_overflow_the_clock() {
        let (_dir, engine, _server) = serve(vec![close("HTTP/1.1 200 OK\r\n\r\nOK")]);
        let engine = Engine::new(engine.socket(), Duration::MAX);
        engine.ping().unwrap();
    }

    #[test]
    fn parse_response_never_panics_on_odd_input() {
        let odd: &[&[u8]] = &[
            b"",
            b"\r\n\r\n",
            b"HTTP/1.1 +12 x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: ,\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\xff: x\r\n\r\n",
        ];
        for buf in odd {
            for eof in [false, true] {
                let _ = parse_response(buf, eof);
            }
        }
        assert!(parse_response(b"HTTP/1.1 +12 x\r\n\r\n", true).is_err());
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.body, b"hi");
    }

    #[test]
    fn wait_ping_gives_up_at_the_deadline_with_the_last_error() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(dir.path().join("nope.sock"), Duration::from_secs(1));
        let started = Instant::now();
        let err = engine
            .wait_ping(started + Duration::from_millis(100))
            .unwrap_err();
        assert!(matches!(err, EngineError::Connect { .. }), "{err}");
        assert!(
            (100..1000).contains(&started.elapsed().as_millis()),
            "{:?}",
            started.elapsed()
        );
    }

    /// A writer whose disk is full.
    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(libc::ENOSPC))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_disk_under_a_download_is_not_blamed_on_the_engine() {
        let (_dir, engine, _server) = serve(vec![close("HTTP/1.1 200 OK\r\n\r\ntar bytes")]);
        let err = engine
            .download(
                "/images/get?names=x",
                &mut Full,
                Duration::from_secs(5),
                &mut |_| {},
            )
            .unwrap_err();
        assert!(
            matches!(&err, EngineError::Local { source, .. } if source.kind() == io::ErrorKind::StorageFull),
            "{err:?}"
        );
        assert!(!err.to_string().contains("talking to"), "{err}");
    }
}
