//! shadow-compatible locking of /etc/subuid and /etc/subgid, so `useradd` and `usermod`
//! running at the same time never interleave with this tool.
//!
//! The protocol is shadow's `commonio_lock`: first the `lckpwdf` lock (an fcntl write lock on
//! `/etc/.pwd.lock`), then for each file write our PID to `FILE.PID` and `link()` it to
//! `FILE.lock`. A lock file whose PID no longer exists is stale and is removed. Both are taken
//! relative to the [`Root`], so a `--root` tree is locked, not the host.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustix::fs::{FlockOperation, fcntl_lock};
use rustix::io::Errno;
use rustix::process::{Pid, test_kill_process};

use crate::host::root::Root;

/// How long shadow's tools wait for a lock (15 tries, one second apart).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Held locks; released (lock files unlinked, fcntl lock dropped) on drop.
#[derive(Debug)]
pub struct ShadowLock {
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
pub fn lock(root: &Root, files: &[&str], timeout: Duration) -> Result<ShadowLock> {
    let deadline = Instant::now() + timeout;
    let pwd = lock_pwd(root, deadline)?;
    let mut held = ShadowLock {
        links: Vec::new(),
        _pwd: pwd,
    };
    for f in files {
        let lock = root.path(&format!("{f}.lock"));
        let tmp = root.path(&format!("{f}.{}", std::process::id()));
        link_lock(&tmp, &lock, deadline).with_context(|| {
            format!(
                "cannot lock {}: another program (useradd, usermod, docker-userns) holds {}",
                root.path(f).display(),
                lock.display()
            )
        })?;
        held.links.push(lock);
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

fn link_lock(tmp: &PathBuf, lock: &PathBuf, deadline: Instant) -> Result<()> {
    let pid = std::process::id();
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(pid.to_string().as_bytes())
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
    }
    let result = (|| loop {
        match fs::hard_link(tmp, lock) {
            Ok(()) => {
                let nlink = fs::metadata(tmp).map(|m| m.nlink()).unwrap_or(0);
                if nlink == 2 {
                    return Ok(());
                }
                bail!("{} has an unexpected link count {nlink}", tmp.display());
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let text = fs::read_to_string(lock).unwrap_or_default();
                match text.trim().parse::<i32>() {
                    Ok(other) if other > 0 && !pid_alive(other) => {
                        tracing::info!(
                            "removing stale lock {} of dead process {other}",
                            lock.display()
                        );
                        let _ = fs::remove_file(lock);
                        continue;
                    }
                    Ok(_) => {}
                    Err(_) if text.is_empty() => {}
                    Err(_) => bail!(
                        "{} does not hold a process id ({:?}); remove it if no useradd/usermod is running",
                        lock.display(),
                        text.trim()
                    ),
                }
                if Instant::now() >= deadline {
                    bail!("still locked after waiting");
                }
                sleep(Duration::from_millis(200));
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot link {} to {}", tmp.display(), lock.display())
                });
            }
        }
    })();
    let _ = fs::remove_file(tmp);
    result
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
}
