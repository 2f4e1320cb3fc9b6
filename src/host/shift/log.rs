//! The shift's crash log: the setid modes and capabilities a chown is about to clear, synced
//! before it, replayed by the run that resumes an interrupted walk.

use std::ffi::{CString, OsStr};
use std::fs;
use std::io::{Read, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use rustix::fs::{self as rfs, Mode, OFlags};
use rustix::io::Errno;

use crate::formats::id_shift::Mapping;
use crate::host::root::OpenDir;

/// What an earlier, interrupted walk left in a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftLog {
    /// No log (or one cut short before its first entry): nothing to finish.
    None,
    /// A log of this same mapping: the walk resumes it.
    Same,
    /// A log of the reverse mapping: that walk must be finished first.
    Reverse,
    /// A log of another mapping, or not a shift log: its first line.
    Other(String),
}

/// Reads what the log at `log` was written for, relative to `map`.
pub fn left_log(log: &Path, map: &Mapping) -> Result<LeftLog> {
    let text = match fs::read(log) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LeftLog::None),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read the shift log {}", log.display()));
        }
    };
    let Some(nl) = text.iter().position(|&b| b == b'\n') else {
        return Ok(LeftLog::None);
    };
    let first = &text[..=nl];
    Ok(if first == Log::header(map).as_bytes() {
        LeftLog::Same
    } else if first == Log::header(&map.reverse()).as_bytes() {
        LeftLog::Reverse
    } else {
        LeftLog::Other(String::from_utf8_lossy(&text[..nl]).into_owned())
    })
}

/// Where a walk keeps its crash log.
#[derive(Clone, Copy)]
pub enum LogAt<'a> {
    /// A path (its directory opened by name).
    Path(&'a Path),
    /// The name `.1` in the directory `.0` (opened beneath a root).
    In(&'a OpenDir, &'a str),
}

/// The crash log: a header naming the mapping, then one line per inode whose setid bits or
/// capability a chown is about to clear: `MODE CAPS_HEX PATH` (octal mode, `-` for no
/// capability, the path relative to the top with bytes outside `!`..`~` and `%` written `%XX`).
/// Every access is relative to its directory's fd (opened once), never following a symlink.
pub(super) struct Log {
    /// For messages.
    pub(super) path: PathBuf,
    dir: OwnedFd,
    name: CString,
    pub(super) header: String,
    pub(super) file: Option<fs::File>,
    /// Entries of an earlier, interrupted walk.
    pub(super) replay: Vec<LogEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LogEntry {
    pub(super) mode: u32,
    pub(super) caps: Option<Vec<u8>>,
    pub(super) path: Vec<u8>,
}

impl Log {
    pub(super) fn header(map: &Mapping) -> String {
        let (u, g) = (map.uid(), map.gid());
        format!(
            "docker-userns shift log 1 uid {} {} {} gid {} {} {}\n",
            u.from, u.to, u.count, g.from, g.to, g.count
        )
    }

