//! Shifting the owners of a tree from one id range to another: exact (lchown, setid bits, file
//! capabilities and POSIX ACLs kept, hard links once, one filesystem) and resumable after a crash.
//!
//! The walk goes through directory fds (`openat` with `O_NOFOLLOW`, `statx` and `fchownat`
//! with `AT_SYMLINK_NOFOLLOW` relative to the parent), so no symlink is ever followed and a
//! symlink's own owner is shifted. It does not enter other mounts (a different `st_dev` or
//! mount id than the top: reported, not touched). Uids and gids are shifted independently; an id
//! in neither range is left as it is and counted.
//!
//! `chown` clears setuid/setgid bits (non-directories) and the `security.capability` xattr, so
//! both are read first and put back after. Between the chown and putting them back a `kill -9`
//! would lose them: before such a chown the mode and capability bytes are appended to a log file
//! and fdatasynced. Source and target ranges are disjoint ([`Mapping::new`] refuses overlap), so
//! an owner already in the target range means "done": a second [`shift_tree`] with the same log
//! first re-applies the logged entries whose owner was already shifted, then walks the tree
//! again, skipping what is done. The log is removed when a walk completes.
//!
//! Into host ids ([`Mapping::into_host`]: `shift --to host`, the carry of volumes on
//! `disable`) nothing made by root in a container may become the host's: a setuid bit on a
//! non-directory whose uid moves, a setgid bit on one whose gid moves, a file capability valid
//! for host ids (a v3 one whose root id moves into them, a v2 one on an inode that moves).
//! [`survey`] counts and names them ([`Report::privileged`]); [`shift_tree`] refuses the first
//! it meets before changing it; [`shift_tree_dropping`] drops the bits and the capability
//! before the chown. Into a remap range they are kept exactly.
//!
//! The tree must hold still while it is walked (docker stopped, no container using a bind
//! mount): an entry that changes between `statx` and `chown` is not detected.
//!
//! The walk runs on [`Options::jobs`] threads ([`default_jobs`]: the cores), each taking one
//! directory at a time from a shared stack and pushing the subdirectories it finds; the result
//! is the same whatever the number (pool.rs explains the sharing: the hard-link set, the log's
//! batches, progress, errors). A queued directory keeps its fd while fewer than a quarter of
//! the open file limit do (which the walk raises to the hard limit) and is opened again by name
//! otherwise (no symlink followed, the same dev and inode checked), so the fds needed do not
//! grow with the width or the depth of the tree. Trees deeper than [`MAX_DEPTH`] are refused
//! ([`TooDeep`]).
//!
//! Per inode that is not a directory the walk makes three syscalls: `statx` (the owner and the
//! type), `listxattrat` (whether it holds a capability or an ACL: one call for all three names;
//! on kernels before 6.13 `llistxattr` through `/proc/self/fd`) and `fchownat`; `chown -R` makes
//! one (`fchownat`; its directory reader gives the type). None of the three can go without
//! giving up exactness (the owner decides the new one; an ACL or capability can be on any
//! inode), so the walk gets below `chown -R`'s time by running on several cores (BENCHMARKS.md,
//! S1).

mod links;
mod log;
mod node;
mod pool;
mod walk;
mod workers;

use std::ffi::OsStr;
use std::ops::ControlFlow;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::Serialize;

pub use crate::formats::id_shift::{IdShift, Mapping};
pub use crate::host::root::OpenDir;
use log::Log;
pub use log::{LeftLog, LogAt, left_log};
use pool::Shared;
pub use pool::default_jobs;
use walk::Worker;

/// The progress callback of [`shift_tree`] is called every this many inodes.
pub const PROGRESS_EVERY: u64 = 4096;

