//! /etc/subuid and /etc/subgid: parsing that keeps every byte, the allocator, and the linter.

use crate::formats::accounts::{self, IdUse};
use crate::formats::login_defs::SubIdBounds;

/// The size of the 32-bit id space: no range may reach past it.
pub const ID_SPACE: u64 = 1 << 32;

/// One parsed range line: `owner:start:count`. The owner (a login name or numeric uid) is not
/// copied out of the file: [`SubIdFile::owner`] gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number.
    pub line: usize,
    /// Byte offset of the line in [`SubIdFile::raw`]; the owner runs from there to the first `:`.
    offset: usize,
    /// First id of the range.
    pub start: u64,
    /// Number of ids.
    pub count: u64,
}

impl Entry {
    /// One past the last id.
    pub fn end(&self) -> u64 {
        self.start + self.count
    }
}

/// A line that is neither a range, a comment nor blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// 1-based line number.
    pub line: usize,
    /// Why it cannot be used.
    pub reason: String,
}

/// A subordinate-id file as read: the raw bytes (written back untouched) and what they mean.
#[derive(Debug, Clone, Default)]
pub struct SubIdFile {
    /// The file exactly as read; new lines are only ever appended to it.
    pub raw: Vec<u8>,
    /// Every range line, in file order.
    pub entries: Vec<Entry>,
    /// Every line that could not be parsed (comments and blank lines are not listed).
    pub malformed: Vec<Malformed>,
}

fn parse_id(field: &[u8], what: &str) -> Result<u64, String> {
    if field.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if !field.iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "{what} {:?} is not a decimal number",
            String::from_utf8_lossy(field)
        ));
    }
    if field.len() > 1 && field[0] == b'0' {
        return Err(format!(
            "{what} {:?} has a leading zero (shadow reads it as octal, docker as decimal)",
            String::from_utf8_lossy(field)
        ));
    }
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|v| *v < ID_SPACE)
        .ok_or_else(|| format!("{what} is beyond the 32-bit id space"))
}

/// Checks one range line the slow way, with the reason when it is not a range.
/// Returns `(start, count)`.
fn parse_line(bytes: &[u8]) -> Result<(u64, u64), String> {
    let mut fields = bytes.split(|b| *b == b':');
    let (Some(owner), Some(start), Some(count), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err("expected owner:start:count".into());
    };
    if owner.is_empty() {
        return Err("the owner is empty".into());
    }
    if std::str::from_utf8(owner).is_err() {
        return Err("the owner is not valid UTF-8".into());
    }
    let start = parse_id(start, "start")?;
    let count = parse_id(count, "count")?;
    if start + count > ID_SPACE {
        return Err("start + count is beyond the 32-bit id space".into());
    }
    Ok((start, count))
}

/// A decimal id of 1 to 10 digits without a leading zero and below 2^32, read from `bytes[*i..]`
/// up to the first non-digit; `*i` is left on that byte. None for anything else (the slow path
/// then says why).
#[inline(always)]
fn fast_id(bytes: &[u8], i: &mut usize) -> Option<u64> {
    let from = *i;
    let mut v: u64 = 0;
    while let Some(&b) = bytes.get(*i) {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        v = v.wrapping_mul(10).wrapping_add(u64::from(d)); // more than 10 digits: rejected below
        *i += 1;
    }
    let n = *i - from;
    (n > 0 && n <= 10 && (n == 1 || bytes[from] != b'0') && v < ID_SPACE).then_some(v)
}

/// The common case in one pass: an ASCII owner that does not start with blank or `#`, then two
/// plain decimal ids. Returns `(start, count)`; None sends the line to [`parse_line`], which
/// accepts exactly the same lines with the same values (and more, e.g. UTF-8 owners).
#[inline(always)]
fn fast_line(bytes: &[u8]) -> Option<(u64, u64)> {
    let first = *bytes.first()?;
    if first == b'#' || first.is_ascii_whitespace() {
        return None;
    }
    let olen = bytes.iter().position(|&b| b == b':' || b >= 0x80)?;
    if olen == 0 || bytes[olen] != b':' {
        return None;
    }
    let mut i = olen + 1;
    let start = fast_id(bytes, &mut i)?;
    if bytes.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    let count = fast_id(bytes, &mut i)?;
    (i == bytes.len() && start + count <= ID_SPACE).then_some((start, count))
}

