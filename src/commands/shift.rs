//! `shift`: moves the owners of host directories that remapped containers bind-mount into the
//! remap user's range (`--to remapped`: host uid u becomes start+u, as the container sees u) or
//! back (`--to host`), exactly and resumably, refusing system trees and ids the mapping cannot
//! express.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::exit::{Conflict, Usage};
use crate::host::engine::Engine;
use crate::host::root::Root;
use crate::host::setup;
use crate::host::shift::{self, LeftLog, Mapping, OpenDir, Report};
use crate::progress::Progress;
use crate::run::journal;

/// Where the owners go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Direction {
    /// Into the remap user's range: what a remapped container's uid u is on the host.
    Remapped,
    /// Back to the host's own ids.
    Host,
}

/// Directories that are never shifted, nor any directory above them; those marked `true`
/// are refused with everything below them too: the system's trees, and state no container
/// should own (package databases, systemd's and containerd's state, root's home, sudo and
/// polkit state, shared temporary space). Compared as written and as resolved (a symlinked
/// /var/lib/dpkg is refused at its real place too).
const SYSTEM: &[(&str, bool)] = &[
    ("/", false),
    ("/bin", true),
    ("/boot", true),
    ("/dev", true),
    ("/etc", true),
    ("/home", false),
    ("/lib", true),
    ("/lib32", true),
    ("/lib64", true),
    ("/libx32", true),
    ("/media", false),
    ("/mnt", false),
    ("/nix", true),
    ("/opt", false),
    ("/proc", true),
    ("/root", true),
    ("/run", true),
    ("/sbin", true),
    ("/snap", true),
    ("/srv", false),
    ("/sys", true),
    ("/tmp", false),
    ("/usr", true),
    ("/var", false),
    ("/var/backups", true),
    ("/var/cache", true),
    ("/var/lib", false),
    ("/var/lib/AccountsService", true),
    ("/var/lib/apt", true),
    ("/var/lib/containerd", true),
    ("/var/lib/containers", true),
    ("/var/lib/dbus", true),
    ("/var/lib/dnf", true),
    ("/var/lib/docker-userns", true),
    ("/var/lib/dpkg", true),
    ("/var/lib/kubelet", true),
    ("/var/lib/lxc", true),
    ("/var/lib/lxd", true),
    ("/var/lib/machines", true),
    ("/var/lib/pacman", true),
    ("/var/lib/pam", true),
    ("/var/lib/polkit-1", true),
    ("/var/lib/private", true),
    ("/var/lib/rpm", true),
    ("/var/lib/snapd", true),
    ("/var/lib/sss", true),
    ("/var/lib/sudo", true),
    ("/var/lib/systemd", true),
    ("/var/lib/ucf", true),
    ("/var/lib/yum", true),
    ("/var/log", true),
    ("/var/mail", true),
    ("/var/spool", true),
    ("/var/tmp", true),
];

/// containerd's state when its config names none.
const CONTAINERD_ROOT: &str = "/var/lib/containerd";
/// containerd's config, whose top-level `root = "..."` moves its state.
const CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";

/// A directory `shift` refuses (and, with `below`, everything in it); every directory above
/// it is refused too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Protected {
    /// The directory, absolute (as written or as resolved: both are listed).
    pub(crate) path: PathBuf,
    /// Everything below it is refused too.
    pub(crate) below: bool,
    /// What it is, for the message.
    pub(crate) what: String,
}

/// The protected directories: `data_roots` first, then the system's (`SYSTEM`): `data_roots` (docker's and containerd's
/// data, the tool's state: refused with everything below), each as given and, when it
/// exists, as resolved.
pub(crate) fn protected(data_roots: &[(String, String)]) -> Vec<Protected> {
    let mut v = Vec::new();
    let mut add = |path: &str, below: bool, what: String| {
        let p = PathBuf::from(path);
        if let Ok(real) = std::fs::canonicalize(&p)
            && real != p
        {
            v.push(Protected {
                path: real,
                below,
                what: format!("{what} (at {path})"),
            });
        }
        v.push(Protected {
            path: p,
            below,
            what,
        });
    };
    for (d, what) in data_roots {
        add(d, true, format!("{what} {d}"));
    }
    for (sys, below) in SYSTEM {
        add(sys, *below, format!("the system tree {sys}"));
    }
    v
}

