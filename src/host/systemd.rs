//! systemd over the system D-Bus (zbus, blocking API): unit state, stop/start jobs waited on
//! through `JobRemoved`, `ResetFailedUnit`. No `systemctl` subprocess.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use zbus::blocking::Connection;
use zbus::proxy::CacheProperties;
use zbus::zvariant::OwnedObjectPath;

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_async = false,
    blocking_name = "ManagerProxyBlocking"
)]
trait Manager {
    fn subscribe(&self) -> zbus::Result<()>;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: zbus::zvariant::ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1",
    gen_async = false,
    blocking_name = "UnitProxyBlocking"
)]
trait Unit {
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn load_state(&self) -> zbus::Result<String>;
    #[zbus(property, name = "InvocationID")]
    fn invocation_id(&self) -> zbus::Result<Vec<u8>>;
    #[zbus(property)]
    fn fragment_path(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn drop_in_paths(&self) -> zbus::Result<Vec<String>>;
    #[zbus(property)]
    fn need_daemon_reload(&self) -> zbus::Result<bool>;
}

/// The files systemd loaded a unit from: what its next start uses (until a daemon-reload).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UnitFiles {
    /// `FragmentPath` (empty: none, e.g. a unit that does not exist).
    pub(crate) fragment: String,
    /// `DropInPaths`, in the order systemd applies them.
    pub(crate) dropins: Vec<String>,
    /// `NeedDaemonReload`: the files changed on disk since they were loaded.
    pub(crate) need_reload: bool,
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1",
    gen_async = false,
    blocking_name = "ServiceProxyBlocking"
)]
trait Service {
    #[zbus(property, name = "NRestarts")]
    fn n_restarts(&self) -> zbus::Result<u32>;
    #[zbus(property)]
    fn result(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn exec_main_status(&self) -> zbus::Result<i32>;
    #[zbus(property, name = "MainPID")]
    fn main_pid(&self) -> zbus::Result<u32>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Socket",
    default_service = "org.freedesktop.systemd1",
    gen_async = false,
    blocking_name = "SocketProxyBlocking"
)]
trait Socket {
    #[zbus(property)]
    fn listen(&self) -> zbus::Result<Vec<(String, String)>>;
}

/// Failures talking to systemd, with what to do about them.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SystemdError {
    /// The system bus cannot be reached.
    #[error(
        "cannot connect to the system D-Bus ({0}): is systemd running? (use --root DIR to work on files only)"
    )]
    NoBus(String),
    /// The unit does not exist.
    #[error("{0} is not known to systemd: is docker installed?")]
    NoSuchUnit(String),
    /// The unit is masked.
    #[error("{0} is masked: unmask it first (systemctl unmask {0})")]
    Masked(String),
    /// Not allowed.
    #[error("systemd refused {0}: access denied (run as root)")]
    AccessDenied(String),
    /// A job ended with a result other than "done".
    #[error("{op} {unit} ended with result {result:?}")]
    JobFailed {
        /// "start" or "stop".
        op: &'static str,
        /// The unit.
        unit: String,
        /// systemd's job result (failed, timeout, canceled, dependency, ...).
        result: String,
    },
    /// A job did not finish in time.
    #[error("{op} {unit} did not finish within {secs} s (--timeout)")]
    Timeout {
        /// "start" or "stop".
        op: &'static str,
        /// The unit.
        unit: String,
        /// The timeout in seconds.
        secs: u64,
    },
    /// Any other D-Bus error.
    #[error("systemd: {0}")]
    Other(String),
}

fn map_err(what: &str, e: zbus::Error) -> SystemdError {
    if let zbus::Error::MethodError(name, msg, _) = &e {
        let msg = msg.clone().unwrap_or_default();
        return match name.as_str() {
            "org.freedesktop.systemd1.NoSuchUnit" => SystemdError::NoSuchUnit(what.to_string()),
            "org.freedesktop.systemd1.UnitMasked" => SystemdError::Masked(what.to_string()),
            "org.freedesktop.DBus.Error.AccessDenied"
            | "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired" => {
                SystemdError::AccessDenied(what.to_string())
            }
            _ => SystemdError::Other(format!("{what}: {name}: {msg}")),
        };
    }
    SystemdError::Other(format!("{what}: {e}"))
}

