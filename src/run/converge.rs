//! A changing run from start to end: lock, recover an interrupted run, preflight, plan, apply
//! through the journal, validate, restart, health gate; on any failure the journal rolls back.
//! Under `--root` or with `--no-restart` only the files are converged (still journaled); with
//! `--no-restart` on the live host, what docker's next restart would break (a swarm node,
//! live-restore with running containers) is refused first, as a restart now is.

use std::time::Duration;

use anyhow::Result;

use crate::exit::Conflict;
use crate::failpoint;
use crate::formats::daemon_config::DEFAULT_USER;
use crate::formats::subid::How;
use crate::host::inspect::Impact;
use crate::host::root::Root;
use crate::run::apply;
use crate::run::carry::{self, Carry};
use crate::run::carry::{Walking, carry_load, carry_preview, carry_volumes};
use crate::run::journal::{self, Action, Before, Journal};
use crate::run::note::Note;
use crate::run::plan::{self, Decided, DisablePlan, Plan, Repair};
use crate::run::preflight::{self, Inputs};
use crate::run::repair::{
    held_outside, move_data_root, repair_check, repair_preview, repair_preview_refusal,
};
use crate::run::restart::{self, Docker, Expect, Observed, Validation};
use crate::run::signals::{self, Critical};

use crate::run::engine_checks::{
    decide_restart, guard_running, left_stopped_note, not_restarted_note, refuse_for_next_restart,
};
pub(crate) use crate::run::outcome::{Outcome, RestartPolicy, Want};

/// A change a run converges the host to: `enable` or `disable`.
pub(crate) trait Change {
    /// Its plan.
    type Plan: Decided;
    /// What the journal records.
    const ACTION: Action;
    /// The remap user the inputs are gathered for.
    fn user(&self) -> &str;
    /// Decides (pure, except that a refusal `--repair` would resolve counts the inodes it
    /// would shift).
    fn plan(&self, root: &Root, inputs: &Inputs) -> Result<Self::Plan>;
    /// Writes the plan's files through the journal (and updates the plan to what was done).
    fn apply(
        &self,
        root: &Root,
        journal: &mut Journal,
        inputs: Inputs,
        plan: &mut Self::Plan,
    ) -> Result<()>;
    /// What docker must look like after the restart.
    fn expect(&self, done: &Self::Plan) -> Expect;
    /// The data root the plan moves with its range (`--repair`, `--start`).
    fn repair<'p>(&self, _done: &'p Self::Plan) -> Option<&'p Repair> {
        None
    }
    /// The remap user's ranges ((uid start, count), (gid start, count)) the plan gives it
    /// (None: the plan does not decide them).
    fn ranges(&self, _done: &Self::Plan) -> Option<((u64, u64), (u64, u64))> {
        None
    }
}

/// `enable`.
pub(crate) struct Enable<'a>(pub &'a Want);

impl Change for Enable<'_> {
    type Plan = Plan;
    const ACTION: Action = Action::Enable;
    fn user(&self) -> &str {
        &self.0.user
    }
    fn plan(&self, root: &Root, inputs: &Inputs) -> Result<Plan> {
        planned(root, inputs, self.0)
    }
    fn apply(&self, root: &Root, j: &mut Journal, inputs: Inputs, p: &mut Plan) -> Result<()> {
        apply::enable(root, j, inputs, p, self.0.count, self.0.how())
    }
    fn expect(&self, done: &Plan) -> Expect {
        Expect {
            userns: Some(true),
            ranges: Some((done.subuid.start, done.subgid.start)),
        }
    }
    fn repair<'p>(&self, done: &'p Plan) -> Option<&'p Repair> {
        done.repair.as_ref()
    }
    fn ranges(&self, done: &Plan) -> Option<((u64, u64), (u64, u64))> {
        Some((
            (done.subuid.start, done.subuid.count),
            (done.subgid.start, done.subgid.count),
        ))
    }
}

/// `disable`.
pub(crate) struct Disable;

impl Change for Disable {
    type Plan = DisablePlan;
    const ACTION: Action = Action::Disable;
    fn user(&self) -> &str {
        DEFAULT_USER
    }
    fn plan(&self, _root: &Root, inputs: &Inputs) -> Result<DisablePlan> {
        Ok(plan::disable(inputs)?)
    }
    fn apply(
        &self,
        root: &Root,
        j: &mut Journal,
        inputs: Inputs,
        p: &mut DisablePlan,
    ) -> Result<()> {
        apply::disable(root, j, &inputs, p)
    }
    fn expect(&self, _: &DisablePlan) -> Expect {
        Expect {
            userns: Some(false),
            ranges: None,
        }
    }
}

