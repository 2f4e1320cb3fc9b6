//! The walk itself: directory fds, `statx`, `fchownat`, the xattr calls, the setid and
//! capability rules, the crash log's batches, one inode at a time.

use std::collections::HashSet;
use std::ffi::{CStr, CString, OsStr};
use std::mem::MaybeUninit;
use std::ops::ControlFlow;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, RawDir, Statx, StatxFlags};
use rustix::io::Errno;

use super::log::{Log, LogEntry, log_line};
use super::node::{Node, proc_path};
use super::{
    Interrupted, MAX_DEPTH, PRIVILEGED_NAMED, PROGRESS_EVERY, Privileged, PrivilegedIntoHost,
    Report, TooDeep, raise_nofile_limit,
};
use crate::formats::id_shift::{Class, Mapping};
use crate::formats::xattr::{ACL_ACCESS, ACL_DEFAULT, CAPS, caps_rootid, shift_acl, shift_caps};
use crate::host::root::OpenDir;

/// `statx` fields the walk reads.
pub(super) const WANT: StatxFlags = StatxFlags::TYPE
    .union(StatxFlags::MODE)
    .union(StatxFlags::NLINK)
    .union(StatxFlags::UID)
    .union(StatxFlags::GID)
    .union(StatxFlags::INO)
    .union(StatxFlags::MNT_ID);
/// Largest xattr value and name list (`XATTR_SIZE_MAX`, `XATTR_LIST_MAX`).
pub(super) const XATTR_MAX: usize = 65536;

