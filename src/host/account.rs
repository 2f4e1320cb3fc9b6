//! The remap user: name rules, lookup (NSS on the host, /etc/passwd under --root), checks,
//! and creation with the distribution's `useradd`; the four account lookups dockerd makes to
//! resolve a `userns-remap` value ([`Accounts`], for `formats::remap_value::resolve`) and the
//! owners whose subid lines look meant for the remap user ([`remap_target`]).

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::exit::Conflict;
use crate::formats::accounts::AccountIds;
use crate::formats::login_defs::LoginDefs;
use crate::formats::remap_value::{GroupEntry, Lookup, Remap, Target, UserEntry, go_int32};
use crate::host::programs;
use crate::host::root::Root;

/// A user account as far as this tool cares.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Account {
    /// Login name.
    pub(crate) name: String,
    /// Numeric uid.
    pub(crate) uid: u32,
    /// Primary gid.
    pub(crate) gid: u32,
    /// Login shell.
    pub(crate) shell: String,
}

/// Checks a user name against the portable POSIX rule shadow's useradd also accepts:
/// a lower-case letter or `_` first, then lower-case letters, digits, `_` and `-`, at most 32.
pub(crate) fn validate_name(name: &str) -> Result<(), Conflict> {
    let ok_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let ok_rest = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if name.is_empty() || name.len() > 32 || !ok_first || !ok_rest {
        return Err(Conflict::new(format!(
            "{name:?} is not a valid user name: use a lower-case letter or '_' first, then lower-case letters, digits, '_' or '-', at most 32 characters"
        ))
            .kind("invalid-user-name"));
    }
    if name == "default" || name == "root" {
        return Err(Conflict::new(format!(
            "{name:?} cannot be the remap user: {}",
            if name == "root" {
                "mapping containers to root defeats the purpose"
            } else {
                "dockerd reads \"default\" as dockremap; pass --user dockremap"
            }
        ))
        .kind("invalid-user-name"));
    }
    Ok(())
}

/// Finds `name` in a passwd file's text.
pub(crate) fn find_in_passwd(text: &str, name: &str) -> Option<Account> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 || f[0] != name {
            return None;
        }
        Some(Account {
            name: name.to_string(),
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            shell: f[6].to_string(),
        })
    })
}

/// Looks the user up: through NSS on the live host (so LDAP/SSSD users count), in the tree's
/// /etc/passwd under `--root`.
pub(crate) fn lookup(root: &Root, name: &str) -> Result<Option<Account>> {
    if root.is_host() {
        use uzers::os::unix::UserExt;
        return Ok(uzers::get_user_by_name(name).map(|u| Account {
            name: name.to_string(),
            uid: u.uid(),
            gid: u.primary_group_id(),
            shell: u.shell().to_string_lossy().into_owned(),
        }));
    }
    let text = root.read_optional("/etc/passwd")?.unwrap_or_default();
    Ok(find_in_passwd(&String::from_utf8_lossy(&text), name))
}

/// An existing remap user must be a system account (not root) with no login shell. A system
/// account is what useradd makes one (uid in `SYS_UID_MIN..=SYS_UID_MAX`), or any uid below
/// `UID_MIN`, where people's accounts start (Debian's adduser gives system users uid 100).
pub(crate) fn validate_existing(acct: &Account, defs: &LoginDefs) -> Result<(), Conflict> {
    if acct.uid == 0 {
        return Err(Conflict::new(format!(
            "user {} has uid 0; choose another remap user",
            acct.name
        ))
        .kind("remap-user-unfit")
        .at("/etc/passwd", None));
    }
    let uid = u64::from(acct.uid);
    if !(defs.sys_uid_min..=defs.sys_uid_max).contains(&uid) && uid >= defs.uid_min {
        return Err(Conflict::new(format!(
            "user {} exists with uid {}, which is not a system uid (below UID_MIN {}, or in SYS_UID_MIN..SYS_UID_MAX {}..={}, /etc/login.defs); a person's account must not own containers' ids: pass --user with another name",
            acct.name, acct.uid, defs.uid_min, defs.sys_uid_min, defs.sys_uid_max
        ))
            .kind("remap-user-unfit")
            .at("/etc/passwd", None));
    }
    let nologin = ["/nologin", "/false"]
        .iter()
        .any(|s| acct.shell.ends_with(s));
    if !nologin {
        return Err(Conflict::new(format!(
            "user {} exists with login shell {:?}; give it /usr/sbin/nologin (usermod -s /usr/sbin/nologin {}) or pass --user with another name",
            acct.name, acct.shell, acct.name
        ))
            .kind("remap-user-unfit")
            .at("/etc/passwd", None));
    }
    Ok(())
}

