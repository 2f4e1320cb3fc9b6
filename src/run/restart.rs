//! Restarting docker with the new files: validate, stop docker.socket and docker.service,
//! start them, and health-gate the result; and bring the old docker back when the journal's
//! undo asks for it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;

use crate::exit::Conflict;
use crate::failpoint;
use crate::host::engine::{Container, Engine, EngineError};
use crate::host::kernel;
use crate::host::programs;
use crate::host::root::{Perms, Root};
use crate::host::setup::{self, Setup};
use crate::host::systemd::{ActiveState, LoadState, Op, Systemd, SystemdError, UnitState};
use crate::run::journal::{self, Journal, StoppedContainer};

/// The service.
pub(crate) const SERVICE: &str = "docker.service";
/// The socket that activates it.
pub(crate) const SOCKET: &str = "docker.socket";
/// How long the service must stay up, same invocation and no restarts, to count as healthy,
/// unless `--settle` says otherwise: long enough to see a dockerd that dies a few seconds
/// after it said it was ready (and systemd's `Restart=`/`RestartSec=` loop that follows).
pub(crate) const DEFAULT_SETTLE: Duration = Duration::from_secs(10);
/// How long a container gets between SIGTERM and SIGKILL when stopped through the API
/// (docker's own default for `docker stop`).
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(10);
/// How often the unit is looked at during the settle window.
const SETTLE_POLL: Duration = Duration::from_millis(250);

/// What docker should look like after the restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expect {
    /// `name=userns` in the engine's security options (None: not checked, the old state was
    /// not known).
    pub(crate) userns: Option<bool>,
    /// With remapping, the data root ends in `/<uid>.<gid>` of these range starts.
    pub(crate) ranges: Option<(u64, u64)>,
}

/// Docker as found before the change.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Observed {
    /// docker.service.
    pub(crate) unit: UnitState,
    /// Whether the running engine remaps (None: not running or not answering). Taken from
    /// `/info`, or from the record of the last verified state when docker.service is still the
    /// same invocation (same dockerd process, same configuration).
    pub(crate) userns: Option<bool>,
}

/// The engine state last verified, keyed by docker.service's InvocationID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub(crate) struct Verified {
    /// docker.service's InvocationID when it was verified.
    pub(crate) invocation_id: String,
    /// The engine remapped then.
    pub(crate) userns: bool,
}

/// Where [`Verified`] is kept.
pub(crate) const VERIFIED: &str = "/var/lib/docker-userns/verified.json";

impl Observed {
    /// docker.service is active.
    pub(crate) fn active(&self) -> bool {
        self.unit.active_state == ActiveState::Active
    }
}

/// docker as systemd and the Engine API see it.
pub(crate) struct Docker {
    /// The systemd connection.
    sd: Systemd,
    /// The Engine API client.
    engine: Engine,
    /// Bound on each stop/start job and on the health gate.
    timeout: Duration,
    /// How long docker must stay up after the restart.
    settle: Duration,
    /// The root, for the record of the last verified engine state ([`VERIFIED`]).
    root: Root,
    /// When the last restart began (journal lines are taken from then on).
    began: Option<std::time::SystemTime>,
    /// A start job was queued since (only then is its journal entry worth waiting for).
    start_queued: bool,
    /// How docker is set up: where the engine listens, its data root, live-restore, swarm.
    setup: Setup,
}

fn units(socket: bool) -> Vec<&'static str> {
    if socket {
        vec![SOCKET, SERVICE]
    } else {
        vec![SERVICE]
    }
}

impl Docker {
    /// Connects to systemd and prepares the Engine API client for the socket docker listens
    /// on ([`setup`]); a docker that listens on no unix socket is a conflict, before anything
    /// is done.
    pub(crate) fn connect(root: &Root, timeout: Duration, settle: Duration) -> Result<Docker> {
        let sd = Systemd::connect()?;
        let setup = setup::read(root, Some(&sd))?;
        let Some(socket) = setup.engine_socket.clone() else {
            return Err(
                Conflict::new(setup.engine_problem.clone().unwrap_or_default())
                    .kind("engine-unreachable")
                    .into(),
            );
        };
        Ok(Docker {
            sd,
            setup,
            engine: Engine::new(socket, Duration::from_secs(5)),
            timeout,
            settle,
            root: root.clone(),
            began: None,
            start_queued: false,
        })
    }

