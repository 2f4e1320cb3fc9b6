//! The crash-safe record of a change in progress under /var/lib/docker-userns, the backups it
//! restores from, and the one-run-at-a-time lock.
//!
//! Before any file is written, copies of the files a run may change and a record naming them
//! are written and fsynced. The record's phase is updated (and fsynced) before each step. If the
//! process dies at any point, the next run finds the record and rolls back to the saved files.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::root::{Perms, Root};

/// The state directory.
pub const DIR: &str = "/var/lib/docker-userns";
/// The record of the change in progress.
pub const RECORD: &str = "/var/lib/docker-userns/transaction.json";
/// The lock file held for a whole run.
pub const LOCK: &str = "/var/lib/docker-userns/lock";

/// How far a run got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Files are being written; docker has not been touched.
    Writing,
    /// docker is being stopped and started with the new files.
    Restarting,
}

/// A file saved before the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedFile {
    /// Path inside the root.
    pub path: String,
    /// False when the file did not exist (restoring removes it).
    pub existed: bool,
    /// Mode bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Where the copy is kept (inside the root).
    pub backup: String,
    /// What this run left in the file, once its writes are done (None before that).
    #[serde(default)]
    pub written: Option<Written>,
}

/// The content a run wrote, kept so that a rollback only undoes its own change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    /// The run left the file in place (false: it did not exist afterwards).
    pub exists: bool,
    /// Where a copy of that content is kept (inside the root).
    pub copy: String,
}

/// The on-disk record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Unique id of the run (start time and pid).
    pub id: String,
    /// `enable` or `disable`.
    pub action: String,
    /// How far it got.
    pub phase: Phase,
    /// Whether docker.service was active before.
    pub docker_was_active: bool,
    /// Whether the engine reported user namespaces before (None: not running).
    pub userns_before: Option<bool>,
    /// The files saved.
    pub files: Vec<SavedFile>,
}

/// A change in progress.
#[derive(Debug)]
pub struct Transaction {
    /// The record as last written.
    pub record: Record,
}

fn write_record(root: &Root, record: &Record) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(record).expect("record serializes");
    bytes.push(b'\n');
    root.write_atomic(RECORD, &bytes, Perms::root_owned(0o600))
        .context("cannot write the transaction record")
}

impl Transaction {
    /// Saves `files` (paths inside the root) and writes the record, durably, before any change.
    pub fn begin(
        root: &Root,
        action: &str,
        files: &[&str],
        docker_was_active: bool,
        userns_before: Option<bool>,
    ) -> Result<Transaction> {
        root.ensure_dir(DIR, 0o700)?;
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let id = format!("{}-{}", since.as_secs(), std::process::id());
        let mut saved = Vec::new();
        for (i, f) in files.iter().enumerate() {
            let backup = format!("{DIR}/backup.{i}");
            let meta = root.symlink_metadata(f)?;
            let perms = meta.as_ref().map_or(Perms::root_owned(0o644), Perms::of);
            match root.read_optional(f)? {
                Some(bytes) => root.write_atomic(&backup, &bytes, Perms::root_owned(0o600))?,
                None => {
                    let _ = std::fs::remove_file(root.path(&backup));
                }
            }
            saved.push(SavedFile {
                path: f.to_string(),
                existed: meta.is_some(),
                mode: perms.mode,
                uid: perms.uid,
                gid: perms.gid,
                backup,
                written: None,
            });
        }
        let record = Record {
            id,
            action: action.to_string(),
            phase: Phase::Writing,
            docker_was_active,
            userns_before,
            files: saved,
        };
        write_record(root, &record)?;
        Ok(Transaction { record })
    }

    /// Records that the run reached `phase` (fsynced before returning).
    pub fn set_phase(&mut self, root: &Root, phase: Phase) -> Result<()> {
        self.record.phase = phase;
        write_record(root, &self.record)
    }

