//! How docker is set up on this host, as far as a switch cares: where its engine listens (and
//! whether docker.socket starts it), its data root and where that is set, live-restore, and
//! swarm membership. Decided from dockerd's flags, daemon.json and docker.socket; the engine's
//! own `/info` adds what only it knows.

use anyhow::Result;
use serde::Serialize;

use crate::formats::daemon_config::{self, DaemonConfig};
use crate::host::docker_unit::{self, UnitScan};
use crate::host::engine::Info;
use crate::host::root::Root;
use crate::host::systemd::Systemd;

/// Where dockerd listens without `-H` or `hosts` (/var/run is a link to /run).
pub const DEFAULT_SOCKET: &str = "/run/docker.sock";
/// docker's data root without `--data-root` or `data-root`.
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/docker";
/// The socket unit that starts docker.service on first connection.
pub const SOCKET_UNIT: &str = "docker.socket";

/// An address dockerd listens on (`-H`/`--host`, or daemon.json `hosts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A unix socket at this path.
    Unix(String),
    /// `fd://`: the sockets systemd passes (docker.socket's).
    Fd,
    /// Anything else (`tcp://`, `ssh://`, a bare address, which dockerd reads as TCP).
    Other(String),
}

/// Reads one address as dockerd does: `unix://` with an empty path is the default socket, an
/// empty address too; without a scheme it is a TCP address.
pub fn parse_listen(addr: &str) -> Listen {
    let a = addr.trim();
    if a.is_empty() {
        return Listen::Unix(DEFAULT_SOCKET.into());
    }
    if let Some(path) = a.strip_prefix("unix://") {
        return Listen::Unix(if path.is_empty() {
            DEFAULT_SOCKET.into()
        } else {
            path.into()
        });
    }
    if a == "fd://" || a.starts_with("fd://") {
        return Listen::Fd;
    }
    Listen::Other(a.into())
}

/// A path and where it was set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    /// The path.
    pub path: String,
    /// Where it was set, for messages (`"data-root" in /etc/docker/daemon.json`, ...).
    pub from: String,
}

/// The unix socket to reach the engine on: dockerd's `-H` flags, else daemon.json's `hosts`,
/// else the default; `fd://` means docker.socket's first unix `ListenStream` (`listen`: its
/// Listen addresses, None when not known). Err: dockerd listens on no unix socket this tool can
/// use, with what to do.
pub fn engine_socket(
    unit: &UnitScan,
    config: Option<&DaemonConfig>,
    listen: Option<&[(String, String)]>,
) -> Result<Found, String> {
    let flags = unit.flag_values(&["-H", "--host"]);
    let hosts: Vec<(String, String)> = if !flags.is_empty() {
        flags
            .into_iter()
            .map(|(v, o)| (v.clone(), format!("-H {v} at {o}")))
            .collect()
    } else {
        config
            .map(DaemonConfig::hosts)
            .unwrap_or_default()
            .into_iter()
            .map(|v| {
                (
                    v.clone(),
                    format!("{v:?} in \"hosts\" of {}", daemon_config::PATH),
                )
            })
            .collect()
    };
    if hosts.is_empty() {
        return Ok(Found {
            path: DEFAULT_SOCKET.into(),
            from: "dockerd's default (no -H, no \"hosts\")".into(),
        });
    }
    let mut unusable = Vec::new();
    for (addr, from) in &hosts {
        match parse_listen(addr) {
            Listen::Unix(path) => {
                return Ok(Found {
                    path,
                    from: from.clone(),
                });
            }
            Listen::Fd => match listen {
                Some(l) => {
                    if let Some((_, path)) = l
                        .iter()
                        .find(|(kind, a)| kind == "Stream" && a.starts_with('/'))
                    {
                        return Ok(Found {
                            path: path.clone(),
                            from: format!("{SOCKET_UNIT} ListenStream ({from})"),
                        });
                    }
                    let shown: Vec<String> = l.iter().map(|(k, a)| format!("{k} {a}")).collect();
                    unusable.push(format!(
                        "{addr} ({from}; {SOCKET_UNIT} listens on {})",
                        if shown.is_empty() {
                            "nothing".to_string()
                        } else {
                            shown.join(", ")
                        }
                    ));
                }
                None => {
                    return Ok(Found {
                        path: DEFAULT_SOCKET.into(),
                        from: format!(
                            "{from}; {SOCKET_UNIT}'s addresses not known, its default assumed"
                        ),
                    });
                }
            },
            Listen::Other(a) => unusable.push(format!("{a} ({from})")),
        }
    }
    Err(format!(
        "docker's engine listens on no local unix socket: {}; this tool talks to the engine over a unix socket only: add one (e.g. `-H unix:///run/docker.sock` beside the others, or in \"hosts\" of {}), restart docker, and run this again",
        unusable.join(", "),
        daemon_config::PATH
    ))
}

