//! The `userns-remap` value (daemon.json key or dockerd's `--userns-remap` flag) in every form
//! dockerd accepts — `default`, a user name, `name:group`, a uid, `uid:gid` — parsed and
//! resolved exactly as dockerd does, and what dockerd will reject or misuse about it.
//!
//! dockerd's rules, as read in moby's source (github.com/moby/moby, `daemon/daemon_unix.go`,
//! `parseRemappedRoot` and `setupRemappedRoot`; `daemon/internal/usergroup/lookup_unix.go`,
//! `LoadIdentityMapping` and `lookupSubRangesFile`; docker 26's `pkg/idtools/idtools_unix.go`
//! `lookupSubUIDRanges`/`lookupSubGIDRanges` agree):
//!
//! 1. An empty value turns remapping off (`setupRemappedRoot`: `cfg.RemappedRoot == ""`).
//! 2. More than one `:` is an error ("Invalid user/group specification").
//! 3. The user part is a uid when Go's `strconv.ParseInt(part, 10, 32)` accepts it (an
//!    optional sign, decimal digits, within int32): it must name an account (`LookupUID`,
//!    "Uid N has no entry in /etc/passwd"), whose name is used from then on.
//! 4. Otherwise it is a name; `default` means `dockremap`. A name must exist (`LookupUser`),
//!    except `default`: when dockremap does not exist dockerd creates it and its ranges and uses
//!    `dockremap:dockremap`, whatever group part was given.
//! 5. Without a group part, a group is still required: for a uid, the group whose gid is that
//!    number (`LookupGID(uid)`); for a name, the group of the same name (`LookupGroup(name)`).
//! 6. A group part is a gid when `ParseInt` accepts it (`LookupGID`), else a group name
//!    (`LookupGroup`); either must exist.
//! 7. A user resolving to `root` leaves remapping off (a warning only).
//! 8. The ranges: `LoadIdentityMapping(username)` reads **both** /etc/subuid and /etc/subgid
//!    by the *user*: lines whose owner is the user's name or its numeric *uid* (also in
//!    /etc/subgid; never the group's name or gid). None in either file fails the start ("no
//!    subuid ranges found for user" / docker 26: "no subgid ranges found for user"). The group
//!    part names the group in messages only; it maps nothing.

use crate::formats::subid::{Entry, Problem, SubIdFile, Which};

/// The user dockerd means by `default`.
pub(crate) const DEFAULT_USER: &str = "dockremap";

/// One part of the value: a number (as dockerd's `ParseInt(s, 10, 32)` reads it) or a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// A numeric id (negative numbers parse, and name no account).
    Id(i64),
    /// A name (`default` in the user part means dockremap).
    Name(String),
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Part::Id(n) => write!(f, "{n}"),
            Part::Name(s) => f.write_str(s),
        }
    }
}

/// A parsed `userns-remap` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemapSpec {
    /// The user part.
    pub(crate) user: Part,
    /// The group part, if given.
    pub(crate) group: Option<Part>,
}

/// Go's `strconv.ParseInt(s, 10, 32)`: an optional `+`/`-`, at least one decimal digit (leading
/// zeros allowed), the value within int32.
pub(crate) fn go_int32(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i64 = digits
        .trim_start_matches('0')
        .parse::<i64>()
        .ok()
        .or_else(|| digits.bytes().all(|b| b == b'0').then_some(0))?;
    let v = if s.starts_with('-') { -v } else { v };
    (i64::from(i32::MIN)..=i64::from(i32::MAX))
        .contains(&v)
        .then_some(v)
}

fn part(s: &str) -> Part {
    match go_int32(s) {
        Some(n) => Part::Id(n),
        None => Part::Name(s.to_string()),
    }
}

