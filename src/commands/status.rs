//! `status`: what docker runs as, whether remapping is configured and in effect, kernel
//! support, unfinished runs, running containers that are root on the host, and the engine's
//! image store with the one the next switch leads to (docker 29 switches its containerd image
//! store off while remapping is on, and back: `setup::predict_store`). Problems
//! ([`PROBLEM_KINDS`]) each come with what to do: the remap user's ranges overlapping or
//! covering accounts, a run record that cannot be read (`journal`), and a process running as
//! host root under a docker shim whose container the running engine does not know
//! (`unknown-root-container`, what an engine restarted with live-restore leaves); and what
//! dockerd will reject or misuse in the `userns-remap` value, of any form, which is reported
//! resolved to its user and group (`formats::remap_value`).
//!
//! A docker.service that failed or is restarting is explained: its last start attempt is read
//! from the journal and the cause named, with dockerd's line and what to do
//! (`service.last_failure`, [`crate::host::unit_log`]).

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::formats::daemon_config::{self, DEFAULT_USER, DaemonConfig};
use crate::formats::remap_value;
use crate::formats::subid::{self, Reserved, Which};
use crate::host::engine::Engine;
use crate::host::inspect;
use crate::host::kernel;
use crate::host::root::Root;
use crate::host::setup::{self, Setup, StoreSwitch};
use crate::host::systemd::{LoadState, Systemd, UnitState};
use crate::host::unit_log::{self, LastFailure};
use crate::run::converge;
use crate::run::journal::{self, Journal};
use crate::run::note::Note;
use crate::run::preflight::{self, Configured, configured};

pub use crate::run::preflight::Range;
use crate::run::restart::SERVICE;

/// docker.service as systemd sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    /// ActiveState.
    pub active_state: String,
    /// SubState.
    pub sub_state: String,
    /// MainPID (0: none).
    pub main_pid: u32,
    /// The user dockerd's main process runs as (from /proc/MainPID/status).
    pub main_pid_user: Option<String>,
    /// NRestarts: automatic restarts since the last start by hand (climbing: crash-looping).
    pub n_restarts: u32,
    /// Result of the last run: success, exit-code, start-limit-hit, ...
    pub result: String,
    /// Why the last start failed, read from the journal, when the unit is failed or
    /// restarting (null otherwise, and when the journal could not be read: see the notes).
    pub last_failure: Option<LastFailure>,
}

/// A running container whose processes are root on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostRoot {
    /// Container name.
    pub name: String,
    /// Why: `--privileged`, `--userns=host`, `--pid=host`, `--net=host`, `no --user`, ...
    pub reasons: Vec<String>,
    /// What to do about it.
    pub advice: String,
}

/// The kinds of [`StatusProblem`], in the order `--prometheus` lists them.
pub const PROBLEM_KINDS: [&str; 8] = [
    OVERLAP,
    COVERS_ACCOUNT,
    JOURNAL,
    UNKNOWN_ROOT,
    remap_value::UNDER_OTHER_NAME,
    remap_value::MISSING,
    remap_value::GROUP_RANGE_IGNORED,
    remap_value::VALUE_REJECTED,
];
const OVERLAP: &str = "remap-range-overlap";
const COVERS_ACCOUNT: &str = "remap-range-covers-account";
/// The run record (/var/lib/docker-userns/transaction.json) cannot be read.
const JOURNAL: &str = "journal";
/// A process running as host root in a container the running engine does not know (left
/// by an earlier engine's containerd shim, as a restart with live-restore leaves them).
const UNKNOWN_ROOT: &str = "unknown-root-container";

/// Something wrong with the remapping as configured, and the command that fixes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusProblem {
    /// `remap-range-overlap` (the remap user's range overlaps another owner's),
    /// `remap-range-covers-account` (it holds an account's id or lies among ordinary
    /// accounts'), `journal` (the record of an interrupted run cannot be read) or
    /// `unknown-root-container` (a container process runs as host root out of the running
    /// engine's sight).
    pub kind: &'static str,
    /// What is wrong, naming the file, line and the other owner.
    pub message: String,
    /// The command that fixes it.
    pub fix: String,
}

