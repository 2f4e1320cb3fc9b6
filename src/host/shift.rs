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
//! mount): an entry that changes between `statx` and `chown` is not detected. The walk is a
//! loop, not a recursion; it keeps the top 64 directory levels and every 64th below open and
//! reopens the others by name (no symlink followed, the same
//! dev and inode checked), so it needs about 64 + depth/64 fds whatever the open file limit
//! (which it raises to the hard limit anyway). Trees deeper than [`MAX_DEPTH`] are refused
//! ([`TooDeep`]).

use std::collections::HashSet;
use std::ffi::{CStr, CString, OsStr};
use std::fs;
use std::io::{Read, Write as _};
use std::mem::MaybeUninit;
use std::ops::ControlFlow;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use rustix::fs::{
    self as rfs, AtFlags, FileType, Gid, Mode, OFlags, RawDir, Statx, StatxFlags, Uid,
};
use rustix::io::Errno;
use serde::Serialize;

/// The progress callback of [`shift_tree`] is called every this many inodes.
pub const PROGRESS_EVERY: u64 = 4096;

const CAPS: &CStr = c"security.capability";
const ACL_ACCESS: &CStr = c"system.posix_acl_access";
const ACL_DEFAULT: &CStr = c"system.posix_acl_default";
/// `statx` fields the walk reads.
const WANT: StatxFlags = StatxFlags::TYPE
    .union(StatxFlags::MODE)
    .union(StatxFlags::NLINK)
    .union(StatxFlags::UID)
    .union(StatxFlags::GID)
    .union(StatxFlags::INO)
    .union(StatxFlags::MNT_ID);
/// Largest xattr value and name list (`XATTR_SIZE_MAX`, `XATTR_LIST_MAX`).
const XATTR_MAX: usize = 65536;

/// One kind of id (uids or gids): `from..from+count` moves to `to..to+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct IdShift {
    /// First id of the source range.
    pub from: u32,
    /// First id of the target range.
    pub to: u32,
    /// Number of ids in each range.
    pub count: u32,
}

/// Where an id stands relative to an [`IdShift`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// In the source range: becomes this id.
    Shift(u32),
    /// In the target range already.
    Done,
    /// In neither range: left as it is.
    Outside,
}

impl IdShift {
    /// From ids as /etc/subuid and /etc/subgid hold them (64-bit): refused above 4294967295.
    pub fn of(from: u64, to: u64, count: u64) -> Result<IdShift> {
        let id = |v: u64, what: &str| {
            u32::try_from(v).map_err(|_| anyhow!("{what} {v} is above 4294967295"))
        };
        Ok(IdShift {
            from: id(from, "the first id shifted")?,
            to: id(to, "the first id shifted to")?,
            count: id(count, "the number of ids shifted")?,
        })
    }

    fn class(&self, id: u32) -> Class {
        if id.wrapping_sub(self.from) < self.count {
            Class::Shift(self.to + (id - self.from))
        } else if id.wrapping_sub(self.to) < self.count {
            Class::Done
        } else {
            Class::Outside
        }
    }

    /// The new id when `id` is in the source range.
    fn map(&self, id: u32) -> Option<u32> {
        match self.class(id) {
            Class::Shift(new) => Some(new),
            _ => None,
        }
    }

    fn reverse(self) -> IdShift {
        IdShift {
            from: self.to,
            to: self.from,
            count: self.count,
        }
    }

    fn check(&self, kind: &str) -> Result<()> {
        let end = |start: u32| u64::from(start) + u64::from(self.count);
        if self.count == 0 {
            bail!("{kind} shift: the range is empty");
        }
        // The last id must stay below 4294967295, which chown reads as "leave unchanged".
        if end(self.from) > u64::from(u32::MAX) || end(self.to) > u64::from(u32::MAX) {
            bail!(
                "{kind} shift {}+{} -> {}: the range runs past 4294967294",
                self.from,
                self.count,
                self.to
            );
        }
        if u64::from(self.from) < end(self.to) && u64::from(self.to) < end(self.from) {
            bail!(
                "{kind} shift {}..{} -> {}..{}: the ranges overlap (a shift is only resumable between disjoint ranges)",
                self.from,
                end(self.from),
                self.to,
                end(self.to)
            );
        }
        Ok(())
    }
}

/// The shift of a tree: uid `u` in `uid.from..uid.from+uid.count` becomes `uid.to + (u -
/// uid.from)`; gids the same, separately. Source and target ranges are disjoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mapping {
    uid: IdShift,
    gid: IdShift,
    /// The source ids are the host's own (0..count, see [`Mapping::for_range`]).
    #[serde(skip)]
    from_host: bool,
    /// The target ids are the host's own: setid bits and file capabilities made in a
    /// container would be valid on the host (see [`Mapping::into_host`]).
    #[serde(skip)]
    to_host: bool,
}

impl Mapping {
    /// Checks the ranges: not empty, below 4294967295 (chown's "unchanged"), and source and
    /// target disjoint (an owner in the target range then means "already done", which is what
    /// makes a rerun resume).
    pub fn new(uid: IdShift, gid: IdShift) -> Result<Mapping> {
        uid.check("uid")?;
        gid.check("gid")?;
        // A target range holding uid or gid 0 is the host's own ids whoever asks.
        Ok(Mapping {
            uid,
            gid,
            from_host: uid.from == 0 || gid.from == 0,
            to_host: uid.to == 0 || gid.to == 0,
        })
    }

    /// Between the host's ids 0..count and a remap range START.. (uids `uid` = (START, count),
    /// gids the same): what a remapped container's id u is on the host, `into_range`, or back.
    pub fn for_range(uid: (u64, u64), gid: (u64, u64), into_range: bool) -> Result<Mapping> {
        let mut m = Mapping::new(IdShift::of(0, uid.0, uid.1)?, IdShift::of(0, gid.0, gid.1)?)?;
        m.from_host = true;
        Ok(if into_range { m } else { m.reverse() })
    }

    /// Whether the target ids are the host's own (`for_range(.., false)`, or a target range
    /// holding id 0). Such a walk never leaves a setuid/setgid bit on a non-directory whose
    /// owner or group it moved, nor writes a file capability for host ids: [`survey`] counts
    /// and names those inodes ([`Report::privileged`]); [`shift_tree`] refuses them and
    /// [`shift_tree_dropping`] drops the bits and the capability.
    pub fn into_host(&self) -> bool {
        self.to_host
    }

    /// The uid shift.
    pub fn uid(&self) -> IdShift {
        self.uid
    }

    /// The gid shift.
    pub fn gid(&self) -> IdShift {
        self.gid
    }

    /// The shift back: target to source.
    pub fn reverse(&self) -> Mapping {
        Mapping {
            uid: self.uid.reverse(),
            gid: self.gid.reverse(),
            from_host: self.to_host,
            to_host: self.from_host,
        }
    }
}

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
    pub log_replayed: u64,
    /// Mount points below the top that were not entered (another filesystem or a bind mount).
    pub other_filesystems: Vec<PathBuf>,
    /// The first inode found with an id in neither range (for messages).
    pub first_outside: Option<PathBuf>,
    /// The first inode found with a uid or gid in the target range already (for messages;
    /// not part of the JSON document).
    #[serde(skip)]
    pub first_done: Option<PathBuf>,
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
pub const PRIVILEGED_NAMED: usize = 20;

/// An inode that would carry a container's privilege to host ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Privileged {
    /// The inode.
    pub path: PathBuf,
    /// A setuid bit (the file's owner becomes a host id).
    pub setuid: bool,
    /// A setgid bit (the file's group becomes a host id).
    pub setgid: bool,
    /// A file capability (`security.capability`).
    pub capability: bool,
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

