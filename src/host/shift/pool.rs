//! What the workers of a walk share: a stack of directories, each worker
//! ([`Worker`](super::walk::Worker), started by [`workers`](super::workers)) taking one
//! directory at a time (`statx`, `fchownat`, the xattr calls, the setid and capability rules on
//! each of its entries) and pushing the subdirectories it finds for any worker to take.
//!
//! - **Work**: a LIFO stack under one mutex (depth first, so it stays small), a condvar for
//!   idle workers; the walk ends when the stack is empty and no worker holds a directory. A
//!   queued directory keeps the fd it was opened with while fewer than [`fd_budget`] queued ones
//!   do, else it is queued by its path and opened again from the top (no symlink followed, the
//!   same dev and inode checked), so the fds are bounded whatever the width or the depth.
//! - **Hard links**: one set of the inode numbers of non-directories with more than one link
//!   ([`InodeSet`], about two bytes each), shared under a mutex: the worker that inserts a
//!   number handles the inode, the others skip.
//! - **Crash log**: each worker batches its own [`Pending`](super::walk::Pending) inodes; a batch is appended (whole
//!   lines, one `write` under the log's mutex) and fdatasynced before any inode of it is
//!   chowned. An entry is about one inode, replay is per entry and idempotent (it only puts back
//!   what the entry holds when the inode's owner is in the target range already), so entries of
//!   several workers interleaved in any order replay correctly; only the last line can be torn by
//!   a crash, and no chown relied on it (its batch was not synced).
//! - **Progress**: workers add to one atomic counter and wake the calling thread each
//!   [`PROGRESS_EVERY`] inodes; the caller's callback runs on the calling thread only, and its
//!   `Break` stops the workers after the inode each is on.
//! - **Errors**: the first error stops every worker (after its current inode) and is returned.

use std::ops::ControlFlow;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use anyhow::{Context, Result, anyhow};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, Statx, StatxFlags};

use super::links::InodeSet;
use super::log::Log;
use super::{PROGRESS_EVERY, raise_nofile_limit};
use crate::formats::id_shift::Mapping;
use crate::host::root::OpenDir;