    /// Checks docker.service is known and not masked, and learns whether the engine remaps.
    pub(crate) fn observe(&self) -> Result<Observed> {
        let unit = self.sd.require_loaded(SERVICE).map_err(|e| match e {
            SystemdError::NoSuchUnit(_) | SystemdError::Masked(_) => {
                anyhow::Error::new(Conflict::new(e.to_string()).kind("docker-unit-unusable"))
            }
            e => e.into(),
        })?;
        if unit.active_state != ActiveState::Active {
            return Ok(Observed { unit, userns: None });
        }
        if let Some(v) = self.verified()
            && v.invocation_id == unit.invocation_id
            && !v.invocation_id.is_empty()
        {
            return Ok(Observed {
                userns: Some(v.userns),
                unit,
            });
        }
        let userns = match self.engine.info() {
            Ok(info) => {
                self.remember(&unit.invocation_id, info.userns());
                Some(info.userns())
            }
            Err(e) => {
                tracing::warn!("docker.service is active but the engine does not answer: {e}");
                None
            }
        };
        Ok(Observed { unit, userns })
    }

    /// The Engine API client.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// How docker is set up (the engine's facts once [`Docker::learn`] asked it).
    pub(crate) fn setup(&self) -> &Setup {
        &self.setup
    }

    /// Asks the running engine what only it knows (live-restore, swarm, its data root) and
    /// adds that to the setup.
    pub(crate) fn learn(&mut self) -> Result<(), EngineError> {
        let info = self.engine.info()?;
        self.setup.learn(&info);
        Ok(())
    }