/// Why `path` (absolute, resolved) must not be shifted (None: it may be): it is, holds or is
/// inside a protected directory, or it is a home directory or one of its dot-directories
/// (a container owning them could plant what the user runs at login: .ssh, .bashrc, ...).
pub(crate) fn refusal(path: &Path, protected: &[Protected]) -> Option<String> {
    for p in protected {
        if path == p.path || p.path.starts_with(path) || (p.below && path.starts_with(&p.path)) {
            return Some(format!(
                "{} is, holds or is inside {}: shifting it would hand what the host relies on to containers",
                path.display(),
                p.what
            ));
        }
    }
    let mut parts = path.components().skip(1);
    if parts.next().is_some_and(|c| c.as_os_str() == "home") {
        let user = parts.next();
        let first = parts.next();
        let dot = first.is_some_and(|c| c.as_os_str().as_encoded_bytes().starts_with(b"."));
        if user.is_some() && (first.is_none() || dot) {
            return Some(format!(
                "{} is a home directory or one of its dot-directories (.ssh, .config, ...): a container owning it could plant what its user runs; shift a data directory below it instead",
                path.display()
            ));
        }
    }
    None
}

/// containerd's state directories: the default and its config's top-level `root`.
fn containerd_roots(root: &Root) -> Vec<String> {
    let mut v = vec![CONTAINERD_ROOT.to_string()];
    if let Ok(Some(text)) = root.read_optional(CONTAINERD_CONFIG) {
        for line in String::from_utf8_lossy(&text).lines() {
            let line = line.trim();
            if line.starts_with('[') {
                break;
            }
            if let Some((k, val)) = line.split_once('=')
                && k.trim() == "root"
            {
                let val = val.trim().trim_matches('"').trim_matches('\'');
                if val.starts_with('/') {
                    v.push(val.to_string());
                }
            }
        }
    }
    v
}

/// One directory shifted (or surveyed).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Shifted {
    /// The directory, as resolved.
    pub(crate) path: String,
    /// What the walk did (or, with `--dry-run`, would do: `shifted` counts those it would).
    #[serde(flatten)]
    pub(crate) report: Report,
}

/// The result of `shift`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ShiftResult {
    /// Where the owners went.
    pub(crate) to: Direction,
    /// Nothing was changed.
    pub(crate) dry_run: bool,
    /// uids `uid_from..uid_from+count` become `uid_to..`.
    pub(crate) uid_from: u32,
    /// New first uid.
    pub(crate) uid_to: u32,
    /// uids in the mapping.
    pub(crate) uid_count: u32,
    /// gids `gid_from..` become `gid_to..`.
    pub(crate) gid_from: u32,
    /// New first gid.
    pub(crate) gid_to: u32,
    /// gids in the mapping.
    pub(crate) gid_count: u32,
    /// Each directory.
    pub(crate) roots: Vec<Shifted>,
}

/// The data directories of docker and containerd this host has, with what they are: the
/// configured data root(s) and the running engine's (as `status` knows it), containerd's
/// state, and the tool's own state.
fn data_roots(root: &Root) -> Result<Vec<(String, String)>> {
    let found = setup::read(root, None)?;
    let mut v: Vec<(String, String)> = found
        .data_roots()
        .into_iter()
        .map(|d| (d.to_string(), "docker's data root".to_string()))
        .collect();
    v.push((
        setup::DEFAULT_DATA_ROOT.to_string(),
        "docker's default data root".to_string(),
    ));
    if let Some(socket) = &found.engine_socket
        && let Ok(info) = Engine::new(socket.as_str(), Duration::from_secs(5)).info()
    {
        v.extend(
            setup::engine_data_root(&info)
                .map(|d| (d, "the running engine's data root".to_string())),
        );
        v.push((
            info.docker_root_dir.clone(),
            "the running engine's DockerRootDir".to_string(),
        ));
    }
    for d in containerd_roots(root) {
        v.push((d, "containerd's state".to_string()));
    }
    v.push((journal::DIR.to_string(), "this tool's state".to_string()));
    v.retain(|(d, _)| d.starts_with('/'));
    Ok(v)
}

/// The command that finishes a shift in direction `to` of `dir`.
fn command(dir: &Path, to: Direction) -> String {
    format!(
        "docker-userns shift {} --to {}",
        dir.display(),
        match to {
            Direction::Remapped => "remapped",
            Direction::Host => "host",
        }
    )
}

