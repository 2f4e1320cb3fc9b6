//! `shift`: moves the owners of host directories that remapped containers bind-mount into the
//! remap user's range (`--to remapped`: host uid u becomes start+u, as the container sees u) or
//! back (`--to host`), exactly and resumably, refusing system trees and ids the mapping cannot
//! express.

use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::exit::{Conflict, Usage};
use crate::host::root::Root;
use crate::host::setup;
use crate::host::shift::{self, Mapping, Report};
use crate::run::journal;

/// Where the owners go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Into the remap user's range: what a remapped container's uid u is on the host.
    Remapped,
    /// Back to the host's own ids.
    Host,
}

/// Directories that are never shifted, nor any directory above them; those marked `true`
/// are refused with everything below them too.
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
    ("/opt", false),
    ("/proc", true),
    ("/root", false),
    ("/run", true),
    ("/sbin", true),
    ("/srv", false),
    ("/sys", true),
    ("/tmp", false),
    ("/usr", true),
    ("/var", false),
    ("/var/lib", false),
    ("/var/log", true),
    ("/var/cache", true),
    ("/var/spool", true),
    ("/var/lib/docker-userns", true),
];

/// One directory shifted (or surveyed).
#[derive(Debug, Clone, Serialize)]
pub struct Shifted {
    /// The directory, as resolved.
    pub path: String,
    /// What the walk did (or, with `--dry-run`, would do: `shifted` counts those it would).
    #[serde(flatten)]
    pub report: Report,
}

/// The result of `shift`.
#[derive(Debug, Clone, Serialize)]
pub struct ShiftResult {
    /// Where the owners went.
    pub to: Direction,
    /// Nothing was changed.
    pub dry_run: bool,
    /// uids `uid_from..uid_from+count` become `uid_to..`.
    pub uid_from: u32,
    /// New first uid.
    pub uid_to: u32,
    /// uids in the mapping.
    pub uid_count: u32,
    /// gids `gid_from..` become `gid_to..`.
    pub gid_from: u32,
    /// New first gid.
    pub gid_to: u32,
    /// gids in the mapping.
    pub gid_count: u32,
    /// Each directory.
    pub roots: Vec<Shifted>,
}

/// Why `path` must not be shifted (None: it may be): a system tree, or docker's own data.
pub fn refusal(path: &Path, data_roots: &[&str]) -> Option<String> {
    for (sys, below) in SYSTEM {
        let sys = Path::new(sys);
        if path == sys || sys.starts_with(path) || (*below && path.starts_with(sys)) {
            return Some(format!(
                "{} is (or holds) the system tree {}: shifting it would hand the host's own files to containers",
                path.display(),
                sys.display()
            ));
        }
    }
    for d in data_roots {
        let d = Path::new(d);
        if path.starts_with(d) || d.starts_with(path) {
            return Some(format!(
                "{} is (or holds) docker's data root {}: docker owns what is there (for a remapped data root that overlaps another owner's range, see `enable --repair`)",
                path.display(),
                d.display()
            ));
        }
    }
    None
}

/// Shifts (or with `dry_run` surveys) each of `paths`. Every path is checked, and surveyed for
/// ids the mapping cannot express, before the first one is changed.
pub fn shift(root: &Root, paths: &[PathBuf], to: Direction, dry_run: bool) -> Result<ShiftResult> {
    if !root.is_host() {
        return Err(Usage(
            "shift changes directories on the live host: it cannot be used with --root".into(),
        )
        .into());
    }
    let conf = crate::run::preflight::configured(root)?;
    let (Some(u), Some(g)) = (conf.subuid, conf.subgid) else {
        return Err(Conflict::new(format!(
            "the remap user {} has no range in /etc/subuid and /etc/subgid: there is nothing to shift into; run `docker-userns enable` first",
            conf.user.as_deref().unwrap_or("dockremap")
        ))
        .into());
    };
    let map = Mapping::for_range(
        (u.start, u.count),
        (g.start, g.count),
        to == Direction::Remapped,
    )
    .context("the remap user's ranges cannot be a shift target")?;
    let found = setup::read(root, None)?;
    let data_roots = found.data_roots();

    // Check every path, then survey every one, before anything changes.
    let mut dirs = Vec::new();
    for p in paths {
        let real =
            std::fs::canonicalize(p).with_context(|| format!("cannot resolve {}", p.display()))?;
        if !real.is_dir() {
            return Err(Conflict::new(format!("{} is not a directory", real.display())).into());
        }
        if let Some(why) = refusal(&real, &data_roots) {
            return Err(Conflict::new(format!("{why}; nothing was changed")).into());
        }
        dirs.push(real);
    }
    let mut roots = Vec::new();
    for d in &dirs {
        let r = shift::survey(d, &map).with_context(|| format!("cannot survey {}", d.display()))?;
        if r.outside_ids > 0 {
            let (uid, gid) = (map.uid(), map.gid());
            return Err(Conflict::new(format!(
                "{}: {} id(s) on {} inode(s) lie outside what the mapping expresses (uids {}..{} -> {}.., gids {}..{} -> {}..), e.g. {}; containers could not own them: change their owners first; nothing was changed",
                d.display(),
                r.outside_ids,
                r.outside,
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
            .into());
        }
        roots.push(Shifted {
            path: d.display().to_string(),
            report: r,
        });
    }
    if !dry_run {
        root.ensure_dir(journal::DIR, 0o700)?;
        let tty = std::io::stderr().is_terminal();
        for s in &mut roots {
            let d = Path::new(&s.path);
            // One log per directory, so that running the same command again resumes it.
            let log = root.path(&format!(
                "{}/shift-{}.log",
                journal::DIR,
                journal::fingerprint(s.path.as_bytes())
            ));
            let total = s.report.inodes;
            s.report = shift::shift_tree(d, &map, &log, &mut |n| {
                if tty {
                    eprint!(
                        "\rshifting owners below {}: {n}/{total} inodes",
                        d.display()
                    );
                }
                ControlFlow::Continue(())
            })
            .with_context(|| {
                format!(
                    "cannot shift the owners below {} (run the same command again to finish it)",
                    d.display()
                )
            })?;
            if tty {
                eprintln!();
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_trees_and_docker_data_are_refused_app_data_is_not() {
        let roots = ["/var/lib/docker"];
        for p in [
            "/",
            "/etc",
            "/etc/nginx",
            "/usr/local",
            "/home",
            "/var",
            "/var/lib",
            "/root",
            "/var/lib/docker",
            "/var/lib/docker/volumes/x",
            "/proc/1",
            "/var/lib/docker-userns",
        ] {
            assert!(refusal(Path::new(p), &roots).is_some(), "{p} allowed");
        }
        for p in [
            "/srv/app",
            "/home/alice/data",
            "/opt/app/data",
            "/var/lib/app",
            "/mnt/nfs/x",
        ] {
            assert_eq!(refusal(Path::new(p), &roots), None, "{p} refused");
        }
    }
}