/// docker's data root as the files set it: daemon.json's `data-root` (or the old `graph`),
/// else `--data-root` (or `--graph`/`-g`) in dockerd's effective ExecStart (its last one, as
/// dockerd reads flags), else the default.
pub fn files_data_root(unit: &UnitScan, config: Option<&DaemonConfig>) -> Found {
    let clean = |p: &str| {
        let t = p.trim_end_matches('/');
        if t.is_empty() { "/" } else { t }.to_string()
    };
    for key in ["data-root", "graph"] {
        if let Some(p) = config
            .and_then(|c| c.string(key))
            .filter(|p| p.starts_with('/'))
        {
            return Found {
                path: clean(p),
                from: format!("{key:?} in {}", daemon_config::PATH),
            };
        }
    }
    if let Some((p, o)) = unit
        .flag_values(&["--data-root", "--graph", "-g"])
        .into_iter()
        .rfind(|(p, _)| p.starts_with('/'))
    {
        return Found {
            path: clean(&p),
            from: format!("--data-root at {o}"),
        };
    }
    Found {
        path: DEFAULT_DATA_ROOT.into(),
        from: "dockerd's default".into(),
    }
}

/// The data root a running engine uses, without the `/<uid>.<gid>` directory remapping adds.
pub fn engine_data_root(info: &Info) -> Option<String> {
    let dir = info.docker_root_dir.trim_end_matches('/');
    if dir.is_empty() {
        return None;
    }
    if info.userns()
        && let Some((parent, last)) = dir.rsplit_once('/')
        && let Some((u, g)) = last.split_once('.')
        && !u.is_empty()
        && !g.is_empty()
        && u.bytes().chain(g.bytes()).all(|b| b.is_ascii_digit())
    {
        return Some(if parent.is_empty() { "/" } else { parent }.to_string());
    }
    Some(dir.to_string())
}

/// On the live host: with remapping on and no swarm, swarm state in the data root above the remapped one is what
/// the node left behind when remapping was turned on (moby#39722).
pub fn swarm_left_behind(info: &Info) -> Option<String> {
    if !info.userns() || info.swarm.member() {
        return None;
    }
    let old = engine_data_root(info)?;
    let state = format!("{old}/swarm/docker-state.json");
    std::path::Path::new(&state).exists().then(|| format!(
        "{state} is swarm state from before remapping was turned on: this node left that swarm with the switch (moby#39722); join it again, or turn remapping off to get it back"
    ))
}

/// The setup, as found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Setup {
    /// The unix socket this tool reaches the engine on (null: none it can use, see
    /// `engine_problem`).
    pub engine_socket: Option<String>,
    /// Where that socket is configured.
    pub engine_socket_from: String,
    /// Why the engine cannot be reached over a unix socket (null: it can).
    pub engine_problem: Option<String>,
    /// dockerd runs with `-H fd://` and docker.socket listens for it: the first connection to
    /// the socket starts docker.service.
    pub socket_activation: bool,
    /// docker's data root (without the remapped `/<uid>.<gid>` directory).
    pub data_root: String,
    /// Where that is set (or "the running engine").
    pub data_root_from: String,
    /// The data root the files set, when the running engine uses another one (docker uses
    /// the files' one from its next start).
    pub data_root_files: Option<String>,
    /// live-restore: the running engine's, else the files' (null: not known).
    pub live_restore: Option<bool>,
    /// The node's swarm state (`Swarm.LocalNodeState`; null: the engine was not asked).
    pub swarm: Option<String>,
    /// The node is a swarm manager (null: not asked or not in a swarm).
    pub swarm_manager: Option<bool>,
}