/// Shifts (or with `dry_run` surveys) each of `paths`. Every path is checked, and surveyed for
/// ids the mapping cannot express, before the first one is changed. `--to host` refuses
/// (before anything changes) the setuid/setgid bits and file capabilities that would become
/// valid for host ids, unless `drop_setid_and_caps`: then they are dropped and named.
/// Takes the run lock (not for a dry run), so it never runs beside `enable --repair`.
pub(crate) fn shift(
    root: &Root,
    paths: &[PathBuf],
    to: Direction,
    dry_run: bool,
    drop_setid_and_caps: bool,
    jobs: usize,
    progress: Progress,
) -> Result<ShiftResult> {
    if !root.is_host() {
        return Err(Usage(
            "shift changes directories on the live host: it cannot be used with --root".into(),
        )
        .into());
    }
    if drop_setid_and_caps && to != Direction::Host {
        return Err(Usage(
            "--drop-setid-and-caps is for --to host (into the remapped range setuid/setgid bits and capabilities are harmless and kept)".into(),
        )
        .into());
    }
    let map = mapping(root, to)?;
    let protected = protected(&data_roots(root)?);

    // Check every path, then survey every one, before anything changes.
    let dirs = open_checked(root, paths, &protected)?;
    let _lock = if dry_run {
        None
    } else {
        Some(journal::lock(root, journal::LOCK_WAIT)?)
    };
    let mut roots = Vec::new();
    for dir in &dirs {
        check_left_log(root, dir.shown(), &map, to)?;
        let report = survey_checked(dir, &map, jobs, dry_run || drop_setid_and_caps)?;
        roots.push(Shifted {
            path: dir.shown().display().to_string(),
            report,
        });
    }
    if !dry_run {
        root.ensure_dir(journal::DIR, 0o700)?;
        for (s, dir) in roots.iter_mut().zip(&dirs) {
            s.report = shift_one(
                root,
                dir,
                &map,
                to,
                shift::Options {
                    jobs,
                    drop_privileged: drop_setid_and_caps,
                },
                s.report.inodes,
                progress,
            )?;
        }
    }
    let (uid, gid) = (map.uid(), map.gid());
    Ok(ShiftResult {
        to,
        dry_run,
        uid_from: uid.from,
        uid_to: uid.to,
        uid_count: uid.count,
        gid_from: gid.from,
        gid_to: gid.to,
        gid_count: gid.count,
        roots,
    })
}

/// The mapping `shift --to to` uses: the remap user's ranges (refused when it has none).
fn mapping(root: &Root, to: Direction) -> Result<Mapping> {
    let conf = crate::run::preflight::configured(root)?;
    let (Some(u), Some(g)) = (conf.subuid, conf.subgid) else {
        return Err(Conflict::new(format!(
            "the remap user {} has no range in /etc/subuid and /etc/subgid: there is nothing to shift into; run `docker-userns enable` first",
            conf.user.as_deref().unwrap_or("dockremap")
        ))
        .kind("shift-no-range")
.into());
    };
    let map = Mapping::for_range(
        (u.start, u.count),
        (g.start, g.count),
        to == Direction::Remapped,
    )
    .context("the remap user's ranges cannot be a shift target")?;
    Ok(map)
}

/// Each of `paths`, resolved, a directory, opened once beneath the root and not refused.
fn open_checked(root: &Root, paths: &[PathBuf], protected: &[Protected]) -> Result<Vec<OpenDir>> {
    let mut dirs = Vec::new();
    for p in paths {
        let real =
            std::fs::canonicalize(p).with_context(|| format!("cannot resolve {}", p.display()))?;
        if !real.is_dir() {
            return Err(
                Conflict::new(format!("{} is not a directory", real.display()))
                    .kind("shift-not-directory")
                    .into(),
            );
        }
        let abs = real.to_str().ok_or_else(|| {
            Usage(format!(
                "{} is not valid UTF-8: shift cannot name it",
                real.display()
            ))
        })?;
        // Opened once: the checks below and the walk are of what was opened, whatever is
        // renamed or relinked meanwhile.
        let dir = root.open_dir(abs)?;
        if let Some(why) = refusal(dir.shown(), protected) {
            return Err(Conflict::new(format!("{why}; nothing was changed"))
                .kind("shift-protected-directory")
                .into());
        }
        dirs.push(dir);
    }
    Ok(dirs)
}

