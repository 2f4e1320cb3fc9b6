//! The bytes of /etc/subuid and /etc/subgid: the parser that keeps every byte, the line types, and the writers.

/// The size of the 32-bit id space: no range may reach past it.
pub(super) const ID_SPACE: u64 = 1 << 32;

/// One parsed range line: `owner:start:count`. The owner (a login name or numeric uid) is not
/// copied out of the file: [`SubIdFile::owner`] gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number.
    pub(crate) line: usize,
    /// Byte offset of the line in [`SubIdFile::raw`]; the owner runs from there to the first `:`.
    offset: usize,
    /// First id of the range.
    pub start: u64,
    /// Number of ids.
    pub(crate) count: u64,
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
    pub(crate) line: usize,
    /// Why it cannot be used.
    pub(crate) reason: String,
}

/// A subordinate-id file as read: the raw bytes (written back untouched) and what they mean.
#[derive(Debug, Clone, Default)]
pub struct SubIdFile {
    /// The file exactly as read; new lines are only ever appended to it.
    pub raw: Vec<u8>,
    /// Every range line, in file order.
    pub entries: Vec<Entry>,
    /// Every line that could not be parsed (comments and blank lines are not listed).
    pub(crate) malformed: Vec<Malformed>,
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
    pub(crate) fn owner(&self, e: &Entry) -> &str {
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
    pub(crate) fn owned_by<'a>(
        &'a self,
        name: &'a str,
        uid: Option<u32>,
    ) -> impl Iterator<Item = &'a Entry> {
        let uid = uid.map(|u| u.to_string());
        self.entries.iter().filter(move |e| {
            self.owner_is(e, name) || uid.as_deref().is_some_and(|u| self.owner_is(e, u))
        })
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
    pub(crate) fn path(self) -> &'static str {
        match self {
            Which::SubUid => "/etc/subuid",
            Which::SubGid => "/etc/subgid",
        }
    }

    /// `SUB_UID` or `SUB_GID`: the login.defs key prefix of its bounds.
    pub(crate) fn sub_key(self) -> &'static str {
        match self {
            Which::SubUid => "SUB_UID",
            Which::SubGid => "SUB_GID",
        }
    }

    /// `UID_MAX` or `GID_MAX`: the top of the ordinary accounts' ids.
    pub(crate) fn user_max_key(self) -> &'static str {
        match self {
            Which::SubUid => "UID_MAX",
            Which::SubGid => "GID_MAX",
        }
    }

    /// `uid` or `gid`.
    pub(crate) fn id_word(self) -> &'static str {
        match self {
            Which::SubUid => "uid",
            Which::SubGid => "gid",
        }
    }

    /// Where the accounts' ids are: /etc/passwd or /etc/group.
    pub(crate) fn accounts_file(self) -> &'static str {
        match self {
            Which::SubUid => "/etc/passwd",
            Which::SubGid => "/etc/group",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    proptest! {
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
