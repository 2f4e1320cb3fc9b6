//! The root-relative file layer: every file the tool touches goes through a [`Root`], which
//! resolves each path beneath the root (openat2 `RESOLVE_IN_ROOT`), so no symlink or `..`
//! in a tree given with `--root` leads out of it.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use rustix::fs::{self as rfs, AtFlags, Gid, Mode, OFlags, ResolveFlags, Uid};
use rustix::io::Errno;

/// A directory that stands for `/`: the host itself, or a tree given with `--root`.
#[derive(Debug, Clone)]
pub struct Root {
    base: PathBuf,
    host: bool,
    /// The root directory, opened once (O_PATH): every path is resolved from it.
    dir: Arc<OwnedFd>,
}

/// Mode and ownership a file is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Perms {
    /// Permission bits (e.g. 0o644).
    pub(crate) mode: u32,
    /// Owner uid.
    pub(crate) uid: u32,
    /// Owner gid.
    pub(crate) gid: u32,
}

impl Default for Perms {
    fn default() -> Self {
        Perms::root_owned(0o644)
    }
}

impl Perms {
    /// Root-owned file with the given mode.
    pub(crate) fn root_owned(mode: u32) -> Perms {
        Perms {
            mode,
            uid: 0,
            gid: 0,
        }
    }

    /// The mode and owner of an existing file.
    pub(crate) fn of(meta: &fs::Metadata) -> Perms {
        Perms {
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        }
    }
}

/// A path inside a root as the host names it, for messages ([`Root::path`]): it displays, and
/// nothing else, so every file access has to go through [`Root`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shown(PathBuf);

impl Shown {
    /// For `{}` in messages.
    pub(crate) fn display(&self) -> std::path::Display<'_> {
        self.0.display()
    }
}

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.display().fmt(f)
    }
}

/// A directory opened beneath a root ([`Root::open_dir`]): an fd to walk from, and the path
/// the host knows it by, which is for messages only (nothing opens it again by that name).
#[derive(Debug)]
pub struct OpenDir {
    fd: OwnedFd,
    shown: PathBuf,
}

impl OpenDir {
    /// The directory's fd.
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    /// Where it is, for messages.
    pub fn shown(&self) -> &Path {
        &self.shown
    }
}

impl Root {
    /// Opens `dir` as the root. `/` (after resolving links) is the live host.
    pub fn new(dir: &Path) -> Result<Root> {
        let base = fs::canonicalize(dir)
            .with_context(|| format!("cannot use {} as root directory", dir.display()))?;
        if !base.is_dir() {
            anyhow::bail!("{} is not a directory", base.display());
        }
        let host = base == Path::new("/");
        let dir = rfs::open(
            &base,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("cannot open {}", base.display()))?;
        let root = Root {
            base,
            host,
            dir: Arc::new(dir),
        };
        // Refuse up front where the kernel cannot keep paths inside a tree (Linux < 5.6).
        if !host {
            root.open_in("/", OFlags::PATH | OFlags::DIRECTORY)
                .with_context(|| {
                    format!("cannot open {} as root directory", root.base.display())
                })?;
        }
        Ok(root)
    }

    /// True when this root is the running host (`--root /`): services and NSS may be used.
    pub(crate) fn is_host(&self) -> bool {
        self.host
    }

    /// The directory this root stands for.
    pub(crate) fn base(&self) -> &Path {
        &self.base
    }

    /// How `abs`, an absolute path as seen inside the root, is named on the host, for
    /// messages only: a [`Shown`] cannot be opened (it is no `AsRef<Path>`). Files of a tree are
    /// reached through the methods below, which resolve every link beneath the root.
    pub(crate) fn path(&self, abs: &str) -> Shown {
        debug_assert!(
            abs.starts_with('/'),
            "root-relative paths are absolute: {abs}"
        );
        Shown(self.joined(abs))
    }

    /// The host's name of `abs`, as a path: for tests that plant files in a tree.
    #[cfg(test)]
    pub(crate) fn host_path(&self, abs: &str) -> PathBuf {
        self.joined(abs)
    }

    fn joined(&self, abs: &str) -> PathBuf {
        if self.host {
            PathBuf::from(abs)
        } else {
            self.base.join(abs.trim_start_matches('/'))
        }
    }

