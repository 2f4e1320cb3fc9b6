//! What a run tells the operator beside its result: typed [`Note`]s, made where the fact is
//! found and rendered only in `report.rs` (the text, and the `notes` strings of `--json`; the
//! two repair-preview sentences are [`Note::repair_preview_words`], which the refusal that
//! suggests `--repair` says too);
//! `--json` carries them as they are too, in `facts`, each with its `kind`.
//!
//! Paths are kept as shown (inside the root, `--root`'s prefix included), numbers as numbers.

use serde::{Deserialize, Serialize};

/// One remark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Note {
    // The plan (run/plan.rs).
    /// docker.service was not found.
    DockerNotInstalled,
    /// docker.service is masked.
    DockerMasked,
    /// No group of the remap user's name: dockerd would reject the value.
    NoRemapGroup {
        /// The remap user.
        user: String,
        /// The value written.
        value: String,
    },
    /// `--repair` found nothing to repair.
    RepairNothing {
        /// The remap user.
        user: String,
    },
    /// A range of fewer than 65536 ids.
    FewIds,
    /// A range line owned by a uid no account has, which useradd may give the new user.
    OrphanRangeLine {
        /// /etc/subuid or /etc/subgid.
        path: String,
        /// Its 1-based line.
        line: usize,
        /// The owner uid on that line.
        uid: u32,
        /// The user to be created.
        user: String,
    },
    /// `--repair` gives another owner's line to the remap user.
    RepairRenamesLine {
        /// The file.
        file: String,
        /// Its 1-based line.
        line: usize,
        /// The owner named there now.
        owner: String,
        /// The remap user.
        user: String,
    },
    /// `disable`: what was made remapped stays in the remapped data root.
    DisableLeavesData,

    // The files read (run/preflight.rs).
    /// daemon.json is a symbolic link.
    DaemonJsonSymlink {
        /// daemon.json.
        path: String,
        /// The link's target as written.
        target: String,
    },
    /// The link's target does not parse.
    DaemonJsonTargetInvalid {
        /// The target.
        path: String,
        /// The parser's error.
        error: String,
    },
    /// The link's target does not exist.
    DaemonJsonTargetMissing {
        /// The target.
        path: String,
    },
    /// The link's target cannot be read.
    DaemonJsonTargetUnreadable {
        /// Why.
        error: String,
    },

    // docker as found (run/engine_checks.rs, run/converge.rs).
    /// docker.service runs, but its engine did not answer.
    EngineSilent {
        /// The socket asked.
        socket: String,
    },
    /// The engine did not say how it runs.
    EngineUnlearned {
        /// Why.
        error: String,
    },
    /// No impact report.
    NoImpactReport {
        /// Why.
        error: String,
    },
    /// docker's running state is unknown: the plan covers the files only.
    DockerStateUnknown {
        /// Why.
        error: String,
    },
    /// docker.service is not running and is left stopped.
    DockerLeftStopped {
        /// docker.socket starts it on the first connection.
        socket_activation: bool,
        /// The socket it listens on (null: unknown).
        socket: Option<String>,
    },
    /// The files changed and docker was not restarted.
    NotRestarted {
        /// On the live host (`--no-restart`), else under `--root`.
        live_host: bool,
    },
    /// `dockerd --validate` accepted the new configuration.
    ValidateAccepted,
    /// This dockerd has no `--validate`.
    ValidateUnsupported,
    /// `dockerd --validate` was not run.
    ValidateSkipped {
        /// Why.
        why: String,
    },
    /// With live-restore, the running containers were stopped through the API first.
    LiveRestoreStopped {
        /// Their names.
        containers: Vec<String>,
    },
    /// An interrupted run had restarted docker as intended: its record was cleared.
    RecoveredFinished {
        /// `enable` or `disable`.
        action: String,
        /// The run's id.
        id: String,
    },
    /// An interrupted run was rolled back first.
    RecoveredRolledBack {
        /// `enable` or `disable`.
        action: String,
        /// The run's id.
        id: String,
        /// What it was doing when it stopped.
        doing: String,
        /// Files changed after the run wrote them, left as found.
        left: Vec<String>,
        /// A data root a docker started meanwhile made under the repair's new name.
        stray: Option<StrayDataRoot>,
    },

    // --repair (run/repair.rs).
    /// `--repair` moves the range; there is no remapped data root to move.
    RepairNoDataRoot {
        /// The data root that would move.
        from: String,
        /// The new range's first uid.
        uid_to: u64,
        /// Its size.
        uid_count: u64,
    },
    /// What `--repair` will do.
    RepairWill {
        /// The data root.
        from: String,
        /// Its new name.
        to: String,
        /// Inodes below it.
        inodes: u64,
        /// Old first uid.
        uid_from: u64,
        /// Old first gid.
        gid_from: u64,
        /// New first uid.
        uid_to: u64,
        /// New first gid.
        gid_to: u64,
    },
    /// What `--repair` did.
    RepairDone {
        /// The data root.
        from: String,
        /// Its new name.
        to: String,
        /// Inodes shifted.
        shifted: u64,
        /// Inodes walked.
        inodes: u64,
        /// Old first uid.
        uid_from: u64,
        /// Old first gid.
        gid_from: u64,
        /// New first uid.
        uid_to: u64,
        /// New first gid.
        gid_to: u64,
        /// Inodes owned outside the old range, left as they were.
        outside: u64,
        /// setuid/setgid bits kept.
        setid_restored: u64,
        /// File capabilities kept.
        caps_restored: u64,
        /// ACL entries shifted.
        acl_entries_shifted: u64,
        /// Other filesystems mounted below, not entered.
        other_filesystems: Vec<String>,
    },
    /// Host directories the engine uses from outside the data root keep the old range.
    RepairHeldOutside {
        /// Old first uid.
        uid_from: u64,
        /// Old first gid.
        gid_from: u64,
        /// The directories.
        dirs: Vec<HeldDir>,
        /// Said by `plan`, before the repair.
        planning: bool,
        /// New minus old first uid.
        uid_delta: i64,
        /// New minus old first gid.
        gid_delta: i64,
    },
    /// The volumes could not be listed: those with bind options keep their owners.
    RepairVolumesUnlisted {
        /// Why.
        error: String,
    },
    /// The containers could not be listed: their bind mounts keep their owners.
    RepairContainersUnlisted {
        /// Why.
        error: String,
    },

    // --carry (run/converge.rs, run/carry).
    /// `--repair` keeps what docker holds: nothing to carry.
    CarryRepairKeeps,
    /// `--carry images` without a switch on the live host.
    CarryImagesNotSwitched,
    /// Not switched, and no earlier carry waits.
    CarryNothingWaiting,
    /// The volumes to carry could not be recorded for a later run.
    CarryPendingNotRecorded {
        /// Why.
        error: String,
    },
    /// An earlier `--carry` left something to carry.
    CarryWaiting {
        /// Images in the spool.
        images: usize,
        /// The spool.
        spool: String,
        /// Volumes recorded.
        volumes: usize,
        /// Where they are recorded.
        pending: String,
    },

    // status, verify (commands/).
    /// user.max_user_namespaces = 0.
    UsernsDisabled,
    /// `--root`: services and the engine are not inspected.
    RootNotInspected,
    /// An interrupted run left its record.
    Unfinished,
    /// docker.service's load state is not `loaded`.
    ServiceNotLoaded {
        /// Its load state.
        load_state: String,
    },
    /// systemd could not be asked.
    SystemdUnreachable {
        /// Why.
        error: String,
    },
    /// The engine was not asked: docker.service is down.
    EngineNotAskedDown {
        /// `ActiveState/SubState`.
        state: String,
        /// docker.socket would start it.
        socket_activation: bool,
        /// Its socket (null: unknown).
        socket: Option<String>,
    },
    /// The engine was not asked: no socket it can be reached on.
    EngineNotAsked {
        /// Why.
        why: String,
    },
    /// Why the unit failed was not read from the journal.
    FailureUnread {
        /// The unit.
        unit: String,
        /// Its ActiveState.
        active_state: String,
        /// Its SubState.
        sub_state: String,
        /// Why.
        why: String,
    },
    /// The engine's answer was an error.
    EngineError {
        /// The error.
        error: String,
    },
    /// The image store changes with the switch.
    ImageStoreSwitch {
        /// Remapping is on now.
        remapping: bool,
        /// The store now.
        before: String,
        /// The store after the switch.
        after: String,
        /// Why.
        why: String,
    },
    /// The containers could not be listed.
    ContainersUnlisted {
        /// Why.
        error: String,
    },
    /// daemon.json and the running engine disagree.
    ConfigDisagrees,
    /// This node is in a swarm (status).
    SwarmMember {
        /// Swarm.LocalNodeState.
        state: String,
        /// A manager.
        manager: bool,
    },
    /// This node is in a swarm (verify).
    VerifySwarmMember {
        /// Swarm.LocalNodeState.
        state: String,
    },
    /// Swarm state from before remapping was turned on is left in the old data root.
    SwarmLeftBehind {
        /// The state file.
        state_file: String,
    },
    /// verify found no local image to run its checks with.
    VerifyNoImage {
        /// The images looked for.
        looked_for: Vec<String>,
    },
}

