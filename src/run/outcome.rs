//! What a run is asked for (`Want`, `RestartPolicy`) and what it reports (`Outcome`: the plan
//! decided, and what happened: restart, downtime, impact, carry, notes).

use std::time::Duration;

use serde::Serialize;

use crate::formats::subid::How;
use crate::host::inspect::Impact;
use crate::host::setup::Setup;
use crate::progress::Progress;
use crate::run::carry::Carry;
use crate::run::note::Note;
use crate::run::plan::Decided;

/// What `enable` (and `plan`) are asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Want {
    /// The remap user.
    pub(crate) user: String,
    /// Ids per range (None: login.defs' SUB_*_COUNT, 65536 when unset or 0).
    pub(crate) count: Option<u64>,
    /// Move an overlapping range, or one not at `start`, with the data root (`--repair`).
    pub(crate) repair: bool,
    /// The range must start here (`--start`).
    pub(crate) start: Option<u64>,
}

impl Want {
    pub(crate) fn how(&self) -> How {
        How {
            repair: self.repair,
            start: self.start,
        }
    }
}

/// How a changing run may treat docker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RestartPolicy {
    /// Restart docker when the change needs it (false: files only, `--no-restart`).
    pub(crate) restart: bool,
    /// Restart even though containers run, which stops them (`--yes`).
    pub(crate) stop_running_containers: bool,
    /// Bound on each stop/start job and on the health gate.
    pub(crate) timeout: Duration,
    /// How long docker must stay up after its restart to pass the health gate.
    pub(crate) settle: Duration,
    /// Carry the images across the switch (`--carry images`).
    pub(crate) carry_images: bool,
    /// Carry the named volumes across the switch (`--carry volumes`).
    pub(crate) carry_volumes: bool,
    /// How the long steps (repair's shift, the image export and load) show their progress.
    pub(crate) progress: Progress,
    /// Threads walking a tree whose owners are shifted (`--jobs`; repair, carried volumes).
    pub(crate) jobs: usize,
}

/// What a run did (or, for `plan`, would do): the plan, and what happened around it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Outcome<P> {
    /// The decision.
    #[serde(flatten)]
    pub(crate) plan: P,
    /// Anything changed (or would): a file, the user, or a docker restart.
    pub(crate) changed: bool,
    /// docker must restart for the change to take effect.
    pub(crate) restart: bool,
    /// docker was restarted and passed the health gate.
    pub(crate) restarted: bool,
    /// Engine downtime of that restart in milliseconds.
    pub(crate) downtime_ms: Option<u64>,
    /// What the switch does to what docker holds (None: the engine was not asked).
    pub(crate) impact: Option<Impact>,
    /// How docker is set up (None: services not looked at, as under `--root`).
    pub(crate) setup: Option<Setup>,
    /// What `--carry` carried (or, for `plan`, would carry); None: not asked.
    pub(crate) carry: Option<Carry>,
    /// Remarks for the operator (`--json`: their sentences, and `facts` as they are).
    pub(crate) notes: Vec<Note>,
}

impl<P> Outcome<P> {
    /// The exit code: 0, or 8 when the switch was made but `--carry` did not carry everything.
    pub(crate) fn code(&self) -> crate::exit::Code {
        match &self.carry {
            Some(c) if !c.complete() => crate::exit::Code::CarryIncomplete,
            _ => crate::exit::Code::Ok,
        }
    }
}

impl<P: Decided> Outcome<P> {
    /// Before anything happens: as the files alone decide.
    pub(crate) fn new(mut plan: P) -> Outcome<P> {
        Outcome {
            changed: plan.changes_files(),
            restart: plan.restart_for_files(),
            restarted: false,
            downtime_ms: None,
            impact: None,
            setup: None,
            carry: None,
            notes: plan.take_notes(),
            plan,
        }
    }
}
