//! Planning: pure functions from [`Inputs`] to a [`Plan`]. Nothing here reads or writes files.
//! The new content of every file a run writes is rendered here ([`subid_after`], the
//! daemon.json bytes), once for `plan --json`'s `files` ([`enable_files`], [`disable_files`])
//! and again by `apply` for the write.

use serde::Serialize;
use serde_json::Value;

use crate::exit::Conflict;
use crate::formats::daemon_config::{self, DaemonConfig};
use crate::formats::login_defs::SubIdBounds;
use crate::formats::remap_value::{self, Resolved};
use crate::formats::subid::{self, Decision, How, Reserved, Side, Which};
use crate::host::account;
use crate::run::note::Note;
use crate::run::plan_refusals::{
    blocked_data_root, config_file_conflict, enable_flag, features_conflict, first_malformed,
    flag_conflict, matches_user,
};
use crate::run::preflight::{DAEMON_JSON, DAEMON_JSON_BACKUP, Inputs, RemapSetting};
use crate::run::range_refusal;

/// The remap user in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct UserPlan {
    /// Login name.
    pub(crate) name: String,
    /// Its uid; null until it exists.
    pub(crate) uid: Option<u32>,
    /// True when `enable` creates it.
    pub(crate) create: bool,
    /// The group the `userns-remap` value names, as dockerd resolves it (null: not known yet).
    pub(crate) group: Option<String>,
    /// Its gid.
    pub(crate) gid: Option<u32>,
    /// Where dockerd gets the value from once converged: daemon.json, or a `--userns-remap`
    /// flag already in its command line.
    pub(crate) value_from: String,
}

/// The user's range in one subordinate-id file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct RangePlan {
    /// The file, as a path inside the root.
    pub(crate) file: &'static str,
    /// First id (container root maps to it).
    pub(crate) start: u64,
    /// Number of ids.
    pub(crate) count: u64,
    /// True when the file is written: a line `user:start:count` appended, or (`moved_from`)
    /// the user's line replaced; false when existing ranges are kept.
    pub(crate) add: bool,
    /// With `--repair`/`--start`: the start of the range it moves from (null: not moved).
    pub(crate) moved_from: Option<u64>,
    /// The user's lines the new one replaces (moved ranges only).
    #[serde(skip)]
    pub(crate) replaces: Vec<usize>,
    /// `--repair` of a range dockerd needs under the user's name that sits under another
    /// owner (the group's name or gid): that owner; the line keeps its range and gets the
    /// user's name (null: nothing renamed).
    pub(crate) renamed_from: Option<String>,
}

impl RangePlan {
    fn new(which: Which, d: &Decision) -> RangePlan {
        RangePlan {
            file: which.path(),
            start: d.start(),
            count: d.count(),
            add: d.writes(),
            moved_from: d.moved_from().map(|(start, _)| start),
            replaces: match d {
                Decision::Move { lines, .. } => lines.clone(),
                _ => Vec::new(),
            },
            renamed_from: None,
        }
    }
}

/// What happens to daemon.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum FileChange {
    /// Left as it is.
    None,
    /// Created.
    Create,
    /// Rewritten.
    Update,
}

/// Facts about docker itself that shape the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct DockerFacts {
    /// docker.service's unit file, if any.
    pub(crate) unit_file: Option<String>,
    /// docker.service is masked.
    pub(crate) masked: bool,
}

/// What `enable` will do: the decision only (what happened is the run's
/// `converge::Outcome`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Plan {
    /// True when a file or the user changes.
    #[serde(skip)]
    pub(crate) changed: bool,
    /// The remap user.
    pub(crate) user: UserPlan,
    /// Its /etc/subuid range.
    pub(crate) subuid: RangePlan,
    /// Its /etc/subgid range.
    pub(crate) subgid: RangePlan,
    /// The complete resulting daemon.json.
    pub(crate) daemon_json: Value,
    /// What happens to the daemon.json file.
    pub(crate) daemon_json_change: FileChange,
    /// True when docker must restart, as the files alone decide (the run's
    /// `converge::Outcome` has the final word).
    #[serde(skip)]
    pub(crate) restart: bool,
    /// Docker facts.
    pub(crate) docker: DockerFacts,
    /// The remapped data root to move with a moved range (`--repair`, `--start`; null: none).
    pub(crate) repair: Option<Repair>,
    /// The planner's remarks (moved into the run's outcome).
    #[serde(skip)]
    pub(crate) notes: Vec<Note>,
    /// The bytes to write to daemon.json (when it changes).
    #[serde(skip)]
    pub(crate) daemon_bytes: Option<Vec<u8>>,
    /// `plan` only: every file the run writes, with its bytes now and the exact bytes it
    /// writes ([`enable_files`]); absent from `enable`'s output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) files: Option<Vec<FileWrite>>,
}