/// Before `useradd --system` runs: a system uid (`SYS_UID_MIN..=SYS_UID_MAX`, as useradd
/// allocates it) must be possible at all and still free in /etc/passwd.
pub(crate) fn check_can_create(defs: &LoginDefs, ids: &AccountIds) -> Result<(), Conflict> {
    let (min, max) = (defs.sys_uid_min.max(1), defs.sys_uid_max);
    if min > max {
        return Err(Conflict::new(format!(
            "SYS_UID_MIN {} is above SYS_UID_MAX {} in /etc/login.defs: useradd --system has no uid to give the remap user; fix the two values (SYS_UID_MAX defaults to UID_MIN - 1)",
            defs.sys_uid_min, defs.sys_uid_max
        ))
            .kind("login-defs-no-system-uid")
            .at("/etc/login.defs", None));
    }
    let mut taken: Vec<u32> = ids
        .uids
        .iter()
        .map(|u| u.id)
        .filter(|u| (min..=max).contains(&u64::from(*u)))
        .collect();
    taken.dedup();
    if taken.len() as u64 > max - min {
        return Err(Conflict::new(format!(
            "every system uid from {min} to SYS_UID_MAX {max} (/etc/login.defs) is taken in /etc/passwd: useradd --system cannot create the remap user; free one, widen the range, or pass --user with an existing system user"
        ))
            .kind("no-system-uid-free")
            .at("/etc/passwd", None));
    }
    Ok(())
}

/// The `useradd` invocation that creates the remap user; `useradd` is found on the fixed
/// system PATH ([`programs::SECURE_PATH`]), never through the caller's `PATH`.
pub(crate) fn useradd_command(root: &Root, name: &str) -> Result<Command> {
    let mut cmd = programs::command("useradd")
        .context("cannot create the remap user (useradd is in package passwd)")?;
    if !root.is_host() {
        cmd.arg("--prefix").arg(root.base());
    }
    cmd.args([
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        "--comment",
        "docker user-namespace remapping",
        name,
    ]);
    Ok(cmd)
}

/// The files `useradd --prefix` opens in a tree, by plain path.
const USERADD_FILES: [&str; 8] = [
    "/etc",
    "/etc/passwd",
    "/etc/group",
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/login.defs",
    "/etc/subuid",
    "/etc/subgid",
];

/// Under `--root`, refuses when `useradd --prefix` would reach a file outside the tree: it
/// follows links the way the host sees them, while this tool resolves them inside the tree.
pub(crate) fn check_useradd_confined(root: &Root) -> Result<(), Conflict> {
    if root.is_host() {
        return Ok(());
    }
    for abs in USERADD_FILES {
        if !root.resolves_inside(abs).unwrap_or(false) {
            return Err(Conflict::new(format!(
                "{} is, or lies behind, a symbolic link that leads out of the tree for a program that opens it by path, as useradd --prefix does: it would change the host's accounts instead; replace the link with the file it points to inside the tree, or create user accounts there yourself",
                root.path(abs).display()
            ))
            .kind("useradd-escapes"));
        }
    }
    Ok(())
}

/// Creates the remap user with `useradd` and returns it as created.
pub(crate) fn create(root: &Root, name: &str) -> Result<Account> {
    // Checked when planning too; checked again here, just before useradd runs.
    check_useradd_confined(root)?;
    let mut cmd = useradd_command(root, name)?;
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", cmd.get_program().to_string_lossy()))?;
    if !out.status.success() {
        bail!(
            "useradd failed ({}) creating user {name}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    lookup(root, name)?
        .with_context(|| format!("useradd succeeded, but user {name} cannot be found afterwards"))
}

/// The accounts as dockerd looks them up for a `userns-remap` value: NSS on the live host
/// (dockerd falls back to `getent`, so LDAP/SSSD accounts count), the tree's /etc/passwd and
/// /etc/group under `--root`.
pub(crate) struct Accounts {
    host: bool,
    passwd: String,
    group: String,
}

fn passwd_entry(line: &str) -> Option<UserEntry> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 4 || f[0].is_empty() || f[0].starts_with(['+', '-', '#']) {
        return None;
    }
    Some(UserEntry {
        name: f[0].to_string(),
        uid: f[2].parse().ok()?,
        gid: f[3].parse().ok()?,
    })
}

fn group_entry(line: &str) -> Option<GroupEntry> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 3 || f[0].is_empty() || f[0].starts_with(['+', '-', '#']) {
        return None;
    }
    Some(GroupEntry {
        name: f[0].to_string(),
        gid: f[2].parse().ok()?,
    })
}

