//! Output: human text and the `--json` documents.

use std::fmt::Write;

use serde::Serialize;
use serde_json::{Value, json};

use crate::commands::check::CheckReport;
use crate::commands::shift::ShiftResult;
use crate::commands::status::Status;
use crate::commands::verify::Verification;
use crate::host::inspect::Impact;
use crate::host::setup::{Setup, StoreSwitch};
use crate::run::carry::Carry;
use crate::run::converge::Outcome;
use crate::run::note::Note;

mod notes;
use crate::run::plan::{DisablePlan, FileChange, Plan, RangePlan, Repair};
pub use notes::note_text;

/// Version of the `--json` documents; bumped on incompatible changes.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// Wraps a command's result as the `--json` document. Its typed notes (a `notes` array of
/// objects, each with its `kind`) become `facts`, and `notes` their sentences.
pub(crate) fn json_doc<T: Serialize>(command: &str, body: &T) -> Value {
    let mut doc = json!({ "schema_version": SCHEMA_VERSION, "command": command });
    if let (Some(d), Value::Object(b)) = (
        doc.as_object_mut(),
        serde_json::to_value(body).expect("serializable"),
    ) {
        d.extend(b);
        if let Some(Value::Array(facts)) = d.get("notes")
            && facts.iter().all(Value::is_object)
        {
            let facts = facts.clone();
            let text: Vec<String> = facts
                .iter()
                .map(|f| {
                    let n: Note = serde_json::from_value(f.clone()).expect("a note reads back");
                    note_text(&n)
                })
                .collect();
            d.insert("notes".into(), json!(text));
            d.insert("facts".into(), Value::Array(facts));
        }
    }
    doc
}

/// The `--json` document for what clap answered instead of parsing (`text`: its rendering,
/// without ANSI styles): `{"help": text}` for `--help`, `{"version": "X.Y.Z"}` for
/// `--version`, and otherwise a usage error whose message is the rendering's first line
/// without `error: `, which names the argument and the value (`invalid value '0' for
/// '--count <N>': …`). `command` is "" (the command line was not understood as a command).
pub fn clap_json(kind: clap::error::ErrorKind, text: &str) -> Value {
    use clap::error::ErrorKind;
    match kind {
        ErrorKind::DisplayHelp => {
            json!({ "schema_version": SCHEMA_VERSION, "command": "", "help": text })
        }
        ErrorKind::DisplayVersion => json!({
            "schema_version": SCHEMA_VERSION,
            "command": "",
            "version": env!("CARGO_PKG_VERSION"),
        }),
        _ => {
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            let msg = first.strip_prefix("error: ").unwrap_or(first).trim();
            let msg = if msg.is_empty() {
                kind.to_string()
            } else {
                msg.to_string()
            };
            json_error("", crate::exit::Code::Usage, &msg, None)
        }
    }
}

/// The `--json` document for an error. A refusal (exit 3) adds `error.refusal`:
/// `{kind, path, line, message}`, path and line null when it is not about one file or line.
pub fn json_error(
    command: &str,
    code: crate::exit::Code,
    message: &str,
    refusal: Option<&crate::exit::Conflict>,
) -> Value {
    let mut error = json!({ "code": code as i32, "kind": code.name(), "message": message });
    if code == crate::exit::Code::Conflict
        && let (Some(r), Some(e)) = (refusal, error.as_object_mut())
    {
        e.insert(
            "refusal".into(),
            json!({ "kind": r.kind, "path": r.path, "line": r.line, "message": r.message }),
        );
    }
    json!({
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "error": error,
    })
}

