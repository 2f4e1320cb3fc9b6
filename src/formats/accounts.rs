//! /etc/passwd and /etc/group: the ids accounts use, which no subordinate range may contain.

/// One id in use, and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdUse {
    /// The uid or gid.
    pub(crate) id: u32,
    /// Who uses it, in words: `user alice`, `group docker`, `user bob's primary group`.
    pub(crate) who: String,
}

/// The uids and gids accounts use, each list sorted by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AccountIds {
    /// Every uid in /etc/passwd.
    pub(crate) uids: Vec<IdUse>,
    /// Every gid in /etc/group, and every primary gid in /etc/passwd.
    pub(crate) gids: Vec<IdUse>,
}

/// `(name, field 2, field 3)` of every line with at least four `:`-separated fields whose id
/// fields are numbers; NIS markers (`+`, `-`) and anything else are skipped.
fn records(text: &str) -> impl Iterator<Item = (&str, u32, Option<u32>)> {
    text.lines().filter_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        if name.is_empty() || name.starts_with(['+', '-', '#']) {
            return None;
        }
        let _password = f.next()?;
        let id = f.next()?.parse().ok()?;
        Some((name, id, f.next().and_then(|g| g.parse().ok())))
    })
}

impl AccountIds {
    /// Reads the ids out of passwd and group text. Never fails: a line without a numeric id
    /// names no id.
    pub(crate) fn parse(passwd: &str, group: &str) -> AccountIds {
        let mut uids = Vec::new();
        let mut gids = Vec::new();
        for (name, gid, _) in records(group) {
            gids.push(IdUse {
                id: gid,
                who: format!("group {name}"),
            });
        }
        for (name, uid, gid) in records(passwd) {
            uids.push(IdUse {
                id: uid,
                who: format!("user {name}"),
            });
            if let Some(gid) = gid
                && !gids.iter().any(|g| g.id == gid)
            {
                gids.push(IdUse {
                    id: gid,
                    who: format!("user {name}'s primary group"),
                });
            }
        }
        uids.sort_by_key(|u| u.id);
        gids.sort_by_key(|g| g.id);
        AccountIds { uids, gids }
    }
}

/// The first id of `list` (sorted by id) in `start..end`.
pub(crate) fn first_in(list: &[IdUse], start: u64, end: u64) -> Option<&IdUse> {
    let i = list.partition_point(|u| u64::from(u.id) < start);
    list.get(i).filter(|u| u64::from(u.id) < end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_uids_gids_and_primary_groups() {
        let a = AccountIds::parse(
            "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\nbob:x:1001:5000::/:/bin/sh\n+nis::::::\nbad\nx:x:y:1::/:/bin/sh\n",
            "root:x:0:\nalice:x:1000:\ndocker:x:102:alice\n",
        );
        let uids: Vec<(u32, &str)> = a.uids.iter().map(|u| (u.id, u.who.as_str())).collect();
        assert_eq!(
            uids,
            [(0, "user root"), (1000, "user alice"), (1001, "user bob")]
        );
        let gids: Vec<(u32, &str)> = a.gids.iter().map(|u| (u.id, u.who.as_str())).collect();
        assert_eq!(
            gids,
            [
                (0, "group root"),
                (102, "group docker"),
                (1000, "group alice"),
                (5000, "user bob's primary group")
            ]
        );
        assert_eq!(first_in(&a.uids, 1, 1001).unwrap().id, 1000);
        assert!(first_in(&a.uids, 1002, 100_000).is_none());
    }
}
