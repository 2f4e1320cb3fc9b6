//! Why docker.service is not running: the last start attempt of the unit, read from the
//! system journal, and the cause dockerd gave, named when it is about remapping.
//!
//! [`wants_reading`] decides from the unit's state (over D-Bus) whether there is a failed
//! attempt to explain: ActiveState `failed`, a pending automatic restart
//! (`activating/auto-restart`), or a start in progress after restarts (NRestarts above 0:
//! crash-looping, so the attempt before the current one is the one that failed).
//! [`read_entries`] runs `journalctl -u docker.service -b -r -n 400 -o json` (found on the fixed
//! system PATH; [`run_bounded`]: at most [`MAX_BYTES`] of output, killed after [`TIMEOUT`]; read
//! again for up to [`JOURNAL_LAG`] while the attempt has no lines yet) and keeps what the
//! unit's processes wrote (transport `stdout`: dockerd's stdout and stderr), grouped by
//! `_SYSTEMD_INVOCATION_ID`. [`last_attempt`] picks the invocation, [`error_line`] the line
//! dockerd stopped with (it prints the error that ends it last, without logrus's `time=`),
//! and [`classify`] names the cause. All but [`read_entries`] and [`run_bounded`] are pure.
//!
//! The causes, from moby's source (`daemon/daemon_unix.go` `parseRemappedRoot`,
//! `setupRemappedRoot`, `setupDaemonRoot`; `pkg/idtools/idtools_unix.go` (20.10, 26) and
//! `internal/usergroup/lookup_unix.go` (28, 29) `lookupSubRangesFile`; `daemon/config/config.go`
//! `getConflictFreeConfiguration`; 29's `daemon/command/daemon_linux.go`) and from real failures
//! of docker 20.10.24, 26.1.5, 28.5.2 and 29.7.2 (the tests below quote them):
//!
//! | cause | dockerd says |
//! |---|---|
//! | `no-subid-ranges` | `Can't create ID mappings: no subgid ranges found for user "X"` (20.10, 26; 28 says `subuid` for either file, 29 starts `error creating ID mappings:`) |
//! | `remap-account` | `Error during uid lookup for "X"`, `Error during gid lookup`, `Error during groupname lookup`, `Uid N has no entry in /etc/passwd`, `Gid N has no entry`, `Invalid user/group specification in --userns-remap`, `Error during "dockremap" user creation` |
//! | `data-root` | `Cannot create daemon root: P: …`, `could not create or set daemon root permissions: P`, `a subdirectory in your graphroot path (P) restricts access to the remapped root uid/gid` |
//! | `remap-flag-conflict` | `the following directives are specified both as a flag and in the configuration file: userns-remap: …` |
//! | `snapshotter-conflict` | docker 29: `containerd-snapshotter is explicitly enabled, but is not compatible with userns remapping` |
//! | `other` | anything else: the line is quoted |
//! | `no-output` | dockerd wrote nothing in that attempt |
//!
//! Journal lines are written by dockerd, which logs names that containers choose: only lines
//! the unit's processes wrote to stdout/stderr count (a container's own output under the
//! journald log driver is sent by dockerd with transport `journal`, and skipped), a logrus
//! line never names a cause, and a quoted line is cut to [`MAX_LINE`] characters and its
//! control characters are replaced.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::host::programs;
use crate::host::systemd::{ActiveState, UnitState};

/// The unit read.
pub(crate) const UNIT: &str = "docker.service";
/// Journal entries read (the newest ones of this boot).
pub(crate) const ENTRIES: usize = 400;
/// Output of journalctl read at most; the rest is not read.
pub(crate) const MAX_BYTES: usize = 4 << 20;
/// journalctl is killed after this.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);
/// How long an attempt without lines in the journal is read again (journald's lag).
pub(crate) const JOURNAL_LAG: Duration = Duration::from_millis(1500);
/// A quoted line is cut to this many characters.
pub(crate) const MAX_LINE: usize = 1000;

/// Every cause, in the order `--prometheus` lists them.
pub const CAUSES: [&str; 7] = [
    NO_SUBID,
    ACCOUNT,
    DATA_ROOT,
    FLAG_CONFLICT,
    SNAPSHOTTER,
    OTHER,
    NO_OUTPUT,
];
const NO_SUBID: &str = "no-subid-ranges";
const ACCOUNT: &str = "remap-account";
const DATA_ROOT: &str = "data-root";
const FLAG_CONFLICT: &str = "remap-flag-conflict";
const SNAPSHOTTER: &str = "snapshotter-conflict";
const OTHER: &str = "other";
const NO_OUTPUT: &str = "no-output";