/// Counts the inodes below `dir` (`dir` included) on its filesystem, hard links once: the
/// total for progress and for "how many inodes" messages. Changes nothing.
pub fn count(dir: &Path) -> Result<u64> {
    let mut progress = |_| ControlFlow::Continue(());
    let mut walk = Walk::new(dir, None, &mut progress)?;
    walk.run()?;
    Ok(walk.report.inodes)
}

/// What [`shift_tree`] would do to the owners below `dir`, changing nothing: the same walk,
/// each inode classified (`shifted` counts those it would shift).
pub fn survey(dir: &Path, map: &Mapping) -> Result<Report> {
    let mut progress = |_| ControlFlow::Continue(());
    let mut walk = Walk::new(dir, Some(map), &mut progress)?;
    walk.dry = true;
    walk.run()?;
    Ok(walk.report)
}

/// Shifts the owner of every inode below `dir` (`dir` included) by `map`; see the module
/// documentation for the rules. `log` is the crash log: it must not be inside `dir`, and the
/// same path must be given to the run that resumes an interrupted one. `progress` gets the
/// number of inodes seen so far, every [`PROGRESS_EVERY`] inodes and at the end;
/// `ControlFlow::Break` stops the walk with [`Interrupted`].
///
/// A walk into host ids ([`Mapping::into_host`]) refuses, with [`PrivilegedIntoHost`], the
/// first inode whose setuid/setgid bit or capability would become valid for host ids, before
/// changing it (run [`survey`] first to refuse before anything changes).
pub fn shift_tree(
    dir: &Path,
    map: &Mapping,
    log: &Path,
    progress: &mut dyn FnMut(u64) -> ControlFlow<()>,
) -> Result<Report> {
    shift(dir, map, log, false, progress)
}

/// [`shift_tree`], except that a walk into host ids drops the setuid/setgid bits and the file
/// capability of the inodes [`survey`] counts in [`Report::privileged`] (bits and capability
/// first, then the chown) and names them in the report.
pub fn shift_tree_dropping(
    dir: &Path,
    map: &Mapping,
    log: &Path,
    progress: &mut dyn FnMut(u64) -> ControlFlow<()>,
) -> Result<Report> {
    shift(dir, map, log, true, progress)
}

/// What an earlier, interrupted walk left in a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftLog {
    /// No log (or one cut short before its first entry): nothing to finish.
    None,
    /// A log of this same mapping: the walk resumes it.
    Same,
    /// A log of the reverse mapping: that walk must be finished first.
    Reverse,
    /// A log of another mapping, or not a shift log: its first line.
    Other(String),
}

/// Reads what the log at `log` was written for, relative to `map`.
pub fn left_log(log: &Path, map: &Mapping) -> Result<LeftLog> {
    let text = match fs::read(log) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LeftLog::None),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read the shift log {}", log.display()));
        }
    };
    let Some(nl) = text.iter().position(|&b| b == b'\n') else {
        return Ok(LeftLog::None);
    };
    let first = &text[..=nl];
    Ok(if first == Log::header(map).as_bytes() {
        LeftLog::Same
    } else if first == Log::header(&map.reverse()).as_bytes() {
        LeftLog::Reverse
    } else {
        LeftLog::Other(String::from_utf8_lossy(&text[..nl]).into_owned())
    })
}

fn shift(
    dir: &Path,
    map: &Mapping,
    log: &Path,
    drop_privileged: bool,
    progress: &mut dyn FnMut(u64) -> ControlFlow<()>,
) -> Result<Report> {
    let top = fs::canonicalize(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    let log_dir = log
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let log_dir = fs::canonicalize(log_dir)
        .with_context(|| format!("cannot use {} as the shift log", log.display()))?;
    if log_dir.starts_with(&top) {
        bail!(
            "the shift log {} must not be inside the tree it shifts ({})",
            log.display(),
            top.display()
        );
    }
    let mut log = Log::open(log, map)?;
    let mut walk = Walk::new(dir, Some(map), progress)?;
    walk.drop_privileged = drop_privileged;
    let entries = std::mem::take(&mut log.replay);
    for entry in &entries {
        match walk.replay(entry) {
            Ok(true) => walk.report.log_replayed += 1,
            Ok(false) => {}
            Err(e) => {
                return Err(e.context(format!(
                    "the shift log {} does not fit {} (damaged, or written for another tree): move it away, then run the command again; the {} setuid/setgid modes and capabilities it recorded are then not put back, check them by hand (they are in the log)",
                    log.path.display(),
                    walk.top.display(),
                    entries.len()
                )));
            }
        }
    }
    walk.log = Some(log);
    walk.run()?;
    let inodes = walk.report.inodes;
    if let ControlFlow::Break(()) = (walk.progress)(inodes) {
        return Err(Interrupted(walk.top.clone()).into());
    }
    if let Some(log) = walk.log.take() {
        log.finish()?;
    }
    Ok(walk.report)
}

/// The crash log: a header naming the mapping, then one line per inode whose setid bits or
/// capability a chown is about to clear: `MODE CAPS_HEX PATH` (octal mode, `-` for no
/// capability, the path relative to the top with bytes outside `!`..`~` and `%` written `%XX`).
struct Log {
    path: PathBuf,
    header: String,
    file: Option<fs::File>,
    /// Entries of an earlier, interrupted walk.
    replay: Vec<LogEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct LogEntry {
    mode: u32,
    caps: Option<Vec<u8>>,
    path: Vec<u8>,
}

impl Log {
    fn header(map: &Mapping) -> String {
        let (u, g) = (map.uid, map.gid);
        format!(
            "docker-userns shift log 1 uid {} {} {} gid {} {} {}\n",
            u.from, u.to, u.count, g.from, g.to, g.count
        )
    }

    /// Reads what an interrupted walk left (refusing a log of another mapping); keeps the file
    /// to append to.
    fn open(path: &Path, map: &Mapping) -> Result<Log> {
        let header = Log::header(map);
        let mut log = Log {
            path: path.to_path_buf(),
            header,
            file: None,
            replay: Vec::new(),
        };
        let mut text = Vec::new();
        match fs::File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut text)
                    .with_context(|| format!("cannot read the shift log {}", path.display()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(log),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read the shift log {}", path.display()));
            }
        }
        // A header cut short: nothing was chowned relying on this log (the header is synced
        // before the first entry); start it again.
        if let Some(entries) = parse_log(&text, &log.header).with_context(|| {
            format!(
                "the shift log {} cannot be used (it is what an interrupted shift left: finish that shift, or if the log is damaged move it away and check the setuid/setgid bits and capabilities it lists by hand)",
                path.display()
            )
        })?
        {
            log.replay = entries;
            let file = fs::OpenOptions::new()
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the shift log {}", path.display()))?;
            log.file = Some(file);
        }
        Ok(log)
    }

    /// Appends entries (whole lines) and syncs them; creates the file (header first, synced,
    /// directory synced) on the first call.
    fn append(&mut self, lines: &str) -> Result<()> {
        let path = &self.path;
        let ctx = || format!("cannot write the shift log {}", path.display());
        if self.file.is_none() {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .with_context(ctx)?;
            f.write_all(self.header.as_bytes()).with_context(ctx)?;
            f.sync_all().with_context(ctx)?;
            sync_parent(path)?;
            self.file = Some(f);
        }
        let f = self.file.as_mut().expect("opened above");
        f.write_all(lines.as_bytes()).with_context(ctx)?;
        rfs::fdatasync(&*f).with_context(ctx)?;
        Ok(())
    }

    /// The walk is complete: the log goes.
    fn finish(self) -> Result<()> {
        drop(self.file);
        match fs::remove_file(&self.path) {
            Ok(()) => sync_parent(&self.path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e)
                .with_context(|| format!("cannot remove the shift log {}", self.path.display())),
        }
    }
}

fn sync_parent(path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}

fn log_line(mode: u32, caps: Option<&[u8]>, rel: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut line = format!("{mode:o} ");
    match caps {
        Some(c) if !c.is_empty() => c.iter().for_each(|b| {
            let _ = write!(line, "{b:02x}");
        }),
        _ => line.push('-'),
    }
    line.push(' ');
    if rel.is_empty() {
        line.push('.');
    }
    for &b in rel {
        if b.is_ascii_graphic() && b != b'%' {
            line.push(char::from(b));
        } else {
            let _ = write!(line, "%{b:02X}");
        }
    }
    line.push('\n');
    line
}

/// The entries of a log, `None` when its header was cut short. A last line without its newline
/// was cut short by a crash before its sync, so before its chown: it is dropped.
fn parse_log(text: &[u8], header: &str) -> Result<Option<Vec<LogEntry>>> {
    let Some(nl) = text.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    if &text[..=nl] != header.as_bytes() {
        bail!(
            "it was written for another shift ({:?}, this one is {:?}); finish that shift first",
            String::from_utf8_lossy(&text[..nl]),
            header.trim_end()
        );
    }
    let mut entries = Vec::new();
    let mut rest = &text[nl + 1..];
    while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..nl];
        rest = &rest[nl + 1..];
        entries.push(
            parse_line(line)
                .ok_or_else(|| anyhow!("bad line {:?}", String::from_utf8_lossy(line)))?,
        );
    }
    Ok(Some(entries))
}

