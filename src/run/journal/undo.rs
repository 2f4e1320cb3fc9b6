//! Carrying out single undo actions: files put back byte for byte, a moved data root renamed
//! and shifted back.

use anyhow::{Context, Result};

use crate::host::root::{Perms, Root};
use crate::host::shift;

use super::record::*;
use super::undo_plan::FileNow;

/// Shifts the owners below a moved data root back (wherever the tree is now: its new name,
/// or its old one when the rename was undone first).
pub(super) fn unshift(
    root: &Root,
    dir: &str,
    old_dir: &str,
    s: &OwnerShift,
    log: &str,
) -> Result<()> {
    let here = [dir, old_dir].into_iter().find(|d| root.is_dir(d));
    let Some(tree) = here.map(|d| root.open_dir(d)).transpose()? else {
        // The shift step was recorded, the rename it follows never undone: nothing exists to
        // shift back (the move itself failed).
        return Ok(());
    };
    let map = s.mapping()?;
    let go_on = &mut |_| std::ops::ControlFlow::Continue(());
    // A forward walk that was cut short still has its log (setid bits and capabilities of
    // inodes chowned but not yet put back): finish it first, then walk back with a log of
    // its own (both walks resume where they stopped).
    if root.exists(log) {
        shift::shift_tree(&tree, &map, &root.resolved(log)?, go_on).with_context(|| {
            format!(
                "cannot finish the interrupted shift below {}",
                tree.shown().display()
            )
        })?;
    }
    shift::shift_tree(
        &tree,
        &map.reverse(),
        &root.resolved(&format!("{log}.undo"))?,
        go_on,
    )
    .with_context(|| {
        format!(
            "cannot shift the owners below {} back",
            tree.shown().display()
        )
    })?;
    Ok(())
}

/// Renames a moved data root back, unless it is back already.
pub(super) fn move_back(root: &Root, from: &str, to: &str) -> Result<()> {
    if root.exists(from) || !root.exists(to) {
        return Ok(());
    }
    let (f, t) = (root.path(from), root.path(to));
    root.rename(to, from)
        .with_context(|| format!("cannot rename {} back to {}", t.display(), f.display()))
}

/// Keeps the old content of `abs` at `backup`. Where it can, without a copy: a hard link to
/// the file as it is, which the atomic replace that follows leaves untouched (it renames a new
/// file over the name; the old one lives on under the backup's name), kept only when it holds
/// exactly `old` (compared in chunks). A million-line /etc/subuid is then saved without
/// writing it again. Otherwise, or across file systems, a durable copy of `old` is written.
pub(super) fn save_old(root: &Root, abs: &str, backup: &str, old: &[u8]) -> Result<()> {
    let linkable = root
        .symlink_metadata(abs)?
        .is_some_and(|m| m.is_file() && m.len() == old.len() as u64);
    if linkable && root.hard_link(abs, backup).is_ok() {
        if root.holds(backup, old)? {
            return root.sync_dir(DIR);
        }
        root.remove_file(backup)?;
    }
    root.write_atomic(backup, old, Perms::root_owned(0o600))
}

/// The part of a message about files someone else changed meanwhile.
pub(super) fn left_note(root: &Root, left: &[String]) -> String {
    if left.is_empty() {
        return String::new();
    }
    format!(
        "; {} changed after this run wrote it and was left as found (compare it with its saved copy)",
        shown(root, left)
    )
}

/// Paths inside the root as the host names them, for messages.
pub(super) fn shown(root: &Root, paths: &[String]) -> String {
    paths
        .iter()
        .map(|p| root.path(p).display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a written file holds now: what the run wrote, what it held before, or neither.
pub(super) fn file_now(root: &Root, f: &FileStep) -> Result<FileNow> {
    let now = root.read_optional(&f.path)?;
    if f.written
        .as_ref()
        .is_some_and(|w| w.matches(now.as_deref()))
    {
        return Ok(FileNow::AsWritten);
    }
    let before = if f.existed {
        root.read_optional(&f.backup)?
    } else {
        None
    };
    if now == before && (f.existed == now.is_some()) {
        return Ok(FileNow::AsBefore);
    }
    // Not as written and not as before: someone else's change, unless the run's write was
    // never recorded as done (then it is the run's own, and undone).
    Ok(if f.written.is_some() {
        FileNow::Changed
    } else {
        FileNow::AsWritten
    })
}

/// Puts one file back byte for byte, with its old mode and owner (or removes it).
pub(super) fn restore(root: &Root, f: &FileStep) -> Result<()> {
    if f.existed {
        let bytes = root.read_optional(&f.backup)?.with_context(|| {
            format!(
                "the saved copy {} of {} is missing",
                root.path(&f.backup).display(),
                f.path
            )
        })?;
        if root.read_optional(&f.path)?.as_deref() != Some(bytes.as_slice()) {
            root.write_atomic(&f.path, &bytes, f.perms())
                .with_context(|| format!("cannot restore {}", root.path(&f.path).display()))?;
        }
        Ok(())
    } else {
        root.remove_file(&f.path)
    }
}