/// The crash log of a shift of `d`: one per directory, so that running the same command again
/// resumes it.
fn log_of(d: &Path) -> String {
    format!("{}/{}", journal::DIR, log_name(d))
}

/// The name of [`log_of`] in `journal::DIR`.
fn log_name(d: &Path) -> String {
    format!(
        "shift-{}.log",
        journal::fingerprint(d.as_os_str().as_encoded_bytes())
    )
}

/// Refuses (changing nothing) when an interrupted shift of `d` in the other direction, or with
/// another mapping, left its log.
fn check_left_log(root: &Root, d: &Path, map: &Mapping, to: Direction) -> Result<()> {
    let other = match to {
        Direction::Remapped => Direction::Host,
        Direction::Host => Direction::Remapped,
    };
    let log = root.path(&log_of(d));
    let left = if root.is_dir(journal::DIR) {
        shift::left_log(&root.resolved(&log_of(d))?, map)?
    } else {
        LeftLog::None
    };
    match left {
        LeftLog::None | LeftLog::Same => {}
        LeftLog::Reverse => {
            return Err(Conflict::new(format!(
                "{}: a shift in the other direction was interrupted (its log {} names the mapping back); finish it first with `{}`, then run this command; nothing was changed",
                d.display(),
                log.display(),
                command(d, other)
            ))
            .kind("shift-interrupted-other-direction")
.into());
        }
        LeftLog::Other(first) => {
            return Err(Conflict::new(format!(
                "{}: an interrupted shift with another mapping left {} ({first:?}), from before the remap user's ranges changed: finish it with the ranges it names, or move the log away (the setuid/setgid modes and capabilities it lists are then not put back: check them by hand); nothing was changed",
                d.display(),
                log.display(),
            ))
            .kind("shift-interrupted-other-mapping")
.into());
        }
    }
    Ok(())
}

/// Surveys `dir`, refusing (changing nothing) a tree too deep, ids the mapping cannot express,
/// and, unless `privileged_ok`, what would carry a container's privilege to host ids.
fn survey_checked(
    dir: &OpenDir,
    map: &Mapping,
    jobs: usize,
    privileged_ok: bool,
) -> Result<Report> {
    let d = dir.shown();
    let r = match shift::survey_with(dir, map, jobs) {
        Ok(r) => r,
        Err(e) if e.downcast_ref::<shift::TooDeep>().is_some() => {
            return Err(Conflict::new(format!("{e:#}; nothing was changed"))
                .kind("shift-tree-unwalkable")
                .into());
        }
        Err(e) => return Err(e.context(format!("cannot survey {}", d.display()))),
    };
    if r.outside_ids > 0 {
        let (uid, gid) = (map.uid(), map.gid());
        return Err(Conflict::new(format!(
            "{}: {} id(s) on {} inode(s) lie outside what the mapping expresses (uids {}..{} -> {}.., gids {}..{} -> {}..), e.g. {}; containers could not own them: change their owners first; nothing was changed",
            d.display(),
            r.outside_ids,
            r.outside_id_inodes,
            uid.from,
            u64::from(uid.from) + u64::from(uid.count) - 1,
            uid.to,
            gid.from,
            u64::from(gid.from) + u64::from(gid.count) - 1,
            gid.to,
            r.first_outside
                .as_deref()
                .map_or_else(String::new, |p| p.display().to_string())
        ))
        .kind("shift-ids-outside-mapping")
.into());
    }
    if r.privileged > 0 && !privileged_ok {
        return Err(Conflict::new(format!(
            "{}: {} inode(s) hold a setuid/setgid bit or a file capability made under the remapped ids, which moved to host ids would be valid on the host (a container's setuid root shell would become the host's): {}{}; nothing was changed. Remove them, or pass --drop-setid-and-caps to shift them with those bits and capabilities dropped",
            d.display(),
            r.privileged,
            privileged_list(&r),
            if r.privileged > r.privileged_paths.len() as u64 { ", ..." } else { "" }
        ))
        .kind("shift-privileged-files")
.into());
    }
    Ok(r)
}