fn parse_line(line: &[u8]) -> Option<LogEntry> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let (mode, caps, path) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let mode = u32::from_str_radix(mode, 8).ok().filter(|m| *m <= 0o7777)?;
    let hex = |s: &str| u8::from_str_radix(s, 16).ok();
    let caps = match caps {
        "-" => None,
        c if c.len() % 2 == 0 && c.is_ascii() => Some(
            (0..c.len())
                .step_by(2)
                .map(|i| hex(&c[i..i + 2]))
                .collect::<Option<Vec<u8>>>()?,
        ),
        _ => return None,
    };
    let mut bytes = Vec::new();
    if path != "." {
        let mut p = path.as_bytes();
        while let Some((&b, rest)) = p.split_first() {
            if b == b'%' {
                let h = std::str::from_utf8(rest.get(..2)?).ok()?;
                bytes.push(hex(h)?);
                p = &rest[2..];
            } else {
                bytes.push(b);
                p = rest;
            }
        }
    }
    Some(LogEntry {
        mode,
        caps,
        path: bytes,
    })
}

/// Shifts the ids of ACL_USER and ACL_GROUP entries of a POSIX ACL xattr (the kernel's
/// format: version 2 header, then 8-byte entries `tag u16, perm u16, id u32`, little endian)
/// that are in the source range; returns how many.
fn shift_acl(acl: &mut [u8], map: &Mapping) -> Result<u64> {
    const ACL_USER: u16 = 0x02;
    const ACL_GROUP: u16 = 0x08;
    if acl.len() < 4 || !(acl.len() - 4).is_multiple_of(8) {
        bail!("a POSIX ACL of {} bytes is malformed", acl.len());
    }
    let version = u32::from_le_bytes([acl[0], acl[1], acl[2], acl[3]]);
    if version != 2 {
        bail!("a POSIX ACL of version {version} is unknown (2 expected)");
    }
    let mut shifted = 0;
    for e in acl[4..].chunks_exact_mut(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let new = match tag {
            ACL_USER => map.uid.map(id),
            ACL_GROUP => map.gid.map(id),
            _ => None,
        };
        if let Some(new) = new {
            e[4..8].copy_from_slice(&new.to_le_bytes());
            shifted += 1;
        }
    }
    Ok(shifted)
}

/// The root id of a `VFS_CAP_REVISION_3` capability xattr (`None`: another revision, which
/// holds none and is valid in every user namespace).
fn caps_rootid(caps: &[u8]) -> Option<u32> {
    const REVISION_MASK: u32 = 0xFF00_0000;
    const REVISION_3: u32 = 0x0300_0000;
    let magic = u32::from_le_bytes(caps.get(..4)?.try_into().ok()?);
    if caps.len() != 24 || magic & REVISION_MASK != REVISION_3 {
        return None;
    }
    Some(u32::from_le_bytes(caps[20..24].try_into().ok()?))
}

/// Shifts the root id of a `VFS_CAP_REVISION_3` capability xattr when it is in the uid source
/// range; returns whether it did. Other revisions have no id and stay as they are.
fn shift_caps(caps: &mut [u8], uid: &IdShift) -> bool {
    const REVISION_MASK: u32 = 0xFF00_0000;
    const REVISION_3: u32 = 0x0300_0000;
    if caps.len() != 24 {
        return false;
    }
    let magic = u32::from_le_bytes([caps[0], caps[1], caps[2], caps[3]]);
    if magic & REVISION_MASK != REVISION_3 {
        return false;
    }
    let rootid = u32::from_le_bytes([caps[20], caps[21], caps[22], caps[23]]);
    match uid.map(rootid) {
        Some(new) => {
            caps[20..24].copy_from_slice(&new.to_le_bytes());
            true
        }
        None => false,
    }
}

/// An inode being worked on: through its own fd (directories, opened to be walked) or by name
/// in its parent, with `/proc/self/fd/PARENT/NAME` for the xattr calls (l*xattr: the name is not
/// followed; f*xattr does not work on `O_PATH` fds).
#[derive(Clone, Copy)]
enum Node<'a> {
    Fd(BorrowedFd<'a>),
    At {
        parent: BorrowedFd<'a>,
        name: &'a CStr,
        proc: &'a CStr,
    },
}

impl Node<'_> {
    fn list(self, buf: &mut [u8]) -> rustix::io::Result<usize> {
        match self {
            Node::Fd(fd) => rfs::flistxattr(fd, buf),
            Node::At { parent, name, proc } => match listxattrat(parent, name, buf) {
                Err(Errno::NOSYS) => rfs::llistxattr(proc, buf),
                r => r,
            },
        }
    }

    fn get(self, name: &CStr, buf: &mut [u8]) -> rustix::io::Result<usize> {
        match self {
            Node::Fd(fd) => rfs::fgetxattr(fd, name, buf),
            Node::At { proc, .. } => rfs::lgetxattr(proc, name, buf),
        }
    }

    fn set(self, name: &CStr, value: &[u8]) -> rustix::io::Result<()> {
        match self {
            Node::Fd(fd) => rfs::fsetxattr(fd, name, value, rfs::XattrFlags::empty()),
            Node::At { proc, .. } => rfs::lsetxattr(proc, name, value, rfs::XattrFlags::empty()),
        }
    }

    fn remove(self, name: &CStr) -> rustix::io::Result<()> {
        match self {
            Node::Fd(fd) => rfs::fremovexattr(fd, name),
            Node::At { proc, .. } => rfs::lremovexattr(proc, name),
        }
    }

    fn chown(self, uid: Option<u32>, gid: Option<u32>) -> rustix::io::Result<()> {
        // The mapping keeps every id below 4294967295 (see IdShift::check).
        let uid = uid.map(Uid::from_raw_unchecked);
        let gid = gid.map(Gid::from_raw_unchecked);
        match self {
            Node::Fd(fd) => rfs::fchown(fd, uid, gid),
            Node::At { parent, name, .. } => {
                rfs::chownat(parent, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
            }
        }
    }

    fn chmod(self, mode: u32) -> rustix::io::Result<()> {
        let mode = Mode::from_raw_mode(mode);
        match self {
            Node::Fd(fd) => rfs::fchmod(fd, mode),
            // Only called on what statx said is not a symlink.
            Node::At { parent, name, .. } => rfs::chmodat(parent, name, mode, AtFlags::empty()),
        }
    }
}