/// Why dockerd rejects a value, in dockerd's own terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SpecError {
    /// More than one `:`.
    #[error("{0:?} has more than one ':' (dockerd: \"Invalid user/group specification\")")]
    TooManyParts(String),
    /// A numeric user part naming no account.
    #[error("uid {0} names no account (dockerd: \"Uid {0} has no entry in /etc/passwd\")")]
    NoUid(i64),
    /// A user name naming no account.
    #[error("user {0:?} does not exist (dockerd: \"Error during uid lookup for {0:?}\")")]
    NoUser(String),
    /// The group dockerd requires without a group part: gid = the uid given.
    #[error(
        "no group has gid {0}: without a group part dockerd needs the group whose gid is the uid (dockerd: \"Gid {0} has no entry in /etc/group\")"
    )]
    NoGroupForUid(i64),
    /// The group dockerd requires without a group part: the user's name.
    #[error(
        "no group is named {0:?}: without a group part dockerd needs the group of the user's name (dockerd: \"Error during gid lookup for {0:?}\")"
    )]
    NoGroupForName(String),
    /// A numeric group part naming no group.
    #[error("gid {0} names no group (dockerd: \"Gid {0} has no entry\")")]
    NoGid(i64),
    /// A group part naming no group.
    #[error("group {0:?} does not exist (dockerd: \"Error during groupname lookup for {0:?}\")")]
    NoGroup(String),
}

/// Parses a value; `Ok(None)` for the empty string (remapping off). Only the shape is checked
/// here: whether the accounts exist is [`resolve`]'s business.
pub(crate) fn parse(value: &str) -> Result<Option<RemapSpec>, SpecError> {
    if value.is_empty() {
        return Ok(None);
    }
    let parts: Vec<&str> = value.split(':').collect();
    match parts.as_slice() {
        [u] => Ok(Some(RemapSpec {
            user: part(u),
            group: None,
        })),
        [u, g] => Ok(Some(RemapSpec {
            user: part(u),
            group: Some(part(g)),
        })),
        _ => Err(SpecError::TooManyParts(value.to_string())),
    }
}

/// An account as a lookup returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserEntry {
    /// Login name.
    pub(crate) name: String,
    /// uid.
    pub(crate) uid: u32,
    /// Primary gid.
    pub(crate) gid: u32,
}

/// A group as a lookup returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupEntry {
    /// Group name.
    pub(crate) name: String,
    /// gid.
    pub(crate) gid: u32,
}

/// The account lookups dockerd makes (files, then NSS through `getent`).
pub(crate) trait Lookup {
    /// The user named `name`.
    fn user_by_name(&self, name: &str) -> Option<UserEntry>;
    /// The user with this uid.
    fn user_by_uid(&self, uid: u32) -> Option<UserEntry>;
    /// The group named `name`.
    fn group_by_name(&self, name: &str) -> Option<GroupEntry>;
    /// The group with this gid.
    fn group_by_gid(&self, gid: u32) -> Option<GroupEntry>;
}

/// The user and group a value resolves to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Remap {
    /// The user whose ranges dockerd maps (by name or uid, in both files).
    pub(crate) user: String,
    /// Its uid.
    pub(crate) uid: u32,
    /// Its primary gid.
    pub(crate) primary_gid: u32,
    /// The group the value names (dockerd: in messages only).
    pub(crate) group: String,
    /// Its gid.
    pub(crate) gid: u32,
}

/// What dockerd makes of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// It remaps to this user's ranges.
    User(Remap),
    /// `default` while no dockremap exists: dockerd creates dockremap (and its ranges) and
    /// uses `dockremap:dockremap`.
    CreatesDefault,
    /// The user is root: dockerd leaves remapping off (a warning only).
    Root,
}

impl Resolved {
    /// The user name it remaps to (dockremap for [`Resolved::CreatesDefault`]).
    #[cfg(test)]
    pub(crate) fn user(&self) -> Option<&str> {
        match self {
            Resolved::User(r) => Some(&r.user),
            Resolved::CreatesDefault => Some(DEFAULT_USER),
            Resolved::Root => None,
        }
    }
}