    /// Opens `abs` with every component resolved beneath the root (openat2
    /// `RESOLVE_IN_ROOT`): `..` stops at the root and absolute symlinks start from it, as
    /// they would after a chroot. On the live host the root is `/`, so this is plain
    /// resolution (and plain `open` on a kernel without openat2).
    fn open_in(&self, abs: &str, flags: OFlags) -> io::Result<OwnedFd> {
        self.open_in_mode(abs, flags, Mode::empty())
    }

    fn open_in_mode(&self, abs: &str, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        let rel = match abs.trim_start_matches('/') {
            "" => ".",
            r => r,
        };
        let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        match rfs::openat2(&*self.dir, rel, flags | OFlags::CLOEXEC, mode, how) {
            // No openat2 (before Linux 5.6), or a seccomp filter that does not know it: on
            // the live host plain resolution is the same thing.
            Err(Errno::NOSYS | Errno::PERM) if self.host => {
                Ok(rfs::open(abs, flags | OFlags::CLOEXEC, mode)?)
            }
            Err(Errno::NOSYS) => Err(io::Error::other(
                "this kernel has no openat2 (Linux 5.6 and later), which --root needs to keep every path inside the tree",
            )),
            r => Ok(r?),
        }
    }

    /// The directory holding `abs`, opened beneath the root, and the last component's name.
    fn parent(&self, abs: &str) -> Result<(OwnedFd, String)> {
        let (parent, name) = self.split(abs)?;
        let fd = self
            .open_in(&parent, OFlags::RDONLY | OFlags::DIRECTORY)
            .with_context(|| format!("cannot open directory {}", self.path(&parent).display()))?;
        Ok((fd, name))
    }

