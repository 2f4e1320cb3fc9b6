//! The whole change on the live host: lock, recover, preflight, plan, apply files, validate,
//! restart, health gate, and rollback when docker does not come back. Under `--root` or with
//! `--no-restart` only the files are converged.

use std::time::Duration;

use anyhow::Result;

use crate::apply;
use crate::cli::{RestartArgs, UserArgs};
use crate::exit::{Conflict, RollbackIncomplete, RolledBack};
use crate::failpoint;
use crate::inspect::{self, Impact};
use crate::plan::{self, Converging, DisablePlan, Plan};
use crate::preflight::{self, DAEMON_JSON};
use crate::restart::{self, Docker, Expect, Observed, Validation};
use crate::root::Root;
use crate::transaction::{self, Phase, Transaction};

/// How long a run waits for another one to finish.
pub const LOCK_WAIT: Duration = Duration::from_secs(120);

/// The files a run may change, saved before it starts.
const FILES: [&str; 3] = ["/etc/subuid", "/etc/subgid", DAEMON_JSON];

/// docker must restart when it runs and either a file changed or the engine is known to
/// remap otherwise than wanted. An engine that does not answer (e.g. `plan` without access to
/// the socket) decides nothing by itself.
fn restart_needed(seen: &Observed, files_changed: bool, want_userns: bool) -> bool {
    seen.active() && (files_changed || seen.userns.is_some_and(|u| u != want_userns))
}

/// Says so when docker runs but its engine could not be asked.
fn note_unknown_engine(seen: &Observed, notes: &mut Vec<String>) {
    if seen.active() && seen.userns.is_none() {
        notes.push("docker.service runs but its engine did not answer on /run/docker.sock (no access?): whether it remaps now is unknown, so only file changes decide the restart".into());
    }
}

fn guard_running(docker: &Docker, restart: bool, yes: bool) -> Result<(), Conflict> {
    if !restart || yes {
        return Ok(());
    }
    let running = docker.running().map_err(|e| {
        Conflict::new(format!(
            "cannot tell whether containers run, which the docker restart would stop ({e}); pass --yes to restart anyway"
        ))
    })?;
    if running.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = running.iter().map(|c| c.name()).collect();
    Err(Conflict::new(format!(
        "{} running container(s) would be stopped by the docker restart: {}; stop them first, or pass --yes to restart anyway",
        names.len(),
        names.join(", ")
    )))
}

fn not_restarted_note(root: &Root) -> String {
    if root.is_host() {
        "docker was not restarted (--no-restart): the change applies at its next start".into()
    } else {
        "--root: services are never touched; docker there applies the change at its next start"
            .into()
    }
}

/// Puts the saved files back after `err` (docker untouched). `rolled_back` is the message when
/// that worked (None: keep `err` as it is); when restoring fails the error says so (exit 6) and
/// the record stays for the next run.
fn abort_files(
    root: &Root,
    txn: Transaction,
    err: anyhow::Error,
    rolled_back: Option<String>,
) -> anyhow::Error {
    match txn.restore_files(root).and_then(|left| txn.finish(root).map(|()| left)) {
        Ok(left) => match rolled_back {
            Some(msg) => err.context(RolledBack(format!("{msg}{}", left_note(&left)))),
            None => err,
        },
        Err(e) => err.context(RollbackIncomplete(format!(
            "failed, and restoring the saved files failed too ({e:#}); they and the record stay in {}: the next docker-userns run retries",
            transaction::DIR
        ))),
    }
}

/// The part of a rollback message about files someone else changed meanwhile.
pub fn left_note(left: &[String]) -> String {
    if left.is_empty() {
        String::new()
    } else {
        format!(
            "; {} changed after this run wrote it and was left as found (compare it with its saved copy)",
            left.join(", ")
        )
    }
}