/// What a walk found and did. Every inode is counted once (hard links included) in exactly one
/// of `shifted`, `already_done` and `outside`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Inodes below the top (the top included) on its filesystem.
    pub inodes: u64,
    /// Inodes whose uid or gid (or both) was in the source range and was shifted.
    pub shifted: u64,
    /// Inodes with no id in the source range and at least one in the target range.
    pub already_done: u64,
    /// Inodes whose uid and gid are both in neither range: left as they are.
    pub outside: u64,
    /// Ids (uids and gids counted separately) in neither range, on any inode: left as they are.
    pub outside_ids: u64,
    /// Inodes with at least one id (uid or gid) in neither range.
    pub outside_id_inodes: u64,
    /// POSIX ACL entries (access and default) whose id was shifted.
    pub acl_entries_shifted: u64,
    /// `security.capability` xattrs put back after the chown that cleared them.
    pub caps_restored: u64,
    /// Version 3 capabilities whose root id was shifted.
    pub caps_rootids_shifted: u64,
    /// setuid/setgid bits put back after the chown that cleared them.
    pub setid_restored: u64,
    /// Entries of a previous, interrupted walk's log that were re-applied.
    pub(crate) log_replayed: u64,
    /// Mount points below the top that were not entered (another filesystem or a bind mount).
    pub other_filesystems: Vec<PathBuf>,
    /// The first inode (in path order) with an id in neither range (for messages).
    pub first_outside: Option<PathBuf>,
    /// The first inode (in path order) with a uid or gid in the target range already (for
    /// messages; not part of the JSON document).
    #[serde(skip)]
    pub first_done: Option<PathBuf>,
    /// Inodes with at least one id (uid or gid) in the target range already, whatever the
    /// other: `already_done` and those of `shifted` whose other id was done (not part of the
    /// JSON document). A walk that must be undone exactly refuses them all: its undo would
    /// move such an id back with the ones it shifted.
    #[serde(skip)]
    pub(crate) done_id_inodes: u64,
    /// 512-byte blocks the inodes below the top hold (each inode once; not part of the JSON
    /// document): about what a copy of the tree allocates, for the bar of `--carry volumes`.
    #[serde(skip)]
    pub(crate) blocks: u64,
    /// Shifting into host ids ([`Mapping::into_host`]): inodes whose setuid/setgid bit or file
    /// capability would become valid for host ids (a setuid bit on a non-directory whose uid
    /// moves, setgid whose gid moves, a `security.capability` on an inode whose owner or
    /// capability root id moves). [`survey`] counts them; [`shift_tree_dropping`] dropped them.
    pub privileged: u64,
    /// The first [`PRIVILEGED_NAMED`] of them, with what they hold.
    pub privileged_paths: Vec<Privileged>,
    /// Whether their bits and capabilities were dropped (by [`shift_tree_dropping`]).
    pub privileged_dropped: bool,
}

/// How many [`Report::privileged_paths`] are named.
pub(crate) const PRIVILEGED_NAMED: usize = 20;

/// An inode that would carry a container's privilege to host ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Privileged {
    /// The inode.
    pub path: PathBuf,
    /// A setuid bit (the file's owner becomes a host id).
    pub(crate) setuid: bool,
    /// A setgid bit (the file's group becomes a host id).
    pub(crate) setgid: bool,
    /// A file capability (`security.capability`).
    pub(crate) capability: bool,
}

impl Privileged {
    /// "setuid, capability".
    pub fn what(&self) -> String {
        let mut v = Vec::new();
        for (on, name) in [
            (self.setuid, "setuid"),
            (self.setgid, "setgid"),
            (self.capability, "file capability"),
        ] {
            if on {
                v.push(name);
            }
        }
        v.join(", ")
    }
}

/// A walk into host ids met an inode whose setuid/setgid bit or file capability would become
/// valid for host ids, and was not asked to drop them: nothing of that inode was changed.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} holds a {} made under the remapped ids; moved to host ids it would be valid on the host (refused: survey first, or drop it explicitly)", .0.path.display(), .0.what()
)]
pub struct PrivilegedIntoHost(pub Privileged);

/// Directories deeper than this below the top are refused with [`TooDeep`] (by [`survey`]
/// before anything changes): the walk's memory and its paths grow with the depth.
pub const MAX_DEPTH: usize = 4096;

/// The tree is deeper than [`MAX_DEPTH`].
#[derive(Debug, thiserror::Error)]
#[error(
    "{} is more than {max} directories below the top of the walk: deeper trees are refused (move or flatten it first)", path.display()
)]
pub struct TooDeep {
    /// The first directory below the limit.
    pub path: PathBuf,
    /// [`MAX_DEPTH`].
    pub max: usize,
}

/// The walk was stopped by its progress callback. The tree is partly shifted; the same
/// [`shift_tree`] call (same mapping, same log) finishes it.
#[derive(Debug, thiserror::Error)]
#[error("the shift of {0} was interrupted; running it again finishes it")]
pub struct Interrupted(pub PathBuf);