/// docker.service's last failed start, explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastFailure {
    /// One of [`CAUSES`].
    pub cause: &'static str,
    /// The cause in one line.
    pub summary: String,
    /// The unit.
    pub unit: &'static str,
    /// The invocation (systemd's InvocationID, hex) whose output this is.
    pub invocation_id: String,
    /// dockerd's line, as the journal has it (cut and without control characters); empty
    /// for `no-output`.
    pub line: String,
    /// What to do.
    pub advice: String,
}

/// What status knows of the configuration, for the advice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Context {
    /// The `userns-remap` value in daemon.json.
    pub(crate) value: Option<String>,
    /// The user it names.
    pub(crate) user: Option<String>,
    /// That user has a line in /etc/subuid; in /etc/subgid.
    pub(crate) has_subuid: bool,
    /// See `has_subuid`.
    pub(crate) has_subgid: bool,
    /// A line of /etc/subgid owned by the group part of the value (`user:group`), as
    /// `/etc/subgid:N: group:start:count`: dockerd does not read it for the user.
    pub(crate) group_subgid_line: Option<String>,
    /// Where a `--userns-remap` flag is passed to dockerd (`file:line`).
    pub(crate) flag_origins: Vec<String>,
}

/// Whether the unit's state shows a failed start, and if so whether the current invocation
/// is still starting (then the one before it is the failed one): `Some(in_progress)`.
pub(crate) fn wants_reading(u: &UnitState) -> Option<bool> {
    match u.active_state {
        ActiveState::Failed => Some(false),
        ActiveState::Activating if u.sub_state.starts_with("auto-restart") => Some(false),
        ActiveState::Activating if u.n_restarts > 0 => Some(true),
        ActiveState::Inactive if !u.result.is_empty() && u.result != "success" => Some(false),
        _ => None,
    }
}

/// One line a process of the unit wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `_SYSTEMD_INVOCATION_ID`.
    pub(crate) invocation: String,
    /// `MESSAGE`.
    pub(crate) message: String,
}

/// A journal field as text: a string, or an array of bytes (how `-o json` writes a value that
/// is not UTF-8).
fn field(e: &Value, name: &str) -> Option<String> {
    match e.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => {
            let bytes: Vec<u8> = a
                .iter()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        _ => None,
    }
}

/// The unit's own processes' lines (transport `stdout`) from `journalctl -o json` output,
/// in its order; anything else (systemd's messages, lines that are not JSON) is skipped.
pub(crate) fn parse_entries(json_lines: &[u8]) -> Vec<Entry> {
    json_lines
        .split(|b| *b == b'\n')
        .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
        .filter(|e| e.get("_TRANSPORT").and_then(Value::as_str) == Some("stdout"))
        .filter_map(|e| {
            Some(Entry {
                invocation: field(&e, "_SYSTEMD_INVOCATION_ID")?,
                message: field(&e, "MESSAGE")?,
            })
        })
        .collect()
}

/// The failed attempt: the current invocation's lines, or, while the current one is still
/// starting (`in_progress`), the lines of the invocation before it. `(invocation, lines)`;
/// the lines are empty when that invocation wrote nothing (or is not in the entries read).
pub(crate) fn last_attempt<'a>(
    entries: &'a [Entry],
    current: &str,
    in_progress: bool,
) -> Option<(String, Vec<&'a str>)> {
    let id = if in_progress || current.is_empty() {
        entries
            .iter()
            .rev()
            .map(|e| e.invocation.as_str())
            .find(|i| *i != current)?
            .to_string()
    } else {
        current.to_string()
    };
    let lines = entries
        .iter()
        .filter(|e| e.invocation == id)
        .map(|e| e.message.as_str())
        .collect();
    Some((id, lines))
}

/// A logrus line: `time="…" level=… msg="…"`.
fn logrus_level(line: &str) -> Option<&str> {
    if !line.starts_with("time=") {
        return None;
    }
    let at = line.find(" level=")? + " level=".len();
    line[at..].split_whitespace().next()
}

/// The line dockerd stopped with: one naming a known cause (searched from the end), else a
/// Go panic, else the last line that is not a logrus line (dockerd prints the error that ends
/// it to stderr as is), else the last logrus error, else the last line.
pub(crate) fn error_line<'a>(lines: &[&'a str]) -> Option<&'a str> {
    let lines: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines
        .iter()
        .rev()
        .find(|l| cause_of(l) != OTHER)
        .or_else(|| {
            lines
                .iter()
                .find(|l| l.starts_with("panic: ") || l.starts_with("fatal error: "))
        })
        .or_else(|| lines.iter().rev().find(|l| logrus_level(l).is_none()))
        .or_else(|| {
            lines
                .iter()
                .rev()
                .find(|l| logrus_level(l).is_some_and(|v| matches!(v, "error" | "fatal" | "panic")))
        })
        .or(lines.last())
        .copied()
}

