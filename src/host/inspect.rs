//! What the engine holds and how its containers run: the impact report shown before a switch,
//! the containers that run as host root, and (from /proc) the host-root processes of
//! containers the running engine does not know ([`unknown_root`]).

use std::os::unix::fs::MetadataExt;

use crate::host::engine::Engine;
use crate::host::kernel;
use anyhow::Result;
use serde::Serialize;

/// A container as far as the impact report and `status` care.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ContainerInfo {
    /// Its full id.
    pub(crate) id: String,
    /// Name without the leading `/`.
    pub(crate) name: String,
    /// Image it was created from.
    pub(crate) image: String,
    /// Running now.
    pub(crate) running: bool,
    /// `Config.User` (empty: the image's default, usually root).
    pub(crate) user: String,
    /// `--privileged`.
    pub(crate) privileged: bool,
    /// `--userns` mode (`host` or empty).
    pub(crate) userns_mode: String,
    /// `--pid` mode.
    pub(crate) pid_mode: String,
    /// `--network` mode.
    pub(crate) network_mode: String,
    /// Host paths bind-mounted read-write, with their mount point.
    pub(crate) rw_binds: Vec<(String, String)>,
}

impl ContainerInfo {
    /// Why this container needs the host's namespaces (and so `--userns=host` once remapping
    /// is on): privileged, or sharing the host's user, pid or network namespace.
    pub(crate) fn host_namespaces(&self) -> Vec<&'static str> {
        let mut why = Vec::new();
        if self.privileged {
            why.push("--privileged");
        }
        if self.userns_mode == "host" {
            why.push("--userns=host");
        }
        if self.pid_mode == "host" {
            why.push("--pid=host");
        }
        if self.network_mode == "host" {
            why.push("--net=host");
        }
        why
    }

    /// The container's processes run as uid 0 inside (no `--user`, or root named).
    pub(crate) fn root_inside(&self) -> bool {
        let u = self.user.split(':').next().unwrap_or("");
        u.is_empty() || u == "0" || u == "root"
    }
}

