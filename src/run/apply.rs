//! Applying a plan: the only module that writes the host's files, each write through the
//! [`Journal`] (recorded before it happens, undone by the journal). Order: user, ranges (under
//! shadow's locks, re-decided on the locked content), daemon.json last, since that is what
//! turns remapping on. It renders no content itself: the bytes come from the plan's writers
//! ([`plan::subid_after`], the plan's daemon.json bytes), the ones `plan --json` shows in
//! `files`, so what `plan` shows is what is written unless a file changed in between.

use anyhow::Result;

use crate::exit::Conflict;
use crate::failpoint;
use crate::formats::subid::How;
use crate::host::account;
use crate::host::root::{Perms, Root};
use crate::host::shadow_lock;
use crate::run::journal::Journal;
use crate::run::plan::{self, DisablePlan, FileChange, Plan, RangePlan};
use crate::run::preflight::{self, DAEMON_JSON, DaemonFile, IdFile, Inputs};

pub(crate) use crate::run::preflight::DAEMON_JSON_BACKUP;

/// Reads /etc/subuid or /etc/subgid again under the lock. When it still holds exactly the
/// bytes read before (the usual case), the earlier parse is kept: the file is compared, not
/// parsed again, which matters for files with a million lines.
fn reread_id_file(root: &Root, abs: &str, before: IdFile) -> Result<IdFile> {
    if before.exists
        && let Some(meta) = root.symlink_metadata(abs)?
        && meta.is_file()
        && meta.len() == before.file.raw.len() as u64
        && root.holds(abs, &before.file.raw)?
    {
        return Ok(IdFile {
            perms: Perms::of(&meta),
            ..before
        });
    }
    // Drop the unlocked copy before reading the locked one.
    drop(before);
    preflight::read_id_file(root, abs)
}

fn write_id_file(
    root: &Root,
    journal: &mut Journal,
    abs: &str,
    found: &IdFile,
    user: &str,
    r: &RangePlan,
) -> Result<()> {
    // The bytes `plan` shows for this content: the one renderer of the file.
    let Some(bytes) = plan::subid_after(&found.file.raw, user, r) else {
        return Ok(());
    };
    if found.exists {
        root.backup(abs, &plan::subid_backup(abs), &found.file.raw, found.perms)?;
    }
    let before = found.exists.then_some(&found.file.raw[..]);
    journal.write_file(root, abs, before, &bytes, found.perms)?;
    match r.replaces.is_empty() {
        // A moved range (--repair, --start) or a renamed line: the user's line replaced.
        false => tracing::info!(
            "moved {user}'s range to {}:{} in {}",
            r.start,
            r.count,
            root.path(abs).display()
        ),
        true => tracing::info!(
            "added {user}:{}:{} to {}",
            r.start,
            r.count,
            root.path(abs).display()
        ),
    }
    Ok(())
}

fn write_daemon_json(
    root: &Root,
    journal: &mut Journal,
    found: &DaemonFile,
    bytes: &[u8],
) -> Result<()> {
    // Someone may have edited the file since it was read: never overwrite their change.
    let now = root.read_optional(DAEMON_JSON)?;
    if now != found.raw {
        return Err(Conflict::new(format!(
            "{} changed while docker-userns was running; nothing was written to it: run the command again",
            root.path(DAEMON_JSON).display()
        ))
        .kind("changed-meanwhile")
        .at(DAEMON_JSON, None)
        .into());
    }
    root.ensure_dir("/etc/docker", 0o755)?;
    if let Some(raw) = &found.raw {
        root.backup(DAEMON_JSON, DAEMON_JSON_BACKUP, raw, found.perms)?;
    }
    journal.write_file(root, DAEMON_JSON, found.raw.as_deref(), bytes, found.perms)?;
    tracing::info!("wrote {}", root.path(DAEMON_JSON).display());
    Ok(())
}