impl Setup {
    /// From the files and docker.socket's Listen addresses (None: not known).
    pub fn from_files(
        unit: &UnitScan,
        config: Option<&DaemonConfig>,
        listen: Option<&[(String, String)]>,
    ) -> Setup {
        let (engine_socket, engine_socket_from, engine_problem) =
            match engine_socket(unit, config, listen) {
                Ok(f) => (Some(f.path), f.from, None),
                Err(why) => (None, String::new(), Some(why)),
            };
        let fd = unit
            .flag_values(&["-H", "--host"])
            .iter()
            .any(|(v, _)| parse_listen(v) == Listen::Fd);
        let data = files_data_root(unit, config);
        let flag_live = unit
            .exec_start
            .iter()
            .skip(1)
            .any(|w| w == "--live-restore" || w == "--live-restore=true");
        Setup {
            engine_socket,
            engine_socket_from,
            engine_problem,
            socket_activation: fd && listen.is_some_and(|l| !l.is_empty()),
            data_root: data.path,
            data_root_from: data.from,
            data_root_files: None,
            live_restore: config
                .and_then(DaemonConfig::live_restore)
                .or(flag_live.then_some(true)),
            swarm: None,
            swarm_manager: None,
        }
    }

    /// Adds what the running engine says: its live-restore, swarm state and data root.
    pub fn learn(&mut self, info: &Info) {
        self.live_restore = Some(info.live_restore_enabled);
        if !info.swarm.local_node_state.is_empty() {
            self.swarm = Some(info.swarm.local_node_state.clone());
            self.swarm_manager = info.swarm.member().then_some(info.swarm.control_available);
        }
        if let Some(dir) = engine_data_root(info)
            && dir != self.data_root
        {
            self.data_root_files = Some(std::mem::replace(&mut self.data_root, dir));
            self.data_root_from = format!(
                "the running engine (DockerRootDir {}); the files set {} ({})",
                info.docker_root_dir,
                self.data_root_files.as_deref().unwrap_or_default(),
                self.data_root_from
            );
        }
    }

    /// Every data root a switch must be able to reach: the running engine's and the files'.
    pub fn data_roots(&self) -> Vec<&str> {
        let mut v = vec![self.data_root.as_str()];
        v.extend(self.data_root_files.as_deref());
        v
    }
}