/// The result of `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// docker.service (null under --root or without a system bus).
    pub service: Option<Service>,
    /// The engine reports `name=userns` (null when it does not answer).
    pub remapping_active: Option<bool>,
    /// `userns-remap` in daemon.json (null: not set).
    pub remapping_configured: Option<String>,
    /// The remap user that value names, resolved as dockerd resolves it (any form: `default`,
    /// a name, `name:group`, a uid, `uid:gid`).
    pub remap_user: Option<String>,
    /// The group it names (null: not set, or not resolvable).
    pub remap_group: Option<String>,
    /// Its /etc/subuid ranges.
    pub subuid: Option<Range>,
    /// Its /etc/subgid ranges.
    pub subgid: Option<Range>,
    /// The engine's DockerRootDir.
    pub docker_root_dir: Option<String>,
    /// The engine's version.
    pub docker_version: Option<String>,
    /// /proc/sys/user/max_user_namespaces (null under --root or when absent).
    pub max_user_namespaces: Option<u64>,
    /// An unfinished run found (id, action, phase), if any.
    pub unfinished: Option<String>,
    /// Running containers that are root on the host.
    pub host_root_containers: Vec<HostRoot>,
    /// Problems with the remapping as configured (empty: none).
    pub problems: Vec<StatusProblem>,
    /// How docker is set up: where the engine listens, socket activation, the data root and
    /// where it is set, live-restore, swarm state, the engine's image store.
    pub setup: Setup,
    /// The image store now (`before`, the engine's) and the one switching remapping
    /// (`enable` while it is off, `disable` while it is on) would lead to (`after`); null
    /// when the engine was not asked or named no storage driver.
    pub image_store_switch: Option<StoreSwitch>,
    /// Remarks.
    pub notes: Vec<Note>,
}

fn user_name(uid: u32) -> String {
    uzers::get_user_by_uid(uid).map_or_else(
        || uid.to_string(),
        |u| u.name().to_string_lossy().into_owned(),
    )
}

/// Gathers the status. As root on the live host an unfinished run is rolled back first (under
/// the run lock, so a run in progress is waited for, not reported), and everything is read
/// after that.
pub(crate) fn status(root: &Root, is_root: bool) -> Result<Status> {
    let (found, journal_problem, recovered) = journal_state(root, is_root)?;
    let conf = configured(root)?;
    let mut problems = problems(root, &lookup_name(&conf));
    problems.extend(remap_problems(root, &conf));
    problems.extend(journal_problem);
    let mut notes = recovered;
    notes.extend(conf.notes);
    let mut st = Status {
        service: None,
        remapping_active: None,
        remap_user: conf.user,
        remap_group: conf.group,
        remapping_configured: conf.value,
        subuid: conf.subuid,
        subgid: conf.subgid,
        docker_root_dir: None,
        docker_version: None,
        max_user_namespaces: kernel::max_user_namespaces(root),
        unfinished: found,
        host_root_containers: Vec::new(),
        problems,
        setup: Setup::default(),
        image_store_switch: None,
        notes: Vec::new(),
    };
    if st.max_user_namespaces == Some(0) {
        notes.push(Note::UsernsDisabled);
    }
    if !root.is_host() {
        st.setup = setup::read(root, None)?;
        notes.push(Note::RootNotInspected);
        st.notes = notes;
        return Ok(st);
    }
    notes.extend(crate::run::carry::waiting(root));
    if st.unfinished.is_some() {
        notes.push(Note::Unfinished);
    }
    ask_services(root, &mut st, &mut notes)?;
    st.notes = notes;
    Ok(st)
}

