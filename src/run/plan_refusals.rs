//! The refusals planning makes before any change: a `userns-remap` value or flag that does
//! not resolve to the user, dockerd reading another configuration file, a subordinate-id
//! line that cannot be read, docker 29 features that break remapping, and a data root the
//! remapped root cannot reach. Each is a [`Conflict`] naming the file and line (exit 3).

use serde_json::Value;

use crate::exit::Conflict;
use crate::formats::daemon_config::{DEFAULT_USER, DaemonConfig};
use crate::formats::remap_value::{Resolved, SpecError};
use crate::host::setup::Found;
use crate::run::preflight::{DAEMON_JSON, Inputs, RemapSetting};

/// `enable` with a `--userns-remap` flag in dockerd's command line: fine when daemon.json
/// does not set the key too and the flag's value resolves to `user` (the flag then keeps
/// controlling remapping: Ok(true)); refused otherwise, naming the flag.
pub(crate) fn enable_flag(inputs: &Inputs) -> Result<bool, Conflict> {
    if inputs.unit.remap_flags.is_empty() {
        return Ok(false);
    }
    let daemon_sets = inputs.daemon.config.remap().ok().flatten().is_some();
    match &inputs.remap {
        Some(s) if s.flag && !daemon_sets => {
            matches_user(s, &inputs.user)?;
            Ok(true)
        }
        _ => flag_conflict(inputs, "cannot set it in daemon.json as well").map(|()| false),
    }
}

/// Whether the value dockerd gets now resolves (as dockerd resolves it) to `user`; otherwise
/// the refusal, with advice that can be followed literally.
pub(crate) fn matches_user(s: &RemapSetting, user: &str) -> Result<(), Conflict> {
    let (file, line) = &s.at;
    matches_user_inner(s, user).map_err(|c| {
        c.kind("remap-value-conflict")
            .at(file, (*line > 0).then_some(*line))
    })
}

fn matches_user_inner(s: &RemapSetting, user: &str) -> Result<(), Conflict> {
    let v = &s.value;
    let from = &s.from;
    let undo = if s.flag {
        format!("remove the flag at {}:{}", s.at.0, s.at.1)
    } else {
        "run `docker-userns disable` first".to_string()
    };
    match &s.resolved {
        Ok(Resolved::User(r)) if r.user == user => Ok(()),
        Ok(Resolved::CreatesDefault) if user == DEFAULT_USER => Ok(()),
        Ok(Resolved::User(r)) => Err(Conflict::new(format!(
            "{from} already has \"userns-remap\": {v:?}, which dockerd resolves to user {} (uid {}) and group {} (gid {}), not user {user}; pass --user {} to keep it, or {undo} to switch to {user}",
            r.user, r.uid, r.group, r.gid, r.user
        ))),
        Ok(Resolved::CreatesDefault) => Err(Conflict::new(format!(
            "{from} already has \"userns-remap\": {v:?}, which means user {DEFAULT_USER} (dockerd creates it), not user {user}; pass --user {DEFAULT_USER} to keep it, or {undo} to switch to {user}"
        ))),
        Ok(Resolved::Root) => Err(Conflict::new(format!(
            "{from} already has \"userns-remap\": {v:?}, which resolves to root: dockerd leaves remapping off; {undo}, then run this again"
        ))),
        // A name-only value (or name:name) for a user enable creates with its own group.
        Err(SpecError::NoUser(n)) if n == user && v.split(':').all(|p| p == user) => Ok(()),
        Err(SpecError::NoGroupForName(n)) if n == user => Err(Conflict::new(format!(
            "{from} has \"userns-remap\": {v:?}, which dockerd rejects: {}; create that group (`groupadd --system {n}`) and run this again, or {undo}",
            SpecError::NoGroupForName(n.clone())
        ))),
        Err(e) => Err(Conflict::new(format!(
            "{from} has \"userns-remap\": {v:?}, which dockerd rejects: {e}; {undo} (or fix the value to name an existing user and group), then run this again"
        ))),
    }
}