/// `plan`: what `enable` would do. On the live host it also asks systemd and the engine
/// (read-only) whether docker would restart and what the switch would hide.
pub(crate) fn plan(
    root: &Root,
    want: &Want,
    carry_images: bool,
    carry_volumes: bool,
) -> Result<Outcome<Plan>> {
    let inputs = preflight::gather(root, &want.user)?;
    let mut out = Outcome::new(planned(root, &inputs, want)?);
    out.plan.files = Some(plan::enable_files(&inputs, &out.plan));
    if let Some(r) = &out.plan.repair {
        out.notes.push(repair_preview(root, r)?);
    }
    if !root.is_host() {
        return Ok(out);
    }
    match Docker::connect(root, Duration::from_secs(30), restart::DEFAULT_SETTLE)
        .and_then(|d| d.observe().map(|seen| (d, seen)))
    {
        Ok((mut docker, seen)) => {
            decide_restart(root, &mut docker, &seen, &mut out, true)?;
            if let Some(r) = &out.plan.repair
                && root.is_dir(&r.from)
            {
                out.notes.extend(held_outside(root, &docker, r, true));
            }
            if !seen.active() {
                out.notes.push(left_stopped_note(docker.setup()));
            }
            let moves = out
                .plan
                .repair
                .as_ref()
                .is_some_and(|r| root.is_dir(&r.from));
            if moves && (carry_images || carry_volumes) {
                out.notes.push(Note::CarryRepairKeeps);
            } else if carry_images {
                out.carry = Some(carry_preview(root, &docker, out.restart)?);
            }
            if carry_volumes && out.restart && !moves {
                let (vols, skipped) = carry::survey_volumes(docker.engine())?;
                let c = out.carry.get_or_insert_with(Carry::default);
                c.volumes = vols.into_iter().map(|v| v.name).collect();
                c.skipped.extend(skipped);
            }
        }
        // What enable would refuse (docker listens on no unix socket), plan refuses too.
        Err(e) if e.is::<Conflict>() => return Err(e),
        Err(e) => out.notes.push(Note::DockerStateUnknown {
            error: format!("{e:#}"),
        }),
    }
    Ok(out)
}

/// What `disable` would do (`plan --disable`), changing nothing: the files, and on the live
/// host whether docker restarts and what the switch back does to what it holds.
pub(crate) fn plan_disable(root: &Root) -> Result<Outcome<DisablePlan>> {
    let inputs = preflight::gather(root, Disable.user())?;
    let mut out = Outcome::new(Disable.plan(root, &inputs)?);
    out.plan.files = Some(plan::disable_files(&inputs, &out.plan));
    if !root.is_host() {
        return Ok(out);
    }
    match Docker::connect(root, Duration::from_secs(30), restart::DEFAULT_SETTLE)
        .and_then(|d| d.observe().map(|seen| (d, seen)))
    {
        Ok((mut docker, seen)) => {
            decide_restart(root, &mut docker, &seen, &mut out, false)?;
            if !seen.active() {
                out.notes.push(left_stopped_note(docker.setup()));
            }
        }
        Err(e) if e.is::<Conflict>() => return Err(e),
        Err(e) => out.notes.push(Note::DockerStateUnknown {
            error: format!("{e:#}"),
        }),
    }
    Ok(out)
}

/// The enable plan; a refusal that `--repair` would resolve says what the repair would do.
fn planned(root: &Root, inputs: &Inputs, want: &Want) -> Result<Plan> {
    match plan::enable_how(inputs, want.count, want.how()) {
        Ok(p) => Ok(p),
        Err(refused) if !want.repair => {
            let how = How {
                repair: true,
                ..want.how()
            };
            match plan::enable_how(inputs, want.count, how) {
                Ok(Plan {
                    repair: Some(r), ..
                }) => {
                    let preview = repair_preview_refusal(root, &r)?;
                    Err(Conflict {
                        message: format!("{}; here: {preview}", refused.message),
                        ..refused
                    }
                    .into())
                }
                _ => Err(refused.into()),
            }
        }
        Err(refused) => Err(refused.into()),
    }
}