    /// `abs` as its directory and its last component, which must name a file (not `.`, `..`
    /// or nothing).
    fn split(&self, abs: &str) -> Result<(String, String)> {
        let p = Path::new(abs);
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n != "." && n != "..")
            .with_context(|| format!("{} names no file", self.path(abs).display()))?;
        let parent = p
            .parent()
            .map_or_else(|| "/".to_string(), |d| d.to_string_lossy().into_owned());
        Ok((parent, name))
    }

    /// Opens a file for reading; `Ok(None)` when it does not exist.
    pub(crate) fn open_read(&self, abs: &str) -> Result<Option<fs::File>> {
        match self.open_in(abs, OFlags::RDONLY) {
            Ok(fd) => Ok(Some(fs::File::from(fd))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.path(abs).display())),
        }
    }

    /// Reads a file; `Ok(None)` when it does not exist.
    pub(crate) fn read_optional(&self, abs: &str) -> Result<Option<Vec<u8>>> {
        let Some(mut f) = self.open_read(abs)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", self.path(abs).display()))?;
        Ok(Some(bytes))
    }

    /// True when the file at `abs` holds exactly `bytes` (read in chunks, nothing kept: a
    /// million-line /etc/subuid is compared, not loaded twice).
    pub(crate) fn holds(&self, abs: &str, bytes: &[u8]) -> Result<bool> {
        let ctx = || format!("cannot read {}", self.path(abs).display());
        let Some(mut f) = self.open_read(abs)? else {
            return Ok(false);
        };
        let mut buf = vec![0u8; 1 << 16];
        let mut at = 0;
        loop {
            let n = match f.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).with_context(ctx),
            };
            if n == 0 {
                return Ok(at == bytes.len());
            }
            if bytes.get(at..at + n) != Some(&buf[..n]) {
                return Ok(false);
            }
            at += n;
        }
    }

    /// `lstat` of a path (the last component not followed); `Ok(None)` when it does not exist.
    pub(crate) fn symlink_metadata(&self, abs: &str) -> Result<Option<fs::Metadata>> {
        self.stat(abs, OFlags::PATH | OFlags::NOFOLLOW)
    }

    /// `stat` of a path, links followed beneath the root; `Ok(None)` when it does not exist.
    pub(crate) fn metadata(&self, abs: &str) -> Result<Option<fs::Metadata>> {
        self.stat(abs, OFlags::PATH)
    }

    fn stat(&self, abs: &str, flags: OFlags) -> Result<Option<fs::Metadata>> {
        let ctx = || format!("cannot stat {}", self.path(abs).display());
        match self.open_in(abs, flags) {
            Ok(fd) => Ok(Some(fs::File::from(fd).metadata().with_context(ctx)?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(ctx),
        }
    }

    /// The target of symlink `abs` (its parent resolved beneath the root).
    pub(crate) fn read_link(&self, abs: &str) -> Result<PathBuf> {
        let (dir, name) = self.parent(abs)?;
        let target = rfs::readlinkat(&dir, name.as_str(), Vec::new())
            .with_context(|| format!("cannot read the link {}", self.path(abs).display()))?;
        Ok(PathBuf::from(std::ffi::OsString::from_vec(
            target.into_bytes(),
        )))
    }

    /// The names in directory `abs` (none when it does not exist).
    pub(crate) fn read_dir_names(&self, abs: &str) -> Result<Vec<String>> {
        let ctx = || format!("cannot list {}", self.path(abs).display());
        let fd = match self.open_in(abs, OFlags::RDONLY | OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(ctx),
        };
        let mut names = Vec::new();
        for entry in rfs::Dir::read_from(&fd).with_context(ctx)? {
            let name = entry
                .with_context(ctx)?
                .file_name()
                .to_string_lossy()
                .into_owned();
            if name != "." && name != ".." {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Creates directory `abs` (and missing parents) with `mode`, owned by root, if it is missing.
    pub(crate) fn ensure_dir(&self, abs: &str, mode: u32) -> Result<()> {
        if self.open_in(abs, OFlags::PATH | OFlags::DIRECTORY).is_ok() {
            return Ok(());
        }
        if let Some(parent) = Path::new(abs).parent()
            && parent != Path::new("/")
        {
            self.ensure_dir(&parent.to_string_lossy(), 0o755)?;
        }
        let (dir, name) = self.parent(abs)?;
        let ctx = || format!("cannot create {}", self.path(abs).display());
        match rfs::mkdirat(&dir, name.as_str(), Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            // Someone else made it meanwhile, or it is a link: it must lead to a directory.
            Err(Errno::EXIST) => {
                return match self.open_in(abs, OFlags::PATH | OFlags::DIRECTORY) {
                    Ok(_) => Ok(()),
                    Err(e) => Err(e).with_context(|| {
                        format!("{} exists but is not a directory", self.path(abs).display())
                    }),
                };
            }
            Err(e) => return Err(io::Error::from(e)).with_context(ctx),
        }
        let new = rfs::openat(
            &dir,
            name.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(ctx)?;
        rfs::fchmod(&new, Mode::from_raw_mode(mode))
            .with_context(|| format!("cannot set mode of {}", self.path(abs).display()))?;
        rfs::fsync(&dir).with_context(ctx)
    }

    /// Durable replace of `abs`: temp file in the same directory, write, set mode and owner,
    /// fsync, rename over the target, fsync the directory. Readers see the old or the new
    /// content, never a mix. The directory is resolved beneath the root; the last component
    /// is replaced, never followed.
    pub(crate) fn write_atomic(&self, abs: &str, bytes: &[u8], perms: Perms) -> Result<()> {
        let (dir, name) = self.parent(abs)?;
        let path = self.path(abs);
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = format!(
            ".{name}.{}.{}.{nanos}.docker-userns",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let written = (|| -> Result<()> {
            let fd = rfs::openat(
                &dir,
                tmp.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .with_context(|| format!("cannot create a temporary file beside {}", path.display()))?;
            let mut f = fs::File::from(fd);
            let ctx = || format!("cannot write the new content of {}", path.display());
            f.write_all(bytes).with_context(ctx)?;
            rfs::fchmod(&f, Mode::from_raw_mode(perms.mode)).with_context(ctx)?;
            rfs::fchown(
                &f,
                Some(Uid::from_raw(perms.uid)),
                Some(Gid::from_raw(perms.gid)),
            )
            .with_context(|| format!("cannot set the owner of the new {}", path.display()))?;
            f.sync_all().with_context(ctx)?;
            rfs::renameat(&dir, tmp.as_str(), &dir, name.as_str())
                .with_context(|| format!("cannot replace {}", path.display()))?;
            Ok(())
        })();
        if written.is_err() {
            let _ = rfs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
            return written;
        }
        rfs::fsync(&dir).with_context(|| format!("cannot sync the directory of {}", path.display()))
    }

    /// Removes file `abs` (not following a link there); a missing file is fine.
    pub(crate) fn remove_file(&self, abs: &str) -> Result<()> {
        let (dir, name) = self.parent(abs)?;
        match rfs::unlinkat(&dir, name.as_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(io::Error::from(e))
                .with_context(|| format!("cannot remove {}", self.path(abs).display())),
        }
    }

    /// Renames `from` to `to` (neither last component followed; both parents resolved beneath
    /// the root), then fsyncs both directories so that the rename is durable.
    pub(crate) fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (fdir, fname) = self.parent(from)?;
        let (tdir, tname) = self.parent(to)?;
        let ctx = || {
            format!(
                "cannot rename {} to {}",
                self.path(from).display(),
                self.path(to).display()
            )
        };
        rfs::renameat(&fdir, fname.as_str(), &tdir, tname.as_str()).with_context(ctx)?;
        rfs::fsync(&tdir).with_context(ctx)?;
        rfs::fsync(&fdir).with_context(ctx)
    }

    /// Makes `dst` a second name (hard link) of the file at `src`, neither last component
    /// followed; fails across file systems (EXDEV) and wherever links are not allowed.
    pub(crate) fn hard_link(&self, src: &str, dst: &str) -> Result<()> {
        let (sdir, sname) = self.parent(src)?;
        let (ddir, dname) = self.parent(dst)?;
        rfs::linkat(
            &sdir,
            sname.as_str(),
            &ddir,
            dname.as_str(),
            AtFlags::empty(),
        )
        .map_err(io::Error::from)
        .with_context(|| {
            format!(
                "cannot link {} to {}",
                self.path(dst).display(),
                self.path(src).display()
            )
        })
    }

    /// fsync directory `abs`, so that a rename or unlink in it is durable.
    pub(crate) fn sync_dir(&self, abs: &str) -> Result<()> {
        let ctx = || format!("cannot sync directory {}", self.path(abs).display());
        let fd = self
            .open_in(abs, OFlags::RDONLY | OFlags::DIRECTORY)
            .with_context(ctx)?;
        rfs::fsync(&fd).with_context(ctx)
    }

    /// The host path of directory `abs`, resolved beneath the root (through
    /// /proc/self/fd): for the few operations that need a plain path in that directory, such
    /// as shadow's `link()` lock protocol.
    pub(crate) fn real_dir(&self, abs: &str) -> Result<PathBuf> {
        let ctx = || format!("cannot open directory {}", self.path(abs).display());
        let fd = self
            .open_in(abs, OFlags::PATH | OFlags::DIRECTORY)
            .with_context(ctx)?;
        let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let real = fs::read_link(&link)
            .with_context(|| format!("{}: cannot read {link} (is /proc mounted?)", ctx()))?;
        if !self.host && !real.starts_with(&self.base) {
            anyhow::bail!(
                "{} resolves to {}, outside the root",
                self.path(abs).display(),
                real.display()
            );
        }
        Ok(real)
    }

    /// Opens the directory `abs` beneath the root (every component resolved there, as
    /// [`Root::open_read`] does) for a walk that works through fds from then on: nothing below
    /// it is looked up by a path from the root again, so no symlink or `..` met later leads
    /// out of it.
    pub fn open_dir(&self, abs: &str) -> Result<OpenDir> {
        let ctx = || format!("cannot open the directory {}", self.path(abs).display());
        let fd = self
            .open_in(abs, OFlags::RDONLY | OFlags::DIRECTORY)
            .with_context(ctx)?;
        // What was really opened, for messages: the fd's own path when /proc tells it.
        let shown = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .unwrap_or_else(|_| self.joined(abs));
        Ok(OpenDir { fd, shown })
    }

    /// Whether `abs` exists beneath the root (links followed there).
    pub(crate) fn exists(&self, abs: &str) -> bool {
        self.open_in(abs, OFlags::PATH).is_ok()
    }

    /// Whether `abs` is a directory beneath the root (links followed there).
    pub(crate) fn is_dir(&self, abs: &str) -> bool {
        self.open_in(abs, OFlags::PATH | OFlags::DIRECTORY).is_ok()
    }

    /// The real path of `abs` for what must be opened by name (by this process, or by a
    /// program it runs): its directory resolved beneath the root ([`Root::real_dir`], refused
    /// when that leads outside), its last component appended (not followed: a file that
    /// does not exist yet is named too). The directory must exist.
    pub(crate) fn resolved(&self, abs: &str) -> Result<PathBuf> {
        let (parent, name) = self.split(abs)?;
        Ok(self.real_dir(&parent)?.join(name))
    }

    /// Removes the directory `abs` and what is below it (resolved beneath the root first;
    /// std's removal does not follow links below it). A missing one is fine.
    pub(crate) fn remove_dir_all(&self, abs: &str) -> Result<()> {
        if !self.exists(abs) {
            return Ok(());
        }
        let real = self.resolved(abs)?;
        match fs::remove_dir_all(&real) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", real.display())),
        }
    }

    /// `statvfs` of the filesystem holding `abs` (resolved beneath the root).
    pub(crate) fn statvfs(&self, abs: &str) -> Result<rfs::StatVfs> {
        let fd = self
            .open_in(abs, OFlags::RDONLY | OFlags::DIRECTORY)
            .with_context(|| format!("cannot open {}", self.path(abs).display()))?;
        rfs::fstatvfs(&fd).with_context(|| format!("cannot stat {}", self.path(abs).display()))
    }

    /// Opens (creating it 0600 if missing, never truncating, never following a link there) a
    /// file used only to hold a lock on.
    pub(crate) fn open_lock_file(&self, abs: &str) -> Result<fs::File> {
        let (dir, name) = self.parent(abs)?;
        let fd = rfs::openat(
            &dir,
            name.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .with_context(|| format!("cannot open {}", self.path(abs).display()))?;
        Ok(fs::File::from(fd))
    }

    /// True when `abs` names the same file resolved beneath the root and resolved the way any
    /// other program would (following links out of the tree): what `useradd --prefix` needs,
    /// since it opens the tree's files by plain path.
    pub(crate) fn resolves_inside(&self, abs: &str) -> Result<bool> {
        let inside = self.metadata(abs)?;
        // Deliberately the host's own resolution: what another program would open.
        let plain = match fs::metadata(self.joined(abs)) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot stat {}", self.path(abs).display()));
            }
        };
        Ok(match (inside, plain) {
            (Some(a), Some(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            (None, None) => self.host || self.resolves_inside_parent(abs)?,
            _ => false,
        })
    }

    fn resolves_inside_parent(&self, abs: &str) -> Result<bool> {
        match Path::new(abs).parent() {
            Some(p) if p != Path::new("/") => self.resolves_inside(&p.to_string_lossy()),
            _ => Ok(true),
        }
    }

    /// Copies `abs` to `backup_abs` durably, keeping its mode and owner (shadow's `file-`).
    pub(crate) fn backup(
        &self,
        abs: &str,
        backup_abs: &str,
        content: &[u8],
        perms: Perms,
    ) -> Result<()> {
        self.write_atomic(backup_abs, content, perms)
            .with_context(|| {
                format!(
                    "cannot back up {} before changing it",
                    self.path(abs).display()
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_prefixed_under_a_tree_and_plain_on_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        assert!(!root.is_host());
        assert_eq!(
            root.host_path("/etc/subuid"),
            dir.path().canonicalize().unwrap().join("etc/subuid")
        );
        let host = Root::new(Path::new("/")).unwrap();
        assert!(host.is_host());
        assert_eq!(host.host_path("/etc/subuid"), PathBuf::from("/etc/subuid"));
    }

    #[test]
    fn atomic_write_sets_mode_and_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        root.ensure_dir("/etc/docker", 0o755).unwrap();
        root.write_atomic("/etc/docker/daemon.json", b"{}\n", Perms::root_owned(0o600))
            .unwrap();
        root.write_atomic(
            "/etc/docker/daemon.json",
            b"{\"a\":1}\n",
            Perms::root_owned(0o640),
        )
        .unwrap();
        let p = root.host_path("/etc/docker/daemon.json");
        assert_eq!(fs::read(&p).unwrap(), b"{\"a\":1}\n");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o640);
        let leftovers: Vec<_> = fs::read_dir(root.host_path("/etc/docker"))
            .unwrap()
            .collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
    }
}