/// One file a run writes, as `plan --json` shows it: the path, the bytes now and the exact
/// bytes the run writes, rendered by the same functions `apply` writes with. Both contents
/// are UTF-8 text, or base64 (`encoding`) when either is not valid UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct FileWrite {
    /// The file, as a path inside the root.
    pub(crate) path: String,
    /// `create` or `update`.
    pub(crate) change: FileChange,
    /// Where the run keeps the old content before it writes (null: the file is created).
    pub(crate) backup: Option<String>,
    /// `utf-8` or `base64`: how `before` and `after` are given.
    pub(crate) encoding: &'static str,
    /// The content now (null: the file does not exist).
    pub(crate) before: Option<String>,
    /// The content the run writes, byte for byte.
    pub(crate) after: String,
}

impl FileWrite {
    /// A file changing from `before` (None: missing) to `after`.
    pub(crate) fn new(path: &str, backup: &str, before: Option<&[u8]>, after: &[u8]) -> FileWrite {
        let text = |b: &[u8]| std::str::from_utf8(b).map(str::to_string).ok();
        let (encoding, before, after) = match (before.map(text), text(after)) {
            (None, Some(a)) => ("utf-8", None, a),
            (Some(Some(b)), Some(a)) => ("utf-8", Some(b), a),
            _ => ("base64", before.map(base64), base64(after)),
        };
        FileWrite {
            path: path.to_string(),
            change: if before.is_some() {
                FileChange::Update
            } else {
                FileChange::Create
            },
            backup: before.is_some().then(|| backup.to_string()),
            encoding,
            before,
            after,
        }
    }
}

/// Standard base64 (RFC 4648, with padding).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The content a range plan gives a subordinate-id file that holds `old`: None when the
/// file is not written. The one writer of these files: `plan` shows its result and `apply`
/// writes it (on the content read again under shadow's lock). A moved or renamed range
/// replaces the user's line (the first of `replaces`; the others are dropped), every other
/// byte kept; otherwise the line `user:start:count` is appended (after a newline when the
/// file does not end with one).
pub(crate) fn subid_after(old: &[u8], user: &str, r: &RangePlan) -> Option<Vec<u8>> {
    if !r.add {
        return None;
    }
    if let Some((first, rest)) = r.replaces.split_first() {
        return Some(subid::with_moved(old, *first, rest, user, r.start, r.count));
    }
    let mut bytes = Vec::with_capacity(old.len() + 32);
    bytes.extend_from_slice(old);
    subid::append_line(&mut bytes, user, r.start, r.count);
    Some(bytes)
}

/// The backup a subordinate-id file gets before it is written (shadow's own convention).
pub(crate) fn subid_backup(abs: &str) -> String {
    format!("{abs}-")
}

/// Every file `enable` writes for plan `p`, in the order it writes them: /etc/subuid,
/// /etc/subgid, then daemon.json. (The user's creation is `useradd`'s, shown as
/// `user.create`; the run's own record in /var/lib/docker-userns is not listed.)
pub(crate) fn enable_files(inputs: &Inputs, p: &Plan) -> Vec<FileWrite> {
    let mut out = Vec::new();
    for (f, r) in [(&inputs.subuid, &p.subuid), (&inputs.subgid, &p.subgid)] {
        if let Some(after) = subid_after(&f.file.raw, &inputs.user, r) {
            let before = f.exists.then_some(&f.file.raw[..]);
            out.push(FileWrite::new(
                r.file,
                &subid_backup(r.file),
                before,
                &after,
            ));
        }
    }
    if p.daemon_json_change != FileChange::None
        && let Some(after) = &p.daemon_bytes
    {
        out.push(daemon_write(inputs, after));
    }
    out
}

/// Every file `disable` writes for plan `p`: daemon.json, when it changes.
pub(crate) fn disable_files(inputs: &Inputs, p: &DisablePlan) -> Vec<FileWrite> {
    p.daemon_bytes
        .iter()
        .map(|after| daemon_write(inputs, after))
        .collect()
}