fn by_uid(l: &dyn Lookup, n: i64) -> Option<UserEntry> {
    u32::try_from(n).ok().and_then(|u| l.user_by_uid(u))
}

fn by_gid(l: &dyn Lookup, n: i64) -> Option<GroupEntry> {
    u32::try_from(n).ok().and_then(|g| l.group_by_gid(g))
}

/// Resolves a parsed value as dockerd's `parseRemappedRoot` does (rules 3 to 7 above).
pub(crate) fn resolve(spec: &RemapSpec, l: &dyn Lookup) -> Result<Resolved, SpecError> {
    let (user, implied_group) = match &spec.user {
        Part::Id(n) => {
            let u = by_uid(l, *n).ok_or(SpecError::NoUid(*n))?;
            let g = match spec.group {
                None => Some(by_gid(l, *n).ok_or(SpecError::NoGroupForUid(*n))?),
                Some(_) => None,
            };
            (u, g)
        }
        Part::Name(name) => {
            let lookup_name = if name == "default" {
                DEFAULT_USER
            } else {
                name.as_str()
            };
            let u = match l.user_by_name(lookup_name) {
                Some(u) => u,
                None if name == "default" => return Ok(Resolved::CreatesDefault),
                None => return Err(SpecError::NoUser(name.clone())),
            };
            let g = match spec.group {
                None => Some(
                    l.group_by_name(lookup_name)
                        .ok_or_else(|| SpecError::NoGroupForName(lookup_name.to_string()))?,
                ),
                Some(_) => None,
            };
            (u, g)
        }
    };
    let group = match (&spec.group, implied_group) {
        (_, Some(g)) => g,
        (Some(Part::Id(n)), None) => by_gid(l, *n).ok_or(SpecError::NoGid(*n))?,
        (Some(Part::Name(g)), None) => l
            .group_by_name(g)
            .ok_or_else(|| SpecError::NoGroup(g.clone()))?,
        (None, None) => unreachable!("a group is implied when none is given"),
    };
    if user.name == "root" {
        return Ok(Resolved::Root);
    }
    Ok(Resolved::User(Remap {
        user: user.name,
        uid: user.uid,
        primary_gid: user.gid,
        group: group.name,
        gid: group.gid,
    }))
}

/// Parses and resolves in one step.
pub(crate) fn resolve_value(value: &str, l: &dyn Lookup) -> Result<Option<Resolved>, SpecError> {
    match parse(value)? {
        None => Ok(None),
        Some(spec) => resolve(&spec, l).map(Some),
    }
}

/// `check`/`status` kind: the user has no line in a file, but a line under another owner that
/// looks meant for it (the group's name or gid, the user's primary group) holds a range.
pub(crate) const UNDER_OTHER_NAME: &str = "remap-range-under-other-name";
/// `check`/`status` kind: the user has no line in a file at all (dockerd fails to start).
pub(crate) const MISSING: &str = "remap-range-missing";
/// `check`/`status` kind: the group part's own /etc/subgid range differs from the user's,
/// which is the one dockerd maps gids to.
pub(crate) const GROUP_RANGE_IGNORED: &str = "remap-group-range-ignored";
/// `check`/`status` kind: dockerd rejects the value itself (an id or name naming no account).
pub(crate) const VALUE_REJECTED: &str = "remap-value-rejected";

/// The remap user as the ranges are looked up for it, and who else might hold its range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The user's name.
    pub(crate) user: String,
    /// Its uid (lines under it count as the user's, as for dockerd and shadow).
    pub(crate) uid: Option<u32>,
    /// The group the value names (`name:group`), when it differs from the user's name.
    pub(crate) group: Option<(String, u32)>,
    /// Owners whose lines look meant for the user: the group part's name and gid, the user's
    /// primary group's name and gid — never the user's own name or uid, nor another user's
    /// name or uid (that line is that user's).
    pub(crate) stand_ins: Vec<String>,
    /// A group named as the user exists (dockerd needs it for a value without a group part).
    pub(crate) own_group: bool,
}

