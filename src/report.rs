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
    let restart = if !p.restart {
        "not needed".to_string()
    } else if applied {
        "needed: run `systemctl restart docker` to apply (this version does not restart docker)"
            .to_string()
    } else {
        "needed".to_string()
    };
    let _ = writeln!(s, "  restart    {restart}");
    for n in &p.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    s
}

/// Text for `disable`.
pub fn disable_text(root: &str, p: &DisablePlan) -> String {
    let mut s = String::new();
    match &p.removed {
        Some(v) if p.changed => {
            let _ = writeln!(
                s,
                "Removed \"userns-remap\": {v:?} from /etc/docker/daemon.json."
            );
        }
        _ if p.changed => {
            let _ = writeln!(
                s,
                "Removed an empty \"userns-remap\" from /etc/docker/daemon.json."
            );
        }
        _ => {
            let _ = writeln!(
                s,
                "Already disabled: daemon.json has no \"userns-remap\"; nothing to change."
            );
        }
    }
    if root != "/" {
        let _ = writeln!(s, "  root       {root}");
    }
    if p.restart {
        let _ = writeln!(
            s,
            "  restart    needed: run `systemctl restart docker` to apply (this version does not restart docker)"
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
