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

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::exit::Conflict;
use crate::host::engine::{Engine, EngineError};
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
    /// Its config digest, read from the exported tar: the image's identity in every store (the
    /// overlay2 store's id; the containerd store's id is its manifest's or index's digest).
    /// Null for a spool of an older version (read from the tar at load).
    #[serde(default)]
    pub config: Option<String>,
    /// Its layers' diff IDs (`RootFS.Layers`), the same in every store.
    #[serde(default)]
    pub diff_ids: Vec<String>,
    /// The manifests and indexes in the tar that lead to its config: the ids the containerd
    /// store gives it when it is loaded there.
    #[serde(default)]
    pub manifests: Vec<String>,
    /// For an image of several platforms (an index in the containerd store): the platform
    /// exported, the one the host runs (an OCI platform object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Value>,
    /// The other platforms it holds, not carried (`os/architecture[/variant]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
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
    /// Images and volumes not carried, with why (already there in the new engine, the other
    /// platforms of an image of several, a volume driver or options that cannot be copied,
    /// with what to do).
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
            config: None,
            diff_ids: Vec::new(),
            manifests: Vec::new(),
            platform: None,
            dropped: Vec::new(),
        })
        .collect();
    images.sort_by_key(Image::name);
    platforms(engine, &mut images)?;
    let mut containers = Vec::new();
    for c in engine.all_containers()? {
        let name = c.names.first().map_or("", |n| n.trim_start_matches('/'));
        containers.push(format!("{name} ({}: {})", c.image, c.command));
    }
    containers.sort();
    Ok((images, containers))
}

/// `os/architecture[/variant]` of an OCI platform object.
fn platform_name(p: &Value) -> String {
    let f = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default();
    let mut s = format!("{}/{}", f("os"), f("architecture"));
    if !f("variant").is_empty() {
        s = format!("{s}/{}", f("variant"));
    }
    s
}