fn range_line(r: &RangePlan, user: &str, applied: bool) -> String {
    // --repair of a line dockerd needs under the user's name: the owner changes, not the range.
    if let (true, Some(owner), None) = (r.add, &r.renamed_from, r.moved_from) {
        return format!(
            "{} {owner}:{}:{} in {} to {user}:{}:{} (same range; dockerd reads it by the user's name)",
            if applied { "renamed" } else { "rename" },
            r.start,
            r.count,
            r.file,
            r.start,
            r.count
        );
    }
    // --repair or --start moves the user's range: the line replaces the old one.
    if let (true, Some(from)) = (r.add, r.moved_from) {
        return format!(
            "{} {user}'s range in {} from {from} to {}:{}",
            if applied { "moved" } else { "move" },
            r.file,
            r.start,
            r.count
        );
    }
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
pub(crate) fn enable_text(root: &str, o: &Outcome<Plan>, applied: bool) -> String {
    let p = &o.plan;
    let mut s = String::new();
    let head = match (applied, o.changed) {
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
        (false, Some(uid)) => format!(
            "{} (uid {uid}) exists{}",
            user.name,
            match &user.group {
                Some(g) if *g != user.name => format!(", group {g} (the value's group part)"),
                _ => String::new(),
            }
        ),
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
    if remap.is_empty() && user.value_from != "/etc/docker/daemon.json" {
        let _ = writeln!(
            s,
            "  daemon     {} names the user; /etc/docker/daemon.json stays without \"userns-remap\" ({})",
            user.value_from,
            change_word(&p.daemon_json_change, applied)
        );
    } else {
        let _ = writeln!(
            s,
            "  daemon     /etc/docker/daemon.json: \"userns-remap\": {remap:?} ({})",
            change_word(&p.daemon_json_change, applied)
        );
    }
    let restart = restart_word(o.restart, o.restarted, o.downtime_ms, applied);
    let _ = writeln!(s, "  restart    {restart}");
    if let Some(st) = &o.setup {
        s.push_str(&setup_text(st));
    }
    if let Some(i) = &o.impact {
        match &p.repair {
            Some(r) => s.push_str(&repair_text(i, r, live_restore(o.setup.as_ref()))),
            None => s.push_str(&impact_text(i, true, live_restore(o.setup.as_ref()))),
        }
    }
    if let Some(c) = &o.carry {
        s.push_str(&carry_text(c, applied));
    }
    for n in o.notes.iter().map(note_text) {
        let _ = writeln!(s, "  note: {n}");
    }
    s
}

/// What `--carry` carried (or would).
fn carry_text(c: &Carry, applied: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  carry      {} image(s), {} volume(s) {} (images: {} MiB as the engine counts them){}",
        c.images.len(),
        c.volumes.len(),
        if applied { "carried" } else { "to carry" },
        c.bytes >> 20,
        c.spool
            .as_deref()
            .map_or_else(String::new, |p| format!("; spool kept in {p}"))
    );
    list(&mut s, "images", &c.images);
    list(&mut s, "volumes", &c.volumes);
    list(&mut s, "skipped", &c.skipped);
    list(&mut s, "FAILED", &c.failed);
    if let Some(why) = &c.export_fallback {
        let _ = writeln!(s, "  exported one by one: {why}");
    }
    list(
        &mut s,
        "containers cannot be carried (create them again)",
        &c.containers_not_carried,
    );
    s
}

/// Text for `disable`.
pub(crate) fn disable_text(root: &str, o: &Outcome<DisablePlan>) -> String {
    disable_text_as(root, o, true)
}

/// Text for `plan --disable`.
pub(crate) fn disable_plan_text(root: &str, o: &Outcome<DisablePlan>) -> String {
    disable_text_as(root, o, false)
}

fn disable_text_as(root: &str, o: &Outcome<DisablePlan>, applied: bool) -> String {
    let p = &o.plan;
    let mut s = String::new();
    let head = match (&p.removed, &p.daemon_json_change, o.changed) {
        (Some(v), FileChange::Update, _) if applied => {
            format!("Removed \"userns-remap\": {v:?} from /etc/docker/daemon.json.")
        }
        (Some(v), FileChange::Update, _) => format!(
            "Plan: `docker-userns disable` would remove \"userns-remap\": {v:?} from /etc/docker/daemon.json."
        ),
        (None, FileChange::Update, _) if applied => {
            "Removed an empty \"userns-remap\" from /etc/docker/daemon.json.".into()
        }
        (None, FileChange::Update, _) => {
            "Plan: `docker-userns disable` would remove an empty \"userns-remap\" from /etc/docker/daemon.json.".into()
        }
        (_, _, true) if applied => {
            "daemon.json has no \"userns-remap\", but docker still ran remapped:".into()
        }
        (_, _, true) => {
            "daemon.json has no \"userns-remap\", but docker still runs remapped: `docker-userns disable` would restart it:".into()
        }
        _ => "Already disabled: daemon.json has no \"userns-remap\"; nothing to change.".into(),
    };
    let _ = writeln!(s, "{head}");
    if root != "/" {
        let _ = writeln!(s, "  root       {root}");
    }
    if o.restart {
        let _ = writeln!(
            s,
            "  restart    {}",
            if applied {
                restart_word(true, o.restarted, o.downtime_ms, true)
            } else {
                "needed: `disable` restarts docker and checks it comes back not remapped".into()
            }
        );
    }
    if let Some(st) = &o.setup {
        s.push_str(&setup_text(st));
    }
    if let Some(i) = &o.impact {
        s.push_str(&impact_text(i, false, live_restore(o.setup.as_ref())));
    }
    if let Some(c) = &o.carry {
        s.push_str(&carry_text(c, true));
    }
    for n in o.notes.iter().map(note_text) {
        let _ = writeln!(s, "  note: {n}");
    }
    s
}

/// Text for `check`.
pub(crate) fn check_text(root: &str, r: &CheckReport) -> String {
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
        let _ = writeln!(
            s,
            "/etc/subuid and /etc/subgid (and the userns-remap value): no problems found{where_}."
        );
    } else {
        let _ = writeln!(s, "{} problem(s) found{where_}.", r.problems.len());
    }
    s
}

