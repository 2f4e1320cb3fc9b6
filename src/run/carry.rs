//! Carrying what docker holds across the switch. `--carry images`: each image exported from the
//! old engine through the Engine API (`GET /images/get`) into a spool under
//! /var/lib/docker-userns before docker stops, and loaded into the new engine (`POST
//! /images/load`) after its health gate. Exported by id, each image is loaded without a tag
//! and tagged one tag at a time, so no image or tag the new engine holds is ever replaced: a
//! conflicting tag is reported (the image carried under its other tags). A carry that does
//! not complete keeps its spool, and the next run with `--carry images` loads what is missing.
//! A volume the new engine has already is not compared and not overwritten (both paths named). `--carry volumes`: after the gate, each named volume of the `local` driver
//! without options is copied from the old data root (`cp -a`: content, modes, xattrs, ACLs,
//! hard links, symlinks, special files, times) into a directory beside the new data root, its
//! owners shifted into the new mapping there (host::shift), then the volume is created through
//! the API and the copy exchanged with its empty `_data` in one `renameat2(RENAME_EXCHANGE)`.
//! The old data root is never modified.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::exit::Conflict;
use crate::host::engine::{Engine, EngineError, encode};
use crate::host::inspect;
use crate::host::root::{Perms, Root};

pub use crate::run::journal::SPOOL;
/// Its index, written last: a spool without it was cut short and is not used.
pub const INDEX: &str = "/var/lib/docker-userns/carry/images.json";
/// How long a transfer may stand still.
const IDLE: Duration = Duration::from_secs(300);

/// An image of the old engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// Its id (`sha256:…`).
    pub id: String,
    /// Its tags (empty: untagged, carried by id).
    pub tags: Vec<String>,
    /// Its size as the engine reports it (shared layers counted in each image).
    pub size: u64,
    /// Its file in the spool, once exported.
    #[serde(default)]
    pub file: Option<String>,
    /// The file was exported by id (no tags inside): loading it changes no tag, and the tags
    /// are set one by one afterwards, never over a tag that names another image. False for a
    /// spool of an older version, exported under its tags (not loaded while a tag conflicts).
    #[serde(default)]
    pub by_id: bool,
}

impl Image {
    /// How it is named in messages: its first tag, else its short id.
    pub fn name(&self) -> String {
        self.tags
            .first()
            .cloned()
            .unwrap_or_else(|| inspect::short_id(&self.id))
    }
}

/// What `--carry` will carry (`plan`), or carried.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Carry {
    /// Images carried (or to carry), by name.
    pub images: Vec<String>,
    /// Volumes carried (or to carry), by name.
    pub volumes: Vec<String>,
    /// Their total size as the engine reports it, in bytes: the spool needs at most this.
    pub bytes: u64,
    /// Images and volumes not carried, with why (already in the new engine, a tag there points
    /// elsewhere, a volume driver or options that cannot be copied, with what to do).
    pub skipped: Vec<String>,
    /// Images and volumes whose carry failed, with why.
    pub failed: Vec<String>,
    /// Containers, which cannot be carried (they reference the old layers): `name (image:
    /// command)`, to be created again.
    pub containers_not_carried: Vec<String>,
    /// The spool kept for the next run when something failed (null: none).
    pub spool: Option<String>,
}

impl Carry {
    /// Everything asked for was carried or skipped.
    pub fn complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// The images of `engine` and its containers (which cannot be carried).
pub fn survey(engine: &Engine) -> Result<(Vec<Image>, Vec<String>)> {
    let mut images: Vec<Image> = inspect::image_list(engine)?
        .into_iter()
        .map(|i| Image {
            id: i.id,
            tags: i.tags,
            size: i.size,
            file: None,
            by_id: false,
        })
        .collect();
    images.sort_by_key(Image::name);
    let mut containers = Vec::new();
    for c in engine
        .get_json("/containers/json?all=1")?
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = c
            .pointer("/Names/0")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim_start_matches('/');
        let image = c.get("Image").and_then(Value::as_str).unwrap_or_default();
        let cmd = c.get("Command").and_then(Value::as_str).unwrap_or_default();
        containers.push(format!("{name} ({image}: {cmd})"));
    }
    containers.sort();
    Ok((images, containers))
}