/// `listxattrat(2)` (Linux 6.13) with `AT_SYMLINK_NOFOLLOW`: the names of `name`'s xattrs, looked
/// up in `parent` alone, where `llistxattr` on `/proc/self/fd/PARENT/NAME` walks /proc first (it
/// is most of the walk's cost above `chown -R`'s, see BENCHMARKS.md). `NOSYS` on older kernels
/// (remembered, so only the first call pays for it).
fn listxattrat(parent: BorrowedFd<'_>, name: &CStr, buf: &mut [u8]) -> rustix::io::Result<usize> {
    use std::sync::atomic::{AtomicBool, Ordering};
    // The same number on every architecture Rust targets since the tables were unified (424).
    const SYS_LISTXATTRAT: libc::c_long = 465;
    static MISSING: AtomicBool = AtomicBool::new(false);
    #[cfg(test)]
    if FORCE_PROC_PATH.get() {
        return Err(Errno::NOSYS);
    }
    if MISSING.load(Ordering::Relaxed) {
        return Err(Errno::NOSYS);
    }
    // SAFETY: the fd and the NUL-terminated name are valid for the call, and the kernel writes
    // at most `buf.len()` bytes into `buf`.
    let n = unsafe {
        libc::syscall(
            SYS_LISTXATTRAT,
            parent.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW as libc::c_uint,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    match usize::try_from(n) {
        Ok(n) => Ok(n),
        Err(_) => {
            let e = Errno::from_raw_os_error(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            );
            if e == Errno::NOSYS {
                MISSING.store(true, Ordering::Relaxed);
            }
            Err(e)
        }
    }
}

/// Writes `/proc/self/fd/PARENT/NAME\0` into `buf`.
fn proc_path<'b>(buf: &'b mut Vec<u8>, parent: BorrowedFd<'_>, name: &CStr) -> &'b CStr {
    buf.clear();
    let _ = write!(buf, "/proc/self/fd/{}/", parent.as_raw_fd());
    buf.extend_from_slice(name.to_bytes_with_nul());
    CStr::from_bytes_with_nul(buf).expect("one NUL, at the end")
}

#[cfg(test)]
thread_local! {
    /// Test switch: list xattrs through /proc, as on kernels before 6.13.
    static FORCE_PROC_PATH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Test failpoint: stop (as a crash would) right after the Nth chown, before the setid
    /// bits and capability are put back.
    static CRASH_AFTER_CHOWNS: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

fn failpoint_after_chown() -> Result<()> {
    #[cfg(test)]
    if let Some(n) = CRASH_AFTER_CHOWNS.get() {
        CRASH_AFTER_CHOWNS.set(Some(n.saturating_sub(1)));
        if n <= 1 {
            CRASH_AFTER_CHOWNS.set(None);
            bail!("failpoint: crashed after a chown");
        }
    }
    Ok(())
}

/// An inode whose setid bits or capability a chown will clear, waiting to be logged.
struct Pending {
    path: Vec<u8>,
    ino: u64,
    mode: u32,
    setid: bool,
    /// The capability as read, and with its root id shifted.
    caps: Option<(Vec<u8>, Vec<u8>)>,
}

/// At most this many inodes wait in [`Walk::pending`].
const PENDING_MAX: usize = 1024;

/// Directories at these depths stay open while what is below them is walked: the first
/// [`KEEP_OPEN`] levels, then every [`KEEP_OPEN`]th. Any other directory is closed while one of
/// its subdirectories is walked and opened again afterwards from the nearest open one (at most
/// [`KEEP_OPEN`] names away), so the walk holds about `KEEP_OPEN + depth / KEEP_OPEN` fds
/// whatever the depth, and its depth does not depend on the open file limit.
const KEEP_OPEN: usize = 64;

fn keep_open(depth: usize) -> bool {
    depth < KEEP_OPEN || depth.is_multiple_of(KEEP_OPEN)
}

/// Raises the soft open file limit to the hard one, once per process: a walk (and what runs
/// beside it) then has every fd the admin allows.
pub fn raise_nofile_limit() {
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

/// A directory on the way down from the top to the entry being worked on.
#[derive(Default)]
struct Level {
    /// Its fd, `None` while it is closed (see [`KEEP_OPEN`]).
    fd: Option<OwnedFd>,
    /// What it is, to check that it is the same directory when it is opened again.
    ino: u64,
    dev: (u32, u32),
    /// The length of its path (relative to the top) in [`Walk::path`].
    path_len: usize,
    /// Its entry names, NUL-terminated, and where the next one starts.
    names: Vec<u8>,
    next: usize,
}

struct Walk<'p> {
    top: PathBuf,
    top_fd: OwnedFd,
    /// The mapping; `None` counts only.
    map: Option<Mapping>,
    dev: (u32, u32),
    mnt_id: Option<u64>,
    log: Option<Log>,
    /// Inodes to log before their chown (see [`Walk::flush`]).
    pending: Vec<Pending>,
    progress: &'p mut dyn FnMut(u64) -> ControlFlow<()>,
    report: Report,
    /// Inode numbers of non-directories with more than one link, seen already.
    seen: HashSet<u64>,
    /// Path of the current inode relative to the top (empty: the top).
    path: Vec<u8>,
    /// The directories from the top (index 0) down to the one being walked.
    levels: Vec<Level>,
    dirbuf: Vec<MaybeUninit<u8>>,
    procbuf: Vec<u8>,
    xbuf: Vec<u8>,
    /// Classify only ([`survey`]).
    dry: bool,
    /// Into host ids: drop what [`Report::privileged`] counts instead of refusing it.
    drop_privileged: bool,
}

impl<'p> Walk<'p> {
    fn new(
        dir: &Path,
        map: Option<&Mapping>,
        progress: &'p mut dyn FnMut(u64) -> ControlFlow<()>,
    ) -> Result<Walk<'p>> {
        raise_nofile_limit();
        let top =
            fs::canonicalize(dir).with_context(|| format!("cannot open {}", dir.display()))?;
        let top_fd = rfs::open(
            &top,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("cannot open the directory {}", top.display()))?;
        let st = rfs::statx(&top_fd, c"", AtFlags::EMPTY_PATH, WANT)
            .with_context(|| format!("cannot stat {}", top.display()))?;
        Ok(Walk {
            top,
            top_fd,
            map: map.copied(),
            dev: (st.stx_dev_major, st.stx_dev_minor),
            mnt_id: mnt_id(&st),
            log: None,
            pending: Vec::new(),
            progress,
            report: Report::default(),
            seen: HashSet::new(),
            path: Vec::new(),
            levels: Vec::new(),
            dirbuf: vec![MaybeUninit::uninit(); 64 * 1024],
            procbuf: Vec::with_capacity(4096 + 64),
            xbuf: vec![0; XATTR_MAX],
            dry: false,
            drop_privileged: false,
        })
    }

    /// The path being worked on, for messages.
    fn here(&self) -> PathBuf {
        if self.path.is_empty() {
            self.top.clone()
        } else {
            self.top.join(OsStr::from_bytes(&self.path))
        }
    }

    fn fail(&self, what: &str, e: Errno) -> anyhow::Error {
        anyhow::Error::new(std::io::Error::from(e))
            .context(format!("{what} {}", self.here().display()))
    }

    fn same_mount(&self, st: &Statx) -> bool {
        (st.stx_dev_major, st.stx_dev_minor) == self.dev
            && (self.mnt_id.is_none() || mnt_id(st) == self.mnt_id)
    }

    fn run(&mut self) -> Result<()> {
        let top = self
            .top_fd
            .try_clone()
            .context("cannot duplicate a file descriptor")?;
        let st = rfs::statx(&top, c"", AtFlags::EMPTY_PATH, WANT)
            .map_err(|e| self.fail("cannot stat", e))?;
        self.tick()?;
        if self.map.is_some() {
            self.inode(Node::Fd(top.as_fd()), &st)?;
        }
        self.levels.clear();
        self.levels.push(Level {
            fd: Some(top),
            ino: st.stx_ino,
            dev: (st.stx_dev_major, st.stx_dev_minor),
            ..Level::default()
        });
        self.walk_tree()?;
        if self.map.is_some() {
            self.flush()?;
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<()> {
        self.report.inodes += 1;
        if self.report.inodes.is_multiple_of(PROGRESS_EVERY)
            && (self.progress)(self.report.inodes).is_break()
        {
            return Err(Interrupted(self.top.clone()).into());
        }
        Ok(())
    }

    /// Walks below the top (`levels[0]`, open), depth first, without recursion: each
    /// directory's names are read whole, then its entries are worked on one by one.
    fn walk_tree(&mut self) -> Result<()> {
        self.read_names(0)?;
        let mut depth = 0;
        loop {
            let level = &mut self.levels[depth];
            if level.next >= level.names.len() {
                if depth == 0 {
                    return Ok(());
                }
                level.fd = None;
                depth -= 1;
                continue;
            }
            let names = std::mem::take(&mut level.names);
            let start = level.next;
            let path_len = level.path_len;
            let name = CStr::from_bytes_until_nul(&names[start..]).expect("names end with NUL");
            self.levels[depth].next = start + name.to_bytes_with_nul().len();
            self.path.truncate(path_len);
            if path_len > 0 {
                self.path.push(b'/');
            }
            self.path.extend_from_slice(name.to_bytes());
            let r = self.entry(name, depth);
            self.levels[depth].names = names;
            if let Some((fd, st)) = r? {
                depth += 1;
                if self.levels.len() <= depth {
                    self.levels.push(Level::default());
                }
                let level = &mut self.levels[depth];
                level.fd = Some(fd);
                level.ino = st.stx_ino;
                level.dev = (st.stx_dev_major, st.stx_dev_minor);
                level.path_len = self.path.len();
                self.read_names(depth)?;
            }
        }
    }

    /// Reads the entry names of the directory at `depth` (open) into its level.
    fn read_names(&mut self, depth: usize) -> Result<()> {
        let fd = self.level_fd(depth)?;
        let mut names = std::mem::take(&mut self.levels[depth].names);
        names.clear();
        let mut raw = RawDir::new(&fd, &mut self.dirbuf);
        while let Some(entry) = raw.next() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    return Err(self.fail("cannot read the directory", e));
                }
            };
            let name = entry.file_name().to_bytes_with_nul();
            if name != b".\0" && name != b"..\0" {
                names.extend_from_slice(name);
            }
        }
        let level = &mut self.levels[depth];
        level.names = names;
        level.next = 0;
        level.fd = Some(fd);
        Ok(())
    }

    /// Takes the fd of the directory at `depth` out of its level, opening it again (by its path
    /// from the nearest open directory above it, no symlink followed) when it was closed; it
    /// must be the same directory.
    fn level_fd(&mut self, depth: usize) -> Result<OwnedFd> {
        if let Some(fd) = self.levels[depth].fd.take() {
            return Ok(fd);
        }
        let above = (0..depth)
            .rev()
            .find(|&a| self.levels[a].fd.is_some())
            .expect("the top stays open");
        let (from, to) = (self.levels[above].path_len, self.levels[depth].path_len);
        let rel = &self.path[from..to];
        let rel = rel.strip_prefix(b"/").unwrap_or(rel);
        let here = || self.top.join(OsStr::from_bytes(&self.path[..to]));
        let changed = || {
            anyhow!(
                "{} changed while it was walked (the tree must hold still)",
                here().display()
            )
        };
        let mut fd: Option<OwnedFd> = None;
        for part in rel.split(|&b| b == b'/') {
            let c = CString::new(part).map_err(|_| changed())?;
            let base = match &fd {
                Some(f) => f.as_fd(),
                None => self.levels[above].fd.as_ref().expect("found open").as_fd(),
            };
            let next = rfs::openat(
                base,
                c.as_c_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            );
            fd = Some(match next {
                Ok(f) => f,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Err(changed()),
                Err(e) => {
                    return Err(anyhow::Error::new(std::io::Error::from(e)).context(format!(
                        "cannot open the directory {} again",
                        here().display()
                    )));
                }
            });
        }
        let fd = fd.ok_or_else(changed)?;
        let st = rfs::fstat(&fd).with_context(|| format!("cannot stat {}", here().display()))?;
        let level = &self.levels[depth];
        if st.st_ino != level.ino || (rfs::major(st.st_dev), rfs::minor(st.st_dev)) != level.dev {
            return Err(changed());
        }
        Ok(fd)
    }

    /// Works on one entry of the directory at `depth` (`self.path` names it); a directory is
    /// returned open, to be walked next.
    fn entry(&mut self, name: &CStr, depth: usize) -> Result<Option<(OwnedFd, Statx)>> {
        let parent = self.level_fd(depth)?;
        let r = self.entry_in(&parent, name, depth);
        // Closed while its subdirectory is walked, unless it is one that stays open.
        if keep_open(depth) || !matches!(r, Ok(Some(_))) {
            self.levels[depth].fd = Some(parent);
        }
        r
    }

    fn entry_in(
        &mut self,
        parent: &OwnedFd,
        name: &CStr,
        depth: usize,
    ) -> Result<Option<(OwnedFd, Statx)>> {
        let st = match rfs::statx(
            parent,
            name,
            AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT,
            WANT,
        ) {
            Ok(st) => st,
            // Gone since the directory was read.
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.fail("cannot stat", e)),
        };
        if !self.same_mount(&st) {
            let here = self.here();
            self.report.other_filesystems.push(here);
            return Ok(None);
        }
        let ftype = FileType::from_raw_mode(u32::from(st.stx_mode));
        if ftype != FileType::Directory && st.stx_nlink > 1 && !self.seen.insert(st.stx_ino) {
            return Ok(None);
        }
        if ftype == FileType::Directory && depth + 1 > MAX_DEPTH {
            return Err(TooDeep {
                path: self.here(),
                max: MAX_DEPTH,
            }
            .into());
        }
        self.tick()?;
        if ftype == FileType::Directory {
            let fd = rfs::openat(
                parent,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| self.fail("cannot open the directory", e))?;
            let again = rfs::fstat(&fd).map_err(|e| self.fail("cannot stat", e))?;
            if again.st_ino != st.stx_ino
                || rfs::major(again.st_dev) != st.stx_dev_major
                || rfs::minor(again.st_dev) != st.stx_dev_minor
            {
                bail!(
                    "{} changed while it was walked (the tree must hold still)",
                    self.here().display()
                );
            }
            if self.map.is_some() {
                self.inode(Node::Fd(fd.as_fd()), &st)?;
            }
            Ok(Some((fd, st)))
        } else if self.map.is_some() {
            let mut procbuf = std::mem::take(&mut self.procbuf);
            let proc = proc_path(&mut procbuf, parent.as_fd(), name);
            let node = Node::At {
                parent: parent.as_fd(),
                name,
                proc,
            };
            let r = self.inode(node, &st);
            self.procbuf = procbuf;
            r.map(|()| None)
        } else {
            Ok(None)
        }
    }
    /// What of the inode would carry a container's privilege to host ids (see
    /// [`Report::privileged`]), when the walk goes into host ids.
    fn privilege(
        &self,
        map: &Mapping,
        st: &Statx,
        (cu, cg): (Class, Class),
        caps: Option<&[u8]>,
    ) -> Option<Privileged> {
        let ftype = FileType::from_raw_mode(u32::from(st.stx_mode));
        if !map.into_host() || ftype == FileType::Symlink {
            return None;
        }
        let mode = u32::from(st.stx_mode);
        let file = ftype != FileType::Directory;
        let setuid = file && mode & 0o4000 != 0 && matches!(cu, Class::Shift(_));
        let setgid = file && mode & 0o2000 != 0 && matches!(cg, Class::Shift(_));
        let moves = matches!(cu, Class::Shift(_)) || matches!(cg, Class::Shift(_));
        // A v3 capability holds the root id it is valid for: dangerous when that id becomes
        // (or already is) a host id. Older revisions are valid for everyone: dangerous when the
        // inode moves to host ids.
        let capability = caps.is_some_and(|c| match caps_rootid(c) {
            Some(rootid) => map.uid.class(rootid) != Class::Outside,
            None => moves,
        });
        (setuid || setgid || capability).then(|| Privileged {
            path: self.here(),
            setuid,
            setgid,
            capability,
        })
    }

    fn note_privileged(&mut self, p: &Privileged) {
        self.report.privileged += 1;
        if self.report.privileged_paths.len() < PRIVILEGED_NAMED {
            self.report.privileged_paths.push(p.clone());
        }
    }

    /// Shifts one inode: ACL entries, then the owner, then what the chown cleared.
    fn inode(&mut self, node: Node<'_>, st: &Statx) -> Result<()> {
        let map = self.map.expect("only called when shifting");
        let (cu, cg) = (map.uid.class(st.stx_uid), map.gid.class(st.stx_gid));
        let outside = u64::from(cu == Class::Outside) + u64::from(cg == Class::Outside);
        if outside > 0 && self.report.first_outside.is_none() {
            self.report.first_outside = Some(self.here());
        }
        if (cu == Class::Done || cg == Class::Done) && self.report.first_done.is_none() {
            self.report.first_done = Some(self.here());
        }
        self.report.outside_ids += outside;
        self.report.outside_id_inodes += u64::from(outside > 0);
        let ftype = FileType::from_raw_mode(u32::from(st.stx_mode));
        let is_dir = ftype == FileType::Directory;
        let mode = u32::from(st.stx_mode) & 0o7777;
        if self.dry {
            if map.into_host() && ftype != FileType::Symlink {
                let mut caps = [0u8; 64];
                let caps = match node.get(CAPS, &mut caps) {
                    Ok(n) => Some(&caps[..n]),
                    Err(Errno::NODATA | Errno::NOTSUP) => None,
                    Err(e) => return Err(self.fail("cannot read the capability of", e)),
                };
                if let Some(p) = self.privilege(&map, st, (cu, cg), caps) {
                    self.note_privileged(&p);
                }
            }
            if matches!(cu, Class::Shift(_)) || matches!(cg, Class::Shift(_)) {
                self.report.shifted += 1;
            } else if cu == Class::Done || cg == Class::Done {
                self.report.already_done += 1;
            } else {
                self.report.outside += 1;
            }
            return Ok(());
        }

        // Which of the xattrs that matter are there.
        let (mut has_caps, mut has_access, mut has_default) = (false, false, false);
        let len = match node.list(&mut self.xbuf) {
            Ok(n) => n,
            Err(Errno::NOTSUP) => 0,
            Err(e) => return Err(self.fail("cannot list the xattrs of", e)),
        };
        for name in self.xbuf[..len].split(|&b| b == 0) {
            has_caps |= name == CAPS.to_bytes();
            has_access |= name == ACL_ACCESS.to_bytes();
            has_default |= name == ACL_DEFAULT.to_bytes();
        }

        let mut caps = [0u8; 64];
        let mut caps_len = None;
        if has_caps {
            match node.get(CAPS, &mut caps) {
                Ok(n) => caps_len = Some(n),
                Err(Errno::NODATA) => {}
                Err(e) => return Err(self.fail("cannot read the capability of", e)),
            }
        }
        let new_uid = map.uid.map(st.stx_uid);
        let new_gid = map.gid.map(st.stx_gid);

        // Into host ids: what would carry a container's privilege is refused before anything
        // of the inode changes, or dropped before the chown (never host-owned with it).
        let privileged = self.privilege(&map, st, (cu, cg), caps_len.map(|n| &caps[..n]));
        if let Some(p) = &privileged {
            if !self.drop_privileged {
                return Err(PrivilegedIntoHost(p.clone()).into());
            }
            self.note_privileged(p);
            self.report.privileged_dropped = true;
            if caps_len.take().is_some() {
                match node.remove(CAPS) {
                    Ok(()) | Err(Errno::NODATA) => {}
                    Err(e) => return Err(self.fail("cannot remove the capability of", e)),
                }
            }
            if !is_dir && mode & 0o6000 != 0 {
                node.chmod(mode & !0o6000)
                    .map_err(|e| self.fail("cannot drop the setuid/setgid bits of", e))?;
            }
        }

        // ACL entries are shifted whatever the owner: a walk interrupted after a chown and
        // before the ACL would otherwise leave them.
        for (present, acl) in [(has_access, ACL_ACCESS), (has_default, ACL_DEFAULT)] {
            if present {
                self.acl(node, acl, &map)?;
            }
        }

        if privileged.is_some() {
            if new_uid.is_none() && new_gid.is_none() {
                self.report.already_done += 1;
            } else {
                node.chown(new_uid, new_gid)
                    .map_err(|e| self.fail("cannot change the owner of", e))?;
                self.report.shifted += 1;
            }
            return Ok(());
        }

        let orig = caps;
        let rootid_shifted = caps_len.is_some_and(|n| shift_caps(&mut caps[..n], &map.uid));

        if new_uid.is_none() && new_gid.is_none() {
            if cu == Class::Done || cg == Class::Done {
                self.report.already_done += 1;
            } else {
                self.report.outside += 1;
            }
            if let (Some(n), true) = (caps_len, rootid_shifted) {
                node.set(CAPS, &caps[..n])
                    .map_err(|e| self.fail("cannot set the capability of", e))?;
                self.report.caps_rootids_shifted += 1;
            }
            return Ok(());
        }

        // chown clears setuid/setgid of non-directories and the capability of anything but
        // a directory: such an inode is logged first. Logging is batched (one fdatasync for
        // many), so it waits in `pending` and is shifted by `flush`.
        let setid = !is_dir && ftype != FileType::Symlink && mode & 0o6000 != 0;
        if setid || (caps_len.is_some() && !is_dir) {
            self.pending.push(Pending {
                path: self.path.clone(),
                ino: st.stx_ino,
                mode,
                setid,
                caps: caps_len.map(|n| (orig[..n].to_vec(), caps[..n].to_vec())),
            });
            if self.pending.len() >= PENDING_MAX {
                self.flush()?;
            }
            return Ok(());
        }
        node.chown(new_uid, new_gid)
            .map_err(|e| self.fail("cannot change the owner of", e))?;
        self.report.shifted += 1;
        if let Some(n) = caps_len {
            node.set(CAPS, &caps[..n])
                .map_err(|e| self.fail("cannot put back the capability of", e))?;
            self.report.caps_restored += 1;
            self.report.caps_rootids_shifted += u64::from(rootid_shifted);
        }
        Ok(())
    }

    /// Logs the pending inodes (one sync), then shifts them and puts back what the chown
    /// cleared. They are found again by path from the top, and must be the same inodes.
    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let map = self.map.expect("only called when shifting");
        let pending = std::mem::take(&mut self.pending);
        let mut lines = String::new();
        for p in &pending {
            lines.push_str(&log_line(
                p.mode,
                p.caps.as_ref().map(|c| &c.0[..]),
                &p.path,
            ));
        }
        self.log
            .as_mut()
            .expect("a log when shifting")
            .append(&lines)?;
        // Logged, nothing of the batch chowned yet: where a kill leaves the most to replay.
        crate::failpoint::hit("shift:after-log-batch")?;
        let saved = std::mem::take(&mut self.path);
        for p in &pending {
            self.path.clone_from(&p.path);
            let Some((parent, name)) = self.resolve()? else {
                continue;
            };
            let mut procbuf = Vec::new();
            let Some(node) = self.found(&parent, name.as_deref(), &mut procbuf, Some(p.ino))?
            else {
                continue;
            };
            let st = node.1;
            let (new_uid, new_gid) = (map.uid.map(st.stx_uid), map.gid.map(st.stx_gid));
            if new_uid.is_none() && new_gid.is_none() {
                self.report.already_done += 1;
                continue;
            }
            let node = node.0;
            node.chown(new_uid, new_gid)
                .map_err(|e| self.fail("cannot change the owner of", e))?;
            self.report.shifted += 1;
            failpoint_after_chown()?;
            if let Some((orig, shifted)) = &p.caps {
                node.set(CAPS, shifted)
                    .map_err(|e| self.fail("cannot put back the capability of", e))?;
                self.report.caps_restored += 1;
                self.report.caps_rootids_shifted += u64::from(orig != shifted);
            }
            if p.setid {
                node.chmod(p.mode)
                    .map_err(|e| self.fail("cannot put back the setuid/setgid bits of", e))?;
                self.report.setid_restored += 1;
            }
        }
        self.path = saved;
        Ok(())
    }

    /// Opens the parent of `self.path` (relative to the top, without following symlinks) and
    /// returns it with the last name (`None`: the top itself), or `None` when a directory on the
    /// way is gone.
    fn resolve(&self) -> Result<Option<(OwnedFd, Option<CString>)>> {
        let ctx = || format!("cannot find {} again", self.here().display());
        let mut parent = self.top_fd.try_clone().with_context(ctx)?;
        if self.path.is_empty() {
            return Ok(Some((parent, None)));
        }
        let mut parts = self.path.split(|&b| b == b'/').peekable();
        while let Some(part) = parts.next() {
            if part.is_empty() || part == b"." || part == b".." {
                bail!("{}: the path is not plain", ctx());
            }
            let c = CString::new(part).with_context(ctx)?;
            if parts.peek().is_none() {
                return Ok(Some((parent, Some(c))));
            }
            match rfs::openat(
                &parent,
                c.as_c_str(),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => parent = fd,
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err(self.fail("cannot open a directory above", e)),
            }
        }
        unreachable!("split yields at least one part")
    }

    /// Stats what [`Walk::resolve`] found: `None` when it is gone or on another mount; an error
    /// when it is not the inode `ino` the walk saw.
    fn found<'a>(
        &self,
        parent: &'a OwnedFd,
        name: Option<&'a CStr>,
        procbuf: &'a mut Vec<u8>,
        ino: Option<u64>,
    ) -> Result<Option<(Node<'a>, Statx)>> {
        let st = match name {
            None => rfs::statx(parent, c"", AtFlags::EMPTY_PATH, WANT),
            Some(n) => rfs::statx(
                parent,
                n,
                AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT,
                WANT,
            ),
        };
        let st = match st {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.fail("cannot stat", e)),
        };
        if !self.same_mount(&st) {
            return Ok(None);
        }
        if ino.is_some_and(|ino| ino != st.stx_ino) {
            bail!(
                "{} changed while it was walked (the tree must hold still)",
                self.here().display()
            );
        }
        let node = match name {
            None => Node::Fd(parent.as_fd()),
            Some(n) => Node::At {
                parent: parent.as_fd(),
                name: n,
                proc: proc_path(procbuf, parent.as_fd(), n),
            },
        };
        Ok(Some((node, st)))
    }

    fn acl(&mut self, node: Node<'_>, name: &CStr, map: &Mapping) -> Result<()> {
        let len = match node.get(name, &mut self.xbuf) {
            Ok(n) => n,
            Err(Errno::NODATA) => return Ok(()),
            Err(e) => return Err(self.fail(&format!("cannot read {name:?} of"), e)),
        };
        let n = shift_acl(&mut self.xbuf[..len], map)
            .with_context(|| format!("{name:?} of {}", self.here().display()))?;
        if n > 0 {
            node.set(name, &self.xbuf[..len])
                .map_err(|e| self.fail(&format!("cannot set {name:?} of"), e))?;
            self.report.acl_entries_shifted += n;
        }
        Ok(())
    }

    /// Re-applies one entry of an interrupted walk's log when its inode's owner was already
    /// shifted (so the chown happened and may have cleared what the entry holds). Returns
    /// whether it did.
    fn replay(&mut self, entry: &LogEntry) -> Result<bool> {
        // The walk's own path is put back whatever happens: a later entry, or the walk after
        // the replay, must not see this entry's path as its prefix.
        let saved = std::mem::replace(&mut self.path, entry.path.clone());
        let r = self.replay_here(entry);
        self.path = saved;
        r
    }

    fn replay_here(&mut self, entry: &LogEntry) -> Result<bool> {
        let map = self.map.expect("only called when shifting");
        let Some((parent, name)) = self.resolve()? else {
            return Ok(false);
        };
        let mut procbuf = Vec::new();
        let Some((node, st)) = self.found(&parent, name.as_deref(), &mut procbuf, None)? else {
            return Ok(false);
        };
        let (cu, cg) = (map.uid.class(st.stx_uid), map.gid.class(st.stx_gid));
        if matches!(cu, Class::Shift(_))
            || matches!(cg, Class::Shift(_))
            || (cu != Class::Done && cg != Class::Done)
        {
            // Not chowned yet (the walk will), or changed by someone else.
            return Ok(false);
        }
        let ftype = FileType::from_raw_mode(u32::from(st.stx_mode));
        let mut mode = entry.mode;
        if map.into_host() {
            // Into host ids nothing is put back that would be valid on the host (a log of
            // this mapping holds no such entry unless an older version wrote it).
            let caps_host = entry
                .caps
                .as_deref()
                .is_some_and(|c| caps_rootid(c).is_none_or(|r| map.uid.class(r) != Class::Outside));
            if caps_host || mode & 0o6000 != 0 {
                let p = Privileged {
                    path: self.here(),
                    setuid: mode & 0o4000 != 0,
                    setgid: mode & 0o2000 != 0,
                    capability: caps_host,
                };
                self.note_privileged(&p);
                self.report.privileged_dropped = true;
            }
            mode &= !0o6000;
            if !caps_host && let Some(caps) = &entry.caps {
                let mut caps = caps.clone();
                shift_caps(&mut caps, &map.uid);
                node.set(CAPS, &caps)
                    .map_err(|e| self.fail("cannot put back the capability of", e))?;
            }
        } else if let Some(caps) = &entry.caps {
            let mut caps = caps.clone();
            shift_caps(&mut caps, &map.uid);
            node.set(CAPS, &caps)
                .map_err(|e| self.fail("cannot put back the capability of", e))?;
        }
        if ftype != FileType::Symlink && u32::from(st.stx_mode) & 0o7777 != mode {
            node.chmod(mode)
                .map_err(|e| self.fail("cannot put back the mode of", e))?;
        }
        Ok(true)
    }
}

