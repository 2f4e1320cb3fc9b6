//! Choosing the remap user's ranges: keep what it owns, or find a range free in both files.

use crate::formats::accounts::{self, IdUse};
use crate::formats::login_defs::SubIdBounds;

use super::file::{Entry, SubIdFile, Which};
use super::lint::{Covered, Reserved, others_overlapping};

/// What happens to one file for the remap user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The user already owns enough ids here; nothing is written.
    Keep {
        /// Lowest start among the user's ranges.
        start: u64,
        /// Total ids the user owns in this file.
        count: u64,
        /// The lines holding them.
        lines: Vec<usize>,
    },
    /// A new line `user:start:count` is appended.
    Add {
        /// First id of the new range.
        start: u64,
        /// Its size.
        count: u64,
    },
    /// The user's lines are replaced by one line `user:start:count` (`--repair`, `--start`):
    /// where the first of them was, the others removed.
    Move {
        /// Lowest start of the ranges it had.
        from: u64,
        /// Ids it had.
        from_count: u64,
        /// The lines holding them.
        lines: Vec<usize>,
        /// First id of the new range (disjoint from the old one).
        start: u64,
        /// Its size.
        count: u64,
    },
}

impl Decision {
    /// First id mapped to the container's root.
    pub fn start(&self) -> u64 {
        match self {
            Decision::Keep { start, .. }
            | Decision::Add { start, .. }
            | Decision::Move { start, .. } => *start,
        }
    }

    /// Number of ids.
    pub fn count(&self) -> u64 {
        match self {
            Decision::Keep { count, .. }
            | Decision::Add { count, .. }
            | Decision::Move { count, .. } => *count,
        }
    }

    /// True when the file has to be written.
    pub fn writes(&self) -> bool {
        !matches!(self, Decision::Keep { .. })
    }

    /// The range it moves from, as (start, count), for a [`Decision::Move`].
    pub(crate) fn moved_from(&self) -> Option<(u64, u64)> {
        match self {
            Decision::Move {
                from, from_count, ..
            } => Some((*from, *from_count)),
            _ => None,
        }
    }
}

/// How the remap user's ranges may be chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct How {
    /// An existing range that overlaps another owner's or covers an account's id is moved to a
    /// free one (and with `start`, a range elsewhere is moved there) instead of refused.
    pub(crate) repair: bool,
    /// The range must start at this id in both files (`--start N`).
    pub(crate) start: Option<u64>,
}

/// One file's part of a [`Request`]: the file, its bounds (`count`: the ids wanted) and the ids
/// no range in it may hold.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// The file as read.
    pub(crate) file: &'a SubIdFile,
    /// `SUB_*_MIN`, `SUB_*_MAX`, and the size of the range wanted.
    pub(crate) bounds: SubIdBounds,
    /// The accounts' ids (its `which` names the file).
    pub(crate) reserved: Reserved<'a>,
}

impl<'a> Side<'a> {
    /// A side where nothing is reserved beyond the other owners' ranges.
    pub fn unreserved(which: Which, file: &'a SubIdFile, bounds: SubIdBounds) -> Side<'a> {
        Side {
            file,
            bounds,
            reserved: Reserved::none(which),
        }
    }
}

/// What [`decide`] decides: the remap user's ranges in both files.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// /etc/subuid.
    pub subuid: Side<'a>,
    /// /etc/subgid.
    pub subgid: Side<'a>,
    /// The remap user's login name.
    pub name: &'a str,
    /// Its uid, when it exists (lines under the numeric uid are its too).
    pub uid: Option<u32>,
    /// Whether a range may move (`repair`) and where it must start.
    pub how: How,
}

