//! shadow-compatible locking of /etc/subuid and /etc/subgid, so `useradd` and `usermod`
//! running at the same time never interleave with this tool.
//!
//! The protocol is shadow's `commonio_lock`: first the `lckpwdf` lock (an fcntl write lock on
//! `/etc/.pwd.lock`), then for each file write our PID to `FILE.PID` and `link()` it to
//! `FILE.lock`. A lock file whose PID no longer exists is stale and is removed. Both are taken
//! relative to the [`Root`], so a `--root` tree is locked, not the host.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustix::fs::{FlockOperation, fcntl_lock};
use rustix::io::Errno;
use rustix::process::{Pid, test_kill_process};

use crate::exit::Conflict;
use crate::host::root::Root;

/// How long shadow's tools wait for a lock (15 tries, one second apart).
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Held locks; released (lock files unlinked, fcntl lock dropped) on drop.
#[derive(Debug)]
pub(crate) struct ShadowLock {
    links: Vec<PathBuf>,
    _pwd: File,
}

impl Drop for ShadowLock {
    fn drop(&mut self) {
        for l in self.links.iter().rev() {
            let _ = fs::remove_file(l);
        }
    }
}

/// Takes the `lckpwdf` lock and the link lock of each of `files` (paths inside the root).
pub(crate) fn lock(root: &Root, files: &[&str], timeout: Duration) -> Result<ShadowLock> {
    lock_with(root, files, timeout, write_pid)
}

fn lock_with(
    root: &Root,
    files: &[&str],
    timeout: Duration,
    write: WritePid,
) -> Result<ShadowLock> {
    let deadline = Instant::now() + timeout;
    let pwd = lock_pwd(root, deadline)?;
    let mut held = ShadowLock {
        links: Vec::new(),
        _pwd: pwd,
    };
    for f in files {
        // The directory resolved beneath the root; shadow's protocol then works by name in it.
        let abs = Path::new(f);
        let dir = root.real_dir(&abs.parent().map_or("/".into(), |d| d.to_string_lossy()))?;
        let name = abs
            .file_name()
            .with_context(|| format!("{f} names no file"))?
            .to_string_lossy();
        let lock = dir.join(format!("{name}.lock"));
        let tmp = dir.join(format!("{name}.{}", std::process::id()));
        match link_lock(&tmp, &lock, deadline, write) {
            Ok(()) => held.links.push(lock),
            Err(LinkError::Busy) => bail!(
                "cannot lock {}: another program (useradd, usermod, docker-userns) holds {}; try again later",
                root.path(f).display(),
                lock.display()
            ),
            Err(LinkError::Other(e)) => {
                return Err(e.context(format!("cannot lock {}", root.path(f).display())));
            }
        }
    }
    Ok(held)
}

fn lock_pwd(root: &Root, deadline: Instant) -> Result<File> {
    let path = root.path("/etc/.pwd.lock");
    let file = root.open_lock_file("/etc/.pwd.lock")?;
    loop {
        // lckpwdf(3): a process-associated fcntl write lock on the whole file (F_SETLK).
        match fcntl_lock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(Errno::ACCESS | Errno::AGAIN | Errno::INTR) => {}
            Err(e) => {
                return Err(io::Error::from(e))
                    .with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "cannot lock {}: another program that edits the user database holds it; try again later",
                path.display()
            );
        }
        sleep(Duration::from_millis(100));
    }
}

fn pid_alive(pid: i32) -> bool {
    // kill(pid, 0): only ESRCH says the process is gone (EPERM: alive, someone else's).
    match Pid::from_raw(pid) {
        Some(pid) => !matches!(test_kill_process(pid), Err(Errno::SRCH)),
        None => false,
    }
}

/// Why a lock could not be taken: held by someone else, or something else went wrong.
#[derive(Debug)]
enum LinkError {
    /// Another live process held the lock until the deadline.
    Busy,
    /// Anything else, with what happened and the path.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for LinkError {
    fn from(e: anyhow::Error) -> Self {
        LinkError::Other(e)
    }
}

/// Writes the pid into the freshly created `FILE.PID` (a seam for tests that inject errors).
type WritePid = fn(&mut File, &[u8]) -> io::Result<()>;

fn write_pid(f: &mut File, pid: &[u8]) -> io::Result<()> {
    f.write_all(pid)?;
    f.sync_all()
}

/// Creates `FILE.PID` as a new regular file of ours: `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600.
/// A regular file already there can only be left by a dead process that had our pid (no live
/// process but us has it), so it is removed first; anything else there (a symbolic link, a
/// directory, ...) is refused and left alone: it is never followed, its target never touched.
fn create_pid_file(tmp: &Path) -> Result<File> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(tmp)
    };
    match open() {
        Ok(f) => return Ok(f),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", tmp.display())),
    }
    let meta = fs::symlink_metadata(tmp)
        .with_context(|| format!("cannot create {}: it exists", tmp.display()))?;
    if !meta.file_type().is_file() {
        return Err(Conflict::new(format!(
            "{} exists and is {}, not a lock file left by this tool: refusing to write through it; remove it and run again",
            tmp.display(),
            kind_of(&meta)
        ))
        .kind("lock-file-invalid")
        .into());
    }
    tracing::info!("removing {}, left by a dead process", tmp.display());
    fs::remove_file(tmp).with_context(|| format!("cannot remove stale {}", tmp.display()))?;
    open().with_context(|| format!("cannot create {}", tmp.display()))
}