impl Accounts {
    /// Reads the account files of a tree (nothing is read on the live host: NSS answers).
    pub(crate) fn read(root: &Root) -> Result<Accounts> {
        if root.is_host() {
            return Ok(Accounts {
                host: true,
                passwd: String::new(),
                group: String::new(),
            });
        }
        let text = |abs: &str| -> Result<String> {
            Ok(String::from_utf8_lossy(&root.read_optional(abs)?.unwrap_or_default()).into_owned())
        };
        Ok(Accounts {
            host: false,
            passwd: text("/etc/passwd")?,
            group: text("/etc/group")?,
        })
    }

    /// [`Accounts::read`] for reading commands (`status`, `check`): account files that cannot
    /// be read name no account, as dockerd would find none in them.
    pub(crate) fn read_lenient(root: &Root) -> Accounts {
        Accounts::read(root).unwrap_or(Accounts {
            host: root.is_host(),
            passwd: String::new(),
            group: String::new(),
        })
    }

    fn from_user(u: uzers::User) -> UserEntry {
        UserEntry {
            name: u.name().to_string_lossy().into_owned(),
            uid: u.uid(),
            gid: u.primary_group_id(),
        }
    }

    fn from_group(g: uzers::Group) -> GroupEntry {
        GroupEntry {
            name: g.name().to_string_lossy().into_owned(),
            gid: g.gid(),
        }
    }
}

impl Lookup for Accounts {
    fn user_by_name(&self, name: &str) -> Option<UserEntry> {
        if self.host {
            return uzers::get_user_by_name(name).map(Accounts::from_user);
        }
        self.passwd
            .lines()
            .filter_map(passwd_entry)
            .find(|u| u.name == name)
    }
    fn user_by_uid(&self, uid: u32) -> Option<UserEntry> {
        if self.host {
            return uzers::get_user_by_uid(uid).map(Accounts::from_user);
        }
        self.passwd
            .lines()
            .filter_map(passwd_entry)
            .find(|u| u.uid == uid)
    }
    fn group_by_name(&self, name: &str) -> Option<GroupEntry> {
        if self.host {
            return uzers::get_group_by_name(name).map(Accounts::from_group);
        }
        self.group
            .lines()
            .filter_map(group_entry)
            .find(|g| g.name == name)
    }
    fn group_by_gid(&self, gid: u32) -> Option<GroupEntry> {
        if self.host {
            return uzers::get_group_by_gid(gid).map(Accounts::from_group);
        }
        self.group
            .lines()
            .filter_map(group_entry)
            .find(|g| g.gid == gid)
    }
}

