//! `--carry images`: the images of the old engine exported into the spool before docker
//! stops, loaded into the new engine after its gate, known by their config digest and diff
//! IDs in every store.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::host::engine::{Engine, EngineError};
use crate::host::inspect;
use crate::host::root::{Perms, Root};

use super::*;
use crate::formats::image_tar::TarReader;

/// An image of the old engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Image {
    /// Its id (`sha256:…`).
    pub(crate) id: String,
    /// Its tags (empty: untagged, carried by id).
    pub(crate) tags: Vec<String>,
    /// Its size as the engine reports it (shared layers counted in each image).
    pub(crate) size: u64,
    /// Its file in the spool, once exported.
    #[serde(default)]
    pub(crate) file: Option<String>,
    /// The file was exported by id (no tags inside): loading it changes no tag, and the tags
    /// are set one by one afterwards, never over a tag that names another image. False for a
    /// spool of an older version, exported under its tags (not loaded while a tag conflicts).
    #[serde(default)]
    pub(crate) by_id: bool,
    /// Its config digest, read from the exported tar: the image's identity in every store (the
    /// overlay2 store's id; the containerd store's id is its manifest's or index's digest).
    /// Null for a spool of an older version (read from the tar at load).
    #[serde(default)]
    pub(crate) config: Option<String>,
    /// Its layers' diff IDs (`RootFS.Layers`), the same in every store.
    #[serde(default)]
    pub(crate) diff_ids: Vec<String>,
    /// The manifests and indexes in the tar that lead to its config: the ids the containerd
    /// store gives it when it is loaded there.
    #[serde(default)]
    pub(crate) manifests: Vec<String>,
    /// For an image of several platforms (an index in the containerd store): the platform
    /// exported, the one the host runs (an OCI platform object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) platform: Option<Value>,
    /// The other platforms it holds, not carried (`os/architecture[/variant]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) dropped: Vec<String>,
    /// Why its export failed (it is not in the spool; the other images are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) export_error: Option<String>,
    /// Why it was exported on its own, not in the one export of all the images (that export
    /// failed): its layers are in its own tar, shared ones too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) alone: Option<String>,
}

impl Image {
    /// How it is named in messages: its first tag, else its short id.
    pub(crate) fn name(&self) -> String {
        self.tags
            .first()
            .cloned()
            .unwrap_or_else(|| inspect::short_id(&self.id))
    }
}

/// What `--carry` will carry (`plan`), or carried.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Carry {
    /// Images carried (or to carry), by name.
    pub(crate) images: Vec<String>,
    /// Volumes carried (or to carry), by name.
    pub(crate) volumes: Vec<String>,
    /// Their total size as the engine reports it, in bytes: the spool needs at most this.
    pub(crate) bytes: u64,
    /// Images and volumes not carried, with why (already there in the new engine, the other
    /// platforms of an image of several, a volume driver or options that cannot be copied,
    /// with what to do).
    pub(crate) skipped: Vec<String>,
    /// Images and volumes whose carry failed, with why.
    pub(crate) failed: Vec<String>,
    /// Containers, which cannot be carried (they reference the old layers): `name (image:
    /// command)`, to be created again.
    pub(crate) containers_not_carried: Vec<String>,
    /// The spool kept for the next run when something failed (null: none).
    pub(crate) spool: Option<String>,
    /// What the spool needs at most, in bytes: the images' sizes with a layer shared by
    /// several counted once (where the engine shows which are shared: an image whose layers
    /// begin with all of another's), not more than `bytes`.
    pub(crate) spool_bytes: u64,
    /// Why the images were exported one by one, each with its layers, instead of in one
    /// export of all (null: they were exported together, each shared layer once).
    pub(crate) export_fallback: Option<String>,
}

