//! The root-relative file layer: every path the tool touches goes through a [`Root`].

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A directory that stands for `/`: the host itself, or a tree given with `--root`.
#[derive(Debug, Clone)]
pub struct Root {
    base: PathBuf,
    host: bool,
}

/// Mode and ownership a file is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perms {
    /// Permission bits (e.g. 0o644).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
}

impl Default for Perms {
    fn default() -> Self {
        Perms::root_owned(0o644)
    }
}

impl Perms {
    /// Root-owned file with the given mode.
    pub fn root_owned(mode: u32) -> Perms {
        Perms {
            mode,
            uid: 0,
            gid: 0,
        }
    }

    /// The mode and owner of an existing file.
    pub fn of(meta: &fs::Metadata) -> Perms {
        Perms {
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        }
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
        Ok(Root { base, host })
    }

    /// True when this root is the running host (`--root /`): services and NSS may be used.
    pub fn is_host(&self) -> bool {
        self.host
    }

    /// The directory this root stands for.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The real path of `abs`, an absolute path as seen inside the root.
    pub fn path(&self, abs: &str) -> PathBuf {
        debug_assert!(
            abs.starts_with('/'),
            "root-relative paths are absolute: {abs}"
        );
        if self.host {
            PathBuf::from(abs)
        } else {
            self.base.join(abs.trim_start_matches('/'))
        }
    }

    /// Reads a file; `Ok(None)` when it does not exist.
    pub fn read_optional(&self, abs: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(abs);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// `lstat` of a path; `Ok(None)` when it does not exist.
    pub fn symlink_metadata(&self, abs: &str) -> Result<Option<fs::Metadata>> {
        let path = self.path(abs);
        match fs::symlink_metadata(&path) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot stat {}", path.display())),
        }
    }

    /// Creates directory `abs` (and missing parents) with `mode`, owned by root, if it is missing.
    pub fn ensure_dir(&self, abs: &str, mode: u32) -> Result<()> {
        let path = self.path(abs);
        if path.is_dir() {
            return Ok(());
        }
        if let Some(parent) = Path::new(abs).parent()
            && parent != Path::new("/")
        {
            self.ensure_dir(&parent.to_string_lossy(), 0o755)?;
        }
        match fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set mode of {}", path.display()))?;
        if let Some(parent) = path.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }

    /// Durable replace of `abs`: temp file in the same directory, write, set mode and owner,
    /// fsync, rename over the target, fsync the directory. Readers see the old or the new
    /// content, never a mix.
    pub fn write_atomic(&self, abs: &str, bytes: &[u8], perms: Perms) -> Result<()> {
        let path = self.path(abs);
        write_atomic_path(&path, bytes, perms)
    }

    /// Copies `abs` to `backup_abs` durably, keeping its mode and owner (shadow's `file-`).
    pub fn backup(&self, abs: &str, backup_abs: &str, content: &[u8], perms: Perms) -> Result<()> {
        self.write_atomic(backup_abs, content, perms)
            .with_context(|| {
                format!(
                    "cannot back up {} before changing it",
                    self.path(abs).display()
                )
            })
    }
}

/// See [`Root::write_atomic`].
pub fn write_atomic_path(path: &Path, bytes: &[u8], perms: Perms) -> Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".docker-userns")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let ctx = || format!("cannot write {}", tmp_display(path));
    tmp.as_file_mut().write_all(bytes).with_context(ctx)?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(perms.mode))
        .with_context(ctx)?;
    std::os::unix::fs::fchown(tmp.as_file(), Some(perms.uid), Some(perms.gid))
        .with_context(|| format!("cannot set the owner of the new {}", path.display()))?;
    tmp.as_file().sync_all().with_context(ctx)?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    sync_dir(dir)
}

fn tmp_display(path: &Path) -> String {
    format!("the new content of {}", path.display())
}

/// Opens (creating it 0600 if missing, never truncating) a file used only to hold a lock on.
pub fn open_lock_file(path: &Path) -> Result<fs::File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// fsync a directory so that a rename or unlink in it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .with_context(|| format!("cannot open directory {}", dir.display()))?;
    f.sync_all()
        .with_context(|| format!("cannot sync directory {}", dir.display()))
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
            root.path("/etc/subuid"),
            dir.path().canonicalize().unwrap().join("etc/subuid")
        );
        let host = Root::new(Path::new("/")).unwrap();
        assert!(host.is_host());
        assert_eq!(host.path("/etc/subuid"), PathBuf::from("/etc/subuid"));
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
        let p = root.path("/etc/docker/daemon.json");
        assert_eq!(fs::read(&p).unwrap(), b"{\"a\":1}\n");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o640);
        let leftovers: Vec<_> = fs::read_dir(root.path("/etc/docker")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
    }
}
