//! `--carry volumes`: each local volume copied beside the new data root, its owners shifted
//! into the new mapping, created in the new engine and exchanged into place.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::host::engine::Engine;
use crate::host::root::{Perms, Root};
use crate::progress::Progress;
use crate::run::note::Note;

use super::*;

/// How the owner shift of a volume's copy is walked: threads, and where its bar is drawn.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Walking {
    /// Threads walking the copy (`--jobs`).
    pub(crate) jobs: usize,
    /// The bar of the owner shift.
    pub(crate) progress: Progress,
}

/// Volumes whose carry did not complete, for the next run (outside the image spool).
pub(crate) const PENDING_VOLUMES: &str = "/var/lib/docker-userns/carry-volumes.json";

/// Keeps `failed` volumes for the next run, or clears the record when none failed.
pub(crate) fn keep_pending(root: &Root, failed: &[Volume]) -> Result<()> {
    if failed.is_empty() {
        return root.remove_file(PENDING_VOLUMES);
    }
    root.ensure_dir(crate::run::journal::DIR, 0o700)?;
    let bytes = serde_json::to_vec_pretty(failed).expect("serializes");
    root.write_atomic(PENDING_VOLUMES, &bytes, Perms::root_owned(0o600))
}

/// The volumes an earlier run could not carry, if any.
pub(crate) fn pending_volumes(root: &Root) -> Result<Vec<Volume>> {
    match root.read_optional(PENDING_VOLUMES)? {
        None => Ok(Vec::new()),
        Some(b) => serde_json::from_slice(&b).with_context(|| {
            format!(
                "{} is not valid: remove it",
                root.path(PENDING_VOLUMES).display()
            )
        }),
    }
}

/// What an earlier `--carry` left to carry (a kept spool, volumes recorded as pending), for
/// `status`; None when nothing waits.
pub(crate) fn waiting(root: &Root) -> Option<Note> {
    let images = pending(root).ok().flatten().map_or(0, |i| i.len());
    let volumes = pending_volumes(root).map_or(0, |v| v.len());
    if images == 0 && volumes == 0 {
        return None;
    }
    Some(Note::CarryWaiting {
        images,
        spool: root.path(SPOOL).display().to_string(),
        volumes,
        pending: root.path(PENDING_VOLUMES).display().to_string(),
    })
}

/// A named volume of the old engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Volume {
    /// Its name.
    pub(crate) name: String,
    /// Its labels.
    pub(crate) labels: serde_json::Map<String, Value>,
    /// Where its data is (`…/volumes/NAME/_data` in the old data root).
    pub(crate) mountpoint: String,
    /// The mapping it is carried into, recorded with it for a later run (null: not recorded,
    /// the configured one is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) into: Option<Destination>,
}

/// The mapping a volume is carried into: the remap user's ranges (start, count) and the
/// direction (`enabling`: host ids into the ranges; else back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Destination {
    /// Subordinate uids.
    pub(crate) uids: (u64, u64),
    /// Subordinate gids.
    pub(crate) gids: (u64, u64),
    /// Into the ranges (`enable`), or out of them (`disable`).
    pub(crate) enabling: bool,
}

/// The old engine's volumes: those that can be copied, and the others with why and what to do.
pub(crate) fn survey_volumes(engine: &Engine) -> Result<(Vec<Volume>, Vec<String>)> {
    let (mut ok, mut skipped) = (Vec::new(), Vec::new());
    for x in engine.volumes()? {
        let name = x.name;
        let driver = x.driver;
        let has_options = !x.options.is_empty();
        if driver != "local" {
            skipped.push(format!(
                "volume {name}: driver {driver} (its data is not in the data root): create it again in the new engine with the same driver"
            ));
        } else if has_options {
            skipped.push(format!(
                "volume {name}: a local volume with mount options (NFS, a bind, a device): its data is not in the data root; create it again with the same options"
            ));
        } else {
            ok.push(Volume {
                labels: x.labels,
                mountpoint: x.mountpoint,
                name,
                into: None,
            });
        }
    }
    ok.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((ok, skipped))
}

/// Where a volume's copy is made before it is exchanged into place: beside the new data root's
/// `volumes` (same filesystem, not a directory the local driver would take for a volume).
fn staging(new_root: &str, name: &str) -> std::path::PathBuf {
    std::path::Path::new(new_root)
        .join("docker-userns-carry")
        .join(name)
}

/// What [`carry_volume`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VolumeCarried {
    /// Copied in (or the copy of an interrupted run put in place).
    Carried,
    /// The new engine has a volume of that name already, its data at this path: not compared,
    /// not overwritten (the source stays where it is).
    Exists(String),
}