fn daemon_write(inputs: &Inputs, after: &[u8]) -> FileWrite {
    FileWrite::new(
        DAEMON_JSON,
        DAEMON_JSON_BACKUP,
        inputs.daemon.raw.as_deref(),
        after,
    )
}

/// Moving the remapped data root with the range: with docker stopped, `from` is renamed to
/// `to` and the owner of every inode below it is shifted from the old ranges to the new ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Repair {
    /// The remapped data root now (`DATA_ROOT/OLD_UID.OLD_GID`).
    pub(crate) from: String,
    /// Its new name (`DATA_ROOT/NEW_UID.NEW_GID`).
    pub(crate) to: String,
    /// uids `uid_from..uid_from+uid_count` become `uid_to..`.
    pub(crate) uid_from: u64,
    /// New first uid.
    pub(crate) uid_to: u64,
    /// uids shifted.
    pub(crate) uid_count: u64,
    /// gids `gid_from..gid_from+gid_count` become `gid_to..`.
    pub(crate) gid_from: u64,
    /// New first gid.
    pub(crate) gid_to: u64,
    /// gids shifted.
    pub(crate) gid_count: u64,
}

/// What `disable` will do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct DisablePlan {
    /// True when daemon.json changes.
    #[serde(skip)]
    pub(crate) changed: bool,
    /// The `userns-remap` value being removed, if any.
    pub(crate) removed: Option<String>,
    /// The complete resulting daemon.json.
    pub(crate) daemon_json: Value,
    /// What happens to the daemon.json file.
    pub(crate) daemon_json_change: FileChange,
    /// True when docker must restart, as the files alone decide (the run's
    /// `converge::Outcome` has the final word).
    #[serde(skip)]
    pub(crate) restart: bool,
    /// Docker facts.
    pub(crate) docker: DockerFacts,
    /// The planner's remarks (moved into the run's outcome).
    #[serde(skip)]
    pub(crate) notes: Vec<Note>,
    /// The bytes to write to daemon.json (when it changes).
    #[serde(skip)]
    pub(crate) daemon_bytes: Option<Vec<u8>>,
    /// `plan --disable` only: every file the run writes ([`disable_files`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) files: Option<Vec<FileWrite>>,
}

fn docker_facts(inputs: &Inputs, notes: &mut Vec<Note>) -> DockerFacts {
    let unit = &inputs.unit;
    if unit.unit_file.is_none() {
        notes.push(Note::DockerNotInstalled);
    } else if unit.masked {
        notes.push(Note::DockerMasked);
    }
    DockerFacts {
        unit_file: unit.unit_file.clone(),
        masked: unit.masked,
    }
}

/// Plans `enable` for `count` ids (None: login.defs' SUB_UID_COUNT / SUB_GID_COUNT; 65536 when
/// they are 0, shadow's way of turning useradd's own allocation off).
#[cfg(test)]
pub(crate) fn enable(inputs: &Inputs, count: Option<u64>) -> Result<Plan, Conflict> {
    enable_how(inputs, count, How::default())
}

