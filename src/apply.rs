//! Applying a plan: the only module that writes. Order: user, ranges (under shadow's locks,
//! re-decided on the locked content), daemon.json last, since that is what turns remapping on.

use anyhow::{Context, Result};

use crate::account;
use crate::exit::Conflict;
use crate::plan::{self, DisablePlan, FileChange, Plan, RangePlan};
use crate::preflight::{self, DAEMON_JSON, DaemonFile, IdFile, Inputs};
use crate::root::Root;
use crate::shadow_lock;

/// Where the previous daemon.json is kept before each rewrite.
pub const DAEMON_JSON_BACKUP: &str = "/etc/docker/daemon.json.docker-userns-backup";

fn write_id_file(root: &Root, abs: &str, found: &IdFile, user: &str, r: &RangePlan) -> Result<()> {
    if !r.add {
        return Ok(());
    }
    let (start, count) = (&r.start, &r.count);
    if found.exists {
        root.backup(abs, &format!("{abs}-"), &found.file.raw, found.perms)?;
    }
    let bytes = found.file.with_appended(user, *start, *count);
    root.write_atomic(abs, &bytes, found.perms)
        .with_context(|| format!("cannot write {}", root.path(abs).display()))?;
    tracing::info!(
        "added {user}:{start}:{count} to {}",
        root.path(abs).display()
    );
    Ok(())
}

fn write_daemon_json(root: &Root, found: &DaemonFile, bytes: &[u8]) -> Result<()> {
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
    root.write_atomic(DAEMON_JSON, bytes, found.perms)
        .with_context(|| format!("cannot write {}", root.path(DAEMON_JSON).display()))?;
    tracing::info!("wrote {}", root.path(DAEMON_JSON).display());
    Ok(())
}

/// Applies an `enable` plan and returns the plan as carried out (ranges may differ from the
/// preview when another program changed the files in between, or the new user's uid already
/// owned ranges).
pub fn enable(root: &Root, inputs: &Inputs, planned: Plan, count: Option<u64>) -> Result<Plan> {
    if !planned.changed {
        return Ok(planned);
    }
    let mut inputs = inputs.clone();
    let mut done = planned;
    if done.user.create {
        root.ensure_dir("/etc", 0o755)?;
        let acct = account::create(root, &inputs.user)?;
        done.user.uid = Some(acct.uid);
        inputs.account = Some(acct);
    }
    if done.subuid.add || done.subgid.add || done.user.create {
        root.ensure_dir("/etc", 0o755)?;
        let _lock = shadow_lock::lock(
            root,
            &["/etc/subuid", "/etc/subgid"],
            shadow_lock::DEFAULT_TIMEOUT,
        )?;
        inputs.subuid = preflight::read_id_file(root, "/etc/subuid")?;
        inputs.subgid = preflight::read_id_file(root, "/etc/subgid")?;
        let replanned = plan::enable(&inputs, count)?;
        write_id_file(
            root,
            "/etc/subuid",
            &inputs.subuid,
            &inputs.user,
            &replanned.subuid,
        )?;
        write_id_file(
            root,
            "/etc/subgid",
            &inputs.subgid,
            &inputs.user,
            &replanned.subgid,
        )?;
        done.subuid = replanned.subuid;
        done.subgid = replanned.subgid;
    }
    if done.daemon_json_change != FileChange::None
        && let Some(bytes) = &done.daemon_bytes
    {
        write_daemon_json(root, &inputs.daemon, bytes)?;
    }
    Ok(done)
}

/// Applies a `disable` plan.
pub fn disable(root: &Root, inputs: &Inputs, planned: DisablePlan) -> Result<DisablePlan> {
    if let Some(bytes) = &planned.daemon_bytes {
        write_daemon_json(root, &inputs.daemon, bytes)?;
    }
    Ok(planned)
}