/// A file where the user has no line of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Missing {
    /// The file.
    pub(crate) which: Which,
    /// The lines under a stand-in owner (line, owner, start, count), in file order.
    pub(crate) in_the_way: Vec<(usize, String, u64, u64)>,
}

impl Missing {
    /// The one stand-in line a repair can move to the user's name (None: none, or several).
    pub(crate) fn movable(&self) -> Option<&(usize, String, u64, u64)> {
        match self.in_the_way.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// Where it stands and what dockerd needs, in words, for refusals and problems.
    pub(crate) fn describe(&self, user: &str) -> String {
        let path = self.which.path();
        let word = self.which.id_word();
        match self.in_the_way.as_slice() {
            [] => format!(
                "{path} has no line for user {user} (by name or uid): dockerd reads both /etc/subuid and /etc/subgid by the user's name and fails to start (docker 26: \"no sub{word} ranges found for user {user:?}\"; 28 and later say subuid for both files)"
            ),
            [(line, owner, start, count)] => format!(
                "{path} has no line for user {user}, but line {line} gives the range to {owner}: `{owner}:{start}:{count}`; dockerd reads /etc/subgid and /etc/subuid by the user's name (or uid), never by the group, so it needs `{user}:{start}:{count}` there and fails to start without it (docker 26: \"no sub{word} ranges found for user {user:?}\"; 28 and later say subuid for both files)"
            ),
            many => format!(
                "{path} has no line for user {user}, but lines {} give ranges to {}; dockerd reads /etc/subgid and /etc/subuid by the user's name (or uid), never by the group, and fails to start without a line `{user}:START:COUNT`",
                many.iter()
                    .map(|l| l.0.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                many.iter()
                    .map(|l| format!("`{}:{}:{}`", l.1, l.2, l.3))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// None when the user (by name or uid) has a line in `file`; else what stands in its place.
pub(crate) fn missing(file: &SubIdFile, which: Which, t: &Target) -> Option<Missing> {
    if file.owned_by(&t.user, t.uid).next().is_some() {
        return None;
    }
    let in_the_way = file
        .entries
        .iter()
        .filter(|e| t.stand_ins.iter().any(|s| file.owner(e) == s))
        .map(|e| (e.line, file.owner(e).to_string(), e.start, e.count))
        .collect();
    Some(Missing { which, in_the_way })
}

fn span(entries: &[&Entry]) -> Option<(u64, u64)> {
    Some((
        entries.iter().map(|e| e.start).min()?,
        entries.iter().map(|e| e.count).sum(),
    ))
}

/// What dockerd will reject or misuse about the user's ranges: a file without its line (with
/// the stand-in line in the way, kind [`UNDER_OTHER_NAME`], else [`MISSING`]), and the group
/// part's own /etc/subgid range differing from the user's, which dockerd uses
/// ([`GROUP_RANGE_IGNORED`]).
pub(crate) fn misuse(subuid: &SubIdFile, subgid: &SubIdFile, t: &Target) -> Vec<Problem> {
    let mut out = Vec::new();
    for (file, which) in [(subuid, Which::SubUid), (subgid, Which::SubGid)] {
        if let Some(m) = missing(file, which, t) {
            out.push(Problem {
                file: which.path().into(),
                line: m.in_the_way.first().map_or(0, |l| l.0),
                kind: if m.in_the_way.is_empty() {
                    MISSING
                } else {
                    UNDER_OTHER_NAME
                },
                message: m.describe(&t.user),
            });
        }
    }
    if let Some((group, gid)) = &t.group {
        let mine: Vec<&Entry> = subgid.owned_by(&t.user, t.uid).collect();
        let gid = gid.to_string();
        let theirs: Vec<&Entry> = subgid
            .entries
            .iter()
            .filter(|e| {
                let o = subgid.owner(e);
                (o == group || o == gid) && t.stand_ins.iter().any(|s| s == o)
            })
            .collect();
        if let (Some((ms, mc)), Some((gs, gc)), Some(first)) =
            (span(&mine), span(&theirs), theirs.first())
            && (ms, mc) != (gs, gc)
        {
            out.push(Problem {
                file: Which::SubGid.path().into(),
                line: first.line,
                kind: GROUP_RANGE_IGNORED,
                message: format!(
                    "\"userns-remap\" names group {group}, whose range here is {gs}:{gc} (line {}), but dockerd maps container gids to user {}'s /etc/subgid range {ms}:{mc}: the group part maps nothing",
                    first.line, t.user
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accounts as in the issue: remapu (uid 998, primary group remapu 998) and group remapg
    /// (997), root, dockremap absent unless added.
    struct Accounts {
        users: Vec<UserEntry>,
        groups: Vec<GroupEntry>,
    }

    impl Lookup for Accounts {
        fn user_by_name(&self, name: &str) -> Option<UserEntry> {
            self.users.iter().find(|u| u.name == name).cloned()
        }
        fn user_by_uid(&self, uid: u32) -> Option<UserEntry> {
            self.users.iter().find(|u| u.uid == uid).cloned()
        }
        fn group_by_name(&self, name: &str) -> Option<GroupEntry> {
            self.groups.iter().find(|g| g.name == name).cloned()
        }
        fn group_by_gid(&self, gid: u32) -> Option<GroupEntry> {
            self.groups.iter().find(|g| g.gid == gid).cloned()
        }
    }

    fn u(name: &str, uid: u32, gid: u32) -> UserEntry {
        UserEntry {
            name: name.into(),
            uid,
            gid,
        }
    }

    fn g(name: &str, gid: u32) -> GroupEntry {
        GroupEntry {
            name: name.into(),
            gid,
        }
    }

    fn host() -> Accounts {
        Accounts {
            users: vec![
                u("root", 0, 0),
                u("remapu", 998, 998),
                u("lonely", 995, 100),
            ],
            groups: vec![
                g("root", 0),
                g("users", 100),
                g("remapu", 998),
                g("remapg", 997),
            ],
        }
    }

    fn remap(user: &str, uid: u32, primary: u32, group: &str, gid: u32) -> Resolved {
        Resolved::User(Remap {
            user: user.into(),
            uid,
            primary_gid: primary,
            group: group.into(),
            gid,
        })
    }

    fn r(v: &str, l: &Accounts) -> Result<Option<Resolved>, SpecError> {
        resolve_value(v, l)
    }

    /// moby daemon/daemon_unix.go parseRemappedRoot: `strconv.ParseInt(idparts[0], 10, 32)`
    /// decides uid or name; Go accepts a sign and leading zeros, within int32.
    #[test]
    fn numbers_are_read_as_go_parse_int_reads_them() {
        assert_eq!(go_int32("998"), Some(998));
        assert_eq!(go_int32("+998"), Some(998));
        assert_eq!(go_int32("0998"), Some(998));
        assert_eq!(go_int32("000"), Some(0));
        assert_eq!(go_int32("-1"), Some(-1));
        assert_eq!(go_int32("2147483647"), Some(2147483647));
        assert_eq!(go_int32("2147483648"), None, "beyond int32: a name");
        assert_eq!(go_int32("4294967295"), None);
        assert_eq!(go_int32("1_000"), None, "underscores only with base 0");
        assert_eq!(go_int32(""), None);
        assert_eq!(go_int32("+"), None);
        assert_eq!(go_int32("12a"), None);
    }

    /// moby daemon/daemon_unix.go: setupRemappedRoot (empty = off) and parseRemappedRoot
    /// (`len(idparts) > 2` is "Invalid user/group specification").
    #[test]
    fn shapes() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(
            parse("remapu:remapg"),
            Ok(Some(RemapSpec {
                user: Part::Name("remapu".into()),
                group: Some(Part::Name("remapg".into())),
            }))
        );
        assert_eq!(
            parse("998:997").unwrap().unwrap(),
            RemapSpec {
                user: Part::Id(998),
                group: Some(Part::Id(997)),
            }
        );
        assert_eq!(parse("a:b:c"), Err(SpecError::TooManyParts("a:b:c".into())));
        // "user:" has an empty group part: dockerd looks the group "" up, and fails.
        assert_eq!(
            parse("remapu:").unwrap().unwrap().group,
            Some(Part::Name(String::new()))
        );
    }

    /// moby daemon/daemon_unix.go parseRemappedRoot, each form.
    #[test]
    fn every_form_resolves_as_dockerd_resolves_it() {
        let h = host();
        let remapu = remap("remapu", 998, 998, "remapu", 998);
        // username: the group of the same name is looked up (LookupGroup(lookupName)).
        assert_eq!(r("remapu", &h), Ok(Some(remapu.clone())));
        // username:groupname
        assert_eq!(
            r("remapu:remapg", &h),
            Ok(Some(remap("remapu", 998, 998, "remapg", 997)))
        );
        // uid: LookupUID, then LookupGID(uid) for the group.
        assert_eq!(r("998", &h), Ok(Some(remapu.clone())));
        assert_eq!(r("+0998", &h), Ok(Some(remapu.clone())));
        // uid:gid
        assert_eq!(
            r("998:997", &h),
            Ok(Some(remap("remapu", 998, 998, "remapg", 997)))
        );
        // username:gid and uid:groupname mix.
        assert_eq!(
            r("remapu:997", &h),
            Ok(Some(remap("remapu", 998, 998, "remapg", 997)))
        );
        assert_eq!(
            r("998:remapg", &h),
            Ok(Some(remap("remapu", 998, 998, "remapg", 997)))
        );
    }

    /// moby daemon/daemon_unix.go parseRemappedRoot: the `defaultIDSpecifier` special case.
    #[test]
    fn default_is_dockremap_and_is_created_when_missing() {
        let mut h = host();
        assert_eq!(r("default", &h), Ok(Some(Resolved::CreatesDefault)));
        // Missing: created, and the group part is ignored (returns dockremap, dockremap).
        assert_eq!(r("default:nosuch", &h), Ok(Some(Resolved::CreatesDefault)));
        h.users.push(u("dockremap", 101, 101));
        // Existing without its group: LookupGroup("dockremap") fails.
        assert_eq!(
            r("default", &h),
            Err(SpecError::NoGroupForName("dockremap".into()))
        );
        h.groups.push(g("dockremap", 101));
        assert_eq!(
            r("default", &h),
            Ok(Some(remap("dockremap", 101, 101, "dockremap", 101)))
        );
        assert_eq!(
            r("default:remapg", &h),
            Ok(Some(remap("dockremap", 101, 101, "remapg", 997)))
        );
        // Only the exact word: "Default" is an ordinary (missing) name.
        assert_eq!(r("Default", &h), Err(SpecError::NoUser("Default".into())));
    }

    /// moby daemon/daemon_unix.go parseRemappedRoot: every lookup error.
    #[test]
    fn what_dockerd_rejects() {
        let h = host();
        assert_eq!(r("4242", &h), Err(SpecError::NoUid(4242)));
        assert_eq!(r("-1", &h), Err(SpecError::NoUid(-1)));
        assert_eq!(r("bob", &h), Err(SpecError::NoUser("bob".into())));
        // uid without a group of the same number: LookupGID(uid).
        assert_eq!(r("995", &h), Err(SpecError::NoGroupForUid(995)));
        // name without a group of the same name: LookupGroup(name).
        assert_eq!(
            r("lonely", &h),
            Err(SpecError::NoGroupForName("lonely".into()))
        );
        // ... a group part makes both work.
        assert_eq!(
            r("lonely:users", &h),
            Ok(Some(remap("lonely", 995, 100, "users", 100)))
        );
        assert_eq!(r("995:100", &h).unwrap().unwrap().user(), Some("lonely"));
        assert_eq!(r("remapu:4242", &h), Err(SpecError::NoGid(4242)));
        assert_eq!(
            r("remapu:nosuch", &h),
            Err(SpecError::NoGroup("nosuch".into()))
        );
        assert_eq!(r("remapu:", &h), Err(SpecError::NoGroup(String::new())));
        // A number beyond int32 is a name, and no user has it.
        assert_eq!(
            r("4294967295", &h),
            Err(SpecError::NoUser("4294967295".into()))
        );
    }

    /// moby daemon/daemon_unix.go setupRemappedRoot: `username == "root"` leaves remapping off.
    #[test]
    fn root_turns_remapping_off() {
        let h = host();
        for v in ["root", "0", "0:0", "root:remapg"] {
            assert_eq!(r(v, &h), Ok(Some(Resolved::Root)), "{v}");
        }
    }

    fn file(text: &str) -> SubIdFile {
        SubIdFile::parse(text.as_bytes().to_vec())
    }

    fn target() -> Target {
        Target {
            user: "remapu".into(),
            uid: Some(998),
            group: Some(("remapg".into(), 997)),
            stand_ins: vec!["remapg".into(), "997".into()],
            own_group: true,
        }
    }

    /// moby daemon/internal/usergroup/lookup_unix.go LoadIdentityMapping / lookupSubRangesFile:
    /// both files by `usr.Name` or `strconv.Itoa(usr.Uid)`; the group is never consulted.
    #[test]
    fn a_group_line_in_subgid_is_not_the_users() {
        let t = target();
        let uid = file("remapu:200000:65536\n");
        let gid = file("# x\nremapg:200000:65536\n");
        let p = misuse(&uid, &gid, &t);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(
            (p[0].file.as_str(), p[0].line, p[0].kind),
            ("/etc/subgid", 2, UNDER_OTHER_NAME)
        );
        assert!(
            p[0].message.contains("needs `remapu:200000:65536`")
                && p[0].message.contains("`remapg:200000:65536`"),
            "{}",
            p[0].message
        );
        let m = missing(&gid, Which::SubGid, &t).unwrap();
        assert_eq!(m.movable(), Some(&(2, "remapg".to_string(), 200000, 65536)));
        // A line under the numeric gid is not the user's either; under the uid it is.
        let by_gid = file("997:300000:65536\n");
        assert_eq!(misuse(&uid, &by_gid, &t)[0].kind, UNDER_OTHER_NAME);
        assert!(misuse(&uid, &file("998:300000:65536\n"), &t).is_empty());
        // Nothing at all: missing, no line to name.
        let p = misuse(&uid, &file("alice:100000:65536\n"), &t);
        assert_eq!((p[0].line, p[0].kind), (0, MISSING));
        // An owner that is not a stand-in (someone else's line) is never "meant for it".
        let mut t2 = target();
        t2.stand_ins.clear();
        assert!(
            missing(&gid, Which::SubGid, &t2)
                .unwrap()
                .in_the_way
                .is_empty()
        );
    }

    #[test]
    fn the_groups_own_range_differing_from_the_users_is_reported() {
        let t = target();
        let uid = file("remapu:200000:65536\n");
        let both = file("remapu:200000:65536\nremapg:300000:65536\n");
        let p = misuse(&uid, &both, &t);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!((p[0].line, p[0].kind), (2, GROUP_RANGE_IGNORED));
        assert!(p[0].message.contains("200000:65536"), "{}", p[0].message);
        // The same range under both names: nothing misleading.
        let same = file("remapu:200000:65536\nremapg:200000:65536\n");
        assert!(misuse(&uid, &same, &t).is_empty());
    }
}