#[cfg(test)]
thread_local! {
    /// Test switch: the [`fd_budget`] of the next walk started on this thread.
    pub(super) static FD_BUDGET: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
    /// Test failpoint: stop (as a crash would) right after the Nth chown of the walk started on
    /// this thread (counted over all its workers), before the setid bits and capability are put
    /// back; every worker's later chowns fail the same way.
    pub(super) static CRASH_AFTER_CHOWNS: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Workers add their inode counts to [`Shared::inodes`] every this many inodes.
pub(super) const PUBLISH_EVERY: u64 = 256;

/// `statx` fields the walk reads.
pub(super) const WANT: StatxFlags = StatxFlags::TYPE
    .union(StatxFlags::MODE)
    .union(StatxFlags::NLINK)
    .union(StatxFlags::UID)
    .union(StatxFlags::GID)
    .union(StatxFlags::INO)
    .union(StatxFlags::BLOCKS)
    .union(StatxFlags::MNT_ID);

/// The mount id of `st`, when the kernel gave one (`STATX_MNT_ID`, Linux 5.8).
pub(super) fn mnt_id(st: &Statx) -> Option<u64> {
    StatxFlags::from_bits_retain(st.stx_mask)
        .contains(StatxFlags::MNT_ID)
        .then_some(st.stx_mnt_id)
}

/// How many queued directories may keep their fd open: a quarter of the open file limit
/// (raised to the hard limit first), at least 16 and at most 4096.
pub(super) fn fd_budget() -> usize {
    let l = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let cur = l.current.unwrap_or(1 << 20);
    usize::try_from(cur / 4).unwrap_or(4096).clamp(16, 4096)
}

/// How many workers a walk uses unless asked (`shift --jobs`): the number of cores this process
/// may run on.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A directory waiting to be walked.
pub(super) struct Item {
    /// Its fd, or `None`: open it again by `path` (see [`fd_budget`]).
    pub(super) fd: Option<OwnedFd>,
    /// Its path relative to the top.
    pub(super) path: Vec<u8>,
    pub(super) ino: u64,
    pub(super) dev: (u32, u32),
    /// Directories between it and the top (the top: 0).
    pub(super) depth: usize,
}

#[derive(Default)]
struct Queue {
    items: Vec<Item>,
    /// Queued items holding an fd.
    fds: usize,
    /// Workers holding a directory taken from `items`.
    busy: usize,
    /// Workers not finished.
    running: usize,
    /// A progress call is due ([`PROGRESS_EVERY`] more inodes).
    progress_due: bool,
    /// The first error of a worker.
    error: Option<anyhow::Error>,
}

/// What the workers of one walk share.
pub(super) struct Shared {
    pub(super) top: PathBuf,
    pub(super) top_fd: OwnedFd,
    /// The mapping; `None` counts only.
    pub(super) map: Option<Mapping>,
    pub(super) dev: (u32, u32),
    pub(super) mnt_id: Option<u64>,
    /// The crash log (when shifting).
    pub(super) log: Option<Mutex<Log>>,
    /// Classify only ([`survey`](super::survey)).
    pub(super) dry: bool,
    /// Into host ids: drop what [`Report::privileged`](super::Report::privileged) counts instead of refusing it.
    pub(super) drop_privileged: bool,
    /// Inode numbers of non-directories with more than one link, seen already.
    pub(super) seen: Mutex<InodeSet>,
    queue: Mutex<Queue>,
    /// Idle workers wait here.
    work: Condvar,
    /// The calling thread waits here (progress, the end).
    caller: Condvar,
    /// Inodes seen by all workers (in steps of [`PUBLISH_EVERY`]).
    inodes: AtomicU64,
    /// Set by an error or by the progress callback's `Break`: workers stop.
    stop: AtomicBool,
    fd_budget: usize,
    /// See [`CRASH_AFTER_CHOWNS`]: chowns left before the failpoint (0: off).
    #[cfg(test)]
    crash_after: AtomicU64,
    #[cfg(test)]
    pub(super) force_proc: bool,
}

impl Shared {
    pub(super) fn new(dir: &OpenDir, map: Option<&Mapping>) -> Result<Shared> {
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
        Ok(Shared {
            top,
            top_fd,
            map: map.copied(),
            dev: (st.stx_dev_major, st.stx_dev_minor),
            mnt_id: mnt_id(&st),
            log: None,
            dry: false,
            drop_privileged: false,
            seen: Mutex::new(InodeSet::default()),
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            caller: Condvar::new(),
            inodes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            #[cfg(not(test))]
            fd_budget: fd_budget(),
            #[cfg(test)]
            fd_budget: FD_BUDGET.take().unwrap_or_else(fd_budget),
            #[cfg(test)]
            crash_after: AtomicU64::new(CRASH_AFTER_CHOWNS.take().unwrap_or(0)),
            #[cfg(test)]
            force_proc: super::node::FORCE_PROC_PATH.get(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Stops the workers (after the inode each is on), keeping the first error.
    pub(super) fn halt(&self, error: Option<anyhow::Error>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut q = self.lock();
        if q.error.is_none() {
            q.error = error;
        }
        self.work.notify_all();
        self.caller.notify_all();
    }

    pub(super) fn push(&self, mut item: Item) {
        let mut q = self.lock();
        if item.fd.is_some() {
            if q.fds >= self.fd_budget {
                item.fd = None;
            } else {
                q.fds += 1;
            }
        }
        q.items.push(item);
        drop(q);
        self.work.notify_one();
    }

    /// The next directory to walk, waiting while other workers may still find some; `None`
    /// when the walk is over or stopped.
    pub(super) fn take(&self) -> Option<Item> {
        let mut q = self.lock();
        loop {
            if self.stopped() {
                return None;
            }
            if let Some(item) = q.items.pop() {
                q.fds -= usize::from(item.fd.is_some());
                q.busy += 1;
                return Some(item);
            }
            if q.busy == 0 {
                self.work.notify_all();
                return None;
            }
            q = self.work.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }

    pub(super) fn done_with_one(&self) {
        let mut q = self.lock();
        q.busy -= 1;
        if q.busy == 0 && q.items.is_empty() {
            self.work.notify_all();
        }
    }

    /// `jobs` workers are about to start ([`watch`](Self::watch) waits for each to end).
    pub(super) fn start(&self, jobs: usize) {
        self.lock().running = jobs;
    }

    /// The first error a worker met, if any.
    pub(super) fn take_error(&self) -> Option<anyhow::Error> {
        self.lock().error.take()
    }

    /// A guard that counts a worker out when it ends (see [`Finished`]).
    pub(super) fn finished(&self) -> Finished<'_> {
        Finished(self)
    }

    pub(super) fn publish(&self, n: u64) {
        let before = self.inodes.fetch_add(n, Ordering::Relaxed);
        if before / PROGRESS_EVERY != (before + n) / PROGRESS_EVERY {
            self.lock().progress_due = true;
            self.caller.notify_all();
        }
    }

    /// Test failpoint (see `CRASH_AFTER_CHOWNS`, test builds only), after a chown.
    pub(super) fn failpoint_after_chown(&self) -> Result<()> {
        #[cfg(test)]
        {
            let left =
                self.crash_after
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                        0 => None,
                        1 => Some(u64::MAX),
                        u64::MAX => Some(u64::MAX),
                        n => Some(n - 1),
                    });
            if matches!(left, Ok(1 | u64::MAX)) {
                anyhow::bail!("failpoint: crashed after a chown");
            }
        }
        Ok(())
    }

    /// Calls `progress` each [`PROGRESS_EVERY`] inodes until the workers are done.
    pub(super) fn watch(&self, progress: &mut dyn FnMut(u64) -> ControlFlow<()>) {
        let mut q = self.lock();
        while q.running > 0 {
            if q.progress_due && !self.stopped() {
                q.progress_due = false;
                drop(q);
                if progress(self.inodes.load(Ordering::Relaxed)).is_break() {
                    self.halt(None);
                }
                q = self.lock();
                continue;
            }
            q = self.caller.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Counts a worker out when it ends, also by a panic (which stops the others, so that none
/// waits for a directory the panicking one would have pushed; the panic is then re-raised).
pub(super) struct Finished<'s>(&'s Shared);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.halt(Some(anyhow!("a thread of the walk panicked")));
        }
        self.0.lock().running -= 1;
        self.0.caller.notify_all();
    }
}