impl SubIdFile {
    /// Parses a file's bytes. Never fails: bad lines are recorded in `malformed`.
    pub fn parse(raw: Vec<u8>) -> SubIdFile {
        let mut malformed = Vec::new();
        let body = raw.strip_suffix(b"\n").unwrap_or(&raw);
        // One entry per line at most: no regrowth (and no over-allocation) on large files.
        let lines = if raw.is_empty() {
            0
        } else {
            body.iter().filter(|b| **b == b'\n').count() + 1
        };
        let mut entries = Vec::with_capacity(lines);
        let mut offset = 0;
        for line in 1..=lines {
            let len = body[offset..]
                .iter()
                .position(|b| *b == b'\n')
                .unwrap_or(body.len() - offset);
            let bytes = &body[offset..offset + len];
            if let Some((start, count)) = fast_line(bytes) {
                entries.push(Entry {
                    line,
                    offset,
                    start,
                    count,
                });
            } else {
                let trimmed = bytes.trim_ascii();
                if !(trimmed.is_empty() || trimmed.starts_with(b"#")) {
                    match parse_line(bytes) {
                        Ok((start, count)) => entries.push(Entry {
                            line,
                            offset,
                            start,
                            count,
                        }),
                        Err(reason) => malformed.push(Malformed { line, reason }),
                    }
                }
            }
            offset += len + 1;
        }
        SubIdFile {
            raw,
            entries,
            malformed,
        }
    }

    /// The owner of one of this file's entries: a login name or a numeric uid.
    pub fn owner(&self, e: &Entry) -> &str {
        let rest = &self.raw[e.offset..];
        let len = rest.iter().position(|b| *b == b':').unwrap_or(rest.len());
        // Checked to be UTF-8 when the line was parsed.
        std::str::from_utf8(&rest[..len]).unwrap_or_default()
    }

    /// True when `e`'s owner is exactly `owner`.
    fn owner_is(&self, e: &Entry, owner: &str) -> bool {
        let o = owner.as_bytes();
        self.raw.get(e.offset..e.offset + o.len()) == Some(o)
            && self.raw.get(e.offset + o.len()) == Some(&b':')
    }

    /// The ranges that belong to a user: lines whose owner is its name or its numeric uid.
    pub fn owned_by<'a>(
        &'a self,
        name: &'a str,
        uid: Option<u32>,
    ) -> impl Iterator<Item = &'a Entry> {
        let uid = uid.map(|u| u.to_string());
        self.entries.iter().filter(move |e| {
            self.owner_is(e, name) || uid.as_deref().is_some_and(|u| self.owner_is(e, u))
        })
    }

    /// Every id used by any owner, as sorted, merged half-open intervals (the reference
    /// allocator the tests compare the packed-span one against).
    #[cfg(test)]
    pub fn busy(&self) -> Vec<(u64, u64)> {
        merge(self.entries.iter().map(|e| (e.start, e.end())).collect())
    }

    /// The file with one range line appended, as shadow does it.
    pub fn with_appended(&self, owner: &str, start: u64, count: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw.len() + owner.len() + 24);
        out.extend_from_slice(&self.raw);
        append_line(&mut out, owner, start, count);
        out
    }
}

/// Appends one range line to a file's bytes in place, as [`SubIdFile::with_appended`] does
/// (a missing final newline is added first). `bytes.truncate(old length)` undoes it.
pub fn append_line(bytes: &mut Vec<u8>, owner: &str, start: u64, count: u64) {
    if !bytes.is_empty() && !bytes.ends_with(b"\n") {
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(format!("{owner}:{start}:{count}\n").as_bytes());
}

/// A file's bytes with line `line` (1-based) replaced by `owner:start:count` and the other
/// `drop` lines removed, every other byte as it was (the replaced line keeps its line end).
pub fn with_moved(
    raw: &[u8],
    line: usize,
    drop: &[usize],
    owner: &str,
    start: u64,
    count: u64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 32);
    for (i, l) in raw.split_inclusive(|b| *b == b'\n').enumerate() {
        let n = i + 1;
        if n == line {
            out.extend_from_slice(format!("{owner}:{start}:{count}").as_bytes());
            if l.ends_with(b"\n") {
                out.push(b'\n');
            }
        } else if !drop.contains(&n) {
            out.extend_from_slice(l);
        }
    }
    out
}

