//! The set of multiply-linked inodes a walk has handled, in about two bytes per inode, so the
//! walk's memory stays nearly flat however many hard links a tree holds.
//!
//! Inode numbers are grouped by their upper bits into chunks of 65,536 numbers (a filesystem
//! hands them out densely: ext4 and btrfs count up, XFS clusters them by allocation group). A
//! chunk is a sorted list of the low 16 bits while it holds at most [`SORTED_MAX`] of them (2
//! bytes each), then a bitmap of 8 KiB (the same size as a full list, never larger). A
//! `HashSet<u64>` took 16–18 bytes per inode with its spare slots: 0.6 MB for the 38,000
//! hard-linked inodes of the bench's tree of 10^6 (BENCHMARKS "S1"), this about 80 KB.

use std::collections::BTreeMap;

/// Most low halves a chunk keeps as a sorted list; past it, a bitmap of the same size.
const SORTED_MAX: usize = 4096;
/// Words of a chunk's bitmap: 65,536 bits.
const WORDS: usize = 65536 / 64;

/// The low 16 bits of the inode numbers of one chunk.
#[derive(Debug)]
enum Chunk {
    Sorted(Vec<u16>),
    Bits(Box<[u64; WORDS]>),
}

/// A set of inode numbers (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct InodeSet {
    chunks: BTreeMap<u64, Chunk>,
}

impl InodeSet {
    /// Adds `ino`; true when it was not there yet (the caller handles that inode).
    pub(crate) fn insert(&mut self, ino: u64) -> bool {
        let low = (ino & 0xffff) as u16;
        let chunk = self
            .chunks
            .entry(ino >> 16)
            .or_insert_with(|| Chunk::Sorted(Vec::new()));
        match chunk {
            Chunk::Sorted(v) => match v.binary_search(&low) {
                Ok(_) => false,
                Err(at) => {
                    if v.len() == SORTED_MAX {
                        let mut bits = Box::new([0u64; WORDS]);
                        for &l in v.iter().chain([&low]) {
                            bits[usize::from(l) / 64] |= 1 << (l % 64);
                        }
                        *chunk = Chunk::Bits(bits);
                    } else {
                        if v.len() == v.capacity() {
                            // An eighth to spare, not the doubling of `push`.
                            v.reserve_exact((v.len() / 8).max(8));
                        }
                        v.insert(at, low);
                    }
                    true
                }
            },
            Chunk::Bits(bits) => {
                let (word, bit) = (usize::from(low) / 64, 1u64 << (low % 64));
                let added = bits[word] & bit == 0;
                bits[word] |= bit;
                added
            }
        }
    }

    /// How many inode numbers are in the set.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.chunks
            .values()
            .map(|c| match c {
                Chunk::Sorted(v) => v.len(),
                Chunk::Bits(b) => b.iter().map(|w| w.count_ones() as usize).sum(),
            })
            .sum()
    }

    /// Bytes held by the chunks' contents (not the map's nodes): what the module doc counts.
    #[cfg(test)]
    fn content_bytes(&self) -> usize {
        self.chunks
            .values()
            .map(|c| match c {
                Chunk::Sorted(v) => v.capacity() * 2,
                Chunk::Bits(_) => WORDS * 8,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// A small xorshift: the same numbers on every run.
    fn numbers(seed: u64, n: usize, spread: u64) -> Vec<u64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % spread
            })
            .collect()
    }

    #[test]
    fn answers_as_a_hash_set_does() {
        // Dense (chunks turn into bitmaps), sparse (many small chunks), and 64-bit numbers.
        for (seed, n, spread) in [
            (1, 200_000, 150_000),
            (2, 50_000, 1 << 40),
            (3, 20_000, u64::MAX),
        ] {
            let (mut set, mut reference) = (InodeSet::default(), HashSet::new());
            for ino in numbers(seed, n, spread) {
                assert_eq!(set.insert(ino), reference.insert(ino), "{ino}");
            }
            assert_eq!(set.len(), reference.len());
            for ino in numbers(seed, n, spread) {
                assert!(!set.insert(ino));
            }
            assert_eq!(set.len(), reference.len());
        }
    }

    #[test]
    fn the_edges_of_a_chunk_and_of_the_list() {
        let mut set = InodeSet::default();
        for ino in [0, 0xffff, 0x1_0000, u64::MAX, u64::MAX - 0xffff] {
            assert!(set.insert(ino));
            assert!(!set.insert(ino));
        }
        // One chunk filled past SORTED_MAX: the list becomes a bitmap and keeps every number.
        let base = 7 << 16;
        for i in 0..(SORTED_MAX as u64 + 10) {
            assert!(set.insert(base + i * 13 % 65536));
        }
        for i in 0..(SORTED_MAX as u64 + 10) {
            assert!(!set.insert(base + i * 13 % 65536), "{i}");
        }
        assert_eq!(set.len(), 5 + SORTED_MAX + 10);
        assert!(matches!(set.chunks[&7], Chunk::Bits(_)));
    }

    #[test]
    fn holds_about_two_bytes_a_number() {
        // The bench's shape at 10^6: 38,000 hard-linked inodes among about 1.1 million numbers.
        let mut set = InodeSet::default();
        for ino in numbers(9, 38_000, 1_100_000) {
            set.insert(ino);
        }
        let per = set.content_bytes() as f64 / set.len() as f64;
        assert!(per < 2.5, "{per} bytes a number");
    }
}
