//! /etc/subuid and /etc/subgid: parsing that keeps every byte, the allocator, and the linter.

use crate::login_defs::SubIdBounds;

/// The size of the 32-bit id space: no range may reach past it.
pub const ID_SPACE: u64 = 1 << 32;

/// One parsed range line: `owner:start:count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number.
    pub line: usize,
    /// Login name or numeric uid.
    pub owner: String,
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

fn parse_line(bytes: &[u8], line: usize) -> Result<Entry, String> {
    let mut fields = bytes.split(|b| *b == b':');
    let (Some(owner), Some(start), Some(count), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err("expected owner:start:count".into());
    };
    if owner.is_empty() {
        return Err("the owner is empty".into());
    }
    let owner = std::str::from_utf8(owner)
        .map_err(|_| "the owner is not valid UTF-8".to_string())?
        .to_string();
    let start = parse_id(start, "start")?;
    let count = parse_id(count, "count")?;
    if start + count > ID_SPACE {
        return Err("start + count is beyond the 32-bit id space".into());
    }
    Ok(Entry {
        line,
        owner,
        start,
        count,
    })
}

impl SubIdFile {
    /// Parses a file's bytes. Never fails: bad lines are recorded in `malformed`.
    pub fn parse(raw: Vec<u8>) -> SubIdFile {
        let mut entries = Vec::new();
        let mut malformed = Vec::new();
        let body = raw.strip_suffix(b"\n").unwrap_or(&raw);
        if !raw.is_empty() {
            for (i, bytes) in body.split(|b| *b == b'\n').enumerate() {
                let line = i + 1;
                let trimmed = bytes.trim_ascii();
                if trimmed.is_empty() || trimmed.starts_with(b"#") {
                    continue;
                }
                match parse_line(bytes, line) {
                    Ok(e) => entries.push(e),
                    Err(reason) => malformed.push(Malformed { line, reason }),
                }
            }
        }
        SubIdFile {
            raw,
            entries,
            malformed,
        }
    }

    /// The ranges that belong to a user: lines whose owner is its name or its numeric uid.
    pub fn owned_by<'a>(
        &'a self,
        name: &'a str,
        uid: Option<u32>,
    ) -> impl Iterator<Item = &'a Entry> {
        let uid = uid.map(|u| u.to_string());
        self.entries
            .iter()
            .filter(move |e| e.owner == name || uid.as_deref() == Some(e.owner.as_str()))
    }

    /// Every id used by any owner, as sorted, merged half-open intervals.
    pub fn busy(&self) -> Vec<(u64, u64)> {
        merge(self.entries.iter().map(|e| (e.start, e.end())).collect())
    }

    /// The file with one range line appended, as shadow does it.
    pub fn with_appended(&self, owner: &str, start: u64, count: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw.len() + owner.len() + 24);
        out.extend_from_slice(&self.raw);
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.extend_from_slice(format!("{owner}:{start}:{count}\n").as_bytes());
        out
    }
}

/// Sorts and merges half-open intervals; empty ones are dropped, touching ones joined.
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
/// in `busy` (sorted, merged).
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
}

impl Decision {
    /// First id mapped to the container's root.
    pub fn start(&self) -> u64 {
        match self {
            Decision::Keep { start, .. } | Decision::Add { start, .. } => *start,
        }
    }

    /// Number of ids.
    pub fn count(&self) -> u64 {
        match self {
            Decision::Keep { count, .. } | Decision::Add { count, .. } => *count,
        }
    }

    /// True when the file has to be written.
    pub fn is_add(&self) -> bool {
        matches!(self, Decision::Add { .. })
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
    /// No gap of the requested size is left inside the bounds.
    #[error(
        "no free range of {count} ids between {min} and {max} (SUB_*_MIN/MAX in /etc/login.defs): every gap is taken by other owners; free a range or widen the bounds"
    )]
    NoRoom {
        /// Ids wanted.
        count: u64,
        /// Lower bound.
        min: u64,
        /// Upper bound.
        max: u64,
    },
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
) -> Result<Option<Decision>, AllocError> {
    let owned: Vec<&Entry> = file.owned_by(name, uid).filter(|e| e.count > 0).collect();
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
}

/// Decides the remap user's ranges in both files, `bounds.count` ids each. Existing ranges of
/// the user (by name or numeric uid) are kept; otherwise a range is chosen that overlaps no range
/// of any owner, lies within the bounds, and starts at the same id in both files where possible.
pub fn decide(
    subuid: (&SubIdFile, SubIdBounds),
    subgid: (&SubIdFile, SubIdBounds),
    name: &str,
    uid: Option<u32>,
) -> Result<(Decision, Decision), (Which, AllocError)> {
    let keep_u = existing(subuid.0, name, uid, subuid.1.count).map_err(|e| (Which::SubUid, e))?;
    let keep_g = existing(subgid.0, name, uid, subgid.1.count).map_err(|e| (Which::SubGid, e))?;
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
                    count: b.count,
                    min: b.min,
                    max: b.max,
                },
            ))
    };
    match (keep_u, keep_g) {
        (Some(u), Some(g)) => Ok((u, g)),
        (Some(u), None) => {
            let g = alone(Which::SubGid, subgid, Some(u.start()))?;
            Ok((u, g))
        }
        (None, Some(g)) => {
            let u = alone(Which::SubUid, subuid, Some(g.start()))?;
            Ok((u, g))
        }
        (None, None) => {
            // Same start in both files: a gap free in the union of both, inside both bounds,
            // large enough for the larger of the two counts.
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

/// One finding of `check`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The file, as a path inside the root.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// `malformed`, `overlap`, `out-of-bounds` or `empty`.
    pub kind: &'static str,
    /// What is wrong, in words.
    pub message: String,
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
                message: format!("{}:{}:0 is an empty range", e.owner, e.start),
            });
        } else if e.start < bounds.min || e.end() - 1 > bounds.max {
            out.push(Problem {
                file: path.to_string(),
                line: e.line,
                kind: "out-of-bounds",
                message: format!(
                    "{}:{}:{} lies outside {}..={} (login.defs)",
                    e.owner, e.start, e.count, bounds.min, bounds.max
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
                        b.owner, b.start, b.count, a.owner, a.start, a.count, a.line
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
        assert_eq!(f.entries[1].owner, "1001");
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
        fn first_fit_is_the_lowest_free_start(iv in prop::collection::vec((0u64..2000, 1u64..300), 0..12), count in 1u64..400) {
            let busy = merge(iv.iter().map(|(s, c)| (*s, s + c)).collect());
            let b = SubIdBounds { min: 100, max: 2500, count };
            let got = first_fit(&busy, b, count);
            let brute = (b.min..=b.max).find(|s| is_free(&busy, b, *s, count));
            prop_assert_eq!(got, brute);
        }
    }
}