pub(crate) fn flag_conflict(inputs: &Inputs, action: &str) -> Result<(), Conflict> {
    if inputs.unit.remap_flags.is_empty() {
        return Ok(());
    }
    let places: Vec<String> = inputs
        .unit
        .remap_flags
        .iter()
        .map(|o| o.to_string())
        .collect();
    let first = &inputs.unit.remap_flags[0];
    Err(Conflict::new(format!(
        "dockerd already gets --userns-remap as a command-line flag ({}); {action}: remove the flag there so daemon.json alone controls remapping (dockerd refuses to start when both set it)",
        places.join(", ")
    ))
    .kind("remap-flag-conflict")
    .at(&first.file, Some(first.line)))
}

/// dockerd told to read another configuration file: editing daemon.json would change nothing.
pub(crate) fn config_file_conflict(inputs: &Inputs) -> Result<(), Conflict> {
    match &inputs.unit.config_file {
        Some((f, origin)) if f != DAEMON_JSON => Err(Conflict::new(format!(
            "dockerd reads its configuration from {f} (--config-file, {origin}), not {DAEMON_JSON}: point it back at {DAEMON_JSON} or drop the flag, then run again"
        ))
        .kind("config-file-elsewhere")
        .at(f, None)),
        _ => Ok(()),
    }
}

pub(crate) fn first_malformed(inputs: &Inputs) -> Option<Conflict> {
    [(&inputs.subuid, "/etc/subuid"), (&inputs.subgid, "/etc/subgid")]
        .into_iter()
        .find_map(|(f, path)| {
            f.file.malformed.first().map(|m| {
                Conflict::new(format!(
                    "{path}:{}: {}; fix or remove that line first (with a line this tool cannot read, the free ranges cannot be known; `docker-userns check` lists every problem)",
                    m.line, m.reason
                ))
                .kind("subid-malformed")
                .at(path, Some(m.line))
            })
        })
}

/// docker 29's features that cannot go with remapping, as dockerd 29.7.2 does with each
/// beside `userns-remap` (observed on the docker29 test host): with the containerd snapshotter
/// explicitly on it refuses to start (`dockerd --validate` fails too), and with the containerd
/// migration on it starts but turns the containerd image store on in the remapped data root
/// while that holds no images and no containers ("Enabling containerd snapshotter because
/// migration set"), the combination it otherwise switches off (moby PR 51042, issue 47377), and which `validate` accepts. Both are refused
/// before any change (exit 3); `"containerd-snapshotter": false` is fine (no switch then).
pub(crate) fn features_conflict(config: &DaemonConfig) -> Result<(), Conflict> {
    let Some(features) = config.map.get("features").and_then(Value::as_object) else {
        return Ok(());
    };
    let on = |k: &str| features.get(k).and_then(Value::as_bool) == Some(true);
    if on("containerd-snapshotter") {
        return Err(Conflict::new(format!(
            "{DAEMON_JSON} sets \"features\": {{\"containerd-snapshotter\": true}}; with remapping dockerd 29 refuses to start: \"containerd-snapshotter is explicitly enabled, but is not compatible with userns remapping. Please disable userns remapping or containerd-snapshotter\"; remove that feature (remapped docker uses the overlay2 graph driver, not the containerd image store) and run again; nothing was changed (this tool does not remove settings it does not own)"
        ))
        .kind("docker29-feature-conflict")
        .at(DAEMON_JSON, None));
    }
    if on("containerd-migration") {
        return Err(Conflict::new(format!(
            "{DAEMON_JSON} sets \"features\": {{\"containerd-migration\": true}}; with remapping dockerd 29 still starts, but turns the containerd image store back on in the remapped data root whenever that holds no images and no containers (\"Enabling containerd snapshotter because migration set\"), the combination it otherwise switches off because it breaks (moby issue 47377), and `dockerd --validate` does not object; remove that feature and run again; nothing was changed (this tool does not remove settings it does not own)"
        ))
        .kind("docker29-feature-conflict")
        .at(DAEMON_JSON, None));
    }
    Ok(())
}

/// The refusal for a directory above docker's data root that other users cannot traverse.
pub(crate) fn blocked_data_root(dir: &str, data_root: &Found) -> Conflict {
    Conflict::new(format!(
        "{dir} does not let other users traverse it (no o+x): the remapped root could not reach docker's data root {} (set by {}) below it (dockerd: \"a subdirectory in your graphroot path restricts access\"); run `chmod o+x {dir}` first",
        data_root.path, data_root.from
    ))
    .kind("data-root-not-traversable")
    .at(dir, None)
}