/// Shifts `dir` (surveyed: `total` inodes), with progress on a terminal.
fn shift_one(
    root: &Root,
    dir: &OpenDir,
    map: &Mapping,
    to: Direction,
    opts: shift::Options,
    total: u64,
    progress: Progress,
) -> Result<Report> {
    let drop_setid_and_caps = opts.drop_privileged;
    let d = dir.shown();
    // Opened beneath the root, the log by name in it (no symlink followed).
    let log_dir = root.open_dir(journal::DIR)?;
    let log_name = log_name(d);
    let log = shift::LogAt::In(&log_dir, &log_name);
    let bar = progress.inodes(&format!("shifting owners below {}", d.display()), total);
    let mut progress = |n| {
        bar.set(n);
        ControlFlow::Continue(())
    };
    let r = shift::shift_tree_with(dir, map, log, opts, &mut progress);
    let r = r.with_context(|| {
        format!(
            "cannot shift the owners below {} (what is done stays done: `{}` finishes it{})",
            d.display(),
            command(d, to),
            if drop_setid_and_caps {
                ""
            } else if to == Direction::Host {
                ", with --drop-setid-and-caps if it names setuid/setgid files or capabilities"
            } else {
                ""
            }
        )
    })?;
    Ok(r)
}

/// "PATH (setuid, file capability), ..." for the named inodes.
pub(crate) fn privileged_list(r: &Report) -> String {
    r.privileged_paths
        .iter()
        .map(|p| format!("{} ({})", p.path.display(), p.what()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> Vec<Protected> {
        protected(&[
            ("/var/lib/docker".into(), "docker's data root".into()),
            (
                "/data/docker".into(),
                "the running engine's data root".into(),
            ),
            ("/srv/containerd".into(), "containerd's state".into()),
        ])
    }

    #[test]
    fn system_trees_state_homes_and_data_roots_are_refused_app_data_is_not() {
        let roots = roots();
        for p in [
            "/",
            "/etc",
            "/etc/nginx",
            "/usr/local",
            "/home",
            "/home/alice",
            "/home/alice/.ssh",
            "/home/alice/.ssh/keys",
            "/home/alice/.config",
            "/var",
            "/var/lib",
            "/root",
            "/root/.ssh",
            "/root/data",
            "/var/lib/docker",
            "/var/lib/docker/volumes/x",
            "/data",
            "/data/docker",
            "/data/docker/165536.165536/volumes",
            "/srv/containerd/io",
            "/srv",
            "/proc/1",
            "/var/lib/docker-userns",
            "/var/lib/dpkg",
            "/var/lib/dpkg/info",
            "/var/lib/apt/lists",
            "/var/lib/systemd",
            "/var/lib/containerd",
            "/var/lib/polkit-1",
            "/var/lib/sudo/lectured",
            "/var/tmp",
            "/var/tmp/x",
        ] {
            assert!(refusal(Path::new(p), &roots).is_some(), "{p} allowed");
        }
        for p in [
            "/srv/app",
            "/home/alice/data",
            "/home/alice/data/.cache",
            "/opt/app/data",
            "/var/lib/app",
            "/var/lib/dockerx",
            "/data/app",
            "/mnt/nfs/x",
            "/tmp/x",
        ] {
            assert_eq!(refusal(Path::new(p), &roots), None, "{p} refused");
        }
    }

    #[test]
    fn a_symlinked_protected_directory_is_refused_at_its_real_place() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real-docker");
        std::fs::create_dir(&real).unwrap();
        let link = t.path().join("docker");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let roots = protected(&[(link.display().to_string(), "docker's data root".to_string())]);
        let real = std::fs::canonicalize(&real).unwrap();
        let why = refusal(&real.join("volumes"), &roots).expect("refused");
        assert!(why.contains("data root"), "{why}");
        assert!(refusal(&real, &roots).is_some());
        assert!(refusal(real.parent().unwrap(), &roots).is_some());
        assert_eq!(refusal(&t.path().join("other"), &roots), None);
    }

    #[test]
    fn containerd_root_is_read_from_its_config() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path()).unwrap();
        std::fs::create_dir_all(t.path().join("etc/containerd")).unwrap();
        std::fs::write(
            t.path().join("etc/containerd/config.toml"),
            "version = 2\nroot = \"/data/containerd\"\n[plugins]\nroot = \"/not/this\"\n",
        )
        .unwrap();
        assert_eq!(
            containerd_roots(&root),
            ["/var/lib/containerd", "/data/containerd"]
        );
    }
}