/// Every container (running or not), inspected.
pub(crate) fn containers(engine: &Engine) -> Result<Vec<ContainerInfo>> {
    let mut out = Vec::new();
    for c in engine.all_containers()? {
        let v = engine.inspect_container(&c.id)?;
        let rw_binds = v
            .mounts
            .into_iter()
            .filter(|m| m.kind == "bind" && m.rw)
            .map(|m| (m.source, m.destination))
            .collect();
        out.push(ContainerInfo {
            id: c.id,
            name: v.name.trim_start_matches('/').to_string(),
            image: v.config.image,
            running: v.state.running,
            user: v.config.user,
            privileged: v.host_config.privileged,
            userns_mode: v.host_config.userns_mode,
            pid_mode: v.host_config.pid_mode,
            network_mode: v.host_config.network_mode,
            rw_binds,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// An image as `GET /images/json` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedImage {
    /// Its id (`sha256:…`).
    pub(crate) id: String,
    /// Its tags (without `<none>:<none>`; empty: untagged).
    pub(crate) tags: Vec<String>,
    /// Its size as the engine reports it (shared layers counted in each image).
    pub(crate) size: u64,
}

/// An image id as docker shows it: 12 hex digits, without `sha256:`.
pub(crate) fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

/// Every image with its id, tags and size.
pub(crate) fn image_list(engine: &Engine) -> Result<Vec<ListedImage>> {
    Ok(engine
        .images()?
        .into_iter()
        .map(|i| ListedImage {
            id: i.id,
            tags: i
                .repo_tags
                .into_iter()
                .filter(|t| t != "<none>:<none>")
                .collect(),
            size: i.size,
        })
        .collect())
}

/// Every image, by its tags (or short id when untagged).
pub(crate) fn images(engine: &Engine) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for i in image_list(engine)? {
        if i.tags.is_empty() {
            out.push(short_id(&i.id));
        } else {
            out.extend(i.tags);
        }
    }
    out.sort();
    Ok(out)
}

/// Every volume, by name.
pub(crate) fn volumes(engine: &Engine) -> Result<Vec<String>> {
    let mut out: Vec<String> = engine.volumes()?.into_iter().map(|v| v.name).collect();
    out.sort();
    Ok(out)
}

/// What a switch (remapping on, or off with `enabling` false) will do to what docker holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Impact {
    /// The current data root (DockerRootDir), whose content will not be visible afterwards.
    pub(crate) data_root: String,
    /// Images that will not be visible after the switch.
    pub(crate) images: Vec<String>,
    /// Containers (all states) that will not be visible after the switch.
    pub(crate) containers: Vec<String>,
    /// Volumes that will not be visible after the switch.
    pub(crate) volumes: Vec<String>,
    /// Running containers the restart will stop.
    pub(crate) stopped_by_restart: Vec<String>,
    /// Running containers with read-write bind mounts of root-owned host paths that the
    /// remapped root will not be able to write (`name: /host/path -> /mount`).
    pub(crate) unwritable_binds: Vec<String>,
    /// Containers that use host namespaces and will need `--userns=host` (`name (flags)`).
    pub(crate) need_userns_host: Vec<String>,
    /// The image store before and after the switch (null: the engine named no driver).
    /// docker 29 keeps images in the containerd image store, and switches it off while
    /// remapping is on: what the old store holds is reachable only with `--carry images` or
    /// after switching back.
    pub(crate) image_store: Option<crate::host::setup::StoreSwitch>,
}

/// Builds the impact report from the engine as it runs now.
pub(crate) fn impact(engine: &Engine, enabling: bool) -> Result<Impact> {
    let info = engine.info()?;
    let all = containers(engine)?;
    let mut r = Impact {
        data_root: info.docker_root_dir,
        images: images(engine)?,
        containers: all.iter().map(|c| c.name.clone()).collect(),
        volumes: volumes(engine)?,
        stopped_by_restart: all
            .iter()
            .filter(|c| c.running)
            .map(|c| c.name.clone())
            .collect(),
        ..Impact::default()
    };
    if enabling {
        for c in &all {
            for (src, dst) in &c.rw_binds {
                if let Ok(m) = std::fs::metadata(src)
                    && m.uid() == 0
                    && m.mode() & 0o002 == 0
                    && c.root_inside()
                {
                    r.unwritable_binds
                        .push(format!("{}: {src} -> {dst}", c.name));
                }
            }
            let why = c.host_namespaces();
            if !why.is_empty() {
                r.need_userns_host
                    .push(format!("{} ({})", c.name, why.join(" ")));
            }
        }
    }
    Ok(r)
}

/// Running containers whose processes are root on the host: privileged or host-namespace
/// ones always, and any running as root inside while remapping is off.
pub(crate) fn host_root(all: &[ContainerInfo], remapping: bool) -> Vec<(String, Vec<String>)> {
    all.iter()
        .filter(|c| c.running)
        .filter_map(|c| {
            let mut why: Vec<String> = c.host_namespaces().iter().map(|s| s.to_string()).collect();
            if !remapping && c.root_inside() && c.userns_mode != "host" {
                why.push(if c.user.is_empty() {
                    "no --user".into()
                } else {
                    format!("--user {}", c.user)
                });
            }
            (!why.is_empty()).then(|| (c.name.clone(), why))
        })
        .collect()
}

/// A process that runs as host root in a container the running engine does not know: the
/// child of a containerd shim of docker's (`-namespace moby`) whose container id is not among
/// the engine's containers. An engine restarted with live-restore after its data root moved
/// (remapping switched by hand, or at a restart nobody checked) leaves its containers running
/// so, out of sight of `docker ps -a`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct UnknownRoot {
    /// The process id.
    pub(crate) pid: u32,
    /// Its command line (arguments joined by spaces).
    pub(crate) command: String,
    /// The container id its shim names.
    pub(crate) container_id: String,
    /// The shim's process id.
    pub(crate) shim_pid: u32,
}

/// A process as /proc shows it: parent, real uid, command name and line.
struct Proc {
    pid: u32,
    ppid: u32,
    uid: Option<u32>,
    comm: String,
    args: Vec<String>,
}

fn read_proc(proc_dir: &std::path::Path, pid: u32) -> Option<Proc> {
    let dir = proc_dir.join(pid.to_string());
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let (comm, rest) = kernel::stat_split(&stat)?;
    let comm = comm.to_string();
    let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
    let uid = std::fs::read_to_string(dir.join("status"))
        .ok()
        .and_then(|t| kernel::status_uid(&t));
    let args = std::fs::read(dir.join("cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default();
    Some(Proc {
        pid,
        ppid,
        uid,
        comm,
        args,
    })
}

/// The value after `flag` (`-flag value` or `--flag value`, or `-flag=value`).
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let bare = a.trim_start_matches('-');
        if bare == flag && a.starts_with('-') {
            return it.next().map(String::as_str);
        }
        if let Some(v) = bare.strip_prefix(flag).and_then(|r| r.strip_prefix('='))
            && a.starts_with('-')
        {
            return Some(v);
        }
    }
    None
}

/// The container id a docker shim serves: `-id ID` (runc v2 shims), or the last component
/// of `-workdir` (the v1 shim); None when it is not one of docker's (`-namespace moby`).
fn shim_container(p: &Proc) -> Option<String> {
    if !p.comm.starts_with("containerd-shim") || flag_value(&p.args, "namespace")? != "moby" {
        return None;
    }
    flag_value(&p.args, "id").map(str::to_string).or_else(|| {
        Some(
            flag_value(&p.args, "workdir")?
                .rsplit('/')
                .next()?
                .to_string(),
        )
    })
}