/// Sorts and merges half-open intervals; empty ones are dropped, touching ones joined.
/// Test reference only.
#[cfg(test)]
pub fn merge(mut iv: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
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
#[cfg(test)]
pub fn first_fit(busy: &[(u64, u64)], bounds: SubIdBounds, count: u64) -> Option<u64> {
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
#[cfg(test)]
pub fn is_free(busy: &[(u64, u64)], bounds: SubIdBounds, start: u64, count: u64) -> bool {
    if count == 0 || start < bounds.min || start + count - 1 > bounds.max {
        return false;
    }
    let i = busy.partition_point(|(_, e)| *e <= start);
    busy.get(i).is_none_or(|(s, _)| *s >= start + count)
}

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
    pub fn moved_from(&self) -> Option<(u64, u64)> {
        match self {
            Decision::Move {
                from, from_count, ..
            } => Some((*from, *from_count)),
            _ => None,
        }
    }
}

/// Ids no range in one file may contain: the ordinary accounts' space (at or below
/// `UID_MAX` / `GID_MAX`) and every id an account uses.
#[derive(Debug, Clone, Copy)]
pub struct Reserved<'a> {
    /// Which file this is for (names the keys and files in messages).
    pub which: Which,
    /// `UID_MAX` (`GID_MAX`) from login.defs; None: no such limit.
    pub user_max: Option<u64>,
    /// The ids accounts use, sorted by id.
    pub accounts: &'a [IdUse],
}

impl Reserved<'_> {
    /// Nothing reserved (every id in the bounds may be allocated).
    pub fn none(which: Which) -> Reserved<'static> {
        Reserved {
            which,
            user_max: None,
            accounts: &[],
        }
    }

    /// Why `start..end` must not be a subordinate range, in words; None when it may be.
    pub fn covered(&self, start: u64, end: u64) -> Option<String> {
        let w = self.which;
        if let Some(a) = accounts::first_in(self.accounts, start, end) {
            return Some(format!(
                "covers {} {} ({}, {}): containers would get that account's files and processes",
                w.id_word(),
                a.id,
                a.who,
                w.accounts_file()
            ));
        }
        match self.user_max {
            Some(max) if start <= max => Some(format!(
                "lies at or below {} {max} (/etc/login.defs), where ordinary accounts get their {}s",
                w.user_max_key(),
                w.id_word()
            )),
            _ => None,
        }
    }
}

/// Why no range could be decided for a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The user owns some ids, but fewer than requested.
    #[error("{owner} already owns only {owned} ids (line {lines}), fewer than the {wanted} needed; remove or enlarge that range, or pass --count {owned}", lines = join_lines(.lines))]
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
        "{owner}'s existing range on line {line} overlaps {other}'s range on line {other_line}: containers would share those ids with {other}; `--repair` moves it to a free range (with docker stopped, the remapped data root is renamed and the owners of its files shifted; docker restarts), or fix the file yourself (`docker-userns check` lists every overlap)"
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
        "{owner}:{start}:0 gives {owner} no ids, so no container could start (dockerd would map nothing); remove that line and run again"
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
    #[error(
        "{owner}'s existing range {owner}:{start}:{count} {why}; `--repair` moves it to a free range above the accounts' ids (with docker stopped, the remapped data root is renamed and the owners of its files shifted; docker restarts), or remove that line and run again"
    )]
    KeptCovers {
        /// The remap user.
        owner: String,
        /// The line.
        line: usize,
        /// Its start.
        start: u64,
        /// Its size.
        count: u64,
        /// What it covers, in words.
        why: String,
    },
    /// `--start N`: N..N+count is not free.
    #[error("--start {start}: {start}..{end} is not free: it overlaps {other}:{other_start}:{other_count} on line {line}; choose another start", end = .start + .count - 1)]
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
    /// `--start N` outside the bounds or on an account's id.
    #[error("--start {start}: a range of {count} ids there {why}")]
    StartOutside {
        /// The requested start.
        start: u64,
        /// Ids wanted.
        count: u64,
        /// Why, in words.
        why: String,
    },
    /// `--start N` while the user owns a range elsewhere, without `--repair`.
    #[error("--start {start}: {owner} already owns {from}..{from_end} (line {lines}); moving it needs --repair as well (with docker stopped, the remapped data root is renamed and the owners of its files shifted; docker restarts)", from_end = .from + .from_count - 1, lines = join_lines(.lines))]
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
        "{key}_MIN {min} is above {key}_MAX {max} in /etc/login.defs (the bounds are inverted): no range can be allocated; fix the two values", key = .which.sub_key()
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
        "a range of {count} ids cannot fit between {key}_MIN {min} and {key}_MAX {max} (/etc/login.defs), which hold {space} ids in all; ask for fewer (--count, {key}_COUNT) or widen the bounds", key = .which.sub_key(), space = .max - .min + 1
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
        "{key}_MIN {min} in /etc/login.defs is at or below {max_key} {user_max}: a range there would cover ordinary accounts' {word}s{example}; set {key}_MIN above {max_key} (Debian: 100000) and run again",
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
        "no free range of {count} ids between {min} and {max} ({key}_MIN/MAX in /etc/login.defs): every gap is taken by other owners' ranges or accounts' ids; free a range or widen the bounds", key = .which.sub_key()
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

