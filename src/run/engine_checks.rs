//! The running engine's part of a plan: whether docker restarts, the refusals a restart needs
//! first (running containers, an active swarm, live-restore under `--no-restart`), the image
//! store the switch leads to, and what is said of a docker left stopped.

use crate::run::note::Note;
use std::time::Duration;

use anyhow::Result;

use crate::exit::Conflict;
use crate::formats::daemon_config::{DaemonConfig, PATH as DAEMON_JSON};
use crate::host::inspect;
use crate::host::root::Root;
use crate::host::setup::{self, Found, Setup};
use crate::run::outcome::Outcome;
use crate::run::plan_refusals;
use crate::run::preflight;
use crate::run::restart::{self, Docker, Observed};

/// docker must restart when it runs and either a file changes or the engine is known to
/// remap otherwise than wanted. An engine that does not answer (e.g. `plan` without access to
/// the socket) decides nothing by itself.
pub(crate) fn restart_needed(seen: &Observed, files_changed: bool, want_userns: bool) -> bool {
    seen.active() && (files_changed || seen.userns.is_some_and(|u| u != want_userns))
}

/// Refuses a restart that would stop running containers, unless `yes` consents to it.
pub(crate) fn guard_running(docker: &Docker, restart: bool, yes: bool) -> Result<(), Conflict> {
    if !restart || yes {
        return Ok(());
    }
    let running = docker.running().map_err(|e| {
        Conflict::new(format!(
            "cannot tell whether containers run, which the docker restart would stop ({e}); pass --yes to restart anyway"
        ))
        .kind("containers-running")
    })?;
    if running.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = running.iter().map(|c| c.name()).collect();
    Err(Conflict::new(format!(
        "{} running container(s) would be stopped by the docker restart: {}; stop them first, or pass --yes to restart anyway",
        names.len(),
        names.join(", ")
    ))
    .kind("containers-running"))
}

/// What is said when the files changed and docker was not restarted (`--no-restart`, `--root`).
pub(crate) fn not_restarted_note(root: &Root) -> Note {
    Note::NotRestarted {
        live_host: root.is_host(),
    }
}

/// Refuses a switch on a swarm node: the swarm state lives in the data root the switch moves
/// away from, so docker would come back outside the swarm (moby#39722). `--yes` does not
/// override this.
pub(crate) fn refuse_swarm(setup: &Setup) -> Result<(), Conflict> {
    let Some(state) = setup
        .swarm
        .as_deref()
        .filter(|s| !matches!(*s, "" | "inactive"))
    else {
        return Ok(());
    };
    let manager = setup.swarm_manager == Some(true);
    Err(Conflict::new(format!(
        "this node is in a swarm (Swarm.LocalNodeState {state}{}): switching remapping moves docker's data root, and the node's swarm state with it, so docker would come back outside the swarm{} (moby#39722). Drain the node first (`docker node update --availability drain NODE`), {}then leave the swarm (`docker swarm leave`), run this again, and join the swarm again afterwards; --yes does not override this",
        if manager { ", a manager" } else { "" },
        if manager {
            " and the swarm would lose a raft member"
        } else {
            ""
        },
        if manager {
            "demote it from another manager (`docker node demote NODE`), "
        } else {
            ""
        },
    ))
    .kind("swarm-active"))
}