fn list(s: &mut String, label: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let shown: Vec<&str> = items.iter().take(10).map(String::as_str).collect();
    let more = if items.len() > 10 {
        format!(", … ({} more)", items.len() - 10)
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "    {label} ({}): {}{more}",
        items.len(),
        shown.join(", ")
    );
}

fn live_restore(setup: Option<&Setup>) -> bool {
    setup.is_some_and(|s| s.live_restore == Some(true))
}

/// How docker is set up, as text: where the engine listens, the data root, live-restore and
/// swarm, each with where it comes from.
pub(crate) fn setup_text(st: &Setup) -> String {
    let mut s = String::new();
    match (&st.engine_socket, &st.engine_problem) {
        (Some(sock), _) => {
            let _ = writeln!(
                s,
                "  engine     {sock} (from {}){}",
                st.engine_socket_from,
                if st.socket_activation {
                    "; socket-activated: a connection to it starts docker.service"
                } else {
                    ""
                }
            );
        }
        (None, Some(why)) => {
            let _ = writeln!(s, "  engine     {why}");
        }
        (None, None) => {}
    }
    let _ = writeln!(
        s,
        "  data root  {} (from {})",
        st.data_root, st.data_root_from
    );
    if let Some(on) = st.live_restore {
        let _ = writeln!(
            s,
            "  live-restore {}",
            if on {
                "on: containers outlive a docker stop, so a switch stops them through the engine API first"
            } else {
                "off"
            }
        );
    }
    if let Some(state) = &st.swarm {
        let _ = writeln!(
            s,
            "  swarm      {state}{}",
            match st.swarm_manager {
                Some(true) => " (manager)",
                Some(false) => " (worker)",
                None => "",
            }
        );
    }
    s
}

/// What the engine holds and which running containers the switch stops.
fn held(s: &mut String, i: &Impact, live_restore: bool) {
    list(s, "images", &i.images);
    list(s, "containers", &i.containers);
    list(s, "volumes", &i.volumes);
    list(
        s,
        if live_restore {
            "stopped through the engine API before docker stops (live-restore would keep them running out of sight)"
        } else {
            "stopped by the restart"
        },
        &i.stopped_by_restart,
    );
}

/// The impact report of a `--repair`: what the data root holds moves with it.
fn repair_text(i: &Impact, r: &Repair, live_restore: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  repair     {} is renamed to {} with docker stopped, its owners shifted by {} (uids) / {} (gids): what it holds stays visible (host directories outside it, of volumes with bind options or bind-mounted into containers, keep their owners: see the notes)",
        r.from,
        r.to,
        r.uid_to as i64 - r.uid_from as i64,
        r.gid_to as i64 - r.gid_from as i64
    );
    held(&mut s, i, live_restore);
    s
}

/// The image store before and after the switch, and what that means for the images.
fn store_text(st: &StoreSwitch) -> String {
    let mut s = String::new();
    if !st.switches {
        let _ = writeln!(s, "    image store {} (unchanged: {})", st.before, st.why);
        return s;
    }
    let _ = writeln!(
        s,
        "    image store {} -> {}: {}",
        st.before, st.after, st.why
    );
    let _ = writeln!(
        s,
        "      images in the {} store stay there, out of sight of the {} engine: they are only reachable with `--carry images` or after switching back",
        st.before, st.after
    );
    s
}