/// Free bytes (for root) on the filesystem holding `abs`, or its nearest existing parent.
fn free_bytes(root: &Root, abs: &str) -> Result<u64> {
    let mut p = root.path(abs);
    while !p.exists() {
        if !p.pop() {
            break;
        }
    }
    let st = rustix::fs::statvfs(&p).with_context(|| format!("cannot stat {}", p.display()))?;
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

/// Exports every image of the old engine into the spool (one tar per image, with its tags), the
/// index written last. The caller journals the spool first.
pub fn export(root: &Root, engine: &Engine, images: &[Image]) -> Result<()> {
    root.ensure_dir(crate::run::journal::DIR, 0o700)?;
    root.ensure_dir(SPOOL, 0o700)?;
    crate::failpoint::hit("carry:before-export")?;
    let total: u64 = images.iter().map(|i| i.size).sum();
    let mut show = progress_line("exporting images");
    let mut done = 0u64;
    let mut spooled = Vec::new();
    for (n, img) in images.iter().enumerate() {
        let file = format!("{SPOOL}/{n}.tar");
        let path = root.path(&file);
        let mut out = std::fs::File::create(&path).map_err(|e| {
            if is_full(&e) {
                spool_full(root, total, &path, &e)
            } else {
                anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
            }
        })?;
        // By id: the tar names no tag, so loading it moves no tag in the new engine; the tags
        // are set afterwards, each only where it names nothing else.
        let query = format!("names={}", encode(&img.id));
        let base = done;
        let written = engine
            .download(&format!("/images/get?{query}"), &mut out, IDLE, &mut |b| {
                show(base + b, total)
            })
            .map_err(|e| match &e {
                EngineError::Local { source, .. } if is_full(source) => {
                    spool_full(root, total, &path, source)
                }
                _ => anyhow::Error::new(e).context(format!("cannot export image {}", img.name())),
            })?;
        out.sync_all().map_err(|e| {
            if is_full(&e) {
                spool_full(root, total, &path, &e)
            } else {
                anyhow::Error::new(e).context(format!("cannot write {}", path.display()))
            }
        })?;
        done += written;
        spooled.push(Image {
            file: Some(file),
            by_id: true,
            ..img.clone()
        });
    }
    if std::io::stderr().is_terminal() && !images.is_empty() {
        eprintln!();
    }
    let bytes = serde_json::to_vec_pretty(&spooled).expect("serializes");
    root.write_atomic(INDEX, &bytes, Perms::root_owned(0o600))
}

/// The spooled images waiting to be loaded, if a spool is there.
pub fn pending(root: &Root) -> Result<Option<Vec<Image>>> {
    let Some(bytes) = root.read_optional(INDEX)? else {
        return Ok(None);
    };
    let images = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not a valid spool index: remove {} and carry again",
            root.path(INDEX).display(),
            root.path(SPOOL).display()
        )
    })?;
    Ok(Some(images))
}