/// How a walk runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Workers (threads) walking at once; 0 counts as 1. [`default_jobs`] unless asked.
    pub jobs: usize,
    /// Into host ids: drop the setuid/setgid bits and file capabilities [`survey`] counts in
    /// [`Report::privileged`] instead of refusing them (see [`shift_tree_dropping`]).
    pub drop_privileged: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            jobs: default_jobs(),
            drop_privileged: false,
        }
    }
}

/// Counts the inodes below `dir` (`dir` included) on its filesystem, hard links once: the
/// total for progress and for "how many inodes" messages. Changes nothing.
pub fn count(dir: &OpenDir) -> Result<u64> {
    let sh = Shared::new(dir, None)?;
    let mut first = Worker::new(&sh);
    first.top()?;
    let r = workers::walk(&sh, first, default_jobs(), &mut |_| {
        ControlFlow::Continue(())
    })?;
    Ok(r.inodes)
}

/// What [`shift_tree`] would do to the owners below `dir`, changing nothing: the same walk,
/// each inode classified (`shifted` counts those it would shift).
pub fn survey(dir: &OpenDir, map: &Mapping) -> Result<Report> {
    survey_with(dir, map, default_jobs())
}

/// [`survey`] with `jobs` workers.
pub fn survey_with(dir: &OpenDir, map: &Mapping, jobs: usize) -> Result<Report> {
    let mut sh = Shared::new(dir, Some(map))?;
    sh.dry = true;
    let mut first = Worker::new(&sh);
    first.top()?;
    workers::walk(&sh, first, jobs, &mut |_| ControlFlow::Continue(()))
}

/// Shifts the owner of every inode below `dir` (`dir` included) by `map`, with
/// [`default_jobs`] workers; see the module documentation for the rules. `log` is the crash
/// log: it must not be inside `dir`, and the same path must be given to the run that resumes
/// an interrupted one. `progress` gets the number of inodes seen so far, about every
/// [`PROGRESS_EVERY`] inodes and at the end, always on the calling thread;
/// `ControlFlow::Break` stops the walk with [`Interrupted`].
///
/// A walk into host ids ([`Mapping::into_host`]) refuses, with [`PrivilegedIntoHost`], the
/// first inode whose setuid/setgid bit or capability would become valid for host ids, before
/// changing it (run [`survey`] first to refuse before anything changes).
pub fn shift_tree(
    dir: &OpenDir,
    map: &Mapping,
    log: &Path,
    progress: &mut dyn FnMut(u64) -> ControlFlow<()>,
) -> Result<Report> {
    shift_tree_with(dir, map, LogAt::Path(log), Options::default(), progress)
}

/// [`shift_tree`], except that a walk into host ids drops the setuid/setgid bits and the file
/// capability of the inodes [`survey`] counts in [`Report::privileged`] (bits and capability
/// first, then the chown) and names them in the report.
pub fn shift_tree_dropping(
    dir: &OpenDir,
    map: &Mapping,
    log: &Path,
    progress: &mut dyn FnMut(u64) -> ControlFlow<()>,
) -> Result<Report> {
    let opts = Options {
        drop_privileged: true,
        ..Options::default()
    };
    shift_tree_with(dir, map, LogAt::Path(log), opts, progress)
}

/// [`shift_tree`] (or [`shift_tree_dropping`]) as `opts` says, with its crash log at `log`
/// (a path, or a name in a directory opened beneath a root).
pub fn shift_tree_with(
    dir: &OpenDir,
    map: &Mapping,
    log: LogAt<'_>,
    opts: Options,
    progress: &mut dyn FnMut(u64) -> ControlFlow<()>,
) -> Result<Report> {
    let top = dir.shown();
    let (log_dir, shown, name) = Log::place(log)?;
    if shown.starts_with(top) {
        bail!(
            "the shift log {} must not be inside the tree it shifts ({})",
            shown.join(OsStr::from_bytes(name.as_bytes())).display(),
            top.display()
        );
    }
    let mut log = Log::open(log_dir, &shown, name, map)?;
    let mut sh = Shared::new(dir, Some(map))?;
    sh.drop_privileged = opts.drop_privileged;
    let entries = std::mem::take(&mut log.replay);
    let log_path = log.path.clone();
    sh.log = Some(std::sync::Mutex::new(log));
    let mut first = Worker::new(&sh);
    for entry in &entries {
        match first.replay(entry) {
            Ok(true) => first.report.log_replayed += 1,
            Ok(false) => {}
            Err(e) => {
                return Err(e.context(format!(
                    "the shift log {} does not fit {} (damaged, or written for another tree): move it away, then run the command again; the {} setuid/setgid modes and capabilities it recorded are then not put back, check them by hand (they are in the log)",
                    log_path.display(),
                    sh.top.display(),
                    entries.len()
                )));
            }
        }
    }
    first.top()?;
    let report = workers::walk(&sh, first, opts.jobs, progress)?;
    if let ControlFlow::Break(()) = progress(report.inodes) {
        return Err(Interrupted(sh.top.clone()).into());
    }
    let log = sh.log.take().expect("set above");
    log.into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .finish()?;
    Ok(report)
}

