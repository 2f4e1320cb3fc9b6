//! One worker of the walk (pool.rs shares the work between several): directory fds, `statx`,
//! `fchownat`, the xattr calls, the setid and capability rules, the crash log's batches, one
//! inode at a time.

use std::ffi::{CStr, CString, OsStr};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, RawDir, Statx};
use rustix::io::Errno;

use super::log::{LogEntry, log_line};
use super::node::Node;
use super::pool::{Item, PUBLISH_EVERY, Shared, WANT, mnt_id};
use super::{MAX_DEPTH, PRIVILEGED_NAMED, Privileged, PrivilegedIntoHost, Report, TooDeep};
use crate::formats::id_shift::{Class, Mapping};
use crate::formats::xattr::{ACL_ACCESS, ACL_DEFAULT, CAPS, caps_rootid, shift_acl, shift_caps};

/// Largest xattr value and name list (`XATTR_SIZE_MAX`, `XATTR_LIST_MAX`).
pub(super) const XATTR_MAX: usize = 65536;

/// An inode whose setid bits or capability a chown will clear, waiting to be logged.
pub(super) struct Pending {
    pub(super) path: Vec<u8>,
    pub(super) ino: u64,
    pub(super) mode: u32,
    pub(super) setid: bool,
    /// The capability as read, and with its root id shifted.
    pub(super) caps: Option<(Vec<u8>, Vec<u8>)>,
}

/// At most this many inodes wait in a worker's [`Worker::pending`]: one `fdatasync` of the log
/// per this many setid or capability inodes (rare: 0.3% of the bench's files, 42 syncs at
/// 10^6 inodes), and per worker about 15 KB of paths and log lines held at most. It was 1024:
/// the batches' paths and lines (about 0.3 MB for two workers) then made the walk's peak
/// memory at 10^6 inodes, where batches fill, 1.15x that at 10^5, where they never did.
pub(super) const PENDING_MAX: usize = 64;

/// One worker of a walk (or the calling thread's part: the top, the log's replay).
pub(super) struct Worker<'s> {
    pub(super) sh: &'s Shared,
    pub(super) report: Report,
    /// Inodes to log before their chown (see [`Worker::flush`]).
    pub(super) pending: Vec<Pending>,
    /// Path of the current inode relative to the top (empty: the top).
    pub(super) path: Vec<u8>,
    /// Inodes counted but not yet added to [`Shared::inodes`].
    unpublished: u64,
    names: Vec<u8>,
    dirbuf: Vec<MaybeUninit<u8>>,
    pub(super) xbuf: Vec<u8>,
}

