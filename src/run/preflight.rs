//! Preflight: read everything a plan depends on from the root, refusing inputs that cannot be
//! trusted. Reads only; never writes.

use crate::run::note::Note;
use anyhow::{Context, Result};
use serde::Serialize;

use crate::exit::Conflict;
use crate::formats::accounts::AccountIds;
use crate::formats::daemon_config::{ConfigError, DEFAULT_USER, DaemonConfig};
use crate::formats::login_defs::LoginDefs;
use crate::formats::remap_value::{self, Lookup, Remap, Resolved, SpecError, Target};
use crate::formats::subid::{Problem, SubIdFile};
use crate::host::account::{self, Account};
use crate::host::docker_unit::{self, UnitScan};
use crate::host::root::{Perms, Root};
use crate::host::setup::{self, Found};

/// Where daemon.json lives.
pub(crate) const DAEMON_JSON: &str = crate::formats::daemon_config::PATH;
/// Where the previous daemon.json is kept before each rewrite.
pub(crate) const DAEMON_JSON_BACKUP: &str = "/etc/docker/daemon.json.docker-userns-backup";
/// Where login.defs lives.
pub(crate) const LOGIN_DEFS: &str = "/etc/login.defs";

/// daemon.json as found.
#[derive(Debug, Clone)]
pub(crate) struct DaemonFile {
    /// The exact bytes, or None when the file does not exist.
    pub(crate) raw: Option<Vec<u8>>,
    /// The parsed document (empty when missing).
    pub(crate) config: DaemonConfig,
    /// Mode and owner to keep (0644 root when new).
    pub(crate) perms: Perms,
}

/// A subordinate-id file as found.
#[derive(Debug, Clone, Default)]
pub(crate) struct IdFile {
    /// Parsed content (empty when missing).
    pub(crate) file: SubIdFile,
    /// True when the file exists.
    pub(crate) exists: bool,
    /// Mode and owner to keep (0644 root when new).
    pub(crate) perms: Perms,
}

/// Everything planning needs, read from one root.
#[derive(Debug, Clone)]
pub(crate) struct Inputs {
    /// The remap user asked for.
    pub(crate) user: String,
    /// That user, if it exists.
    pub(crate) account: Option<Account>,
    /// login.defs settings.
    pub(crate) defs: LoginDefs,
    /// The uids in /etc/passwd and gids in /etc/group (no subordinate range may hold one).
    pub(crate) ids: AccountIds,
    /// /etc/subuid.
    pub(crate) subuid: IdFile,
    /// /etc/subgid.
    pub(crate) subgid: IdFile,
    /// /etc/docker/daemon.json.
    pub(crate) daemon: DaemonFile,
    /// docker.service as systemd would see it.
    pub(crate) unit: UnitScan,
    /// docker's data root as the files set it, and where.
    pub(crate) data_root: Found,
    /// Directories above docker's data root that other users cannot traverse.
    pub(crate) blocked_dirs: Vec<String>,
    /// /proc/sys/user/max_user_namespaces on the live host (None under --root or unknown).
    pub(crate) max_user_namespaces: Option<u64>,
    /// Under `--root`: why `useradd --prefix` could not create the user inside the tree
    /// (None: it can).
    pub(crate) useradd_escapes: Option<String>,
    /// The `userns-remap` value dockerd gets now (daemon.json's, else a `--userns-remap`
    /// flag's), resolved as dockerd resolves it (None: not set).
    pub(crate) remap: Option<RemapSetting>,
    /// The remap user as dockerd looks its ranges up, and the owners whose lines look meant
    /// for it (None: the user does not exist yet).
    pub(crate) target: Option<Target>,
}

/// A `userns-remap` value as dockerd gets it, and what it resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemapSetting {
    /// The value.
    pub(crate) value: String,
    /// Where it is set, for messages: daemon.json, or `--userns-remap at FILE:LINE`.
    pub(crate) from: String,
    /// Set by a dockerd flag (not daemon.json).
    pub(crate) flag: bool,
    /// The file that sets it (a path inside the root) and the line (0: not known).
    pub(crate) at: (String, usize),
    /// What dockerd makes of it.
    pub(crate) resolved: Result<Resolved, SpecError>,
}