/// `enable`.
pub(crate) fn enable(root: &Root, want: &Want, policy: &RestartPolicy) -> Result<Outcome<Plan>> {
    converge(root, policy, &Enable(want))
}

/// `disable`.
pub(crate) fn disable(root: &Root, policy: &RestartPolicy) -> Result<Outcome<DisablePlan>> {
    converge(root, policy, &Disable)
}

/// Rolls back (or finishes) an interrupted run on the live host, under the run lock; the
/// note says what was found. For `status`.
pub(crate) fn recover_interrupted(root: &Root, timeout: Duration) -> Result<Option<Note>> {
    let _lock = journal::lock(root, journal::LOCK_WAIT)?;
    let mut docker = Docker::connect(root, timeout, restart::DEFAULT_SETTLE)?;
    journal::recover(root, Some(&mut docker))
}

/// The change, end to end.
fn converge<C: Change>(
    root: &Root,
    policy: &RestartPolicy,
    change: &C,
) -> Result<Outcome<C::Plan>> {
    if !root.is_host() || !policy.restart {
        return converge_without_restart(root, policy, change);
    }
    // One run at a time; an interrupted one is rolled back before anything is read.
    let _lock = journal::lock(root, journal::LOCK_WAIT)?;
    let mut docker = Docker::connect(root, policy.timeout, policy.settle)?;
    let recovered = journal::recover(root, Some(&mut docker))?;
    let seen = docker.observe()?;
    let mut run = surveyed(root, policy, change, &mut docker, &seen, recovered)?;
    if !run.out.changed {
        carry_left::<C>(root, policy, &docker, &mut run.out)?;
        return Ok(run.out);
    }
    let switched = journaled_and_restarted(root, policy, change, &mut docker, &seen, &mut run)?;
    carried::<C>(root, &docker, run, switched, *policy)
}

/// `--root`, or `--no-restart` on the live host: the files only. Whoever restarts docker next
/// (an upgrade, an admin) breaks the same things a restart now would, so the same refusals
/// apply first.
fn converge_without_restart<C: Change>(
    root: &Root,
    policy: &RestartPolicy,
    change: &C,
) -> Result<Outcome<C::Plan>> {
    let guard = |restart: bool| {
        if root.is_host() && restart {
            refuse_for_next_restart(root)
        } else {
            Ok(())
        }
    };
    let mut out = converge_files(root, change, &guard)?;
    if policy.carry_images {
        out.notes.push(Note::CarryImagesNotSwitched);
    }
    Ok(out)
}

/// The old engine's volumes to carry, those left out, and the remap user's ranges before the
/// switch (their owners leave those on `disable`).
type VolumesToCarry = (
    Vec<carry::Volume>,
    Vec<String>,
    Option<preflight::Range>,
    Option<preflight::Range>,
);

/// A run after its first phase: everything read and decided, nothing changed yet.
struct Surveyed<P> {
    out: Outcome<P>,
    /// Taken by `apply`.
    inputs: Option<Inputs>,
    /// docker restarts.
    need: bool,
    /// The inodes of the data root a `--repair` moves (None: it moves none).
    moving: Option<u64>,
    /// `--carry images`: the old engine's images and the containers that use them.
    images: Option<(Vec<carry::Image>, Vec<String>)>,
    /// `--carry volumes`.
    volumes: Option<VolumesToCarry>,
}