impl<'s> Worker<'s> {
    pub(super) fn new(sh: &'s Shared) -> Worker<'s> {
        #[cfg(test)]
        super::node::FORCE_PROC_PATH.set(sh.force_proc);
        Worker {
            sh,
            report: Report::default(),
            pending: Vec::new(),
            path: Vec::new(),
            unpublished: 0,
            names: Vec::new(),
            dirbuf: Vec::new(),
            xbuf: Vec::new(),
        }
    }

    /// The path being worked on, for messages.
    pub(super) fn here(&self) -> PathBuf {
        if self.path.is_empty() {
            self.sh.top.clone()
        } else {
            self.sh.top.join(OsStr::from_bytes(&self.path))
        }
    }

    pub(super) fn fail(&self, what: &str, e: Errno) -> anyhow::Error {
        anyhow::Error::new(std::io::Error::from(e))
            .context(format!("{what} {}", self.here().display()))
    }

    pub(super) fn same_mount(&self, st: &Statx) -> bool {
        (st.stx_dev_major, st.stx_dev_minor) == self.sh.dev
            && (self.sh.mnt_id.is_none() || mnt_id(st) == self.sh.mnt_id)
    }

    /// Whether the inode being worked on comes before `first` (a path below the top, or the
    /// top) in byte order: "the first" of a kind is the same whatever the workers' order.
    fn first_before(&self, first: Option<&std::path::Path>) -> bool {
        first.is_none_or(|f| {
            let top = self.sh.top.as_os_str().len();
            let rel = f.as_os_str().as_bytes().get(top + 1..).unwrap_or(&[]);
            self.path.as_slice() < rel
        })
    }

    fn xbuf(&mut self) -> &mut [u8] {
        if self.xbuf.is_empty() {
            self.xbuf = vec![0; XATTR_MAX];
        }
        &mut self.xbuf
    }

    /// Works on the top itself (before the workers start).
    pub(super) fn top(&mut self) -> Result<()> {
        let st = rfs::statx(&self.sh.top_fd, c"", AtFlags::EMPTY_PATH, WANT)
            .map_err(|e| self.fail("cannot stat", e))?;
        self.tick();
        if self.sh.map.is_some() {
            self.inode(Node::Fd(self.sh.top_fd.as_fd()), &st)?;
        }
        Ok(())
    }

    fn tick(&mut self) {
        self.report.inodes += 1;
        self.unpublished += 1;
        if self.unpublished >= PUBLISH_EVERY {
            self.sh.publish(std::mem::take(&mut self.unpublished));
        }
    }

    /// Takes directories and walks them until there are none or the walk is stopped; then
    /// shifts what waits in its batch.
    pub(super) fn work(&mut self) {
        while let Some(item) = self.sh.take() {
            let r = self.dir(item);
            self.sh.done_with_one();
            if let Err(e) = r {
                self.sh.halt(Some(e));
                return;
            }
        }
        self.sh.publish(std::mem::take(&mut self.unpublished));
        if !self.sh.stopped()
            && let Err(e) = self.flush_all()
        {
            self.sh.halt(Some(e));
        }
    }

    /// Shifts what waits in the batch (nothing when shift only counts or surveys).
    pub(super) fn flush_all(&mut self) -> Result<()> {
        if self.sh.map.is_some() && !self.sh.dry {
            self.flush()?;
        }
        Ok(())
    }

    /// Walks one directory: each of its entries, pushing its subdirectories.
    fn dir(&mut self, item: Item) -> Result<()> {
        self.path = item.path;
        let fd = match item.fd {
            Some(fd) => fd,
            None => self.reopen(item.ino, item.dev)?,
        };
        self.read_names(&fd)?;
        let names = std::mem::take(&mut self.names);
        let base = self.path.len();
        let mut r = Ok(());
        for name in names.split_inclusive(|&b| b == 0) {
            if self.sh.stopped() {
                break;
            }
            let name = CStr::from_bytes_with_nul(name).expect("one NUL, at the end");
            self.path.truncate(base);
            if base > 0 {
                self.path.push(b'/');
            }
            self.path.extend_from_slice(name.to_bytes());
            match self.entry_in(&fd, name, item.depth) {
                Ok(Some((sub, st))) => self.sh.push(Item {
                    fd: Some(sub),
                    path: self.path.clone(),
                    ino: st.stx_ino,
                    dev: (st.stx_dev_major, st.stx_dev_minor),
                    depth: item.depth + 1,
                }),
                Ok(None) => {}
                Err(e) => {
                    r = Err(e);
                    break;
                }
            }
        }
        self.names = names;
        r
    }

    /// Reads the entry names of the directory `fd` into `self.names`, NUL-terminated.
    fn read_names(&mut self, fd: &OwnedFd) -> Result<()> {
        if self.dirbuf.is_empty() {
            self.dirbuf = vec![MaybeUninit::uninit(); 64 * 1024];
        }
        let mut names = std::mem::take(&mut self.names);
        names.clear();
        let mut raw = RawDir::new(fd, &mut self.dirbuf);
        while let Some(entry) = raw.next() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    self.names = names;
                    return Err(self.fail("cannot read the directory", e));
                }
            };
            let name = entry.file_name().to_bytes_with_nul();
            if name != b".\0" && name != b"..\0" {
                names.extend_from_slice(name);
            }
        }
        self.names = names;
        Ok(())
    }

    /// Opens the directory at `self.path` again from the top (no symlink followed); it must be
    /// the directory `ino` on `dev` that was queued.
    fn reopen(&self, ino: u64, dev: (u32, u32)) -> Result<OwnedFd> {
        let changed = || {
            anyhow!(
                "{} changed while it was walked (the tree must hold still)",
                self.here().display()
            )
        };
        let mut fd: Option<OwnedFd> = None;
        for part in self.path.split(|&b| b == b'/') {
            let c = CString::new(part).map_err(|_| changed())?;
            let base = fd.as_ref().map_or(self.sh.top_fd.as_fd(), |f| f.as_fd());
            let next = rfs::openat(
                base,
                c.as_c_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            );
            fd = Some(match next {
                Ok(f) => f,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Err(changed()),
                Err(e) => return Err(self.fail("cannot open the directory again", e)),
            });
        }
        let fd = fd.ok_or_else(changed)?;
        let st = rfs::fstat(&fd).map_err(|e| self.fail("cannot stat", e))?;
        if st.st_ino != ino || (rfs::major(st.st_dev), rfs::minor(st.st_dev)) != dev {
            return Err(changed());
        }
        Ok(fd)
    }

    /// Works on one entry of the directory `parent`, `depth` directories below the top
    /// (`self.path` names the entry); a directory on the same mount is returned open, to be
    /// walked.
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
        if ftype != FileType::Directory
            && st.stx_nlink > 1
            && !self
                .sh
                .seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(st.stx_ino)
        {
            return Ok(None);
        }
        if ftype == FileType::Directory && depth + 1 > MAX_DEPTH {
            return Err(TooDeep {
                path: self.here(),
                max: MAX_DEPTH,
            }
            .into());
        }
        self.tick();
        self.report.blocks += st.stx_blocks;
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
            if self.sh.map.is_some() {
                self.inode(Node::Fd(fd.as_fd()), &st)?;
            }
            Ok(Some((fd, st)))
        } else if self.sh.map.is_some() {
            let node = Node::At {
                parent: parent.as_fd(),
                name,
            };
            self.inode(node, &st).map(|()| None)
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
        if outside > 0 && self.first_before(self.report.first_outside.as_deref()) {
            self.report.first_outside = Some(self.here());
        }
        if cu == Class::Done || cg == Class::Done {
            self.report.done_id_inodes += 1;
            if self.first_before(self.report.first_done.as_deref()) {
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
        let len = match node.list(self.xbuf()) {
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
        if !self.sh.drop_privileged {
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
        let map = self.sh.map.expect("only called when shifting");
        let (cu, cg) = self.classify(&map, st);
        let ftype = FileType::from_raw_mode(u32::from(st.stx_mode));
        let is_dir = ftype == FileType::Directory;
        let mode = u32::from(st.stx_mode) & 0o7777;
        if self.sh.dry {
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
        let map = self.sh.map.expect("only called when shifting");
        let pending = std::mem::take(&mut self.pending);
        let mut lines = String::new();
        for p in &pending {
            lines.push_str(&log_line(
                p.mode,
                p.caps.as_ref().map(|c| &c.0[..]),
                &p.path,
            ));
        }
        self.sh
            .log
            .as_ref()
            .expect("a log when shifting")
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .append(&lines)?;
        // Logged, nothing of the batch chowned yet: where a kill leaves the most to replay.
        crate::failpoint::hit("shift:after-log-batch")?;
        let saved = std::mem::take(&mut self.path);
        for p in &pending {
            self.path.clone_from(&p.path);
            let Some((parent, name)) = self.resolve()? else {
                continue;
            };
            let Some(node) = self.found(&parent, name.as_deref(), Some(p.ino))? else {
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
            self.sh.failpoint_after_chown()?;
            if std::ptr::eq(p, &pending[0]) {
                // The first of a batch chowned, its setid bits and capability not yet put
                // back: where a kill leaves an inode that only the log can repair.
                crate::failpoint::hit("shift:after-batch-chown")?;
            }
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
        let mut parent = self.sh.top_fd.try_clone().with_context(ctx)?;
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

    /// Stats what [`Worker::resolve`] found: `None` when it is gone or on another mount; an error
    /// when it is not the inode `ino` the walk saw.
    pub(super) fn found<'a>(
        &self,
        parent: &'a OwnedFd,
        name: Option<&'a CStr>,
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
            },
        };
        Ok(Some((node, st)))
    }

    pub(super) fn acl(&mut self, node: Node<'_>, name: &CStr, map: &Mapping) -> Result<()> {
        let len = match node.get(name, self.xbuf()) {
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
        let map = self.sh.map.expect("only called when shifting");
        let Some((parent, name)) = self.resolve()? else {
            return Ok(false);
        };
        let Some((node, st)) = self.found(&parent, name.as_deref(), None)? else {
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