/// The cause a line names (one of [`CAUSES`], never `no-output`). dockerd prints the errors
/// that stop it as they are; a logrus line (`time=… level=… msg=…`) is never one of them,
/// and may carry text a container chose (its name), so it is always `other`.
pub(crate) fn cause_of(line: &str) -> &'static str {
    if logrus_level(line).is_some() {
        return OTHER;
    }
    const ACCOUNT_MARKS: [&str; 7] = [
        "Error during uid lookup for ",
        "Error during gid lookup for ",
        "Error during groupname lookup for ",
        "has no entry in /etc/passwd",
        "has no entry in /etc/group",
        "Invalid user/group specification in --userns-remap",
        "could not get user for username ",
    ];
    if line.contains(" ranges found for user \"") {
        NO_SUBID
    } else if ACCOUNT_MARKS.iter().any(|m| line.contains(m))
        || (line.contains("Error during \"") && line.contains("\" user creation"))
    {
        ACCOUNT
    } else if line.contains("Cannot create daemon root: ")
        || line.contains("could not create or set daemon root permissions")
        || line.contains("restricts access to the remapped root uid/gid")
    {
        DATA_ROOT
    } else if conflicting_directives(line).is_some_and(|d| d.contains(&"userns-remap")) {
        FLAG_CONFLICT
    } else if line.contains("containerd-snapshotter is explicitly enabled")
        && line.contains("userns remapping")
    {
        SNAPSHOTTER
    } else {
        OTHER
    }
}

/// The directive names of "specified both as a flag and in the configuration file: a: (from
/// flag: x, from file: y), b: (…)".
fn conflicting_directives(line: &str) -> Option<Vec<&str>> {
    const MARK: &str = "specified both as a flag and in the configuration file: ";
    let rest = &line[line.find(MARK)? + MARK.len()..];
    let mut names = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => {
                let name = rest[start..i].trim().trim_start_matches(',').trim();
                if !name.is_empty() && !name.contains(' ') {
                    names.push(name);
                }
            }
            ',' if depth == 0 => start = i + 1,
            _ => {}
        }
    }
    Some(names)
}

/// The text between the first pair of double quotes after `after`.
fn quoted_after<'a>(line: &'a str, after: &str) -> Option<&'a str> {
    let rest = &line[line.find(after)? + after.len()..];
    let rest = &rest[rest.find('"')? + 1..];
    Some(&rest[..rest.find('"')?])
}

/// The text after `after` up to the next `: ` (or `)` / the end).
fn path_after<'a>(line: &'a str, after: &str) -> Option<&'a str> {
    let rest = &line[line.find(after)? + after.len()..];
    let end = rest
        .find(": ")
        .or_else(|| rest.find(')'))
        .unwrap_or(rest.len());
    Some(rest[..end].trim())
}

/// The line made safe to print: control characters replaced, cut to [`MAX_LINE`] characters.
pub(crate) fn clean(line: &str) -> String {
    let mut s: String = line
        .chars()
        .take(MAX_LINE)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if line.chars().count() > MAX_LINE {
        s.push('…');
    }
    s
}

/// Names the cause of `line` with what to do about it.
pub(crate) fn classify(line: &str, invocation: &str, ctx: &Context) -> LastFailure {
    let cause = cause_of(line);
    let user = ctx.user.as_deref().unwrap_or("?");
    let value = ctx.value.as_deref().unwrap_or("?");
    let (summary, advice) = match cause {
        NO_SUBID => no_subid(line, ctx),
        ACCOUNT => account(line, value),
        DATA_ROOT => data_root(line, user),
        FLAG_CONFLICT => (
            "\"userns-remap\" is set both as a dockerd flag and in /etc/docker/daemon.json, and dockerd refuses to start with both".to_string(),
            format!(
                "keep one of them: remove the --userns-remap flag ({}; after editing a unit file or drop-in, `systemctl daemon-reload`) or the \"userns-remap\" key from /etc/docker/daemon.json; then `systemctl restart docker` (docker-userns manages the key in daemon.json)",
                if ctx.flag_origins.is_empty() {
                    "in docker.service's ExecStart or DOCKER_OPTS".to_string()
                } else {
                    format!("passed at {}", ctx.flag_origins.join(", "))
                }
            ),
        ),
        SNAPSHOTTER => (
            "docker 29 refuses \"userns-remap\" while the containerd image store is switched on explicitly (\"features\": {\"containerd-snapshotter\": true})".to_string(),
            "remove \"containerd-snapshotter\": true from \"features\" in /etc/docker/daemon.json (or a --feature containerd-snapshotter flag): with remapping on, dockerd uses overlay2 in DATA_ROOT/UID.GID; or turn remapping off with `docker-userns disable`; then `systemctl restart docker`".to_string(),
        ),
        _ => (
            "dockerd stopped with an error that is not about remapping".to_string(),
            "fix what dockerd's line names, then `systemctl restart docker`; `journalctl -u docker.service -b` has the whole attempt".to_string(),
        ),
    };
    LastFailure {
        cause,
        summary,
        unit: UNIT,
        invocation_id: invocation.to_string(),
        line: clean(line),
        advice,
    }
}

