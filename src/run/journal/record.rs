//! The on-disk record of a run: what it converges to, and every step taken, each before it
//! happens (the paths of the state directory, the step types, the record and its version).

use std::time::Duration;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::host::root::Perms;
use crate::host::shift;

/// The state directory.
pub(crate) const DIR: &str = "/var/lib/docker-userns";
/// The journal of the run in progress.
pub(crate) const RECORD: &str = "/var/lib/docker-userns/transaction.json";
/// Where `--carry images` spools the exported images.
pub(crate) const SPOOL: &str = "/var/lib/docker-userns/carry";
/// The lock file held for a whole run.
pub(crate) const LOCK: &str = "/var/lib/docker-userns/lock";
/// How long a run waits for another one to finish.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(120);

/// What a run converges to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Action {
    /// Remapping on.
    Enable,
    /// Remapping off.
    Disable,
}

impl Action {
    /// The command's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Action::Enable => "enable",
            Action::Disable => "disable",
        }
    }

    /// Whether the engine remaps once the action is done.
    pub(crate) fn wants_userns(self) -> bool {
        self == Action::Enable
    }
}

/// How far a run got, as derived from its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Files are being written; docker has not been touched.
    Writing,
    /// Running containers are being stopped through the engine API.
    StoppingContainers,
    /// docker is being stopped and started with the new files.
    Restarting,
}

impl Phase {
    /// For messages: "stopped while ...".
    pub(crate) fn doing(self) -> &'static str {
        match self {
            Phase::Writing => "writing files",
            Phase::StoppingContainers => "stopping containers",
            Phase::Restarting => "restarting docker",
        }
    }
}

/// A file the run writes, and what it held before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileStep {
    /// Path inside the root.
    pub(crate) path: String,
    /// False when the file did not exist (undo removes it).
    pub(crate) existed: bool,
    /// Mode bits before.
    pub(crate) mode: u32,
    /// Owner before.
    pub(crate) uid: u32,
    /// Group before.
    pub(crate) gid: u32,
    /// Where the old content is kept (inside the root).
    pub(crate) backup: String,
    /// What the run left in the file, once written (None: the write may not have happened).
    #[serde(default)]
    pub(crate) written: Option<Written>,
}

impl FileStep {
    pub(super) fn perms(&self) -> Perms {
        Perms {
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
        }
    }
}

/// What a run wrote, kept so that undo only reverts the run's own change: a file that no
/// longer has this size and hash was changed by someone else since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Written {
    /// The run left the file in place (false: it did not exist afterwards).
    pub(crate) exists: bool,
    /// Its size in bytes.
    pub(crate) size: u64,
    /// Its FNV-1a 64-bit hash, hex ([`fingerprint`]).
    pub(crate) fnv1a: String,
}

impl Written {
    pub(super) fn of(bytes: &[u8]) -> Written {
        Written {
            exists: true,
            size: bytes.len() as u64,
            fnv1a: fingerprint(bytes),
        }
    }

    pub(super) fn matches(&self, now: Option<&[u8]>) -> bool {
        match now {
            None => !self.exists,
            Some(b) => self.exists && b.len() as u64 == self.size && fingerprint(b) == self.fnv1a,
        }
    }
}

/// FNV-1a, 64 bits, as hex: stable across versions and machines (a record may be read by the
/// next version after an upgrade). It tells an edit by someone else from the run's own write;
/// whoever could forge a collision can write /etc already.
pub(crate) fn fingerprint(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A running container a run stops through the engine API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoppedContainer {
    /// Its id.
    pub(crate) id: String,
    /// Its name.
    pub(crate) name: String,
    /// Its main process on the host (0: not known).
    pub(crate) pid: u32,
    /// That process's start time ([`crate::host::kernel::start_time`]), telling it from a
    /// later process with the same pid.
    pub(crate) started: Option<u64>,
}

/// The id shift of a moved data root: uids and gids, each `from..from+count` to `to..`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OwnerShift {
    /// The uids.
    pub(crate) uid: shift::IdShift,
    /// The gids.
    pub(crate) gid: shift::IdShift,
}

impl OwnerShift {
    /// The shift as the tree walk takes it (checked: disjoint, not empty).
    pub(crate) fn mapping(&self) -> Result<shift::Mapping> {
        shift::Mapping::new(self.uid, self.gid)
    }
}