/// `enable`, where `how` may move the user's range (`--repair`) or fix its start
/// (`--start`).
pub(crate) fn enable_how(inputs: &Inputs, count: Option<u64>, how: How) -> Result<Plan, Conflict> {
    let mut notes = Vec::new();
    let docker = docker_facts(inputs, &mut notes);
    let by_flag = enable_flag(inputs)?;
    config_file_conflict(inputs)?;
    if let Some(refused) = first_malformed(inputs) {
        return Err(refused);
    }
    if inputs.max_user_namespaces == Some(0) {
        return Err(Conflict::new(
            "user namespaces are disabled in the kernel (/proc/sys/user/max_user_namespaces is 0): set user.max_user_namespaces to a positive value (sysctl) first",
        )
        .kind("userns-disabled")
        .at("/proc/sys/user/max_user_namespaces", None));
    }
    if let Some(dir) = inputs.blocked_dirs.first() {
        return Err(blocked_data_root(dir, &inputs.data_root));
    }
    features_conflict(&inputs.daemon.config)?;
    let (uid, gid) = match &inputs.account {
        Some(a) => {
            account::validate_existing(a, &inputs.defs)?;
            (Some(a.uid), Some(a.gid))
        }
        None => {
            account::check_can_create(&inputs.defs, &inputs.ids)?;
            (None, None)
        }
    };
    let user = &inputs.user;
    if inputs.account.is_none()
        && let Some(why) = &inputs.useradd_escapes
    {
        return Err(
            Conflict::new(format!("cannot create user {user}: {why}")).kind("useradd-escapes")
        );
    }

    // daemon.json first: a different remap user there is a conflict, not something to overwrite.
    let value = daemon_config::value_for(user);
    let current = inputs.daemon.config.remap().map_err(|e| {
        Conflict::new(format!("{DAEMON_JSON}: {e}"))
            .kind("daemon-json-invalid")
            .at(DAEMON_JSON, None)
    })?;
    let new_config: DaemonConfig = match (current, &inputs.remap) {
        // A flag already names the user: daemon.json stays without the key.
        _ if by_flag => inputs.daemon.config.clone(),
        (Some(_), Some(s)) => {
            matches_user(s, user)?;
            inputs.daemon.config.clone()
        }
        (Some(v), None) => {
            // Not resolved (inputs made by hand): the name-only reading.
            if !daemon_config::names_user(v, user, uid, gid) {
                return Err(Conflict::new(format!(
                    "{DAEMON_JSON} already has \"userns-remap\": {v:?}, which is not user {user}; run `docker-userns disable` first, or pass --user to match it"
                ))
                .kind("remap-value-conflict")
                .at(DAEMON_JSON, None));
            }
            inputs.daemon.config.clone()
        }
        (None, _) => {
            if inputs.target.as_ref().is_some_and(|t| !t.own_group) {
                notes.push(Note::NoRemapGroup {
                    user: user.to_string(),
                    value: value.clone(),
                });
            }
            inputs.daemon.config.with_remap(&value)
        }
    };
    let daemon_json_change = if by_flag {
        FileChange::None
    } else if inputs.daemon.raw.is_none() {
        FileChange::Create
    } else if new_config != inputs.daemon.config {
        FileChange::Update
    } else {
        FileChange::None
    };

    let defs = &inputs.defs;
    // SUB_*_COUNT 0 means "useradd allocates nothing", not "a range of no ids": use the default.
    let or_default = |c: u64| {
        if c == 0 {
            crate::formats::login_defs::DEFAULT_SUB_COUNT
        } else {
            c
        }
    };
    let want_u = count.unwrap_or(or_default(defs.subuid.count));
    let want_g = count.unwrap_or(or_default(defs.subgid.count));
    let (renamed, adopted) = stand_in_lines(inputs, how)?;
    let (du, dg) = match &adopted {
        Some(a) => decide(a, uid, want_u, want_g, how)?,
        None => decide(inputs, uid, want_u, want_g, how)?,
    };
    let repair = match (du.moved_from(), dg.moved_from()) {
        (None, None) => None,
        (mu, mg) => {
            let (uf, uc) = mu.unwrap_or((du.start(), du.count()));
            let (gf, gc) = mg.unwrap_or((dg.start(), dg.count()));
            let dir = &inputs.data_root.path;
            let dir = if dir == "/" { "" } else { dir.as_str() };
            Some(Repair {
                from: format!("{dir}/{uf}.{gf}"),
                to: format!("{dir}/{}.{}", du.start(), dg.start()),
                uid_from: uf,
                uid_to: du.start(),
                uid_count: uc,
                gid_from: gf,
                gid_to: dg.start(),
                gid_count: gc,
            })
        }
    };
    if how.repair
        && repair.is_none()
        && !du.writes()
        && !dg.writes()
        && renamed.0.is_none()
        && renamed.1.is_none()
    {
        notes.push(Note::RepairNothing {
            user: user.to_string(),
        });
    }
    if want_u < 65536 || want_g < 65536 {
        notes.push(Note::FewIds);
    }

    let create = inputs.account.is_none();
    if create && let Some((path, line, uid)) = orphan_system_uid_line(inputs) {
        notes.push(Note::OrphanRangeLine {
            path: path.to_string(),
            line,
            uid,
            user: user.to_string(),
        });
    }
    let mut subuid = RangePlan::new(Which::SubUid, &du);
    let mut subgid = RangePlan::new(Which::SubGid, &dg);
    for (r, rename) in [(&mut subuid, &renamed.0), (&mut subgid, &renamed.1)] {
        if let Some((line, owner)) = rename {
            r.add = true;
            if r.replaces.is_empty() {
                r.replaces = vec![*line];
            }
            r.renamed_from = Some(owner.clone());
            notes.push(Note::RepairRenamesLine {
                file: r.file.to_string(),
                line: *line,
                owner: owner.clone(),
                user: user.to_string(),
            });
        }
    }
    let changed = create || subuid.add || subgid.add || daemon_json_change != FileChange::None;
    let restart = changed && docker.unit_file.is_some() && !docker.masked;
    Ok(Plan {
        changed,
        user: UserPlan {
            name: user.clone(),
            uid,
            create,
            group: inputs
                .target
                .as_ref()
                .map(|t| t.group.as_ref().map_or(user.clone(), |g| g.0.clone())),
            gid: match &inputs.remap {
                Some(RemapSetting {
                    resolved: Ok(Resolved::User(r)),
                    ..
                }) if r.user == *user => Some(r.gid),
                _ => gid,
            },
            value_from: match &inputs.remap {
                Some(s) if by_flag => s.from.clone(),
                _ => DAEMON_JSON.to_string(),
            },
        },
        subuid,
        subgid,
        daemon_json: Value::Object(new_config.map.clone()),
        daemon_bytes: (daemon_json_change != FileChange::None).then(|| new_config.render()),
        daemon_json_change,
        restart,
        docker,
        repair,
        notes,
        files: None,
    })
}

