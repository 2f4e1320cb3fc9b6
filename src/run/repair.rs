//! `--repair`: moving the remap range dockerd took (and the remapped data root with it): the
//! checks before docker stops, the rename and the owner shift, what it leaves outside.

use anyhow::{Context, Result};

use crate::exit::Conflict;
use crate::failpoint;
use crate::host::inspect::{self};
use crate::host::root::Root;
use crate::host::shift;
use crate::progress::Progress;
use crate::run::journal::{Journal, OwnerShift};
use crate::run::note::{HeldDir, Note};
use crate::run::plan::Repair;
use crate::run::restart::Docker;

/// What a repair does, with the size of the tree it shifts.
pub(crate) fn repair_preview(root: &Root, r: &Repair) -> Result<Note> {
    let from = root.path(&r.from).display().to_string();
    if !root.is_dir(&r.from) {
        return Ok(Note::RepairNoDataRoot {
            from,
            uid_to: r.uid_to,
            uid_count: r.uid_count,
        });
    }
    let inodes = shift::count(&root.open_dir(&r.from)?)
        .with_context(|| format!("cannot count the inodes below {from}"))?;
    Ok(Note::RepairWill {
        from,
        to: root.path(&r.to).display().to_string(),
        inodes,
        uid_from: r.uid_from,
        gid_from: r.gid_from,
        uid_to: r.uid_to,
        gid_to: r.gid_to,
    })
}

/// The refusal's words for what a repair would do (an error, not a note: [`repair_preview`]'s
/// facts in the words the report gives that note, [`Note::repair_preview_words`]).
pub(crate) fn repair_preview_refusal(root: &Root, r: &Repair) -> Result<String> {
    let note = repair_preview(root, r)?;
    Ok(note
        .repair_preview_words()
        .unwrap_or_else(|| unreachable!("repair_preview made {note:?}")))
}

/// Where the shift of a repair keeps its log.
pub(crate) const SHIFT_LOG: &str = "/var/lib/docker-userns/shift.log";

/// Before a repair, docker still running: whether there is a data root to move (None: none,
/// only the files change), and that it can be moved: docker running (`docker_active`; None:
/// files only, under `--root` or `--no-restart`, where a move is refused), the new name free,
/// and the whole tree walkable, with no owner in the target range already (the undo could not
/// tell those from the ones it shifted). Returns the number of inodes to shift.
pub(crate) fn repair_check(
    root: &Root,
    r: &Repair,
    docker_active: Option<bool>,
    notes: &mut Vec<Note>,
) -> Result<Option<u64>> {
    let is_dir =
        |abs: &str| -> Result<bool> { Ok(root.symlink_metadata(abs)?.is_some_and(|m| m.is_dir())) };
    if !is_dir(&r.from)? {
        notes.push(repair_preview(root, r)?);
        return Ok(None);
    }
    let from = root.path(&r.from);
    if root.symlink_metadata(&r.to)?.is_some() {
        return Err(Conflict::new(format!(
            "--repair would rename {} to {}, which exists already (a data root of that range from earlier?): move it away first; nothing was changed",
            from.display(),
            root.path(&r.to).display()
        ))
        .kind("repair-target-exists")
        .into());
    }
    let why = match docker_active {
        None if root.is_host() => Some(
            "--repair cannot be used with --no-restart: the move needs docker stopped and started by this run; run it without --no-restart",
        ),
        None => Some("run it on the live host (not with --root)"),
        Some(false) => Some("start docker.service first"),
        Some(true) => None,
    };
    if let Some(why) = why {
        return Err(Conflict::new(format!(
            "--repair renames {} and shifts its owners with docker stopped, then starts docker and health-gates it: {why}; nothing was changed",
            from.display(),
        ))
        .kind("repair-not-possible")
        .into());
    }
    let map = repair_shift(r)?.mapping()?;
    let survey = root.open_dir(&r.from).and_then(|d| shift::survey(&d, &map)).map_err(|e| {
        Conflict::new(format!(
            "--repair must walk the whole tree below {} before it stops docker, and cannot: {e:#}; nothing was changed and docker still runs. Remove or move away what cannot be walked (a container can make it in a volume, e.g. a directory nested too deep), then run --repair again",
            from.display()
        ))
        .kind("repair-tree-unwalkable")
    })?;
    // Any inode with an id in the target range, also one whose other id would shift: the undo
    // would move that id back with the ones the repair shifted.
    if survey.done_id_inodes > 0 {
        let (u, g) = (map.uid(), map.gid());
        let (ue, ge) = (
            u64::from(u.to) + u64::from(u.count),
            u64::from(g.to) + u64::from(g.count),
        );
        let first = survey
            .first_done
            .as_ref()
            .map_or_else(String::new, |p| format!(", e.g. {}", p.display()));
        return Err(Conflict::new(format!(
            "{} inode(s) below {} are owned already by ids of the range --repair moves to (uids {}..{} / gids {}..{}){first}: the repair would leave them as they are, and its undo could not tell them from those it shifted; change their owners first (list them with `find {} -xdev \\( -uid +{} -uid -{ue} \\) -print -o \\( -gid +{} -gid -{ge} \\) -print`); nothing was changed",
            survey.done_id_inodes,
            from.display(),
            u.to,
            ue - 1,
            g.to,
            ge - 1,
            from.display(),
            u.to - 1,
            g.to - 1,
        ))
        .kind("repair-ids-in-use")
        .into());
    }
    Ok(Some(survey.inodes))
}

/// The id shift of a repair.
pub(crate) fn repair_shift(r: &Repair) -> Result<OwnerShift> {
    Ok(OwnerShift {
        uid: shift::IdShift::of(r.uid_from, r.uid_to, r.uid_count)?,
        gid: shift::IdShift::of(r.gid_from, r.gid_to, r.gid_count)?,
    })
}