/// The impact report as text.
pub(crate) fn impact_text(i: &Impact, enabling: bool, live_restore: bool) -> String {
    let mut s = String::new();
    // In the containerd image store (docker 29's default) the images are containerd's, not
    // the data root's: say where each kind of thing lives.
    let where_held = match &i.image_store {
        Some(st) if st.before.starts_with("containerd") => format!(
            "(images in containerd's image store, containers and volumes in {})",
            i.data_root
        ),
        _ => format!("in {}", i.data_root),
    };
    let _ = writeln!(
        s,
        "  impact     what docker holds {where_held} will not be visible after the switch:"
    );
    if i.images.is_empty() && i.containers.is_empty() && i.volumes.is_empty() {
        let _ = writeln!(s, "    nothing (no images, containers or volumes)");
    }
    if let Some(st) = &i.image_store {
        s.push_str(&store_text(st));
    }
    held(&mut s, i, live_restore);
    if enabling {
        list(
            &mut s,
            "bind mounts root will no longer write",
            &i.unwritable_binds,
        );
        if !i.unwritable_binds.is_empty() {
            let _ = writeln!(
                s,
                "      after the switch, `docker-userns shift HOST_PATH --to remapped` gives them to the remapped root (stop those containers first; `--to host` undoes it)"
            );
        }
        list(
            &mut s,
            "need --userns=host (privileged or host namespaces)",
            &i.need_userns_host,
        );
    }
    let _ = writeln!(
        s,
        "    they are kept, not deleted, and come back if remapping is switched {}; switching back and forth is best avoided",
        if enabling { "off" } else { "on" }
    );
    s
}

/// The status text's lines on docker.service: its state, and the cause of a failed start.
fn service_text(s: &mut String, svc: &crate::commands::status::Service) {
    let _ = writeln!(
        s,
        "  docker     docker.service {}/{}{}",
        svc.active_state,
        svc.sub_state,
        match (&svc.main_pid_user, svc.main_pid) {
            (Some(u), pid) => format!(", dockerd (pid {pid}) runs as {u}"),
            _ if svc.n_restarts > 0 || !matches!(svc.result.as_str(), "" | "success") => {
                format!(
                    " (last result {}{})",
                    svc.result,
                    match svc.n_restarts {
                        0 => String::new(),
                        n => format!(", restarted {n} time(s) automatically"),
                    }
                )
            }
            _ => String::new(),
        }
    );
    if let Some(f) = &svc.last_failure {
        let _ = writeln!(s, "  FAILED     {} ({})", f.summary, f.cause);
        if !f.line.is_empty() {
            let _ = writeln!(
                s,
                "             {} said (invocation {}): {}",
                f.unit, f.invocation_id, f.line
            );
        }
        let _ = writeln!(s, "             do: {}", f.advice);
    }
}

/// Text for `status`.
pub(crate) fn status_text(root: &str, st: &Status) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", crate::commands::status::headline(st));
    if root != "/" {
        let _ = writeln!(s, "  root       {root}");
    }
    if let Some(svc) = &st.service {
        service_text(&mut s, svc);
    }
    if let Some(v) = &st.docker_version {
        let _ = writeln!(
            s,
            "  engine     {v}, data root {}{}",
            st.docker_root_dir.as_deref().unwrap_or("?"),
            st.setup
                .image_store
                .as_deref()
                .map_or_else(String::new, |i| format!(", image store {i}"))
        );
    }
    let _ = writeln!(
        s,
        "  config     \"userns-remap\": {}",
        st.remapping_configured
            .as_ref()
            .map_or("not set".to_string(), |v| format!(
                "{v:?} (user {}, group {})",
                st.remap_user.as_deref().unwrap_or("?"),
                st.remap_group.as_deref().unwrap_or("?")
            ))
    );
    for (label, r) in [("subuid", &st.subuid), ("subgid", &st.subgid)] {
        if let Some(r) = r {
            let _ = writeln!(
                s,
                "  {label}     {}..{} ({} ids)",
                r.start,
                r.start + r.count - 1,
                r.count
            );
        }
    }
    if let Some(n) = st.max_user_namespaces {
        let _ = writeln!(
            s,
            "  kernel     user.max_user_namespaces = {n}{}",
            if n == 0 { " (disabled!)" } else { "" }
        );
    }
    if let Some(u) = &st.unfinished {
        let _ = writeln!(s, "  unfinished {u}");
    }
    s.push_str(&setup_text(&st.setup));
    for p in &st.problems {
        let _ = writeln!(s, "  PROBLEM    {} ({})", p.message, p.kind);
        let _ = writeln!(s, "             fix: {}", p.fix);
    }
    for c in &st.host_root_containers {
        let _ = writeln!(
            s,
            "  host root  container {} ({}): {}",
            c.name,
            c.reasons.join(", "),
            c.advice
        );
    }
    for n in st.notes.iter().map(note_text) {
        let _ = writeln!(s, "  note: {n}");
    }
    s
}

