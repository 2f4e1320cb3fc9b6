//! `verify`: prove remapping is in effect by running the workshop's checks for real with a
//! local image (never pulled), through the Engine API.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::exit::Conflict;
use crate::host::engine::{ContainerCreate, Engine, HostConfigCreate, Info};
use crate::host::root::Root;
use crate::host::setup;
use crate::host::systemd::{LoadState, Systemd};
use crate::run::note::Note;
use crate::run::restart::SERVICE;

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Check {
    /// What is checked.
    pub(crate) name: &'static str,
    /// Passed.
    pub(crate) ok: bool,
    /// What was seen.
    pub(crate) detail: String,
}

/// The result of `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Verification {
    /// Every check passed: remapping is in effect.
    pub(crate) effective: bool,
    /// The image used for the container checks (null: none available; only /info checked).
    pub(crate) image: Option<String>,
    /// The checks, in order.
    pub(crate) checks: Vec<Check>,
    /// Remarks.
    pub(crate) notes: Vec<Note>,
    /// The remap user the configured `userns-remap` value resolves to (as dockerd resolves
    /// it; null: not set).
    pub(crate) remap_user: Option<String>,
    /// The group it resolves to.
    pub(crate) remap_group: Option<String>,
}

/// The engine to verify, where docker listens ([`setup`]). A docker.service that is not
/// running is not started through its socket: verify says so and changes nothing.
pub(crate) fn engine(root: &Root) -> Result<Engine> {
    let sd = Systemd::connect().ok();
    let found = setup::read(root, sd.as_ref())?;
    if let Some(u) = sd.as_ref().and_then(|sd| sd.unit_state(SERVICE).ok())
        && u.load_state == LoadState::Loaded
        && !u.is_running()
    {
        return Err(Conflict::new(format!(
            "docker.service is {}/{}: verify does not start it (a connection to its socket would): start docker (`systemctl start docker`) and run verify again",
            u.active_state, u.sub_state
        ))
        .kind("docker-not-running")
        .into());
    }
    let socket = found.engine_socket.ok_or_else(|| {
        Conflict::new(found.engine_problem.unwrap_or_default()).kind("engine-unreachable")
    })?;
    Ok(Engine::new(socket, Duration::from_secs(30)))
}

/// Images tried, in order, when `--image` is not given.
pub(crate) const DEFAULT_IMAGES: &[&str] = &["busybox", "alpine", "debian"];

/// Splits docker's multiplexed log stream (8-byte frame headers) into its text.
pub(crate) fn demux(raw: &[u8]) -> String {
    let mut out = Vec::new();
    let mut rest = raw;
    while rest.len() >= 8 && rest[0] <= 2 && rest[1..4] == [0, 0, 0] {
        let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let end = (8 + len).min(rest.len());
        out.extend_from_slice(&rest[8..end]);
        rest = &rest[end..];
    }
    if out.is_empty() && !raw.is_empty() && rest.len() == raw.len() {
        return String::from_utf8_lossy(raw).into_owned();
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A throwaway container, removed when dropped.
struct Probe<'a> {
    engine: &'a Engine,
    id: String,
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        let _ = self.engine.remove_container(&self.id);
    }
}

fn create<'a>(
    engine: &'a Engine,
    image: &str,
    cmd: &[&str],
    host_config: HostConfigCreate,
) -> Result<Probe<'a>> {
    let mut labels = serde_json::Map::new();
    labels.insert("docker-userns.verify".into(), "1".into());
    let body = ContainerCreate {
        image: image.to_string(),
        cmd: cmd.iter().map(|c| c.to_string()).collect(),
        network_disabled: true,
        labels,
        host_config,
    };
    let id = engine.create_container(&body)?;
    Ok(Probe { engine, id })
}

/// Runs `cmd` to completion; returns its exit code and output.
fn run(
    engine: &Engine,
    image: &str,
    cmd: &[&str],
    host_config: HostConfigCreate,
) -> Result<(i64, String)> {
    let p = create(engine, image, cmd, host_config)?;
    engine.start_container(&p.id)?;
    let code = engine.wait_container(&p.id, Duration::from_secs(60))?;
    let logs = engine.container_logs(&p.id, Duration::from_secs(10))?;
    Ok((code, demux(&logs)))
}

/// Finds a usable local image: `requested` if given (must exist), else the first of
/// [`DEFAULT_IMAGES`] present under any tag.
pub(crate) fn find_image(engine: &Engine, requested: Option<&str>) -> Result<Option<String>> {
    if let Some(img) = requested {
        return match engine.inspect_image(img) {
            Ok(_) => Ok(Some(img.to_string())),
            Err(e) => bail!(
                "image {img} is not available locally ({e}); verify never pulls: load or import it first"
            ),
        };
    }
    let tags = crate::host::inspect::images(engine)?;
    Ok(DEFAULT_IMAGES.iter().find_map(|want| {
        tags.iter()
            .find(|t| {
                t.rsplit_once(':')
                    .map_or(t.as_str(), |(r, _)| r)
                    .rsplit('/')
                    .next()
                    == Some(want)
            })
            .cloned()
    }))
}

fn check(name: &'static str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name,
        ok,
        detail: detail.into(),
    }
}

/// Runs the checks. `ranges` are the remap user's subuid/subgid starts when known.
pub(crate) fn verify(
    engine: &Engine,
    image: Option<&str>,
    ranges: Option<(u64, u64)>,
    scratch: &std::path::Path,
) -> Result<Verification> {
    let info = engine.info()?;
    let (mut checks, mut notes) = info_checks(&info, ranges);
    let image = find_image(engine, image)?;
    let Some(img) = image.clone() else {
        notes.push(Note::VerifyNoImage {
            looked_for: DEFAULT_IMAGES.iter().map(|i| i.to_string()).collect(),
        });
        return Ok(Verification {
            remap_user: None,
            remap_group: None,
            effective: false,
            image: None,
            checks,
            notes,
        });
    };
    checks.extend(container_checks(engine, &img, ranges, scratch)?);
    Ok(Verification {
        remap_user: None,
        remap_group: None,
        effective: checks.iter().all(|c| c.ok),
        image,
        checks,
        notes,
    })
}