/// The value dockerd gets: daemon.json's `userns-remap` (when it is a string), else the last
/// `--userns-remap` flag of the effective ExecStart (Go's flag package keeps the last).
pub(crate) fn remap_setting(
    config: Option<(&DaemonConfig, &[u8])>,
    unit: &UnitScan,
    l: &dyn Lookup,
) -> Option<RemapSetting> {
    let (value, from, flag, at) = match config.and_then(|(c, raw)| Some((c.remap().ok()??, raw))) {
        Some((v, raw)) => {
            let line = String::from_utf8_lossy(raw)
                .lines()
                .position(|l| l.contains("\"userns-remap\""))
                .map_or(0, |i| i + 1);
            (
                v.to_string(),
                DAEMON_JSON.to_string(),
                false,
                (DAEMON_JSON.to_string(), line),
            )
        }
        None => {
            let (v, o) = unit.flag_values(&["--userns-remap"]).pop()?;
            if v.is_empty() {
                return None;
            }
            let at = (o.file.clone(), o.line);
            (v, format!("--userns-remap at {o}"), true, at)
        }
    };
    let resolved = remap_value::resolve_value(&value, l).map(|r| r.unwrap_or(Resolved::Root));
    Some(RemapSetting {
        value,
        from,
        flag,
        at,
        resolved,
    })
}

/// The [`Target`] for `user`: from the setting when it resolves to that user (its group part
/// counts), else from the account with its own group; None when the user does not exist.
pub(crate) fn target_for(
    user: &str,
    setting: Option<&RemapSetting>,
    l: &dyn Lookup,
) -> Option<Target> {
    if let Some(RemapSetting {
        resolved: Ok(Resolved::User(r)),
        ..
    }) = setting
        && r.user == user
    {
        return Some(account::remap_target(l, r));
    }
    let u = l.user_by_name(user)?;
    let g = l.group_by_name(user).or_else(|| l.group_by_gid(u.gid));
    Some(account::remap_target(
        l,
        &Remap {
            user: u.name,
            uid: u.uid,
            primary_gid: u.gid,
            group: g
                .as_ref()
                .map_or_else(|| user.to_string(), |g| g.name.clone()),
            gid: g.map_or(u.gid, |g| g.gid),
        },
    ))
}

/// Reads login.defs; a bad number is a conflict naming the file and line.
pub(crate) fn read_login_defs(root: &Root) -> Result<LoginDefs> {
    let Some(bytes) = root.read_optional(LOGIN_DEFS)? else {
        return Ok(LoginDefs::default());
    };
    LoginDefs::parse(&String::from_utf8_lossy(&bytes)).map_err(|e| {
        Conflict::new(format!(
            "{}:{}: {} has value {:?}, which is not a number; fix it so the id bounds are known",
            root.path(LOGIN_DEFS).display(),
            e.line,
            e.key,
            e.value
        ))
        .kind("login-defs-invalid")
        .at(LOGIN_DEFS, Some(e.line))
        .into()
    })
}

/// Reads the ids of every account in the root's /etc/passwd and /etc/group (the files, also on
/// the live host: they are what useradd allocates from; missing files name no id).
pub(crate) fn read_account_ids(root: &Root) -> Result<AccountIds> {
    let passwd = root.read_optional("/etc/passwd")?.unwrap_or_default();
    let group = root.read_optional("/etc/group")?.unwrap_or_default();
    Ok(AccountIds::parse(
        &String::from_utf8_lossy(&passwd),
        &String::from_utf8_lossy(&group),
    ))
}

/// Reads /etc/subuid or /etc/subgid (missing is empty).
pub(crate) fn read_id_file(root: &Root, abs: &str) -> Result<IdFile> {
    let meta = root.symlink_metadata(abs)?;
    if meta.as_ref().is_some_and(|m| m.file_type().is_symlink()) {
        return Err(Conflict::new(format!(
            "{} is a symbolic link; shadow's tools replace it with a file on their next write, so this tool refuses to edit it: make it a regular file",
            root.path(abs).display()
        ))
        .kind("symlink-refused")
        .at(abs, None)
        .into());
    }
    let raw = root.read_optional(abs)?;
    Ok(IdFile {
        exists: raw.is_some(),
        file: SubIdFile::parse(raw.unwrap_or_default()),
        perms: meta.as_ref().map_or(Perms::root_owned(0o644), Perms::of),
    })
}