/// The run record: the unfinished run it names (after rolling it back first, as root on the
/// live host), the problem when it cannot be read, and what the rollback said.
fn journal_state(
    root: &Root,
    is_root: bool,
) -> Result<(Option<String>, Option<StatusProblem>, Vec<Note>)> {
    // A record that cannot be read is a problem of its own (enable and disable refuse to run
    // until it is dealt with), never "no unfinished run".
    let mut journal_problem = None;
    let mut unfinished = |root: &Root| match Journal::load(root) {
        Ok(found) => found.map(|j| {
            let r = j.record();
            format!("{} {} (phase {:?})", r.action.name(), r.id, r.phase())
        }),
        Err(e) => {
            journal_problem = Some(StatusProblem {
                kind: JOURNAL,
                message: format!(
                    "the record of an interrupted run, {}, cannot be read ({:#}): whatever that run changed is not known, and enable and disable refuse to run",
                    root.path(journal::RECORD).display(),
                    e.root_cause()
                ),
                fix: format!(
                    "compare the files it protects (/etc/docker/daemon.json, /etc/subuid, /etc/subgid, /etc/passwd, /etc/group) with the copies saved in {}, restore what a run left half-changed, then remove {}",
                    root.path(journal::DIR).display(),
                    root.path(journal::RECORD).display()
                ),
            });
            None
        }
    };
    let mut recovered = Vec::new();
    let mut found = unfinished(root);
    if root.is_host() && is_root && found.is_some() {
        // The record may belong to a run still in progress: recover_interrupted waits for
        // its lock and finds nothing left to do when it finished. Read again afterwards.
        if let Some(note) = converge::recover_interrupted(root, Duration::from_secs(90))? {
            recovered.push(note);
        }
        found = unfinished(root);
    }
    Ok((found, journal_problem, recovered))
}

