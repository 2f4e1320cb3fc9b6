//! Fuzz the subuid/subgid parser, linter and allocator: never panic, never overlap.
#![no_main]

use docker_userns::formats::login_defs::SubIdBounds;
use docker_userns::formats::subid::{How, Request, Side, SubIdFile, Which, decide, lint};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (a, b) = data.split_at(data.len() / 2);
    let (u, g) = (SubIdFile::parse(a.to_vec()), SubIdFile::parse(b.to_vec()));
    let bounds = SubIdBounds { min: 100_000, max: 600_100_000, count: 65_536 };
    let _ = lint(&u, "/etc/subuid", bounds);
    // Appending never changes what was there.
    assert!(u.with_appended("x", 1, 1).starts_with(&u.raw));
    let req = Request {
        subuid: Side::unreserved(Which::SubUid, &u, bounds),
        subgid: Side::unreserved(Which::SubGid, &g, bounds),
        name: "dockremap",
        uid: Some(101),
        how: How::default(),
    };
    if let Ok((du, dg)) = decide(&req) {
        for (d, f) in [(du, &u), (dg, &g)] {
            if d.writes() {
                let (s, c) = (d.start(), d.count());
                assert!(s >= bounds.min && s + c - 1 <= bounds.max);
                assert!(f.entries.iter().all(|e| e.end() <= s || e.start >= s + c));
            }
        }
    }
});