/// What the engine keeps outside its data root, which a repair does not move: the host
/// directories of local volumes created with bind options (`-o type=none -o o=bind -o
/// device=DIR`) and the host directories bind-mounted into containers. Those holding owners of
/// the old range are named (they become unwritable for the remapped containers), with what to
/// do (`planning`: said before the repair, by `plan`). Asking the engine or surveying a
/// directory that fails is said too.
pub(crate) fn held_outside(root: &Root, docker: &Docker, r: &Repair, planning: bool) -> Vec<Note> {
    let mut dirs: Vec<(String, String)> = Vec::new();
    match docker.engine().volumes() {
        Ok(vols) => {
            for vol in vols {
                let device = vol.option("device");
                let bind = vol
                    .option("o")
                    .split(',')
                    .any(|o| o == "bind" || o == "rbind");
                if !device.is_empty() && bind {
                    dirs.push((device.to_string(), format!("volume {}", vol.name)));
                }
            }
        }
        Err(e) => {
            return vec![Note::RepairVolumesUnlisted {
                error: e.to_string(),
            }];
        }
    }
    match inspect::containers(docker.engine()) {
        Ok(cs) => {
            for c in cs {
                for (src, dst) in c.rw_binds {
                    dirs.push((src, format!("container {}: {dst}", c.name)));
                }
            }
        }
        Err(e) => {
            return vec![Note::RepairContainersUnlisted {
                error: format!("{e:#}"),
            }];
        }
    }
    let Ok(map) = repair_shift(r).and_then(|s| s.mapping()) else {
        return Vec::new();
    };
    // The engine names host paths; the data root inside the root is one there too (the engine
    // is only asked on the live host).
    let data_root = std::path::Path::new(&r.from);
    let mut found: Vec<(String, Vec<String>, u64)> = Vec::new();
    for (dir, by) in dirs {
        let path = std::path::PathBuf::from(&dir);
        if path.starts_with(data_root) {
            continue; // moved and shifted with the data root
        }
        if let Some(f) = found.iter_mut().find(|f| f.0 == dir) {
            f.1.push(by);
            continue;
        }
        // A file (or socket) bind-mounted: its own owner only.
        if let Ok(Some(m)) = root.symlink_metadata(&dir)
            && !m.is_dir()
        {
            use std::os::unix::fs::MetadataExt;
            let (u, g) = (map.uid(), map.gid());
            let old = |id: u32, s: shift::IdShift| id >= s.from && id - s.from < s.count;
            if old(m.uid(), u) || old(m.gid(), g) {
                found.push((dir, vec![by], 1));
            }
            continue;
        }
        match root.open_dir(&dir).and_then(|d| shift::survey(&d, &map)) {
            Ok(rep) if rep.shifted > 0 => found.push((dir, vec![by], rep.shifted)),
            Ok(_) => {}
            Err(e) => found.push((dir, vec![format!("{by}; not surveyed: {e:#}")], 0)),
        }
    }
    if found.is_empty() {
        return Vec::new();
    }
    vec![Note::RepairHeldOutside {
        uid_from: r.uid_from,
        gid_from: r.gid_from,
        dirs: found
            .into_iter()
            .map(|(dir, by, inodes)| HeldDir { dir, by, inodes })
            .collect(),
        planning,
        // Ids are 32-bit: the difference fits.
        uid_delta: r.uid_to as i64 - r.uid_from as i64,
        gid_delta: r.gid_to as i64 - r.gid_from as i64,
    }]
}

/// With docker stopped: renames the remapped data root and shifts the owners below it, each
/// step journaled first. Returns the note saying what was done.
pub(crate) fn move_data_root(
    root: &Root,
    journal: &mut Journal,
    r: &Repair,
    total: u64,
    (progress, jobs): (Progress, usize),
) -> Result<Note> {
    let owner_shift = repair_shift(r)?;
    let mapping = owner_shift.mapping()?;
    let (from, to) = (root.path(&r.from), root.path(&r.to));
    journal.move_data_root(root, &r.from, &r.to)?;
    failpoint::hit("repair:before-rename")?;
    root.rename(&r.from, &r.to)?;
    journal.step_done(root)?;
    journal.shift_owners(root, &r.to, &r.from, owner_shift, SHIFT_LOG)?;
    failpoint::hit("repair:before-shift")?;
    let bar = progress.inodes(&format!("shifting owners below {}", to.display()), total);
    let to_dir = root.open_dir(&r.to)?;
    let opts = shift::Options {
        jobs,
        ..shift::Options::default()
    };
    let log = root.resolved(SHIFT_LOG)?;
    let report = shift::shift_tree_with(
        &to_dir,
        &mapping,
        shift::LogAt::Path(&log),
        opts,
        &mut |n| {
            bar.set(n);
            if failpoint::hit("repair:during-shift").is_err() {
                return std::ops::ControlFlow::Break(());
            }
            std::ops::ControlFlow::Continue(())
        },
    )
    .with_context(|| format!("cannot shift the owners below {}", to.display()))?;
    drop(bar);
    journal.step_done(root)?;
    failpoint::hit("repair:after-shift")?;
    Ok(Note::RepairDone {
        from: from.display().to_string(),
        to: to.display().to_string(),
        shifted: report.shifted,
        inodes: report.inodes,
        uid_from: r.uid_from,
        gid_from: r.gid_from,
        uid_to: r.uid_to,
        gid_to: r.gid_to,
        outside: report.outside,
        setid_restored: report.setid_restored,
        caps_restored: report.caps_restored,
        acl_entries_shifted: report.acl_entries_shifted,
        other_filesystems: report
            .other_filesystems
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
    })
}