/// docker.service as systemd sees it, the setup, and (when docker runs) the engine.
fn ask_services(root: &Root, st: &mut Status, notes: &mut Vec<Note>) -> Result<()> {
    let sd = Systemd::connect();
    let mut service_down = None;
    let unit = match &sd {
        Ok(sd) => sd.unit_state(SERVICE).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match unit {
        Ok(u) if u.load_state == LoadState::Loaded => {
            if !u.is_running() {
                service_down = Some(format!("{}/{}", u.active_state, u.sub_state));
            }
            let last_failure = explain_failure(root, st, &u, notes);
            st.service = Some(Service {
                main_pid_user: (u.main_pid != 0)
                    .then(|| kernel::uid_of_pid(u.main_pid).map(user_name))
                    .flatten(),
                active_state: u.active_state.to_string(),
                sub_state: u.sub_state,
                main_pid: u.main_pid,
                n_restarts: u.n_restarts,
                result: u.result,
                last_failure,
            });
        }
        Ok(u) => notes.push(Note::ServiceNotLoaded {
            load_state: u.load_state.to_string(),
        }),
        Err(error) => notes.push(Note::SystemdUnreachable { error }),
    }
    st.setup = setup::read(root, sd.as_ref().ok())?;
    // Read-only means services too: with docker.service down, a connection to the socket
    // would start it (socket activation), so the engine is not asked.
    if let Some(state) = service_down {
        notes.push(Note::EngineNotAskedDown {
            state,
            socket_activation: st.setup.socket_activation,
            socket: st.setup.engine_socket.clone(),
        });
    } else if let Some(socket) = st.setup.engine_socket.clone() {
        ask_engine(root, st, &socket, notes);
    } else if let Some(why) = &st.setup.engine_problem {
        notes.push(Note::EngineNotAsked { why: why.clone() });
    }
    Ok(())
}

/// docker.service's last failed start from the journal, when the unit's state shows one; a
/// journal that cannot be read is a note.
fn explain_failure(
    root: &Root,
    st: &Status,
    u: &UnitState,
    notes: &mut Vec<Note>,
) -> Option<LastFailure> {
    unit_log::wants_reading(u)?;
    let ctx = failure_context(root, st);
    match unit_log::last_failure(u, &ctx) {
        Ok(found) => found,
        Err(why) => {
            notes.push(Note::FailureUnread {
                unit: unit_log::UNIT.to_string(),
                active_state: u.active_state.to_string(),
                sub_state: u.sub_state.to_string(),
                why: why.to_string(),
            });
            None
        }
    }
}

/// What the advice on a failed start needs: the value and its user, which of /etc/subuid and
/// /etc/subgid have the user's line, a /etc/subgid line of the value's group part, and where
/// a `--userns-remap` flag is passed.
fn failure_context(root: &Root, st: &Status) -> unit_log::Context {
    let group = st
        .remapping_configured
        .as_deref()
        .and_then(|v| v.split_once(':'))
        .map(|(_, g)| g.to_string());
    let group_subgid_line = group.and_then(|g| {
        let f = preflight::read_id_file(root, Which::SubGid.path()).ok()?;
        let e = f.file.entries.iter().find(|e| f.file.owner(e) == g)?;
        Some(format!(
            "{}:{}: {g}:{}:{}",
            Which::SubGid.path(),
            e.line,
            e.start,
            e.count
        ))
    });
    let flag_origins = crate::host::docker_unit::scan(root)
        .map(|u| u.remap_flags.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    unit_log::Context {
        value: st.remapping_configured.clone(),
        user: st.remap_user.clone(),
        has_subuid: st.subuid.is_some(),
        has_subgid: st.subgid.is_some(),
        group_subgid_line,
        flag_origins,
    }
}

/// Fills in what the engine says: remapping, data root, version, setup facts, and the
/// containers that run as host root.
fn ask_engine(root: &Root, st: &mut Status, socket: &str, notes: &mut Vec<Note>) {
    let engine = Engine::new(socket, Duration::from_secs(5));
    let info = match engine.info() {
        Ok(info) => info,
        Err(e) => {
            notes.push(Note::EngineError {
                error: e.to_string(),
            });
            return;
        }
    };
    let on = info.userns();
    st.setup.learn(&info);
    st.remapping_active = Some(on);
    st.docker_root_dir = Some(info.docker_root_dir.clone());
    st.docker_version = Some(info.server_version.clone());
    if let Some(before) = info.image_store() {
        let config = root
            .read_optional(daemon_config::PATH)
            .ok()
            .flatten()
            .and_then(|b| DaemonConfig::parse(&b).ok())
            .unwrap_or_default();
        let prior = on
            .then(|| setup::prior_graph_driver(root, &st.setup.data_root))
            .flatten();
        let sw = setup::predict_store(&before, !on, &info.server_version, &config, prior);
        if sw.switches {
            notes.push(Note::ImageStoreSwitch {
                remapping: on,
                before: sw.before.clone(),
                after: sw.after.clone(),
                why: sw.why.clone(),
            });
        }
        st.image_store_switch = Some(sw);
    }
    match inspect::containers(&engine) {
        Ok(all) => {
            st.host_root_containers = inspect::host_root(&all, on)
                .into_iter()
                .map(|(name, reasons)| {
                    let ns = reasons.iter().any(|r| r.starts_with("--"));
                    HostRoot {
                        advice: if ns {
                            "uses the host's namespaces: root inside is root on the host even with remapping; drop those flags if it does not need them".into()
                        } else {
                            "runs as root without remapping: run it with --user UID:GID, or turn remapping on (docker-userns enable)".into()
                        },
                        name,
                        reasons,
                    }
                })
                .collect();
            let known: Vec<String> = all.iter().map(|c| c.id.clone()).collect();
            st.problems.extend(
                inspect::unknown_root(&known)
                    .into_iter()
                    .map(unknown_root_problem),
            );
        }
        Err(e) => notes.push(Note::ContainersUnlisted {
            error: format!("{e:#}"),
        }),
    }
    if configured_differs(st, on) {
        notes.push(Note::ConfigDisagrees);
    }
    if info.swarm.member() {
        notes.push(Note::SwarmMember {
            state: info.swarm.local_node_state.to_string(),
            manager: info.swarm.control_available,
        });
    }
    if let Some(state_file) = setup::swarm_left_behind(&info) {
        notes.push(Note::SwarmLeftBehind { state_file });
    }
}

/// A container process the engine does not know, running as host root.
fn unknown_root_problem(u: inspect::UnknownRoot) -> StatusProblem {
    StatusProblem {
        kind: UNKNOWN_ROOT,
        message: format!(
            "process {} ({}) runs as host root (uid 0) in container {}, which the running engine does not know (its containerd shim, process {}, is docker's): `docker ps -a` does not list it and docker cannot stop it; an engine restarted with live-restore after remapping was switched leaves its containers so",
            u.pid,
            u.command,
            inspect::short_id(&u.container_id),
            u.shim_pid
        ),
        fix: format!(
            "stop it: `kill {}` (then `kill -9 {}` if it does not exit; its shim exits with it); to switch remapping on a live-restore host, use enable/disable with --yes and without --no-restart, which stop the containers through the engine first",
            u.pid, u.pid
        ),
    }
}

fn lookup_name(conf: &Configured) -> String {
    conf.user
        .clone()
        .unwrap_or_else(|| DEFAULT_USER.to_string())
}

/// The remap user's ranges overlapping another owner's or covering an account's ids (what
/// dockerd 28 and later allocate for itself next to a regular user's range).
fn problems(root: &Root, user: &str) -> Vec<StatusProblem> {
    let uid = crate::host::account::lookup(root, user)
        .ok()
        .flatten()
        .map(|a| a.uid);
    let defs = preflight::read_login_defs(root).unwrap_or_default();
    let Ok(ids) = preflight::read_account_ids(root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (which, user_max, accounts) in [
        (Which::SubUid, defs.uid_max, &ids.uids),
        (Which::SubGid, defs.gid_max, &ids.gids),
    ] {
        let Ok(f) = preflight::read_id_file(root, which.path()) else {
            continue;
        };
        let reserved = Reserved {
            which,
            user_max: Some(user_max),
            accounts,
        };
        for p in subid::user_problems(&f.file, which.path(), user, uid, reserved) {
            out.push(StatusProblem {
                kind: if p.kind == "overlap" {
                    OVERLAP
                } else {
                    COVERS_ACCOUNT
                },
                message: format!("{}:{}: {}", root.path(&p.file).display(), p.line, p.message),
                fix: format!(
                    "docker-userns enable --repair{} --yes (moves the range, renames the remapped data root and shifts its owners; docker restarts)",
                    if user == DEFAULT_USER {
                        String::new()
                    } else {
                        format!(" --user {user}")
                    }
                ),
            });
        }
    }
    out
}

/// The rest of a fix when docker failed to start with the value: enable leaves a stopped
/// docker stopped.
const STOPPED: &str = "; when docker.service is not running (dockerd refused the value), enable leaves it stopped: then run `systemctl reset-failed docker.service` and `systemctl start docker.service`, and `docker-userns verify`";

/// What dockerd will reject or misuse about the configured value (`remap_value` kinds), each
/// with the command that fixes it.
fn remap_problems(root: &Root, conf: &Configured) -> Vec<StatusProblem> {
    let user = conf.user.as_deref().unwrap_or(DEFAULT_USER);
    let with_user = if user == DEFAULT_USER {
        String::new()
    } else {
        format!(" --user {user}")
    };
    preflight::remap_problems(root, conf)
        .unwrap_or_default()
        .into_iter()
        .map(|p| StatusProblem {
            fix: match p.kind {
                remap_value::UNDER_OTHER_NAME => format!(
                    "docker-userns enable --repair{with_user} (gives that line to {user}, same range; a running docker restarts){STOPPED}"
                ),
                remap_value::MISSING => format!(
                    "docker-userns enable{with_user} (adds a free range for {user}; a running docker restarts){STOPPED}"
                ),
                remap_value::GROUP_RANGE_IGNORED => format!(
                    "nothing breaks: container gids map to {user}'s range; drop the group part or the group's line to avoid the confusion"
                ),
                _ => "docker-userns disable (removes the value), then docker-userns enable --user NAME with an existing system user".to_string(),
            },
            message: if p.line > 0 {
                format!("{}:{}: {}", root.path(&p.file).display(), p.line, p.message)
            } else {
                format!("{}: {}", root.path(&p.file).display(), p.message)
            },
            kind: p.kind,
        })
        .collect()
}

fn configured_differs(st: &Status, active: bool) -> bool {
    st.remapping_configured.is_some() != active
}

/// A one-word answer for the human summary.
pub(crate) fn headline(st: &Status) -> String {
    let mut h = headline_state(st);
    if let Some(f) = st.service.as_ref().and_then(|s| s.last_failure.as_ref()) {
        h.push_str(&format!("; docker does not start: {}", f.summary));
    }
    if !st.problems.is_empty() {
        h.push_str(&format!(
            ", with {} problem(s) (see below)",
            st.problems.len()
        ));
    }
    h
}

fn headline_state(st: &Status) -> String {
    match (st.remapping_active, &st.remapping_configured) {
        (Some(true), _) => format!(
            "remapping is ON (container root = host uid {})",
            st.subuid
                .as_ref()
                .map_or("?".into(), |r| r.start.to_string())
        ),
        (Some(false), Some(_)) => {
            "remapping is configured but NOT in effect (restart docker)".into()
        }
        (Some(false), None) => "remapping is OFF: root in a container is root on the host".into(),
        (None, Some(v)) => {
            format!("remapping is configured (\"userns-remap\": {v:?}); the engine was not asked")
        }
        (None, None) => "remapping is not configured".into(),
    }
}
