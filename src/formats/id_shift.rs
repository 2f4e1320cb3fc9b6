//! Id ranges moved to other id ranges (uids and gids separately): the arithmetic of an owner
//! shift, pure. What [`crate::host::shift`] applies to a tree, and its crash log records.

use anyhow::{Result, anyhow, bail};
use serde::Serialize;

/// One kind of id (uids or gids): `from..from+count` moves to `to..to+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct IdShift {
    /// First id of the source range.
    pub from: u32,
    /// First id of the target range.
    pub to: u32,
    /// Number of ids in each range.
    pub count: u32,
}

/// Where an id stands relative to an [`IdShift`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// In the source range: becomes this id.
    Shift(u32),
    /// In the target range already.
    Done,
    /// In neither range: left as it is.
    Outside,
}

impl IdShift {
    /// From ids as /etc/subuid and /etc/subgid hold them (64-bit): refused above 4294967295.
    pub(crate) fn of(from: u64, to: u64, count: u64) -> Result<IdShift> {
        let id = |v: u64, what: &str| {
            u32::try_from(v).map_err(|_| anyhow!("{what} {v} is above 4294967295"))
        };
        Ok(IdShift {
            from: id(from, "the first id shifted")?,
            to: id(to, "the first id shifted to")?,
            count: id(count, "the number of ids shifted")?,
        })
    }

    /// Where `id` stands: in the source range (and what it becomes), the target range, or
    /// neither.
    pub(crate) fn class(&self, id: u32) -> Class {
        if id.wrapping_sub(self.from) < self.count {
            Class::Shift(self.to + (id - self.from))
        } else if id.wrapping_sub(self.to) < self.count {
            Class::Done
        } else {
            Class::Outside
        }
    }

    /// The new id when `id` is in the source range.
    pub(crate) fn map(&self, id: u32) -> Option<u32> {
        match self.class(id) {
            Class::Shift(new) => Some(new),
            _ => None,
        }
    }

    /// The shift back: target to source.
    pub(crate) fn reverse(self) -> IdShift {
        IdShift {
            from: self.to,
            to: self.from,
            count: self.count,
        }
    }

    /// Refuses an empty range, one running into 4294967295 (chown's "unchanged"), and
    /// overlapping source and target (a shift is only resumable between disjoint ranges).
    pub(crate) fn check(&self, kind: &str) -> Result<()> {
        let end = |start: u32| u64::from(start) + u64::from(self.count);
        if self.count == 0 {
            bail!("{kind} shift: the range is empty");
        }
        // The last id must stay below 4294967295, which chown reads as "leave unchanged".
        if end(self.from) > u64::from(u32::MAX) || end(self.to) > u64::from(u32::MAX) {
            bail!(
                "{kind} shift {}+{} -> {}: the range runs past 4294967294",
                self.from,
                self.count,
                self.to
            );
        }
        if u64::from(self.from) < end(self.to) && u64::from(self.to) < end(self.from) {
            bail!(
                "{kind} shift {}..{} -> {}..{}: the ranges overlap (a shift is only resumable between disjoint ranges)",
                self.from,
                end(self.from),
                self.to,
                end(self.to)
            );
        }
        Ok(())
    }
}

/// The shift of a tree: uid `u` in `uid.from..uid.from+uid.count` becomes `uid.to + (u -
/// uid.from)`; gids the same, separately. Source and target ranges are disjoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mapping {
    uid: IdShift,
    gid: IdShift,
    /// The source ids are the host's own (0..count, see [`Mapping::for_range`]).
    #[serde(skip)]
    from_host: bool,
    /// The target ids are the host's own: setid bits and file capabilities made in a
    /// container would be valid on the host (see [`Mapping::into_host`]).
    #[serde(skip)]
    to_host: bool,
}