    /// The unfinished transaction left by an earlier run, if any.
    pub fn load(root: &Root) -> Result<Option<Transaction>> {
        let Some(bytes) = root.read_optional(RECORD)? else {
            return Ok(None);
        };
        let record: Record = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not a valid transaction record; compare the files it protects with their backups in {DIR}, then remove it",
                root.path(RECORD).display()
            )
        })?;
        Ok(Some(Transaction { record }))
    }

    /// Records what the run wrote (copies of the files as they are now) together with `phase`,
    /// in one durable update of the record.
    pub fn written(&mut self, root: &Root, phase: Phase) -> Result<()> {
        for (i, f) in self.record.files.iter_mut().enumerate() {
            let copy = format!("{DIR}/written.{i}");
            let now = root.read_optional(&f.path)?;
            if let Some(bytes) = &now {
                root.write_atomic(&copy, bytes, Perms::root_owned(0o600))?;
            }
            f.written = Some(Written {
                exists: now.is_some(),
                copy,
            });
        }
        self.set_phase(root, phase)
    }

    /// True when every file still holds exactly what the run wrote.
    pub fn files_as_written(&self, root: &Root) -> Result<bool> {
        for f in &self.record.files {
            if !self.untouched_since(root, f)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The file holds what the run wrote (or the run's writes were not recorded yet).
    fn untouched_since(&self, root: &Root, f: &SavedFile) -> Result<bool> {
        let Some(w) = &f.written else { return Ok(true) };
        let now = root.read_optional(&f.path)?;
        Ok(match (&now, w.exists) {
            (None, false) => true,
            (Some(bytes), true) => {
                root.read_optional(&w.copy)?.as_deref() == Some(bytes.as_slice())
            }
            _ => false,
        })
    }

    /// Puts every saved file back byte for byte (or removes it if it did not exist), except a
    /// file someone else changed after this run wrote it: that one is left as found (a
    /// `useradd` or an admin's edit is never undone) and its path is returned.
    pub fn restore_files(&self, root: &Root) -> Result<Vec<String>> {
        let mut left = Vec::new();
        for f in &self.record.files {
            if !self.untouched_since(root, f)? {
                tracing::warn!(
                    "{} changed after this run wrote it: left as it is",
                    root.path(&f.path).display()
                );
                left.push(f.path.clone());
                continue;
            }
            let perms = Perms {
                mode: f.mode,
                uid: f.uid,
                gid: f.gid,
            };
            if f.existed {
                let bytes = root.read_optional(&f.backup)?.with_context(|| {
                    format!(
                        "the backup {} of {} is missing",
                        root.path(&f.backup).display(),
                        f.path
                    )
                })?;
                if root.read_optional(&f.path)?.as_deref() != Some(bytes.as_slice()) {
                    root.write_atomic(&f.path, &bytes, perms).with_context(|| {
                        format!("cannot restore {}", root.path(&f.path).display())
                    })?;
                }
            } else if root.symlink_metadata(&f.path)?.is_some() {
                std::fs::remove_file(root.path(&f.path))
                    .with_context(|| format!("cannot remove {}", root.path(&f.path).display()))?;
            }
        }
        Ok(left)
    }

    /// Ends the transaction: removes the record, then the backups.
    pub fn finish(self, root: &Root) -> Result<()> {
        std::fs::remove_file(root.path(RECORD)).context("cannot remove the transaction record")?;
        crate::root::sync_dir(&root.path(DIR))?;
        for f in &self.record.files {
            let _ = std::fs::remove_file(root.path(&f.backup));
            if let Some(w) = &f.written {
                let _ = std::fs::remove_file(root.path(&w.copy));
            }
        }
        Ok(())
    }
}

/// The run lock: held (flock) for the life of the value.
#[derive(Debug)]
pub struct RunLock(#[allow(dead_code)] File);

/// Takes the run lock, waiting up to `wait` for another run to finish.
pub fn lock(root: &Root, wait: Duration) -> Result<RunLock> {
    root.ensure_dir(DIR, 0o700)?;
    let path = root.path(LOCK);
    let file = crate::root::open_lock_file(&path)?;
    let deadline = Instant::now() + wait;
    let mut told = false;
    loop {
        // SAFETY: flock on an open fd.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(RunLock(file));
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(err).with_context(|| format!("cannot lock {}", path.display()));
        }
        if Instant::now() >= deadline {
            bail!(
                "another docker-userns run holds {} and did not finish within {} s; try again when it is done",
                path.display(),
                wait.as_secs()
            );
        }
        if !told {
            tracing::warn!(
                "another docker-userns run is in progress; waiting up to {} s",
                wait.as_secs()
            );
            told = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restores_files_byte_for_byte_and_removes_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        root.ensure_dir("/etc/docker", 0o755).unwrap();
        root.write_atomic("/etc/subuid", b"a:1:2\n# odd", Perms::root_owned(0o640))
            .unwrap();
        let mut t = Transaction::begin(
            &root,
            "enable",
            &["/etc/subuid", "/etc/docker/daemon.json"],
            true,
            Some(false),
        )
        .unwrap();
        t.set_phase(&root, Phase::Restarting).unwrap();
        root.write_atomic("/etc/subuid", b"changed\n", Perms::root_owned(0o644))
            .unwrap();
        root.write_atomic("/etc/docker/daemon.json", b"{}\n", Perms::root_owned(0o644))
            .unwrap();
        let loaded = Transaction::load(&root).unwrap().expect("record on disk");
        assert_eq!(loaded.record.phase, Phase::Restarting);
        loaded.restore_files(&root).unwrap();
        assert_eq!(
            std::fs::read(root.path("/etc/subuid")).unwrap(),
            b"a:1:2\n# odd"
        );
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(root.path("/etc/subuid")).unwrap().mode() & 0o777,
            0o640
        );
        assert!(!root.path("/etc/docker/daemon.json").exists());
        loaded.finish(&root).unwrap();
        assert!(Transaction::load(&root).unwrap().is_none());
        assert!(!root.path(&format!("{DIR}/backup.0")).exists());
    }

    #[test]
    fn the_run_lock_excludes_a_second_holder_in_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        let _held = lock(&root, Duration::from_millis(10)).unwrap();
        // flock locks belong to the open file description: a second open conflicts.
        let err = lock(&root, Duration::from_millis(300)).unwrap_err();
        assert!(
            err.to_string().contains("another docker-userns run"),
            "{err}"
        );
    }
}