/// Phase 1, surveyed: preflight → plan, the refusals, and what the switch moves or carries
/// (a repair's tree walked, the images and the spool's room, the volumes), docker still
/// running and nothing changed.
fn surveyed<C: Change>(
    root: &Root,
    policy: &RestartPolicy,
    change: &C,
    docker: &mut Docker,
    seen: &Observed,
    recovered: Option<Note>,
) -> Result<Surveyed<C::Plan>> {
    let inputs = preflight::gather(root, change.user())?;
    let mut out = Outcome::new(change.plan(root, &inputs)?);
    out.notes.extend(recovered);
    decide_restart(root, docker, seen, &mut out, C::ACTION.wants_userns())?;
    let need = out.restart;
    guard_running(docker, need, policy.stop_running_containers)?;
    if !seen.active() {
        out.notes.push(left_stopped_note(docker.setup()));
    }
    // A repair's tree is surveyed here, docker still running: what cannot be walked, or what
    // the undo could not tell apart, is refused before anything changes.
    let moving = match change.repair(&out.plan) {
        Some(r) => {
            let surveyed = repair_check(root, r, Some(seen.active()), &mut out.notes)?;
            if surveyed.is_some() {
                out.notes.extend(held_outside(root, docker, r, false));
            }
            surveyed
        }
        None => None,
    };
    // --repair moves the data root with everything in it: nothing to carry.
    let carrying = moving.is_none() && need;
    if moving.is_some() && (policy.carry_images || policy.carry_volumes) {
        out.notes.push(Note::CarryRepairKeeps);
    }
    // --carry images: what the old engine holds, surveyed (and the spool's room checked)
    // before anything changes; exported before docker stops, loaded after the gate.
    let images = if policy.carry_images && carrying {
        let (images, containers) = carry::survey(docker.engine())?;
        carry::check_space(root, carry::spool_bytes(docker.engine(), &images)?)?;
        Some((images, containers))
    } else {
        None
    };
    // --carry volumes: the old engine's volumes, and (for disable) the ranges their owners
    // leave, known before anything changes; copied after the gate.
    let volumes = if policy.carry_volumes && carrying {
        let (vols, skipped) = carry::survey_volumes(docker.engine())?;
        let before = preflight::configured(root)?;
        Some((vols, skipped, before.subuid, before.subgid))
    } else {
        None
    };
    Ok(Surveyed {
        out,
        inputs: Some(inputs),
        need,
        moving,
        images,
        volumes,
    })
}

/// Converged already: carries what an earlier switch could not (a kept spool, pending
/// volumes).
fn carry_left<C: Change>(
    root: &Root,
    policy: &RestartPolicy,
    docker: &Docker,
    out: &mut Outcome<C::Plan>,
) -> Result<()> {
    if policy.carry_images {
        out.carry = Some(carry_load(root, docker, Vec::new(), policy.progress));
    }
    if policy.carry_volumes {
        let left = carry::pending_volumes(root)?;
        let want = C::ACTION.wants_userns();
        let recorded = left.iter().find_map(|v| v.into);
        let c = out.carry.get_or_insert_with(Carry::default);
        match recorded {
            // Left by the other direction's carry: that command finishes it.
            Some(i) if i.enabling != want => {
                for v in &left {
                    c.failed.push(format!(
                        "volume {}: left to carry by an earlier `{} --carry volumes`: run that command again to carry it",
                        v.name,
                        if i.enabling { "enable" } else { "disable" }
                    ));
                }
            }
            _ => {
                let ranges = match recorded {
                    Some(i) => Some((i.uids, i.gids)),
                    None => {
                        let now = preflight::configured(root)?;
                        now.subuid
                            .zip(now.subgid)
                            .map(|(u, g)| ((u.start, u.count), (g.start, g.count)))
                    }
                };
                carry_volumes(docker, &left, ranges, want, root, c, walking(*policy));
            }
        }
    }
    if out.carry.as_ref().is_some_and(|c| {
        c.images.is_empty() && c.volumes.is_empty() && c.failed.is_empty() && c.skipped.is_empty()
    }) {
        out.notes.push(Note::CarryNothingWaiting);
    }
    Ok(())
}

/// A run whose switch stands: docker's downtime (None: not restarted), the volumes to carry
/// with the ranges they go into, and the signal-deferring section still held.
struct Switched {
    downtime: Option<u64>,
    volumes: Option<(Vec<carry::Volume>, Vec<String>, Option<Ranges>)>,
    critical: Critical,
}

/// The remap user's (uids, gids) ranges as (start, count) pairs.
type Ranges = ((u64, u64), (u64, u64));