/// Defines a unit-state enum: systemd's words as variants, anything else kept as it was said.
macro_rules! unit_state_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $word:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub(crate) enum $name {
            $($(#[$vdoc])* $variant,)*
            /// A word this tool does not know (kept as systemd said it).
            Other(String),
            /// Not read (the default).
            #[default]
            Unknown,
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(match s {
                    $($word => $name::$variant,)*
                    "" => $name::Unknown,
                    other => $name::Other(other.to_string()),
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(match self {
                    $($name::$variant => $word,)*
                    $name::Other(s) => s,
                    $name::Unknown => "",
                })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

unit_state_enum! {
    /// A unit's LoadState.
    LoadState {
        /// Its unit file was found and loaded.
        Loaded = "loaded",
        /// No such unit.
        NotFound = "not-found",
        /// Masked: it cannot be started.
        Masked = "masked",
        /// Its unit file could not be parsed.
        Error = "error",
    }
}

unit_state_enum! {
    /// A unit's ActiveState.
    ActiveState {
        /// Started and running (or exited, for oneshots).
        Active = "active",
        /// Reloading its configuration.
        Reloading = "reloading",
        /// Stopped.
        Inactive = "inactive",
        /// Stopped after a failure.
        Failed = "failed",
        /// Starting.
        Activating = "activating",
        /// Stopping.
        Deactivating = "deactivating",
    }
}

/// A snapshot of a unit's state.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub(crate) struct UnitState {
    /// The unit name.
    pub(crate) name: String,
    /// LoadState.
    pub(crate) load_state: LoadState,
    /// ActiveState.
    pub(crate) active_state: ActiveState,
    /// SubState: running, dead, exited, auto-restart, ... (type-specific, so kept as a word).
    pub(crate) sub_state: String,
    /// The current invocation, hex (empty when never started).
    pub(crate) invocation_id: String,
    /// NRestarts (services only).
    pub(crate) n_restarts: u32,
    /// Result of the last run (services only): success, exit-code, ...
    pub(crate) result: String,
    /// ExecMainStatus (services only).
    pub(crate) exec_main_status: i32,
    /// MainPID (services only; 0 when none).
    pub(crate) main_pid: u32,
}

impl UnitState {
    /// active/running.
    pub(crate) fn is_running(&self) -> bool {
        self.active_state == ActiveState::Active && self.sub_state == "running"
    }
}

/// What to do to a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// StopUnit.
    Stop,
    /// StartUnit.
    Start,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Stop => "stop",
            Op::Start => "start",
        }
    }
}

type JobEvent = (String, String, String);

/// A connection to systemd with a `JobRemoved` listener running from the start.
pub(crate) struct Systemd {
    conn: Connection,
    manager: ManagerProxyBlocking<'static>,
    jobs: Option<Receiver<JobEvent>>,
    finished: HashMap<String, (String, String)>,
}

impl Systemd {
    /// Connects to the system bus, subscribes to job signals, and starts listening for them.
    pub(crate) fn connect() -> Result<Systemd, SystemdError> {
        let conn = Connection::system().map_err(|e| SystemdError::NoBus(e.to_string()))?;
        let manager = ManagerProxyBlocking::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .map_err(|e| map_err("connect", e))?;
        Ok(Systemd {
            conn,
            manager,
            jobs: None,
            finished: HashMap::new(),
        })
    }

    /// Subscribes to job signals and starts the `JobRemoved` listener, once, before the first
    /// job is queued (so no JobRemoved is missed). Runs that queue no job never pay for it.
    fn listen(&mut self) -> Result<(), SystemdError> {
        if self.jobs.is_some() {
            return Ok(());
        }
        let signals = self
            .manager
            .receive_job_removed()
            .map_err(|e| map_err("JobRemoved", e))?;
        self.manager
            .subscribe()
            .map_err(|e| map_err("Subscribe", e))?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for sig in signals {
                if let Ok(a) = sig.args()
                    && tx
                        .send((a.job.to_string(), a.unit.to_string(), a.result.to_string()))
                        .is_err()
                {
                    break;
                }
            }
        });
        self.jobs = Some(rx);
        Ok(())
    }

    /// A unit's LoadState only.
    pub(crate) fn load_state(&self, name: &str) -> Result<LoadState, SystemdError> {
        let path = self.manager.load_unit(name).map_err(|e| map_err(name, e))?;
        UnitProxyBlocking::builder(&self.conn)
            .path(path)
            .and_then(|b| b.cache_properties(CacheProperties::No).build())
            .and_then(|u| u.load_state())
            .map(|w| w.parse().unwrap_or_default())
            .map_err(|e| map_err(name, e))
    }

    /// The files systemd loaded `name` from ([`UnitFiles`]).
    pub(crate) fn unit_files(&self, name: &str) -> Result<UnitFiles, SystemdError> {
        let path = self.manager.load_unit(name).map_err(|e| map_err(name, e))?;
        let unit = UnitProxyBlocking::builder(&self.conn)
            .path(path)
            .and_then(|b| b.cache_properties(CacheProperties::No).build())
            .map_err(|e| map_err(name, e))?;
        Ok(UnitFiles {
            fragment: unit.fragment_path().map_err(|e| map_err(name, e))?,
            dropins: unit.drop_in_paths().map_err(|e| map_err(name, e))?,
            need_reload: unit.need_daemon_reload().unwrap_or(false),
        })
    }

    /// Loads a unit and reads its state.
    pub(crate) fn unit_state(&self, name: &str) -> Result<UnitState, SystemdError> {
        let path = self.manager.load_unit(name).map_err(|e| map_err(name, e))?;
        let unit = UnitProxyBlocking::builder(&self.conn)
            .path(path.clone())
            .and_then(|b| b.cache_properties(CacheProperties::No).build())
            .map_err(|e| map_err(name, e))?;
        let get = |r: zbus::Result<String>| r.map_err(|e| map_err(name, e));
        let mut st = UnitState {
            name: name.to_string(),
            load_state: get(unit.load_state())?.parse().unwrap_or_default(),
            active_state: get(unit.active_state())?.parse().unwrap_or_default(),
            sub_state: get(unit.sub_state())?,
            invocation_id: unit
                .invocation_id()
                .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
                .unwrap_or_default(),
            n_restarts: 0,
            result: String::new(),
            exec_main_status: 0,
            main_pid: 0,
        };
        if name.ends_with(".service") && st.load_state == LoadState::Loaded {
            let svc = ServiceProxyBlocking::builder(&self.conn)
                .path(path)
                .and_then(|b| b.cache_properties(CacheProperties::No).build())
                .map_err(|e| map_err(name, e))?;
            st.n_restarts = svc.n_restarts().unwrap_or(0);
            st.result = svc.result().unwrap_or_default();
            st.exec_main_status = svc.exec_main_status().unwrap_or(0);
            st.main_pid = svc.main_pid().unwrap_or(0);
        }
        Ok(st)
    }

    /// A socket unit's `Listen` addresses as (type, address), e.g. `("Stream", "/run/docker.sock")`;
    /// empty when the unit is not loaded.
    pub(crate) fn socket_listen(&self, name: &str) -> Result<Vec<(String, String)>, SystemdError> {
        if self.load_state(name)? != LoadState::Loaded {
            return Ok(Vec::new());
        }
        let path = self.manager.load_unit(name).map_err(|e| map_err(name, e))?;
        SocketProxyBlocking::builder(&self.conn)
            .path(path)
            .and_then(|b| b.cache_properties(CacheProperties::No).build())
            .and_then(|s| s.listen())
            .map_err(|e| map_err(name, e))
    }

    /// Checks that a unit exists and is not masked.
    pub(crate) fn require_loaded(&self, name: &str) -> Result<UnitState, SystemdError> {
        let st = self.unit_state(name)?;
        match &st.load_state {
            LoadState::Loaded => Ok(st),
            LoadState::Masked => Err(SystemdError::Masked(name.to_string())),
            LoadState::NotFound => Err(SystemdError::NoSuchUnit(name.to_string())),
            other => Err(SystemdError::Other(format!(
                "{name} has load state {:?}",
                other.to_string()
            ))),
        }
    }

    /// `ResetFailedUnit`: clears the failed state and the start-rate counter.
    pub(crate) fn reset_failed(&self, name: &str) -> Result<(), SystemdError> {
        self.manager
            .reset_failed_unit(name)
            .map_err(|e| map_err(name, e))
    }

    /// Queues `op` for each unit (mode "replace") and waits until every job is removed.
    /// Only the result "done" counts as success; the first failure is returned.
    pub(crate) fn run(
        &mut self,
        op: Op,
        units: &[&str],
        timeout: Duration,
    ) -> Result<(), SystemdError> {
        self.listen()?;
        let mut pending: Vec<(String, String)> = Vec::new();
        for u in units {
            let job = match op {
                Op::Stop => self.manager.stop_unit(u, "replace"),
                Op::Start => self.manager.start_unit(u, "replace"),
            }
            .map_err(|e| map_err(u, e))?;
            tracing::debug!("{} {u}: job {}", op.name(), job.as_str());
            pending.push((job.to_string(), u.to_string()));
        }
        let deadline = Instant::now() + timeout;
        let mut first_failure = None;
        for (job, unit) in pending {
            let result = self.wait_job(&job, deadline).ok_or(SystemdError::Timeout {
                op: op.name(),
                unit: unit.clone(),
                secs: timeout.as_secs(),
            })?;
            if result != "done" && first_failure.is_none() {
                first_failure = Some(SystemdError::JobFailed {
                    op: op.name(),
                    unit,
                    result,
                });
            }
        }
        first_failure.map_or(Ok(()), Err)
    }

    fn wait_job(&mut self, job: &str, deadline: Instant) -> Option<String> {
        loop {
            if let Some((_, result)) = self.finished.remove(job) {
                return Some(result);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.jobs.as_ref()?.recv_timeout(left) {
                Ok((j, unit, result)) => {
                    self.finished.insert(j, (unit, result));
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None;
                }
            }
        }
    }
}
