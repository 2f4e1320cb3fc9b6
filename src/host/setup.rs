//! How docker is set up on this host, as far as a switch cares: where its engine listens (and
//! whether docker.socket starts it), its data root and where that is set, live-restore, and
//! swarm membership. Decided from dockerd's flags, daemon.json and docker.socket; the engine's
//! own `/info` adds what only it knows, such as its image store ([`predict_store`] says which
//! one a switch leads to: docker 29's containerd image store is off while remapping is on).

use anyhow::Result;
use serde::Serialize;

use crate::formats::daemon_config::{self, DaemonConfig};
use crate::host::docker_unit::{self, UnitScan};
use crate::host::engine::{self, Info};
use crate::host::root::Root;
use crate::host::systemd::Systemd;

/// Where dockerd listens without `-H` or `hosts` (/var/run is a link to /run).
pub(crate) const DEFAULT_SOCKET: &str = "/run/docker.sock";
/// docker's data root without `--data-root` or `data-root`.
pub(crate) const DEFAULT_DATA_ROOT: &str = "/var/lib/docker";
/// The socket unit that starts docker.service on first connection.
pub(crate) const SOCKET_UNIT: &str = "docker.socket";

/// An address dockerd listens on (`-H`/`--host`, or daemon.json `hosts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Listen {
    /// A unix socket at this path.
    Unix(String),
    /// `fd://`: the sockets systemd passes (docker.socket's).
    Fd,
    /// Anything else (`tcp://`, `ssh://`, a bare address, which dockerd reads as TCP).
    Other(String),
}