fn kind_of(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// The pid text in an existing `FILE.lock`, read without following a link. A lock that is not
/// a regular file was not made by shadow's protocol (which links a regular file) and is
/// refused, never taken for a valid lock.
fn read_lock(lock: &Path) -> Result<Option<String>> {
    let meta = match fs::symlink_metadata(lock) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot stat {}", lock.display())),
    };
    if !meta.file_type().is_file() {
        return Err(Conflict::new(format!(
            "{} is {}, not a lock file (shadow's tools make a regular file holding a process id): remove it if no useradd/usermod is running, then run again",
            lock.display(),
            kind_of(&meta)
        ))
        .kind("lock-file-invalid")
        .into());
    }
    let mut f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(lock)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", lock.display())),
    };
    let mut text = String::new();
    f.read_to_string(&mut text)
        .with_context(|| format!("cannot read {}", lock.display()))?;
    Ok(Some(text))
}

fn link_lock(tmp: &Path, lock: &Path, deadline: Instant, write: WritePid) -> Result<(), LinkError> {
    let pid = std::process::id().to_string();
    let mut file = create_pid_file(tmp)?;
    // From here on FILE.PID is ours: it is removed whatever happens.
    let result = (|| {
        write(&mut file, pid.as_bytes())
            .with_context(|| format!("cannot write the process id to {}", tmp.display()))?;
        let ours = file
            .metadata()
            .with_context(|| format!("cannot stat {}", tmp.display()))?;
        loop {
            match fs::hard_link(tmp, lock) {
                Ok(()) => return check_linked(&file, &ours, tmp, lock),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if stale_or_gone(lock)? {
                        continue;
                    }
                    if Instant::now() >= deadline {
                        return Err(LinkError::Busy);
                    }
                    sleep(Duration::from_millis(200));
                }
                Err(e) => {
                    return Err(LinkError::Other(anyhow::Error::from(e).context(format!(
                        "cannot link {} to {}",
                        tmp.display(),
                        lock.display()
                    ))));
                }
            }
        }
    })();
    drop(file);
    let _ = fs::remove_file(tmp);
    result
}

/// After the link: the lock must be our file (the inode we wrote), with two links; a lock
/// that is our inode but wrong is removed.
fn check_linked(
    file: &File,
    ours: &fs::Metadata,
    tmp: &Path,
    lock: &Path,
) -> Result<(), LinkError> {
    let now = file
        .metadata()
        .with_context(|| format!("cannot stat {}", tmp.display()))?;
    let lock_meta =
        fs::symlink_metadata(lock).with_context(|| format!("cannot stat {}", lock.display()))?;
    let same = lock_meta.ino() == ours.ino() && lock_meta.dev() == ours.dev();
    if now.nlink() == 2 && lock_meta.file_type().is_file() && same {
        return Ok(());
    }
    if same {
        let _ = fs::remove_file(lock);
    }
    Err(LinkError::Other(anyhow::anyhow!(
        "{} has an unexpected link count {} after linking it to {}",
        tmp.display(),
        now.nlink(),
        lock.display()
    )))
}