/// Why no range could be decided for a file: the facts (whose range, which ids, which line).
/// What to do about it is the caller's to say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The user owns some ids, but fewer than requested.
    #[error("{owner} already owns only {owned} ids (line {lines}), fewer than the {wanted} needed", lines = join_lines(.lines))]
    TooSmall {
        /// The remap user.
        owner: String,
        /// Ids owned.
        owned: u64,
        /// Ids wanted.
        wanted: u64,
        /// Lines holding them.
        lines: Vec<usize>,
    },
    /// The user's existing range overlaps another owner's: keeping it would share ids.
    #[error(
        "{owner}'s existing range on line {line} overlaps {other}'s range on line {other_line}: containers would share those ids with {other}"
    )]
    KeptOverlaps {
        /// The remap user.
        owner: String,
        /// Its line.
        line: usize,
        /// The other owner.
        other: String,
        /// The other owner's line.
        other_line: usize,
    },
    /// A line of the user gives it no ids: dockerd would map nothing and no container starts.
    #[error(
        "{owner}:{start}:0 gives {owner} no ids, so no container could start (dockerd would map nothing)"
    )]
    EmptyLine {
        /// The remap user.
        owner: String,
        /// The line.
        line: usize,
        /// Its start.
        start: u64,
    },
    /// A kept range of the user covers ids that belong to accounts.
    #[error("{owner}'s existing range {owner}:{start}:{count} {why}")]
    KeptCovers {
        /// The remap user.
        owner: String,
        /// The line.
        line: usize,
        /// Its start.
        start: u64,
        /// Its size.
        count: u64,
        /// What it covers.
        why: Covered,
    },
    /// A fixed start: start..start+count is not free.
    #[error("{start}..{end} is not free: it overlaps {other}:{other_start}:{other_count} on line {line}", end = .start + .count - 1)]
    StartTaken {
        /// The requested start.
        start: u64,
        /// Ids wanted.
        count: u64,
        /// The owner in the way (the remap user itself when it overlaps its current range).
        other: String,
        /// That range's start.
        other_start: u64,
        /// Its size.
        other_count: u64,
        /// Its line.
        line: usize,
    },
    /// A fixed start outside the bounds or on an account's id.
    #[error("a range of {count} ids at {start} {why}")]
    StartOutside {
        /// The requested start.
        start: u64,
        /// Ids wanted.
        count: u64,
        /// Why it may not be there.
        why: Outside,
    },
    /// A fixed start while the user owns a range elsewhere, and moves are not allowed.
    #[error("{owner} already owns {from}..{from_end} (line {lines}), not a range at {start}", from_end = .from + .from_count - 1, lines = join_lines(.lines))]
    StartMoves {
        /// The requested start.
        start: u64,
        /// The remap user.
        owner: String,
        /// Where its range starts now.
        from: u64,
        /// Its size.
        from_count: u64,
        /// Its lines.
        lines: Vec<usize>,
    },
    /// `SUB_*_MIN` is above `SUB_*_MAX`: no id at all can be allocated.
    #[error(
        "{key}_MIN {min} is above {key}_MAX {max} in /etc/login.defs (the bounds are inverted): no range can be allocated", key = .which.sub_key()
    )]
    BoundsInverted {
        /// Which file.
        which: Which,
        /// `SUB_*_MIN`.
        min: u64,
        /// `SUB_*_MAX`.
        max: u64,
    },
    /// More ids were asked for than the bounds hold in all.
    #[error(
        "a range of {count} ids cannot fit between {key}_MIN {min} and {key}_MAX {max} (/etc/login.defs), which hold {space} ids in all", key = .which.sub_key(), space = .max - .min + 1
    )]
    CountTooLarge {
        /// Which file.
        which: Which,
        /// Ids wanted.
        count: u64,
        /// `SUB_*_MIN`.
        min: u64,
        /// `SUB_*_MAX`.
        max: u64,
    },
    /// `SUB_*_MIN` lets ranges into the ordinary accounts' ids.
    #[error(
        "{key}_MIN {min} in /etc/login.defs is at or below {max_key} {user_max}: a range there would cover ordinary accounts' {word}s{example}",
        key = .which.sub_key(), max_key = .which.user_max_key(), word = .which.id_word(),
        example = .account.as_ref().map(|a| format!(", e.g. {} {} ({})", .which.id_word(), a.id, a.who)).unwrap_or_default()
    )]
    InUserSpace {
        /// Which file.
        which: Which,
        /// `SUB_*_MIN`.
        min: u64,
        /// `UID_MAX` / `GID_MAX`.
        user_max: u64,
        /// An account whose id lies between them.
        account: Option<IdUse>,
    },
    /// No gap of the requested size is left inside the bounds.
    #[error(
        "no free range of {count} ids between {min} and {max} ({key}_MIN/MAX in /etc/login.defs): every gap is taken by other owners' ranges or accounts' ids", key = .which.sub_key()
    )]
    NoRoom {
        /// Which file.
        which: Which,
        /// Ids wanted.
        count: u64,
        /// Lower bound.
        min: u64,
        /// Upper bound.
        max: u64,
    },
}

/// Why a fixed start cannot be: the accounts' ids, or the bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Outside {
    /// The range would cover accounts' ids.
    #[error("{0}")]
    Covers(Covered),
    /// The range would leave `SUB_*_MIN..SUB_*_MAX`.
    #[error("lies outside {key}_MIN..{key}_MAX {min}..{max} (/etc/login.defs)", key = .which.sub_key())]
    Bounds {
        /// Which file.
        which: Which,
        /// `SUB_*_MIN`.
        min: u64,
        /// `SUB_*_MAX`.
        max: u64,
    },
}

impl AllocError {
    /// The line of the file the error is about, when it is one line.
    pub(crate) fn line(&self) -> Option<usize> {
        match self {
            AllocError::EmptyLine { line, .. }
            | AllocError::KeptCovers { line, .. }
            | AllocError::StartTaken { line, .. } => Some(*line),
            _ => None,
        }
    }
}