impl Carry {
    /// Everything asked for was carried or skipped.
    pub(crate) fn complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// The images of `engine` and its containers (which cannot be carried).
pub(crate) fn survey(engine: &Engine) -> Result<(Vec<Image>, Vec<String>)> {
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
            export_error: None,
            alone: None,
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
pub(crate) fn dropped_note(img: &Image) -> Option<String> {
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

/// The bytes the spool needs for `images` (sizes as the engine counts them, each image with
/// the diff IDs of its layers): an image whose layers begin with all of another listed
/// image's layers needs only its own past those (the longest such other image), since one
/// export holds each layer once. An upper bound: layers shared in other ways are counted in
/// each image, as the engine counts them.
pub(crate) fn shared_once(images: &[(u64, Vec<String>)]) -> u64 {
    images
        .iter()
        .map(|(size, layers)| {
            let below = images
                .iter()
                .filter(|(_, l)| !l.is_empty() && l.len() < layers.len() && layers.starts_with(l))
                .map(|(s, _)| *s)
                .max()
                .unwrap_or(0);
            size.saturating_sub(below)
        })
        .sum()
}

/// What the spool needs for `images` of `engine` ([`shared_once`], the layers from `GET
/// /images/{id}/json`).
pub(crate) fn spool_bytes(engine: &Engine, images: &[Image]) -> Result<u64> {
    let mut sized = Vec::new();
    for i in images {
        let layers = match engine.inspect_image(&i.id) {
            Ok(v) => v.root_fs.layers,
            Err(e) if e.not_found() => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        sized.push((i.size, layers));
    }
    Ok(shared_once(&sized))
}

/// An export that did not complete: the spool's filesystem full (which stops the carry, as
/// every later export would fail the same way), or anything else (which the image or images
/// of that export alone are failed for).
struct ExportFailed {
    full: bool,
    error: anyhow::Error,
}

/// Exports `set` into one tar `file` of the spool (`total`: the bytes all exports need, for
/// the message of a full spool), its identity read from the tar as it is written: the
/// images spooled, or why not.
fn export_set(
    root: &Root,
    engine: &Engine,
    set: &[&Image],
    file: &str,
    total: u64,
    show: &mut dyn FnMut(u64),
) -> std::result::Result<Vec<Image>, ExportFailed> {
    let other = |error: anyhow::Error| ExportFailed { full: false, error };
    // The spool directory was made beneath the root by the caller.
    let path = root.resolved(file).map_err(other)?;
    let io_failed = |e: std::io::Error, what: &str| {
        if is_full(&e) {
            ExportFailed {
                full: true,
                error: spool_full(root, total, &path, &e),
            }
        } else {
            other(anyhow::Error::new(e).context(format!("cannot {what} {}", path.display())))
        }
    };
    let mut out = std::fs::File::create(&path).map_err(|e| io_failed(e, "create"))?;
    // By id: the tar names no tag, so loading it moves no tag in the new engine; the tags
    // are set afterwards, each only where it names nothing else. One platform of several:
    // the host's (the others are named as not carried).
    let mut tar = TarReader::default();
    let ids: Vec<&str> = set.iter().map(|i| i.id.as_str()).collect();
    let named = || set.iter().map(|i| i.name()).collect::<Vec<_>>().join(", ");
    engine
        .export_images(
            &ids,
            set[0].platform.as_ref(),
            &mut Tee {
                file: &mut out,
                tar: &mut tar,
                written: 0,
                started: 0,
            },
            IDLE,
            show,
        )
        .map_err(|e| match &e {
            EngineError::Local { source, .. } if is_full(source) => ExportFailed {
                full: true,
                error: spool_full(root, total, &path, source),
            },
            _ => other(anyhow::Error::new(e).context(format!("cannot export {}", named()))),
        })?;
    let syncing = std::time::Instant::now();
    out.sync_all().map_err(|e| io_failed(e, "write"))?;
    tracing::debug!(
        "spooled {} in {} ({:.1} ms of it in the closing fsync)",
        named(),
        path.display(),
        syncing.elapsed().as_secs_f64() * 1e3
    );
    if !tar.complete() {
        return Err(other(anyhow::anyhow!(
            "the export of {} was cut short: the engine's stream ended before the end of the tar (an error in the engine after the export began; its log says which)",
            named()
        )));
    }
    set.iter()
        .map(|img| {
            // Alone with `platform=` (an image of several platforms in the containerd store),
            // the tar holds the platform's manifest, not the index that is the image's id:
            // its one entry is the image.
            let found = tar.identity_of(&img.id).or_else(|| {
                Some(tar.identity()).filter(|i| set.len() == 1 && i.config.is_some())
            });
            let found = found.ok_or_else(|| {
                other(anyhow::anyhow!(
                    "the export of image {} names no image config for it (no manifest.json entry): it cannot be carried by its identity",
                    img.name()
                ))
            })?;
            Ok(Image {
                file: Some(file.to_string()),
                by_id: true,
                config: found.config,
                diff_ids: found.diff_ids,
                manifests: found.manifests,
                ..(*img).clone()
            })
        })
        .collect()
}

/// Exports every image of the old engine into the spool, the index written last (the caller
/// journals the spool first). One export of all of them (`GET /images/get?names=…`), so a
/// layer several share is written and later loaded once; an image of several platforms (the
/// containerd store) is exported on its own, for the host's platform. When the one export
/// fails, each image is exported on its own (said in the result); an image whose own export
/// fails is named as not carried and the rest are carried. A full spool stops the carry.
pub(crate) fn export(
    root: &Root,
    engine: &Engine,
    images: &[Image],
    progress: Progress,
) -> Result<()> {
    root.ensure_dir(crate::run::journal::DIR, 0o700)?;
    root.ensure_dir(SPOOL, 0o700)?;
    crate::failpoint::hit("carry:before-export")?;
    let total: u64 = images.iter().map(|i| i.size).sum();
    let bar = progress.bytes("exporting images", total);
    let mut done = 0u64;
    let mut spooled: Vec<Image> = Vec::new();
    let (together, mut alone): (Vec<&Image>, Vec<&Image>) =
        images.iter().partition(|i| i.platform.is_none());
    let mut fallback = None;
    if together.len() > 1 {
        let file = format!("{SPOOL}/all.tar");
        match export_set(root, engine, &together, &file, total, &mut |b| bar.set(b)) {
            Ok(v) => spooled.extend(v),
            Err(f) if f.full => return Err(f.error),
            Err(f) => {
                let _ = root.remove_file(&file);
                fallback = Some(format!("{:#}", f.error));
                alone.extend(together);
            }
        }
        done = spooled_bytes(root, &spooled);
    } else {
        alone.extend(together);
    }
    for (n, img) in alone.into_iter().enumerate() {
        let file = format!("{SPOOL}/{n}.tar");
        let base = done;
        match export_set(root, engine, &[img], &file, total, &mut |b| {
            bar.set(base + b)
        }) {
            Ok(v) => {
                done += spooled_bytes(root, &v);
                spooled.extend(v.into_iter().map(|i| Image {
                    alone: fallback.clone(),
                    ..i
                }));
            }
            Err(f) if f.full => return Err(f.error),
            Err(f) => {
                let _ = root.remove_file(&file);
                spooled.push(Image {
                    export_error: Some(format!("{:#}", f.error)),
                    alone: fallback.clone(),
                    ..img.clone()
                });
            }
        }
    }
    // In the order surveyed.
    spooled.sort_by_key(|s| images.iter().position(|i| i.id == s.id));
    let bytes = serde_json::to_vec_pretty(&spooled).expect("serializes");
    root.write_atomic(INDEX, &bytes, Perms::root_owned(0o600))
}

/// The bytes of the distinct files `images` are spooled in.
pub(crate) fn spooled_bytes(root: &Root, images: &[Image]) -> u64 {
    let mut files: Vec<&str> = images.iter().filter_map(|i| i.file.as_deref()).collect();
    files.sort_unstable();
    files.dedup();
    files
        .into_iter()
        .filter_map(|f| root.metadata(f).ok().flatten())
        .map(|m| m.len())
        .sum()
}

/// The spooled images waiting to be loaded, if a spool is there.
pub(crate) fn pending(root: &Root) -> Result<Option<Vec<Image>>> {
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
    // The graph driver stores' id is the config digest: each name asked once.
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(*n));
    for n in names {
        if let Some(h) = held(engine, n)?
            && same(engine, img, &h)?
        {
            return Ok(Some(h.id));
        }
    }
    Ok(None)
}

/// The spool's files loaded so far in this run, and how (the error of a load that failed).
type Loads = std::collections::BTreeMap<String, std::result::Result<(), String>>;

/// Loads a spool file into the engine, once per run however many images it holds (a file
/// loaded already, or whose load failed, is not sent again: the same answer is given).
fn load_file(
    root: &Root,
    engine: &Engine,
    file: &str,
    loads: &mut Loads,
    show: &mut dyn FnMut(u64),
) -> Result<()> {
    if let Some(r) = loads.get(file) {
        return r.clone().map_err(|e| anyhow::anyhow!(e));
    }
    let r = (|| -> Result<()> {
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
        Ok(())
    })();
    loads.insert(
        file.to_string(),
        r.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")),
    );
    r
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
    loads: &mut Loads,
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
        load_file(root, engine, file, loads, show)?;
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
        // A tag the load itself set (an older spool, exported under its tags) is there
        // already; a tar exported by id sets none.
        if img.by_id || held(engine, &t)?.map(|h| h.id).as_deref() != Some(id.as_str()) {
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
pub(crate) fn load(root: &Root, engine: &Engine, images: &[Image], progress: Progress) -> Carry {
    let mut c = Carry {
        bytes: images.iter().map(|i| i.size).sum(),
        spool_bytes: spooled_bytes(root, images),
        export_fallback: images.iter().find_map(|i| i.alone.clone()).map(|e| {
            format!(
                "the one export of all the images failed ({e}): each was exported on its own, its shared layers with it"
            )
        }),
        ..Carry::default()
    };
    let total = c.spool_bytes;
    let bar = progress.bytes("loading images", total);
    let mut loads = Loads::new();
    let mut base = 0u64;
    let mut load_failed = false;
    for img in images {
        if let Some(e) = &img.export_error {
            // Not in the spool: no later run can load it (the old engine stopped).
            c.failed.push(format!(
                "{}: not carried: its export from the old engine failed ({e}); it stays in that engine's store (the other images do not depend on it)",
                img.name()
            ));
            continue;
        }
        let counted = loads.len();
        let result = load_one(root, engine, img, &mut loads, &mut |b| bar.set(base + b));
        if loads.len() > counted {
            base += img
                .file
                .as_deref()
                .and_then(|f| root.metadata(f).ok().flatten())
                .map_or(0, |m| m.len());
        }
        load_failed |= !result.as_ref().is_ok_and(|d| d.conflicts.is_empty());
        report_one(&mut c, img, result);
    }
    if load_failed {
        c.spool = Some(root.path(SPOOL).display().to_string());
    } else {
        let _ = root.remove_dir_all(SPOOL);
    }
    c
}

/// Adds what loading `img` did to `c`.
fn report_one(c: &mut Carry, img: &Image, result: Result<Loaded>) {
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
}

/// Writes to a file and reads the tar as it goes by. Every [`WRITEBACK`] bytes it starts the
/// writeback of what it wrote (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, not waiting), so the
/// `fsync` at the end finds little left to write: the disk writes while the engine exports,
/// instead of after it.
struct Tee<'a> {
    file: &'a mut std::fs::File,
    tar: &'a mut TarReader,
    written: u64,
    started: u64,
}

/// How much is written before its writeback is started.
const WRITEBACK: u64 = 8 << 20;

impl std::io::Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.tar.feed(&buf[..n]);
        self.written += n as u64;
        if self.written - self.started >= WRITEBACK {
            use std::os::fd::AsRawFd;
            // SAFETY: a plain syscall on an open descriptor and a range of it; it only
            // starts writeback. Its failure is not acted on: the fsync at the end reports.
            let _ = unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    self.started as libc::off64_t,
                    (self.written - self.started) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                )
            };
            self.started = self.written;
        }
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

    fn layers(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_base_shared_by_ten_images_is_counted_once_in_the_spool() {
        let mut set = vec![(200, layers(&["b"]))];
        for n in 0..10 {
            set.push((210, layers(&["b", &format!("x{n}")])));
        }
        assert_eq!(shared_once(&set), 200 + 10 * 10);
        // Without the base listed, nothing says what is shared: each counted whole.
        assert_eq!(shared_once(&set[1..]), 10 * 210);
    }

    #[test]
    fn a_chain_counts_each_image_past_its_longest_listed_prefix_only() {
        let set = [
            (200, layers(&["b"])),
            (250, layers(&["b", "c"])),
            (260, layers(&["b", "c", "d"])),
            // Shares "b" but not "c": past the base only.
            (230, layers(&["b", "e"])),
            // Same layers as the base (another tag's image, other config): not a prefix of
            // itself or of the base, counted whole.
            (200, layers(&["b"])),
            // Unknown layers (gone since the listing): counted whole, no prefix of others.
            (50, Vec::new()),
        ];
        assert_eq!(shared_once(&set), 200 + 50 + 10 + 30 + 200 + 50);
        // A size the engine counts smaller than its base's does not go below zero.
        assert_eq!(
            shared_once(&[(200, layers(&["b"])), (100, layers(&["b", "c"]))]),
            200
        );
    }
}