impl Mapping {
    /// Checks the ranges: not empty, below 4294967295 (chown's "unchanged"), and source and
    /// target disjoint (an owner in the target range then means "already done", which is what
    /// makes a rerun resume).
    pub fn new(uid: IdShift, gid: IdShift) -> Result<Mapping> {
        uid.check("uid")?;
        gid.check("gid")?;
        // A target range holding uid or gid 0 is the host's own ids whoever asks.
        Ok(Mapping {
            uid,
            gid,
            from_host: uid.from == 0 || gid.from == 0,
            to_host: uid.to == 0 || gid.to == 0,
        })
    }

    /// Between the host's ids 0..count and a remap range START.. (uids `uid` = (START, count),
    /// gids the same): what a remapped container's id u is on the host, `into_range`, or back.
    pub fn for_range(uid: (u64, u64), gid: (u64, u64), into_range: bool) -> Result<Mapping> {
        let mut m = Mapping::new(IdShift::of(0, uid.0, uid.1)?, IdShift::of(0, gid.0, gid.1)?)?;
        m.from_host = true;
        Ok(if into_range { m } else { m.reverse() })
    }

    /// Whether the target ids are the host's own (`for_range(.., false)`, or a target range
    /// holding id 0). Such a walk never leaves a setuid/setgid bit on a non-directory whose
    /// owner or group it moved, nor writes a file capability for host ids: the walk's survey
    /// counts and names those inodes, its shift refuses them or (asked to) drops the bits and
    /// the capability (`crate::host::shift`).
    pub fn into_host(&self) -> bool {
        self.to_host
    }

    /// The uid shift.
    pub(crate) fn uid(&self) -> IdShift {
        self.uid
    }

    /// The gid shift.
    pub(crate) fn gid(&self) -> IdShift {
        self.gid
    }

    /// The shift back: target to source.
    pub fn reverse(&self) -> Mapping {
        Mapping {
            uid: self.uid.reverse(),
            gid: self.gid.reverse(),
            from_host: self.to_host,
            to_host: self.from_host,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// uids 100000.. -> 300000.., gids 100000.. -> 400000.., 65536 of each: the mapping the
    /// unit tests of the shift and its codecs use.
    pub(crate) fn map() -> Mapping {
        Mapping::new(
            IdShift {
                from: 100_000,
                to: 300_000,
                count: 65_536,
            },
            IdShift {
                from: 100_000,
                to: 400_000,
                count: 65_536,
            },
        )
        .unwrap()
    }

    #[test]
    fn mapping_refuses_overlap_empty_and_the_top_id() {
        let s = |from, to, count| IdShift { from, to, count };
        let ok = s(100_000, 200_000, 65_536);
        assert!(Mapping::new(ok, ok).is_ok());
        assert!(Mapping::new(s(100_000, 100_000 + 65_535, 65_536), ok).is_err());
        assert!(Mapping::new(ok, s(200_000, 100_000 + 1, 100_000)).is_err());
        assert!(Mapping::new(ok, s(1, 2, 0)).is_err());
        assert!(Mapping::new(s(0, u32::MAX - 10, 11), ok).is_err());
        assert!(Mapping::new(s(0, u32::MAX - 10, 10), ok).is_ok());
        // Adjacent ranges do not overlap.
        assert!(Mapping::new(s(0, 10, 10), s(10, 0, 10)).is_ok());
        let m = Mapping::new(ok, s(5, 500, 3)).unwrap();
        assert_eq!(m.reverse().reverse(), m);
        assert_eq!(m.reverse().gid(), s(500, 5, 3));
    }

    #[test]
    fn ids_are_classified_by_range() {
        let m = map();
        assert_eq!(m.uid().class(100_000), Class::Shift(300_000));
        assert_eq!(m.uid().class(165_535), Class::Shift(365_535));
        assert_eq!(m.uid().class(165_536), Class::Outside);
        assert_eq!(m.uid().class(99_999), Class::Outside);
        assert_eq!(m.uid().class(300_000), Class::Done);
        assert_eq!(m.uid().class(365_536), Class::Outside);
        assert_eq!(m.gid().class(100_001), Class::Shift(400_001));
        assert_eq!(m.reverse().uid().class(300_007), Class::Shift(100_007));
    }
}