impl AllocError {
    /// The line of the file the error is about, when it is one line.
    pub fn line(&self) -> Option<usize> {
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
        if let Some(theirs) = file.entries.iter().find(|e| {
            e.count > 0
                && e.start < mine.end()
                && mine.start < e.end()
                && !owned.iter().any(|o| o.line == e.line)
        }) {
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

/// Which file an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// /etc/subuid
    SubUid,
    /// /etc/subgid
    SubGid,
}

impl Which {
    /// The file's path inside the root.
    pub fn path(self) -> &'static str {
        match self {
            Which::SubUid => "/etc/subuid",
            Which::SubGid => "/etc/subgid",
        }
    }

    /// `SUB_UID` or `SUB_GID`: the login.defs key prefix of its bounds.
    pub fn sub_key(self) -> &'static str {
        match self {
            Which::SubUid => "SUB_UID",
            Which::SubGid => "SUB_GID",
        }
    }

    /// `UID_MAX` or `GID_MAX`: the top of the ordinary accounts' ids.
    pub fn user_max_key(self) -> &'static str {
        match self {
            Which::SubUid => "UID_MAX",
            Which::SubGid => "GID_MAX",
        }
    }

    /// `uid` or `gid`.
    pub fn id_word(self) -> &'static str {
        match self {
            Which::SubUid => "uid",
            Which::SubGid => "gid",
        }
    }

    /// Where the accounts' ids are: /etc/passwd or /etc/group.
    pub fn accounts_file(self) -> &'static str {
        match self {
            Which::SubUid => "/etc/passwd",
            Which::SubGid => "/etc/group",
        }
    }
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

/// [`first_fit`] over packed spans sorted by start (overlapping, not merged).
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

/// [`is_free`] over packed spans.
fn is_free_spans(spans: &[u64], bounds: SubIdBounds, start: u64, count: u64) -> bool {
    if count == 0 || start < bounds.min || start + count - 1 > bounds.max {
        return false;
    }
    let below = spans.partition_point(|k| k >> 32 < start + count);
    spans[..below].iter().all(|k| unpack(*k).1 <= start)
}

/// Decides the remap user's ranges in both files, `bounds.count` ids each, with nothing
/// reserved beyond other owners' ranges (see [`decide_reserving`]).
pub fn decide(
    subuid: (&SubIdFile, SubIdBounds),
    subgid: (&SubIdFile, SubIdBounds),
    name: &str,
    uid: Option<u32>,
) -> Result<(Decision, Decision), (Which, AllocError)> {
    decide_reserving(
        subuid,
        subgid,
        name,
        uid,
        (Reserved::none(Which::SubUid), Reserved::none(Which::SubGid)),
    )
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

/// How the remap user's ranges may be chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct How {
    /// An existing range that overlaps another owner's or covers an account's id is moved to a
    /// free one (and with `start`, a range elsewhere is moved there) instead of refused.
    pub repair: bool,
    /// The range must start at this id in both files (`--start N`).
    pub start: Option<u64>,
}

