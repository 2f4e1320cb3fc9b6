//! The owner-shift walk (`host::shift`) on real trees, as root: files, directories, symlinks,
//! hard links, setid bits, file capabilities (v2 and v3), POSIX ACLs, ids outside the range,
//! reruns, the reverse shift, an interrupted walk resumed, and mounts below the top.
//!
//! The trees live under target/ (ext4 on the CI machines; tmpfs would do too: both keep
//! `security.capability` and POSIX ACL xattrs). xattrs are written raw, so no setcap/setfacl.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::ops::ControlFlow;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use docker_userns::host::root::Root;
use docker_userns::host::shift::{self, IdShift, Mapping, OpenDir, PROGRESS_EVERY, Report};
use rustix::fs::{self as rfs, XattrFlags};

const CAPS: &str = "security.capability";
const ACL_ACCESS: &str = "system.posix_acl_access";
const ACL_DEFAULT: &str = "system.posix_acl_default";

fn map() -> Mapping {
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

fn tempdir() -> tempfile::TempDir {
    assert!(
        rustix::process::geteuid().is_root(),
        "the shift tests run as root (they chown and mount)"
    );
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/shift-tests");
    fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    rfs::lsetxattr(p, name, value, XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setting {name} on {}: {e}", p.display()));
}

fn get_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    match rfs::lgetxattr(p, name, &mut buf) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(rustix::io::Errno::NODATA) => None,
        Err(e) => panic!("reading {name} of {}: {e}", p.display()),
    }
}

fn caps_v2() -> Vec<u8> {
    let mut v = 0x0200_0001u32.to_le_bytes().to_vec();
    v.extend_from_slice(&(1u32 << 10).to_le_bytes()); // CAP_NET_BIND_SERVICE
    v.extend_from_slice(&[0; 12]);
    v
}

fn caps_v3(rootid: u32) -> Vec<u8> {
    let mut v = 0x0300_0001u32.to_le_bytes().to_vec();
    v.extend_from_slice(&(1u32 << 13).to_le_bytes()); // CAP_NET_RAW
    v.extend_from_slice(&[0; 12]);
    v.extend_from_slice(&rootid.to_le_bytes());
    v
}

/// A POSIX ACL xattr: version 2, then (tag, perm, id) entries.
fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for &(tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}
const NONE: u32 = u32::MAX;
fn acl_with(user: u32, group: u32) -> Vec<u8> {
    acl(&[
        (0x01, 7, NONE),
        (0x02, 6, user),
        (0x04, 5, NONE),
        (0x08, 4, group),
        (0x10, 7, NONE),
        (0x20, 4, NONE),
    ])
}

fn own(p: &Path, uid: u32, gid: u32) {
    lchown(p, Some(uid), Some(gid)).unwrap();
}