    /// Stops the running containers through the engine API (each with docker's default grace
    /// of 10 s, all at once), journaled first with their main processes; returns them. For
    /// live-restore, where stopping docker leaves them running.
    pub(crate) fn stop_running(
        &self,
        root: &Root,
        journal: &mut Journal,
    ) -> Result<Vec<StoppedContainer>> {
        let running = self.engine.running_containers()?;
        let mut list = Vec::new();
        for c in &running {
            let v = self.engine.inspect_container(&c.id)?;
            let pid = u32::try_from(v.state.pid).unwrap_or(0);
            list.push(StoppedContainer {
                id: c.id.clone(),
                name: c.name().to_string(),
                pid,
                started: (pid != 0).then(|| kernel::start_time(pid)).flatten(),
            });
        }
        if list.is_empty() {
            return Ok(list);
        }
        journal.stop_containers(root, list.clone())?;
        let engine = &self.engine;
        std::thread::scope(|s| {
            let handles: Vec<_> = list
                .iter()
                .map(|c| {
                    s.spawn(move || {
                        engine
                            .stop_container(&c.id, STOP_GRACE)
                            .with_context(|| format!("cannot stop container {}", c.name))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow!("a stop thread panicked")))
                })
                .collect::<Result<Vec<()>>>()
        })?;
        // The engine may list a container as running for a moment after its stop answered
        // (docker 26 does): look again for a few seconds before calling it started again.
        let deadline = Instant::now() + Duration::from_secs(5);
        let still = loop {
            let still: Vec<String> = self
                .engine
                .running_containers()?
                .iter()
                .map(|c| c.name().to_string())
                .collect();
            if still.is_empty() || Instant::now() >= deadline {
                break still;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if !still.is_empty() {
            bail!(
                "containers run again after they were stopped (started meanwhile by someone else?): {}",
                still.join(", ")
            );
        }
        Ok(list)
    }

    /// The running containers (asked only when a restart would stop them).
    pub(crate) fn running(&self) -> Result<Vec<Container>, EngineError> {
        self.engine.running_containers()
    }

    fn verified(&self) -> Option<Verified> {
        serde_json::from_slice(&self.root.read_optional(VERIFIED).ok()??).ok()
    }

    /// Records the engine state verified for this invocation of docker.service (best effort:
    /// without the record the next run simply asks the engine).
    fn remember(&self, invocation_id: &str, userns: bool) {
        if invocation_id.is_empty()
            || !self
                .root
                .metadata(journal::DIR)
                .is_ok_and(|m| m.is_some_and(|m| m.is_dir()))
        {
            return;
        }
        let v = Verified {
            invocation_id: invocation_id.to_string(),
            userns,
        };
        let bytes = serde_json::to_vec(&v).expect("serializes");
        let _ = self
            .root
            .write_atomic(VERIFIED, &bytes, Perms::root_owned(0o600));
    }

    fn socket_known(&self) -> bool {
        self.sd
            .load_state(SOCKET)
            .is_ok_and(|s| s == LoadState::Loaded)
    }

    /// Stops docker.socket and docker.service, clears any failed state, runs `while_stopped`
    /// (moving the data root with `--repair`; its failure fails the restart), starts both, and
    /// health-gates the result against `expect`. Returns the engine's downtime: from the stop
    /// request to the first `/_ping` answer after the start, in milliseconds.
    pub(crate) fn restart_with(
        &mut self,
        expect: &Expect,
        while_stopped: &mut dyn FnMut() -> Result<()>,
    ) -> Result<u64> {
        let units = units(self.socket_known());
        let t0 = Instant::now();
        self.began = Some(std::time::SystemTime::now());
        self.sd.run(Op::Stop, &units, self.timeout)?;
        failpoint::hit("restart:after-stop")?;
        while_stopped()?;
        self.start(&units)?;
        let downtime = self.gate(expect, Instant::now() + self.timeout, Some(t0))?;
        Ok(downtime.as_millis() as u64)
    }

    fn start(&mut self, units: &[&str]) -> Result<()> {
        // A start after failed starts hits StartLimitBurst; clearing it first is always safe.
        for u in units {
            let _ = self.sd.reset_failed(u);
        }
        failpoint::hit("restart:before-start")?;
        self.start_queued = true;
        self.sd.run(Op::Start, units, self.timeout)?;
        Ok(())
    }

    /// The health gate: the service is active/running, `/_ping` answers, `/info` shows the
    /// expected remapping and data root, and the service stays the same invocation with no
    /// restarts for the settle window. Returns the time from `since` to the first ping.
    pub(crate) fn gate(
        &self,
        expect: &Expect,
        deadline: Instant,
        since: Option<Instant>,
    ) -> Result<Duration> {
        let since = since.unwrap_or_else(Instant::now);
        let st = self.sd.unit_state(SERVICE)?;
        if !st.is_running() {
            bail!(
                "docker.service is {}/{} after the start",
                st.active_state,
                st.sub_state
            );
        }
        self.engine
            .wait_ping(deadline)
            .context("the engine did not answer /_ping")?;
        let downtime = since.elapsed();
        let info = self.engine.info()?;
        if let Some(want) = expect.userns
            && info.userns() != want
        {
            bail!(
                "the engine reports user namespaces {} (SecurityOptions {:?}), expected {}",
                if info.userns() { "on" } else { "off" },
                info.security_options,
                if want { "on" } else { "off" }
            );
        }
        if let Some((u, g)) = expect.ranges
            && !info.docker_root_dir.ends_with(&format!("/{u}.{g}"))
        {
            bail!(
                "the engine's DockerRootDir is {}, expected it to end in /{u}.{g}",
                info.docker_root_dir
            );
        }
        // The settle window: the same invocation, no restarts, running, all along (looked at
        // every SETTLE_POLL, so a death fails the gate as soon as it is seen).
        let settle_end = Instant::now() + self.settle;
        let after = loop {
            let after = self.sd.unit_state(SERVICE)?;
            if after.invocation_id != st.invocation_id
                || after.n_restarts != st.n_restarts
                || !after.is_running()
            {
                bail!(
                    "docker.service did not stay up: within the {} s settle window (--settle) it went from invocation {} ({} restarts) to {} ({} restarts, {}/{})",
                    self.settle.as_secs(),
                    st.invocation_id,
                    st.n_restarts,
                    after.invocation_id,
                    after.n_restarts,
                    after.active_state,
                    after.sub_state
                );
            }
            let left = settle_end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break after;
            }
            std::thread::sleep(left.min(SETTLE_POLL));
        };
        self.engine
            .ping()
            .context("the engine stopped answering during the settle window")?;
        self.remember(&after.invocation_id, info.userns());
        Ok(downtime)
    }

    /// The unit's Result/ExecMainStatus and its last journal lines since the restart began.
    fn diagnostics(&self) -> String {
        let Ok(st) = self.sd.unit_state(SERVICE) else {
            return String::new();
        };
        let mut s = format!(
            "docker.service: {}/{}, Result={}, ExecMainStatus={}, NRestarts={}",
            st.active_state, st.sub_state, st.result, st.exec_main_status, st.n_restarts
        );
        let text = self.journal_tail();
        if !text.trim().is_empty() {
            s.push_str("\nlast journal lines of docker.service:\n");
            for l in text.lines() {
                s.push_str("  ");
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }

    /// docker.service's last journal lines since the restart began. journald can lag behind by
    /// seconds under load, so read until systemd's own entry for the start job is there (it
    /// carries `JOB_TYPE=start`), for at most 5 s.
    fn journal_tail(&self) -> String {
        let since = self
            .began
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        let read = || -> Vec<serde_json::Value> {
            let Ok(journalctl) = programs::find("journalctl") else {
                return Vec::new();
            };
            let _ = Command::new(&journalctl)
                .arg("--sync")
                .stderr(Stdio::null())
                .status();
            let mut cmd = Command::new(&journalctl);
            cmd.args(["--no-pager", "-o", "json", "-n", "60", "-u", SERVICE]);
            if let Some(t) = since {
                cmd.arg(format!("--since=@{}", t.as_secs()));
            }
            let out = cmd
                .stderr(Stdio::null())
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default();
            out.split(|b| *b == b'\n')
                .filter_map(|l| serde_json::from_slice(l).ok())
                .collect()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut entries = read();
        while self.start_queued
            && !entries
                .iter()
                .any(|e| e.get("JOB_TYPE").is_some_and(|t| t == "start"))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(200));
            entries = read();
        }
        let lines: Vec<&str> = entries
            .iter()
            .filter_map(|e| e.get("MESSAGE").and_then(|m| m.as_str()))
            .collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Brings docker back as it was: stop (it may be crash-looping), clear the failed state,
    /// start, and gate for the old remapping state.
    fn bring_back(&mut self, userns_before: Option<bool>) -> Result<()> {
        let units = units(self.socket_known());
        let _ = self.sd.run(Op::Stop, &units, self.timeout);
        self.start(&units)?;
        let expect = Expect {
            userns: userns_before,
            ranges: None,
        };
        self.gate(&expect, Instant::now() + self.timeout, None)?;
        Ok(())
    }
}

/// Result of `dockerd --validate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Validation {
    /// The new configuration was accepted.
    Ok,
    /// This dockerd has no `--validate` (before 23.0).
    Unsupported,
    /// Not validated, for the reason given (e.g. ExecStart runs a wrapper, not dockerd).
    Skipped(String),
}

/// How to validate the new configuration, decided from the unit's ExecStart words alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidatePlan {
    /// Run `program` (a dockerd: an absolute path, or a bare name looked up on the fixed
    /// system PATH) with `args`.
    Run {
        /// The dockerd to run.
        program: String,
        /// `--validate --config-file /etc/docker/daemon.json` and the unit's own flags.
        args: Vec<String>,
    },
    /// Do not validate: why.
    Skip(String),
}

/// Decides how to run `dockerd --validate` for a unit whose effective ExecStart is
/// `exec_start` (words, variables expanded). Only a real dockerd is asked: ExecStart's first
/// word must have the file name `dockerd`; anything else (a shell wrapper such as
/// `/bin/sh -c 'exec dockerd …'`, a script) is skipped with the reason, since its flags are
/// not dockerd's. No ExecStart known: the distribution's dockerd with no unit flags.
pub fn validate_plan(exec_start: &[String]) -> ValidatePlan {
    let mut args: Vec<String> = ["--validate", "--config-file", "/etc/docker/daemon.json"]
        .map(String::from)
        .into();
    let Some(first) = exec_start.first() else {
        return ValidatePlan::Run {
            program: "dockerd".into(),
            args,
        };
    };
    let file_name = first.rsplit('/').next().unwrap_or(first);
    if file_name != "dockerd" {
        return ValidatePlan::Skip(format!(
            "not validated with dockerd --validate: docker.service starts {first:?}, not dockerd itself, so its arguments are not dockerd's flags; the health gate after the restart decides"
        ));
    }
    // The unit's own flags, minus a --config-file (and its value): the file is given above.
    let mut skip_next = false;
    args.extend(
        exec_start
            .iter()
            .skip(1)
            .filter(|a| {
                if std::mem::take(&mut skip_next) {
                    return false;
                }
                skip_next = *a == "--config-file";
                !a.starts_with("--config-file")
            })
            .cloned(),
    );
    ValidatePlan::Run {
        program: first.clone(),
        args,
    }
}

/// Runs `dockerd --validate --config-file /etc/docker/daemon.json` with the unit's own flags
/// (docker 23.0 and later), as [`validate_plan`] decides; an older dockerd without the flag is
/// detected and skipped. dockerd is run by absolute path (a bare name is looked up on the
/// fixed system PATH, see [`programs`]).
pub(crate) fn validate(exec_start: &[String], timeout: Duration) -> Result<Validation> {
    let (program, args) = match validate_plan(exec_start) {
        ValidatePlan::Skip(why) => return Ok(Validation::Skipped(why)),
        ValidatePlan::Run { program, args } => (program, args),
    };
    let dockerd = programs::find(&program)
        .with_context(|| format!("cannot validate the new configuration with {program}"))?;
    let shown = dockerd.display().to_string();
    let mut child = Command::new(&dockerd)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {shown} --validate"))?;
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            bail!(
                "{shown} --validate did not finish within {} s",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if text.contains("unknown flag: --validate") {
        return Ok(Validation::Unsupported);
    }
    if out.status.success() {
        Ok(Validation::Ok)
    } else {
        Err(anyhow!(
            "dockerd rejected the new configuration ({shown} --validate): {}",
            text.trim()
        ))
    }
}

/// The processes of `stopped` containers still alive (same pid, same start time), by name.
pub(crate) fn still_alive(stopped: &[StoppedContainer]) -> Vec<String> {
    stopped
        .iter()
        .filter(|c| c.pid != 0 && c.started.is_some() && kernel::start_time(c.pid) == c.started)
        .map(|c| format!("{} (pid {})", c.name, c.pid))
        .collect()
}

impl journal::Docker for Docker {
    fn stop(&mut self) -> Result<()> {
        let units = units(self.socket_known());
        self.sd.run(Op::Stop, &units, self.timeout)?;
        Ok(())
    }

    fn start_containers(&mut self, containers: &[StoppedContainer]) -> Result<Vec<String>> {
        let mut started = Vec::new();
        let mut failed = Vec::new();
        for c in containers {
            match self.engine.start_container(&c.id) {
                Ok(()) => started.push(c.name.clone()),
                Err(EngineError::Status { status: 404, .. }) => {}
                Err(e) => failed.push(format!("{}: {e}", c.name)),
            }
        }
        if failed.is_empty() {
            Ok(started)
        } else {
            Err(anyhow!(
                "cannot start again the container(s) it had stopped: {}",
                failed.join("; ")
            ))
        }
    }

    fn now(&self) -> (bool, Option<bool>) {
        let running = self.sd.unit_state(SERVICE).is_ok_and(|s| s.is_running());
        let userns = running
            .then(|| self.engine.info().ok().map(|i| i.userns()))
            .flatten();
        (running, userns)
    }

    fn bring_back(&mut self, userns: Option<bool>) -> Result<()> {
        Docker::bring_back(self, userns)
    }

    fn diagnostics(&self) -> String {
        Docker::diagnostics(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        crate::host::docker_unit::split_words(s)
    }

    fn run(program: &str, extra: &[&str]) -> ValidatePlan {
        let mut args: Vec<String> = ["--validate", "--config-file", "/etc/docker/daemon.json"]
            .map(String::from)
            .into();
        args.extend(extra.iter().map(|s| s.to_string()));
        ValidatePlan::Run {
            program: program.into(),
            args,
        }
    }

    #[test]
    fn dockerd_is_validated_with_the_units_flags_minus_config_file() {
        assert_eq!(
            validate_plan(&words(
                "/usr/sbin/dockerd -H fd:// --config-file /etc/docker/daemon.json --dns 1.1.1.1 --config-file=/x"
            )),
            run("/usr/sbin/dockerd", &["-H", "fd://", "--dns", "1.1.1.1"])
        );
        assert_eq!(
            validate_plan(&words("dockerd --debug")),
            run("dockerd", &["--debug"])
        );
        // No ExecStart known: the distribution's dockerd, no unit flags.
        assert_eq!(validate_plan(&[]), run("dockerd", &[]));
    }

    #[test]
    fn a_wrapper_is_not_validated_and_says_why() {
        for exec in [
            "/bin/sh -c 'exec /usr/sbin/dockerd -H fd://'",
            "/usr/local/bin/start-docker.sh --foo",
            "/usr/bin/env dockerd",
            "/usr/sbin/dockerd-wrapper",
        ] {
            let ValidatePlan::Skip(why) = validate_plan(&words(exec)) else {
                panic!("{exec}: validated");
            };
            let first = &words(exec)[0];
            assert!(
                why.contains(first.as_str()) && why.contains("not dockerd"),
                "{exec}: {why}"
            );
        }
    }
}