/// Text for `shift`.
pub(crate) fn shift_text(r: &ShiftResult) -> String {
    let mut s = String::new();
    let verb = if r.dry_run { "would shift" } else { "shifted" };
    let _ = writeln!(
        s,
        "{} uids {}.. -> {}.. and gids {}.. -> {}.. ({} ids each){}:",
        if r.dry_run { "Dry run:" } else { "Done:" },
        r.uid_from,
        r.uid_to,
        r.gid_from,
        r.gid_to,
        r.uid_count,
        if r.dry_run { ", nothing changed" } else { "" }
    );
    for d in &r.roots {
        let x = &d.report;
        let _ = writeln!(
            s,
            "  {}: {verb} {} of {} inodes; {} already there; {} left (no id in the range)",
            d.path, x.shifted, x.inodes, x.already_done, x.outside
        );
        if x.setid_restored + x.caps_restored + x.acl_entries_shifted > 0 {
            let _ = writeln!(
                s,
                "    kept {} setuid/setgid bits and {} file capabilities, shifted {} ACL entries",
                x.setid_restored, x.caps_restored, x.acl_entries_shifted
            );
        }
        if x.privileged > 0 {
            let _ = writeln!(
                s,
                "    {} {} inode(s) whose setuid/setgid bits or file capabilities would be valid for host ids: {}{}",
                if x.privileged_dropped {
                    "dropped the setuid/setgid bits and capabilities of"
                } else {
                    "refused without --drop-setid-and-caps (dropped with it):"
                },
                x.privileged,
                crate::commands::shift::privileged_list(x),
                if x.privileged > x.privileged_paths.len() as u64 {
                    ", ..."
                } else {
                    ""
                }
            );
        }
        for m in &x.other_filesystems {
            let _ = writeln!(s, "    not entered (another filesystem): {}", m.display());
        }
    }
    s
}

/// Text for `verify`.
pub(crate) fn verify_text(v: &Verification) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}",
        if v.effective {
            "Remapping is in effect."
        } else {
            "Remapping is NOT in effect (or could not be proven):"
        }
    );
    if let Some(u) = &v.remap_user {
        let _ = writeln!(
            s,
            "  remap user: {u}, group {}",
            v.remap_group.as_deref().unwrap_or("?")
        );
    }
    if let Some(img) = &v.image {
        let _ = writeln!(s, "  image: {img}");
    }
    for c in &v.checks {
        let _ = writeln!(
            s,
            "  [{}] {}: {}",
            if c.ok { " ok " } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    for n in v.notes.iter().map(note_text) {
        let _ = writeln!(s, "  note: {n}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::setup::StoreSwitch;

    fn impact(before: &str) -> Impact {
        Impact {
            data_root: "/var/lib/docker".into(),
            images: vec!["alpine:latest".into()],
            image_store: Some(StoreSwitch {
                before: before.into(),
                after: "overlay2".into(),
                switches: before != "overlay2",
                why: "because".into(),
            }),
            ..Impact::default()
        }
    }

    #[test]
    fn json_keeps_the_notes_as_sentences_and_adds_them_typed_as_facts() {
        #[derive(Serialize)]
        struct Body {
            changed: bool,
            notes: Vec<Note>,
        }
        let body = Body {
            changed: true,
            notes: vec![
                Note::FewIds,
                Note::EngineNotAsked {
                    why: "no socket".into(),
                },
            ],
        };
        let doc = json_doc("status", &body);
        assert_eq!(
            doc["notes"],
            json!([
                note_text(&Note::FewIds),
                "the engine was not asked: no socket"
            ])
        );
        assert_eq!(
            doc["facts"],
            json!([{"kind": "few-ids"}, {"kind": "engine-not-asked", "why": "no socket"}])
        );
        // The keys keep their order: `notes` where it was, `facts` after it.
        let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["schema_version", "command", "changed", "notes", "facts"]
        );
        // A document without notes gets no facts.
        let doc = json_doc("check", &json!({"ok": true}));
        assert!(doc.get("facts").is_none(), "{doc}");
    }

    #[test]
    fn the_impact_report_says_where_images_live_in_the_containerd_store() {
        let c8d = impact_text(&impact("containerd (overlayfs snapshotter)"), true, false);
        assert!(
            c8d.contains("what docker holds (images in containerd's image store, containers and volumes in /var/lib/docker) will not be visible"),
            "{c8d}"
        );
        let graph = impact_text(&impact("overlay2"), true, false);
        assert!(
            graph.contains("what docker holds in /var/lib/docker will not be visible"),
            "{graph}"
        );
    }
}