/// Phases 2 and 3, journaled and restarted: apply → validate → export → stop → restart and
/// gate (the repair's rename and shift with docker stopped), every step journaled before it
/// happens; any failure rolls back through the journal. Ends with the journal finished.
fn journaled_and_restarted<C: Change>(
    root: &Root,
    policy: &RestartPolicy,
    change: &C,
    docker: &mut Docker,
    seen: &Observed,
    run: &mut Surveyed<C::Plan>,
) -> Result<Switched> {
    let inputs = run.inputs.as_ref().expect("surveyed holds the inputs");
    let remap_configured = inputs.daemon.config.remap().ok().map(|v| v.is_some());
    let critical = Critical::enter();
    let before = Before {
        docker_active: seen.active(),
        userns: seen.userns,
        remap_configured,
    };
    let mut journal = Journal::begin(root, C::ACTION, before)?;
    let steps = switch_steps(root, policy, change, docker, &mut journal, run);
    let downtime = match steps {
        Ok(downtime) => downtime,
        Err(e) => return Err(journal.rollback(root, Some(docker), e)),
    };
    let out = &mut run.out;
    // The volumes to carry are recorded before the switch is: a run killed from here on is
    // finished by the same command (the unswitched path carries what is pending). Each with
    // the mapping it is carried into, which a later run (after `disable`, say) may no longer
    // find configured.
    let volumes = run.volumes.take().map(|(vols, skipped, u, g)| {
        let ranges = match C::ACTION {
            Action::Enable => change.ranges(&out.plan),
            Action::Disable => u
                .zip(g)
                .map(|(u, g)| ((u.start, u.count), (g.start, g.count))),
        };
        let into = ranges.map(|(uids, gids)| carry::Destination {
            uids,
            gids,
            enabling: C::ACTION.wants_userns(),
        });
        let vols: Vec<carry::Volume> = vols
            .into_iter()
            .map(|v| carry::Volume { into, ..v })
            .collect();
        (vols, skipped, ranges)
    });
    if let Some((vols, ..)) = &volumes
        && let Err(e) = carry::keep_pending(root, vols)
    {
        out.notes.push(Note::CarryPendingNotRecorded {
            error: format!("{e:#}"),
        });
    }
    journal.finish(root)?;
    Ok(Switched {
        downtime,
        volumes,
        critical,
    })
}

/// The journaled steps of [`journaled_and_restarted`]: docker's downtime, None when it was not
/// restarted.
fn switch_steps<C: Change>(
    root: &Root,
    policy: &RestartPolicy,
    change: &C,
    docker: &mut Docker,
    journal: &mut Journal,
    run: &mut Surveyed<C::Plan>,
) -> Result<Option<u64>> {
    let out = &mut run.out;
    let inputs = run.inputs.take().expect("applied once");
    let exec_start = inputs.unit.exec_start.clone();
    if let (Some(_), Some(r)) = (&run.moving, change.repair(&out.plan)) {
        journal.intend_move(root, &r.from, &r.to)?;
    }
    change.apply(root, journal, inputs, &mut out.plan)?;
    failpoint::hit("converge:after-apply")?;
    if !run.need {
        return Ok(None);
    }
    validate(&exec_start, policy.timeout, &mut out.notes)?;
    if let Some((images, _)) = &run.images {
        journal.spool_images(root)?;
        carry::export(root, docker.engine(), images, policy.progress)?;
        failpoint::hit("carry:after-export")?;
    }
    // With live-restore, stopping docker leaves its containers running, out of sight of the
    // daemon that comes back: stop them through the API first (what --yes consents to), and
    // check afterwards that none of them lives on.
    let live_restore = docker.setup().live_restore == Some(true);
    let stopped = if live_restore {
        docker.stop_running(root, journal)?
    } else {
        Vec::new()
    };
    failpoint::hit("converge:after-stop-containers")?;
    // Containers stopped through the API are the journal's to start again on rollback.
    let running = if stopped.is_empty() {
        running_names(docker, out.impact.as_ref())
    } else {
        Vec::new()
    };
    journal.restart_docker(root)?;
    let expect = change.expect(&out.plan);
    let repair = change.repair(&out.plan).cloned();
    let mut moved = None;
    let downtime = docker
        .restart_with(&expect, &mut || {
            if let (Some(total), Some(r)) = (run.moving, &repair) {
                moved = Some(move_data_root(
                    root,
                    journal,
                    r,
                    total,
                    (policy.progress, policy.jobs),
                )?);
            }
            Ok(())
        })
        .map_err(|e| containers_stopped(e, &running))?;
    out.notes.extend(moved);
    let alive = restart::still_alive(&stopped);
    if !alive.is_empty() {
        anyhow::bail!(
            "container processes the old docker ran are still alive after the switch, where the new daemon cannot see or stop them: {}",
            alive.join(", ")
        );
    }
    if !stopped.is_empty() {
        out.notes.push(Note::LiveRestoreStopped {
            containers: stopped.iter().map(|c| c.name.clone()).collect(),
        });
    }
    failpoint::hit("converge:before-finish")?;
    Ok(Some(downtime))
}