/// The first range line owned by a numeric uid that no account has, within the system uids
/// `useradd --system` allocates from: creating the user may give it that uid, and its range
/// with it (which the plan, made before the uid is known, cannot tell).
fn orphan_system_uid_line(inputs: &Inputs) -> Option<(&'static str, usize, u32)> {
    let defs = &inputs.defs;
    let system = defs.sys_uid_min.max(1)..=defs.sys_uid_max;
    [
        (&inputs.subuid, Which::SubUid),
        (&inputs.subgid, Which::SubGid),
    ]
    .into_iter()
    .find_map(|(f, which)| {
        f.file.entries.iter().find_map(|e| {
            let uid: u32 = f.file.owner(e).parse().ok()?;
            (system.contains(&u64::from(uid)) && !inputs.ids.uids.iter().any(|u| u.id == uid))
                .then_some((which.path(), e.line, uid))
        })
    })
}

/// A file where the user has no line of its own while a line under a stand-in owner (the
/// group's name or gid, see `remap_value::Target`) holds the range dockerd needs: refused,
/// naming the line dockerd needs and the line in the way, unless `--repair`; then that line
/// is renamed to the user (same range) — returned as (line, owner) per file, with the inputs
/// as if it were renamed already, for the allocator.
#[allow(clippy::type_complexity)]
fn stand_in_lines(
    inputs: &Inputs,
    how: How,
) -> Result<
    (
        (Option<(usize, String)>, Option<(usize, String)>),
        Option<Inputs>,
    ),
    Conflict,
> {
    let Some(t) = &inputs.target else {
        return Ok(((None, None), None));
    };
    let user = &inputs.user;
    let mut renamed = (None, None);
    let mut adopted: Option<Inputs> = None;
    for which in [Which::SubUid, Which::SubGid] {
        let f = match which {
            Which::SubUid => &inputs.subuid,
            Which::SubGid => &inputs.subgid,
        };
        let Some(m) = remap_value::missing(&f.file, which, t) else {
            continue;
        };
        if m.in_the_way.is_empty() {
            continue;
        }
        let Some((line, owner, start, count)) = m.movable().cloned() else {
            return Err(Conflict::new(format!(
                "{}; move one of them to the user's name by hand (one line `{user}:START:COUNT`); nothing was changed",
                m.describe(user)
            ))
            .kind("subid-stand-in-owner")
            .at(which.path(), None));
        };
        if !how.repair {
            return Err(Conflict::new(format!(
                "{}. The line in the way: {}:{line}: `{owner}:{start}:{count}`; the line dockerd needs: `{user}:{start}:{count}`. `docker-userns enable --repair{}` renames that line's owner to {user} (the same range; one journaled write, undone on failure; a docker.service that is not running is left stopped: start it afterwards with `systemctl reset-failed docker.service` and `systemctl start docker.service`); nothing was changed",
                m.describe(user),
                which.path(),
                with_user(user)
            ))
            .kind("subid-stand-in-owner")
            .at(which.path(), Some(line)));
        }
        let a = adopted.get_or_insert_with(|| inputs.clone());
        let file = match which {
            Which::SubUid => &mut a.subuid,
            Which::SubGid => &mut a.subgid,
        };
        file.file = subid::SubIdFile::parse(subid::with_moved(
            &f.file.raw,
            line,
            &[],
            user,
            start,
            count,
        ));
        let r = Some((line, owner));
        match which {
            Which::SubUid => renamed.0 = r,
            Which::SubGid => renamed.1 = r,
        }
    }
    Ok((renamed, adopted))
}