/// The remap user of a resolved value as its ranges are looked up ([`Target`]): its name and
/// uid, the group the value names, and the owners whose lines look meant for it — the group
/// part's name and gid and the user's primary group's, leaving out the user's own name and
/// uid and any owner that is another user's name or uid (such a line is that user's).
pub(crate) fn remap_target(l: &dyn Lookup, r: &Remap) -> Target {
    let primary = l.group_by_gid(r.primary_gid);
    let mut stand_ins: Vec<String> = Vec::new();
    let mut add = |s: String| {
        if !stand_ins.contains(&s) {
            stand_ins.push(s);
        }
    };
    add(r.group.clone());
    add(r.gid.to_string());
    if let Some(p) = &primary {
        add(p.name.clone());
    }
    add(r.primary_gid.to_string());
    let uid = r.uid.to_string();
    stand_ins.retain(|s| {
        *s != r.user
            && *s != uid
            && match go_int32(s).and_then(|n| u32::try_from(n).ok()) {
                Some(n) => l.user_by_uid(n).is_none(),
                None => l.user_by_name(s).is_none(),
            }
    });
    Target {
        user: r.user.clone(),
        uid: Some(r.uid),
        group: (r.group != r.user).then(|| (r.group.clone(), r.gid)),
        stand_ins,
        own_group: l.group_by_name(&r.user).is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["dockremap", "_remap", "remap-1", "a"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Dock",
            "1abc",
            "a b",
            "a:b",
            "x/../y",
            "default",
            "root",
            &"a".repeat(33),
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    fn files(passwd: &str, group: &str) -> Accounts {
        Accounts {
            host: false,
            passwd: passwd.into(),
            group: group.into(),
        }
    }

    #[test]
    fn the_files_answer_dockerds_four_lookups() {
        let a = files(
            "root:x:0:0::/root:/bin/bash\n+nis::::::\nremapu:x:998:998::/:/usr/sbin/nologin\n",
            "root:x:0:\nremapu:x:998:\nremapg:x:997:\n",
        );
        assert_eq!(a.user_by_uid(998).unwrap().name, "remapu");
        assert_eq!(a.user_by_name("remapu").unwrap().gid, 998);
        assert_eq!(a.group_by_gid(997).unwrap().name, "remapg");
        assert_eq!(a.group_by_name("remapg").unwrap().gid, 997);
        assert!(a.user_by_name("+nis").is_none() && a.user_by_uid(5).is_none());
    }

    #[test]
    fn stand_ins_are_the_groups_never_the_user_nor_another_user() {
        // remapg is also a user's name (uid 997): its line is that user's, not a stand-in;
        // gid 996 is nobody's uid: a line under "996" looks meant for remapu.
        let a = files(
            "remapu:x:998:996::/:/usr/sbin/nologin\nremapg:x:997:997::/:/usr/sbin/nologin\n",
            "remapu:x:998:\nremapg:x:997:\nprim:x:996:\n",
        );
        let r = Remap {
            user: "remapu".into(),
            uid: 998,
            primary_gid: 996,
            group: "remapg".into(),
            gid: 997,
        };
        let t = remap_target(&a, &r);
        assert_eq!(t.stand_ins, ["prim", "996"]);
        assert_eq!(t.group, Some(("remapg".to_string(), 997)));
        assert!(t.own_group);
        // Without another user of the group's name, the group's name and gid stand in.
        let a = files(
            "remapu:x:998:998::/:/usr/sbin/nologin\n",
            "remapu:x:998:\nremapg:x:997:\n",
        );
        let r = Remap {
            primary_gid: 998,
            ..r
        };
        assert_eq!(remap_target(&a, &r).stand_ins, ["remapg", "997"]);
    }

    #[test]
    fn passwd_lookup() {
        let text = "root:x:0:0:root:/root:/bin/bash\ndockremap:x:101:101::/nonexistent:/usr/sbin/nologin\nbad:line\n";
        let a = find_in_passwd(text, "dockremap").unwrap();
        assert_eq!(
            (a.uid, a.gid, a.shell.as_str()),
            (101, 101, "/usr/sbin/nologin")
        );
        assert!(find_in_passwd(text, "bob").is_none());
    }

    #[test]
    fn existing_user_checks() {
        let defs = LoginDefs::default();
        let mut a = Account {
            name: "dockremap".into(),
            uid: 101,
            gid: 101,
            shell: "/bin/false".into(),
        };
        assert!(validate_existing(&a, &defs).is_ok());
        a.shell = "/bin/bash".into();
        assert!(
            validate_existing(&a, &defs)
                .unwrap_err()
                .to_string()
                .contains("login shell")
        );
        a.shell = "/usr/sbin/nologin".into();
        a.uid = 1000;
        assert!(
            validate_existing(&a, &defs)
                .unwrap_err()
                .to_string()
                .contains("not a system uid")
        );
        // useradd's own definition: SYS_UID_MIN..=SYS_UID_MAX, even above UID_MIN.
        let wide = LoginDefs::parse("UID_MIN 1000\nSYS_UID_MAX 5000\n").unwrap();
        a.uid = 5000;
        assert!(validate_existing(&a, &wide).is_ok());
        a.uid = 5001;
        assert!(validate_existing(&a, &wide).is_err());
        // Below UID_MIN is a system uid too (Debian's adduser gives system users uid 100).
        a.uid = 100;
        assert!(validate_existing(&a, &wide).is_ok());
    }

    #[test]
    fn a_system_uid_must_be_possible_before_useradd_runs() {
        let ids = AccountIds::parse("root:x:0:0::/:/bin/sh\nd:x:101:101::/:/bin/sh\n", "");
        assert!(check_can_create(&LoginDefs::default(), &ids).is_ok());
        let inverted = LoginDefs::parse("SYS_UID_MIN 500\nSYS_UID_MAX 400\n").unwrap();
        let msg = check_can_create(&inverted, &ids).unwrap_err().to_string();
        assert!(
            msg.contains("SYS_UID_MIN 500 is above SYS_UID_MAX 400"),
            "{msg}"
        );
        let full = LoginDefs::parse("SYS_UID_MIN 101\nSYS_UID_MAX 101\n").unwrap();
        let msg = check_can_create(&full, &ids).unwrap_err().to_string();
        assert!(msg.contains("every system uid"), "{msg}");
    }
}