/// How carried volumes are walked under `policy`.
fn walking(policy: RestartPolicy) -> Walking {
    Walking {
        jobs: policy.jobs,
        progress: policy.progress,
    }
}

/// Phase 4, carried: the switch stands; carrying can only add to it, and it is resumable (the
/// spool and the pending volumes are recorded), so signals end the process again from here.
fn carried<C: Change>(
    root: &Root,
    docker: &Docker,
    run: Surveyed<C::Plan>,
    switched: Switched,
    policy: RestartPolicy,
) -> Result<Outcome<C::Plan>> {
    let mut out = run.out;
    out.restarted = switched.downtime.is_some();
    out.downtime_ms = switched.downtime;
    drop(switched.critical);
    let volumes = switched.volumes;
    if let Some(sig) = signals::deferred()
        && (run.images.is_some() || volumes.is_some())
    {
        let c = out.carry.get_or_insert_with(Carry::default);
        c.failed.push(format!(
            "signal {sig} arrived during the switch: nothing was carried; run the same command again to carry it"
        ));
        if run.images.is_some() {
            c.spool = Some(root.path(carry::SPOOL).display().to_string());
        }
        return Ok(out);
    }
    if let Some((_, containers)) = run.images {
        if failpoint::hit("carry:before-load").is_err() {
            out.carry = Some(Carry {
                failed: vec!["injected failure at carry:before-load".into()],
                spool: Some(root.path(carry::SPOOL).display().to_string()),
                ..Carry::default()
            });
        } else {
            out.carry = Some(carry_load(root, docker, containers, policy.progress));
        }
    }
    if let Some((vols, skipped, ranges)) = volumes {
        let c = out.carry.get_or_insert_with(Carry::default);
        c.skipped.extend(skipped);
        carry_volumes(
            docker,
            &vols,
            ranges,
            C::ACTION.wants_userns(),
            root,
            c,
            walking(policy),
        );
    }
    Ok(out)
}

/// Files only (`--root`, `--no-restart`): the same journal, no services. On the live host the
/// run lock is taken too, and an interrupted run that touched docker must be rolled back by a
/// full run first.
fn converge_files<C: Change>(
    root: &Root,
    change: &C,
    guard: &dyn Fn(bool) -> Result<()>,
) -> Result<Outcome<C::Plan>> {
    let _lock = if root.is_host() {
        Some(journal::lock(root, journal::LOCK_WAIT)?)
    } else {
        None
    };
    let recovered = journal::recover(root, None)?;
    let inputs = preflight::gather(root, change.user())?;
    let mut out = Outcome::new(change.plan(root, &inputs)?);
    out.notes.extend(recovered);
    // A data root to move needs docker (refused here); without one only the files change.
    if let Some(r) = change.repair(&out.plan) {
        repair_check(root, r, None, &mut out.notes)?;
    }
    if !out.changed {
        return Ok(out);
    }
    guard(out.restart)?;
    let mut journal = Journal::begin(root, C::ACTION, Before::default())?;
    if let Err(e) = change.apply(root, &mut journal, inputs, &mut out.plan) {
        return Err(journal.rollback(root, None, e));
    }
    journal.finish(root)?;
    if out.restart {
        out.notes.push(not_restarted_note(root));
    }
    Ok(out)
}

/// The containers running before the restart (from the impact report, else asked now; empty
/// when unknown).
fn running_names(docker: &Docker, impact: Option<&Impact>) -> Vec<String> {
    match impact {
        Some(i) => i.stopped_by_restart.clone(),
        None => docker
            .running()
            .map(|cs| cs.iter().map(|c| c.name().to_string()).collect())
            .unwrap_or_default(),
    }
}

/// A failed restart's error, saying which running containers it stopped (stopping docker
/// stops them, and the rollback's start of docker brings back only those whose restart policy
/// says so).
fn containers_stopped(err: anyhow::Error, running: &[String]) -> anyhow::Error {
    if running.is_empty() {
        return err;
    }
    err.context(format!(
        "the docker restart failed after it had begun stopping docker, which stops the {} running container(s): {}; docker starts them again only by their restart policy (else `docker start NAME`)",
        running.len(),
        running.join(", ")
    ))
}

