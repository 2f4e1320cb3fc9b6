//! What to do when no range can be decided: the allocator's facts ([`AllocError`]) in the
//! words of the command line (`--repair`, `--count`, `--start`, `docker-userns check`).

use crate::exit::Conflict;
use crate::formats::subid::{AllocError, Which};

/// What `--repair` does to the data root, as every refusal that offers it says.
const REPAIR_MOVES: &str = "(with docker stopped, the remapped data root is renamed and the owners of its files shifted; docker restarts)";

/// The refusal for `e` in `which`: the file (and line, when the error is about one), what is
/// wrong and what to do.
pub(crate) fn conflict(which: Which, e: &AllocError) -> Conflict {
    let words = words(e);
    match e.line() {
        Some(line) => Conflict::new(format!("{}:{line}: {words}", which.path())),
        None => Conflict::new(format!("{}: {words}", which.path())),
    }
    .kind(kind(e))
    .at(which.path(), e.line())
}

/// What is wrong and what to do, in one sentence.
pub(crate) fn words(e: &AllocError) -> String {
    match e {
        AllocError::TooSmall { owned, .. } => {
            format!("{e}; remove or enlarge that range, or pass --count {owned}")
        }
        AllocError::KeptOverlaps { .. } => format!(
            "{e}; `--repair` moves it to a free range {REPAIR_MOVES}, or fix the file yourself (`docker-userns check` lists every overlap)"
        ),
        AllocError::EmptyLine { .. } => format!("{e}; remove that line and run again"),
        AllocError::KeptCovers { .. } => format!(
            "{e}; `--repair` moves it to a free range above the accounts' ids {REPAIR_MOVES}, or remove that line and run again"
        ),
        AllocError::StartTaken { start, .. } => {
            format!("--start {start}: {e}; choose another start")
        }
        AllocError::StartOutside { start, count, why } => {
            format!("--start {start}: a range of {count} ids there {why}")
        }
        AllocError::StartMoves {
            start,
            owner,
            from,
            from_count,
            lines,
        } => format!(
            "--start {start}: {owner} already owns {from}..{} (line {}); moving it needs --repair as well {REPAIR_MOVES}",
            from + from_count - 1,
            lines
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        AllocError::BoundsInverted { .. } => format!("{e}; fix the two values"),
        AllocError::CountTooLarge { which, .. } => format!(
            "{e}; ask for fewer (--count, {}_COUNT) or widen the bounds",
            which.sub_key()
        ),
        AllocError::InUserSpace { which, .. } => format!(
            "{e}; set {}_MIN above {} (Debian: 100000) and run again",
            which.sub_key(),
            which.user_max_key()
        ),
        AllocError::NoRoom { .. } => format!("{e}; free a range or widen the bounds"),
    }
}

/// The refusal kind of an allocation failure (`--json`'s `error.refusal.kind`).
pub(crate) fn kind(e: &AllocError) -> &'static str {
    use AllocError as A;
    match e {
        A::TooSmall { .. } => "subid-too-small",
        A::KeptOverlaps { .. } => "subid-overlap",
        A::EmptyLine { .. } => "subid-empty-range",
        A::KeptCovers { .. } => "subid-covers-account",
        A::StartTaken { .. } => "subid-start-taken",
        A::StartOutside { .. } => "subid-start-outside",
        A::StartMoves { .. } => "subid-start-moves",
        A::BoundsInverted { .. } => "login-defs-bounds-inverted",
        A::CountTooLarge { .. } => "subid-count-too-large",
        A::InUserSpace { .. } => "login-defs-in-user-space",
        A::NoRoom { .. } => "subid-no-room",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::accounts::IdUse;
    use crate::formats::login_defs::SubIdBounds;
    use crate::formats::subid::{Covered, How, Outside, Request, Side, SubIdFile, decide};

    fn alice() -> IdUse {
        IdUse {
            id: 1000,
            who: "user alice".into(),
        }
    }

    fn covers(which: Which) -> Covered {
        Covered::Account {
            which,
            account: alice(),
        }
    }

    fn below() -> Covered {
        Covered::UserSpace {
            which: Which::SubUid,
            user_max: 60000,
        }
    }

    fn owner() -> String {
        "dockremap".to_string()
    }

    /// One of each refusal, each with the message the allocator's errors carried themselves
    /// before the advice moved here (captured from that code): the words must not change.
    fn cases() -> Vec<(Which, AllocError, &'static str)> {
        let mut all = kept_cases();
        all.extend(start_cases());
        all.extend(bounds_cases());
        all
    }

    /// Refusals of the ranges the user owns.
    fn kept_cases() -> Vec<(Which, AllocError, &'static str)> {
        vec![
            (
                Which::SubUid,
                AllocError::TooSmall {
                    owner: owner(),
                    owned: 100,
                    wanted: 65536,
                    lines: vec![2, 5],
                },
                "/etc/subuid: dockremap already owns only 100 ids (line 2, 5), fewer than the 65536 needed; remove or enlarge that range, or pass --count 100",
            ),
            (
                Which::SubGid,
                AllocError::TooSmall {
                    owner: owner(),
                    owned: 100,
                    wanted: 65536,
                    lines: vec![2],
                },
                "/etc/subgid: dockremap already owns only 100 ids (line 2), fewer than the 65536 needed; remove or enlarge that range, or pass --count 100",
            ),
            (
                Which::SubUid,
                AllocError::KeptOverlaps {
                    owner: owner(),
                    line: 2,
                    other: "alice".into(),
                    other_line: 1,
                },
                "/etc/subuid: dockremap's existing range on line 2 overlaps alice's range on line 1: containers would share those ids with alice; `--repair` moves it to a free range (with docker stopped, the remapped data root is renamed and the owners of its files shifted; docker restarts), or fix the file yourself (`docker-userns check` lists every overlap)",
            ),
            (
                Which::SubGid,
                AllocError::EmptyLine {
                    owner: "101".into(),
                    line: 3,
                    start: 100000,
                },
                "/etc/subgid:3: 101:100000:0 gives 101 no ids, so no container could start (dockerd would map nothing); remove that line and run again",
            ),
            (
                Which::SubUid,
                AllocError::KeptCovers {
                    owner: owner(),
                    line: 2,
                    start: 1,
                    count: 65536,
                    why: covers(Which::SubUid),
                },
                "/etc/subuid:2: dockremap's existing range dockremap:1:65536 covers uid 1000 (user alice, /etc/passwd): containers would get that account's files and processes; `--repair` moves it to a free range above the accounts' ids (with docker stopped, the remapped data root is renamed and the owners of its files shifted; docker restarts), or remove that line and run again",
            ),
            (
                Which::SubUid,
                AllocError::KeptCovers {
                    owner: owner(),
                    line: 2,
                    start: 2000,
                    count: 100,
                    why: below(),
                },
                "/etc/subuid:2: dockremap's existing range dockremap:2000:100 lies at or below UID_MAX 60000 (/etc/login.defs), where ordinary accounts get their uids; `--repair` moves it to a free range above the accounts' ids (with docker stopped, the remapped data root is renamed and the owners of its files shifted; docker restarts), or remove that line and run again",
            ),
            (
                Which::SubGid,
                AllocError::KeptCovers {
                    owner: owner(),
                    line: 4,
                    start: 1,
                    count: 65536,
                    why: covers(Which::SubGid),
                },
                "/etc/subgid:4: dockremap's existing range dockremap:1:65536 covers gid 1000 (user alice, /etc/group): containers would get that account's files and processes; `--repair` moves it to a free range above the accounts' ids (with docker stopped, the remapped data root is renamed and the owners of its files shifted; docker restarts), or remove that line and run again",
            ),
        ]
    }

    /// Refusals of a fixed start.
    fn start_cases() -> Vec<(Which, AllocError, &'static str)> {
        vec![
            (
                Which::SubUid,
                AllocError::StartTaken {
                    start: 120000,
                    count: 65536,
                    other: "alice".into(),
                    other_start: 100000,
                    other_count: 65536,
                    line: 1,
                },
                "/etc/subuid:1: --start 120000: 120000..185535 is not free: it overlaps alice:100000:65536 on line 1; choose another start",
            ),
            (
                Which::SubUid,
                AllocError::StartOutside {
                    start: 10,
                    count: 65536,
                    why: Outside::Covers(covers(Which::SubUid)),
                },
                "/etc/subuid: --start 10: a range of 65536 ids there covers uid 1000 (user alice, /etc/passwd): containers would get that account's files and processes",
            ),
            (
                Which::SubUid,
                AllocError::StartOutside {
                    start: 2000,
                    count: 100,
                    why: Outside::Covers(below()),
                },
                "/etc/subuid: --start 2000: a range of 100 ids there lies at or below UID_MAX 60000 (/etc/login.defs), where ordinary accounts get their uids",
            ),
            (
                Which::SubUid,
                AllocError::StartOutside {
                    start: 600100000,
                    count: 65536,
                    why: Outside::Bounds {
                        which: Which::SubUid,
                        min: 100000,
                        max: 600100000,
                    },
                },
                "/etc/subuid: --start 600100000: a range of 65536 ids there lies outside SUB_UID_MIN..SUB_UID_MAX 100000..600100000 (/etc/login.defs)",
            ),
            (
                Which::SubUid,
                AllocError::StartMoves {
                    start: 300000,
                    owner: owner(),
                    from: 165536,
                    from_count: 65536,
                    lines: vec![2],
                },
                "/etc/subuid: --start 300000: dockremap already owns 165536..231071 (line 2); moving it needs --repair as well (with docker stopped, the remapped data root is renamed and the owners of its files shifted; docker restarts)",
            ),
            (
                Which::SubGid,
                AllocError::StartMoves {
                    start: 300000,
                    owner: owner(),
                    from: 165536,
                    from_count: 65536,
                    lines: vec![2, 3],
                },
                "/etc/subgid: --start 300000: dockremap already owns 165536..231071 (line 2, 3); moving it needs --repair as well (with docker stopped, the remapped data root is renamed and the owners of its files shifted; docker restarts)",
            ),
        ]
    }

    /// Refusals for the bounds in login.defs.
    fn bounds_cases() -> Vec<(Which, AllocError, &'static str)> {
        vec![
            (
                Which::SubGid,
                AllocError::BoundsInverted {
                    which: Which::SubGid,
                    min: 700000,
                    max: 600000,
                },
                "/etc/subgid: SUB_GID_MIN 700000 is above SUB_GID_MAX 600000 in /etc/login.defs (the bounds are inverted): no range can be allocated; fix the two values",
            ),
            (
                Which::SubUid,
                AllocError::CountTooLarge {
                    which: Which::SubUid,
                    count: 4294967296,
                    min: 100000,
                    max: 600100000,
                },
                "/etc/subuid: a range of 4294967296 ids cannot fit between SUB_UID_MIN 100000 and SUB_UID_MAX 600100000 (/etc/login.defs), which hold 600000001 ids in all; ask for fewer (--count, SUB_UID_COUNT) or widen the bounds",
            ),
            (
                Which::SubUid,
                AllocError::InUserSpace {
                    which: Which::SubUid,
                    min: 1,
                    user_max: 60000,
                    account: Some(alice()),
                },
                "/etc/subuid: SUB_UID_MIN 1 in /etc/login.defs is at or below UID_MAX 60000: a range there would cover ordinary accounts' uids, e.g. uid 1000 (user alice); set SUB_UID_MIN above UID_MAX (Debian: 100000) and run again",
            ),
            (
                Which::SubGid,
                AllocError::InUserSpace {
                    which: Which::SubGid,
                    min: 1,
                    user_max: 60000,
                    account: None,
                },
                "/etc/subgid: SUB_GID_MIN 1 in /etc/login.defs is at or below GID_MAX 60000: a range there would cover ordinary accounts' gids; set SUB_GID_MIN above GID_MAX (Debian: 100000) and run again",
            ),
            (
                Which::SubGid,
                AllocError::NoRoom {
                    which: Which::SubGid,
                    count: 65536,
                    min: 100000,
                    max: 200000,
                },
                "/etc/subgid: no free range of 65536 ids between 100000 and 200000 (SUB_GID_MIN/MAX in /etc/login.defs): every gap is taken by other owners' ranges or accounts' ids; free a range or widen the bounds",
            ),
        ]
    }

    #[test]
    fn every_refusal_reads_as_before() {
        for (which, e, want) in cases() {
            assert_eq!(conflict(which, &e).to_string(), want);
        }
    }

    #[test]
    fn the_allocators_errors_are_facts_naming_no_flag_or_command() {
        for (_, e, _) in cases() {
            let fact = e.to_string();
            for advice in [
                "--",
                "docker-userns",
                "run again",
                "choose another",
                "widen",
            ] {
                assert!(!fact.contains(advice), "{advice:?} in {fact:?}");
            }
        }
    }

    fn refuse(text: &str, how: How) -> String {
        let f = SubIdFile::parse(text.as_bytes().to_vec());
        let b = SubIdBounds {
            min: 100_000,
            max: 600_100_000,
            count: 65_536,
        };
        let (which, e) = decide(&Request {
            subuid: Side::unreserved(Which::SubUid, &f, b),
            subgid: Side::unreserved(Which::SubGid, &f, b),
            name: "dockremap",
            uid: None,
            how,
        })
        .unwrap_err();
        conflict(which, &e).to_string()
    }

    #[test]
    fn refusals_the_allocator_finds_say_what_to_do() {
        // What the allocator's own tests asserted of its messages before the advice moved here.
        let overlap = refuse(
            "alice:100000:65536\ndockremap:100000:65536\n",
            How::default(),
        );
        assert!(overlap.contains("--repair"), "{overlap}");
        let empty = refuse("dockremap:100000:0\n", How::default());
        assert!(
            empty.starts_with("/etc/subuid:1: ") && empty.contains("remove that line"),
            "{empty}"
        );
        let elsewhere = How {
            repair: false,
            start: Some(300000),
        };
        let moves = refuse("alice:100000:65536\ndockremap:165536:65536\n", elsewhere);
        assert!(moves.contains("--repair"), "{moves}");
    }
}