/// Every special case, under `top` (created). `outside` is a file out of the tree that a
/// symlink in it points to.
fn build(top: &Path, outside: &Path) {
    fs::create_dir(top).unwrap();
    own(top, 100_000, 100_000);
    let d = top.join("dir");
    fs::create_dir(&d).unwrap();
    own(&d, 100_001, 100_002);
    fs::write(d.join("file"), b"data").unwrap();
    own(&d.join("file"), 100_003, 100_004);
    // Ids outside the range: left and counted.
    fs::write(top.join("root-owned"), b"").unwrap();
    own(&top.join("root-owned"), 0, 0);
    fs::write(top.join("half"), b"").unwrap();
    own(&top.join("half"), 100_005, 1000);
    // Symlinks: their own owner, never their target.
    symlink("dir/file", top.join("link-in")).unwrap();
    own(&top.join("link-in"), 100_006, 100_007);
    symlink(outside, top.join("link-out")).unwrap();
    own(&top.join("link-out"), 100_008, 100_009);
    symlink("/nonexistent/target", top.join("link-dangling")).unwrap();
    own(&top.join("link-dangling"), 100_010, 100_011);
    // Hard links: one inode, shifted once.
    fs::write(top.join("hard1"), b"h").unwrap();
    own(&top.join("hard1"), 100_012, 100_013);
    fs::hard_link(top.join("hard1"), d.join("hard2")).unwrap();
    // setuid + setgid, kept.
    let s = top.join("setid");
    fs::write(&s, b"#!/bin/sh\n").unwrap();
    own(&s, 100_014, 100_015);
    fs::set_permissions(&s, fs::Permissions::from_mode(0o6755)).unwrap();
    // setgid directory.
    let sd = top.join("setgid-dir");
    fs::create_dir(&sd).unwrap();
    own(&sd, 100_016, 100_017);
    fs::set_permissions(&sd, fs::Permissions::from_mode(0o2775)).unwrap();
    // Capabilities, v2 and v3 (root id in the range), and one setuid with a capability.
    for (name, caps, mode) in [
        ("cap-v2", caps_v2(), 0o755),
        ("cap-v3", caps_v3(100_000), 0o755),
        ("cap-setuid", caps_v3(100_000), 0o4750),
    ] {
        let p = top.join(name);
        fs::write(&p, b"\x7fELF").unwrap();
        own(&p, 100_018, 100_019);
        set_xattr(&p, CAPS, &caps);
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
    // POSIX ACLs: access on a file, access and default on a directory; named entries in the
    // range, out of it (1000) and already shifted.
    let af = top.join("acl-file");
    fs::write(&af, b"").unwrap();
    own(&af, 100_020, 100_021);
    set_xattr(&af, ACL_ACCESS, &acl_with(100_022, 100_023));
    let ad = top.join("acl-dir");
    fs::create_dir(&ad).unwrap();
    own(&ad, 100_024, 100_025);
    set_xattr(&ad, ACL_ACCESS, &acl_with(1000, 100_026));
    set_xattr(&ad, ACL_DEFAULT, &acl_with(100_027, 300_000));
    // Other xattrs and a fifo.
    set_xattr(&d.join("file"), "user.note", b"kept");
    let fifo = CString::new(top.join("fifo").as_os_str().as_bytes()).unwrap();
    rfs::mknodat(
        rfs::CWD,
        fifo.as_c_str(),
        rfs::FileType::Fifo,
        rfs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    own(&top.join("fifo"), 100_028, 100_029);
}

/// Inodes in `build`'s tree: top, dir, file, root-owned, half, 3 links, hard1 (= hard2),
/// setid, setgid-dir, 3 cap files, acl-file, acl-dir, fifo.
const BUILT: u64 = 17;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    uid: u32,
    gid: u32,
    mode: u32,
    ino_group: u64,
    xattrs: BTreeMap<String, Vec<u8>>,
    link: Option<PathBuf>,
}

/// Path (relative) -> owner, mode, xattrs, link target, and which names share an inode.
fn snapshot(top: &Path) -> BTreeMap<PathBuf, Entry> {
    fn walk(top: &Path, p: &Path, out: &mut BTreeMap<PathBuf, Entry>, inos: &mut Vec<u64>) {
        let m = fs::symlink_metadata(p).unwrap();
        let mut xattrs = BTreeMap::new();
        let mut list = vec![0u8; 65536];
        let n = rfs::llistxattr(p, &mut list).unwrap();
        for name in list[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
            let name = String::from_utf8(name.to_vec()).unwrap();
            let v = get_xattr(p, &name).unwrap();
            xattrs.insert(name, v);
        }
        let group = match inos.iter().position(|&i| i == m.ino()) {
            Some(i) => i as u64,
            None => {
                inos.push(m.ino());
                inos.len() as u64 - 1
            }
        };
        out.insert(
            p.strip_prefix(top).unwrap().to_path_buf(),
            Entry {
                uid: m.uid(),
                gid: m.gid(),
                mode: m.mode(),
                ino_group: group,
                xattrs,
                link: m.is_symlink().then(|| fs::read_link(p).unwrap()),
            },
        );
        if m.is_dir() {
            let mut names: Vec<_> = fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            names.sort();
            for n in names {
                walk(top, &n, out, inos);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(top, top, &mut out, &mut Vec::new());
    out
}

fn run(top: &Path, m: &Mapping, log: &Path) -> Report {
    shift::shift_tree(&dir(top), m, log, &mut |_| ControlFlow::Continue(())).unwrap()
}

#[test]
fn a_tree_is_shifted_exactly_and_back() {
    let t = tempdir();
    let outside = t.path().join("outside-target");
    fs::write(&outside, b"not mine").unwrap();
    own(&outside, 100_050, 100_050);
    let top = t.path().join("tree");
    build(&top, &outside);
    let log = t.path().join("shift.log");
    let before = snapshot(&top);
    assert_eq!(shift::count(&dir(&top)).unwrap(), BUILT);
    assert_eq!(snapshot(&top), before, "count changes nothing");

    let r = run(&top, &map(), &log);
    assert_eq!(r.inodes, BUILT, "{r:?}");
    assert_eq!(
        (r.shifted, r.already_done, r.outside),
        (BUILT - 1, 0, 1),
        "{r:?}"
    );
    assert_eq!(r.outside_ids, 3, "root-owned: 2, half: its gid 1000");
    assert_eq!(r.setid_restored, 2, "setid and cap-setuid: {r:?}");
    assert_eq!(r.caps_restored, 3, "{r:?}");
    assert_eq!(r.caps_rootids_shifted, 2, "{r:?}");
    assert_eq!(r.acl_entries_shifted, 4, "acl-file 2, acl-dir 1 + 1: {r:?}");
    assert!(r.other_filesystems.is_empty());
    assert!(!log.exists(), "the log goes when the walk completes");

    let after = snapshot(&top);
    let e = |p: &str| after.get(Path::new(p)).unwrap_or_else(|| panic!("{p}"));
    let ids = |p: &str| (e(p).uid, e(p).gid);
    assert_eq!(ids(""), (300_000, 400_000));
    assert_eq!(ids("dir"), (300_001, 400_002));
    assert_eq!(ids("dir/file"), (300_003, 400_004));
    assert_eq!(e("dir/file").xattrs["user.note"], b"kept");
    assert_eq!(ids("root-owned"), (0, 0));
    assert_eq!(ids("half"), (300_005, 1000));
    assert_eq!(ids("link-in"), (300_006, 400_007));
    assert_eq!(ids("link-out"), (300_008, 400_009));
    assert_eq!(ids("link-dangling"), (300_010, 400_011));
    assert_eq!(e("link-out").link.as_deref(), Some(outside.as_path()));
    let o = fs::metadata(&outside).unwrap();
    assert_eq!(
        (o.uid(), o.gid()),
        (100_050, 100_050),
        "a link's target is not touched"
    );
    assert_eq!(ids("hard1"), (300_012, 400_013));
    assert_eq!(e("hard1").ino_group, e("dir/hard2").ino_group);
    assert_eq!(ids("setid"), (300_014, 400_015));
    assert_eq!(e("setid").mode & 0o7777, 0o6755);
    assert_eq!(e("setgid-dir").mode & 0o7777, 0o2775);
    assert_eq!(e("cap-v2").xattrs[CAPS], caps_v2());
    assert_eq!(e("cap-v3").xattrs[CAPS], caps_v3(300_000));
    assert_eq!(e("cap-setuid").xattrs[CAPS], caps_v3(300_000));
    assert_eq!(e("cap-setuid").mode & 0o7777, 0o4750);
    assert_eq!(e("acl-file").xattrs[ACL_ACCESS], acl_with(300_022, 400_023));
    assert_eq!(e("acl-dir").xattrs[ACL_ACCESS], acl_with(1000, 400_026));
    assert_eq!(e("acl-dir").xattrs[ACL_DEFAULT], acl_with(300_027, 300_000));
    assert_eq!(ids("fifo"), (300_028, 400_029));
    // Nothing else changed: same names, modes, links, other xattrs.
    for (p, b) in &before {
        let a = &after[p];
        assert_eq!(
            (a.mode, a.ino_group, &a.link),
            (b.mode, b.ino_group, &b.link),
            "{p:?}"
        );
        let others = |x: &BTreeMap<String, Vec<u8>>| {
            x.iter()
                .filter(|(k, _)| ![CAPS, ACL_ACCESS, ACL_DEFAULT].contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(others(&a.xattrs), others(&b.xattrs), "{p:?}");
    }

    // A rerun is a no-op.
    let again = run(&top, &map(), &log);
    assert_eq!(
        (
            again.inodes,
            again.shifted,
            again.already_done,
            again.outside
        ),
        (BUILT, 0, BUILT - 1, 1),
        "{again:?}"
    );
    assert_eq!(
        (
            again.acl_entries_shifted,
            again.caps_restored,
            again.setid_restored
        ),
        (0, 0, 0)
    );
    assert_eq!(snapshot(&top), after);

    // The reverse shift gives back exactly the original tree.
    let back = run(&top, &map().reverse(), &log);
    assert_eq!(back.shifted, BUILT - 1, "{back:?}");
    assert_eq!(snapshot(&top), before);
}

/// A tree of `n` files spread over directories, some setuid and with capabilities.
fn big(top: &Path, n: u32) {
    fs::create_dir(top).unwrap();
    own(top, 100_000, 100_000);
    for d in 0..n / 100 {
        let dir = top.join(format!("d{d}"));
        fs::create_dir(&dir).unwrap();
        own(&dir, 100_000 + d, 100_000 + d);
        for f in 0..100 {
            let p = dir.join(format!("f{f}"));
            fs::write(&p, b"").unwrap();
            own(&p, 100_000 + f, 100_000 + d);
            if f % 37 == 0 {
                fs::set_permissions(&p, fs::Permissions::from_mode(0o4755)).unwrap();
            }
            if f % 41 == 0 {
                set_xattr(&p, CAPS, &caps_v3(100_000 + d));
            }
        }
    }
}

#[test]
fn an_interrupted_walk_resumed_ends_like_an_uninterrupted_one() {
    let t = tempdir();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    big(&a, 9_000);
    big(&b, 9_000);
    let log = t.path().join("shift.log");
    let whole = run(&a, &map(), &log);
    assert_eq!(whole.shifted, whole.inodes);

    // Stopped at the first progress call, then again at the second, then finished.
    for stop_at in [PROGRESS_EVERY, 2 * PROGRESS_EVERY] {
        let err = shift::shift_tree(&dir(&b), &map(), &log, &mut |n| {
            if n >= stop_at {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap_err();
        assert!(
            err.downcast_ref::<shift::Interrupted>().is_some(),
            "{err:#}"
        );
    }
    let mut calls = Vec::new();
    let rest = shift::shift_tree(&dir(&b), &map(), &log, &mut |n| {
        calls.push(n);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(rest.inodes, whole.inodes);
    assert!(rest.already_done >= PROGRESS_EVERY, "{rest:?}");
    assert_eq!(rest.already_done + rest.shifted, rest.inodes, "{rest:?}");
    assert_eq!(
        calls.last(),
        Some(&whole.inodes),
        "a last progress call at the end"
    );
    assert!(calls.len() as u64 >= whole.inodes / PROGRESS_EVERY);
    assert!(!log.exists());
    assert_eq!(snapshot(&a), snapshot(&b));
}

/// Every special case of `build`, many times over in a wide and deep tree (hard links across
/// directories, setuid/setgid files, capabilities, ACLs), plus a chain 300 deep.
fn many(top: &Path, outside: &Path) {
    fs::create_dir(top).unwrap();
    own(top, 100_000, 100_000);
    for i in 0..24 {
        build(&top.join(format!("b{i}")), outside);
    }
    // Hard links whose names are in directories different workers take.
    for i in 0..23 {
        fs::hard_link(
            top.join(format!("b{i}/hard1")),
            top.join(format!("b{}/cross{i}", i + 1)),
        )
        .unwrap();
    }
    big(&top.join("big"), 3_000);
    chain(&top.join("chain"), 300);
}

/// The parallel walk leaves exactly what the serial one leaves, and reports the same counts,
/// whatever the number of workers; survey and count agree too.
#[test]
fn a_parallel_walk_leaves_exactly_what_the_serial_one_leaves() {
    let t = tempdir();
    let outside = t.path().join("outside-target");
    fs::write(&outside, b"not mine").unwrap();
    own(&outside, 100_050, 100_050);
    let (serial, par) = (t.path().join("serial"), t.path().join("par"));
    many(&serial, &outside);
    many(&par, &outside);
    assert_eq!(snapshot(&serial), snapshot(&par));
    let log = t.path().join("shift.log");
    let opts = |jobs| shift::Options {
        jobs,
        drop_privileged: false,
    };
    let go = &mut |_| ControlFlow::Continue(());
    let s1 = shift::survey_with(&dir(&serial), &map(), 1).unwrap();
    let mut s4 = shift::survey_with(&dir(&par), &map(), 4).unwrap();
    let rel = |p: &Option<PathBuf>, top: &Path| {
        p.as_ref()
            .map(|p| p.strip_prefix(top).unwrap().to_path_buf())
    };
    assert_eq!(
        rel(&s1.first_outside, &serial),
        rel(&s4.first_outside, &par)
    );
    assert_eq!(rel(&s1.first_done, &serial), rel(&s4.first_done, &par));
    s4.first_outside.clone_from(&s1.first_outside);
    s4.first_done.clone_from(&s1.first_done);
    assert_eq!(s1, s4);
    let r1 = shift::shift_tree_with(&dir(&serial), &map(), shift::LogAt::Path(&log), opts(1), go)
        .unwrap();
    for jobs in [2, 4, 7] {
        let m = if jobs == 4 { map().reverse() } else { map() };
        let r = shift::shift_tree_with(&dir(&par), &m, shift::LogAt::Path(&log), opts(jobs), go)
            .unwrap();
        if jobs == 4 {
            assert_eq!(r.shifted, r1.shifted, "{r:?}");
        } else {
            let fix = |mut r: Report| {
                r.first_outside = rel(&r.first_outside, &par);
                r.first_done = rel(&r.first_done, &par);
                r
            };
            let mut want = r1.clone();
            want.first_outside = rel(&r1.first_outside, &serial);
            want.first_done = rel(&r1.first_done, &serial);
            assert_eq!(fix(r), want, "{jobs} jobs");
        }
    }
    assert!(r1.setid_restored > 0 && r1.caps_restored > 0 && r1.acl_entries_shifted > 0);
    assert_eq!(r1.inodes, s1.inodes);
    assert_eq!(snapshot(&serial), snapshot(&par));
    assert_eq!(shift::count(&dir(&par)).unwrap(), r1.inodes);
    rm_rf(&serial);
    rm_rf(&par);
}

struct Mounted(PathBuf);
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount(args: &[&str], at: &Path) -> Mounted {
    let st = Command::new("mount").args(args).arg(at).status().unwrap();
    assert!(st.success(), "mount {args:?} {}", at.display());
    Mounted(at.to_path_buf())
}

#[test]
fn mounts_below_the_top_are_reported_and_not_entered() {
    let t = tempdir();
    let top = t.path().join("tree");
    fs::create_dir(&top).unwrap();
    own(&top, 100_000, 100_000);
    let tmp = top.join("tmpfs");
    let bind = top.join("bind");
    let plain = top.join("plain");
    for d in [&tmp, &bind, &plain] {
        fs::create_dir(d).unwrap();
        own(d, 100_001, 100_001);
    }
    let _m1 = mount(&["-t", "tmpfs", "-o", "size=1m", "tmpfs"], &tmp);
    own(&tmp, 100_002, 100_002);
    fs::write(tmp.join("inside"), b"").unwrap();
    own(&tmp.join("inside"), 100_003, 100_003);
    // A bind mount of a directory of the same filesystem: same st_dev, another mount.
    let src = t.path().join("bind-source");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("inside"), b"").unwrap();
    own(&src.join("inside"), 100_004, 100_004);
    let _m2 = mount(&["--bind", src.to_str().unwrap()], &bind);

    let log = t.path().join("shift.log");
    assert_eq!(shift::count(&dir(&top)).unwrap(), 2, "the top and plain");
    let r = run(&top, &map(), &log);
    assert_eq!((r.inodes, r.shifted), (2, 2), "{r:?}");
    let mut other = r.other_filesystems.clone();
    other.sort();
    let canon = fs::canonicalize(&top).unwrap();
    assert_eq!(other, vec![canon.join("bind"), canon.join("tmpfs")]);
    let ids = |p: &Path| {
        let m = fs::symlink_metadata(p).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(
        ids(&tmp),
        (100_002, 100_002),
        "the tmpfs root is not touched"
    );
    assert_eq!(ids(&tmp.join("inside")), (100_003, 100_003));
    assert_eq!(ids(&src.join("inside")), (100_004, 100_004));
    assert_eq!(ids(&plain), (300_001, 400_001));
}

#[test]
fn odd_input_is_an_error_naming_the_path() {
    let t = tempdir();
    let log = t.path().join("shift.log");
    let missing = t.path().join("missing");
    let err = try_dir(&missing).unwrap_err();
    assert!(format!("{err:#}").contains("missing"), "{err:#}");
    let file = t.path().join("file");
    fs::write(&file, b"").unwrap();
    let err = try_dir(&file).unwrap_err();
    assert!(format!("{err:#}").contains("file"), "{err:#}");
    // A log that is not a shift log is refused, naming it. (A malformed ACL cannot be written
    // to test with: the kernel refuses it; the unit tests feed one to the parser.)
    fs::write(&log, b"something else\n").unwrap();
    let top = t.path().join("tree");
    fs::create_dir(&top).unwrap();
    let err = shift::shift_tree(&dir(&top), &map(), &log, &mut |_| ControlFlow::Continue(()))
        .unwrap_err();
    assert!(format!("{err:#}").contains("shift.log"), "{err:#}");
}

/// `for_range(.., false)`: from the remap range starting at 100000 to the host's own ids.
fn to_host() -> Mapping {
    Mapping::for_range((100_000, 65_536), (100_000, 65_536), false).unwrap()
}

fn file(p: &Path, uid: u32, gid: u32, mode: u32) {
    fs::write(p, b"#!/bin/sh\n").unwrap();
    own(p, uid, gid);
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// No non-directory owned by a host id keeps a setid bit, no capability is valid for host ids.
fn nothing_armed_for_the_host(top: &Path) {
    for (p, e) in snapshot(top) {
        let file = e.mode & 0o170000 != 0o040000;
        assert!(
            !(file && e.uid < 65_536 && e.mode & 0o4000 != 0),
            "{} setuid as host uid {}",
            p.display(),
            e.uid
        );
        assert!(
            !(file && e.gid < 65_536 && e.mode & 0o2000 != 0),
            "{} setgid as host gid {}",
            p.display(),
            e.gid
        );
        if let Some(c) = e.xattrs.get(CAPS) {
            // A v3 capability is valid where its root id is root; older ones everywhere (only
            // an inode the walk moved to host ids is its doing).
            let rootid = (c.len() == 24).then(|| u32::from_le_bytes(c[20..24].try_into().unwrap()));
            assert!(
                rootid.map_or(e.uid >= 65_536, |r| r >= 65_536),
                "{}: a capability valid for host ids ({c:?})",
                p.display()
            );
        }
    }
}

#[test]
fn into_host_ids_setid_bits_and_capabilities_are_refused_or_dropped_never_kept() {
    let t = tempdir();
    let top = t.path().join("app");
    fs::create_dir(&top).unwrap();
    own(&top, 100_000, 100_000);
    // What a remapped container's root makes in a bind mount.
    file(&top.join("rootsh"), 100_000, 100_000, 0o4755);
    file(&top.join("sgid"), 101_000, 100_050, 0o2755);
    file(&top.join("capv3"), 100_000, 100_000, 0o755);
    set_xattr(&top.join("capv3"), CAPS, &caps_v3(100_000));
    file(&top.join("capv2"), 100_001, 100_001, 0o755);
    set_xattr(&top.join("capv2"), CAPS, &caps_v2());
    // Harmless: a setgid directory, a plain file, a capability of another namespace.
    let shared = top.join("shared");
    fs::create_dir(&shared).unwrap();
    own(&shared, 100_000, 100_000);
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o2775)).unwrap();
    file(&shared.join("plain"), 101_000, 101_000, 0o644);
    file(&top.join("othercap"), 100_002, 100_002, 0o755);
    set_xattr(&top.join("othercap"), CAPS, &caps_v3(200_000));
    let log = t.path().join("shift.log");

    let m = to_host();
    assert!(m.into_host() && !m.reverse().into_host());
    let before = snapshot(&top);
    let r = shift::survey(&dir(&top), &m).unwrap();
    assert_eq!(r.privileged, 4, "{r:?}");
    let mut named: Vec<_> = r
        .privileged_paths
        .iter()
        .map(|p| {
            (
                p.path.strip_prefix(&top).unwrap().display().to_string(),
                p.what(),
            )
        })
        .collect();
    named.sort();
    assert_eq!(
        named,
        [
            ("capv2".to_string(), "file capability".to_string()),
            ("capv3".into(), "file capability".into()),
            ("rootsh".into(), "setuid".into()),
            ("sgid".into(), "setgid".into()),
        ]
    );
    assert_eq!(snapshot(&top), before, "survey changed something");

    // Without being asked to drop them: refused, the inode untouched, nothing armed.
    let err =
        shift::shift_tree(&dir(&top), &m, &log, &mut |_| ControlFlow::Continue(())).unwrap_err();
    let refused = err
        .downcast_ref::<shift::PrivilegedIntoHost>()
        .unwrap_or_else(|| panic!("{err:#}"));
    let rel = refused.0.path.strip_prefix(&top).unwrap().to_path_buf();
    assert_eq!(
        snapshot(&top)[&rel],
        before[&rel],
        "the refused inode changed"
    );
    nothing_armed_for_the_host(&top);

    // Dropped when asked, and named.
    let r = shift::shift_tree_dropping(&dir(&top), &m, &log, &mut |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!((r.privileged, r.privileged_dropped), (4, true), "{r:?}");
    nothing_armed_for_the_host(&top);
    let after = snapshot(&top);
    let got = |n: &str| {
        let e = &after[Path::new(n)];
        (e.uid, e.gid, e.mode & 0o7777, e.xattrs.get(CAPS).cloned())
    };
    assert_eq!(got("rootsh"), (0, 0, 0o755, None));
    assert_eq!(got("sgid"), (1000, 50, 0o755, None));
    assert_eq!(got("capv3"), (0, 0, 0o755, None));
    assert_eq!(got("capv2"), (1, 1, 0o755, None));
    assert_eq!(
        got("shared"),
        (0, 0, 0o2775, None),
        "a setgid directory stays"
    );
    assert_eq!(got("shared/plain"), (1000, 1000, 0o644, None));
    assert_eq!(
        got("othercap"),
        (2, 2, 0o755, Some(caps_v3(200_000))),
        "another namespace's capability stays"
    );
    assert!(!log.exists());

    // Into the range they are kept exactly (harmless there).
    file(&top.join("rootsh"), 0, 0, 0o4755);
    set_xattr(&top.join("capv3"), CAPS, &caps_v3(0));
    // (Written by the host's root, the kernel stores it as revision 2.)
    let cap = get_xattr(&top.join("capv3"), CAPS);
    let r = run(&top, &m.reverse(), &log);
    assert_eq!(
        (r.privileged, r.setid_restored, r.caps_restored),
        (0, 1, 2),
        "{r:?}"
    );
    let after = snapshot(&top);
    assert_eq!(after[Path::new("rootsh")].mode & 0o7777, 0o4755);
    assert_eq!(after[Path::new("capv3")].xattrs.get(CAPS), cap.as_ref());
}

#[test]
fn ids_outside_the_mapping_are_counted_per_inode() {
    let t = tempdir();
    let top = t.path().join("t");
    fs::create_dir(&top).unwrap();
    own(&top, 100_000, 100_000);
    // "3 id(s) on 2 inode(s)" (one of them has both ids outside).
    file(&top.join("half"), 70_000, 100_000, 0o644);
    file(&top.join("both"), 70_000, 70_001, 0o644);
    let r = shift::survey(&dir(&top), &map()).unwrap();
    assert_eq!(
        (r.outside_ids, r.outside_id_inodes, r.outside),
        (3, 2, 1),
        "{r:?}"
    );
}

/// A chain `top/d/d/...` of `depth` directories, each with a file `f`; owners vary by level.
fn chain(top: &Path, depth: usize) {
    use rustix::fs::{Mode, OFlags, mkdirat, openat};
    fs::create_dir(top).unwrap();
    own(top, 100_000, 100_000);
    let mut dir = rfs::open(top, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
    for i in 0..depth as u32 {
        mkdirat(&dir, "d", Mode::from_raw_mode(0o755)).unwrap();
        let f = openat(
            &dir,
            "f",
            OFlags::CREATE | OFlags::WRONLY,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        rfs::fchown(
            &f,
            Some(rfs::Uid::from_raw(100_000 + i % 1000)),
            Some(rfs::Gid::from_raw(100_000 + i % 7)),
        )
        .unwrap();
        if i % 100 == 0 {
            rfs::fchmod(&f, Mode::from_raw_mode(0o4755)).unwrap();
        }
        let d = openat(&dir, "d", OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
        rfs::fchown(
            &d,
            Some(rfs::Uid::from_raw(100_000 + i)),
            Some(rfs::Gid::from_raw(100_000)),
        )
        .unwrap();
        dir = d;
    }
}

/// Checks what `chain` built, shifted by `map()`.
fn chain_shifted(top: &Path, depth: usize) {
    use rustix::fs::{AtFlags, Mode, OFlags, openat, statat};
    let mut dir = rfs::open(top, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
    for i in 0..depth as u32 {
        let f = statat(&dir, "f", AtFlags::SYMLINK_NOFOLLOW).unwrap();
        let want = if i % 100 == 0 { 0o4755 } else { 0o644 };
        assert_eq!(
            (f.st_uid, f.st_gid, f.st_mode & 0o7777),
            (300_000 + i % 1000, 400_000 + i % 7, want),
            "level {i}"
        );
        let d = statat(&dir, "d", AtFlags::SYMLINK_NOFOLLOW).unwrap();
        assert_eq!((d.st_uid, d.st_gid), (300_000 + i, 400_000), "level {i}");
        dir = openat(&dir, "d", OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
    }
}

fn rm_rf(p: &Path) {
    let st = Command::new("rm").arg("-rf").arg(p).status().unwrap();
    assert!(st.success());
}

/// The environment variable that makes [`deep_walk_with_256_fds`] run (in the child that
/// [`a_tree_deeper_than_the_open_file_limit_is_shifted_exactly`] starts).
const DEEP_CHILD: &str = "SHIFT_TREE_DEEP_CHILD";

#[test]
fn a_tree_deeper_than_the_open_file_limit_is_shifted_exactly() {
    use std::os::unix::process::CommandExt as _;
    let t = tempdir();
    let top = t.path().join("deep");
    chain(&top, 1100);
    // In a child whose NOFILE limits are 128 (soft) and 256 (hard): the walk raises the soft
    // one to the hard one, and needs far fewer than 1100 fds anyway. This process keeps its own.
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--exact",
            "deep_walk_with_256_fds",
            "--ignored",
            "--nocapture",
        ])
        .env(DEEP_CHILD, &top);
    // SAFETY: only setrlimit (async-signal-safe) between fork and exec.
    unsafe {
        child.pre_exec(|| {
            use rustix::process::{Resource, Rlimit, setrlimit};
            setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(128),
                    maximum: Some(256),
                },
            )
            .map_err(std::io::Error::from)
        });
    }
    let out = child.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "the child failed: {text}"
    );
    chain_shifted(&top, 1100);
    rm_rf(&top);
}

#[test]
#[ignore = "run by a_tree_deeper_than_the_open_file_limit_is_shifted_exactly, in a child with 256 fds"]
fn deep_walk_with_256_fds() {
    let top = PathBuf::from(std::env::var_os(DEEP_CHILD).expect("run by its parent test"));
    let l = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    assert_eq!((l.current, l.maximum), (Some(128), Some(256)));
    let log = top.with_extension("log");
    let r = shift::shift_tree(&dir(&top), &map(), &log, &mut |_| ControlFlow::Continue(()))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        (r.inodes, r.shifted, r.setid_restored),
        (2201, 2201, 11),
        "{r:?}"
    );
    let l = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    assert_eq!(l.current, Some(256), "the soft limit was not raised");
}

#[test]
fn a_tree_deeper_than_the_cap_is_refused_by_the_survey() {
    let t = tempdir();
    let top = t.path().join("deeper");
    chain(&top, shift::MAX_DEPTH + 1);
    let err = shift::survey(&dir(&top), &map()).unwrap_err();
    let deep = err
        .downcast_ref::<shift::TooDeep>()
        .unwrap_or_else(|| panic!("{err:#}"));
    assert_eq!(deep.max, shift::MAX_DEPTH);
    assert_eq!(
        deep.path.strip_prefix(&top).unwrap().components().count(),
        shift::MAX_DEPTH + 1
    );
    // At the cap it is walked.
    let top2 = t.path().join("at-cap");
    chain(&top2, shift::MAX_DEPTH);
    let r = shift::survey(&dir(&top2), &map()).unwrap();
    assert_eq!(r.shifted, 2 * shift::MAX_DEPTH as u64 + 1);
    rm_rf(&top);
    rm_rf(&top2);
}

/// The directory at `p` (a path on this machine), opened as the tool opens one.
fn try_dir(p: &Path) -> anyhow::Result<OpenDir> {
    Root::new(Path::new("/"))?.open_dir(p.to_str().expect("a UTF-8 temporary path"))
}

fn dir(p: &Path) -> OpenDir {
    try_dir(p).unwrap()
}