/// `--no-restart` on the live host, for a change that takes effect at docker's next start:
/// refuses what that restart would break, as a restart now is refused. A swarm node would
/// leave its swarm ([`refuse_swarm`]); with live-restore, running containers would survive
/// the restart as they run now (root on the host when remapping is switched on), out of
/// sight of the daemon that comes back. Without systemd or an answering engine nothing can be
/// known, and nothing is refused (as a restart run decides too).
pub(crate) fn refuse_for_next_restart(root: &Root) -> Result<()> {
    let Ok(mut docker) = Docker::connect(root, Duration::from_secs(30), restart::DEFAULT_SETTLE)
    else {
        return Ok(());
    };
    if !docker.observe().is_ok_and(|seen| seen.active()) || docker.learn().is_err() {
        return Ok(());
    }
    refuse_swarm(docker.setup())?;
    if docker.setup().live_restore == Some(true) {
        let running = docker.running().map_err(|e| {
            Conflict::new(format!(
                "live-restore is on and whether containers run cannot be told ({e}): at docker's next restart they would keep running out of sight of the daemon that comes back; run without --no-restart (with --yes to stop them through the engine API)"
            ))
            .kind("live-restore-containers")
        })?;
        if !running.is_empty() {
            let names: Vec<&str> = running.iter().map(|c| c.name()).collect();
            return Err(Conflict::new(format!(
                "live-restore is on and {} container(s) run: {}. With --no-restart they would survive docker's next restart (an upgrade, an admin) as they run now, root on the host, out of sight of the daemon that comes back (`docker ps -a` and `status` would not show them). Stop them first, or run without --no-restart and with --yes (which stops them through the engine API and checks that none outlives the switch)",
                names.len(),
                names.join(", ")
            ))
            .kind("live-restore-containers")
            .into());
        }
    }
    Ok(())
}

/// Decides whether docker restarts for `out` and, if so, asks the engine for what only it
/// knows, refuses a switch that would lose something (a swarm membership, a data root the
/// remapped root cannot reach), and adds the impact report.
pub(crate) fn decide_restart<P>(
    root: &Root,
    docker: &mut Docker,
    seen: &Observed,
    out: &mut Outcome<P>,
    want_userns: bool,
) -> Result<(), Conflict> {
    let need = restart_needed(seen, out.changed, want_userns);
    out.restart = need;
    out.changed |= need;
    if seen.active() && seen.userns.is_none() {
        out.notes.push(Note::EngineSilent {
            socket: docker.engine().socket().display().to_string(),
        });
    }
    if need {
        if let Err(e) = docker.learn() {
            out.notes.push(Note::EngineUnlearned {
                error: e.to_string(),
            });
        }
        refuse_swarm(docker.setup())?;
        for dir in docker.setup().data_roots() {
            let blocked = preflight::blocked_dirs(root, dir).unwrap_or_default();
            if let Some(b) = blocked.first() {
                let found = Found {
                    path: dir.to_string(),
                    from: docker.setup().data_root_from.clone(),
                };
                return Err(plan_refusals::blocked_data_root(b, &found));
            }
        }
        match inspect::impact(docker.engine(), want_userns) {
            Ok(mut i) => {
                i.image_store = store_switch(root, docker, want_userns);
                out.impact = Some(i);
            }
            Err(e) => out.notes.push(Note::NoImpactReport {
                error: format!("{e:#}"),
            }),
        }
    }
    out.setup = Some(docker.setup().clone());
    Ok(())
}

/// The image store before the switch (the engine's) and after it (predicted: docker 29
/// switches its containerd image store off while remapping is on, and back); None when the
/// engine names no storage driver.
pub(crate) fn store_switch(
    root: &Root,
    docker: &Docker,
    want_userns: bool,
) -> Option<setup::StoreSwitch> {
    let info = docker.engine().info().ok()?;
    let before = info.image_store()?;
    let config = root
        .read_optional(DAEMON_JSON)
        .ok()
        .flatten()
        .and_then(|b| DaemonConfig::parse(&b).ok())
        .unwrap_or_default();
    // The data root remapping off leads to; with remapping on, a graph driver regardless.
    let prior = (!want_userns)
        .then(|| setup::prior_graph_driver(root, &docker.setup().data_root))
        .flatten();
    Some(setup::predict_store(
        &before,
        want_userns,
        &info.server_version,
        &config,
        prior,
    ))
}

/// What a run says about a docker.service it leaves stopped.
pub(crate) fn left_stopped_note(setup: &Setup) -> Note {
    Note::DockerLeftStopped {
        socket_activation: setup.socket_activation,
        socket: setup.engine_socket.clone(),
    }
}
