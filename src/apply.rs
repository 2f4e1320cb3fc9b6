//! Applying a plan: the only module that writes. Order: user, ranges (under shadow's locks,
//! re-decided on the locked content), daemon.json last, since that is what turns remapping on.
//! If a write fails, every file written so far is restored from memory.

use anyhow::{Context, Result};

use crate::account;
use crate::exit::{Conflict, RollbackIncomplete, RolledBack};
use crate::failpoint;
use crate::plan::{self, DisablePlan, FileChange, Plan, RangePlan};
use crate::preflight::{self, DAEMON_JSON, DaemonFile, IdFile, Inputs};
use crate::root::{Perms, Root};
use crate::shadow_lock;

/// Where the previous daemon.json is kept before each rewrite.
pub const DAEMON_JSON_BACKUP: &str = "/etc/docker/daemon.json.docker-userns-backup";

/// Files written by this run and what they held before.
#[derive(Debug, Default)]
struct Undo {
    written: Vec<(String, Option<Vec<u8>>, Perms)>,
}

impl Undo {
    fn record(&mut self, abs: &str, before: Option<&[u8]>, perms: Perms) {
        self.written
            .push((abs.to_string(), before.map(<[u8]>::to_vec), perms));
    }

    fn restore(&self, root: &Root) -> Result<()> {
        for (abs, before, perms) in self.written.iter().rev() {
            match before {
                Some(bytes) => root.write_atomic(abs, bytes, *perms)?,
                None => std::fs::remove_file(root.path(abs))
                    .with_context(|| format!("cannot remove {}", root.path(abs).display()))?,
            }
        }
        Ok(())
    }

    /// Turns a failure after writes into "rolled back" or "rollback incomplete".
    fn fail(&self, root: &Root, err: anyhow::Error, created_user: Option<&str>) -> anyhow::Error {
        if self.written.is_empty() && created_user.is_none() {
            return err;
        }
        let files: Vec<String> = self
            .written
            .iter()
            .map(|(a, _, _)| root.path(a).display().to_string())
            .collect();
        let kept = created_user
            .map(|u| format!("; user {u}, created by this run, was kept (harmless; remove it with userdel if unwanted)"))
            .unwrap_or_default();
        match self.restore(root) {
            Ok(()) => err.context(RolledBack(format!(
                "failed, rolled back: restored {}{kept}",
                if files.is_empty() { "nothing (no file was written yet)".to_string() } else { files.join(", ") }
            ))),
            Err(e) => err.context(RollbackIncomplete(format!(
                "failed, and restoring {} failed too ({e:#}): compare them with their backups (FILE- and daemon.json.docker-userns-backup){kept}",
                files.join(", ")
            ))),
        }
    }
}

fn write_id_file(
    root: &Root,
    abs: &str,
    found: &IdFile,
    user: &str,
    r: &RangePlan,
    undo: &mut Undo,
) -> Result<()> {
    if !r.add {
        return Ok(());
    }
    if found.exists {
        root.backup(abs, &format!("{abs}-"), &found.file.raw, found.perms)?;
    }
    let bytes = found.file.with_appended(user, r.start, r.count);
    undo.record(
        abs,
        found.exists.then_some(found.file.raw.as_slice()),
        found.perms,
    );
    root.write_atomic(abs, &bytes, found.perms)
        .with_context(|| format!("cannot write {}", root.path(abs).display()))?;
    tracing::info!(
        "added {user}:{}:{} to {}",
        r.start,
        r.count,
        root.path(abs).display()
    );
    Ok(())
}

fn write_daemon_json(root: &Root, found: &DaemonFile, bytes: &[u8], undo: &mut Undo) -> Result<()> {
    // Someone may have edited the file since it was read: never overwrite their change.
    let now = root.read_optional(DAEMON_JSON)?;
    if now != found.raw {
        return Err(Conflict::new(format!(
            "{} changed while docker-userns was running; nothing was written to it: run the command again",
            root.path(DAEMON_JSON).display()
        ))
        .into());
    }
    root.ensure_dir("/etc/docker", 0o755)?;
    if let Some(raw) = &found.raw {
        root.backup(DAEMON_JSON, DAEMON_JSON_BACKUP, raw, found.perms)?;
    }
    undo.record(DAEMON_JSON, found.raw.as_deref(), found.perms);
    root.write_atomic(DAEMON_JSON, bytes, found.perms)
        .with_context(|| format!("cannot write {}", root.path(DAEMON_JSON).display()))?;
    tracing::info!("wrote {}", root.path(DAEMON_JSON).display());
    Ok(())
}

/// Applies an `enable` plan and returns the plan as carried out (ranges may differ from the
/// preview when another program changed the files in between, or the new user's uid already
/// owned ranges).
pub fn enable(root: &Root, mut inputs: Inputs, planned: Plan, count: Option<u64>) -> Result<Plan> {
    if !planned.changed {
        return Ok(planned);
    }
    let mut done = planned;
    let mut undo = Undo::default();
    if done.user.create {
        root.ensure_dir("/etc", 0o755)?;
        let acct = account::create(root, &inputs.user)?;
        done.user.uid = Some(acct.uid);
        inputs.account = Some(acct);
    }
    let created = done.user.create.then_some(inputs.user.clone());
    let result = (|| -> Result<()> {
        if done.subuid.add || done.subgid.add || done.user.create {
            root.ensure_dir("/etc", 0o755)?;
            let _lock = shadow_lock::lock(
                root,
                &["/etc/subuid", "/etc/subgid"],
                shadow_lock::DEFAULT_TIMEOUT,
            )?;
            // Drop the unlocked copies before reading the locked ones.
            inputs.subuid = Default::default();
            inputs.subgid = Default::default();
            inputs.subuid = preflight::read_id_file(root, "/etc/subuid")?;
            inputs.subgid = preflight::read_id_file(root, "/etc/subgid")?;
            let replanned = plan::enable(&inputs, count)?;
            write_id_file(
                root,
                "/etc/subuid",
                &inputs.subuid,
                &inputs.user,
                &replanned.subuid,
                &mut undo,
            )?;
            failpoint::hit("apply:after-subuid")?;
            write_id_file(
                root,
                "/etc/subgid",
                &inputs.subgid,
                &inputs.user,
                &replanned.subgid,
                &mut undo,
            )?;
            done.subuid = replanned.subuid;
            done.subgid = replanned.subgid;
        }
        failpoint::hit("apply:before-daemon-json")?;
        if done.daemon_json_change != FileChange::None
            && let Some(bytes) = &done.daemon_bytes
        {
            write_daemon_json(root, &inputs.daemon, bytes, &mut undo)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(done),
        Err(e) => Err(undo.fail(root, e, created.as_deref())),
    }
}

/// Applies a `disable` plan.
pub fn disable(root: &Root, inputs: &Inputs, planned: DisablePlan) -> Result<DisablePlan> {
    if let Some(bytes) = &planned.daemon_bytes {
        let mut undo = Undo::default();
        write_daemon_json(root, &inputs.daemon, bytes, &mut undo)
            .map_err(|e| undo.fail(root, e, None))?;
    }
    Ok(planned)
}
