//! Carrying what docker holds across the switch. `--carry images`: the images exported from the
//! old engine through the Engine API in one export (`GET /images/get?names=ID&names=ID…`: a
//! layer several images share is in it once) into a spool under /var/lib/docker-userns before
//! docker stops, and loaded into the new engine (`POST /images/load`, once) after its health
//! gate. When that export fails, each image is exported on its own, and an image whose own
//! export fails is named as not carried while the rest are (the result says so:
//! `export_fallback`). The spool's free-space check counts a listed base once
//! ([`shared_once`]). Exported by id, each image is loaded without a tag
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

use std::time::Duration;

use anyhow::{Context, Result};

use crate::exit::Conflict;
use crate::host::root::Root;
use crate::progress::Progress;

use crate::host::shift;
use crate::run::restart::Docker;
pub(crate) use images::*;
pub(crate) use volumes::*;

pub(crate) use crate::run::journal::SPOOL;
/// Its index, written last: a spool without it was cut short and is not used.
pub(crate) const INDEX: &str = "/var/lib/docker-userns/carry/images.json";
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
pub(crate) fn check_space(root: &Root, needed: u64) -> Result<()> {
    let free = free_bytes(root, SPOOL)?;
    if free < needed {
        return Err(Conflict::new(format!(
            "--carry images needs up to {} MiB in {} for the exported images, but its filesystem has {} MiB free: free space there, or switch without --carry; nothing was changed",
            needed.div_ceil(1 << 20),
            root.path(SPOOL).display(),
            free >> 20
        ))
        .kind("carry-spool-no-room")
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

// What converge runs: the carry around the switch.

/// What `--carry images` would carry: the old engine's images when docker switches (the
/// spool's free space checked), else what a kept spool still holds.
pub(crate) fn carry_preview(root: &Root, docker: &Docker, switching: bool) -> Result<Carry> {
    if let Some(left) = pending(root)? {
        return Ok(Carry {
            images: left.iter().map(Image::name).collect(),
            bytes: left.iter().map(|i| i.size).sum(),
            spool_bytes: spooled_bytes(root, &left),
            spool: Some(root.path(SPOOL).display().to_string()),
            ..Carry::default()
        });
    }
    if !switching {
        return Ok(Carry::default());
    }
    let (images, containers) = survey(docker.engine())?;
    let bytes = images.iter().map(|i| i.size).sum();
    let spool_bytes = spool_bytes(docker.engine(), &images)?;
    check_space(root, spool_bytes)?;
    Ok(Carry {
        images: images.iter().map(Image::name).collect(),
        skipped: images.iter().filter_map(dropped_note).collect(),
        bytes,
        spool_bytes,
        containers_not_carried: containers,
        ..Carry::default()
    })
}

/// Loads what the spool holds into the engine that runs now (after a switch, or left by an
/// earlier run whose carry did not complete).
pub(crate) fn carry_load(
    root: &Root,
    docker: &Docker,
    containers: Vec<String>,
    progress: Progress,
) -> Carry {
    match pending(root) {
        Ok(Some(images)) => {
            let mut c = load(root, docker.engine(), &images, progress);
            c.containers_not_carried = containers;
            c
        }
        Ok(None) => Carry {
            containers_not_carried: containers,
            ..Carry::default()
        },
        Err(e) => Carry {
            failed: vec![format!("{e:#}")],
            ..Carry::default()
        },
    }
}

/// Copies each volume into the engine that runs now, owners shifted into its mapping.
pub(crate) fn carry_volumes(
    docker: &Docker,
    vols: &[Volume],
    ranges: Option<((u64, u64), (u64, u64))>,
    enabling: bool,
    root: &Root,
    c: &mut Carry,
    walking: Walking,
) {
    let prepared = ranges
        .context("the remap user's ranges are not known")
        .and_then(|(u, g)| shift::Mapping::for_range(u, g, enabling))
        .and_then(|m| Ok((m, docker.engine().info()?.docker_root_dir)));
    let (map, new_root) = match prepared {
        Ok(x) => x,
        Err(e) => {
            for v in vols {
                c.failed.push(format!("volume {}: {e:#}", v.name));
            }
            return;
        }
    };
    // Recorded before the first copy: a run killed mid-carry is finished by the next one.
    if let Err(e) = keep_pending(root, vols) {
        for v in vols {
            c.failed
                .push(format!("volume {}: not carried: {e:#}", v.name));
        }
        return;
    }
    let mut left = Vec::new();
    for v in vols {
        match carry_volume(root, docker.engine(), &new_root, v, &map, walking) {
            Ok(VolumeCarried::Carried) => c.volumes.push(v.name.clone()),
            Ok(VolumeCarried::Exists(there)) => c.skipped.push(format!(
                "volume {0}: a volume of that name exists already in the engine that runs now (its data in {there}): it was not compared with the one being carried and not overwritten; the other engine's copy stays untouched in {1}",
                v.name, v.mountpoint
            )),
            Err(e) => {
                c.failed.push(format!("volume {}: {e:#}", v.name));
                left.push(v.clone());
            }
        }
    }
    // What failed is tried again by the next run with --carry volumes.
    if let Err(e) = keep_pending(root, &left) {
        c.failed.push(format!(
            "cannot keep the volumes left for the next run: {e:#}"
        ));
    }
}