/// Reads one address as dockerd does: `unix://` with an empty path is the default socket, an
/// empty address too; without a scheme it is a TCP address.
pub(crate) fn parse_listen(addr: &str) -> Listen {
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
pub(crate) struct Found {
    /// The path.
    pub(crate) path: String,
    /// Where it was set, for messages (`"data-root" in /etc/docker/daemon.json`, ...).
    pub(crate) from: String,
}

/// The unix socket to reach the engine on: dockerd's `-H` flags, else daemon.json's `hosts`,
/// else the default; `fd://` means docker.socket's first unix `ListenStream` (`listen`: its
/// Listen addresses, None when not known). Err: dockerd listens on no unix socket this tool can
/// use, with what to do.
pub(crate) fn engine_socket(
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
pub(crate) fn files_data_root(unit: &UnitScan, config: Option<&DaemonConfig>) -> Found {
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
pub(crate) fn engine_data_root(info: &Info) -> Option<String> {
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
/// the node left behind when remapping was turned on (moby#39722): that state file.
pub(crate) fn swarm_left_behind(info: &Info) -> Option<String> {
    if !info.userns() || info.swarm.member() {
        return None;
    }
    let old = engine_data_root(info)?;
    let state = format!("{old}/swarm/docker-state.json");
    std::path::Path::new(&state).exists().then_some(state)
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
    /// The running engine's image store (`containerd (overlayfs snapshotter)`, `overlay2`;
    /// null: the engine was not asked).
    pub image_store: Option<String>,
}

impl Setup {
    /// From the files and docker.socket's Listen addresses (None: not known).
    pub(crate) fn from_files(
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
            image_store: None,
        }
    }

    /// Adds what the running engine says: its live-restore, swarm state and data root.
    pub(crate) fn learn(&mut self, info: &Info) {
        self.live_restore = Some(info.live_restore_enabled);
        self.image_store = info.image_store();
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
    pub(crate) fn data_roots(&self) -> Vec<&str> {
        let mut v = vec![self.data_root.as_str()];
        v.extend(self.data_root_files.as_deref());
        v
    }
}

/// moby's graph drivers, in its order of priority: a non-empty `DATA_ROOT/NAME` directory is
/// a "prior storage driver" dockerd keeps using (`[graphdriver] using prior storage driver`).
pub(crate) const GRAPH_DRIVERS: [&str; 6] = [
    "overlay2",
    "fuse-overlayfs",
    "btrfs",
    "zfs",
    "vfs",
    "devicemapper",
];

/// The image store a switch leads to, beside the one the engine uses now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreSwitch {
    /// The running engine's image store.
    pub before: String,
    /// The store docker uses after the switch (predicted from daemon.json, the engine's
    /// version and the data root).
    pub after: String,
    /// `before` and `after` differ: what `before` holds is out of sight after the switch.
    pub switches: bool,
    /// Why `after` (what dockerd decides, and from what).
    pub why: String,
}

/// A graph driver's state found in a data root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prior {
    /// The driver (`DATA_ROOT/NAME` is not empty).
    pub(crate) driver: &'static str,
    /// It holds an image (`DATA_ROOT/image/NAME/imagedb/content/sha256`) or the data root a
    /// container: `"containerd-migration"` then keeps the graph driver ("Not migrating to
    /// containerd snapshotter because still have 1 images in graph driver").
    pub(crate) in_use: bool,
}

/// The graph drivers dockerd 29 looks for as prior state, in its order of priority: moby's
/// Linux priority list ("overlay2,fuse-overlayfs,btrfs,zfs,vfs", daemon/graphdriver/
/// driver_linux.go) without `vfs`, which `scanPriorDrivers` ignores (daemon/graphdriver/
/// driver.go); devicemapper is no longer registered.
pub(crate) const PRIOR_DRIVERS: [&str; 4] = ["overlay2", "fuse-overlayfs", "btrfs", "zfs"];

/// The first graph driver whose directory in `data_root` is prior state to dockerd 29 (what it
/// keeps using instead of the containerd image store, as a host upgraded from docker 28 does).
/// moby's rule (daemon/graphdriver/driver.go `scanPriorDrivers`, `isEmptyDir`; chosen in
/// daemon/image_store_choice.go `determineImageStoreChoice`): `DATA_ROOT/NAME` exists and is
/// not an empty directory — one it cannot list counts as not empty.
pub(crate) fn prior_graph_driver(root: &Root, data_root: &str) -> Option<Prior> {
    let base = data_root.trim_end_matches('/');
    let holds = |dir: String| root.read_dir_names(&dir).is_ok_and(|n| !n.is_empty());
    let prior = |dir: String| {
        root.symlink_metadata(&dir).is_ok_and(|m| m.is_some())
            && root.read_dir_names(&dir).map_or(true, |n| !n.is_empty())
    };
    let driver = PRIOR_DRIVERS
        .into_iter()
        .find(|d| prior(format!("{base}/{d}")))?;
    Some(Prior {
        driver,
        in_use: holds(format!("{base}/image/{driver}/imagedb/content/sha256"))
            || holds(format!("{base}/containers")),
    })
}

fn major_version(version: &str) -> Option<u32> {
    version.split('.').next()?.trim().parse().ok()
}

/// Predicts the image store after a switch (`remap`: remapping turned on, else off) from the
/// store the engine uses now (`before`, as [`Info::image_store`] names it), its version,
/// daemon.json and the graph driver already in the data root the engine will use (`prior`,
/// [`prior_graph_driver`]; for `disable`, the data root without `/UID.GID`). What dockerd 29
/// decides, as observed on 29.7.2 and read in moby's daemon/image_store_choice.go
/// (`determineImageStoreChoice`: the containerd store by default, a prior graph driver before
/// `storage-driver`, an explicit `containerd-snapshotter` before both):
///
/// - remapping on: never the containerd image store (moby PR 51042: "userns remapping
///   enabled, disabling containerd snapshotter"; an explicit `"containerd-snapshotter": true`
///   is refused before, see `plan::features_conflict`). A graph driver: the one in use when
///   it is one already, else daemon.json's `storage-driver` when it names a graph driver,
///   else `overlay2`.
/// - remapping off, docker 29 or later: the containerd image store (its `overlayfs`
///   snapshotter, or daemon.json's `storage-driver` when that names no graph driver) unless
///   `"containerd-snapshotter": false`, or the data root holds a prior graph driver's
///   directory (then that driver; `"containerd-migration": true` turns the containerd store
///   on all the same). Before docker 29 the graph driver stays unless
///   `"containerd-snapshotter": true`.
pub(crate) fn predict_store(
    before: &str,
    remap: bool,
    version: &str,
    config: &DaemonConfig,
    prior: Option<Prior>,
) -> StoreSwitch {
    let storage_driver = config.string("storage-driver").map(str::trim);
    let graph_setting = storage_driver.filter(|d| GRAPH_DRIVERS.contains(d));
    let (after, why) = if remap {
        store_remapped(before, graph_setting, version)
    } else {
        store_unremapped(version, config, prior, storage_driver, graph_setting)
    };
    StoreSwitch {
        switches: after != before,
        before: before.to_string(),
        after,
        why,
    }
}

/// The store with remapping on: the graph driver (dockerd turns the containerd store off).
fn store_remapped(before: &str, graph_setting: Option<&str>, version: &str) -> (String, String) {
    let before_is_graph = !before.starts_with("containerd");
    if before_is_graph {
        (
            before.to_string(),
            "remapping keeps the graph driver, in the remapped data root DATA_ROOT/UID.GID"
                .to_string(),
        )
    } else {
        let d = graph_setting.unwrap_or("overlay2");
        (
            d.to_string(),
            format!(
                "dockerd {version} switches the containerd image store off while remapping is on (moby PR 51042, issue 47377) and uses the graph driver {d} in the remapped data root DATA_ROOT/UID.GID{}",
                if graph_setting.is_some() {
                    " (\"storage-driver\" in daemon.json)"
                } else {
                    ""
                }
            ),
        )
    }
}

/// The store with remapping off: what daemon.json's features, dockerd's version and a prior
/// graph driver in the data root choose (moby daemon/image_store_choice.go).
fn store_unremapped(
    version: &str,
    config: &DaemonConfig,
    prior: Option<Prior>,
    storage_driver: Option<&str>,
    graph_setting: Option<&str>,
) -> (String, String) {
    let feature = |k: &str| {
        config
            .map
            .get("features")
            .and_then(|f| f.get(k))
            .and_then(serde_json::Value::as_bool)
    };
    let v29 = major_version(version).is_some_and(|m| m >= 29);
    let snapshotter = storage_driver
        .filter(|d| !d.is_empty() && !GRAPH_DRIVERS.contains(d))
        .unwrap_or("overlayfs");
    let graph = graph_setting
        .or(prior.map(|p| p.driver))
        .unwrap_or("overlay2");
    match (
        feature("containerd-snapshotter"),
        feature("containerd-migration"),
    ) {
        (Some(true), _) => (
            engine::containerd_store(snapshotter),
            "\"containerd-snapshotter\": true in daemon.json".to_string(),
        ),
        (Some(false), _) => (
            graph.to_string(),
            "\"containerd-snapshotter\": false in daemon.json keeps the graph driver".to_string(),
        ),
        (None, Some(true)) if v29 && !prior.is_some_and(|p| p.in_use) => (
            engine::containerd_store(snapshotter),
            format!(
                "\"containerd-migration\": true in daemon.json: dockerd {version} turns the containerd image store on when the graph driver holds no images and no containers"
            ),
        ),
        (None, Some(true)) if v29 => (
            graph.to_string(),
            format!(
                "\"containerd-migration\": true in daemon.json, but dockerd {version} does not migrate while the graph driver {graph} holds images or containers"
            ),
        ),
        (None, _) if v29 && prior.is_none() && graph_setting.is_none() => (
            engine::containerd_store(snapshotter),
            format!(
                "dockerd {version} uses the containerd image store by default when the data root holds no prior graph driver"
            ),
        ),
        (None, _) if v29 => (
            graph.to_string(),
            match prior.map(|p| p.driver) {
                Some(p) => format!(
                    "dockerd {version} keeps the prior graph driver {p} (DATA_ROOT/{p} exists) instead of the containerd image store"
                ),
                None => format!("\"storage-driver\": {graph:?} in daemon.json"),
            },
        ),
        (None, _) => (
            graph.to_string(),
            format!(
                "dockerd {version} uses a graph driver unless \"containerd-snapshotter\" is on"
            ),
        ),
    }
}

/// Reads the setup from the root's files and, given a systemd connection, docker.socket's
/// Listen addresses. daemon.json is read leniently (an unreadable one sets nothing here; the
/// commands that rely on it refuse it with the reason).
pub(crate) fn read(root: &Root, sd: Option<&Systemd>) -> Result<Setup> {
    // The files systemd loaded docker.service from, over the connection at hand when there is
    // one (`scan` would open its own).
    let unit = match sd.filter(|_| root.is_host()) {
        Some(sd) => {
            let loaded = sd.unit_files(docker_unit::UNIT).ok();
            docker_unit::scan_with(root, loaded.as_ref())?
        }
        None => docker_unit::scan(root)?,
    };
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

    fn cfg(text: &str) -> DaemonConfig {
        DaemonConfig::parse(text.as_bytes()).unwrap()
    }

    const C8D: &str = "containerd (overlayfs snapshotter)";

    #[test]
    fn docker_29_switches_the_containerd_store_off_with_remapping_and_back() {
        // enable on a fresh docker 29: containerd store -> overlay2.
        let on = predict_store(C8D, true, "29.7.2", &cfg("{}"), None);
        assert_eq!((on.after.as_str(), on.switches), ("overlay2", true));
        assert!(on.why.contains("PR 51042"), "{}", on.why);
        // ... or the graph driver daemon.json names.
        let vfs = predict_store(
            C8D,
            true,
            "29.7.2",
            &cfg(r#"{"storage-driver":"vfs"}"#),
            None,
        );
        assert_eq!(vfs.after, "vfs");
        // A graph driver already (docker 28, or 29 upgraded from 28): no switch.
        let same = predict_store("overlay2", true, "28.5.2", &cfg("{}"), None);
        assert_eq!((same.after.as_str(), same.switches), ("overlay2", false));
        // disable on docker 29 whose data root holds no prior graph driver: back.
        let off = predict_store("overlay2", false, "29.7.2", &cfg("{}"), None);
        assert_eq!((off.after.as_str(), off.switches), (C8D, true));
        // A prior graph driver in the data root, or the feature off: overlay2 stays.
        let overlay2 = |in_use| {
            Some(Prior {
                driver: "overlay2",
                in_use,
            })
        };
        let prior = predict_store("overlay2", false, "29.7.2", &cfg("{}"), overlay2(false));
        assert_eq!((prior.after.as_str(), prior.switches), ("overlay2", false));
        let pinned = cfg(r#"{"features":{"containerd-snapshotter":false}}"#);
        let f = predict_store("overlay2", false, "29.7.2", &pinned, None);
        assert_eq!(f.after, "overlay2");
        // Migration turns it on over a prior graph driver that holds nothing, not over one
        // with images or containers (observed: "Not migrating to containerd snapshotter").
        let mig = cfg(r#"{"features":{"containerd-migration":true}}"#);
        let m = predict_store("overlay2", false, "29.7.2", &mig, overlay2(false));
        assert_eq!(m.after, C8D);
        let m = predict_store("overlay2", false, "29.7.2", &mig, overlay2(true));
        assert_eq!((m.after.as_str(), m.switches), ("overlay2", false));
        // A graph driver named in "storage-driver" keeps docker 29 off the containerd store
        // (observed: {"storage-driver": "overlay2"} on a fresh 29.7.2 gives overlay2).
        let named = cfg(r#"{"storage-driver":"overlay2"}"#);
        let n = predict_store("overlay2", false, "29.7.2", &named, None);
        assert_eq!((n.after.as_str(), n.switches), ("overlay2", false));
        // Before docker 29: the graph driver stays.
        let old = predict_store("overlay2", false, "28.5.2", &cfg("{}"), None);
        assert_eq!((old.after.as_str(), old.switches), ("overlay2", false));
    }

    #[test]
    fn a_prior_graph_driver_is_a_non_empty_driver_directory() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path()).unwrap();
        std::fs::create_dir_all(t.path().join("var/lib/docker/overlay2")).unwrap();
        assert_eq!(prior_graph_driver(&root, "/var/lib/docker"), None);
        std::fs::create_dir_all(t.path().join("var/lib/docker/overlay2/l")).unwrap();
        let found = |in_use| {
            Some(Prior {
                driver: "overlay2",
                in_use,
            })
        };
        assert_eq!(prior_graph_driver(&root, "/var/lib/docker/"), found(false));
        let images = t
            .path()
            .join("var/lib/docker/image/overlay2/imagedb/content/sha256");
        std::fs::create_dir_all(images.join("abc")).unwrap();
        assert_eq!(prior_graph_driver(&root, "/var/lib/docker"), found(true));
        assert_eq!(prior_graph_driver(&root, "/srv/none"), None);
        // moby ignores vfs, and counts what it cannot list as not empty (a file in the way).
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path()).unwrap();
        std::fs::create_dir_all(t.path().join("var/lib/docker/vfs/dir/x")).unwrap();
        assert_eq!(prior_graph_driver(&root, "/var/lib/docker"), None);
        std::fs::write(t.path().join("var/lib/docker/btrfs"), b"").unwrap();
        assert_eq!(
            prior_graph_driver(&root, "/var/lib/docker").map(|p| p.driver),
            Some("btrfs")
        );
    }
}