/// Validates the written daemon.json with dockerd where it can; on rejection restores files.
fn validate(
    root: &Root,
    txn: Transaction,
    exec_start: &[String],
    timeout: Duration,
    notes: &mut Vec<String>,
) -> Result<Transaction> {
    match restart::validate(exec_start, timeout) {
        Ok(Validation::Ok) => {
            notes.push("dockerd --validate accepted the new configuration".into());
            Ok(txn)
        }
        Ok(Validation::Unsupported) => {
            notes.push("this dockerd has no --validate (before 23.0): the health gate after the restart decides".into());
            Ok(txn)
        }
        Err(e) => {
            let files = txn
                .record
                .files
                .iter()
                .map(|f| f.path.clone())
                .collect::<Vec<_>>()
                .join(", ");
            Err(abort_files(
                root,
                txn,
                e,
                Some(format!(
                    "failed, rolled back: {files} restored; docker was not restarted"
                )),
            ))
        }
    }
}

/// Validates the written files, restarts docker and health-gates it for `expect`; on any
/// failure restores the saved files and brings the old docker back. Returns the downtime (ms).
fn restart_step(
    root: &Root,
    docker: &mut Docker,
    txn: Transaction,
    exec_start: &[String],
    opts: &RestartArgs,
    expect: Expect,
    notes: &mut Vec<String>,
) -> Result<u64> {
    let mut txn = validate(
        root,
        txn,
        exec_start,
        Duration::from_secs(opts.timeout),
        notes,
    )?;
    if let Err(e) = txn.written(root, Phase::Restarting) {
        // Without a durable record docker must not be touched: put the files back instead.
        return Err(abort_files(
            root,
            txn,
            e,
            Some("failed, rolled back: the files were restored; docker was not restarted".into()),
        ));
    }
    match docker.restart(&expect) {
        Ok(downtime_ms) => {
            failpoint::hit("converge:before-finish")?;
            txn.finish(root)?;
            Ok(downtime_ms)
        }
        Err(e) => Err(restart::rollback(root, docker, txn, e)),
    }
}

/// On the live host with `--no-restart`: the run lock too, and no converging on top of an
/// interrupted run (its rollback would undo this run's files later). Under `--root`, nothing.
fn files_only_lock(root: &Root) -> Result<Option<transaction::RunLock>> {
    if !root.is_host() {
        return Ok(None);
    }
    let lock = transaction::lock(root, LOCK_WAIT)?;
    if let Some(t) = Transaction::load(root)? {
        return Err(Conflict::new(format!(
            "an interrupted run ({} {}) must be rolled back first: run the command once without --no-restart",
            t.record.action, t.record.id
        ))
        .into());
    }
    Ok(Some(lock))
}

/// Connects to docker, takes the run lock and rolls back an interrupted run.
fn begin(
    root: &Root,
    opts: &RestartArgs,
) -> Result<(transaction::RunLock, Docker, Observed, Option<String>)> {
    let lock = transaction::lock(root, LOCK_WAIT)?;
    let mut docker = Docker::connect(root, Duration::from_secs(opts.timeout))?;
    let recovered = restart::recover(root, &mut docker)?;
    let seen = docker.observe()?;
    Ok((lock, docker, seen, recovered))
}

/// The impact report from the engine, or a note saying why there is none.
fn impact(
    docker: &Docker,
    seen: &Observed,
    enabling: bool,
    notes: &mut Vec<String>,
) -> Option<Impact> {
    if !seen.active() {
        return None;
    }
    match inspect::impact(&docker.engine, enabling) {
        Ok(i) => Some(i),
        Err(e) => {
            notes.push(format!("no impact report: {e:#}"));
            None
        }
    }
}

/// Decides whether docker restarts for `p` and, if so, adds the impact report.
fn decide_restart<P: Converging>(
    docker: &Docker,
    seen: &Observed,
    p: &mut P,
    want_userns: bool,
) -> bool {
    let need = restart_needed(seen, p.changed(), want_userns);
    p.set_restart(need);
    note_unknown_engine(seen, p.notes());
    if need {
        let i = impact(docker, seen, want_userns, p.notes());
        p.set_impact(i);
    }
    need
}

