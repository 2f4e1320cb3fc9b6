//! Output: human text and the `--json` documents.

use std::fmt::Write;

use serde::Serialize;
use serde_json::{Value, json};

use crate::plan::{DisablePlan, FileChange, Plan, RangePlan};
use crate::subid::Problem;

/// Version of the `--json` documents; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// Wraps a command's result as the `--json` document.
pub fn json_doc<T: Serialize>(command: &str, body: &T) -> Value {
    let mut doc = json!({ "schema_version": SCHEMA_VERSION, "command": command });
    if let (Some(d), Value::Object(b)) = (
        doc.as_object_mut(),
        serde_json::to_value(body).expect("serializable"),
    ) {
        d.extend(b);
    }
    doc
}

/// The `--json` document for an error.
pub fn json_error(command: &str, code: crate::exit::Code, message: &str) -> Value {
    json!({
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "error": { "code": code as i32, "kind": code.name(), "message": message },
    })
}

fn range_line(r: &RangePlan, user: &str, applied: bool) -> String {
    let verb = match (r.add, applied) {
        (true, false) => "add",
        (true, true) => "added",
        (false, _) => "keep",
    };
    format!("{verb} {user}:{}:{} in {}", r.start, r.count, r.file)
}

fn change_word(c: &FileChange, applied: bool) -> &'static str {
    match (c, applied) {
        (FileChange::None, _) => "unchanged",
        (FileChange::Create, false) => "create",
        (FileChange::Create, true) => "created",
        (FileChange::Update, false) => "update",
        (FileChange::Update, true) => "updated",
    }
}

fn restart_word(needed: bool, restarted: bool, downtime_ms: Option<u64>, applied: bool) -> String {
    match (needed, restarted, applied) {
        (false, _, _) => "not needed".into(),
        (true, true, _) => format!(
            "done: docker restarted and passed the health gate (engine down for {} ms)",
            downtime_ms.unwrap_or_default()
        ),
        (true, false, true) => "needed: docker was not restarted (see note)".into(),
        (true, false, false) => {
            "needed: `enable` restarts docker and checks it comes back remapped".into()
        }
    }
}

/// Text for `plan` (applied = false) and `enable` (applied = true).
pub fn enable_text(root: &str, p: &Plan, applied: bool) -> String {
    let mut s = String::new();
    let head = match (applied, p.changed) {
        (_, false) => "Already converged: nothing to change.",
        (false, true) => "Plan: `docker-userns enable` would make these changes:",
        (true, true) => "Changed:",
    };
    let _ = writeln!(s, "{head}");
    if root != "/" {
        let _ = writeln!(s, "  root       {root}");
    }
    let user = &p.user;
    let who = match (user.create, user.uid) {
        (true, _) if applied => format!("{} created (system user, no login, own group)", user.name),
        (true, _) => format!("{}: create (system user, no login, own group)", user.name),
        (false, Some(uid)) => format!("{} (uid {uid}) exists", user.name),
        (false, None) => user.name.clone(),
    };
    let _ = writeln!(s, "  user       {who}");
    let _ = writeln!(
        s,
        "  subuid     {}",
        range_line(&p.subuid, &user.name, applied)
    );
    let _ = writeln!(
        s,
        "  subgid     {}",
        range_line(&p.subgid, &user.name, applied)
    );
    let remap = p
        .daemon_json
        .get("userns-remap")
        .and_then(Value::as_str)
        .unwrap_or("");
    let _ = writeln!(
        s,
        "  daemon     /etc/docker/daemon.json: \"userns-remap\": {remap:?} ({})",
        change_word(&p.daemon_json_change, applied)
    );
    let restart = restart_word(p.restart, p.restarted, p.downtime_ms, applied);
    let _ = writeln!(s, "  restart    {restart}");
    for n in &p.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    s
}

/// Text for `disable`.
pub fn disable_text(root: &str, p: &DisablePlan) -> String {
    let mut s = String::new();
    let head = match (&p.removed, &p.daemon_json_change, p.changed) {
        (Some(v), FileChange::Update, _) => {
            format!("Removed \"userns-remap\": {v:?} from /etc/docker/daemon.json.")
        }
        (None, FileChange::Update, _) => {
            "Removed an empty \"userns-remap\" from /etc/docker/daemon.json.".into()
        }
        (_, _, true) => {
            "daemon.json has no \"userns-remap\", but docker still ran remapped:".into()
        }
        _ => "Already disabled: daemon.json has no \"userns-remap\"; nothing to change.".into(),
    };
    let _ = writeln!(s, "{head}");
    if root != "/" {
        let _ = writeln!(s, "  root       {root}");
    }
    if p.restart {
        let _ = writeln!(
            s,
            "  restart    {}",
            restart_word(true, p.restarted, p.downtime_ms, true)
        );
    }
    for n in &p.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    s
}

/// The result of `check`.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    /// True when no problem was found.
    pub ok: bool,
    /// Every problem, by file and line.
    pub problems: Vec<Problem>,
}

/// Text for `check`.
pub fn check_text(root: &str, r: &CheckReport) -> String {
    let mut s = String::new();
    for p in &r.problems {
        let _ = writeln!(s, "{}:{}: {}: {}", p.file, p.line, p.kind, p.message);
    }
    let where_ = if root == "/" {
        String::new()
    } else {
        format!(" (root {root})")
    };
    if r.ok {
        let _ = writeln!(s, "/etc/subuid and /etc/subgid: no problems found{where_}.");
    } else {
        let _ = writeln!(s, "{} problem(s) found{where_}.", r.problems.len());
    }
    s
}