/// The processes under `proc_dir` (/proc) that run as uid 0 under a docker shim whose
/// container is not in `known` (full ids).
pub(crate) fn unknown_root_in(proc_dir: &std::path::Path, known: &[String]) -> Vec<UnknownRoot> {
    let Ok(entries) = std::fs::read_dir(proc_dir) else {
        return Vec::new();
    };
    let procs: Vec<Proc> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| read_proc(proc_dir, pid))
        .collect();
    let shims: Vec<(u32, String)> = procs
        .iter()
        .filter_map(|p| Some((p.pid, shim_container(p)?)))
        .filter(|(_, id)| !known.iter().any(|k| k == id))
        .collect();
    let mut out: Vec<UnknownRoot> = procs
        .iter()
        .filter(|p| p.uid == Some(0))
        .filter_map(|p| {
            let (shim_pid, id) = shims.iter().find(|(pid, _)| *pid == p.ppid)?;
            Some(UnknownRoot {
                pid: p.pid,
                command: if p.args.is_empty() {
                    format!("[{}]", p.comm)
                } else {
                    p.args.join(" ")
                },
                container_id: id.clone(),
                shim_pid: *shim_pid,
            })
        })
        .collect();
    out.sort_by_key(|u| u.pid);
    out
}

/// [`unknown_root_in`] for the live host's /proc.
pub(crate) fn unknown_root(known: &[String]) -> Vec<UnknownRoot> {
    unknown_root_in(std::path::Path::new("/proc"), known)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str) -> ContainerInfo {
        ContainerInfo {
            id: format!("{name}-id"),
            name: name.into(),
            image: "img".into(),
            running: true,
            user: String::new(),
            privileged: false,
            userns_mode: String::new(),
            pid_mode: String::new(),
            network_mode: "bridge".into(),
            rw_binds: vec![],
        }
    }

    #[test]
    fn host_root_findings() {
        let plain = c("plain");
        let mut user = c("user");
        user.user = "1000:1000".into();
        let mut privileged = c("priv");
        privileged.privileged = true;
        privileged.user = "1000".into();
        let mut stopped = c("stopped");
        stopped.running = false;
        let all = [plain, user, privileged, stopped];
        let off: Vec<String> = host_root(&all, false).into_iter().map(|(n, _)| n).collect();
        assert_eq!(off, ["plain", "priv"]);
        let on = host_root(&all, true);
        assert_eq!(on, [("priv".to_string(), vec!["--privileged".to_string()])]);
        assert!(c("x").root_inside());
    }

    fn fake_proc(dir: &std::path::Path, pid: u32, ppid: u32, uid: u32, comm: &str, args: &[&str]) {
        let d = dir.join(pid.to_string());
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("stat"),
            format!("{pid} ({comm}) S {ppid} 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 123 0 0"),
        )
        .unwrap();
        std::fs::write(
            d.join("status"),
            format!("Name:\t{comm}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"),
        )
        .unwrap();
        let mut cmdline = args.join("\0");
        cmdline.push('\0');
        std::fs::write(d.join("cmdline"), cmdline).unwrap();
    }

    #[test]
    fn root_processes_under_shims_of_unknown_containers_are_found() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        let shim = |pid, ns: &str, id: &str| {
            fake_proc(
                p,
                pid,
                1,
                0,
                "containerd-shim",
                &[
                    "/usr/bin/containerd-shim-runc-v2",
                    "-namespace",
                    ns,
                    "-id",
                    id,
                    "-address",
                    "/run/containerd/containerd.sock",
                ],
            )
        };
        shim(10, "moby", "known");
        shim(20, "moby", "gone");
        shim(30, "k8s.io", "other");
        fake_proc(p, 11, 10, 0, "sh", &["sh", "-c", "sleep 1"]);
        fake_proc(p, 21, 20, 0, "sh", &["sh", "-c", "sleep 2"]);
        fake_proc(p, 22, 20, 100000, "sh", &["sh"]);
        fake_proc(p, 31, 30, 0, "pause", &["/pause"]);
        // A v1 shim names its container by its work directory.
        fake_proc(
            p,
            40,
            1,
            0,
            "containerd-shim",
            &[
                "containerd-shim",
                "-namespace",
                "moby",
                "-workdir",
                "/var/lib/containerd/io.containerd.runtime.v1.linux/moby/old1",
            ],
        );
        fake_proc(p, 41, 40, 0, "nginx", &["nginx"]);
        fake_proc(p, 50, 1, 0, "bash", &["bash"]);
        let found = unknown_root_in(p, &["known".to_string()]);
        let got: Vec<(u32, &str, u32)> = found
            .iter()
            .map(|u| (u.pid, u.container_id.as_str(), u.shim_pid))
            .collect();
        assert_eq!(got, [(21, "gone", 20), (41, "old1", 40)]);
        assert_eq!(found[0].command, "sh -c sleep 2");
    }
}