/// Carries one volume into the (new) engine whose data root is `new_root`, owners shifted by
/// `map`. [`VolumeCarried::Exists`]: the new engine has one of that name (skipped, unless an
/// earlier run was cut short between creating it and putting its data in, which is finished).
pub(crate) fn carry_volume(
    root: &Root,
    engine: &Engine,
    new_root: &str,
    vol: &Volume,
    map: &crate::host::shift::Mapping,
    walking: Walking,
) -> Result<VolumeCarried> {
    let stage = staging(new_root, &vol.name);
    let existing = match engine.inspect_volume(&vol.name) {
        Ok(v) => Some(v),
        Err(e) if e.not_found() => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(v) = &existing {
        // Created by a run that died before the exchange: its data waits in the staging copy.
        let mp = v.mountpoint.as_str();
        let empty = std::fs::read_dir(mp).is_ok_and(|mut d| d.next().is_none());
        if !(empty && ready_mark(&stage).exists()) {
            return Ok(VolumeCarried::Exists(mp.to_string()));
        }
        exchange(&stage, std::path::Path::new(mp))?;
        return Ok(VolumeCarried::Carried);
    }
    let src = std::path::Path::new(&vol.mountpoint);
    if !src.is_dir() {
        bail!("its data {} is not there", src.display());
    }
    let (inodes, bytes) = check_source(root, vol, map, walking.jobs)?;
    let bar = walking
        .progress
        .bytes(&format!("copying volume {}", vol.name), bytes);
    copy_to_stage(src, &stage, &bar)?;
    drop(bar);
    crate::failpoint::hit("carry:before-shift")?;
    shift_stage(root, vol, &stage, map, (inodes, walking))?;
    let created = engine
        .create_volume(&vol.name, "local", &vol.labels)
        .with_context(|| format!("cannot create volume {}", vol.name))?;
    let mp = Some(created.mountpoint.as_str())
        .filter(|m| !m.is_empty())
        .context("the new volume has no Mountpoint")?;
    crate::failpoint::hit("carry:before-exchange")?;
    exchange(&stage, std::path::Path::new(mp))?;
    Ok(VolumeCarried::Carried)
}

/// Refuses a volume whose owners the new mapping cannot express, or (into host ids) that holds
/// setuid/setgid files or file capabilities made under the remapped ids; nothing is created.
/// Returns the number of inodes and the bytes they hold (what the bars count to).
fn check_source(
    root: &Root,
    vol: &Volume,
    map: &crate::host::shift::Mapping,
    jobs: usize,
) -> Result<(u64, u64)> {
    let src = std::path::Path::new(&vol.mountpoint);
    let r = crate::host::shift::survey_with(&root.open_dir(&vol.mountpoint)?, map, jobs)?;
    if r.outside_ids > 0 {
        bail!(
            "{} id(s) under {} (e.g. {}) lie outside what the new mapping expresses; nothing of it was created: change those owners, or create the volume again by hand",
            r.outside_ids,
            src.display(),
            r.first_outside
                .as_deref()
                .map_or_else(String::new, |p| p.display().to_string())
        );
    }
    if r.privileged > 0 {
        // Into host ids (disable): a container's setuid file or capability would become the
        // host's. Not dropped silently either: the admin decides.
        let named: Vec<String> = r
            .privileged_paths
            .iter()
            .map(|p| format!("{} ({})", p.path.display(), p.what()))
            .collect();
        bail!(
            "{} file(s) under {} hold a setuid/setgid bit or a file capability made under the remapped ids, which would be valid for host ids in the new engine: {}{}; nothing of it was created: remove them (or their bits: chmod u-s,g-s; setcap -r), or move the volume by hand with `docker-userns shift --to host --drop-setid-and-caps` on a copy",
            r.privileged,
            src.display(),
            named.join(", "),
            if r.privileged > named.len() as u64 {
                ", ..."
            } else {
                ""
            }
        );
    }
    Ok((r.inodes, r.blocks * 512))
}

/// Copies the volume's data to `stage` (`cp -a`: never visible as a volume), an older copy
/// there removed first. `bar` follows the space the copy takes on the staging filesystem
/// (its free blocks, read every quarter second while `cp` runs).
fn copy_to_stage(
    src: &std::path::Path,
    stage: &std::path::Path,
    bar: &crate::progress::Bar,
) -> Result<()> {
    if stage.exists() {
        std::fs::remove_dir_all(stage)
            .with_context(|| format!("cannot remove the old copy {}", stage.display()))?;
    }
    let parent = stage.parent().expect("has a parent");
    std::fs::create_dir_all(parent)?;
    let cp = crate::host::programs::find("cp")?;
    let free = || {
        rustix::fs::statvfs(parent)
            .map(|s| s.f_bfree.saturating_mul(s.f_frsize))
            .unwrap_or(0)
    };
    let before = free();
    let child = std::process::Command::new(&cp)
        .args(["-a", "--no-target-directory"])
        .arg(src)
        .arg(stage)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", cp.display()))?;
    // Waited for on a thread of its own (which reads its stderr as it comes, so a `cp` with
    // much to say never waits on a full pipe): its end is seen at once, not at the next look
    // at the free space.
    let (tx, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = loop {
        match ended.recv_timeout(std::time::Duration::from_millis(250)) {
            Ok(out) => {
                break out.with_context(|| format!("cannot wait for {}", cp.display()))?;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                bar.set(before.saturating_sub(free()));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                bail!("lost track of {}", cp.display())
            }
        }
    };
    if !out.status.success() {
        bail!(
            "cp -a {} {} failed: {}",
            src.display(),
            stage.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Shifts the owners of the copy at `stage` by `map` (crash log in the journal directory),
/// then marks the copy complete; the bar counts to `inodes`.
fn shift_stage(
    root: &Root,
    vol: &Volume,
    stage: &std::path::Path,
    map: &crate::host::shift::Mapping,
    (inodes, walking): (u64, Walking),
) -> Result<()> {
    use crate::host::shift;
    let log = root.resolved(&format!(
        "{}/volume-{}.log",
        crate::run::journal::DIR,
        crate::run::journal::fingerprint(vol.name.as_bytes())
    ))?;
    let stage_dir = stage
        .to_str()
        .context("the staging path is not UTF-8")
        .and_then(|s| root.open_dir(s))?;
    let bar = walking
        .progress
        .inodes(&format!("shifting owners of volume {}", vol.name), inodes);
    let opts = shift::Options {
        jobs: walking.jobs,
        ..shift::Options::default()
    };
    shift::shift_tree_with(&stage_dir, map, shift::LogAt::Path(&log), opts, &mut |n| {
        bar.set(n);
        std::ops::ControlFlow::Continue(())
    })
    .with_context(|| format!("cannot shift the owners of the copy {}", stage.display()))?;
    // Marks the copy complete (outside the data: removed with the staging directory).
    let ready = ready_mark(stage);
    std::fs::write(&ready, b"").context("cannot mark the copy complete")?;
    Ok(())
}

/// Puts the staged copy in place of the new volume's empty `_data` in one step, then removes
/// what was exchanged out.
fn exchange(stage: &std::path::Path, data: &std::path::Path) -> Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, stage, CWD, data, RenameFlags::EXCHANGE).with_context(|| {
        format!(
            "cannot exchange {} with {}",
            stage.display(),
            data.display()
        )
    })?;
    std::fs::remove_dir(stage)
        .with_context(|| format!("cannot remove the empty {}", stage.display()))?;
    let _ = std::fs::remove_file(ready_mark(stage));
    // The staging directory goes once nothing is left in it.
    if let Some(parent) = stage.parent() {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(())
}

/// The mark of a complete copy, beside it: `.NAME.ready` (volume names cannot start with a
/// dot, so no other volume's copy has that name).
fn ready_mark(stage: &std::path::Path) -> std::path::PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(stage.file_name().unwrap_or_default());
    name.push(".ready");
    stage.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_volume_of_an_older_record_has_no_destination() {
        let old = r#"[{"name":"v","labels":{},"mountpoint":"/m"}]"#;
        let v: Vec<Volume> = serde_json::from_str(old).unwrap();
        assert_eq!(v[0].into, None);
        let with = Volume {
            into: Some(Destination {
                uids: (100000, 65536),
                gids: (100000, 65536),
                enabling: false,
            }),
            ..v[0].clone()
        };
        let back: Volume = serde_json::from_str(&serde_json::to_string(&with).unwrap()).unwrap();
        assert_eq!(back, with);
    }

    #[test]
    fn the_copy_is_whole_and_a_failing_cp_is_named_with_what_it_said() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        std::fs::create_dir_all(src.join("d")).unwrap();
        std::fs::write(src.join("d/f"), vec![7u8; 300_000]).unwrap();
        std::os::unix::fs::symlink("d/f", src.join("l")).unwrap();
        let stage = t.path().join("stage/v");
        let bar = Progress::hidden().bytes("copying", 300_000);
        copy_to_stage(&src, &stage, &bar).unwrap();
        assert_eq!(
            std::fs::read(stage.join("d/f")).unwrap(),
            vec![7u8; 300_000]
        );
        assert_eq!(
            std::fs::read_link(stage.join("l")).unwrap(),
            std::path::Path::new("d/f")
        );
        let gone = t.path().join("no-such-dir");
        let err = copy_to_stage(&gone, &t.path().join("stage/w"), &bar).unwrap_err();
        assert!(format!("{err:#}").contains("No such file"), "{err:#}");
    }
}