/// Applies an `enable` plan and updates it to what was done (ranges may differ from the
/// preview when another program changed the files in between, or the new user's uid already
/// owned ranges). On failure the journal holds what to undo.
pub(crate) fn enable(
    root: &Root,
    journal: &mut Journal,
    mut inputs: Inputs,
    done: &mut Plan,
    count: Option<u64>,
    how: How,
) -> Result<()> {
    if !done.changed {
        return Ok(());
    }
    if done.user.create {
        root.ensure_dir("/etc", 0o755)?;
        journal.create_user(root, &inputs.user)?;
        let acct = account::create(root, &inputs.user)?;
        done.user.uid = Some(acct.uid);
        inputs.account = Some(acct);
    }
    failpoint::hit("apply:after-user")?;
    if done.subuid.add || done.subgid.add || done.user.create {
        root.ensure_dir("/etc", 0o755)?;
        let _lock = shadow_lock::lock(
            root,
            &["/etc/subuid", "/etc/subgid"],
            shadow_lock::DEFAULT_TIMEOUT,
        )?;
        inputs.subuid = reread_id_file(root, "/etc/subuid", std::mem::take(&mut inputs.subuid))?;
        inputs.subgid = reread_id_file(root, "/etc/subgid", std::mem::take(&mut inputs.subgid))?;
        // The accounts too: a user created meanwhile (ours included) must not be covered.
        inputs.ids = preflight::read_account_ids(root)?;
        let replanned = plan::enable_how(&inputs, count, how)?;
        // Only the bytes are needed from here on.
        for f in [&mut inputs.subuid, &mut inputs.subgid] {
            f.file.entries = Vec::new();
            f.file.malformed = Vec::new();
        }
        let user = inputs.user.clone();
        write_id_file(
            root,
            journal,
            "/etc/subuid",
            &inputs.subuid,
            &user,
            &replanned.subuid,
        )?;
        failpoint::hit("apply:after-subuid")?;
        write_id_file(
            root,
            journal,
            "/etc/subgid",
            &inputs.subgid,
            &user,
            &replanned.subgid,
        )?;
        done.subuid = replanned.subuid;
        done.subgid = replanned.subgid;
        done.repair = replanned.repair;
    }
    failpoint::hit("apply:before-daemon-json")?;
    if done.daemon_json_change != FileChange::None
        && let Some(bytes) = &done.daemon_bytes
    {
        write_daemon_json(root, journal, &inputs.daemon, bytes)?;
    }
    Ok(())
}

/// Applies a `disable` plan.
pub(crate) fn disable(
    root: &Root,
    journal: &mut Journal,
    inputs: &Inputs,
    planned: &DisablePlan,
) -> Result<()> {
    if let Some(bytes) = &planned.daemon_bytes {
        write_daemon_json(root, journal, &inputs.daemon, bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::journal::{Action, Before};

    /// A root with the remap user and the given /etc/subuid and /etc/subgid.
    fn tree(subid: &str) -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(
            etc.join("passwd"),
            "root:x:0:0:root:/root:/bin/bash\ndockremap:x:999:999::/nonexistent:/usr/sbin/nologin\n",
        )
        .unwrap();
        std::fs::write(etc.join("subuid"), subid).unwrap();
        std::fs::write(etc.join("subgid"), subid).unwrap();
        let root = Root::new(dir.path()).unwrap();
        (dir, root)
    }

    /// Plans on the files as they are, lets `between` change them (another program, before
    /// the lock), then applies; returns the files afterwards.
    fn run(subid: &str, between: impl FnOnce(&Root)) -> (String, String) {
        let (_dir, root) = tree(subid);
        let inputs = preflight::gather(&root, "dockremap").unwrap();
        let mut planned = plan::enable(&inputs, None).unwrap();
        between(&root);
        let mut journal = Journal::begin(&root, Action::Enable, Before::default()).unwrap();
        enable(
            &root,
            &mut journal,
            inputs,
            &mut planned,
            None,
            How::default(),
        )
        .unwrap();
        journal.finish(&root).unwrap();
        let read = |f: &str| std::fs::read_to_string(root.host_path(f)).unwrap();
        (read("/etc/subuid"), read("/etc/subgid"))
    }

    #[test]
    fn unchanged_files_get_the_planned_line() {
        let (u, g) = run("a:100000:65536\n", |_| {});
        assert_eq!(u, "a:100000:65536\ndockremap:165536:65536\n");
        assert_eq!(g, u);
    }

    #[test]
    fn a_change_before_the_lock_is_honoured_even_at_the_same_length() {
        // Same length, different bytes: only a comparison of the content notices.
        let (u, g) = run("a:100000:65536\n", |root| {
            std::fs::write(root.host_path("/etc/subuid"), "a:165536:65536\n").unwrap();
        });
        assert_eq!(u, "a:165536:65536\ndockremap:231072:65536\n");
        assert_eq!(g, "a:100000:65536\ndockremap:231072:65536\n");
        // Longer: a useradd appended a range where the planned one was.
        let (u, _) = run("a:100000:65536\n", |root| {
            std::fs::write(
                root.host_path("/etc/subuid"),
                "a:100000:65536\nbob:165536:65536\n",
            )
            .unwrap();
        });
        assert_eq!(
            u,
            "a:100000:65536\nbob:165536:65536\ndockremap:231072:65536\n"
        );
    }
}
