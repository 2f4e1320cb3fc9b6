//! A walk's workers: `jobs` threads, each a [`Worker`] taking directories from the
//! [`Shared`] stack, started and watched from the calling thread (which alone calls the
//! progress callback), their reports merged into one. Above both the worker (walk.rs) and
//! the state they share (pool.rs), so neither imports the other's user.

use std::ops::ControlFlow;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use rustix::fs::{self as rfs, AtFlags};

use super::pool::{Item, Shared, WANT};
use super::walk::Worker;
use super::{Interrupted, PRIVILEGED_NAMED, Report};

/// Walks the tree below the top with `jobs` workers, `first` (which has worked on the top
/// itself) one of them on this thread's behalf: it is merged into the report. `progress` is
/// called on this thread only.
pub(super) fn walk(
    sh: &Shared,
    mut first: Worker<'_>,
    jobs: usize,
    progress: &mut dyn FnMut(u64) -> ControlFlow<()>,
) -> Result<Report> {
    let top = sh
        .top_fd
        .try_clone()
        .context("cannot duplicate a file descriptor")?;
    let st = rfs::statx(&top, c"", AtFlags::EMPTY_PATH, WANT)
        .with_context(|| format!("cannot stat {}", sh.top.display()))?;
    sh.push(Item {
        fd: Some(top),
        path: Vec::new(),
        ino: st.stx_ino,
        dev: (st.stx_dev_major, st.stx_dev_minor),
        depth: 0,
    });
    let jobs = jobs.max(1);
    sh.start(jobs);
    let reports = std::thread::scope(|s| {
        let handles: Vec<_> = (0..jobs)
            .map(|_| {
                s.spawn(|| {
                    let _done = sh.finished();
                    let mut w = Worker::new(sh);
                    w.work();
                    w.report
                })
            })
            .collect();
        sh.watch(progress);
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect::<Vec<_>>()
    });
    let error = sh.take_error();
    if let Some(e) = error {
        return Err(e);
    }
    if sh.stopped() {
        return Err(Interrupted(sh.top.clone()).into());
    }
    first.flush_all()?;
    let mut report = std::mem::take(&mut first.report);
    for r in reports {
        merge(&mut report, r);
    }
    Ok(report)
}

/// Adds what one worker found to the report.
fn merge(into: &mut Report, r: Report) {
    into.inodes += r.inodes;
    into.blocks += r.blocks;
    into.shifted += r.shifted;
    into.already_done += r.already_done;
    into.outside += r.outside;
    into.outside_ids += r.outside_ids;
    into.outside_id_inodes += r.outside_id_inodes;
    into.acl_entries_shifted += r.acl_entries_shifted;
    into.caps_restored += r.caps_restored;
    into.caps_rootids_shifted += r.caps_rootids_shifted;
    into.setid_restored += r.setid_restored;
    into.log_replayed += r.log_replayed;
    into.other_filesystems.extend(r.other_filesystems);
    into.other_filesystems.sort();
    // "The first": the first in byte order of the path, whichever worker met it.
    let first = |a: Option<PathBuf>, b: Option<PathBuf>| {
        a.into_iter()
            .chain(b)
            .min_by(|x, y| x.as_os_str().as_bytes().cmp(y.as_os_str().as_bytes()))
    };
    into.first_outside = first(into.first_outside.take(), r.first_outside);
    into.first_done = first(into.first_done.take(), r.first_done);
    into.done_id_inodes += r.done_id_inodes;
    into.privileged += r.privileged;
    into.privileged_paths.extend(r.privileged_paths);
    into.privileged_paths.sort_by(|a, b| a.path.cmp(&b.path));
    into.privileged_paths.truncate(PRIVILEGED_NAMED);
    into.privileged_dropped |= r.privileged_dropped;
}
