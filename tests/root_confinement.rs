//! `--root DIR` stays inside DIR: symlinks in the tree (absolute ones included, as on a mounted
//! image) and `..` resolve beneath DIR, never to the host's files; `useradd --prefix`, which
//! opens the tree's files by plain path, is not run where a link would lead it out.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use common::{Run, Tree, copy_tree};

/// Every file below `dir` with its content, to show it was not touched.
fn contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.display().to_string(), fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn enable(t: &Tree) -> Run {
    t.run(&["--json", "enable"])
}

/// The tree's own copy of a host path `abs` (what an absolute link to it means in the tree).
fn inside(t: &Tree, abs: &Path) -> std::path::PathBuf {
    t.path(&abs.to_string_lossy())
}

#[test]
fn an_absolute_link_in_the_tree_resolves_inside_it() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("daemon.json"), "{\"debug\": true}\n").unwrap();
    let host_before = contents(outside.path());

    let t = Tree::fixture("debian12");
    // etc/docker -> <host tempdir>: on the host that is the victim directory; in the tree it
    // is the tree's own directory of that name.
    symlink(outside.path(), t.path("etc/docker")).unwrap();
    fs::create_dir_all(inside(&t, outside.path())).unwrap();

    let r = enable(&t);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        contents(outside.path()),
        host_before,
        "wrote outside the tree"
    );
    let written = fs::read_to_string(inside(&t, outside.path()).join("daemon.json")).unwrap();
    assert!(written.contains("userns-remap"), "{written}");
}

#[test]
fn a_link_to_a_directory_missing_in_the_tree_is_an_error_not_an_escape() {
    let outside = tempfile::tempdir().unwrap();
    let t = Tree::fixture("debian12");
    symlink(outside.path(), t.path("etc/docker")).unwrap();
    let r = enable(&t);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("etc/docker"), "{r:?}");
    assert!(
        contents(outside.path()).is_empty(),
        "wrote outside the tree"
    );
}

#[test]
fn dot_dot_stops_at_the_root() {
    let outside = tempfile::tempdir().unwrap();
    let t = Tree::fixture("debian12");
    // Enough `..` to reach / from the tree on the host, then down to the victim.
    let depth = t.dir.path().components().count() + 2;
    let up = "../".repeat(depth);
    let target = format!(
        "{up}{}",
        outside.path().to_string_lossy().trim_start_matches('/')
    );
    symlink(&target, t.path("etc/docker")).unwrap();
    fs::create_dir_all(inside(&t, outside.path())).unwrap();
    let r = enable(&t);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        contents(outside.path()).is_empty(),
        "wrote outside the tree"
    );
    assert!(inside(&t, outside.path()).join("daemon.json").is_file());
}

#[test]
fn useradd_is_not_run_where_a_link_leads_it_out_of_the_tree() {
    // The host's "accounts": what useradd --prefix would change by following etc -> there.
    let host = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/debian12");
    copy_tree(&fixture.join("etc"), &host.path().join("etc"));
    let host_before = contents(host.path());

    let t = Tree::empty();
    copy_tree(&fixture.join("lib"), &t.path("lib"));
    // etc -> <host>/etc, and the tree's own <host>/etc holds the tree's accounts.
    copy_tree(&fixture.join("etc"), &inside(&t, &host.path().join("etc")));
    symlink(host.path().join("etc"), t.path("etc")).unwrap();
    let tree_before = contents(t.dir.path());

    let r = enable(&t);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("useradd --prefix"), "{r:?}");
    assert_eq!(r.json()["error"]["kind"], "conflict");
    assert_eq!(
        contents(host.path()),
        host_before,
        "the host's accounts changed"
    );
    assert_eq!(
        contents(t.dir.path()),
        tree_before,
        "refused, yet the tree changed"
    );

    // With the user already there, nothing needs useradd: the ranges go to the tree's files.
    let passwd = inside(&t, &host.path().join("etc/passwd"));
    let mut text = fs::read_to_string(&passwd).unwrap();
    text.push_str("dockremap:x:998:998::/nonexistent:/usr/sbin/nologin\n");
    fs::write(&passwd, text).unwrap();
    let r = enable(&t);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        contents(host.path()),
        host_before,
        "the host's files changed"
    );
    let subuid = fs::read_to_string(inside(&t, &host.path().join("etc/subuid"))).unwrap();
    assert!(subuid.contains("dockremap:"), "{subuid}");
}

/// A data root to shift that is an absolute symlink in the tree (as a mounted image has them)
/// is the tree's directory, not the host's: the walk opens it beneath the root
/// (`Root::open_dir`) and works through fds from there, so it counts, surveys and shifts the
/// tree's copy and never the host's. Before, the walk was handed `root.path(..)` and resolved
/// it with the host's own rules: an absolute link led to the host's directory.
#[test]
fn a_data_root_that_is_an_absolute_link_is_walked_inside_the_tree() {
    use docker_userns::host::root::Root;
    use docker_userns::host::shift::{self, IdShift, Mapping};
    use std::os::unix::fs::{MetadataExt, lchown};

    let t = tempfile::tempdir().unwrap();
    let host_side = tempfile::tempdir().unwrap();
    // Outside the tree, where the link points when resolved on the host: owned by the source
    // range, so a walk there would change it.
    fs::write(host_side.path().join("secret"), b"host").unwrap();
    lchown(
        host_side.path().join("secret"),
        Some(100_007),
        Some(100_007),
    )
    .unwrap();
    // Inside the tree: the same absolute path, with a file of its own.
    let mirror = t.path().join(host_side.path().strip_prefix("/").unwrap());
    fs::create_dir_all(&mirror).unwrap();
    fs::write(mirror.join("mine"), b"tree").unwrap();
    lchown(mirror.join("mine"), Some(100_001), Some(100_001)).unwrap();
    fs::create_dir_all(t.path().join("var/lib/docker")).unwrap();
    symlink(
        host_side.path(),
        t.path().join("var/lib/docker/100000.100000"),
    )
    .unwrap();

    let root = Root::new(t.path()).unwrap();
    let dir = root.open_dir("/var/lib/docker/100000.100000").unwrap();
    assert!(
        dir.shown().starts_with(t.path()),
        "{}",
        dir.shown().display()
    );
    assert_eq!(
        shift::count(&dir).unwrap(),
        2,
        "the tree's directory and its file"
    );
    let s = |from, to| IdShift {
        from,
        to,
        count: 65_536,
    };
    let map = Mapping::new(s(100_000, 300_000), s(100_000, 300_000)).unwrap();
    let log = t.path().join("shift.log");
    let r = shift::shift_tree(&dir, &map, &log, &mut |_| {
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(r.shifted, 1, "{r:?}");
    let owner = |p: &Path| {
        let m = fs::symlink_metadata(p).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(owner(&mirror.join("mine")), (300_001, 300_001));
    assert_eq!(
        owner(&host_side.path().join("secret")),
        (100_007, 100_007),
        "the host's directory was walked"
    );
}