/// Reads the setup from the root's files and, given a systemd connection, docker.socket's
/// Listen addresses. daemon.json is read leniently (an unreadable one sets nothing here; the
/// commands that rely on it refuse it with the reason).
pub fn read(root: &Root, sd: Option<&Systemd>) -> Result<Setup> {
    let unit = docker_unit::scan(root)?;
    let config = root
        .read_optional(daemon_config::PATH)
        .ok()
        .flatten()
        .and_then(|b| DaemonConfig::parse(&b).ok());
    let listen = sd.and_then(|sd| sd.socket_listen(SOCKET_UNIT).ok());
    Ok(Setup::from_files(&unit, config.as_ref(), listen.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::docker_unit::Origin;

    fn unit(exec: &str) -> UnitScan {
        let words = docker_unit::split_words(exec);
        UnitScan {
            word_origins: vec![
                Origin {
                    file: "/lib/systemd/system/docker.service".into(),
                    line: 12,
                };
                words.len()
            ],
            exec_start: words,
            ..UnitScan::default()
        }
    }

    fn stream(path: &str) -> Vec<(String, String)> {
        vec![("Stream".into(), path.into())]
    }

    #[test]
    fn the_engine_socket_follows_fd_to_docker_socket() {
        let debian =
            unit("/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock");
        let f = engine_socket(&debian, None, Some(&stream("/run/docker-alt.sock"))).unwrap();
        assert_eq!(f.path, "/run/docker-alt.sock");
        assert!(f.from.contains("docker.socket ListenStream"), "{}", f.from);
        // Without D-Bus the socket's addresses are unknown: the default is assumed, and said.
        let f = engine_socket(&debian, None, None).unwrap();
        assert_eq!(f.path, DEFAULT_SOCKET);
        assert!(f.from.contains("assumed"), "{}", f.from);
    }

    #[test]
    fn unix_flags_and_hosts_are_used_tcp_only_is_refused() {
        let u = unit("/usr/sbin/dockerd -H tcp://0.0.0.0:2375 --host=unix:///srv/d.sock");
        assert_eq!(engine_socket(&u, None, None).unwrap().path, "/srv/d.sock");
        let cfg = DaemonConfig::parse(br#"{"hosts": ["unix:///x/d.sock"]}"#).unwrap();
        let f = engine_socket(&unit("/usr/sbin/dockerd"), Some(&cfg), None).unwrap();
        assert_eq!(f.path, "/x/d.sock");
        assert!(f.from.contains("\"hosts\""), "{}", f.from);
        assert_eq!(
            engine_socket(&unit("dockerd -Hunix://"), None, None)
                .unwrap()
                .path,
            DEFAULT_SOCKET
        );
        let tcp = unit("/usr/sbin/dockerd -H tcp://127.0.0.1:2375");
        let why = engine_socket(&tcp, None, None).unwrap_err();
        assert!(
            why.contains("tcp://127.0.0.1:2375") && why.contains("unix:///run/docker.sock"),
            "{why}"
        );
        // fd:// with a socket unit that listens on TCP only.
        let l = vec![("Stream".to_string(), "0.0.0.0:2375".to_string())];
        let why = engine_socket(&unit("dockerd -H fd://"), None, Some(&l)).unwrap_err();
        assert!(why.contains("Stream 0.0.0.0:2375"), "{why}");
    }

    #[test]
    fn the_data_root_comes_from_daemon_json_then_flags_then_the_default() {
        let flags = unit("/usr/sbin/dockerd -H fd:// --data-root /srv/dk/root/ -g /ignored");
        // The last one counts, as dockerd reads flags.
        assert_eq!(files_data_root(&flags, None).path, "/ignored");
        let flags = unit("/usr/sbin/dockerd --data-root=/srv/dk/root/");
        let f = files_data_root(&flags, None);
        assert_eq!(f.path, "/srv/dk/root");
        assert!(f.from.contains("docker.service:12"), "{}", f.from);
        let cfg = DaemonConfig::parse(br#"{"data-root": "/data/docker"}"#).unwrap();
        assert_eq!(files_data_root(&flags, Some(&cfg)).path, "/data/docker");
        assert_eq!(
            files_data_root(&unit("dockerd"), None).path,
            DEFAULT_DATA_ROOT
        );
    }

    #[test]
    fn the_engine_adds_live_restore_swarm_and_its_data_root() {
        let mut s = Setup::from_files(&unit("/usr/sbin/dockerd -H fd://"), None, None);
        assert_eq!(s.live_restore, None);
        let info = Info {
            docker_root_dir: "/srv/d/165536.165536".into(),
            security_options: vec!["name=userns".into()],
            live_restore_enabled: true,
            swarm: crate::host::engine::SwarmInfo {
                local_node_state: "active".into(),
                control_available: true,
                node_id: "n1".into(),
            },
            ..Info::default()
        };
        s.learn(&info);
        assert_eq!(s.live_restore, Some(true));
        assert_eq!(s.swarm.as_deref(), Some("active"));
        assert_eq!(s.swarm_manager, Some(true));
        assert_eq!(s.data_root, "/srv/d");
        assert_eq!(s.data_roots(), ["/srv/d", DEFAULT_DATA_ROOT]);
        // Without remapping the directory is not cut.
        let plain = Info {
            docker_root_dir: "/var/lib/docker".into(),
            ..Info::default()
        };
        assert_eq!(engine_data_root(&plain).as_deref(), Some("/var/lib/docker"));
    }
}