fn join_lines(lines: &[usize]) -> String {
    lines
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Existing ownership in one file: `Some(Keep)` when the user owns enough, an error when it
/// owns too little, `None` when it owns nothing.
fn existing(
    file: &SubIdFile,
    name: &str,
    uid: Option<u32>,
    count: u64,
    reserved: Reserved,
) -> Result<Option<Decision>, AllocError> {
    if let Some(e) = file.owned_by(name, uid).find(|e| e.count == 0) {
        return Err(AllocError::EmptyLine {
            owner: file.owner(e).to_string(),
            line: e.line,
            start: e.start,
        });
    }
    let owned: Vec<&Entry> = file.owned_by(name, uid).collect();
    if owned.is_empty() {
        return Ok(None);
    }
    let total: u64 = owned.iter().map(|e| e.count).sum();
    let lines: Vec<usize> = owned.iter().map(|e| e.line).collect();
    if total < count {
        return Err(AllocError::TooSmall {
            owner: name.to_string(),
            owned: total,
            wanted: count,
            lines,
        });
    }
    // Ranges dockerd (20.10) allocated itself may overlap someone else's: never keep those.
    for mine in &owned {
        if let Some(theirs) = others_overlapping(file, mine, &owned).next() {
            return Err(AllocError::KeptOverlaps {
                owner: name.to_string(),
                line: mine.line,
                other: file.owner(theirs).to_string(),
                other_line: theirs.line,
            });
        }
    }
    // Nor those that cover accounts' ids (SUB_UID_MIN 1 lets useradd and dockerd make them).
    for mine in &owned {
        if let Some(why) = reserved.covered(mine.start, mine.end()) {
            return Err(AllocError::KeptCovers {
                owner: file.owner(mine).to_string(),
                line: mine.line,
                start: mine.start,
                count: mine.count,
                why,
            });
        }
    }
    let start = owned.iter().map(|e| e.start).min().unwrap_or_default();
    Ok(Some(Decision::Keep {
        start,
        count: total,
        lines,
    }))
}

/// The non-empty ranges of `files`, sorted by start, packed into one `u64` each as
/// `start << 32 | (count - 1)` (both fit in 32 bits): half the memory of `(start, end)` pairs
/// and a sort several times faster, which is what allocation costs on files with a million
/// lines.
fn spans(files: &[&SubIdFile], reserved: &[&[IdUse]]) -> Vec<u64> {
    let n = files.iter().map(|f| f.entries.len()).sum::<usize>()
        + reserved.iter().map(|r| r.len()).sum::<usize>();
    let mut v = Vec::with_capacity(n);
    // Each account's id is a busy span of one id.
    for r in reserved {
        v.extend(r.iter().map(|a| u64::from(a.id) << 32));
    }
    for f in files {
        v.extend(
            f.entries
                .iter()
                .filter(|e| e.count > 0)
                .map(|e| (e.start << 32) | (e.count - 1)),
        );
    }
    // Plain u64s: the standard sort is as fast as a radix sort here, and needs no second buffer.
    v.sort_unstable();
    v
}

/// `(start, end)` of a packed span.
fn unpack(k: u64) -> (u64, u64) {
    let start = k >> 32;
    (start, start + (k & 0xffff_ffff) + 1)
}

/// Lowest start of a `count`-id range inside `bounds` (min ..= max) that touches no span in
/// `spans` (packed, sorted by start, overlapping, not merged).
fn first_fit_spans(spans: &[u64], bounds: SubIdBounds, count: u64) -> Option<u64> {
    if count == 0 || bounds.min > bounds.max || bounds.max - bounds.min + 1 < count {
        return None;
    }
    let mut cur = bounds.min;
    for &k in spans {
        let (s, e) = unpack(k);
        if e <= cur {
            continue;
        }
        if s >= cur + count {
            break;
        }
        cur = e;
        if cur > bounds.max {
            return None;
        }
    }
    (cur + count - 1 <= bounds.max).then_some(cur)
}

/// True when `start .. start+count` lies inside `bounds` and touches no span in `spans`.
fn is_free_spans(spans: &[u64], bounds: SubIdBounds, start: u64, count: u64) -> bool {
    if count == 0 || start < bounds.min || start + count - 1 > bounds.max {
        return false;
    }
    let below = spans.partition_point(|k| k >> 32 < start + count);
    spans[..below].iter().all(|k| unpack(*k).1 <= start)
}

/// Why no range of `b.count` ids can be allocated in `b` at all, before looking at any file:
/// inverted bounds, a count larger than the bounds, or bounds reaching into the accounts' ids.
fn check_bounds(b: SubIdBounds, r: Reserved) -> Result<(), (Which, AllocError)> {
    let which = r.which;
    if b.min > b.max {
        return Err((
            which,
            AllocError::BoundsInverted {
                which,
                min: b.min,
                max: b.max,
            },
        ));
    }
    if b.count > b.max - b.min + 1 {
        return Err((
            which,
            AllocError::CountTooLarge {
                which,
                count: b.count,
                min: b.min,
                max: b.max,
            },
        ));
    }
    if let Some(user_max) = r.user_max.filter(|m| b.min <= *m) {
        let account =
            accounts::first_in(r.accounts, b.min, user_max.min(b.max).saturating_add(1)).cloned();
        return Err((
            which,
            AllocError::InUserSpace {
                which,
                min: b.min,
                user_max,
                account,
            },
        ));
    }
    Ok(())
}

/// What one file needs before a range is chosen.
enum Need {
    /// The user's range stays.
    Keep(Decision),
    /// A new range of this many ids.
    New(u64),
    /// The user's one range (start, count, line) moves.
    Move(u64, u64, usize),
}

impl Need {
    fn count(&self) -> Option<u64> {
        match self {
            Need::Keep(_) => None,
            Need::New(c) | Need::Move(_, c, _) => Some(*c),
        }
    }

    fn at(&self, start: u64) -> Decision {
        match self {
            Need::Keep(d) => d.clone(),
            Need::New(count) => Decision::Add {
                start,
                count: *count,
            },
            Need::Move(from, count, line) => Decision::Move {
                from: *from,
                from_count: *count,
                lines: vec![*line],
                start,
                count: *count,
            },
        }
    }
}

/// Decides the remap user's ranges in both files, `bounds.count` ids each. Existing ranges of
/// the user (by name or numeric uid) are kept unless one is empty, overlaps another owner's or
/// covers a reserved id; otherwise a range is chosen that overlaps no range of any owner and no
/// account's id, lies within the bounds (which must lie above the accounts' space), and starts at
/// the same id in both files where possible. `how.repair` moves a range that may not be kept
/// (and, with `how.start`, a range elsewhere) instead of refusing it; a moved range keeps its
/// size and lands on ids disjoint from where it was (the shift of the data root's owners
/// depends on that). `how.start` fixes the start in both files.
pub fn decide(req: &Request) -> Result<(Decision, Decision), (Which, AllocError)> {
    let nu = need(req, &req.subuid).map_err(|e| (Which::SubUid, e))?;
    let ng = need(req, &req.subgid).map_err(|e| (Which::SubGid, e))?;
    let at = req.how.start;
    match (&nu, &ng) {
        (Need::Keep(u), Need::Keep(g)) => Ok((u.clone(), g.clone())),
        (Need::Keep(u), _) => Ok((u.clone(), alone(&req.subgid, &ng, at, Some(u.start()))?)),
        (_, Need::Keep(g)) => Ok((alone(&req.subuid, &nu, at, Some(g.start()))?, g.clone())),
        _ if at.is_some() => Ok((
            alone(&req.subuid, &nu, at, None)?,
            alone(&req.subgid, &ng, at, None)?,
        )),
        _ => together(req, &nu, &ng),
    }
}

/// What one file needs for the user: its ranges kept, a new one, or its one range moved
/// (only with `repair`, for a range that may not be kept or lies elsewhere than `start`).
fn need(req: &Request, side: &Side) -> Result<Need, AllocError> {
    let (file, how) = (side.file, req.how);
    let movable = |e: AllocError| -> Result<Need, AllocError> {
        let owned: Vec<&Entry> = file.owned_by(req.name, req.uid).collect();
        match owned.as_slice() {
            [one] => Ok(Need::Move(one.start, one.count, one.line)),
            _ => Err(e),
        }
    };
    match existing(file, req.name, req.uid, side.bounds.count, side.reserved) {
        Ok(None) => Ok(Need::New(side.bounds.count)),
        Ok(Some(Decision::Keep {
            start,
            count,
            lines,
        })) => match how.start {
            Some(n) if n != start => {
                let elsewhere = AllocError::StartMoves {
                    start: n,
                    owner: req.name.to_string(),
                    from: start,
                    from_count: count,
                    lines,
                };
                if how.repair {
                    movable(elsewhere)
                } else {
                    Err(elsewhere)
                }
            }
            _ => Ok(Need::Keep(Decision::Keep {
                start,
                count,
                lines,
            })),
        },
        Ok(Some(other)) => Ok(Need::Keep(other)),
        Err(e @ (AllocError::KeptOverlaps { .. } | AllocError::KeptCovers { .. }))
            if how.repair =>
        {
            movable(e)
        }
        Err(e) => Err(e),
    }
}

/// Places what one file needs on its own: at `at` exactly (a fixed start), else at `prefer`
/// when that is free (the other file's start), else in the lowest free gap.
fn alone(
    side: &Side,
    n: &Need,
    at: Option<u64>,
    prefer: Option<u64>,
) -> Result<Decision, (Which, AllocError)> {
    let r = side.reserved;
    let count = n.count().unwrap_or(side.bounds.count);
    let b = SubIdBounds {
        count,
        ..side.bounds
    };
    check_bounds(b, r)?;
    let busy = spans(&[side.file], &[r.accounts]);
    if let Some(p) = at {
        return if is_free_spans(&busy, b, p, count) {
            Ok(n.at(p))
        } else {
            Err((r.which, start_refusal(side.file, b, r, p, count)))
        };
    }
    if let Some(p) = prefer.filter(|p| is_free_spans(&busy, b, *p, count)) {
        return Ok(n.at(p));
    }
    first_fit_spans(&busy, b, count)
        .map(|start| n.at(start))
        .ok_or((
            r.which,
            AllocError::NoRoom {
                which: r.which,
                count,
                min: b.min,
                max: b.max,
            },
        ))
}

/// Places what both files need (neither keeps a range, no fixed start): the same start in
/// both, a gap free in the union of both files, inside both bounds, large enough for the
/// larger count; when there is none, each file on its own.
fn together(
    req: &Request,
    nu: &Need,
    ng: &Need,
) -> Result<(Decision, Decision), (Which, AllocError)> {
    let (su, sg) = (&req.subuid, &req.subgid);
    let (cu, cg) = (nu.count().unwrap_or(0), ng.count().unwrap_or(0));
    let bu = SubIdBounds {
        count: cu,
        ..su.bounds
    };
    let bg = SubIdBounds {
        count: cg,
        ..sg.bounds
    };
    check_bounds(bu, su.reserved)?;
    check_bounds(bg, sg.reserved)?;
    let all = spans(
        &[su.file, sg.file],
        &[su.reserved.accounts, sg.reserved.accounts],
    );
    let both = SubIdBounds {
        min: bu.min.max(bg.min),
        max: bu.max.min(bg.max),
        count: cu.max(cg),
    };
    let found = first_fit_spans(&all, both, both.count);
    drop(all);
    if let Some(start) = found {
        return Ok((nu.at(start), ng.at(start)));
    }
    let u = alone(su, nu, req.how.start, None)?;
    let g = alone(sg, ng, req.how.start, Some(u.start()))?;
    Ok((u, g))
}

/// Why `start..start+count` cannot be the range (`--start`): whose range is in the way, an
/// account's id, or the bounds.
fn start_refusal(
    file: &SubIdFile,
    b: SubIdBounds,
    r: Reserved,
    start: u64,
    count: u64,
) -> AllocError {
    let end = start + count;
    if let Some(e) = file
        .entries
        .iter()
        .find(|e| e.count > 0 && e.start < end && start < e.end())
    {
        return AllocError::StartTaken {
            start,
            count,
            other: file.owner(e).to_string(),
            other_start: e.start,
            other_count: e.count,
            line: e.line,
        };
    }
    let why = r.covered(start, end).map_or(
        Outside::Bounds {
            which: r.which,
            min: b.min,
            max: b.max,
        },
        Outside::Covers,
    );
    AllocError::StartOutside { start, count, why }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::subid::file::ID_SPACE;
    use proptest::prelude::*;

    const B: SubIdBounds = SubIdBounds {
        min: 100_000,
        max: 600_100_000,
        count: 65_536,
    };

    fn file(text: &str) -> SubIdFile {
        SubIdFile::parse(text.as_bytes().to_vec())
    }

    /// [`decide`] with nothing reserved and no repair or fixed start.
    fn plain(
        subuid: (&SubIdFile, SubIdBounds),
        subgid: (&SubIdFile, SubIdBounds),
        name: &str,
        uid: Option<u32>,
    ) -> Result<(Decision, Decision), (Which, AllocError)> {
        decide(&Request {
            subuid: Side::unreserved(Which::SubUid, subuid.0, subuid.1),
            subgid: Side::unreserved(Which::SubGid, subgid.0, subgid.1),
            name,
            uid,
            how: How::default(),
        })
    }

    /// Every id used by any owner, as sorted, merged half-open intervals (the reference
    /// allocator the tests compare the packed-span one against).
    fn busy(f: &SubIdFile) -> Vec<(u64, u64)> {
        merge(f.entries.iter().map(|e| (e.start, e.end())).collect())
    }

    /// Sorts and merges half-open intervals; empty ones are dropped, touching ones joined.
    /// Test reference only.
    fn merge(mut iv: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
        iv.retain(|(s, e)| e > s);
        iv.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(iv.len());
        for (s, e) in iv {
            match out.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
        out
    }

    /// Lowest start of a `count`-id range inside `bounds` (min ..= max) that touches no interval
    /// in `busy` (sorted, merged). Test reference only.
    fn first_fit(busy: &[(u64, u64)], bounds: SubIdBounds, count: u64) -> Option<u64> {
        if count == 0 || bounds.min > bounds.max || bounds.max - bounds.min + 1 < count {
            return None;
        }
        let mut cur = bounds.min;
        let from = busy.partition_point(|(_, e)| *e <= cur);
        for &(s, e) in &busy[from..] {
            if s >= cur + count {
                break;
            }
            cur = cur.max(e);
            if cur > bounds.max {
                return None;
            }
        }
        (cur + count - 1 <= bounds.max).then_some(cur)
    }

    /// True when `start .. start+count` lies inside `bounds` and touches nothing in `busy`.
    /// Test reference only.
    fn is_free(busy: &[(u64, u64)], bounds: SubIdBounds, start: u64, count: u64) -> bool {
        if count == 0 || start < bounds.min || start + count - 1 > bounds.max {
            return false;
        }
        let i = busy.partition_point(|(_, e)| *e <= start);
        busy.get(i).is_none_or(|(s, _)| *s >= start + count)
    }

    fn decide1(
        u: &str,
        g: &str,
        uid: Option<u32>,
    ) -> Result<(Decision, Decision), (Which, AllocError)> {
        plain((&file(u), B), (&file(g), B), "dockremap", uid)
    }

    #[test]
    fn empty_files_get_the_lowest_range() {
        let (u, g) = decide1("", "", None).unwrap();
        assert_eq!(
            u,
            Decision::Add {
                start: 100000,
                count: 65536
            }
        );
        assert_eq!(g, u);
    }

    #[test]
    fn a_tiny_range_inside_the_candidate_is_avoided() {
        // dockerd 20.10 would pick 100000 here and overlap bob.
        let (u, _) = decide1("bob:110000:100\n", "", None).unwrap();
        assert_eq!(u.start(), 110100);
    }

    #[test]
    fn a_range_containing_the_candidate_is_avoided() {
        let (u, _) = decide1("big:50000:1000000\n", "", None).unwrap();
        assert_eq!(u.start(), 1_050_000);
    }

    #[test]
    fn takes_a_gap_between_owners_that_fits_exactly() {
        let (u, _) = decide1("a:100000:65536\nc:231072:65536\n", "", None).unwrap();
        assert_eq!(u.start(), 165536);
        let (u, _) = decide1("a:100000:65536\nc:231071:65536\n", "", None).unwrap();
        assert_eq!(u.start(), 296607);
    }

    #[test]
    fn same_start_in_both_files_where_possible() {
        let (u, g) = decide1("a:100000:65536\n", "b:165536:65536\n", None).unwrap();
        assert_eq!(u.start(), 231072);
        assert_eq!(g.start(), 231072);
    }

    #[test]
    fn keeps_existing_ranges_by_name_or_uid_and_mirrors_the_start() {
        let (u, g) = decide1("dockremap:300000:65536\n", "", None).unwrap();
        assert_eq!(
            u,
            Decision::Keep {
                start: 300000,
                count: 65536,
                lines: vec![1]
            }
        );
        assert_eq!(
            g,
            Decision::Add {
                start: 300000,
                count: 65536
            }
        );
        let (u, g) = decide1("x:100000:10\n", "101:100000:70000\n", Some(101)).unwrap();
        assert_eq!(
            g,
            Decision::Keep {
                start: 100000,
                count: 70000,
                lines: vec![1]
            }
        );
        assert_eq!(
            u.start(),
            100010,
            "mirrored start is taken by x: lowest free gap"
        );
    }

    #[test]
    fn too_small_an_existing_range_is_an_error() {
        let err = decide1("dockremap:100000:100\n", "", None).unwrap_err();
        assert_eq!(err.0, Which::SubUid);
        assert!(matches!(err.1, AllocError::TooSmall { owned: 100, .. }));
    }

    #[test]
    fn no_room_left_is_an_error() {
        let tight = SubIdBounds {
            min: 100000,
            max: 200000,
            count: 65536,
        };
        let u = file("a:140000:1\n");
        let err = plain((&u, tight), (&file(""), tight), "dockremap", None).unwrap_err();
        assert_eq!(err.0, Which::SubUid);
        assert!(err.1.to_string().contains("no free range"));
        // Exactly fits at the top.
        let top = SubIdBounds {
            min: 100000,
            max: 165535,
            count: 65536,
        };
        let (u, _) = plain((&file(""), top), (&file(""), top), "d", None).unwrap();
        assert_eq!(u.start(), 100000);
    }

    fn accounts() -> crate::formats::accounts::AccountIds {
        crate::formats::accounts::AccountIds::parse(
            "root:x:0:0::/:/bin/sh\nalice:x:1000:1000::/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\nbig:x:120000:120000::/:/bin/sh\n",
            "root:x:0:\nalice:x:1000:\nbiggroup:x:130000:\n",
        )
    }

    fn decide_reserved(
        u: &str,
        b: SubIdBounds,
        ids: &crate::formats::accounts::AccountIds,
    ) -> Result<(Decision, Decision), (Which, AllocError)> {
        let r = (
            Reserved {
                which: Which::SubUid,
                user_max: Some(60000),
                accounts: &ids.uids,
            },
            Reserved {
                which: Which::SubGid,
                user_max: Some(60000),
                accounts: &ids.gids,
            },
        );
        let f = file(u);
        decide(&Request {
            subuid: Side {
                file: &f,
                bounds: b,
                reserved: r.0,
            },
            subgid: Side {
                file: &f,
                bounds: b,
                reserved: r.1,
            },
            name: "dockremap",
            uid: Some(999),
            how: How::default(),
        })
    }

    #[test]
    fn new_ranges_avoid_accounts_ids_and_bounds_in_the_accounts_space_are_refused() {
        let ids = accounts();
        // uid 120000 and gid 130000 are accounts' ids: the range goes above both.
        let (u, g) = decide_reserved("", B, &ids).unwrap();
        assert_eq!((u.start(), g.start()), (130001, 130001));
        // SUB_UID_MIN 1 reaches into the ordinary accounts' ids: refused, naming an account.
        let low = SubIdBounds { min: 1, ..B };
        let (which, err) = decide_reserved("", low, &ids).unwrap_err();
        assert_eq!(which, Which::SubUid);
        let msg = err.to_string();
        assert!(
            msg.contains("SUB_UID_MIN 1 in /etc/login.defs is at or below UID_MAX 60000"),
            "{msg}"
        );
        assert!(msg.contains("uid 1000 (user alice)"), "{msg}");
        // Without a reserved space the old allocator would have given 1..65536.
        assert_eq!(decide1("", "", None).unwrap().0.start(), 100000);
    }

    #[test]
    fn kept_ranges_covering_accounts_or_empty_are_refused_naming_the_line() {
        let ids = accounts();
        let (which, err) = decide_reserved("# x\ndockremap:1:65536\n", B, &ids).unwrap_err();
        assert_eq!(which, Which::SubUid);
        assert_eq!(err.line(), Some(2));
        let msg = err.to_string();
        assert!(
            msg.contains("dockremap:1:65536 covers uid 1000 (user alice, /etc/passwd)"),
            "{msg}"
        );
        let (_, err) = decide_reserved("dockremap:10000:65536\n", B, &ids).unwrap_err();
        assert!(err.to_string().contains("uid 65534 (user nobody"), "{err}");
        let (_, err) = decide_reserved(
            "dockremap:2000:100\n",
            SubIdBounds { count: 100, ..B },
            &ids,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("at or below UID_MAX 60000"),
            "{err}"
        );
        // Empty: refused even with nothing reserved, and even next to a good line.
        let (_, err) = decide1("dockremap:100000:0\n", "", None).unwrap_err();
        assert_eq!(err.line(), Some(1));
        // (What to do about it is the caller's: run::range_refusal says "remove that line".)
        assert!(matches!(err, AllocError::EmptyLine { .. }), "{err}");
        let (_, err) =
            decide1("dockremap:300000:65536\ndockremap:100000:0\n", "", None).unwrap_err();
        assert_eq!(err.line(), Some(2));
    }

    #[test]
    fn impossible_bounds_say_what_is_wrong() {
        let inverted = SubIdBounds {
            min: 700_000,
            max: 600_000,
            count: 65536,
        };
        let (which, err) = plain((&file(""), B), (&file(""), inverted), "d", None).unwrap_err();
        assert_eq!(which, Which::SubGid);
        let msg = err.to_string();
        assert!(
            msg.contains("SUB_GID_MIN 700000 is above SUB_GID_MAX 600000 in /etc/login.defs"),
            "{msg}"
        );
        assert!(!msg.contains("every gap"), "{msg}");
        let huge = SubIdBounds {
            count: ID_SPACE,
            ..B
        };
        let (which, err) = plain((&file(""), huge), (&file(""), B), "d", None).unwrap_err();
        assert_eq!(which, Which::SubUid);
        let msg = err.to_string();
        assert!(msg.contains("a range of 4294967296 ids cannot fit between SUB_UID_MIN 100000 and SUB_UID_MAX 600100000"), "{msg}");
        assert!(!msg.contains("every gap"), "{msg}");
    }

    fn arb_file() -> impl Strategy<Value = String> {
        prop::collection::vec((0u64..700_000_000, 1u64..200_000, prop::bool::ANY), 0..40).prop_map(
            |v| {
                v.into_iter()
                    .enumerate()
                    .map(|(i, (s, c, numeric))| {
                        if numeric {
                            format!("{}:{s}:{c}\n", 2000 + i)
                        } else {
                            format!("u{i}:{s}:{c}\n")
                        }
                    })
                    .collect()
            },
        )
    }

    /// The allocator as it was before packed spans: merged `(start, end)` intervals.
    fn reference_decide(
        subuid: (&SubIdFile, SubIdBounds),
        subgid: (&SubIdFile, SubIdBounds),
        name: &str,
        uid: Option<u32>,
    ) -> Result<(Decision, Decision), (Which, AllocError)> {
        let keep_u = existing(
            subuid.0,
            name,
            uid,
            subuid.1.count,
            Reserved::none(Which::SubUid),
        )
        .map_err(|e| (Which::SubUid, e))?;
        let keep_g = existing(
            subgid.0,
            name,
            uid,
            subgid.1.count,
            Reserved::none(Which::SubGid),
        )
        .map_err(|e| (Which::SubGid, e))?;
        let alone = |which: Which, (file, b): (&SubIdFile, SubIdBounds), prefer: Option<u64>| {
            let busy = busy(file);
            if let Some(p) = prefer.filter(|p| is_free(&busy, b, *p, b.count)) {
                return Ok(Decision::Add {
                    start: p,
                    count: b.count,
                });
            }
            first_fit(&busy, b, b.count)
                .map(|start| Decision::Add {
                    start,
                    count: b.count,
                })
                .ok_or((
                    which,
                    AllocError::NoRoom {
                        which,
                        count: b.count,
                        min: b.min,
                        max: b.max,
                    },
                ))
        };
        match (keep_u, keep_g) {
            (Some(u), Some(g)) => Ok((u, g)),
            (Some(u), None) => Ok((u.clone(), alone(Which::SubGid, subgid, Some(u.start()))?)),
            (None, Some(g)) => Ok((alone(Which::SubUid, subuid, Some(g.start()))?, g)),
            (None, None) => {
                let mut all = busy(subuid.0);
                all.extend(busy(subgid.0));
                let both = SubIdBounds {
                    min: subuid.1.min.max(subgid.1.min),
                    max: subuid.1.max.min(subgid.1.max),
                    count: subuid.1.count.max(subgid.1.count),
                };
                if let Some(start) = first_fit(&merge(all), both, both.count) {
                    return Ok((
                        Decision::Add {
                            start,
                            count: subuid.1.count,
                        },
                        Decision::Add {
                            start,
                            count: subgid.1.count,
                        },
                    ));
                }
                let u = alone(Which::SubUid, subuid, None)?;
                let g = alone(Which::SubGid, subgid, Some(u.start()))?;
                Ok((u, g))
            }
        }
    }

    #[test]
    fn large_shuffled_files_decide_like_the_reference() {
        // Ranges in shuffled order with gaps too small to use, some overlapping and empty ones,
        // names and numeric owners: the packed sort has real work to do.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut text = String::new();
        for i in 0..50_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let start = 100_000 + (x % 50_000) * 1_000;
            let count = [0, 995, 1_000, 2_500][(x >> 40) as usize % 4];
            if i % 2 == 0 {
                text.push_str(&format!("u{i}:{start}:{count}\n"));
            } else {
                text.push_str(&format!("{}:{start}:{count}\n", 5_000 + i));
            }
        }
        let f = file(&text);
        assert_eq!(f.entries.len(), 50_000);
        for count in [1, 5, 6, 65_536] {
            let b = SubIdBounds { count, ..B };
            assert_eq!(
                plain((&f, b), (&file(""), b), "dockremap", None),
                reference_decide((&f, b), (&file(""), b), "dockremap", None)
            );
            assert_eq!(
                plain((&f, b), (&f, b), "u4", Some(5_001)),
                reference_decide((&f, b), (&f, b), "u4", Some(5_001))
            );
        }
    }

    proptest! {
        #[test]
        fn allocations_never_overlap_and_stay_in_bounds(u in arb_file(), g in arb_file(), count in 1u64..300_000) {
            let (fu, fg) = (file(&u), file(&g));
            let b = SubIdBounds { count, ..B };
            if let Ok((du, dg)) = plain((&fu, b), (&fg, b), "dockremap", Some(999)) {
                for (d, f) in [(du, &fu), (dg, &fg)] {
                    let (s, c) = (d.start(), d.count());
                    prop_assert!(s >= B.min && s + c - 1 <= B.max);
                    for e in &f.entries {
                        prop_assert!(e.end() <= s || e.start >= s + c, "{e:?} overlaps {s}+{c}");
                    }
                }
            }
        }

        #[test]
        fn decide_matches_the_reference_allocator(u in arb_file(), g in arb_file(), count in 1u64..300_000, tight in prop::bool::ANY, uid in prop::option::of(2000u32..2010)) {
            let (fu, fg) = (file(&u), file(&g));
            let b = if tight {
                SubIdBounds { min: 100_000, max: 100_000 + 4 * count, count }
            } else {
                SubIdBounds { count, ..B }
            };
            prop_assert_eq!(
                plain((&fu, b), (&fg, b), "u3", uid),
                reference_decide((&fu, b), (&fg, b), "u3", uid)
            );
        }

        #[test]
        fn first_fit_is_the_lowest_free_start(iv in prop::collection::vec((0u64..2000, 1u64..300), 0..12), count in 1u64..400) {
            let busy = merge(iv.iter().map(|(s, c)| (*s, s + c)).collect());
            let b = SubIdBounds { min: 100, max: 2500, count };
            let got = first_fit(&busy, b, count);
            let brute = (b.min..=b.max).find(|s| is_free(&busy, b, *s, count));
            prop_assert_eq!(got, brute);
        }
    }

    fn how_both(text: &str, how: How) -> Result<(Decision, Decision), (Which, AllocError)> {
        let f = file(text);
        decide(&Request {
            subuid: Side::unreserved(Which::SubUid, &f, B),
            subgid: Side::unreserved(Which::SubGid, &f, B),
            name: "dockremap",
            uid: None,
            how,
        })
    }

    #[test]
    fn repair_moves_an_overlapping_range_to_a_disjoint_free_one() {
        // What dockerd 28 writes next to a regular user's range.
        let text = "alice:100000:65536\ndockremap:100000:65536\n";
        let (_, e) = how_both(text, How::default()).unwrap_err();
        assert!(matches!(e, AllocError::KeptOverlaps { .. }), "{e}");
        // The facts; run::range_refusal adds that `--repair` moves it.
        assert_eq!(
            e,
            AllocError::KeptOverlaps {
                owner: "dockremap".into(),
                line: 2,
                other: "alice".into(),
                other_line: 1
            }
        );
        let repair = How {
            repair: true,
            start: None,
        };
        let (u, g) = how_both(text, repair).unwrap();
        let want = Decision::Move {
            from: 100000,
            from_count: 65536,
            lines: vec![2],
            start: 165536,
            count: 65536,
        };
        assert_eq!((u.clone(), g), (want.clone(), want));
        assert!(u.writes() && u.moved_from() == Some((100000, 65536)));
        // A range that overlaps no one is kept, repair or not.
        let fine = "alice:100000:65536\ndockremap:165536:65536\n";
        assert!(matches!(
            how_both(fine, repair).unwrap().0,
            Decision::Keep { start: 165536, .. }
        ));
    }

    #[test]
    fn start_is_exact_or_refused_naming_the_owner() {
        let text = "alice:100000:65536\n";
        let at = |n| How {
            repair: false,
            start: Some(n),
        };
        assert_eq!(
            how_both(text, at(300000)).unwrap().0,
            Decision::Add {
                start: 300000,
                count: 65536
            }
        );
        let (_, e) = how_both(text, at(120000)).unwrap_err();
        assert!(
            e.to_string().contains("alice:100000:65536 on line 1"),
            "{e}"
        );
        let (_, e) = how_both(text, at(10)).unwrap_err();
        assert!(matches!(e, AllocError::StartOutside { .. }), "{e}");
        // The user's range elsewhere moves only with --repair, and never onto itself.
        let mine = "alice:100000:65536\ndockremap:165536:65536\n";
        let (_, e) = how_both(mine, at(300000)).unwrap_err();
        assert!(matches!(e, AllocError::StartMoves { .. }), "{e}");
        let moved = How {
            repair: true,
            start: Some(300000),
        };
        assert!(matches!(
            how_both(mine, moved).unwrap().0,
            Decision::Move {
                from: 165536,
                start: 300000,
                ..
            }
        ));
        let onto_itself = How {
            repair: true,
            start: Some(200000),
        };
        let (_, e) = how_both(mine, onto_itself).unwrap_err();
        assert!(e.to_string().contains("dockremap:165536:65536"), "{e}");
        // Already there: kept.
        assert!(matches!(
            how_both(mine, at(165536)).unwrap().0,
            Decision::Keep { .. }
        ));
    }
}
