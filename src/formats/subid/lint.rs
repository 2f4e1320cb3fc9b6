//! Problems in a subordinate-id file (malformed lines, overlaps, empty ranges, ranges covering accounts' ids) and the ids reserved for accounts.

use crate::formats::accounts::{self, IdUse};
use crate::formats::login_defs::SubIdBounds;

use super::file::{Entry, SubIdFile, Which};

/// Ids no range in one file may contain: the ordinary accounts' space (at or below
/// `UID_MAX` / `GID_MAX`) and every id an account uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reserved<'a> {
    /// Which file this is for (names the keys and files in messages).
    pub(crate) which: Which,
    /// `UID_MAX` (`GID_MAX`) from login.defs; None: no such limit.
    pub(crate) user_max: Option<u64>,
    /// The ids accounts use, sorted by id.
    pub(crate) accounts: &'a [IdUse],
}

impl Reserved<'_> {
    /// Nothing reserved (every id in the bounds may be allocated).
    pub(crate) fn none(which: Which) -> Reserved<'static> {
        Reserved {
            which,
            user_max: None,
            accounts: &[],
        }
    }

    /// Why `start..end` must not be a subordinate range; None when it may be.
    pub(crate) fn covered(&self, start: u64, end: u64) -> Option<Covered> {
        let which = self.which;
        if let Some(a) = accounts::first_in(self.accounts, start, end) {
            return Some(Covered::Account {
                which,
                account: a.clone(),
            });
        }
        match self.user_max {
            Some(user_max) if start <= user_max => Some(Covered::UserSpace { which, user_max }),
            _ => None,
        }
    }
}

/// Why a range must not be a subordinate range: what of the accounts' ids it covers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Covered {
    /// It holds an id an account uses.
    #[error(
        "covers {} {} ({}, {}): containers would get that account's files and processes",
        .which.id_word(), .account.id, .account.who, .which.accounts_file()
    )]
    Account {
        /// Which file.
        which: Which,
        /// The first such account.
        account: IdUse,
    },
    /// It starts at or below `UID_MAX` / `GID_MAX`.
    #[error(
        "lies at or below {} {user_max} (/etc/login.defs), where ordinary accounts get their {}s",
        .which.user_max_key(), .which.id_word()
    )]
    UserSpace {
        /// Which file.
        which: Which,
        /// `UID_MAX` / `GID_MAX`.
        user_max: u64,
    },
}

/// One finding of `check`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The file, as a path inside the root.
    pub(crate) file: String,
    /// 1-based line number.
    pub(crate) line: usize,
    /// `malformed`, `overlap`, `out-of-bounds`, `empty` or `covers-account`.
    pub(crate) kind: &'static str,
    /// What is wrong, in words.
    pub(crate) message: String,
}

/// The non-empty ranges in `file` that overlap `mine`, one of a user's ranges, and are not
/// among `owned`, all of that user's ranges: where the user shares ids with someone else.
pub(super) fn others_overlapping<'a>(
    file: &'a SubIdFile,
    mine: &'a Entry,
    owned: &'a [&'a Entry],
) -> impl Iterator<Item = &'a Entry> {
    file.entries.iter().filter(move |e| {
        e.count > 0
            && e.start < mine.end()
            && mine.start < e.end()
            && !owned.iter().any(|o| o.line == e.line)
    })
}

/// The ranges of any owner in one file that cover an account's id or lie at or below
/// `UID_MAX` / `GID_MAX` (kind `covers-account`).
pub(crate) fn covers_accounts(file: &SubIdFile, path: &str, reserved: Reserved) -> Vec<Problem> {
    file.entries
        .iter()
        .filter(|e| e.count > 0)
        .filter_map(|e| {
            reserved.covered(e.start, e.end()).map(|why| Problem {
                file: path.to_string(),
                line: e.line,
                kind: "covers-account",
                message: format!("{}:{}:{} {why}", file.owner(e), e.start, e.count),
            })
        })
        .collect()
}

/// The problems of one user's ranges in one file: each overlap with another owner's range
/// (kind `overlap`, naming the owner) and each range covering an account's id or lying at or
/// below `UID_MAX`/`GID_MAX` (kind `covers-account`).
pub(crate) fn user_problems(
    file: &SubIdFile,
    path: &str,
    name: &str,
    uid: Option<u32>,
    reserved: Reserved,
) -> Vec<Problem> {
    let mine: Vec<&Entry> = file.owned_by(name, uid).filter(|e| e.count > 0).collect();
    let mut out = Vec::new();
    for m in &mine {
        for e in others_overlapping(file, m, &mine) {
            let other = file.owner(e);
            out.push(Problem {
                file: path.to_string(),
                line: m.line,
                kind: "overlap",
                message: format!(
                    "{}:{}:{} overlaps {other}:{}:{} (line {}): containers share ids with {other} (its rootless containers, its files)",
                    file.owner(m),
                    m.start,
                    m.count,
                    e.start,
                    e.count,
                    e.line
                ),
            });
        }
        if let Some(why) = reserved.covered(m.start, m.end()) {
            out.push(Problem {
                file: path.to_string(),
                line: m.line,
                kind: "covers-account",
                message: format!("{}:{}:{} {why}", file.owner(m), m.start, m.count),
            });
        }
    }
    out
}