/// Reads daemon.json, refusing a symlink, invalid JSON or a non-object.
pub(crate) fn read_daemon_json(root: &Root) -> Result<DaemonFile> {
    let path = root.path(DAEMON_JSON);
    let meta = root.symlink_metadata(DAEMON_JSON)?;
    if let Some(m) = &meta {
        if m.file_type().is_symlink() {
            let target = root.read_link(DAEMON_JSON).unwrap_or_default();
            return Err(Conflict::new(format!(
                "{} is a symbolic link (to {}): an atomic rewrite would replace the link with a file and detach it from whatever manages the target; edit the target yourself or replace the link with a regular file",
                path.display(),
                target.display()
            ))
            .kind("symlink-refused")
            .at(DAEMON_JSON, None)
            .into());
        }
        if !m.is_file() {
            return Err(
                Conflict::new(format!("{} is not a regular file", path.display()))
                    .kind("not-a-regular-file")
                    .at(DAEMON_JSON, None)
                    .into(),
            );
        }
    }
    let raw = root.read_optional(DAEMON_JSON)?;
    let config = match &raw {
        None => DaemonConfig::default(),
        Some(bytes) => DaemonConfig::parse(bytes).map_err(|e| {
            let hint = match e {
                ConfigError::Invalid { .. } => {
                    "fix the file (dockerd would not start with it either)"
                }
                _ => "fix the file",
            };
            let line = match &e {
                ConfigError::Invalid { line, .. } => Some(*line),
                _ => None,
            };
            Conflict::new(format!("{}: {e}; {hint}", path.display()))
                .kind("daemon-json-invalid")
                .at(DAEMON_JSON, line)
        })?,
    };
    Ok(DaemonFile {
        raw,
        config,
        perms: meta.as_ref().map_or(Perms::root_owned(0o644), Perms::of),
    })
}

/// The existing directories above `data_root` without the search bit for others (dockerd
/// refuses to remap then). Under `--root` the tree's own top directory is not checked.
pub(crate) fn blocked_dirs(root: &Root, data_root: &str) -> Result<Vec<String>> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut p = std::path::Path::new(data_root).parent();
    while let Some(dir) = p {
        let abs = dir.to_string_lossy();
        if (abs != "/" || root.is_host())
            && let Ok(Some(m)) = root.metadata(&abs)
            && m.is_dir()
            && m.mode() & 0o001 == 0
        {
            out.push(abs.to_string());
        }
        p = dir.parent();
    }
    out.reverse();
    Ok(out)
}

/// Reads every input for `user`.
pub(crate) fn gather(root: &Root, user: &str) -> Result<Inputs> {
    account::validate_name(user)?;
    check_write_paths(root)?;
    let defs = read_login_defs(root)?;
    let account =
        account::lookup(root, user).with_context(|| format!("cannot look up user {user}"))?;
    let daemon = read_daemon_json(root)?;
    let unit = docker_unit::scan(root)?;
    let data_root = setup::files_data_root(&unit, Some(&daemon.config));
    let accounts = account::Accounts::read(root)?;
    let remap = remap_setting(
        Some((&daemon.config, daemon.raw.as_deref().unwrap_or_default())),
        &unit,
        &accounts,
    );
    let target = target_for(user, remap.as_ref(), &accounts);
    Ok(Inputs {
        remap,
        target,
        user: user.to_string(),
        account,
        defs,
        ids: read_account_ids(root)?,
        subuid: read_id_file(root, "/etc/subuid")?,
        subgid: read_id_file(root, "/etc/subgid")?,
        blocked_dirs: blocked_dirs(root, &data_root.path)?,
        data_root,
        daemon,
        unit,
        max_user_namespaces: crate::host::kernel::max_user_namespaces(root),
        useradd_escapes: account::check_useradd_confined(root)
            .err()
            .map(|e| e.to_string()),
    })
}

/// The directories a run writes in, and the account files useradd rewrites.
const WRITE_DIRS: [&str; 2] = ["/etc/docker", crate::run::journal::DIR];
const ACCOUNT_FILES: [&str; 4] = ["/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"];

