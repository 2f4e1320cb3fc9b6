//! The endpoints of the Engine API this tool calls, typed: each method builds its URL (names
//! percent-encoded here, never by a caller), sends through the one exchange and reads the
//! answer into [`super::models`].

use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use super::models::{Created, LoadMessage, VolumeCreate, VolumeList, Waited};
use super::{
    Container, ContainerCreate, ContainerInspect, Engine, EngineError, ImageInspect, ImageSummary,
    Info, Version, Volume,
};

/// How often [`Engine::wait_ping`] retries.
const PING_INTERVAL: Duration = Duration::from_millis(20);

/// No JSON body.
const NO_BODY: Option<&Value> = None;

/// Percent-encodes `s` for use inside a request path or query value: ASCII letters, digits
/// and `-._~` stay, and so do `/`, `:` and `@` (image references such as
/// `registry:5000/team/app:1.0@sha256:…` are addressed by their plain name); every other byte
/// (space, `%`, `?`, `#`, `&`, `=`, control characters, non-ASCII) becomes `%XX`.
pub(crate) fn encode(s: &str) -> String {
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

impl Engine {
    fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, EngineError> {
        self.json("GET", path, NO_BODY, self.timeout)
    }

    /// `GET /_ping`: Ok when the engine answers 200 `OK`.
    pub(crate) fn ping(&self) -> Result<(), EngineError> {
        self.ping_within(self.timeout)
    }

    /// Pings every 20 ms until the engine answers or `deadline` passes; returns how long it
    /// took, or the last error. Each ping's timeout is cut to the time left.
    pub(crate) fn wait_ping(&self, deadline: Instant) -> Result<Duration, EngineError> {
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
        let r = self.request("GET", "/_ping", NO_BODY, timeout)?;
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

    /// `GET /info`.
    pub(crate) fn info(&self) -> Result<Info, EngineError> {
        self.get("/info")
    }

    /// `GET /version`.
    pub(crate) fn version(&self) -> Result<Version, EngineError> {
        self.get("/version")
    }

    /// `GET /containers/json`: the running containers.
    pub(crate) fn running_containers(&self) -> Result<Vec<Container>, EngineError> {
        self.get("/containers/json")
    }

    /// `GET /containers/json?all=1`: every container, running or not.
    pub(crate) fn all_containers(&self) -> Result<Vec<Container>, EngineError> {
        self.get("/containers/json?all=1")
    }

    /// `GET /containers/{id}/json`.
    pub(crate) fn inspect_container(&self, id: &str) -> Result<ContainerInspect, EngineError> {
        self.get(&format!("/containers/{}/json", encode(id)))
    }

    /// `POST /containers/create`; returns the new container's id.
    pub(crate) fn create_container(&self, config: &ContainerCreate) -> Result<String, EngineError> {
        let path = "/containers/create";
        let created: Created = self.json("POST", path, Some(config), self.timeout)?;
        if created.id.is_empty() {
            return Err(self.malformed(format!("POST {path} answered no Id")));
        }
        Ok(created.id)
    }

    /// `POST /containers/{id}/start`; one that runs already (304) counts as started.
    pub(crate) fn start_container(&self, id: &str) -> Result<(), EngineError> {
        let path = format!("/containers/{}/start", encode(id));
        let r = self.request("POST", &path, NO_BODY, self.timeout)?;
        match r.status {
            204 | 304 => Ok(()),
            _ => Err(self.status_error(&format!("POST {path}"), &r)),
        }
    }

    /// `POST /containers/{id}/stop?t=GRACE`: SIGTERM, then SIGKILL after `grace`. A container
    /// that is already stopped (304) counts as stopped.
    pub(crate) fn stop_container(&self, id: &str, grace: Duration) -> Result<(), EngineError> {
        let path = format!("/containers/{}/stop?t={}", encode(id), grace.as_secs());
        let r = self.request("POST", &path, NO_BODY, self.timeout + grace)?;
        match r.status {
            204 | 304 => Ok(()),
            _ => Err(self.status_error(&format!("POST {path}"), &r)),
        }
    }

    /// `POST /containers/{id}/wait`, within `timeout`: the container's exit code (-1 when the
    /// engine names none).
    pub(crate) fn wait_container(&self, id: &str, timeout: Duration) -> Result<i64, EngineError> {
        let path = format!("/containers/{}/wait", encode(id));
        let w: Waited = self.json("POST", &path, NO_BODY, timeout)?;
        Ok(w.status_code)
    }

    /// `GET /containers/{id}/logs?stdout=1&stderr=1`, within `timeout`: the raw stream
    /// (multiplexed unless the container has a tty).
    pub(crate) fn container_logs(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<Vec<u8>, EngineError> {
        let path = format!("/containers/{}/logs?stdout=1&stderr=1", encode(id));
        let r = self.request("GET", &path, NO_BODY, timeout)?;
        if !r.success() {
            return Err(self.status_error(&format!("GET {path}"), &r));
        }
        Ok(r.body)
    }

    /// `DELETE /containers/{id}?force=1&v=1`: removes it, running or not, with its anonymous
    /// volumes.
    pub(crate) fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        let path = format!("/containers/{}?force=1&v=1", encode(id));
        self.json::<IgnoredAny>("DELETE", &path, NO_BODY, self.timeout)
            .map(drop)
    }

    /// `GET /images/json`.
    pub(crate) fn images(&self) -> Result<Vec<ImageSummary>, EngineError> {
        self.get("/images/json")
    }

    /// `GET /images/json?manifests=1`: with each image's manifests (the containerd store of
    /// docker 28 and later; other engines list none).
    pub(crate) fn images_with_manifests(&self) -> Result<Vec<ImageSummary>, EngineError> {
        self.get("/images/json?manifests=1")
    }

    /// `GET /images/{name}/json` (a 404, [`EngineError::not_found`], when there is none).
    pub(crate) fn inspect_image(&self, name: &str) -> Result<ImageInspect, EngineError> {
        self.get(&format!("/images/{}/json", encode(name)))
    }

    /// `GET /images/get?names=NAME[&platform=P]`: the image's tar streamed into `out`
    /// (gigabytes, so `idle` bounds each read, not the whole transfer; `progress` gets the
    /// bytes written so far). Returns the bytes written.
    pub(crate) fn export_image(
        &self,
        name: &str,
        platform: Option<&Value>,
        out: &mut dyn Write,
        idle: Duration,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, EngineError> {
        let mut path = format!("/images/get?names={}", encode(name));
        if let Some(p) = platform {
            path.push_str(&format!("&platform={}", encode(&p.to_string())));
        }
        self.download(&path, out, idle, progress)
    }

    /// `POST /images/load?quiet=1` with `len` bytes of a tar streamed from `from` (`idle`
    /// bounds each write and read; `progress` gets the bytes sent so far). Returns the
    /// messages of its answer; one that reports an error has [`LoadMessage::error`] set.
    pub(crate) fn load_images(
        &self,
        from: &mut dyn Read,
        len: u64,
        idle: Duration,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Vec<LoadMessage>, EngineError> {
        let path = "/images/load?quiet=1";
        let r = self.upload(path, "application/x-tar", from, len, idle, progress)?;
        if !r.success() {
            return Err(self.status_error(&format!("POST {path}"), &r));
        }
        // A stream of JSON messages, one a line; what is not one is not a message.
        let text = String::from_utf8_lossy(&r.body);
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    /// `POST /images/{id}/tag?repo=REPO&tag=TAG`.
    pub(crate) fn tag_image(&self, id: &str, repo: &str, tag: &str) -> Result<(), EngineError> {
        let path = format!(
            "/images/{}/tag?repo={}&tag={}",
            encode(id),
            encode(repo),
            encode(tag)
        );
        self.json::<IgnoredAny>("POST", &path, NO_BODY, self.timeout)
            .map(drop)
    }

    /// `GET /volumes`: every volume.
    pub(crate) fn volumes(&self) -> Result<Vec<Volume>, EngineError> {
        Ok(self.get::<VolumeList>("/volumes")?.volumes)
    }

    /// `GET /volumes/{name}` (a 404, [`EngineError::not_found`], when there is none).
    pub(crate) fn inspect_volume(&self, name: &str) -> Result<Volume, EngineError> {
        self.get(&format!("/volumes/{}", encode(name)))
    }

    /// `POST /volumes/create`: a volume `name` of `driver` with `labels`.
    pub(crate) fn create_volume(
        &self,
        name: &str,
        driver: &str,
        labels: &Map<String, Value>,
    ) -> Result<Volume, EngineError> {
        let body = VolumeCreate {
            name,
            driver,
            labels,
        };
        self.json("POST", "/volumes/create", Some(&body), self.timeout)
    }
}