fn with_user(user: &str) -> String {
    if user == daemon_config::DEFAULT_USER {
        String::new()
    } else {
        format!(" --user {user}")
    }
}

/// Decides both ranges, turning allocation failures into conflicts that name the file.
pub fn decide(
    inputs: &Inputs,
    uid: Option<u32>,
    want_u: u64,
    want_g: u64,
    how: How,
) -> Result<(Decision, Decision), Conflict> {
    let defs = &inputs.defs;
    let bu = SubIdBounds {
        count: want_u,
        ..defs.subuid
    };
    let bg = SubIdBounds {
        count: want_g,
        ..defs.subgid
    };
    // No range may hold an account's id, nor lie in the ordinary accounts' space.
    let reserved = (
        Reserved {
            which: Which::SubUid,
            user_max: Some(defs.uid_max),
            accounts: &inputs.ids.uids,
        },
        Reserved {
            which: Which::SubGid,
            user_max: Some(defs.gid_max),
            accounts: &inputs.ids.gids,
        },
    );
    subid::decide(&subid::Request {
        subuid: Side {
            file: &inputs.subuid.file,
            bounds: bu,
            reserved: reserved.0,
        },
        subgid: Side {
            file: &inputs.subgid.file,
            bounds: bg,
            reserved: reserved.1,
        },
        name: &inputs.user,
        uid,
        how,
    })
    .map_err(|(which, e)| range_refusal::conflict(which, &e))
}

/// Plans `disable`: remove `userns-remap` from daemon.json; the user and its ranges stay.
pub(crate) fn disable(inputs: &Inputs) -> Result<DisablePlan, Conflict> {
    let mut notes = Vec::new();
    let docker = docker_facts(inputs, &mut notes);
    flag_conflict(inputs, "disabling it in daemon.json would not turn it off")?;
    config_file_conflict(inputs)?;
    let current = inputs.daemon.config.remap().map_err(|e| {
        Conflict::new(format!("{DAEMON_JSON}: {e}"))
            .kind("daemon-json-invalid")
            .at(DAEMON_JSON, None)
    })?;
    let has_key = inputs.daemon.config.map.contains_key(daemon_config::KEY);
    let new_config = inputs.daemon.config.without_remap();
    let changed = has_key;
    let removed = current.map(str::to_string);
    if removed.is_some() {
        notes.push(Note::DisableLeavesData);
    }
    Ok(DisablePlan {
        changed,
        restart: removed.is_some() && docker.unit_file.is_some() && !docker.masked,
        removed,
        daemon_json: Value::Object(new_config.map.clone()),
        daemon_bytes: changed.then(|| new_config.render()),
        daemon_json_change: if changed {
            FileChange::Update
        } else {
            FileChange::None
        },
        docker,
        notes,
        files: None,
    })
}

/// What a run needs to know of a plan, before anything happens.
pub(crate) trait Decided {
    /// A file or the user changes.
    fn changes_files(&self) -> bool;
    /// docker must restart, as the files alone decide (the live run also asks the engine).
    fn restart_for_files(&self) -> bool;
    /// The planner's remarks for the operator (taken once).
    fn take_notes(&mut self) -> Vec<Note>;
}

impl Decided for Plan {
    fn changes_files(&self) -> bool {
        self.changed
    }
    fn restart_for_files(&self) -> bool {
        self.restart
    }
    fn take_notes(&mut self) -> Vec<Note> {
        std::mem::take(&mut self.notes)
    }
}