/// Decides the remap user's ranges in both files, `bounds.count` ids each. Existing ranges of
/// the user (by name or numeric uid) are kept unless one is empty, overlaps another owner's or
/// covers a reserved id; otherwise a range is chosen that overlaps no range of any owner and no
/// account's id, lies within the bounds (which must lie above the accounts' space), and starts at
/// the same id in both files where possible.
pub fn decide_reserving(
    subuid: (&SubIdFile, SubIdBounds),
    subgid: (&SubIdFile, SubIdBounds),
    name: &str,
    uid: Option<u32>,
    reserved: (Reserved, Reserved),
) -> Result<(Decision, Decision), (Which, AllocError)> {
    decide_how(subuid, subgid, name, uid, reserved, How::default())
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

/// [`decide_reserving`], with `how` allowing moves (`--repair`) and a fixed start (`--start`).
/// A moved range keeps its size and lands on ids disjoint from where it was (the shift of the
/// data root's owners depends on that).
pub fn decide_how(
    subuid: (&SubIdFile, SubIdBounds),
    subgid: (&SubIdFile, SubIdBounds),
    name: &str,
    uid: Option<u32>,
    reserved: (Reserved, Reserved),
    how: How,
) -> Result<(Decision, Decision), (Which, AllocError)> {
    let (ru, rg) = reserved;
    let need = |(file, b): (&SubIdFile, SubIdBounds), r: Reserved| -> Result<Need, AllocError> {
        let movable = |e: AllocError| -> Result<Need, AllocError> {
            let owned: Vec<&Entry> = file.owned_by(name, uid).collect();
            match owned.as_slice() {
                [one] => Ok(Need::Move(one.start, one.count, one.line)),
                _ => Err(e),
            }
        };
        match existing(file, name, uid, b.count, r) {
            Ok(None) => Ok(Need::New(b.count)),
            Ok(Some(Decision::Keep {
                start,
                count,
                lines,
            })) => match how.start {
                Some(n) if n != start => {
                    let elsewhere = AllocError::StartMoves {
                        start: n,
                        owner: name.to_string(),
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
    };
    let nu = need(subuid, ru).map_err(|e| (Which::SubUid, e))?;
    let ng = need(subgid, rg).map_err(|e| (Which::SubGid, e))?;
    let alone =
        |(file, b): (&SubIdFile, SubIdBounds), r: Reserved, n: &Need, prefer: Option<u64>| {
            let count = n.count().unwrap_or(b.count);
            let b = SubIdBounds { count, ..b };
            check_bounds(b, r)?;
            let busy = spans(&[file], &[r.accounts]);
            if let Some(p) = how.start {
                return if is_free_spans(&busy, b, p, count) {
                    Ok(n.at(p))
                } else {
                    Err((r.which, start_refusal(file, b, r, p, count)))
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
        };
    match (&nu, &ng) {
        (Need::Keep(u), Need::Keep(g)) => Ok((u.clone(), g.clone())),
        (Need::Keep(u), _) => {
            let g = alone(subgid, rg, &ng, Some(u.start()))?;
            Ok((u.clone(), g))
        }
        (_, Need::Keep(g)) => {
            let u = alone(subuid, ru, &nu, Some(g.start()))?;
            Ok((u, g.clone()))
        }
        _ if how.start.is_some() => {
            let u = alone(subuid, ru, &nu, None)?;
            let g = alone(subgid, rg, &ng, None)?;
            Ok((u, g))
        }
        _ => {
            let (cu, cg) = (nu.count().unwrap_or(0), ng.count().unwrap_or(0));
            let bu = SubIdBounds {
                count: cu,
                ..subuid.1
            };
            let bg = SubIdBounds {
                count: cg,
                ..subgid.1
            };
            check_bounds(bu, ru)?;
            check_bounds(bg, rg)?;
            // Same start in both files: a gap free in the union of both, inside both bounds,
            // large enough for the larger of the two counts.
            let all = spans(&[subuid.0, subgid.0], &[ru.accounts, rg.accounts]);
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
            let u = alone(subuid, ru, &nu, None)?;
            let g = alone(subgid, rg, &ng, Some(u.start()))?;
            Ok((u, g))
        }
    }
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
    let why = r.covered(start, end).unwrap_or_else(|| {
        format!(
            "lies outside {key}_MIN..{key}_MAX {}..{} (/etc/login.defs)",
            b.min,
            b.max,
            key = r.which.sub_key()
        )
    });
    AllocError::StartOutside { start, count, why }
}

/// One finding of `check`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The file, as a path inside the root.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// `malformed`, `overlap`, `out-of-bounds`, `empty` or `covers-account`.
    pub kind: &'static str,
    /// What is wrong, in words.
    pub message: String,
}

/// The ranges of any owner in one file that cover an account's id or lie at or below
/// `UID_MAX` / `GID_MAX` (kind `covers-account`).
pub fn covers_accounts(file: &SubIdFile, path: &str, reserved: Reserved) -> Vec<Problem> {
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
pub fn user_problems(
    file: &SubIdFile,
    path: &str,
    name: &str,
    uid: Option<u32>,
    reserved: Reserved,
) -> Vec<Problem> {
    let mine: Vec<&Entry> = file.owned_by(name, uid).filter(|e| e.count > 0).collect();
    let mut out = Vec::new();
    for m in &mine {
        for e in file.entries.iter().filter(|e| {
            e.count > 0
                && e.start < m.end()
                && m.start < e.end()
                && !mine.iter().any(|o| o.line == e.line)
        }) {
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
    use proptest::prelude::*;

    const B: SubIdBounds = SubIdBounds {
        min: 100_000,
        max: 600_100_000,
        count: 65_536,
    };

    fn file(text: &str) -> SubIdFile {
        SubIdFile::parse(text.as_bytes().to_vec())
    }

    #[test]
    fn parses_ranges_comments_and_bad_lines() {
        let f = file(
            "# comment\n\nalice:100000:65536\n1001:165536:65536\nbob:x:1\nbad line\ncarol:0100:5\n",
        );
        assert_eq!(f.entries.len(), 2);
        assert_eq!(f.owner(&f.entries[1]), "1001");
        assert_eq!(f.entries[1].line, 4);
        let lines: Vec<usize> = f.malformed.iter().map(|m| m.line).collect();
        assert_eq!(lines, vec![5, 6, 7]);
        assert!(f.malformed[2].reason.contains("leading zero"));
    }

    #[test]
    fn rejects_ranges_past_the_id_space_and_extra_fields() {
        let f = file("a:4294967295:2\nb:1:2:3\nc:4294967296:1\n:1:1\nd:1:1\r\n");
        assert!(f.entries.is_empty());
        assert_eq!(f.malformed.len(), 5);
    }

    #[test]
    fn long_digit_runs_are_malformed_not_an_overflow() {
        // Found by the parser property test: 20 digits overflowed the fast path's accumulator.
        let f = file("a:42949672954294967295\nb:1:42949672954294967295\nc:00000000001:1\n");
        assert!(f.entries.is_empty());
        assert_eq!(f.malformed.len(), 3);
    }

    #[test]
    fn appends_keep_every_byte_and_add_a_missing_newline() {
        let f = file("# keep me  \n\tweird line\nalice:100000:65536");
        let out = f.with_appended("dockremap", 165536, 65536);
        assert_eq!(
            out,
            b"# keep me  \n\tweird line\nalice:100000:65536\ndockremap:165536:65536\n".to_vec()
        );
        assert_eq!(file("").with_appended("d", 1, 2), b"d:1:2\n".to_vec());
    }

    fn decide1(
        u: &str,
        g: &str,
        uid: Option<u32>,
    ) -> Result<(Decision, Decision), (Which, AllocError)> {
        decide((&file(u), B), (&file(g), B), "dockremap", uid)
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
        let err = decide((&u, tight), (&file(""), tight), "dockremap", None).unwrap_err();
        assert_eq!(err.0, Which::SubUid);
        assert!(err.1.to_string().contains("no free range"));
        // Exactly fits at the top.
        let top = SubIdBounds {
            min: 100000,
            max: 165535,
            count: 65536,
        };
        let (u, _) = decide((&file(""), top), (&file(""), top), "d", None).unwrap();
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
        decide_reserving((&file(u), b), (&file(u), b), "dockremap", Some(999), r)
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
        assert!(err.to_string().contains("remove that line"), "{err}");
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
        let (which, err) = decide((&file(""), B), (&file(""), inverted), "d", None).unwrap_err();
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
        let (which, err) = decide((&file(""), huge), (&file(""), B), "d", None).unwrap_err();
        assert_eq!(which, Which::SubUid);
        let msg = err.to_string();
        assert!(msg.contains("a range of 4294967296 ids cannot fit between SUB_UID_MIN 100000 and SUB_UID_MAX 600100000"), "{msg}");
        assert!(!msg.contains("every gap"), "{msg}");
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

    /// The parser as it was before the one-pass fast path: every line split and checked.
    /// (line, owner, start, count) of every range, (line, reason) of every malformed line.
    type Parsed = (Vec<(usize, String, u64, u64)>, Vec<(usize, String)>);

    fn reference_parse(raw: &[u8]) -> Parsed {
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        let body = raw.strip_suffix(b"\n").unwrap_or(raw);
        if raw.is_empty() {
            return (ok, bad);
        }
        for (i, bytes) in body.split(|b| *b == b'\n').enumerate() {
            let trimmed = bytes.trim_ascii();
            if trimmed.is_empty() || trimmed.starts_with(b"#") {
                continue;
            }
            match parse_line(bytes) {
                Ok((s, c)) => {
                    let owner = bytes.split(|b| *b == b':').next().unwrap();
                    ok.push((i + 1, String::from_utf8(owner.to_vec()).unwrap(), s, c));
                }
                Err(r) => bad.push((i + 1, r)),
            }
        }
        (ok, bad)
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
            let busy = file.busy();
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
                let mut all = subuid.0.busy();
                all.extend(subgid.0.busy());
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

    /// Lines made of the bytes that matter to the parser, valid ones and every kind of bad one.
    fn arb_raw() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"a".to_vec()),
            Just(b"1".to_vec()),
            Just(b"0".to_vec()),
            Just(b"9".to_vec()),
            Just(b":".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"#".to_vec()),
            Just(b" ".to_vec()),
            Just(b"\t".to_vec()),
            Just(b"\r".to_vec()),
            Just("\u{e9}".as_bytes().to_vec()),
            Just(vec![0xff]),
            Just(b"4294967295".to_vec()),
            Just(b"4294967296".to_vec()),
            Just(b"99999999999".to_vec()),
            Just(b"u1:100000:65536\n".to_vec()),
            Just(b"2001:0:4294967296\n".to_vec()),
        ];
        prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
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
                decide((&f, b), (&file(""), b), "dockremap", None),
                reference_decide((&f, b), (&file(""), b), "dockremap", None)
            );
            assert_eq!(
                decide((&f, b), (&f, b), "u4", Some(5_001)),
                reference_decide((&f, b), (&f, b), "u4", Some(5_001))
            );
        }
    }

    proptest! {
        #[test]
        fn allocations_never_overlap_and_stay_in_bounds(u in arb_file(), g in arb_file(), count in 1u64..300_000) {
            let (fu, fg) = (file(&u), file(&g));
            let b = SubIdBounds { count, ..B };
            if let Ok((du, dg)) = decide((&fu, b), (&fg, b), "dockremap", Some(999)) {
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
        fn parse_matches_the_reference_parser(raw in arb_raw()) {
            let f = SubIdFile::parse(raw.clone());
            let (ok, bad) = reference_parse(&raw);
            let got: Vec<(usize, String, u64, u64)> = f
                .entries
                .iter()
                .map(|e| (e.line, f.owner(e).to_string(), e.start, e.count))
                .collect();
            prop_assert_eq!(got, ok);
            let got_bad: Vec<(usize, String)> =
                f.malformed.iter().map(|m| (m.line, m.reason.clone())).collect();
            prop_assert_eq!(got_bad, bad);
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
                decide((&fu, b), (&fg, b), "u3", uid),
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
        decide_how(
            (&f, B),
            (&f, B),
            "dockremap",
            None,
            (Reserved::none(Which::SubUid), Reserved::none(Which::SubGid)),
            how,
        )
    }

    #[test]
    fn repair_moves_an_overlapping_range_to_a_disjoint_free_one() {
        // What dockerd 28 writes next to a regular user's range.
        let text = "alice:100000:65536\ndockremap:100000:65536\n";
        let (_, e) = how_both(text, How::default()).unwrap_err();
        assert!(matches!(e, AllocError::KeptOverlaps { .. }), "{e}");
        assert!(e.to_string().contains("--repair"), "{e}");
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
        assert!(
            matches!(e, AllocError::StartMoves { .. }) && e.to_string().contains("--repair"),
            "{e}"
        );
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

    #[test]
    fn a_moved_line_replaces_the_users_line_and_keeps_every_other_byte() {
        let raw = b"# c\nalice:100000:65536\ndockremap:100000:65536\n bad\nbob:1:2";
        assert_eq!(
            with_moved(raw, 3, &[], "dockremap", 165536, 65536),
            b"# c\nalice:100000:65536\ndockremap:165536:65536\n bad\nbob:1:2".to_vec()
        );
        assert_eq!(
            with_moved(
                b"dockremap:1:1\nx:5:5\ndockremap:2:2",
                1,
                &[3],
                "dockremap",
                9,
                3
            ),
            b"dockremap:9:3\nx:5:5\n".to_vec()
        );
    }
}