/// Refuses, before anything is written, a path the run would write through that cannot be
/// written: a component of a directory it writes in (or creates) that is a link leading
/// nowhere (a dangling link, resolved beneath the root) or to something other than a
/// directory, or an account file that is a dangling link. Without this the first write finds
/// it, after others were made.
fn check_write_paths(root: &Root) -> Result<()> {
    let refuse = |abs: &str, what: String| -> Result<()> {
        Err(Conflict::new(format!(
            "{} {what}: the run would write there; nothing was changed. Make it a directory (or remove the link) first",
            root.path(abs).display()
        ))
        .kind("unwritable-path")
        .at(abs, None)
        .into())
    };
    let link_to = |abs: &str| {
        root.read_link(abs)
            .map(|t| format!(" (to {})", t.display()))
            .unwrap_or_default()
    };
    for dir in WRITE_DIRS {
        let mut at = String::new();
        for part in dir.trim_start_matches('/').split('/') {
            at.push('/');
            at.push_str(part);
            let Some(meta) = root.symlink_metadata(&at)? else {
                break;
            };
            let followed = if meta.file_type().is_symlink() {
                match root.metadata(&at)? {
                    Some(m) => m,
                    None => {
                        return refuse(
                            &at,
                            format!(
                                "is a dangling symbolic link{}: nothing is there inside the root",
                                link_to(&at)
                            ),
                        );
                    }
                }
            } else {
                meta
            };
            if !followed.is_dir() {
                return refuse(&at, format!("is not a directory{}", link_to(&at)));
            }
        }
    }
    for file in ACCOUNT_FILES {
        if root
            .symlink_metadata(file)?
            .is_some_and(|m| m.file_type().is_symlink())
            && root.metadata(file)?.is_none()
        {
            return Err(Conflict::new(format!(
                "{} is a dangling symbolic link{}: nothing is there inside the root, and useradd cannot update it; nothing was changed. Make it a regular file first",
                root.path(file).display(),
                link_to(file)
            ))
            .kind("unwritable-path")
            .at(file, None)
            .into());
        }
    }
    Ok(())
}

/// A range of the remap user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Range {
    /// First id.
    pub start: u64,
    /// Total ids owned.
    pub count: u64,
}

fn range(file: &IdFile, name: &str, uid: Option<u32>) -> Option<Range> {
    let owned: Vec<_> = file.file.owned_by(name, uid).collect();
    (!owned.is_empty()).then(|| Range {
        start: owned.iter().map(|e| e.start).min().unwrap_or_default(),
        count: owned.iter().map(|e| e.count).sum(),
    })
}

/// The remapping as the files configure it: the `userns-remap` value (daemon.json's, else a
/// dockerd flag's), the user and group it resolves to (as dockerd resolves it), and that
/// user's ranges. Reads files only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Configured {
    /// `userns-remap` (None: not set).
    pub(crate) value: Option<String>,
    /// The user that value resolves to (None: not set, or naming no account dockerd accepts;
    /// dockremap for `default`).
    pub(crate) user: Option<String>,
    /// The group it resolves to.
    pub(crate) group: Option<String>,
    /// Its /etc/subuid ranges (of dockremap when nothing is set).
    pub(crate) subuid: Option<Range>,
    /// Its /etc/subgid ranges.
    pub(crate) subgid: Option<Range>,
    /// Remarks on the files (a symlinked daemon.json).
    pub(crate) notes: Vec<Note>,
    /// The value as dockerd gets it, resolved (None: not set).
    pub(crate) setting: Option<RemapSetting>,
}

/// `userns-remap` in daemon.json, for reading only. A symlinked daemon.json (which `enable`
/// and `disable` refuse to rewrite) is read through the link, resolved inside the root, with
/// a note saying so; other problems with the file are errors as for `enable`.
fn daemon_remap(root: &Root) -> Result<(Option<String>, Vec<Note>)> {
    let is_link = root
        .symlink_metadata(DAEMON_JSON)?
        .is_some_and(|m| m.file_type().is_symlink());
    if !is_link {
        let daemon = read_daemon_json(root)?;
        return Ok((
            daemon.config.remap().ok().flatten().map(str::to_string),
            Vec::new(),
        ));
    }
    let path = root.path(DAEMON_JSON);
    let target = root.read_link(DAEMON_JSON).unwrap_or_default();
    let target_text = target.display().to_string();
    let resolved = if target.is_absolute() {
        target_text.clone()
    } else {
        format!("/etc/docker/{target_text}")
    };
    let mut notes = vec![Note::DaemonJsonSymlink {
        path: path.display().to_string(),
        target: target_text.clone(),
    }];
    let value = match root.read_optional(&resolved) {
        Ok(Some(bytes)) => match DaemonConfig::parse(&bytes) {
            Ok(c) => c.remap().ok().flatten().map(str::to_string),
            Err(e) => {
                notes.push(Note::DaemonJsonTargetInvalid {
                    path: root.path(&resolved).display().to_string(),
                    error: e.to_string(),
                });
                None
            }
        },
        Ok(None) => {
            notes.push(Note::DaemonJsonTargetMissing {
                path: root.path(&resolved).display().to_string(),
            });
            None
        }
        Err(e) => {
            notes.push(Note::DaemonJsonTargetUnreadable {
                error: format!("{e:#}"),
            });
            None
        }
    };
    Ok((value, notes))
}