/// `dockerd --validate` on the written files, where this dockerd has it.
fn validate(exec_start: &[String], timeout: Duration, notes: &mut Vec<Note>) -> Result<()> {
    notes.push(match restart::validate(exec_start, timeout)? {
        Validation::Ok => Note::ValidateAccepted,
        Validation::Unsupported => Note::ValidateUnsupported,
        Validation::Skipped(why) => Note::ValidateSkipped { why },
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::systemd::UnitState;
    use crate::run::engine_checks::restart_needed;

    fn seen(active: bool, userns: Option<bool>) -> Observed {
        Observed {
            unit: UnitState {
                active_state: if active { "active" } else { "inactive" }.parse().unwrap(),
                ..UnitState::default()
            },
            userns,
        }
    }

    fn repair() -> Repair {
        Repair {
            from: "/var/lib/docker/100000.100000".into(),
            to: "/var/lib/docker/165536.165536".into(),
            uid_from: 100000,
            uid_to: 165536,
            uid_count: 65536,
            gid_from: 100000,
            gid_to: 165536,
            gid_count: 65536,
        }
    }

    #[test]
    fn a_repair_over_owners_already_in_the_target_range_is_refused_before_docker_stops() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        let r = repair();
        let tree = root.host_path(&r.from);
        std::fs::create_dir_all(tree.join("volumes/v/_data/sub")).unwrap();
        std::fs::write(tree.join("volumes/v/_data/sub/mine"), b"x").unwrap();
        std::os::unix::fs::lchown(tree.join("volumes/v/_data/sub/mine"), Some(100005), None)
            .unwrap();
        let mut notes = Vec::new();
        // Only old-range and host owners: the repair may go on, and knows the inode count.
        assert_eq!(
            repair_check(&root, &r, Some(true), &mut notes).unwrap(),
            Some(6)
        );
        // One inode in the new range (the forward walk would leave it, its undo move it).
        let planted = tree.join("volumes/v/_data/sub/planted");
        std::fs::write(&planted, b"x").unwrap();
        std::os::unix::fs::lchown(&planted, Some(170000), Some(170000)).unwrap();
        let err = repair_check(&root, &r, Some(true), &mut notes).unwrap_err();
        let msg = format!("{err:#}");
        assert_eq!(
            crate::exit::code_of(&err),
            crate::exit::Code::Conflict,
            "{msg}"
        );
        assert!(
            msg.contains(&format!(
                "1 inode(s) below {} are owned already by ids of the range --repair moves to (uids 165536..231071 / gids 165536..231071), e.g. {}",
                tree.display(),
                planted.display()
            )),
            "{msg}"
        );
        assert!(msg.contains("-uid +165535 -uid -231072"), "{msg}");
        // Files only (--root here): a move is refused, saying why.
        std::fs::remove_file(&planted).unwrap();
        let err = repair_check(&root, &r, None, &mut notes).unwrap_err();
        assert!(format!("{err:#}").contains("not with --root"), "{err:#}");
    }

    #[test]
    fn a_failed_restart_names_the_containers_it_stopped() {
        let cause = anyhow::anyhow!("timed out after 90 s waiting for stop of docker.service");
        let e = containers_stopped(cause, &["web".into(), "db".into()]);
        let msg = format!("{e:#}");
        assert!(
            msg.contains("stops the 2 running container(s): web, db")
                && msg.contains("timed out after 90 s"),
            "{msg}"
        );
        let plain = containers_stopped(anyhow::anyhow!("timed out"), &[]);
        assert_eq!(format!("{plain:#}"), "timed out");
    }

    #[test]
    fn docker_restarts_only_when_it_runs_and_files_or_the_engine_differ() {
        // Files changed, docker running: restart.
        assert!(restart_needed(&seen(true, Some(false)), true, true));
        // Converged files, engine already remaps: nothing to do.
        assert!(!restart_needed(&seen(true, Some(true)), false, true));
        // Converged files but the engine still runs the old state (after --no-restart).
        assert!(restart_needed(&seen(true, Some(false)), false, true));
        assert!(restart_needed(&seen(true, Some(true)), false, false));
        // The engine did not answer: only file changes decide.
        assert!(!restart_needed(&seen(true, None), false, true));
        assert!(restart_needed(&seen(true, None), true, true));
        // docker not running: never restarted, whatever changed.
        assert!(!restart_needed(&seen(false, None), true, true));
        assert!(!restart_needed(&seen(false, Some(false)), false, true));
    }
}