fn mnt_id(st: &Statx) -> Option<u64> {
    StatxFlags::from_bits_retain(st.stx_mask)
        .contains(StatxFlags::MNT_ID)
        .then_some(st.stx_mnt_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn map() -> Mapping {
        Mapping::new(
            IdShift {
                from: 100_000,
                to: 300_000,
                count: 65_536,
            },
            IdShift {
                from: 100_000,
                to: 400_000,
                count: 65_536,
            },
        )
        .unwrap()
    }

    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for &(tag, perm, id) in entries {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    #[test]
    fn mapping_refuses_overlap_empty_and_the_top_id() {
        let s = |from, to, count| IdShift { from, to, count };
        let ok = s(100_000, 200_000, 65_536);
        assert!(Mapping::new(ok, ok).is_ok());
        assert!(Mapping::new(s(100_000, 100_000 + 65_535, 65_536), ok).is_err());
        assert!(Mapping::new(ok, s(200_000, 100_000 + 1, 100_000)).is_err());
        assert!(Mapping::new(ok, s(1, 2, 0)).is_err());
        assert!(Mapping::new(s(0, u32::MAX - 10, 11), ok).is_err());
        assert!(Mapping::new(s(0, u32::MAX - 10, 10), ok).is_ok());
        // Adjacent ranges do not overlap.
        assert!(Mapping::new(s(0, 10, 10), s(10, 0, 10)).is_ok());
        let m = Mapping::new(ok, s(5, 500, 3)).unwrap();
        assert_eq!(m.reverse().reverse(), m);
        assert_eq!(m.reverse().gid(), s(500, 5, 3));
    }

    #[test]
    fn ids_are_classified_by_range() {
        let m = map();
        assert_eq!(m.uid.class(100_000), Class::Shift(300_000));
        assert_eq!(m.uid.class(165_535), Class::Shift(365_535));
        assert_eq!(m.uid.class(165_536), Class::Outside);
        assert_eq!(m.uid.class(99_999), Class::Outside);
        assert_eq!(m.uid.class(300_000), Class::Done);
        assert_eq!(m.uid.class(365_536), Class::Outside);
        assert_eq!(m.gid.class(100_001), Class::Shift(400_001));
        assert_eq!(m.reverse().uid.class(300_007), Class::Shift(100_007));
    }

    #[test]
    fn acl_user_and_group_entries_in_the_source_range_are_shifted() {
        let mut a = acl(&[
            (0x01, 7, u32::MAX),
            (0x02, 6, 100_005),
            (0x02, 4, 1000),
            (0x04, 5, u32::MAX),
            (0x08, 4, 100_007),
            (0x08, 4, 300_000),
            (0x10, 7, u32::MAX),
            (0x20, 0, u32::MAX),
        ]);
        assert_eq!(shift_acl(&mut a, &map()).unwrap(), 2);
        assert_eq!(
            a,
            acl(&[
                (0x01, 7, u32::MAX),
                (0x02, 6, 300_005),
                (0x02, 4, 1000),
                (0x04, 5, u32::MAX),
                (0x08, 4, 400_007),
                (0x08, 4, 300_000),
                (0x10, 7, u32::MAX),
                (0x20, 0, u32::MAX),
            ])
        );
        // Done: nothing more in the source range.
        assert_eq!(shift_acl(&mut a, &map()).unwrap(), 0);
        assert!(shift_acl(&mut [2, 0, 0], &map()).is_err());
        assert!(shift_acl(&mut acl(&[(1, 7, 0)])[..11], &map()).is_err());
        let mut v1 = acl(&[(1, 7, 0)]);
        v1[0] = 1;
        assert!(shift_acl(&mut v1, &map()).is_err());
    }

    #[test]
    fn only_a_v3_capability_root_id_in_range_is_shifted() {
        let mut v3 = [0u8; 24];
        v3[..4].copy_from_slice(&0x0300_0001u32.to_le_bytes());
        v3[20..].copy_from_slice(&100_000u32.to_le_bytes());
        assert!(shift_caps(&mut v3, &map().uid));
        assert_eq!(u32::from_le_bytes(v3[20..].try_into().unwrap()), 300_000);
        assert!(!shift_caps(&mut v3, &map().uid));
        let mut v2 = [0u8; 20];
        v2[..4].copy_from_slice(&0x0200_0001u32.to_le_bytes());
        let before = v2;
        assert!(!shift_caps(&mut v2, &map().uid));
        assert_eq!(v2, before);
        assert!(!shift_caps(&mut [3, 0, 0], &map().uid));
    }

    #[test]
    fn log_lines_round_trip_any_path() {
        let header = Log::header(&map());
        let entries = [
            LogEntry {
                mode: 0o4755,
                caps: None,
                path: b"usr/bin/passwd".to_vec(),
            },
            LogEntry {
                mode: 0o755,
                caps: Some(vec![1, 2, 0xab]),
                path: b"odd name/with\nnewline %and\xff bytes".to_vec(),
            },
            LogEntry {
                mode: 0o2755,
                caps: None,
                path: Vec::new(),
            },
        ];
        let mut text = header.clone().into_bytes();
        for e in &entries {
            text.extend_from_slice(log_line(e.mode, e.caps.as_deref(), &e.path).as_bytes());
        }
        assert_eq!(parse_log(&text, &header).unwrap().unwrap(), entries);
        // A torn last line is dropped; a torn header is no log.
        text.extend_from_slice(b"4755 - usr/bin/s");
        assert_eq!(parse_log(&text, &header).unwrap().unwrap(), entries);
        assert_eq!(parse_log(&header.as_bytes()[..10], &header).unwrap(), None);
        // Another mapping's log, or a damaged line, is refused.
        let other = Log::header(&map().reverse());
        assert!(parse_log(&text, &other).is_err());
        let mut bad = header.clone().into_bytes();
        bad.extend_from_slice(b"99 - x\n");
        assert!(parse_log(&bad, &header).is_err());
    }

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
        let err = shift_tree(&tree, &m, &log, &mut |_| ControlFlow::Continue(())).unwrap_err();
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

        let r = shift_tree(&tree, &m, &log, &mut |_| ControlFlow::Continue(())).unwrap();
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

    #[test]
    fn a_walk_resumed_after_a_crash_in_a_log_batch_finishes_exactly() {
        for crash_after in [1, PENDING_MAX as u64 - 1, PENDING_MAX as u64 + 3] {
            let t = tempdir();
            let tree = t.path().join("tree");
            fs::create_dir(&tree).unwrap();
            let files = setid_tree(&tree);
            let log = t.path().join("shift.log");
            CRASH_AFTER_CHOWNS.set(Some(crash_after));
            let err =
                shift_tree(&tree, &map(), &log, &mut |_| ControlFlow::Continue(())).unwrap_err();
            assert!(format!("{err:#}").contains("failpoint"), "{err:#}");
            assert!(log.exists());
            let r = shift_tree(&tree, &map(), &log, &mut |_| ControlFlow::Continue(()))
                .unwrap_or_else(|e| panic!("resume after {crash_after} chowns: {e:#}"));
            // Every logged entry whose chown happened is put back (a batch stays in the log
            // until the walk completes).
            assert_eq!(r.log_replayed, crash_after, "{r:?}");
            assert!(!log.exists());
            check_shifted(&files);
            // And a walk after that finds everything done.
            let again =
                shift_tree(&tree, &map(), &log, &mut |_| ControlFlow::Continue(())).unwrap();
            assert_eq!((again.shifted, again.log_replayed), (0, 0), "{again:?}");
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
        let err = shift_tree(&tree, &map(), &log, &mut |_| ControlFlow::Continue(())).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("move it away") && msg.contains("does not fit"),
            "{msg}"
        );
        // A damaged line too.
        fs::write(&log, Log::header(&map()) + "garbage\n").unwrap();
        let msg = format!(
            "{:#}",
            shift_tree(&tree, &map(), &log, &mut |_| ControlFlow::Continue(())).unwrap_err()
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
        let r = shift_tree(&tree, &map(), &t.path().join("log"), &mut |_| {
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
    fn a_log_of_another_mapping_or_inside_the_tree_is_refused() {
        let t = tempdir();
        let tree = t.path().join("tree");
        fs::create_dir(&tree).unwrap();
        let log = t.path().join("shift.log");
        fs::write(&log, Log::header(&map().reverse()) + "4755 - a\n").unwrap();
        let err = shift_tree(&tree, &map(), &log, &mut |_| ControlFlow::Continue(())).unwrap_err();
        assert!(format!("{err:#}").contains("another shift"), "{err:#}");
        let inside = tree.join("shift.log");
        let err =
            shift_tree(&tree, &map(), &inside, &mut |_| ControlFlow::Continue(())).unwrap_err();
        assert!(format!("{err:#}").contains("must not be inside"), "{err:#}");
    }
}