impl Note {
    /// The words of what a repair would do ([`Note::RepairNoDataRoot`], [`Note::RepairWill`]):
    /// the report says them, and so does the refusal that suggests `--repair` (an error's
    /// message, made in the run layer); None for every other kind.
    pub(crate) fn repair_preview_words(&self) -> Option<String> {
        Some(match self {
            Note::RepairNoDataRoot {
                from,
                uid_to,
                uid_count,
            } => format!(
                "--repair moves the range to {uid_to}:{uid_count}; no remapped data root exists at {from} (nothing to rename or shift)"
            ),
            Note::RepairWill {
                from,
                to,
                inodes,
                uid_from,
                gid_from,
                uid_to,
                gid_to,
            } => format!(
                "--repair stops docker, renames {from} to {to} and shifts the owners of its {inodes} inodes from uids {uid_from}.. / gids {gid_from}.. to {uid_to}.. / {gid_to}.., then starts docker and health-gates it"
            ),
            _ => return None,
        })
    }
}

/// A data root made by a docker started during an interrupted repair, under the new name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrayDataRoot {
    /// The directory that docker made (left as found).
    pub(crate) made: String,
    /// The data root the repair had not moved yet.
    pub(crate) not_moved: String,
}

/// A host directory the engine uses from outside its data root, with owners of the old range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldDir {
    /// The directory (or file).
    pub(crate) dir: String,
    /// What uses it (`volume NAME`, `container NAME: DEST`), and why it was not surveyed.
    pub(crate) by: Vec<String>,
    /// Inodes in the old range (0: not surveyed).
    pub(crate) inodes: u64,
}
