//! Carrying what docker holds across the switch. `--carry images`: each image exported from the
//! old engine through the Engine API (`GET /images/get`) into a spool under
//! /var/lib/docker-userns before docker stops, and loaded into the new engine (`POST
//! /images/load`) after its health gate. Exported by id, each image is loaded without a tag
//! and tagged one tag at a time, so no image or tag the new engine holds is ever replaced: a
//! conflicting tag is reported (the image carried under its other tags). A carry that does
//! not complete keeps its spool, and the next run with `--carry images` loads what is missing.
//! An image is known by what every store agrees on, never by the store's id (docker 29's
//! containerd image store gives an image the digest of its manifest or index, the overlay2
//! store that a remapped dockerd 29 uses the digest of its config): its config digest and
//! layer diff IDs, read from the exported tar as it is written (`manifest.json`'s `Config`,
//! the config's `rootfs.diff_ids`, and the manifests in `index.json` that lead to it). A tag
//! of the new engine holding the same config and layers is "already there", not a conflict
//! (where the engine shows no config digest, the containerd store, it is read from that
//! image's own export, streamed and not kept); the load is checked by the same facts. An
//! image of several platforms (an index in the containerd store) is exported for the host's
//! platform only (`platform=` of `GET /images/get`): the store a remapped docker uses keeps one
//! platform per tag; the others are named as not carried.
//! A volume the new engine has already is not compared and not overwritten (both paths named). `--carry volumes`: after the gate, each named volume of the `local` driver
//! without options is copied from the old data root (`cp -a`: content, modes, xattrs, ACLs,
//! hard links, symlinks, special files, times) into a directory beside the new data root, its
//! owners shifted into the new mapping there (host::shift), then the volume is created through
//! the API and the copy exchanged with its empty `_data` in one `renameat2(RENAME_EXCHANGE)`.
//! The old data root is never modified.

mod images;
mod volumes;

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Result;

use crate::exit::Conflict;
use crate::host::root::Root;

pub use images::*;
pub use volumes::*;

pub use crate::run::journal::SPOOL;
/// Its index, written last: a spool without it was cut short and is not used.
pub const INDEX: &str = "/var/lib/docker-userns/carry/images.json";
/// How long a transfer may stand still.
const IDLE: Duration = Duration::from_secs(300);

/// Free bytes (for root) on the filesystem holding `abs`, or its nearest existing parent.
fn free_bytes(root: &Root, abs: &str) -> Result<u64> {
    let mut p = std::path::Path::new(abs);
    while !root.exists(&p.to_string_lossy()) {
        match p.parent() {
            Some(up) => p = up,
            None => break,
        }
    }
    let st = root.statvfs(&p.to_string_lossy())?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Refuses when the spool's filesystem has less free space than `needed` bytes.
pub fn check_space(root: &Root, needed: u64) -> Result<()> {
    let free = free_bytes(root, SPOOL)?;
    if free < needed {
        return Err(Conflict::new(format!(
            "--carry images needs up to {} MiB in {} for the exported images, but its filesystem has {} MiB free: free space there, or switch without --carry; nothing was changed",
            needed.div_ceil(1 << 20),
            root.path(SPOOL).display(),
            free >> 20
        ))
        .into());
    }
    Ok(())
}

/// The filesystem is full (no blocks, no inodes, or over a quota).
fn is_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
        || matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// The error of an export cut short by a full spool filesystem: where, how much is free, how
/// much the images need. (Space taken between the up-front check and the export, or tars
/// larger than the engine's count.)
fn spool_full(
    root: &Root,
    needed: u64,
    file: &std::path::Path,
    e: &std::io::Error,
) -> anyhow::Error {
    let free =
        free_bytes(root, SPOOL).map_or_else(|_| "unknown".into(), |b| format!("{} MiB", b >> 20));
    anyhow::anyhow!(
        "the filesystem of the image spool {} is full ({e}) while writing {}: {free} free now, the images need about {} MiB (as the engine counts them): free space there, or switch without --carry images",
        root.path(SPOOL).display(),
        file.display(),
        needed.div_ceil(1 << 20)
    )
}

fn progress_line(what: &str) -> impl FnMut(u64, u64) {
    let tty = std::io::stderr().is_terminal();
    let what = what.to_string();
    move |done, total| {
        if tty {
            eprint!(
                "\r{what}: {} / {} MiB   ",
                done >> 20,
                total.max(done) >> 20
            );
        }
    }
}