    /// The directory of the log at `at` (opened), what it is shown as, and the log's name.
    pub(super) fn place(at: LogAt<'_>) -> Result<(OwnedFd, PathBuf, CString)> {
        let bad = |p: &Path| anyhow!("cannot use {} as the shift log", p.display());
        let (dir, shown, name) = match at {
            LogAt::Path(path) => {
                let name = path.file_name().ok_or_else(|| bad(path))?;
                let parent = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let shown = fs::canonicalize(parent)
                    .with_context(|| format!("cannot use {} as the shift log", path.display()))?;
                let fd = rfs::open(
                    &shown,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .with_context(|| format!("cannot open {}", shown.display()))?;
                (fd, shown, name.as_bytes().to_vec())
            }
            LogAt::In(dir, name) => {
                let fd = rfs::openat(
                    dir.fd(),
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .with_context(|| format!("cannot open {}", dir.shown().display()))?;
                (fd, dir.shown().to_path_buf(), name.as_bytes().to_vec())
            }
        };
        if name.contains(&b'/') || name == b"." || name == b".." {
            return Err(bad(&shown.join(OsStr::from_bytes(&name))));
        }
        let name = CString::new(name).map_err(|_| bad(&shown))?;
        Ok((dir, shown, name))
    }

    /// Reads what an interrupted walk left (refusing a log of another mapping); keeps the file
    /// to append to.
    pub(super) fn open(dir: OwnedFd, shown: &Path, name: CString, map: &Mapping) -> Result<Log> {
        let header = Log::header(map);
        let path = shown.join(OsStr::from_bytes(name.as_bytes()));
        let mut log = Log {
            path,
            dir,
            name,
            header,
            file: None,
            replay: Vec::new(),
        };
        let mut text = Vec::new();
        match log.openat(OFlags::RDONLY) {
            Ok(mut f) => {
                f.read_to_end(&mut text)
                    .with_context(|| format!("cannot read the shift log {}", log.path.display()))?;
            }
            Err(Errno::NOENT) => return Ok(log),
            Err(e) => {
                return Err(std::io::Error::from(e))
                    .with_context(|| format!("cannot read the shift log {}", log.path.display()));
            }
        }
        // A header cut short: nothing was chowned relying on this log (the header is synced
        // before the first entry); start it again.
        if let Some(entries) = parse_log(&text, &log.header).with_context(|| {
            format!(
                "the shift log {} cannot be used (it is what an interrupted shift left: finish that shift, or if the log is damaged move it away and check the setuid/setgid bits and capabilities it lists by hand)",
                log.path.display()
            )
        })?
        {
            log.replay = entries;
            let file = log
                .openat(OFlags::WRONLY | OFlags::APPEND)
                .map_err(std::io::Error::from)
                .with_context(|| format!("cannot open the shift log {}", log.path.display()))?;
            log.file = Some(file);
        }
        Ok(log)
    }

    /// Opens the log in its directory, never following a symlink there.
    fn openat(&self, flags: OFlags) -> rustix::io::Result<fs::File> {
        rfs::openat(
            &self.dir,
            self.name.as_c_str(),
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map(fs::File::from)
    }

    /// Appends entries (whole lines) and syncs them; creates the file (header first, synced,
    /// directory synced) on the first call.
    pub(super) fn append(&mut self, lines: &str) -> Result<()> {
        let path = &self.path;
        let ctx = || format!("cannot write the shift log {}", path.display());
        if self.file.is_none() {
            let mut f = self
                .openat(OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC)
                .map_err(std::io::Error::from)
                .with_context(ctx)?;
            f.write_all(self.header.as_bytes()).with_context(ctx)?;
            f.sync_all().with_context(ctx)?;
            rfs::fsync(&self.dir)
                .map_err(std::io::Error::from)
                .with_context(ctx)?;
            self.file = Some(f);
        }
        let f = self.file.as_mut().expect("opened above");
        f.write_all(lines.as_bytes()).with_context(ctx)?;
        rfs::fdatasync(&*f).with_context(ctx)?;
        Ok(())
    }

    /// The walk is complete: the log goes.
    pub(super) fn finish(self) -> Result<()> {
        drop(self.file);
        let ctx = || format!("cannot remove the shift log {}", self.path.display());
        match rfs::unlinkat(&self.dir, self.name.as_c_str(), rfs::AtFlags::empty()) {
            Ok(()) => rfs::fsync(&self.dir)
                .map_err(std::io::Error::from)
                .with_context(ctx),
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(std::io::Error::from(e)).with_context(ctx),
        }
    }
}

pub(super) fn log_line(mode: u32, caps: Option<&[u8]>, rel: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut line = format!("{mode:o} ");
    match caps {
        Some(c) if !c.is_empty() => c.iter().for_each(|b| {
            let _ = write!(line, "{b:02x}");
        }),
        _ => line.push('-'),
    }
    line.push(' ');
    if rel.is_empty() {
        line.push('.');
    }
    for &b in rel {
        if b.is_ascii_graphic() && b != b'%' {
            line.push(char::from(b));
        } else {
            let _ = write!(line, "%{b:02X}");
        }
    }
    line.push('\n');
    line
}

/// The entries of a log, `None` when its header was cut short. A last line without its newline
/// was cut short by a crash before its sync, so before its chown: it is dropped.
pub(super) fn parse_log(text: &[u8], header: &str) -> Result<Option<Vec<LogEntry>>> {
    let Some(nl) = text.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    if &text[..=nl] != header.as_bytes() {
        bail!(
            "it was written for another shift ({:?}, this one is {:?}); finish that shift first",
            String::from_utf8_lossy(&text[..nl]),
            header.trim_end()
        );
    }
    let mut entries = Vec::new();
    let mut rest = &text[nl + 1..];
    while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..nl];
        rest = &rest[nl + 1..];
        entries.push(
            parse_line(line)
                .ok_or_else(|| anyhow!("bad line {:?}", String::from_utf8_lossy(line)))?,
        );
    }
    Ok(Some(entries))
}

pub(super) fn parse_line(line: &[u8]) -> Option<LogEntry> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let (mode, caps, path) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let mode = u32::from_str_radix(mode, 8).ok().filter(|m| *m <= 0o7777)?;
    let hex = |s: &str| u8::from_str_radix(s, 16).ok();
    let caps = match caps {
        "-" => None,
        c if c.len() % 2 == 0 && c.is_ascii() => Some(
            (0..c.len())
                .step_by(2)
                .map(|i| hex(&c[i..i + 2]))
                .collect::<Option<Vec<u8>>>()?,
        ),
        _ => return None,
    };
    let mut bytes = Vec::new();
    if path != "." {
        let mut p = path.as_bytes();
        while let Some((&b, rest)) = p.split_first() {
            if b == b'%' {
                let h = std::str::from_utf8(rest.get(..2)?).ok()?;
                bytes.push(hex(h)?);
                p = &rest[2..];
            } else {
                bytes.push(b);
                p = rest;
            }
        }
    }
    Some(LogEntry {
        mode,
        caps,
        path: bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::id_shift::tests::map;

    #[test]
    fn log_lines_round_trip_any_path() {
        let header = Log::header(&map());
        let entries = [
            LogEntry {
                mode: 0o4755,
                caps: None,
                path: b"usr/bin/passwd".to_vec(),
            },
            LogEntry {
                mode: 0o755,
                caps: Some(vec![1, 2, 0xab]),
                path: b"odd name/with\nnewline %and\xff bytes".to_vec(),
            },
            LogEntry {
                mode: 0o2755,
                caps: None,
                path: Vec::new(),
            },
        ];
        let mut text = header.clone().into_bytes();
        for e in &entries {
            text.extend_from_slice(log_line(e.mode, e.caps.as_deref(), &e.path).as_bytes());
        }
        assert_eq!(parse_log(&text, &header).unwrap().unwrap(), entries);
        // A torn last line is dropped; a torn header is no log.
        text.extend_from_slice(b"4755 - usr/bin/s");
        assert_eq!(parse_log(&text, &header).unwrap().unwrap(), entries);
        assert_eq!(parse_log(&header.as_bytes()[..10], &header).unwrap(), None);
        // Another mapping's log, or a damaged line, is refused.
        let other = Log::header(&map().reverse());
        assert!(parse_log(&text, &other).is_err());
        let mut bad = header.clone().into_bytes();
        bad.extend_from_slice(b"99 - x\n");
        assert!(parse_log(&bad, &header).is_err());
    }
}