/// Marks the images of several platforms (the containerd store lists each platform's image
/// under `Manifests`; older engines and the graph driver stores list none): the host's
/// platform (the engine's own `Os`/`Arch`) is the one exported, the others present are named
/// as not carried, since the store a remapped docker uses holds one platform per tag.
fn platforms(engine: &Engine, images: &mut [Image]) -> Result<()> {
    let list = engine.images_with_manifests()?;
    let version = engine.version()?;
    let field = |p: &Value, k: &str| {
        p.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let host = |p: &Value| field(p, "os") == version.os && field(p, "architecture") == version.arch;
    for i in &list {
        let Some(img) = images.iter_mut().find(|m| i.id == m.id) else {
            continue;
        };
        let present: Vec<&Value> = i
            .manifests
            .iter()
            .filter_map(|m| m.available_platform())
            .collect();
        if present.len() < 2 {
            continue;
        }
        if let Some(p) = present.iter().find(|p| host(p)) {
            img.platform = Some((*p).clone());
            img.dropped = present
                .iter()
                .filter(|o| !host(o))
                .map(|o| platform_name(o))
                .collect();
        }
    }
    Ok(())
}

/// What is not carried of a multi-platform image, for `plan` and the carry's report.
pub fn dropped_note(img: &Image) -> Option<String> {
    let p = img.platform.as_ref()?;
    if img.dropped.is_empty() {
        return None;
    }
    Some(format!(
        "{}: an image of several platforms: only its {} image, the one this host runs, is carried (the store of the engine it goes to keeps one platform per tag); not carried: {} (it stays in the other engine's store)",
        img.name(),
        platform_name(p),
        img.dropped.join(", ")
    ))
}

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
        // The spool directory was made beneath the root just above.
        let path = root.resolved(&file)?;
        let mut out = std::fs::File::create(&path).map_err(|e| {
            if is_full(&e) {
                spool_full(root, total, &path, &e)
            } else {
                anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
            }
        })?;
        // By id: the tar names no tag, so loading it moves no tag in the new engine; the tags
        // are set afterwards, each only where it names nothing else. One platform of several:
        // the host's (the others are named as not carried).
        let base = done;
        let mut tar = TarReader::default();
        let written = engine
            .export_image(
                &img.id,
                img.platform.as_ref(),
                &mut Tee {
                    file: &mut out,
                    tar: &mut tar,
                },
                IDLE,
                &mut |b| show(base + b, total),
            )
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
        let found = tar.identity();
        if found.config.is_none() {
            bail!(
                "the export of image {} names no image config (no manifest.json in it): it cannot be carried by its identity",
                img.name()
            );
        }
        spooled.push(Image {
            file: Some(file),
            by_id: true,
            config: found.config,
            diff_ids: found.diff_ids,
            manifests: found.manifests,
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

/// What an engine holds under a name (a tag or an id): its id, its layers' diff IDs, and
/// whether that id is the config digest (the graph driver stores: no `Descriptor`).
#[derive(Debug, Clone)]
struct Held {
    id: String,
    diff_ids: Vec<String>,
    id_is_config: bool,
}

fn held(engine: &Engine, name: &str) -> Result<Option<Held>> {
    match engine.inspect_image(name) {
        Ok(v) if v.id.is_empty() => Ok(None),
        Ok(v) => Ok(Some(Held {
            id_is_config: v.id_is_config(),
            id: v.id,
            diff_ids: v.root_fs.layers,
        })),
        Err(e) if e.not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The config digests of what `engine` holds as `id`, read from its export (streamed, not
/// kept): the containerd store shows no config digest otherwise.
fn exported_configs(engine: &Engine, id: &str) -> Result<Vec<String>> {
    let mut tar = TarReader::default();
    engine
        .export_image(id, None, &mut tar, IDLE, &mut |_| {})
        .with_context(|| format!("cannot read the config of image {id} in the new engine"))?;
    Ok(tar.identity().configs)
}

/// Whether `h` is the image `img`: the same layers (diff IDs) and the same config digest,
/// whatever id the engine's store gives it.
fn same(engine: &Engine, img: &Image, h: &Held) -> Result<bool> {
    let Some(config) = &img.config else {
        // Not known (cannot happen after `with_identity`): only the very same id counts.
        return Ok(h.id == img.id);
    };
    if h.diff_ids != img.diff_ids {
        return Ok(false);
    }
    if &h.id == config || img.manifests.contains(&h.id) {
        return Ok(true);
    }
    if h.id_is_config {
        return Ok(false);
    }
    Ok(exported_configs(engine, &h.id)?.contains(config))
}

/// Fills in the identity of an image of an older spool from its tar.
fn with_identity(root: &Root, img: &Image) -> Result<Image> {
    if img.config.is_some() {
        return Ok(img.clone());
    }
    let file = img.file.as_deref().context("not exported")?;
    let path = root.path(file);
    let mut f = root
        .open_read(file)?
        .with_context(|| format!("{} is gone", path.display()))?;
    let mut tar = TarReader::default();
    std::io::copy(&mut f, &mut tar).with_context(|| format!("cannot read {}", path.display()))?;
    let found = tar.identity();
    if found.config.is_none() {
        bail!(
            "{} names no image config (no manifest.json)",
            path.display()
        );
    }
    Ok(Image {
        config: found.config,
        diff_ids: found.diff_ids,
        manifests: found.manifests,
        ..img.clone()
    })
}

/// The id the engine holds `img` under (by its config digest, a manifest of its tar, or its
/// old id), None when it does not hold it.
fn find(engine: &Engine, img: &Image) -> Result<Option<String>> {
    let mut names: Vec<&String> = img.config.iter().collect();
    names.extend(&img.manifests);
    names.push(&img.id);
    for n in names {
        if let Some(h) = held(engine, n)?
            && same(engine, img, &h)?
        {
            return Ok(Some(h.id));
        }
    }
    Ok(None)
}

/// What loading one spooled image did.
#[derive(Debug, Default)]
struct Loaded {
    /// Its content was loaded (false: the new engine had it already).
    loaded: bool,
    /// Its id in the new engine.
    id: Option<String>,
    /// The tags set on it.
    tagged: Vec<String>,
    /// Its tags that name it already.
    already: Vec<String>,
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

/// Loads one spooled image unless the new engine has it (the same config digest and diff
/// IDs, under whatever id its store gives it), then sets each of its tags that names nothing
/// there yet; a tag that names other content is left as it is (reported), a tag that names
/// this image already is left alone. Afterwards the engine holds the image, and it under
/// every tag that was set: checked by config digest and diff IDs, never by the store's id.
fn load_one(
    root: &Root,
    engine: &Engine,
    img: &Image,
    show: &mut dyn FnMut(u64),
) -> Result<Loaded> {
    let img = &with_identity(root, img)?;
    let mut done = Loaded::default();
    let mut free = Vec::new();
    for t in &img.tags {
        match held(engine, t)? {
            Some(h) if same(engine, img, &h)? => {
                done.id.get_or_insert(h.id);
                done.already.push(t.clone());
            }
            Some(h) => done.conflicts.push((t.clone(), h.id)),
            None => free.push(t.clone()),
        }
    }
    if done.id.is_none() {
        done.id = find(engine, img)?;
    }
    if done.id.is_none() {
        if !img.by_id && !done.conflicts.is_empty() {
            // A tar of an older spool names its tags: loading it would move them.
            return Ok(done);
        }
        let file = img.file.as_deref().context("not exported")?;
        let path = root.path(file);
        let mut f = root
            .open_read(file)?
            .with_context(|| format!("{} is gone", path.display()))?;
        let len = f.metadata()?.len();
        let messages = engine
            .load_images(&mut f, len, IDLE, show)
            .context("the new engine refused the load")?;
        // The answer is a stream of JSON messages; an error is one of them.
        if let Some(m) = messages.iter().find(|m| !m.error.is_empty()) {
            bail!("the new engine could not load it: {}", m.error);
        }
        done.id = find(engine, img)?;
        if done.id.is_none() {
            bail!(
                "the new engine does not hold it after the load (config {}, {} layer(s))",
                img.config.as_deref().unwrap_or(&img.id),
                img.diff_ids.len()
            );
        }
        done.loaded = true;
    }
    let id = done.id.clone().expect("found or loaded");
    for t in free {
        // A tag the load itself set (an older spool) is there already.
        if held(engine, &t)?.map(|h| h.id).as_deref() != Some(id.as_str()) {
            let (repo, tag) = split_tag(&t);
            engine
                .tag_image(&id, repo, tag)
                .with_context(|| format!("cannot tag it {t} in the new engine"))?;
        }
        match held(engine, &t)? {
            Some(h) if same(engine, img, &h)? => {}
            _ => bail!(
                "the new engine does not tag it {t} after the load (config {})",
                img.config.as_deref().unwrap_or(&img.id)
            ),
        }
        done.tagged.push(t);
    }
    Ok(done)
}

/// Why a carried image lacks some of its tags, and how to carry them.
fn conflict_text(img: &Image, done: &Loaded) -> String {
    let id = inspect::short_id(done.id.as_deref().unwrap_or(&img.id));
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
    } else if done.tagged.is_empty() && !done.already.is_empty() {
        format!("already there as {id} under {}", done.already.join(", "))
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
        .filter_map(|f| root.metadata(f).ok().flatten())
        .map(|m| m.len())
        .sum();
    let mut show = progress_line("loading images");
    let mut base = 0u64;
    for img in images {
        let size = img
            .file
            .as_deref()
            .and_then(|f| root.metadata(f).ok().flatten())
            .map_or(0, |m| m.len());
        let result = load_one(root, engine, img, &mut |b| show(base + b, total));
        if result.is_ok() {
            c.skipped.extend(dropped_note(img));
        }
        match result {
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
            Ok(done) => c.skipped.push(format!(
                "{}: already there: the new engine holds the same image (config {}, the same {} layer(s)) under its tags{}",
                img.name(),
                img.config.as_deref().map_or_else(|| "unknown".into(), inspect::short_id),
                img.diff_ids.len(),
                done.id
                    .map(|i| format!(", as {}", inspect::short_id(&i)))
                    .unwrap_or_default()
            )),
            Err(e) => c.failed.push(format!("{}: {e:#}", img.name())),
        }
        base += size;
    }
    if std::io::stderr().is_terminal() && !images.is_empty() {
        eprintln!();
    }
    if c.failed.is_empty() {
        let _ = root.remove_dir_all(SPOOL);
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
    let r = shift::survey(&root.open_dir(&vol.mountpoint)?, map)?;
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
    let log = root.resolved(&format!(
        "{}/volume-{}.log",
        crate::run::journal::DIR,
        crate::run::journal::fingerprint(vol.name.as_bytes())
    ))?;
    let stage_dir = stage
        .to_str()
        .context("the staging path is not UTF-8")
        .and_then(|s| root.open_dir(s))?;
    shift::shift_tree(&stage_dir, map, &log, &mut |_| {
        std::ops::ControlFlow::Continue(())
    })
    .with_context(|| format!("cannot shift the owners of the copy {}", stage.display()))?;
    // Marks the copy complete (outside the data: removed with the staging directory).
    let ready = ready_mark(&stage);
    std::fs::write(&ready, b"").context("cannot mark the copy complete")?;
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

/// What an exported image tar says about the image, whatever store made it: the digest of its
/// config (the overlay2 store's image id), the diff IDs its config lists (`rootfs.diff_ids`,
/// which `RootFS.Layers` shows), and the manifests and indexes in it that lead to that config
/// (the ids the containerd store gives the image).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// `sha256:…` of the config.
    pub config: Option<String>,
    /// Its layers' diff IDs.
    pub diff_ids: Vec<String>,
    /// Manifest and index digests that lead to that config.
    pub manifests: Vec<String>,
    /// Every config digest `manifest.json` names (an export of several platforms names several).
    pub configs: Vec<String>,
}

/// Reads an image tar as it streams by (`docker save` of either store: the legacy layout with
/// `manifest.json` and `HEX.json` configs, or the OCI layout with `index.json` and
/// `blobs/sha256/HEX`), keeping only the small files it needs; layers pass through unread.
#[derive(Debug, Default)]
pub struct TarReader {
    /// Bytes of a header not complete yet.
    head: Vec<u8>,
    /// Bytes left of the current entry's data, and of its padding.
    left: u64,
    pad: u64,
    /// The current entry's name and whether its data is kept.
    name: String,
    keep: Option<Vec<u8>>,
    /// A name given by a GNU `L` or a pax `x` entry, for the next entry.
    long_name: Option<String>,
    /// What the current entry is (`0` a file, `L`, `x`, …).
    kind: u8,
    /// Kept files by name.
    files: std::collections::BTreeMap<String, Vec<u8>>,
    kept: usize,
    /// The end (two zero blocks) was seen, or the stream is not a tar.
    done: bool,
}

/// Files larger than this are not kept (manifests, indexes and configs are a few KiB).
const KEEP_MAX: u64 = 4 << 20;
/// Nor more than this in all.
const KEEP_TOTAL: usize = 64 << 20;

impl TarReader {
    /// Takes the next bytes of the stream.
    pub fn feed(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() && !self.done {
            if self.left > 0 {
                let n = (self.left.min(buf.len() as u64)) as usize;
                // Only JSON documents are kept: a small layer is let through as it starts.
                if matches!(self.kind, b'0' | 0)
                    && self.keep.as_ref().is_some_and(Vec::is_empty)
                    && !matches!(buf[0], b'{' | b'[')
                {
                    self.keep = None;
                }
                if let Some(k) = &mut self.keep {
                    k.extend_from_slice(&buf[..n]);
                }
                self.left -= n as u64;
                buf = &buf[n..];
                if self.left == 0 {
                    self.entry_done();
                }
            } else if self.pad > 0 {
                let n = (self.pad.min(buf.len() as u64)) as usize;
                self.pad -= n as u64;
                buf = &buf[n..];
            } else {
                let n = (512 - self.head.len()).min(buf.len());
                self.head.extend_from_slice(&buf[..n]);
                buf = &buf[n..];
                if self.head.len() == 512 {
                    let h = std::mem::take(&mut self.head);
                    self.header(&h);
                }
            }
        }
    }

    fn header(&mut self, h: &[u8]) {
        if h.iter().all(|&b| b == 0) {
            // End of archive (or padding between): a second zero block ends it.
            if self.kind == 0xff {
                self.done = true;
            }
            self.kind = 0xff;
            return;
        }
        let field = |a: usize, b: usize| {
            let f = &h[a..b];
            let end = f.iter().position(|&c| c == 0).unwrap_or(f.len());
            String::from_utf8_lossy(&f[..end]).into_owned()
        };
        let size = if h[124] & 0x80 != 0 {
            h[125..136]
                .iter()
                .fold(0u64, |s, &b| s.saturating_mul(256) | u64::from(b))
        } else {
            let s = field(124, 136);
            match u64::from_str_radix(s.trim_matches(|c: char| c == ' ' || c == '\0'), 8) {
                Ok(v) => v,
                Err(_) if s.trim().is_empty() => 0,
                Err(_) => {
                    self.done = true;
                    return;
                }
            }
        };
        let mut name = field(0, 100);
        if &h[257..262] == b"ustar" {
            let prefix = field(345, 500);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        self.kind = h[156];
        if let Some(long) = self.long_name.take()
            && !matches!(self.kind, b'L' | b'x')
        {
            name = long;
        }
        self.name = name.trim_start_matches("./").to_string();
        self.left = size;
        self.pad = (512 - size % 512) % 512;
        let wanted = match self.kind {
            b'L' | b'x' => true,
            b'0' | 0 => {
                size <= KEEP_MAX
                    && (self.name == "manifest.json"
                        || self.name == "index.json"
                        || (self.kept + size as usize <= KEEP_TOTAL
                            && (self.name.ends_with(".json") || self.name.starts_with("blobs/"))))
            }
            _ => false,
        };
        self.keep = wanted.then(Vec::new);
        if size == 0 {
            self.entry_done();
        }
    }

    fn entry_done(&mut self) {
        let Some(data) = self.keep.take() else {
            return;
        };
        match self.kind {
            b'L' => {
                let end = data.iter().position(|&c| c == 0).unwrap_or(data.len());
                self.long_name = Some(String::from_utf8_lossy(&data[..end]).into_owned());
            }
            b'x' => {
                // Records "LEN path=VALUE\n".
                for rec in String::from_utf8_lossy(&data).lines() {
                    if let Some((_, kv)) = rec.split_once(' ')
                        && let Some(p) = kv.strip_prefix("path=")
                    {
                        self.long_name = Some(p.to_string());
                    }
                }
            }
            _ => {
                self.kept += data.len();
                self.files.insert(self.name.clone(), data);
            }
        }
    }

    fn json(&self, name: &str) -> Option<Value> {
        serde_json::from_slice(self.files.get(name)?).ok()
    }

    /// The file a `blobs/sha256/HEX` or `HEX.json` reference, or a digest, names.
    fn blob(&self, digest: &str) -> Option<Value> {
        let hex = digest.strip_prefix("sha256:")?;
        self.json(&format!("blobs/sha256/{hex}"))
    }

    /// What the stream said about the image (the first one `manifest.json` names).
    pub fn identity(&self) -> Identity {
        let mut id = Identity::default();
        let entries = self.json("manifest.json");
        for e in entries
            .as_ref()
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(c) = e.get("Config").and_then(Value::as_str) else {
                continue;
            };
            let hex = c
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .trim_end_matches(".json");
            if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                id.configs.push(format!("sha256:{hex}"));
            }
            if id.config.is_none() {
                id.config = id.configs.last().cloned();
                let cfg = self.json(c.trim_start_matches("./"));
                id.diff_ids = cfg
                    .as_ref()
                    .and_then(|v| v.pointer("/rootfs/diff_ids"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect();
            }
        }
        if let Some(config) = &id.config {
            let top = self.json("index.json");
            for m in top
                .as_ref()
                .and_then(|v| v.get("manifests"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(d) = m.get("digest").and_then(Value::as_str) {
                    self.leads_to(d, config, 0, &mut id.manifests);
                }
            }
        }
        id
    }

    /// Whether manifest or index `digest` leads to `config`; those that do are added to `out`.
    fn leads_to(&self, digest: &str, config: &str, depth: u32, out: &mut Vec<String>) -> bool {
        let Some(v) = self.blob(digest) else {
            return false;
        };
        let mut yes = v.pointer("/config/digest").and_then(Value::as_str) == Some(config);
        if depth < 4 {
            for m in v
                .get("manifests")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(d) = m.get("digest").and_then(Value::as_str) {
                    yes |= self.leads_to(d, config, depth + 1, out);
                }
            }
        }
        if yes && !out.iter().any(|o| o == digest) {
            out.push(digest.to_string());
        }
        yes
    }
}

impl std::io::Write for TarReader {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.feed(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes to a file and reads the tar as it goes by.
struct Tee<'a> {
    file: &'a mut std::fs::File,
    tar: &'a mut TarReader,
}

impl std::io::Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.tar.feed(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
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
    /// A tar entry: a ustar header (name, size, type) and the data, padded.
    fn entry(name: &str, kind: u8, data: &[u8]) -> Vec<u8> {
        let mut h = [0u8; 512];
        h[..name.len().min(100)].copy_from_slice(&name.as_bytes()[..name.len().min(100)]);
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        let mut out = h.to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    fn hex(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    /// An OCI layout as either store exports it: blobs first, index.json and manifest.json last.
    fn oci(config: &str, manifest: &str, layer_len: usize) -> Vec<u8> {
        let cfg = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:d1","sha256:d2"]}}"#;
        let man =
            format!(r#"{{"schemaVersion":2,"config":{{"digest":"sha256:{config}"}},"layers":[]}}"#);
        let index =
            format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"sha256:{manifest}"}}]}}"#);
        let mut t = entry("blobs/", b'5', b"");
        t.extend(entry(
            &format!("blobs/sha256/{}", hex('a')),
            b'0',
            &vec![7u8; layer_len],
        ));
        t.extend(entry(
            &format!("blobs/sha256/{config}"),
            b'0',
            cfg.as_bytes(),
        ));
        t.extend(entry(
            &format!("blobs/sha256/{manifest}"),
            b'0',
            man.as_bytes(),
        ));
        t.extend(entry("index.json", b'0', index.as_bytes()));
        t.extend(entry(
            "manifest.json",
            b'0',
            format!(r#"[{{"Config":"blobs/sha256/{config}","RepoTags":null,"Layers":[]}}]"#)
                .as_bytes(),
        ));
        t.extend([0u8; 1024]);
        t
    }

    #[test]
    fn an_oci_export_gives_the_config_digest_diff_ids_and_manifest_in_any_chunking() {
        let (c, m) = (hex('c'), hex('e'));
        let tar = oci(&c, &m, 5000);
        let want = Identity {
            config: Some(format!("sha256:{c}")),
            diff_ids: vec!["sha256:d1".into(), "sha256:d2".into()],
            manifests: vec![format!("sha256:{m}")],
            configs: vec![format!("sha256:{c}")],
        };
        for step in [1, 7, 511, 512, 513, 4096, tar.len()] {
            let mut r = TarReader::default();
            for chunk in tar.chunks(step) {
                r.feed(chunk);
            }
            assert_eq!(r.identity(), want, "chunks of {step}");
            assert!(r.done, "chunks of {step}");
        }
    }

    #[test]
    fn small_layers_are_not_kept_and_do_not_crowd_out_the_documents() {
        let (c, m) = (hex('c'), hex('e'));
        let mut tar = Vec::new();
        // 80 MiB of small layers (more than KEEP_TOTAL), before the config and manifests.
        for n in 0..20u8 {
            tar.extend(entry(
                &format!("blobs/sha256/0{n:063}"),
                b'0',
                &vec![n; 4 << 20],
            ));
        }
        tar.extend(oci(&c, &m, 10));
        let mut r = TarReader::default();
        for chunk in tar.chunks(1 << 20) {
            r.feed(chunk);
        }
        assert!(r.kept < 1 << 20, "kept {} bytes", r.kept);
        assert_eq!(r.identity().config, Some(format!("sha256:{c}")));
        assert_eq!(r.identity().diff_ids.len(), 2);
    }

    #[test]
    fn a_legacy_export_names_its_config_file_by_digest() {
        let c = hex('b');
        let cfg = r#"{"rootfs":{"diff_ids":["sha256:d1"]}}"#;
        let mut tar = entry(&format!("{}/layer.tar", hex('f')), b'0', &[1u8; 2000]);
        tar.extend(entry(&format!("{c}.json"), b'0', cfg.as_bytes()));
        tar.extend(entry(
            "manifest.json",
            b'0',
            format!(r#"[{{"Config":"{c}.json","RepoTags":["a:1"],"Layers":["x/layer.tar"]}}]"#)
                .as_bytes(),
        ));
        let mut r = TarReader::default();
        r.feed(&tar);
        let id = r.identity();
        assert_eq!(id.config, Some(format!("sha256:{c}")));
        assert_eq!(id.diff_ids, ["sha256:d1"]);
        assert!(id.manifests.is_empty());
    }

    #[test]
    fn long_names_from_gnu_and_pax_entries_name_the_next_entry() {
        let c = hex('c');
        let cfg = br#"{"rootfs":{"diff_ids":["sha256:d9"]}}"#;
        let long = format!("./blobs/sha256/{c}");
        let mut tar = entry("././@LongLink", b'L', format!("{long}\0").as_bytes());
        tar.extend(entry("short", b'0', cfg));
        let rec = "path=manifest.json\n";
        let rec = format!("{} {rec}", rec.len() + 3);
        tar.extend(entry("PaxHeaders/x", b'x', rec.as_bytes()));
        tar.extend(entry(
            "other",
            b'0',
            format!(r#"[{{"Config":"blobs/sha256/{c}"}}]"#).as_bytes(),
        ));
        let mut r = TarReader::default();
        r.feed(&tar);
        let id = r.identity();
        assert_eq!(id.config, Some(format!("sha256:{c}")));
        assert_eq!(id.diff_ids, ["sha256:d9"]);
    }

    #[test]
    fn garbage_gives_no_identity_and_no_panic() {
        for junk in [vec![], vec![0xffu8; 2000], b"not a tar at all".repeat(100)] {
            let mut r = TarReader::default();
            r.feed(&junk);
            assert_eq!(r.identity().config, None);
        }
        // A manifest whose config is not a digest names none.
        let mut r = TarReader::default();
        r.feed(&entry(
            "manifest.json",
            b'0',
            br#"[{"Config":"../../etc/passwd"}]"#,
        ));
        assert_eq!(r.identity().config, None);
    }
}