#[cfg(test)]
thread_local! {
    /// Test failpoint: stop (as a crash would) right after the Nth chown, before the setid
    /// bits and capability are put back.
    pub(super) static CRASH_AFTER_CHOWNS: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

pub(super) fn failpoint_after_chown() -> Result<()> {
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
pub(super) struct Pending {
    pub(super) path: Vec<u8>,
    pub(super) ino: u64,
    pub(super) mode: u32,
    pub(super) setid: bool,
    /// The capability as read, and with its root id shifted.
    pub(super) caps: Option<(Vec<u8>, Vec<u8>)>,
}

/// At most this many inodes wait in [`Walk::pending`].
pub(super) const PENDING_MAX: usize = 1024;

/// Directories at these depths stay open while what is below them is walked: the first
/// [`KEEP_OPEN`] levels, then every [`KEEP_OPEN`]th. Any other directory is closed while one of
/// its subdirectories is walked and opened again afterwards from the nearest open one (at most
/// [`KEEP_OPEN`] names away), so the walk holds about `KEEP_OPEN + depth / KEEP_OPEN` fds
/// whatever the depth, and its depth does not depend on the open file limit.
pub(super) const KEEP_OPEN: usize = 64;

pub(super) fn keep_open(depth: usize) -> bool {
    depth < KEEP_OPEN || depth.is_multiple_of(KEEP_OPEN)
}

/// A directory on the way down from the top to the entry being worked on.
#[derive(Default)]
pub(super) struct Level {
    /// Its fd, `None` while it is closed (see [`KEEP_OPEN`]).
    pub(super) fd: Option<OwnedFd>,
    /// What it is, to check that it is the same directory when it is opened again.
    pub(super) ino: u64,
    pub(super) dev: (u32, u32),
    /// The length of its path (relative to the top) in [`Walk::path`].
    pub(super) path_len: usize,
    /// Its entry names, NUL-terminated, and where the next one starts.
    pub(super) names: Vec<u8>,
    pub(super) next: usize,
}

pub(super) struct Walk<'p> {
    pub(super) top: PathBuf,
    pub(super) top_fd: OwnedFd,
    /// The mapping; `None` counts only.
    pub(super) map: Option<Mapping>,
    pub(super) dev: (u32, u32),
    pub(super) mnt_id: Option<u64>,
    pub(super) log: Option<Log>,
    /// Inodes to log before their chown (see [`Walk::flush`]).
    pub(super) pending: Vec<Pending>,
    pub(super) progress: &'p mut dyn FnMut(u64) -> ControlFlow<()>,
    pub(super) report: Report,
    /// Inode numbers of non-directories with more than one link, seen already.
    pub(super) seen: HashSet<u64>,
    /// Path of the current inode relative to the top (empty: the top).
    pub(super) path: Vec<u8>,
    /// The directories from the top (index 0) down to the one being walked.
    pub(super) levels: Vec<Level>,
    pub(super) dirbuf: Vec<MaybeUninit<u8>>,
    pub(super) procbuf: Vec<u8>,
    pub(super) xbuf: Vec<u8>,
    /// Classify only ([`super::survey`]).
    pub(super) dry: bool,
    /// Into host ids: drop what [`Report::privileged`] counts instead of refusing it.
    pub(super) drop_privileged: bool,
}

impl<'p> Walk<'p> {
    pub(super) fn new(
        dir: &OpenDir,
        map: Option<&Mapping>,
        progress: &'p mut dyn FnMut(u64) -> ControlFlow<()>,
    ) -> Result<Walk<'p>> {
        raise_nofile_limit();
        let top = dir.shown().to_path_buf();
        // Opened again through its fd (not dup'ed): a walk of its own reads the directory
        // from its start, whatever another walk of the same `OpenDir` read before.
        let top_fd = rfs::openat(
            dir.fd(),
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
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
    pub(super) fn here(&self) -> PathBuf {
        if self.path.is_empty() {
            self.top.clone()
        } else {
            self.top.join(OsStr::from_bytes(&self.path))
        }
    }

    pub(super) fn fail(&self, what: &str, e: Errno) -> anyhow::Error {
        anyhow::Error::new(std::io::Error::from(e))
            .context(format!("{what} {}", self.here().display()))
    }

    pub(super) fn same_mount(&self, st: &Statx) -> bool {
        (st.stx_dev_major, st.stx_dev_minor) == self.dev
            && (self.mnt_id.is_none() || mnt_id(st) == self.mnt_id)
    }

    pub(super) fn run(&mut self) -> Result<()> {
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

    pub(super) fn tick(&mut self) -> Result<()> {
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
    pub(super) fn walk_tree(&mut self) -> Result<()> {
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
    pub(super) fn read_names(&mut self, depth: usize) -> Result<()> {
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
    pub(super) fn level_fd(&mut self, depth: usize) -> Result<OwnedFd> {
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
    pub(super) fn entry(&mut self, name: &CStr, depth: usize) -> Result<Option<(OwnedFd, Statx)>> {
        let parent = self.level_fd(depth)?;
        let r = self.entry_in(&parent, name, depth);
        // Closed while its subdirectory is walked, unless it is one that stays open.
        if keep_open(depth) || !matches!(r, Ok(Some(_))) {
            self.levels[depth].fd = Some(parent);
        }
        r
    }

    pub(super) fn entry_in(
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
    pub(super) fn privilege(
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
            Some(rootid) => map.uid().class(rootid) != Class::Outside,
            None => moves,
        });
        (setuid || setgid || capability).then(|| Privileged {
            path: self.here(),
            setuid,
            setgid,
            capability,
        })
    }

    pub(super) fn note_privileged(&mut self, p: &Privileged) {
        self.report.privileged += 1;
        if self.report.privileged_paths.len() < PRIVILEGED_NAMED {
            self.report.privileged_paths.push(p.clone());
        }
    }

    /// Shifts one inode: ACL entries, then the owner, then what the chown cleared.
    /// Classifies the inode's uid and gid, counting what is outside both ranges and naming
    /// the first inode outside them and the first already done.
    fn classify(&mut self, map: &Mapping, st: &Statx) -> (Class, Class) {
        let (cu, cg) = (map.uid().class(st.stx_uid), map.gid().class(st.stx_gid));
        let outside = u64::from(cu == Class::Outside) + u64::from(cg == Class::Outside);
        if outside > 0 && self.report.first_outside.is_none() {
            self.report.first_outside = Some(self.here());
        }
        if cu == Class::Done || cg == Class::Done {
            self.report.done_id_inodes += 1;
            if self.report.first_done.is_none() {
                self.report.first_done = Some(self.here());
            }
        }
        self.report.outside_ids += outside;
        self.report.outside_id_inodes += u64::from(outside > 0);
        (cu, cg)
    }

    /// [`survey`](super::survey): counts the inode as the shift would, changing nothing.
    fn survey_inode(
        &mut self,
        node: Node<'_>,
        st: &Statx,
        map: &Mapping,
        (cu, cg): (Class, Class),
    ) -> Result<()> {
        let ftype = FileType::from_raw_mode(u32::from(st.stx_mode));
        if map.into_host() && ftype != FileType::Symlink {
            let mut caps = [0u8; 64];
            let caps = self
                .read_caps(node, &mut caps, Errno::NOTSUP)?
                .map(|n| &caps[..n]);
            if let Some(p) = self.privilege(map, st, (cu, cg), caps) {
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
        Ok(())
    }

    /// Which of the xattrs that matter the inode has: (capability, access ACL, default ACL).
    fn xattrs_present(&mut self, node: Node<'_>) -> Result<(bool, bool, bool)> {
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
        Ok((has_caps, has_access, has_default))
    }

    /// Reads the inode's capability into `buf`: its length, None when it has none (`NODATA`,
    /// or `also_none`, e.g. `NOTSUP` where the filesystem keeps no xattrs).
    fn read_caps(&self, node: Node<'_>, buf: &mut [u8], also_none: Errno) -> Result<Option<usize>> {
        match node.get(CAPS, buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e == Errno::NODATA || e == also_none => Ok(None),
            Err(e) => Err(self.fail("cannot read the capability of", e)),
        }
    }

    /// Into host ids: refuses `p` unless asked to drop what it holds; then drops its
    /// capability (`has_caps`) and setid bits before the chown.
    fn drop_privilege(
        &mut self,
        node: Node<'_>,
        p: &Privileged,
        has_caps: bool,
        is_dir: bool,
        mode: u32,
    ) -> Result<()> {
        if !self.drop_privileged {
            return Err(PrivilegedIntoHost(p.clone()).into());
        }
        self.note_privileged(p);
        self.report.privileged_dropped = true;
        if has_caps {
            match node.remove(CAPS) {
                Ok(()) | Err(Errno::NODATA) => {}
                Err(e) => return Err(self.fail("cannot remove the capability of", e)),
            }
        }
        if !is_dir && mode & 0o6000 != 0 {
            node.chmod(mode & !0o6000)
                .map_err(|e| self.fail("cannot drop the setuid/setgid bits of", e))?;
        }
        Ok(())
    }

    pub(super) fn inode(&mut self, node: Node<'_>, st: &Statx) -> Result<()> {
        let map = self.map.expect("only called when shifting");
        let (cu, cg) = self.classify(&map, st);
        let ftype = FileType::from_raw_mode(u32::from(st.stx_mode));
        let is_dir = ftype == FileType::Directory;
        let mode = u32::from(st.stx_mode) & 0o7777;
        if self.dry {
            return self.survey_inode(node, st, &map, (cu, cg));
        }

        let (has_caps, has_access, has_default) = self.xattrs_present(node)?;
        let mut caps = [0u8; 64];
        let mut caps_len = if has_caps {
            self.read_caps(node, &mut caps, Errno::NODATA)?
        } else {
            None
        };
        let new_uid = map.uid().map(st.stx_uid);
        let new_gid = map.gid().map(st.stx_gid);

        // Into host ids: what would carry a container's privilege is refused before anything
        // of the inode changes, or dropped before the chown (never host-owned with it).
        let privileged = self.privilege(&map, st, (cu, cg), caps_len.map(|n| &caps[..n]));
        if let Some(p) = &privileged {
            self.drop_privilege(node, p, caps_len.take().is_some(), is_dir, mode)?;
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
        let rootid_shifted = caps_len.is_some_and(|n| shift_caps(&mut caps[..n], &map.uid()));

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
    pub(super) fn flush(&mut self) -> Result<()> {
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
            let (new_uid, new_gid) = (map.uid().map(st.stx_uid), map.gid().map(st.stx_gid));
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
    pub(super) fn resolve(&self) -> Result<Option<(OwnedFd, Option<CString>)>> {
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
    pub(super) fn found<'a>(
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

    pub(super) fn acl(&mut self, node: Node<'_>, name: &CStr, map: &Mapping) -> Result<()> {
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
    pub(super) fn replay(&mut self, entry: &LogEntry) -> Result<bool> {
        // The walk's own path is put back whatever happens: a later entry, or the walk after
        // the replay, must not see this entry's path as its prefix.
        let saved = std::mem::replace(&mut self.path, entry.path.clone());
        let r = self.replay_here(entry);
        self.path = saved;
        r
    }

    pub(super) fn replay_here(&mut self, entry: &LogEntry) -> Result<bool> {
        let map = self.map.expect("only called when shifting");
        let Some((parent, name)) = self.resolve()? else {
            return Ok(false);
        };
        let mut procbuf = Vec::new();
        let Some((node, st)) = self.found(&parent, name.as_deref(), &mut procbuf, None)? else {
            return Ok(false);
        };
        let (cu, cg) = (map.uid().class(st.stx_uid), map.gid().class(st.stx_gid));
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
            let caps_host = entry.caps.as_deref().is_some_and(|c| {
                caps_rootid(c).is_none_or(|r| map.uid().class(r) != Class::Outside)
            });
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
                shift_caps(&mut caps, &map.uid());
                node.set(CAPS, &caps)
                    .map_err(|e| self.fail("cannot put back the capability of", e))?;
            }
        } else if let Some(caps) = &entry.caps {
            let mut caps = caps.clone();
            shift_caps(&mut caps, &map.uid());
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

pub(super) fn mnt_id(st: &Statx) -> Option<u64> {
    StatxFlags::from_bits_retain(st.stx_mask)
        .contains(StatxFlags::MNT_ID)
        .then_some(st.stx_mnt_id)
}