/// The lock exists: true when it went away or belonged to a dead process (removed now), so
/// linking can be tried again at once; false when a live process (or an empty file, being
/// written) holds it; an error when it holds no process id.
fn stale_or_gone(lock: &Path) -> Result<bool, LinkError> {
    let text = read_lock(lock)?;
    match text.as_deref().map(|t| t.trim().parse::<i32>()) {
        // Gone between the link and the read.
        None => Ok(true),
        Some(Ok(other)) if other > 0 && !pid_alive(other) => {
            tracing::info!(
                "removing stale lock {} of dead process {other}",
                lock.display()
            );
            let _ = fs::remove_file(lock);
            Ok(true)
        }
        Some(Ok(_)) => Ok(false),
        Some(Err(_)) if text.as_deref().is_some_and(str::is_empty) => Ok(false),
        Some(Err(_)) => Err(LinkError::Other(
            Conflict::new(format!(
                "{} does not hold a process id ({:?}); remove it if no useradd/usermod is running",
                lock.display(),
                text.unwrap_or_default().trim()
            ))
            .kind("lock-file-invalid")
            .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        let root = Root::new(dir.path()).unwrap();
        (dir, root)
    }

    #[test]
    fn locks_and_releases_both_files() {
        let (dir, root) = tree();
        {
            let _l = lock(
                &root,
                &["/etc/subuid", "/etc/subgid"],
                Duration::from_secs(1),
            )
            .unwrap();
            let held = fs::read_to_string(dir.path().join("etc/subuid.lock")).unwrap();
            assert_eq!(held, std::process::id().to_string());
            assert!(dir.path().join("etc/subgid.lock").exists());
        }
        assert!(!dir.path().join("etc/subuid.lock").exists());
        assert!(!dir.path().join("etc/subgid.lock").exists());
        let names: Vec<_> = fs::read_dir(dir.path().join("etc"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(".pwd.lock")]);
    }

    #[test]
    fn a_stale_lock_is_removed() {
        let (dir, root) = tree();
        // A pid that cannot exist (above pid_max).
        fs::write(dir.path().join("etc/subuid.lock"), "99999999").unwrap();
        let _l = lock(&root, &["/etc/subuid"], Duration::from_secs(1)).unwrap();
    }

    #[test]
    fn a_live_lock_times_out_with_a_clear_message() {
        let (dir, root) = tree();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        fs::write(dir.path().join("etc/subgid.lock"), child.id().to_string()).unwrap();
        let err = lock(
            &root,
            &["/etc/subuid", "/etc/subgid"],
            Duration::from_millis(500),
        )
        .unwrap_err();
        child.kill().unwrap();
        child.wait().unwrap();
        let msg = format!("{err:#}");
        assert!(msg.contains("subgid.lock"), "{msg}");
        assert!(
            !dir.path().join("etc/subuid.lock").exists(),
            "the first lock was released"
        );
    }

    /// The names in the tree's /etc, sorted.
    fn etc_names(dir: &tempfile::TempDir) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir.path().join("etc"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_symlink_at_the_pid_path_is_refused_and_not_followed() {
        let (dir, root) = tree();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious\n").unwrap();
        let tmp = dir
            .path()
            .join(format!("etc/subuid.{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();

        // The opener itself: refused, the link left as it is, its target untouched.
        let err = create_pid_file(&tmp).unwrap_err();
        assert!(format!("{err:#}").contains("symbolic link"), "{err:#}");
        assert_eq!(crate::exit::code_of(&err), crate::exit::Code::Conflict);
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(fs::symlink_metadata(&tmp).unwrap().file_type().is_symlink());

        // Through the lock: no lock taken, none left behind (least of all a symlink).
        let err = lock(&root, &["/etc/subuid"], Duration::from_millis(300)).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(&tmp.display().to_string()), "{msg}");
        assert!(!msg.contains("another program"), "{msg}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(fs::symlink_metadata(dir.path().join("etc/subuid.lock")).is_err());
    }

    #[test]
    fn a_regular_file_left_at_the_pid_path_is_replaced() {
        let (dir, root) = tree();
        let tmp = dir
            .path()
            .join(format!("etc/subuid.{}", std::process::id()));
        fs::write(&tmp, "left by a dead process with our pid").unwrap();
        {
            let _l = lock(&root, &["/etc/subuid"], Duration::from_secs(1)).unwrap();
            let held = fs::read_to_string(dir.path().join("etc/subuid.lock")).unwrap();
            assert_eq!(held, std::process::id().to_string());
        }
        assert_eq!(etc_names(&dir), vec![".pwd.lock"]);
    }

    #[test]
    fn a_symlink_lock_is_not_a_valid_lock() {
        let (dir, root) = tree();
        // The link points at a file holding a live pid: read through the link, it would look
        // like a lock held by that process.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let target = dir.path().join("pidfile");
        fs::write(&target, child.id().to_string()).unwrap();
        let link = dir.path().join("etc/subuid.lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = lock(&root, &["/etc/subuid"], Duration::from_millis(500)).unwrap_err();
        child.kill().unwrap();
        child.wait().unwrap();
        let msg = format!("{err:#}");
        assert!(msg.contains("symbolic link"), "{msg}");
        assert!(!msg.contains("another program"), "{msg}");
        assert_eq!(crate::exit::code_of(&err), crate::exit::Code::Conflict);
        assert_eq!(fs::read_to_string(&target).unwrap(), child.id().to_string());
        // A dangling link is no lock either.
        fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
        let err = lock(&root, &["/etc/subuid"], Duration::from_millis(500)).unwrap_err();
        assert!(format!("{err:#}").contains("symbolic link"), "{err:#}");
        assert_eq!(etc_names(&dir), vec![".pwd.lock", "subuid.lock"]);
    }

    #[test]
    fn a_write_error_says_what_happened_and_leaves_nothing_behind() {
        let (dir, root) = tree();
        fn no_space(_: &mut File, _: &[u8]) -> io::Result<()> {
            Err(io::Error::from_raw_os_error(libc::ENOSPC))
        }
        let err = lock_with(
            &root,
            &["/etc/subuid", "/etc/subgid"],
            Duration::from_secs(1),
            no_space,
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        let tmp = root.path(&format!("/etc/subuid.{}", std::process::id()));
        assert!(msg.contains("No space left on device"), "{msg}");
        assert!(msg.contains(&tmp.display().to_string()), "{msg}");
        assert!(!msg.contains("another program"), "{msg}");
        assert_eq!(etc_names(&dir), vec![".pwd.lock"]);
    }
}