fn no_subid(line: &str, ctx: &Context) -> (String, String) {
    let named = quoted_after(line, "ranges found for user").unwrap_or("?");
    let named = clean(named);
    // 20.10 and 26 name the file; 28 and 29 say "subuid" for either: what the files hold
    // decides, when the line is about the configured user.
    let ours = ctx.user.as_deref() == Some(named.as_str());
    let missing: Vec<&str> = if ours && !(ctx.has_subuid && ctx.has_subgid) {
        [
            (!ctx.has_subuid).then_some("/etc/subuid"),
            (!ctx.has_subgid).then_some("/etc/subgid"),
        ]
        .into_iter()
        .flatten()
        .collect()
    } else if line.contains("no subgid ranges") {
        vec!["/etc/subgid"]
    } else if line.contains("no subuid ranges") && line.contains("Can't create ID mappings") {
        // 20.10/26 wording: the subuid file.
        vec!["/etc/subuid"]
    } else {
        vec!["/etc/subuid", "/etc/subgid"]
    };
    let files = missing.join(" and ");
    let summary = format!(
        "dockerd finds no range for user {named:?} in {files}: it reads both files by the user's name (or uid), never by the group's"
    );
    // `enable` leaves a docker that is not running stopped: the start is the admin's.
    let start = "then `systemctl reset-failed docker.service` and `systemctl start docker.service`, and `docker-userns verify`";
    let mut advice = format!(
        "add a line `{named}:START:COUNT` to {files}: `docker-userns enable --user {named}` picks a free range (65536 ids, overlapping no other owner, the same numbers in both files) and adds it, journaled; or add it by hand and check with `docker-userns check`; {start}"
    );
    if let Some(g) = &ctx.group_subgid_line {
        advice = format!(
            "the line {g} is for the group, which dockerd does not read: give that line to {named} with `docker-userns enable --repair --user {named}` (its owner renamed, the same range, one journaled write); {start}"
        );
    }
    (summary, advice)
}

fn account(line: &str, value: &str) -> (String, String) {
    let v = clean(value);
    if line.contains("Invalid user/group specification") {
        return (
            format!("the \"userns-remap\" value {v:?} is not a user, user:group, uid or uid:gid"),
            "set \"userns-remap\" in /etc/docker/daemon.json to a user name, user:group, uid or uid:gid (or \"default\"), or let `docker-userns enable` set it; then `systemctl restart docker`".into(),
        );
    }
    if line.contains("\" user creation") {
        return (
            "dockerd could not create the dockremap user for \"userns-remap\": \"default\"".into(),
            "run `docker-userns enable`, which creates dockremap with its ranges before docker restarts".into(),
        );
    }
    // "Uid 4242 has no entry in /etc/passwd: …", "Gid 4242 has no entry in /etc/group: …".
    let number_after = |mark: &str| {
        line.find(mark)
            .map(|i| line[i + mark.len()..].split(' ').next().unwrap_or("?"))
    };
    let (what, name) = if let Some(n) = quoted_after(line, "Error during groupname lookup for") {
        ("group", n)
    } else if let Some(n) = quoted_after(line, "Error during gid lookup for") {
        (
            "group (named as the user, since the value has no group part)",
            n,
        )
    } else if let Some(n) = quoted_after(line, "Error during uid lookup for") {
        ("user", n)
    } else if let Some(n) = number_after("Uid ") {
        ("uid", n)
    } else if let Some(n) = number_after("Gid ") {
        ("gid", n)
    } else {
        ("user", "?")
    };
    let name = clean(name);
    (
        format!("the {what} {name:?} of \"userns-remap\": {v:?} does not exist"),
        format!(
            "create the {} {name}, or set \"userns-remap\" in /etc/docker/daemon.json to an existing one (`docker-userns enable --user NAME` creates a system user with its ranges and sets it); then `systemctl restart docker`",
            if what.starts_with("group") || what == "gid" {
                "group"
            } else {
                "user"
            }
        ),
    )
}

fn data_root(line: &str, user: &str) -> (String, String) {
    if line.contains("restricts access to the remapped root") {
        let p = clean(path_after(line, "graphroot path (").unwrap_or("?"));
        return (
            format!(
                "a directory above the remapped data root {p} does not let the remapped root (the first id of {user}'s ranges) traverse it"
            ),
            format!(
                "`chmod o+x` each directory above {p} that lacks it (`docker-userns enable` checks this before switching), then `systemctl restart docker`"
            ),
        );
    }
    let p = clean(
        path_after(line, "Cannot create daemon root: ")
            .or_else(|| path_after(line, "could not create or set daemon root permissions: "))
            .unwrap_or("?"),
    );
    (
        format!("dockerd cannot create or chown the remapped data root {p}"),
        format!(
            "{p} must be a directory dockerd can create and give to {user}'s first ids: move away what is there instead (a file or a link: `ls -ld {p}`) or fix its parent (read-only, full, immutable), then `systemctl restart docker`"
        ),
    )
}