/// Lints one file: malformed lines, empty ranges, ranges outside the bounds, and overlaps
/// between any two ranges (any owners, the same owner included).
pub fn lint(file: &SubIdFile, path: &str, bounds: SubIdBounds) -> Vec<Problem> {
    let mut out: Vec<Problem> = file
        .malformed
        .iter()
        .map(|m| Problem {
            file: path.to_string(),
            line: m.line,
            kind: "malformed",
            message: m.reason.clone(),
        })
        .collect();
    for e in &file.entries {
        if e.count == 0 {
            out.push(Problem {
                file: path.to_string(),
                line: e.line,
                kind: "empty",
                message: format!("{}:{}:0 is an empty range", file.owner(e), e.start),
            });
        } else if e.start < bounds.min || e.end() - 1 > bounds.max {
            out.push(Problem {
                file: path.to_string(),
                line: e.line,
                kind: "out-of-bounds",
                message: format!(
                    "{}:{}:{} lies outside {}..={} (login.defs)",
                    file.owner(e),
                    e.start,
                    e.count,
                    bounds.min,
                    bounds.max
                ),
            });
        }
    }
    let mut order: Vec<&Entry> = file.entries.iter().filter(|e| e.count > 0).collect();
    order.sort_by_key(|e| (e.start, e.line));
    let mut widest: Option<&Entry> = None;
    for e in order {
        if let Some(w) = widest {
            if e.start < w.end() {
                let (a, b) = if w.line < e.line { (w, e) } else { (e, w) };
                out.push(Problem {
                    file: path.to_string(),
                    line: b.line,
                    kind: "overlap",
                    message: format!(
                        "{}:{}:{} overlaps {}:{}:{} on line {}",
                        file.owner(b),
                        b.start,
                        b.count,
                        file.owner(a),
                        a.start,
                        a.count,
                        a.line
                    ),
                });
            }
            if e.end() > w.end() {
                widest = Some(e);
            }
        } else {
            widest = Some(e);
        }
    }
    out.sort_by_key(|p| p.line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: SubIdBounds = SubIdBounds {
        min: 100_000,
        max: 600_100_000,
        count: 65_536,
    };

    fn file(text: &str) -> SubIdFile {
        SubIdFile::parse(text.as_bytes().to_vec())
    }

    fn accounts() -> crate::formats::accounts::AccountIds {
        crate::formats::accounts::AccountIds::parse(
            "root:x:0:0::/:/bin/sh\nalice:x:1000:1000::/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\nbig:x:120000:120000::/:/bin/sh\n",
            "root:x:0:\nalice:x:1000:\nbiggroup:x:130000:\n",
        )
    }

    #[test]
    fn lint_reports_ranges_covering_accounts_for_every_owner() {
        let ids = accounts();
        let f = file("alice:200000:65536\nbob:1:65536\nc:65000:1000\n");
        let r = Reserved {
            which: Which::SubUid,
            user_max: Some(60000),
            accounts: &ids.uids,
        };
        let p = covers_accounts(&f, "/etc/subuid", r);
        let found: Vec<(usize, &str)> = p.iter().map(|p| (p.line, p.kind)).collect();
        assert_eq!(found, [(2, "covers-account"), (3, "covers-account")]);
        assert!(
            p[0].message
                .contains("bob:1:65536 covers uid 1000 (user alice"),
            "{}",
            p[0].message
        );
        assert!(
            p[1].message.contains("uid 65534 (user nobody"),
            "{}",
            p[1].message
        );
    }

    #[test]
    fn lint_finds_overlaps_bounds_and_bad_lines() {
        let f = file("a:100000:65536\nb:110000:100\n#c\nc:50:5\nd:200000:0\nzz\ne:165535:2\n");
        let p = lint(&f, "/etc/subuid", B);
        let kinds: Vec<(usize, &str)> = p.iter().map(|p| (p.line, p.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (2, "overlap"),
                (4, "out-of-bounds"),
                (5, "empty"),
                (6, "malformed"),
                (7, "overlap")
            ]
        );
        assert!(p[0].message.contains("line 1"));
    }
}