/// What `/info` alone tells: user namespaces on, the remapped data root; and the swarm notes.
fn info_checks(info: &Info, ranges: Option<(u64, u64)>) -> (Vec<Check>, Vec<Note>) {
    let mut notes = Vec::new();
    if info.swarm.member() {
        notes.push(Note::VerifySwarmMember {
            state: info.swarm.local_node_state.to_string(),
        });
    }
    notes.extend(
        crate::host::setup::swarm_left_behind(info)
            .map(|state_file| Note::SwarmLeftBehind { state_file }),
    );
    let mut checks = vec![check(
        "the engine reports user namespaces",
        info.userns(),
        format!("SecurityOptions {:?}", info.security_options),
    )];
    let expected_root = ranges.map(|(u, g)| format!("/{u}.{g}"));
    checks.push(match &expected_root {
        Some(suffix) => check(
            "the data root is the remapped one",
            info.docker_root_dir.ends_with(suffix.as_str()),
            format!(
                "DockerRootDir {} (expected …{suffix})",
                info.docker_root_dir
            ),
        ),
        None => check(
            "the data root is the remapped one",
            false,
            format!(
                "DockerRootDir {}; no remap user ranges found",
                info.docker_root_dir
            ),
        ),
    });
    (checks, notes)
}

/// The checks with containers of `img`: root inside and on the host, a root-owned bind mount,
/// `--privileged`.
fn container_checks(
    engine: &Engine,
    img: &str,
    ranges: Option<(u64, u64)>,
    scratch: &std::path::Path,
) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    // 1. Root inside is still uid 0.
    let (code, out) = run(engine, img, &["id", "-u"], HostConfigCreate::default())?;
    checks.push(check(
        "root inside the container is uid 0",
        code == 0 && out.trim() == "0",
        format!("`id -u` printed {:?} (exit {code})", out.trim()),
    ));

    // 2. On the host, that root is the range start.
    let sleeper = create(engine, img, &["sleep", "30"], HostConfigCreate::default())?;
    engine.start_container(&sleeper.id)?;
    let pid = engine.inspect_container(&sleeper.id)?.state.pid;
    let host_uid = std::fs::metadata(format!("/proc/{pid}"))
        .map(|m| m.uid())
        .ok();
    let want = ranges.map(|(u, _)| u);
    checks.push(check(
        "the container's root is the range start on the host",
        host_uid.is_some() && host_uid.map(u64::from) == want,
        format!(
            "process {pid} runs as host uid {} (expected {})",
            host_uid.map_or("?".into(), |u| u.to_string()),
            want.map_or("?".into(), |u| u.to_string())
        ),
    ));
    drop(sleeper);

    // 3. A root-owned host directory, bind-mounted, is not writable.
    let dir = tempfile::Builder::new()
        .prefix("verify.")
        .tempdir_in(scratch)
        .context("cannot create a scratch directory")?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let bind = format!("{}:/probe", dir.path().display());
    let (code, out) = run(
        engine,
        img,
        &["touch", "/probe/written"],
        HostConfigCreate {
            binds: vec![bind],
            ..HostConfigCreate::default()
        },
    )?;
    let written = dir.path().join("written").exists();
    checks.push(check(
        "a root-owned host directory is not writable from the container",
        code != 0 && !written,
        format!(
            "`touch` exited {code}{}: {}",
            if written { " and the file exists" } else { "" },
            out.trim()
        ),
    ));

    // 4. --privileged is refused.
    let privileged = HostConfigCreate {
        privileged: true,
        ..HostConfigCreate::default()
    };
    let refused = match create(engine, img, &["true"], privileged) {
        Ok(p) => match engine.start_container(&p.id) {
            Ok(_) => Err("a privileged container was created and started".to_string()),
            Err(e) => Ok(e.to_string()),
        },
        Err(e) => Ok(e.to_string()),
    };
    checks.push(match refused {
        Ok(msg) => check(
            "--privileged is refused",
            msg.contains("privileged mode is incompatible with user namespaces"),
            msg,
        ),
        Err(msg) => check("--privileged is refused", false, msg),
    });
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requested_image_name_is_percent_encoded_not_a_panic() {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let (mut req, mut b) = (Vec::new(), [0u8; 1]);
            while !req.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap() == 1 {
                req.push(b[0]);
            }
            s.write_all(b"HTTP/1.1 404 Not Found\r\n\r\n{\"message\":\"No such image\"}")
                .unwrap();
            String::from_utf8(req).unwrap()
        });
        let engine = Engine::new(&path, Duration::from_secs(5));
        let err = find_image(&engine, Some("a b")).unwrap_err().to_string();
        assert!(
            err.contains("image a b is not available locally") && err.contains("No such image"),
            "{err}"
        );
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /images/a%20b/json HTTP/1.0\r\n"),
            "{request}"
        );
    }

    #[test]
    fn demultiplexes_log_frames() {
        let mut raw = vec![1, 0, 0, 0, 0, 0, 0, 2];
        raw.extend_from_slice(b"0\n");
        raw.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 3]);
        raw.extend_from_slice(b"err");
        assert_eq!(demux(&raw), "0\nerr");
        assert_eq!(demux(b"plain tty output"), "plain tty output");
    }
}