/// Runs `cmd` (stdin and stderr null) and returns at most `max` bytes of its stdout: once
/// that much is read, or its stdout ends, the program is killed if it still runs (so a
/// program with more to say is cut off, not waited for). An error when it cannot be started
/// or gives no such answer within `timeout` (then it is killed).
pub(crate) fn run_bounded(
    mut cmd: Command,
    max: usize,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let shown = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.take(max as u64).read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    while !reader.is_finished() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{shown} gave no answer within {} ms",
                timeout.as_millis()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    reader
        .join()
        .map_err(|_| format!("reading the output of {shown} failed"))
}

/// The unit's lines among its newest journal entries of this boot, oldest first:
/// `journalctl -r` (newest first, so that the [`MAX_BYTES`] bound drops the oldest), at most
/// [`ENTRIES`] entries, within [`TIMEOUT`].
pub(crate) fn read_entries() -> Result<Vec<Entry>, String> {
    let journalctl = programs::find("journalctl").map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&journalctl);
    cmd.args([
        "--no-pager",
        "-b",
        "-r",
        "-u",
        UNIT,
        "-n",
        &ENTRIES.to_string(),
        "-o",
        "json",
        "--output-fields=MESSAGE,_TRANSPORT,_SYSTEMD_INVOCATION_ID",
    ]);
    let mut entries = parse_entries(&run_bounded(cmd, MAX_BYTES, TIMEOUT)?);
    entries.reverse();
    Ok(entries)
}