/// Raises the soft open file limit to the hard one, once per process: a walk (and what runs
/// beside it) then has every fd the admin allows.
pub(crate) fn raise_nofile_limit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut l = getrlimit(Resource::Nofile);
        if l.current != l.maximum {
            l.current = l.maximum;
            if let Err(e) = setrlimit(Resource::Nofile, l) {
                tracing::debug!("cannot raise the open file limit: {e}");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use crate::formats::id_shift::tests::map;
    /// The directory at `p`, opened as the tool opens one.
    fn dir(p: &Path) -> OpenDir {
        crate::host::root::Root::new(Path::new("/"))
            .unwrap()
            .open_dir(p.to_str().unwrap())
            .unwrap()
    }

    use super::log::*;
    use super::node::FORCE_PROC_PATH;
    use super::pool::*;
    use super::walk::*;
    use super::*;
    use crate::formats::xattr::tests::acl;
    use crate::formats::xattr::*;
    use rustix::fs as rfs;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// A tree on the filesystem the tests run on (the target directory: ext4 here, with
    /// xattrs and POSIX ACLs; tmpfs has them too).
    fn tempdir() -> tempfile::TempDir {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/shift-tests");
        fs::create_dir_all(&base).unwrap();
        tempfile::tempdir_in(base).unwrap()
    }

    fn caps_v3(rootid: u32) -> Vec<u8> {
        let mut v = 0x0300_0001u32.to_le_bytes().to_vec();
        v.extend_from_slice(&(1u32 << 12).to_le_bytes()); // CAP_NET_ADMIN permitted
        v.extend_from_slice(&[0; 12]);
        v.extend_from_slice(&rootid.to_le_bytes());
        v
    }

    #[test]
    fn a_crash_between_chown_and_putting_back_is_repaired_by_the_next_run() {
        assert!(
            crate::host::kernel::is_root(),
            "the shift tests run as root"
        );
        let t = tempdir();
        let tree = t.path().join("tree");
        fs::create_dir(&tree).unwrap();
        let log = t.path().join("shift.log");
        let f = tree.join("setuid-cap");
        fs::write(&f, b"x").unwrap();
        std::os::unix::fs::chown(&f, Some(100_001), Some(100_002)).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o6755)).unwrap();
        rfs::setxattr(&f, CAPS, &caps_v3(100_000), rfs::XattrFlags::empty()).unwrap();
        let (top_uid, top_gid) = (100_000, 100_000);
        std::os::unix::fs::chown(&tree, Some(top_uid), Some(top_gid)).unwrap();

        let m = map();
        // The top is chowned as it is met; the file is logged and chowned in the batch at the
        // end: crash right after that chown.
        CRASH_AFTER_CHOWNS.set(Some(1));
        let err =
            shift_tree(&dir(&tree), &m, &log, &mut |_| ControlFlow::Continue(())).unwrap_err();
        assert!(format!("{err:#}").contains("failpoint"), "{err:#}");
        let meta = fs::symlink_metadata(&f).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (300_001, 400_002));
        assert_eq!(meta.mode() & 0o7777, 0o755, "the chown cleared the bits");
        assert!(
            rfs::getxattr(&f, CAPS, &mut [0u8; 64]).is_err(),
            "and the caps"
        );
        let text = fs::read_to_string(&log).unwrap();
        assert!(text.contains("6755 "), "{text}");

        let r = shift_tree(&dir(&tree), &m, &log, &mut |_| ControlFlow::Continue(())).unwrap();
        assert_eq!(r.log_replayed, 1);
        assert_eq!((r.inodes, r.already_done, r.shifted), (2, 2, 0));
        let meta = fs::symlink_metadata(&f).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o6755);
        let mut buf = [0u8; 64];
        let n = rfs::getxattr(&f, CAPS, &mut buf).unwrap();
        assert_eq!(&buf[..n], &caps_v3(300_000)[..]);
        assert!(!log.exists(), "the log goes when the walk completes");
    }

    /// More than a log batch of setuid files (and capabilities) in nested directories.
    fn setid_tree(tree: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for d in 0..4 {
            let dir = tree.join(format!("d{d}")).join("sub");
            fs::create_dir_all(&dir).unwrap();
            for f in 0..300 {
                let p = dir.join(format!("f{f}"));
                fs::write(&p, b"x").unwrap();
                std::os::unix::fs::chown(&p, Some(100_000 + f), Some(100_000 + d)).unwrap();
                fs::set_permissions(&p, fs::Permissions::from_mode(0o4755 + (f % 2) * 0o2000))
                    .unwrap();
                if f % 50 == 0 {
                    rfs::setxattr(&p, CAPS, &caps_v3(100_000), rfs::XattrFlags::empty()).unwrap();
                }
                files.push(p);
            }
            std::os::unix::fs::chown(&dir, Some(100_000), Some(100_000)).unwrap();
            std::os::unix::fs::chown(dir.parent().unwrap(), Some(100_000), Some(100_000)).unwrap();
        }
        std::os::unix::fs::chown(tree, Some(100_000), Some(100_000)).unwrap();
        assert!(files.len() > PENDING_MAX);
        files
    }

    fn check_shifted(files: &[PathBuf]) {
        for (i, p) in files.iter().enumerate() {
            let (d, f) = ((i / 300) as u32, (i % 300) as u32);
            let meta = fs::symlink_metadata(p).unwrap();
            assert_eq!(
                (meta.uid(), meta.gid(), meta.mode() & 0o7777),
                (300_000 + f, 400_000 + d, 0o4755 + (f % 2) * 0o2000),
                "{}",
                p.display()
            );
            let mut buf = [0u8; 64];
            let caps = rfs::getxattr(p, CAPS, &mut buf).map(|n| buf[..n].to_vec());
            if f % 50 == 0 {
                assert_eq!(caps.unwrap(), caps_v3(300_000), "{}", p.display());
            } else {
                assert!(caps.is_err(), "{}", p.display());
            }
        }
    }

    /// A crash (the failpoint) in the middle of a walk, serial or parallel, then the same
    /// walk again: it finishes exactly.
    #[test]
    fn a_walk_resumed_after_a_crash_in_a_log_batch_finishes_exactly() {
        for jobs in [1, 2, 4] {
            for crash_after in [1, PENDING_MAX as u64 - 1, PENDING_MAX as u64 + 3] {
                a_walk_resumed_after_a_crash(jobs, crash_after);
            }
        }
    }

    fn a_walk_resumed_after_a_crash(jobs: usize, crash_after: u64) {
        let t = tempdir();
        let tree = t.path().join("tree");
        fs::create_dir(&tree).unwrap();
        let files = setid_tree(&tree);
        let log = t.path().join("shift.log");
        let log_dir = dir(t.path());
        let at = LogAt::In(&log_dir, "shift.log");
        let opts = Options {
            jobs,
            drop_privileged: false,
        };
        let go = &mut |_| ControlFlow::Continue(());
        CRASH_AFTER_CHOWNS.set(Some(crash_after));
        let err = shift_tree_with(&dir(&tree), &map(), at, opts, go).unwrap_err();
        assert!(format!("{err:#}").contains("failpoint"), "{err:#}");
        assert!(log.exists());
        let r = shift_tree_with(&dir(&tree), &map(), at, opts, go)
            .unwrap_or_else(|e| panic!("{jobs} jobs, resume after {crash_after} chowns: {e:#}"));
        // Every logged entry whose chown happened is put back (a batch stays in the log
        // until the walk completes). After the Nth chown every other worker stops after its
        // next chown at the latest (the failpoint fails them all from then on).
        assert!(
            (crash_after..crash_after + jobs as u64).contains(&r.log_replayed),
            "{jobs} jobs, crash after {crash_after}: {r:?}"
        );
        assert!(!log.exists());
        check_shifted(&files);
        // And a walk after that finds everything done.
        let again = shift_tree_with(&dir(&tree), &map(), at, opts, go).unwrap();
        assert_eq!((again.shifted, again.log_replayed), (0, 0), "{again:?}");
        assert_eq!(again.inodes, r.inodes);
    }

    /// A symlink planted where the log goes is not followed: the walk fails before any chown
    /// whose log entry would have gone through it, and its target is untouched.
    #[test]
    fn a_symlink_in_place_of_the_log_is_not_followed() {
        let t = tempdir();
        let tree = t.path().join("tree");
        fs::create_dir(&tree).unwrap();
        let f = tree.join("setuid");
        fs::write(&f, b"x").unwrap();
        std::os::unix::fs::chown(&f, Some(100_001), Some(100_001)).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o4755)).unwrap();
        let victim = t.path().join("victim");
        // Empty: read through the link it would look like no log at all, and be written.
        fs::write(&victim, b"").unwrap();
        std::os::unix::fs::symlink(&victim, t.path().join("shift.log")).unwrap();
        let log_dir = dir(t.path());
        for at in [
            LogAt::In(&log_dir, "shift.log"),
            LogAt::Path(&t.path().join("shift.log")),
        ] {
            let err = shift_tree_with(&dir(&tree), &map(), at, Options::default(), &mut |_| {
                ControlFlow::Continue(())
            })
            .unwrap_err();
            assert!(format!("{err:#}").contains("shift log"), "{err:#}");
            assert_eq!(fs::read(&victim).unwrap(), b"");
            let meta = fs::symlink_metadata(&f).unwrap();
            assert_eq!((meta.uid(), meta.mode() & 0o7777), (100_001, 0o4755));
        }
    }

    /// Directories queued beyond the fd budget are queued by path and opened again from the
    /// top: the walk is the same.
    #[test]
    fn directories_queued_beyond_the_fd_budget_are_opened_again_by_path() {
        let t = tempdir();
        let tree = t.path().join("tree");
        let mut files = Vec::new();
        for a in 0..12 {
            for b in 0..12 {
                let d = tree.join(format!("a{a}/b{b}"));
                fs::create_dir_all(&d).unwrap();
                let f = d.join("f");
                fs::write(&f, b"").unwrap();
                std::os::unix::fs::chown(&f, Some(100_000 + b), Some(100_000 + a)).unwrap();
                std::os::unix::fs::chown(&d, Some(100_001), Some(100_001)).unwrap();
                files.push((f, a, b));
            }
        }
        for jobs in [1, 3] {
            FD_BUDGET.set(Some(1));
            let m = if jobs == 1 { map() } else { map().reverse() };
            let r = shift_tree_with(
                &dir(&tree),
                &m,
                LogAt::Path(&t.path().join("log")),
                Options {
                    jobs,
                    drop_privileged: false,
                },
                &mut |_| ControlFlow::Continue(()),
            )
            .unwrap();
            // The top and the 12 `a` directories stay root's; 144 `b` directories and 144
            // files shift.
            assert_eq!(
                (r.inodes, r.shifted, r.outside),
                (301, 288, 13),
                "{jobs} jobs: {r:?}"
            );
            let (du, dg) = if jobs == 1 {
                (300_000, 400_000)
            } else {
                (100_000, 100_000)
            };
            for (f, a, b) in &files {
                let meta = fs::symlink_metadata(f).unwrap();
                assert_eq!(
                    (meta.uid(), meta.gid()),
                    (du + b, dg + a),
                    "{}",
                    f.display()
                );
            }
        }
    }

    #[test]
    fn a_log_whose_entries_do_not_fit_the_tree_is_a_clear_error() {
        let t = tempdir();
        let tree = t.path().join("tree");
        fs::create_dir_all(tree.join("d")).unwrap();
        fs::write(tree.join("d/file"), b"").unwrap();
        let log = t.path().join("shift.log");
        // What the old walk wrote: an entry below a file.
        fs::write(&log, Log::header(&map()) + "4755 - d/file/f3\n").unwrap();
        let err = shift_tree(
            &dir(&tree),
            &map(),
            &log,
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("move it away") && msg.contains("does not fit"),
            "{msg}"
        );
        // A damaged line too.
        fs::write(&log, Log::header(&map()) + "garbage\n").unwrap();
        let msg = format!(
            "{:#}",
            shift_tree(
                &dir(&tree),
                &map(),
                &log,
                &mut |_| ControlFlow::Continue(())
            )
            .unwrap_err()
        );
        assert!(
            msg.contains("move it away") && msg.contains("bad line"),
            "{msg}"
        );
        // left_log tells which direction wrote a log.
        assert_eq!(left_log(&log, &map()).unwrap(), LeftLog::Same);
        assert_eq!(left_log(&log, &map().reverse()).unwrap(), LeftLog::Reverse);
        fs::write(&log, "something else\n").unwrap();
        assert!(matches!(left_log(&log, &map()).unwrap(), LeftLog::Other(_)));
        fs::remove_file(&log).unwrap();
        assert_eq!(left_log(&log, &map()).unwrap(), LeftLog::None);
    }

    #[test]
    fn xattrs_are_found_through_proc_on_kernels_without_listxattrat() {
        let t = tempdir();
        let tree = t.path().join("tree");
        fs::create_dir(&tree).unwrap();
        let f = tree.join("acl");
        fs::write(&f, b"").unwrap();
        std::os::unix::fs::chown(&f, Some(100_001), Some(100_002)).unwrap();
        let a = acl(&[
            (1, 6, u32::MAX),
            (2, 6, 100_003),
            (4, 4, u32::MAX),
            (0x10, 6, u32::MAX),
            (0x20, 4, u32::MAX),
        ]);
        rfs::setxattr(&f, ACL_ACCESS, &a, rfs::XattrFlags::empty()).unwrap();
        FORCE_PROC_PATH.set(true);
        let r = shift_tree(&dir(&tree), &map(), &t.path().join("log"), &mut |_| {
            ControlFlow::Continue(())
        });
        FORCE_PROC_PATH.set(false);
        let r = r.unwrap();
        assert_eq!((r.inodes, r.acl_entries_shifted), (2, 1), "{r:?}");
        let mut buf = [0u8; 256];
        let n = rfs::getxattr(&f, ACL_ACCESS, &mut buf).unwrap();
        assert_eq!(&buf[16..20], &300_003u32.to_le_bytes(), "{:?}", &buf[..n]);
    }

    #[test]
    fn an_inode_with_one_id_already_in_the_target_range_is_counted_whatever_the_other() {
        let t = tempdir();
        let top = t.path().join("tree");
        fs::create_dir(&top).unwrap();
        std::os::unix::fs::chown(&top, Some(0), Some(0)).unwrap();
        let f = top.join("mixed");
        fs::write(&f, b"").unwrap();
        // uid in the source range (it would shift), gid in the target range already.
        std::os::unix::fs::chown(&f, Some(100_001), Some(400_001)).unwrap();
        let r = survey(&dir(&top), &map()).unwrap();
        assert_eq!((r.shifted, r.already_done), (1, 0), "{r:?}");
        assert_eq!(r.done_id_inodes, 1, "{r:?}");
        assert_eq!(r.first_done.as_deref(), Some(f.as_path()));
    }

    #[test]
    fn the_blocks_of_a_tree_are_counted_once_per_inode() {
        let t = tempdir();
        let top = t.path().join("tree");
        fs::create_dir_all(top.join("d")).unwrap();
        fs::write(top.join("d/f"), vec![1u8; 1 << 20]).unwrap();
        // A second name of the same megabyte: counted once.
        fs::hard_link(top.join("d/f"), top.join("h")).unwrap();
        let r = survey(&dir(&top), &map()).unwrap();
        let bytes = r.blocks * 512;
        assert!((1 << 20..(1 << 20) + (64 << 10)).contains(&bytes), "{r:?}");
    }

    #[test]
    fn a_log_of_another_mapping_or_inside_the_tree_is_refused() {
        let t = tempdir();
        let tree = t.path().join("tree");
        fs::create_dir(&tree).unwrap();
        let log = t.path().join("shift.log");
        fs::write(&log, Log::header(&map().reverse()) + "4755 - a\n").unwrap();
        let err = shift_tree(
            &dir(&tree),
            &map(),
            &log,
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("another shift"), "{err:#}");
        let inside = tree.join("shift.log");
        let err = shift_tree(&dir(&tree), &map(), &inside, &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("must not be inside"), "{err:#}");
    }
}