impl Decided for DisablePlan {
    fn changes_files(&self) -> bool {
        self.changed
    }
    fn restart_for_files(&self) -> bool {
        self.restart
    }
    fn take_notes(&mut self) -> Vec<Note> {
        std::mem::take(&mut self.notes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::accounts::AccountIds;
    use crate::formats::login_defs::LoginDefs;
    use crate::formats::subid::SubIdFile;
    use crate::host::account::Account;
    use crate::host::docker_unit::UnitScan;
    use crate::host::root::Perms;
    use crate::host::setup::Found;
    use crate::run::preflight::{DaemonFile, IdFile};

    /// Inputs as preflight would read them, without a file system.
    fn inputs(subid: &str, daemon_json: Option<&str>, account: Option<Account>) -> Inputs {
        let id = |text: &str| IdFile {
            file: SubIdFile::parse(text.as_bytes().to_vec()),
            exists: true,
            perms: Perms::root_owned(0o644),
        };
        Inputs {
            user: "dockremap".into(),
            account,
            defs: LoginDefs::default(),
            ids: AccountIds::parse(
                "root:x:0:0::/root:/bin/bash\nnobody:x:65534:65534::/:/usr/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/bash\n",
                "root:x:0:\nalice:x:1000:\n",
            ),
            subuid: id(subid),
            subgid: id(subid),
            daemon: DaemonFile {
                raw: daemon_json.map(|t| t.as_bytes().to_vec()),
                config: daemon_json
                    .map(|t| DaemonConfig::parse(t.as_bytes()).unwrap())
                    .unwrap_or_default(),
                perms: Perms::root_owned(0o644),
            },
            unit: UnitScan {
                unit_file: Some("/lib/systemd/system/docker.service".into()),
                ..UnitScan::default()
            },
            blocked_dirs: Vec::new(),
            data_root: Found {
                path: "/var/lib/docker".into(),
                from: "dockerd's default".into(),
            },
            max_user_namespaces: Some(100),
            useradd_escapes: None,
            remap: None,
            target: None,
        }
    }

    fn dockremap() -> Option<Account> {
        Some(Account {
            name: "dockremap".into(),
            uid: 999,
            gid: 999,
            shell: "/usr/sbin/nologin".into(),
        })
    }

    #[test]
    fn base64_is_rfc_4648() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn files_show_what_the_writers_make_of_the_content_now() {
        // No final newline: the appended line starts on a line of its own.
        let i = inputs("1000:100000:65536", Some("{\"a\": 1e3}"), None);
        let p = enable(&i, None).unwrap();
        let files = enable_files(&i, &p);
        assert_eq!(files.len(), 3);
        assert_eq!(files[0].before.as_deref(), Some("1000:100000:65536"));
        assert_eq!(
            files[0].after,
            "1000:100000:65536\ndockremap:165536:65536\n"
        );
        assert_eq!(files[0].backup.as_deref(), Some("/etc/subuid-"));
        assert_eq!(
            files[2].after.as_bytes(),
            p.daemon_bytes.as_deref().unwrap()
        );
        assert_eq!(files[2].change, FileChange::Update);
        // A range kept writes nothing.
        let i = inputs(
            "dockremap:100000:65536\n",
            Some("{\"userns-remap\": \"default\"}\n"),
            dockremap(),
        );
        assert!(enable_files(&i, &enable(&i, None).unwrap()).is_empty());
    }

    #[test]
    fn a_range_of_a_free_system_uid_is_noted_when_the_user_is_created() {
        let orphan = |subid: &str| {
            enable(&inputs(subid, None, None), None)
                .unwrap()
                .notes
                .iter()
                .any(|n| matches!(n, Note::OrphanRangeLine { user, .. } if user == "dockremap"))
        };
        assert!(orphan("alice:100000:65536\n999:300000:65536\n"));
        // alice's uid, a uid outside the system uids, or an existing user: nothing to note.
        assert!(!orphan("1000:100000:65536\n5000:300000:65536\n"));
        let i = inputs("999:300000:65536\n", None, dockremap());
        assert!(
            enable(&i, None)
                .unwrap()
                .notes
                .iter()
                .all(|n| !matches!(n, Note::OrphanRangeLine { .. }))
        );
    }

    #[test]
    fn a_fresh_host_gets_user_ranges_and_the_key() {
        let p = enable(&inputs("alice:100000:65536\n", None, None), None).unwrap();
        assert!(p.changed && p.restart && p.user.create);
        assert_eq!(
            (p.subuid.start, p.subuid.count, p.subuid.add),
            (165536, 65536, true)
        );
        assert_eq!(p.subgid.start, 165536);
        assert_eq!(p.daemon_json_change, FileChange::Create);
        assert_eq!(
            p.daemon_bytes.as_deref(),
            Some(&b"{\n  \"userns-remap\": \"default\"\n}\n"[..])
        );
    }

    #[test]
    fn a_converged_host_changes_nothing() {
        let i = inputs(
            "dockremap:100000:65536\n",
            Some("{\"userns-remap\": \"default\"}\n"),
            dockremap(),
        );
        let p = enable(&i, None).unwrap();
        assert!(!p.changed && !p.restart && !p.subuid.add && !p.user.create);
        assert_eq!(p.daemon_json_change, FileChange::None);
        assert!(p.daemon_bytes.is_none());
        // disable then removes exactly the key, keeping the rest.
        let i = inputs(
            "dockremap:100000:65536\n",
            Some("{\"debug\": true, \"userns-remap\": \"default\"}\n"),
            dockremap(),
        );
        let d = disable(&i).unwrap();
        assert!(d.changed && d.restart);
        assert_eq!(d.removed.as_deref(), Some("default"));
        assert_eq!(d.daemon_json, serde_json::json!({"debug": true}));
    }

    #[test]
    fn conflicts_are_refused_before_anything_is_decided() {
        let other = inputs("", Some("{\"userns-remap\": \"bob\"}\n"), None);
        assert!(
            enable(&other, None)
                .unwrap_err()
                .to_string()
                .contains("not user dockremap")
        );
        let mut kernel_off = inputs("", None, None);
        kernel_off.max_user_namespaces = Some(0);
        assert!(
            enable(&kernel_off, None)
                .unwrap_err()
                .to_string()
                .contains("disabled in the kernel")
        );
        let malformed = inputs("alice:x:1\n", None, None);
        assert!(
            enable(&malformed, None)
                .unwrap_err()
                .to_string()
                .contains("/etc/subuid:1")
        );
        let mut blocked = inputs("", None, None);
        blocked.blocked_dirs = vec!["/var/lib".into()];
        assert!(
            enable(&blocked, None)
                .unwrap_err()
                .to_string()
                .contains("chmod o+x /var/lib")
        );
    }

    #[test]
    fn range_refusals_name_the_file_and_line() {
        let empty = inputs("dockremap:100000:0\n", None, dockremap());
        let msg = enable(&empty, None).unwrap_err().to_string();
        assert!(
            msg.starts_with("/etc/subuid:1: dockremap:100000:0"),
            "{msg}"
        );
        let covering = inputs("a:100000:65536\ndockremap:1:65536\n", None, dockremap());
        let msg = enable(&covering, None).unwrap_err().to_string();
        assert!(msg.starts_with("/etc/subuid:2: "), "{msg}");
        assert!(msg.contains("uid 1000 (user alice"), "{msg}");
        let mut low = inputs("", None, None);
        low.defs = LoginDefs::parse("SUB_UID_MIN 1\nSUB_GID_MIN 1\n").unwrap();
        let msg = enable(&low, None).unwrap_err().to_string();
        assert!(msg.contains("SUB_UID_MIN 1 in /etc/login.defs"), "{msg}");
    }

    #[test]
    fn a_remap_user_useradd_cannot_create_is_refused_before_it_runs() {
        let mut i = inputs("", None, None);
        i.defs = LoginDefs::parse("SYS_UID_MIN 900\nSYS_UID_MAX 800\n").unwrap();
        let msg = enable(&i, None).unwrap_err().to_string();
        assert!(
            msg.contains("SYS_UID_MIN 900 is above SYS_UID_MAX 800"),
            "{msg}"
        );
        // An existing user with a uid useradd --system gives (SYS_UID_MAX above UID_MIN).
        let mut i = inputs("", None, dockremap());
        i.defs = LoginDefs::parse("UID_MIN 1000\nSYS_UID_MAX 5000\n").unwrap();
        i.account.as_mut().unwrap().uid = 5000;
        assert!(enable(&i, None).is_ok());
    }

    #[test]
    fn without_docker_installed_the_files_are_prepared_and_no_restart_is_planned() {
        let mut i = inputs("", None, None);
        i.unit = UnitScan::default();
        let p = enable(&i, None).unwrap();
        assert!(p.changed && !p.restart);
        assert!(p.notes.contains(&Note::DockerNotInstalled), "{:?}", p.notes);
    }
}