/// The id the engine has under `name` (a tag or an id), None when it has none.
fn id_of(engine: &Engine, name: &str) -> Result<Option<String>> {
    match engine.get_json(&format!("/images/{}/json", encode(name))) {
        Ok(v) => Ok(v.get("Id").and_then(Value::as_str).map(str::to_string)),
        Err(EngineError::Status { status: 404, .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What loading one spooled image did.
#[derive(Debug, Default)]
struct Loaded {
    /// Its content was loaded (false: the new engine had it already).
    loaded: bool,
    /// The tags set on it.
    tagged: Vec<String>,
    /// Its tags that name another image in the new engine (tag, that image's id): not set.
    conflicts: Vec<(String, String)>,
}

/// `repo:tag` split for `POST /images/{id}/tag` (a registry port's colon is part of the repo).
fn split_tag(t: &str) -> (&str, &str) {
    match t.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (t, "latest"),
    }
}

/// Loads one spooled image unless the new engine has it, then sets each of its tags that
/// names nothing there yet; a tag that names another image is left as it is (reported).
/// Afterwards the engine holds the image's id, and it under every tag that was set.
fn load_one(
    root: &Root,
    engine: &Engine,
    img: &Image,
    show: &mut dyn FnMut(u64),
) -> Result<Loaded> {
    let mut done = Loaded::default();
    let mut free = Vec::new();
    for t in &img.tags {
        match id_of(engine, t)? {
            Some(other) if other != img.id => done.conflicts.push((t.clone(), other)),
            Some(_) => {}
            None => free.push(t.clone()),
        }
    }
    if id_of(engine, &img.id)?.is_none() {
        if !img.by_id && !done.conflicts.is_empty() {
            // A tar of an older spool names its tags: loading it would move them.
            return Ok(done);
        }
        let file = img.file.as_deref().context("not exported")?;
        let path = root.path(file);
        let mut f = std::fs::File::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let len = f.metadata()?.len();
        let r = engine.upload(
            "/images/load?quiet=1",
            "application/x-tar",
            &mut f,
            len,
            IDLE,
            show,
        )?;
        let text = String::from_utf8_lossy(&r.body);
        if !(200..300).contains(&r.status) {
            bail!(
                "the new engine refused the load: HTTP {}: {}",
                r.status,
                text.trim()
            );
        }
        // The answer is a stream of JSON messages; an error is one of them.
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(line)
                && let Some(e) = v.get("error").and_then(Value::as_str)
            {
                bail!("the new engine could not load it: {e}");
            }
        }
        if id_of(engine, &img.id)?.is_none() {
            bail!("the new engine does not hold {} after the load", img.id);
        }
        done.loaded = true;
    }
    for t in free {
        // A tag the load itself set (an older spool) is there already.
        if id_of(engine, &t)?.as_deref() != Some(img.id.as_str()) {
            let (repo, tag) = split_tag(&t);
            engine
                .post_json(
                    &format!(
                        "/images/{}/tag?repo={}&tag={}",
                        encode(&img.id),
                        encode(repo),
                        encode(tag)
                    ),
                    None,
                )
                .with_context(|| format!("cannot tag it {t} in the new engine"))?;
        }
        if id_of(engine, &t)?.as_deref() != Some(img.id.as_str()) {
            bail!(
                "the new engine does not tag {} as {t} after the load",
                img.id
            );
        }
        done.tagged.push(t);
    }
    Ok(done)
}

/// Why a carried image lacks some of its tags, and how to carry them.
fn conflict_text(img: &Image, done: &Loaded) -> String {
    let id = inspect::short_id(&img.id);
    let taken: Vec<String> = done
        .conflicts
        .iter()
        .map(|(t, other)| {
            format!(
                "{t} names another image there ({}), left as it is",
                inspect::short_id(other)
            )
        })
        .collect();
    let carried = if done.tagged.is_empty() && done.loaded {
        format!("carried as {id} without a tag")
    } else if done.tagged.is_empty() {
        format!("not carried under its tags (the new engine holds {id} untagged or not at all)")
    } else {
        format!("carried as {id} under {}", done.tagged.join(", "))
    };
    let (t, _) = &done.conflicts[0];
    format!(
        "image {id} ({}): {carried}; {}; to carry that tag too, move the other image away in the new engine (`docker tag {t} OTHER_NAME && docker rmi {t}`) and run the same command again, or keep both by tagging this one under another name (`docker tag {id} NEW_NAME`)",
        img.tags.join(", "),
        taken.join("; ")
    )
}

/// Loads the spooled images into the (new) engine; the spool is removed when every image was
/// loaded or skipped, else kept for the next run. An image one of whose tags names another
/// image in the new engine is carried under its other tags and reported as failed (exit 8),
/// naming the tag; the same command carries that tag once it is free.
pub fn load(root: &Root, engine: &Engine, images: &[Image]) -> Carry {
    let mut c = Carry {
        bytes: images.iter().map(|i| i.size).sum(),
        ..Carry::default()
    };
    let total: u64 = images
        .iter()
        .filter_map(|i| i.file.as_deref())
        .filter_map(|f| std::fs::metadata(root.path(f)).ok())
        .map(|m| m.len())
        .sum();
    let mut show = progress_line("loading images");
    let mut base = 0u64;
    for img in images {
        let size = img
            .file
            .as_deref()
            .and_then(|f| std::fs::metadata(root.path(f)).ok())
            .map_or(0, |m| m.len());
        match load_one(root, engine, img, &mut |b| show(base + b, total)) {
            Ok(done) if !done.conflicts.is_empty() => {
                if done.loaded || !done.tagged.is_empty() {
                    c.images.push(
                        done.tagged
                            .first()
                            .cloned()
                            .unwrap_or_else(|| inspect::short_id(&img.id)),
                    );
                }
                c.failed.push(conflict_text(img, &done));
            }
            Ok(done) if done.loaded || !done.tagged.is_empty() => c.images.push(img.name()),
            Ok(_) => c
                .skipped
                .push(format!("{}: already in the new engine", img.name())),
            Err(e) => c.failed.push(format!("{}: {e:#}", img.name())),
        }
        base += size;
    }
    if std::io::stderr().is_terminal() && !images.is_empty() {
        eprintln!();
    }
    if c.failed.is_empty() {
        let _ = std::fs::remove_dir_all(root.path(SPOOL));
    } else {
        c.spool = Some(root.path(SPOOL).display().to_string());
    }
    c
}

/// Volumes whose carry did not complete, for the next run (outside the image spool).
pub const PENDING_VOLUMES: &str = "/var/lib/docker-userns/carry-volumes.json";

/// Keeps `failed` volumes for the next run, or clears the record when none failed.
pub fn keep_pending(root: &Root, failed: &[Volume]) -> Result<()> {
    if failed.is_empty() {
        return root.remove_file(PENDING_VOLUMES);
    }
    root.ensure_dir(crate::run::journal::DIR, 0o700)?;
    let bytes = serde_json::to_vec_pretty(failed).expect("serializes");
    root.write_atomic(PENDING_VOLUMES, &bytes, Perms::root_owned(0o600))
}

/// The volumes an earlier run could not carry, if any.
pub fn pending_volumes(root: &Root) -> Result<Vec<Volume>> {
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
pub fn waiting(root: &Root) -> Option<String> {
    let images = pending(root).ok().flatten().map_or(0, |i| i.len());
    let volumes = pending_volumes(root).map_or(0, |v| v.len());
    if images == 0 && volumes == 0 {
        return None;
    }
    Some(format!(
        "a --carry did not complete: {images} image(s) wait in {} and {volumes} volume(s) are recorded in {}; the switch itself stands: run the same `enable --carry …` (or `disable --carry …`) command again to carry them",
        root.path(SPOOL).display(),
        root.path(PENDING_VOLUMES).display()
    ))
}

/// A named volume of the old engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: serde_json::Map<String, Value>,
    /// Where its data is (`…/volumes/NAME/_data` in the old data root).
    pub mountpoint: String,
    /// The mapping it is carried into, recorded with it for a later run (null: not recorded,
    /// the configured one is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<Destination>,
}

/// The mapping a volume is carried into: the remap user's ranges (start, count) and the
/// direction (`enabling`: host ids into the ranges; else back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    /// Subordinate uids.
    pub uids: (u64, u64),
    /// Subordinate gids.
    pub gids: (u64, u64),
    /// Into the ranges (`enable`), or out of them (`disable`).
    pub enabling: bool,
}

/// The old engine's volumes: those that can be copied, and the others with why and what to do.
pub fn survey_volumes(engine: &Engine) -> Result<(Vec<Volume>, Vec<String>)> {
    let v = engine.get_json("/volumes")?;
    let (mut ok, mut skipped) = (Vec::new(), Vec::new());
    for x in v
        .get("Volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let s = |k: &str| {
            x.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let name = s("Name");
        let driver = s("Driver");
        let has_options = x
            .get("Options")
            .and_then(Value::as_object)
            .is_some_and(|o| !o.is_empty());
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
                labels: x
                    .get("Labels")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
                mountpoint: s("Mountpoint"),
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
pub enum VolumeCarried {
    /// Copied in (or the copy of an interrupted run put in place).
    Carried,
    /// The new engine has a volume of that name already, its data at this path: not compared,
    /// not overwritten (the source stays where it is).
    Exists(String),
}

/// Carries one volume into the (new) engine whose data root is `new_root`, owners shifted by
/// `map`. [`VolumeCarried::Exists`]: the new engine has one of that name (skipped, unless an
/// earlier run was cut short between creating it and putting its data in, which is finished).
pub fn carry_volume(
    root: &Root,
    engine: &Engine,
    new_root: &str,
    vol: &Volume,
    map: &crate::host::shift::Mapping,
) -> Result<VolumeCarried> {
    use crate::host::shift;
    let stage = staging(new_root, &vol.name);
    let existing = match engine.get_json(&format!("/volumes/{}", encode(&vol.name))) {
        Ok(v) => Some(v),
        Err(EngineError::Status { status: 404, .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(v) = &existing {
        // Created by a run that died before the exchange: its data waits in the staging copy.
        let mp = v
            .get("Mountpoint")
            .and_then(Value::as_str)
            .unwrap_or_default();
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
    let r = shift::survey(src, map)?;
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
    // The copy, under the staging name (never visible as a volume).
    if stage.exists() {
        std::fs::remove_dir_all(&stage)
            .with_context(|| format!("cannot remove the old copy {}", stage.display()))?;
    }
    std::fs::create_dir_all(stage.parent().expect("has a parent"))?;
    let cp = crate::host::programs::find("cp")?;
    let out = std::process::Command::new(&cp)
        .args(["-a", "--no-target-directory"])
        .arg(src)
        .arg(&stage)
        .output()
        .with_context(|| format!("cannot run {}", cp.display()))?;
    if !out.status.success() {
        bail!(
            "cp -a {} {} failed: {}",
            src.display(),
            stage.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    crate::failpoint::hit("carry:before-shift")?;
    let log = root.path(&format!(
        "{}/volume-{}.log",
        crate::run::journal::DIR,
        crate::run::journal::fingerprint(vol.name.as_bytes())
    ));
    shift::shift_tree(&stage, map, &log, &mut |_| {
        std::ops::ControlFlow::Continue(())
    })
    .with_context(|| format!("cannot shift the owners of the copy {}", stage.display()))?;
    // Marks the copy complete (outside the data: removed with the staging directory).
    let ready = ready_mark(&stage);
    std::fs::write(&ready, b"").context("cannot mark the copy complete")?;
    let body = serde_json::json!({"Name": vol.name, "Driver": "local", "Labels": vol.labels});
    let created = engine
        .post_json("/volumes/create", Some(&body))
        .with_context(|| format!("cannot create volume {}", vol.name))?;
    let mp = created
        .get("Mountpoint")
        .and_then(Value::as_str)
        .context("the new volume has no Mountpoint")?;
    crate::failpoint::hit("carry:before-exchange")?;
    exchange(&stage, std::path::Path::new(mp))?;
    Ok(VolumeCarried::Carried)
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
    fn a_tag_splits_at_its_last_colon_unless_that_is_a_registry_port() {
        assert_eq!(split_tag("my/app:1.0"), ("my/app", "1.0"));
        assert_eq!(
            split_tag("registry:5000/my/app:1.0"),
            ("registry:5000/my/app", "1.0")
        );
        assert_eq!(
            split_tag("registry:5000/my/app"),
            ("registry:5000/my/app", "latest")
        );
        assert_eq!(split_tag("app"), ("app", "latest"));
    }

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
}