/// Reads [`Configured`] from the root.
pub(crate) fn configured(root: &Root) -> Result<Configured> {
    let (value, notes) = daemon_remap(root)?;
    let accounts = account::Accounts::read_lenient(root);
    let setting = match &value {
        Some(v) => Some(RemapSetting {
            value: v.clone(),
            from: DAEMON_JSON.to_string(),
            flag: false,
            at: (
                DAEMON_JSON.to_string(),
                root.read_optional(DAEMON_JSON)
                    .ok()
                    .flatten()
                    .and_then(|raw| {
                        String::from_utf8_lossy(&raw)
                            .lines()
                            .position(|l| l.contains("\"userns-remap\""))
                    })
                    .map_or(0, |i| i + 1),
            ),
            resolved: remap_value::resolve_value(v, &accounts).map(|r| r.unwrap_or(Resolved::Root)),
        }),
        None => docker_unit::scan(root)
            .ok()
            .and_then(|unit| remap_setting(None, &unit, &accounts)),
    };
    let (user, group) = match setting.as_ref().map(|s| &s.resolved) {
        Some(Ok(Resolved::User(r))) => (Some(r.user.clone()), Some(r.group.clone())),
        Some(Ok(Resolved::CreatesDefault)) => (
            Some(DEFAULT_USER.to_string()),
            Some(DEFAULT_USER.to_string()),
        ),
        // Not resolvable: the user part as written, for the ranges below.
        Some(Err(_)) => (
            setting.as_ref().map(|s| {
                let u = s.value.split(':').next().unwrap_or_default();
                if u == "default" { DEFAULT_USER } else { u }.to_string()
            }),
            None,
        ),
        Some(Ok(Resolved::Root)) | None => (None, None),
    };
    let lookup_name = user.clone().unwrap_or_else(|| DEFAULT_USER.to_string());
    let uid = accounts.user_by_name(&lookup_name).map(|a| a.uid);
    let ranges = |abs: &str| {
        read_id_file(root, abs)
            .ok()
            .and_then(|f| range(&f, &lookup_name, uid))
    };
    Ok(Configured {
        subuid: ranges("/etc/subuid"),
        subgid: ranges("/etc/subgid"),
        value: setting.as_ref().map(|s| s.value.clone()).or(value),
        user,
        group,
        notes,
        setting,
    })
}

/// What dockerd will reject or misuse about the configured value (`check` and `status`): a
/// value naming no account or resolving to root (kind `remap-value-rejected`, at the file and
/// line that set it), and the user's ranges as dockerd reads them
/// ([`remap_value::misuse`]).
pub(crate) fn remap_problems(root: &Root, conf: &Configured) -> Result<Vec<Problem>> {
    let Some(s) = &conf.setting else {
        return Ok(Vec::new());
    };
    let rejected = |message: String| Problem {
        file: s.at.0.clone(),
        line: s.at.1,
        kind: remap_value::VALUE_REJECTED,
        message,
    };
    match &s.resolved {
        Err(e) => Ok(vec![rejected(format!(
            "\"userns-remap\": {:?} ({}): dockerd refuses to start: {e}",
            s.value, s.from
        ))]),
        Ok(Resolved::Root) => Ok(vec![rejected(format!(
            "\"userns-remap\": {:?} ({}) resolves to root: dockerd starts with remapping OFF (\"root cannot be remapped with itself\")",
            s.value, s.from
        ))]),
        Ok(Resolved::CreatesDefault) => Ok(Vec::new()),
        Ok(Resolved::User(r)) => {
            let accounts = account::Accounts::read_lenient(root);
            let t = account::remap_target(&accounts, r);
            let subuid = read_id_file(root, "/etc/subuid")?;
            let subgid = read_id_file(root, "/etc/subgid")?;
            Ok(remap_value::misuse(&subuid.file, &subgid.file, &t))
        }
    }
}