/// docker.service's last failed start, explained, when its state shows one (`Ok(None)`:
/// nothing to explain). An error says why the journal could not be read.
pub(crate) fn last_failure(u: &UnitState, ctx: &Context) -> Result<Option<LastFailure>, String> {
    let Some(in_progress) = wants_reading(u) else {
        return Ok(None);
    };
    // journald writes a unit's output some time after the process wrote it (under load,
    // seconds): an attempt without lines yet is read again, for at most JOURNAL_LAG.
    let deadline = Instant::now() + JOURNAL_LAG;
    let mut entries = read_entries()?;
    while Instant::now() < deadline
        && last_attempt(&entries, &u.invocation_id, in_progress)
            .is_none_or(|(_, lines)| lines.is_empty())
    {
        std::thread::sleep(Duration::from_millis(250));
        entries = read_entries()?;
    }
    let found = last_attempt(&entries, &u.invocation_id, in_progress);
    // Nothing at all from the unit's processes in this boot: the journal is not readable for
    // the caller, not an attempt that wrote nothing.
    let (Some((id, lines)), false) = (found, entries.is_empty()) else {
        return Err(format!(
            "the journal has no lines of {UNIT} from this boot that the caller may read (as a user not in the adm or systemd-journal group, none are)"
        ));
    };
    Ok(Some(match error_line(&lines) {
        Some(line) => classify(line, &id, ctx),
        None => LastFailure {
            cause: NO_OUTPUT,
            summary: format!(
                "dockerd wrote nothing in its last start (systemd: Result={}, exit status {})",
                u.result, u.exec_main_status
            ),
            unit: UNIT,
            invocation_id: id,
            line: String::new(),
            advice: "`journalctl -u docker.service -b` shows systemd's own messages on that start (a missing program, a wrong ExecStart)".into(),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real last lines of failed starts, as the journal had them.
    /// docker.io 26.1.5 (Debian 13), `"userns-remap": "remapu:remapg"` with only a `remapg:`
    /// line in /etc/subgid.
    const D26_SUBGID: &str = "Can't create ID mappings: no subgid ranges found for user \"remapu\"";
    /// docker.io 28.5.2 (Debian forky), the same host: 28 says subuid for the subgid file.
    const D28_SUBGID: &str = "Can't create ID mappings: no subuid ranges found for user \"remapu\"";
    /// dockerd 29.7.2, the same host.
    const D29_SUBGID: &str =
        "error creating ID mappings: no subuid ranges found for user \"remapu\"";
    /// docker.io 20.10.24 (Debian 12), no `remapu` line in /etc/subuid.
    const D20_SUBUID: &str = "Can't create ID mappings: no subuid ranges found for user \"remapu\"";
    /// docker.io 20.10.24, the `user:group` host: 20.10 and 26 name the file.
    const D20_SUBGID: &str = "Can't create ID mappings: no subgid ranges found for user \"remapu\"";
    /// docker 26.1.5; word for word the same on 20.10.24, 28.5.2 and 29.7.2.
    const D26_NO_USER: &str = "Error during uid lookup for \"nosuch\": getent unable to find entry \"nosuch\" in passwd database";
    const D26_NO_GROUP: &str = "Error during groupname lookup for \"nosuchg\": getent unable to find entry \"nosuchg\" in group database";
    const D26_NO_UID: &str = "Uid 4242 has no entry in /etc/passwd: getent unable to find entry \"4242\" in passwd database";
    const D26_BAD_VALUE: &str = "Invalid user/group specification in --userns-remap: \"a:b:c\"";
    /// A drop-in (26.1.5) or DOCKER_OPTS (20.10.24, 28.5.2) passing --userns-remap=default
    /// next to the key: the same line.
    const D26_CONFLICT: &str = "unable to configure the Docker daemon with file /etc/docker/daemon.json: the following directives are specified both as a flag and in the configuration file: userns-remap: (from flag: default, from file: default)";
    const D26_ROOT_FILE: &str = "Cannot create daemon root: /var/lib/docker/200000.200000: mkdir /var/lib/docker/200000.200000: not a directory";
    const D26_ROOT_OX: &str = "a subdirectory in your graphroot path (/var/lib/docker/200000.200000) restricts access to the remapped root uid/gid; please fix by allowing 'o+x' permissions on existing directories";
    const D29_SNAPSHOTTER: &str = "containerd-snapshotter is explicitly enabled, but is not compatible with userns remapping. Please disable userns remapping or containerd-snapshotter";
    const D28_BAD_KEY: &str = "unable to configure the Docker daemon with file /etc/docker/daemon.json: the following directives don't match any configuration option: nosuchkey";
    const LOGRUS_INFO: &str = "time=\"2026-12-06T22:33:19.980Z\" level=info msg=\"User namespaces: ID ranges will be mapped to subuid/subgid ranges of: remapu\"";

    fn ctx() -> Context {
        Context {
            value: Some("remapu:remapg".into()),
            user: Some("remapu".into()),
            has_subuid: true,
            has_subgid: false,
            group_subgid_line: None,
            flag_origins: vec![],
        }
    }

    #[test]
    fn every_real_line_gets_its_cause() {
        for (line, cause) in [
            (D26_SUBGID, NO_SUBID),
            (D28_SUBGID, NO_SUBID),
            (D29_SUBGID, NO_SUBID),
            (D20_SUBUID, NO_SUBID),
            (D20_SUBGID, NO_SUBID),
            (D26_NO_USER, ACCOUNT),
            (D26_NO_GROUP, ACCOUNT),
            (D26_NO_UID, ACCOUNT),
            (D26_BAD_VALUE, ACCOUNT),
            (
                "Error during \"dockremap\" user creation: exit status 1",
                ACCOUNT,
            ),
            (D26_CONFLICT, FLAG_CONFLICT),
            (D26_ROOT_FILE, DATA_ROOT),
            (D26_ROOT_OX, DATA_ROOT),
            (
                "could not create or set daemon root permissions: /srv/docker: permission denied",
                DATA_ROOT,
            ),
            (D29_SNAPSHOTTER, SNAPSHOTTER),
            (D28_BAD_KEY, OTHER),
            (
                "unable to configure the Docker daemon with file /etc/docker/daemon.json: the following directives are specified both as a flag and in the configuration file: data-root: (from flag: /a, from file: /b)",
                OTHER,
            ),
            (LOGRUS_INFO, OTHER),
        ] {
            assert_eq!(cause_of(line), cause, "{line}");
        }
    }

    #[test]
    fn the_missing_file_comes_from_the_files_when_dockerd_28_says_subuid_for_both() {
        // 28 and 29 say "subuid" although /etc/subgid is the file without the line.
        for line in [D26_SUBGID, D28_SUBGID, D29_SUBGID] {
            let f = classify(line, "abc", &ctx());
            assert_eq!(f.cause, NO_SUBID);
            assert!(
                f.summary.contains("for user \"remapu\" in /etc/subgid:"),
                "{}",
                f.summary
            );
            assert!(
                f.advice.contains("`remapu:START:COUNT` to /etc/subgid"),
                "{}",
                f.advice
            );
            assert_eq!(f.line, line);
            assert_eq!(f.invocation_id, "abc");
        }
        // The configured user's /etc/subuid line missing (20.10's words match).
        let mut c = ctx();
        (c.has_subuid, c.has_subgid) = (false, true);
        let f = classify(D20_SUBUID, "x", &c);
        assert!(
            f.summary.contains("\"remapu\" in /etc/subuid:"),
            "{}",
            f.summary
        );
        let f = classify(D20_SUBGID, "x", &ctx());
        assert!(
            f.summary.contains("\"remapu\" in /etc/subgid:"),
            "{}",
            f.summary
        );
        // Another user than the configured one: the line decides.
        let f = classify(&D20_SUBUID.replace("remapu", "bob"), "x", &ctx());
        assert!(
            f.summary.contains("\"bob\" in /etc/subuid:"),
            "{}",
            f.summary
        );
        // The group's line is named, and what to do with it.
        let mut c = ctx();
        c.group_subgid_line = Some("/etc/subgid:3: remapg:200000:65536".into());
        let f = classify(D26_SUBGID, "x", &c);
        assert!(
            f.advice
                .contains("the line /etc/subgid:3: remapg:200000:65536 is for the group")
                && f.advice.contains("give that line to remapu"),
            "{}",
            f.advice
        );
    }

    #[test]
    fn accounts_data_roots_conflicts_and_the_snapshotter_are_explained() {
        let c = ctx();
        let f = classify(D26_NO_USER, "i", &c);
        assert!(f.summary.contains("the user \"nosuch\""), "{}", f.summary);
        assert!(f.advice.contains("create the user nosuch"), "{}", f.advice);
        let f = classify(D26_NO_GROUP, "i", &c);
        assert!(f.summary.contains("the group \"nosuchg\""), "{}", f.summary);
        assert!(f.advice.contains("create the group nosuchg"));
        let f = classify(D26_NO_UID, "i", &c);
        assert!(f.summary.contains("the uid \"4242\""), "{}", f.summary);
        let f = classify(D26_BAD_VALUE, "i", &c);
        assert!(
            f.summary
                .contains("is not a user, user:group, uid or uid:gid")
        );

        let f = classify(D26_ROOT_FILE, "i", &c);
        assert!(
            f.summary
                .contains("remapped data root /var/lib/docker/200000.200000"),
            "{}",
            f.summary
        );
        assert!(f.advice.contains("ls -ld /var/lib/docker/200000.200000"));
        let f = classify(D26_ROOT_OX, "i", &c);
        assert!(
            f.advice
                .contains("`chmod o+x` each directory above /var/lib/docker/200000.200000")
        );

        let mut c = ctx();
        c.flag_origins = vec!["/etc/systemd/system/docker.service.d/remap.conf:3".into()];
        let f = classify(D26_CONFLICT, "i", &c);
        assert!(
            f.advice
                .contains("passed at /etc/systemd/system/docker.service.d/remap.conf:3"),
            "{}",
            f.advice
        );
        let f = classify(D29_SNAPSHOTTER, "i", &c);
        assert!(f.advice.contains("remove \"containerd-snapshotter\": true"));
        let f = classify(D28_BAD_KEY, "i", &c);
        assert_eq!(f.cause, OTHER);
        assert_eq!(f.line, D28_BAD_KEY);
    }

    #[test]
    fn a_logrus_line_quoting_a_cause_names_none() {
        // dockerd logging a name a container chose, at error level, after running a while.
        let line = r#"time="2026-12-06T22:00:00Z" level=error msg="cannot start container Cannot create daemon root: /var/lib/docker: x, a subdirectory in your graphroot path (/) restricts access to the remapped root uid/gid""#;
        assert_eq!(cause_of(line), OTHER);
        assert_eq!(error_line(&[LOGRUS_INFO, line]), Some(line));
        assert_eq!(classify(line, "i", &ctx()).cause, OTHER);
        // A plain line before it is the one dockerd stopped with.
        assert_eq!(error_line(&[D28_BAD_KEY, line]), Some(D28_BAD_KEY));
    }

    #[test]
    fn the_error_line_is_the_one_dockerd_stopped_with() {
        // dockerd 29 creating dockremap, then refusing: useradd's output is not the error.
        let lines = [
            "new user: name=dockremap, UID=994, GID=992, home=/home/dockremap, shell=/bin/false, from=none",
            LOGRUS_INFO,
            D29_SNAPSHOTTER,
        ];
        assert_eq!(error_line(&lines), Some(D29_SNAPSHOTTER));
        // A known cause wins over lines after it; a plain line over logrus lines.
        assert_eq!(error_line(&[D26_SUBGID, LOGRUS_INFO]), Some(D26_SUBGID));
        assert_eq!(
            error_line(&["plain one", LOGRUS_INFO, "plain two", LOGRUS_INFO]),
            Some("plain two")
        );
        let err = "time=\"x\" level=error msg=\"boom\"";
        assert_eq!(error_line(&[err, LOGRUS_INFO]), Some(err));
        assert_eq!(
            error_line(&[
                "panic: runtime error",
                "goroutine 1 [running]:",
                "\tmain.go:1"
            ]),
            Some("panic: runtime error")
        );
        assert_eq!(error_line(&[LOGRUS_INFO]), Some(LOGRUS_INFO));
        assert_eq!(error_line(&[" ", ""]), None);
    }

    fn entry(inv: &str, msg: &str) -> Entry {
        Entry {
            invocation: inv.into(),
            message: msg.into(),
        }
    }

    #[test]
    fn the_attempt_is_the_current_invocation_or_the_one_before_a_start_in_progress() {
        let e = [
            entry("a", "old"),
            entry("b", "b1"),
            entry("b", "b2"),
            entry("c", "c1"),
        ];
        assert_eq!(
            last_attempt(&e, "b", false),
            Some(("b".into(), vec!["b1", "b2"]))
        );
        // c is starting (crash loop): the invocation before it is the failed attempt.
        assert_eq!(
            last_attempt(&e, "c", true),
            Some(("b".into(), vec!["b1", "b2"]))
        );
        // The current one wrote nothing: no older attempt is quoted in its place.
        assert_eq!(last_attempt(&e, "d", false), Some(("d".into(), vec![])));
        assert_eq!(last_attempt(&[], "d", true), None);
    }

    #[test]
    fn journal_json_keeps_the_units_own_lines() {
        // The second line: a container's output under the journald log driver, which dockerd
        // sends with transport "journal" from inside docker.service.
        let out =
            br#"{"_TRANSPORT":"journal","INVOCATION_ID":"b","MESSAGE":"Starting docker.service"}
{"_TRANSPORT":"journal","_SYSTEMD_INVOCATION_ID":"b","CONTAINER_NAME":"evil","MESSAGE":"Can't create ID mappings: no subgid ranges found for user \"x\""}
{"_TRANSPORT":"stdout","_SYSTEMD_INVOCATION_ID":"b","MESSAGE":"Can't create ID mappings: x"}
{"_TRANSPORT":"stdout","_SYSTEMD_INVOCATION_ID":"b","MESSAGE":[104,105,255]}
not json
{"_TRANSPORT":"stdout","MESSAGE":"no invocation"}
"#;
        assert_eq!(
            parse_entries(out),
            [
                entry("b", "Can't create ID mappings: x"),
                entry("b", "hi\u{fffd}")
            ]
        );
    }

    #[test]
    fn quoted_lines_are_cut_and_lose_control_characters() {
        let evil = format!(
            "Error during uid lookup for \"x\u{1b}[2J\": {}",
            "y".repeat(5000)
        );
        let f = classify(&evil, "i", &ctx());
        assert!(!f.line.contains('\u{1b}') && !f.summary.contains('\u{1b}'));
        assert_eq!(f.line.chars().count(), MAX_LINE + 1);
    }

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn a_program_is_read_within_its_bounds() {
        assert_eq!(
            run_bounded(sh("printf 'a\\nb'"), 100, TIMEOUT).unwrap(),
            b"a\nb"
        );
        // Endless output: cut at the bound at once, the program killed.
        let t0 = Instant::now();
        let out = run_bounded(sh("yes"), 1 << 20, TIMEOUT).unwrap();
        assert_eq!(out.len(), 1 << 20);
        assert!(t0.elapsed() < TIMEOUT, "{:?}", t0.elapsed());
        // No answer: an error after the timeout, the program killed.
        let t0 = Instant::now();
        let e = run_bounded(sh("sleep 30"), 100, Duration::from_millis(300)).unwrap_err();
        assert!(e.contains("gave no answer within 300 ms"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        let e = run_bounded(Command::new("/nonexistent/journalctl"), 1, TIMEOUT).unwrap_err();
        assert!(e.contains("cannot run /nonexistent/journalctl"), "{e}");
    }

    #[test]
    fn only_failed_or_restarting_units_are_read() {
        let st = |a: ActiveState, sub: &str, n: u32, result: &str| UnitState {
            active_state: a,
            sub_state: sub.into(),
            n_restarts: n,
            result: result.into(),
            ..UnitState::default()
        };
        assert_eq!(
            wants_reading(&st(ActiveState::Failed, "failed", 0, "exit-code")),
            Some(false)
        );
        assert_eq!(
            wants_reading(&st(ActiveState::Activating, "auto-restart", 1, "exit-code")),
            Some(false)
        );
        assert_eq!(
            wants_reading(&st(ActiveState::Activating, "start", 2, "success")),
            Some(true)
        );
        assert_eq!(
            wants_reading(&st(ActiveState::Activating, "start", 0, "success")),
            None
        );
        assert_eq!(
            wants_reading(&st(ActiveState::Active, "running", 3, "success")),
            None
        );
        assert_eq!(
            wants_reading(&st(ActiveState::Inactive, "dead", 0, "success")),
            None
        );
        assert_eq!(
            wants_reading(&st(ActiveState::Inactive, "dead", 0, "exit-code")),
            Some(false)
        );
    }
}
