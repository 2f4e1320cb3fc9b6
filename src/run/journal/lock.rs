//! The run lock: one run at a time, whatever the command.

use std::fs::{File, TryLockError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::host::root::Root;

use super::record::*;

/// The run lock: held (flock) for the life of the value.
#[derive(Debug)]
pub(crate) struct RunLock(#[allow(dead_code)] File);

/// Takes the run lock, waiting up to `wait` for another run to finish.
pub(crate) fn lock(root: &Root, wait: Duration) -> Result<RunLock> {
    root.ensure_dir(DIR, 0o700)?;
    let path = root.path(LOCK);
    let file = root.open_lock_file(LOCK)?;
    let deadline = Instant::now() + wait;
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(RunLock(file)),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
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