/// `plan`: what `enable` would do. On the live host it also asks systemd and the engine
/// (read-only) whether docker would restart and what the switch would hide.
pub fn plan(root: &Root, user: &UserArgs) -> Result<Plan> {
    let inputs = preflight::gather(root, &user.user)?;
    let mut p = plan::enable(&inputs, user.count)?;
    if !root.is_host() {
        return Ok(p);
    }
    match Docker::connect(root, Duration::from_secs(30))
        .and_then(|d| d.observe().map(|seen| (d, seen)))
    {
        Ok((docker, seen)) => {
            decide_restart(&docker, &seen, &mut p, true);
        }
        Err(e) => p.notes.push(format!(
            "docker's running state is unknown ({e:#}); the plan covers the files only"
        )),
    }
    Ok(p)
}

/// The change `enable` or `disable` makes, end to end: files only under `--root` or with
/// `--no-restart`; on the live host lock, recover, preflight, plan, save, apply, validate,
/// restart, gate, and roll back on failure. `want_userns` is the engine state it leads to.
#[allow(clippy::too_many_arguments)]
fn converge<P: Converging>(
    root: &Root,
    opts: &RestartArgs,
    user: &str,
    action: &str,
    want_userns: bool,
    plan: impl FnOnce(&preflight::Inputs) -> Result<P, Conflict>,
    apply: impl FnOnce(&Root, preflight::Inputs, P) -> Result<P>,
    expect: impl FnOnce(&P) -> Expect,
) -> Result<P> {
    if !root.is_host() || opts.no_restart {
        let _lock = files_only_lock(root)?;
        let inputs = preflight::gather(root, user)?;
        let p = plan(&inputs)?;
        let mut done = apply(root, inputs, p)?;
        if done.restart() {
            done.notes().push(not_restarted_note(root));
        }
        return Ok(done);
    }
    let (_lock, mut docker, seen, recovered) = begin(root, opts)?;
    let inputs = preflight::gather(root, user)?;
    let mut p = plan(&inputs)?;
    p.notes().extend(recovered);
    let need = decide_restart(&docker, &seen, &mut p, want_userns);
    guard_running(&docker, need, opts.yes)?;
    if !seen.active() {
        p.notes().push("docker.service is not running and is left stopped: the change applies at its next start".into());
    }
    if !p.changed() {
        return Ok(p);
    }
    let exec_start = inputs.unit.exec_start.clone();
    let _critical = crate::signals::Critical::enter();
    let txn = Transaction::begin(root, action, &FILES, seen.active(), seen.userns)?;
    let mut done = match apply(root, inputs, p) {
        Ok(d) => d,
        Err(e) => return Err(abort_files(root, txn, e, None)),
    };
    if !need {
        txn.finish(root)?;
        return Ok(done);
    }
    let expect = expect(&done);
    let downtime = restart_step(
        root,
        &mut docker,
        txn,
        &exec_start,
        opts,
        expect,
        done.notes(),
    )?;
    done.set_restarted(downtime);
    Ok(done)
}

/// `enable`.
pub fn enable(root: &Root, user: &UserArgs, opts: &RestartArgs) -> Result<Plan> {
    converge(
        root,
        opts,
        &user.user,
        "enable",
        true,
        |inputs| plan::enable(inputs, user.count),
        |root, inputs, p| apply::enable(root, inputs, p, user.count),
        |done: &Plan| Expect {
            userns: Some(true),
            ranges: Some((done.subuid.start, done.subgid.start)),
        },
    )
}

/// `disable`.
pub fn disable(root: &Root, opts: &RestartArgs) -> Result<DisablePlan> {
    converge(
        root,
        opts,
        crate::daemon_config::DEFAULT_USER,
        "disable",
        false,
        plan::disable,
        |root, inputs, p| apply::disable(root, &inputs, p),
        |_| Expect {
            userns: Some(false),
            ranges: None,
        },
    )
}