/// One change to the host, recorded before it happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub(crate) enum Step {
    /// A file is (about to be) replaced.
    WriteFile(FileStep),
    /// The remap user is (about to be) created with `useradd`.
    CreateUser {
        /// Its name.
        name: String,
    },
    /// Running containers are (about to be) stopped through the engine API.
    StopContainers {
        /// Them.
        containers: Vec<StoppedContainer>,
    },
    /// Images are (about to be) exported into the spool for `--carry images`.
    SpoolImages,
    /// docker.socket and docker.service are (about to be) stopped and started.
    RestartDocker,
    /// The remapped data root is (about to be) renamed, docker stopped.
    MoveDataRoot {
        /// Its name before (inside the root).
        from: String,
        /// Its name after.
        to: String,
        /// The rename is known to have happened (recorded durably after it).
        #[serde(default)]
        done: bool,
    },
    /// The owners below the renamed data root are (about to be) shifted, docker stopped.
    ShiftOwners {
        /// The tree (its new name; its old one is `from` of the move before).
        dir: String,
        /// Its old name, where the tree is when the rename was undone first.
        old_dir: String,
        /// The shift.
        shift: OwnerShift,
        /// The walk's own log (set-id bits and capabilities in flight).
        log: String,
        /// Every owner is known to be shifted (recorded durably after the walk ended).
        #[serde(default)]
        done: bool,
    },
}

/// The data root a run means to move (`--repair`), recorded when the run begins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DataRootMove {
    /// Its name before (inside the root).
    pub(crate) from: String,
    /// Its name after.
    pub(crate) to: String,
}

/// The format of the records this version writes. Version 1 (no `version` field) is read as
/// it is: every field added since has a default (`remap_configured_before` unknown, no
/// `repair`), so an interrupted run of an older docker-userns is recovered by this one.
pub(crate) const RECORD_VERSION: u32 = 2;

fn version_1() -> u32 {
    1
}

/// The on-disk record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// Its format ([`RECORD_VERSION`]; 1 when the field is absent).
    #[serde(default = "version_1")]
    pub(crate) version: u32,
    /// Unique id of the run (start time and pid).
    pub(crate) id: String,
    /// What the run converges to.
    pub(crate) action: Action,
    /// Whether docker.service was active before (false when services are not touched).
    pub(crate) docker_was_active: bool,
    /// Whether the engine reported user namespaces before (None: not running or not asked).
    pub(crate) userns_before: Option<bool>,
    /// Whether daemon.json set "userns-remap" before (None: not known).
    #[serde(default)]
    pub(crate) remap_configured_before: Option<bool>,
    /// The data root the run moves (`--repair`; None: none). A run that moves one is finished
    /// only once its move and shift steps are recorded complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) repair: Option<DataRootMove>,
    /// The steps taken, in order; the last one may not have completed.
    pub(crate) steps: Vec<Step>,
}

impl Record {
    /// How far the run got.
    pub(crate) fn phase(&self) -> Phase {
        if self.steps.contains(&Step::RestartDocker) {
            Phase::Restarting
        } else if self
            .steps
            .iter()
            .any(|s| matches!(s, Step::StopContainers { .. }))
        {
            Phase::StoppingContainers
        } else {
            Phase::Writing
        }
    }

    /// Every data root move the run intended is recorded complete: renamed, and every owner
    /// below it shifted (true when the run moves none).
    pub(crate) fn moves_complete(&self) -> bool {
        let moved = self
            .steps
            .iter()
            .any(|s| matches!(s, Step::MoveDataRoot { done: true, .. }));
        let shifted = self
            .steps
            .iter()
            .any(|s| matches!(s, Step::ShiftOwners { done: true, .. }));
        let unfinished = self.steps.iter().any(|s| {
            matches!(
                s,
                Step::MoveDataRoot { done: false, .. } | Step::ShiftOwners { done: false, .. }
            )
        });
        !unfinished && (self.repair.is_none() || (moved && shifted))
    }

    /// The file steps, in order.
    pub(crate) fn files(&self) -> impl Iterator<Item = &FileStep> {
        self.steps.iter().filter_map(|s| match s {
            Step::WriteFile(f) => Some(f),
            _ => None,
        })
    }
}

/// Reads a record of this format or an earlier one. A later format (a newer docker-userns
/// was interrupted, then this one installed) is refused before its steps are read: its
/// steps may mean what this version cannot undo.
pub(crate) fn parse_record(bytes: &[u8]) -> Result<Record> {
    #[derive(Deserialize)]
    struct Version {
        #[serde(default = "version_1")]
        version: u32,
    }
    let v: Version = serde_json::from_slice(bytes)?;
    if v.version > RECORD_VERSION {
        bail!(
            "it is of format {}, written by a newer docker-userns (this one reads formats 1 to {RECORD_VERSION}): finish the interrupted run with that version",
            v.version
        );
    }
    Ok(serde_json::from_slice(bytes)?)
}
