//! Where ranges may lie (never over accounts' ids, never in the ordinary accounts' space, never
//! empty), what login.defs may say, and shadow's lock files, with the binary under `--root`.

mod common;

use common::{Run, Tree};

/// The fixture with `extra` appended to its login.defs (the last value of a key wins).
fn with_login_defs(extra: &str) -> Tree {
    let t = Tree::fixture("debian12");
    t.write("etc/login.defs", &(t.read("etc/login.defs") + extra));
    t
}

/// The fixture with an existing remap user (uid 101).
fn with_dockremap() -> Tree {
    let t = Tree::fixture("debian12");
    t.write(
        "etc/passwd",
        &(t.read("etc/passwd") + "dockremap:x:101:103::/nonexistent:/usr/sbin/nologin\n"),
    );
    t.write("etc/group", &(t.read("etc/group") + "dockremap:x:103:\n"));
    t
}

/// Runs `args` with `--json`; asserts exit `code`, every needle in stderr and in the JSON
/// error, none of `absent`, and that nothing in the tree changed.
fn refused(t: &Tree, args: &[&str], code: i32, needles: &[&str], absent: &[&str]) -> Run {
    let before = t.snapshot();
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let r = t.run(&full);
    assert_eq!(r.code, code, "{r:?}");
    let doc = r.json();
    assert_eq!(doc["error"]["code"], code, "{doc}");
    let msg = doc["error"]["message"].as_str().unwrap();
    for n in needles {
        assert!(r.stderr.contains(n), "stderr lacks {n:?}: {r:?}");
        assert!(msg.contains(n), "message lacks {n:?}: {msg}");
    }
    for n in absent {
        assert!(!msg.contains(n), "message has {n:?}: {msg}");
    }
    assert_eq!(before, t.snapshot(), "the tree changed although refused");
    r
}

fn problems(r: &Run) -> Vec<(String, u64, String, String)> {
    r.json()["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["file"].as_str().unwrap().to_string(),
                p["line"].as_u64().unwrap(),
                p["kind"].as_str().unwrap().to_string(),
                p["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn sub_uid_min_in_the_accounts_space_is_refused_naming_login_defs_and_an_account() {
    let t = with_login_defs("SUB_UID_MIN 1\nSUB_GID_MIN 1\n");
    for cmd in ["plan", "enable"] {
        refused(
            &t,
            &[cmd],
            3,
            &[
                "SUB_UID_MIN 1 in /etc/login.defs is at or below UID_MAX 60000",
                "uid 1 (user daemon)",
            ],
            &[],
        );
    }
    assert!(!t.read("etc/passwd").contains("dockremap"), "no user made");
    // Just above UID_MAX is fine, and the range skips the account nobody (65534).
    let t = with_login_defs("SUB_UID_MIN 60001\nSUB_GID_MIN 60001\n");
    t.write("etc/subuid", "");
    t.write("etc/subgid", "");
    let r = t.run(&["--json", "enable"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(t.read("etc/subuid"), "dockremap:65535:65536\n");
    assert_eq!(t.read("etc/subgid"), "dockremap:65535:65536\n");
}

#[test]
fn a_new_range_never_covers_an_account_above_uid_max() {
    // An account with a high uid (and group) where the range would go.
    let t = Tree::fixture("debian12");
    t.write(
        "etc/passwd",
        &(t.read("etc/passwd") + "svc:x:170000:170000::/nonexistent:/usr/sbin/nologin\n"),
    );
    t.write("etc/group", &(t.read("etc/group") + "svc:x:170000:\n"));
    let r = t.run(&["--json", "enable"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        t.read("etc/subuid"),
        "alice:100000:65536\ndockremap:170001:65536\n"
    );
    assert_eq!(
        t.read("etc/subgid"),
        "alice:100000:65536\ndockremap:170001:65536\n"
    );
}

#[test]
fn a_kept_range_covering_an_account_is_refused_naming_the_line() {
    let t = with_dockremap();
    t.write("etc/subuid", "alice:100000:65536\ndockremap:1:65536\n");
    t.write("etc/subgid", "alice:100000:65536\ndockremap:200000:65536\n");
    refused(
        &t,
        &["enable"],
        3,
        &[
            "/etc/subuid:2: ",
            "dockremap:1:65536 covers uid 1 (user daemon, /etc/passwd)",
            "remove that line",
        ],
        &[],
    );
    // The same for gids: group messagebus (101) lies in 100..65636.
    t.write("etc/subuid", "dockremap:200000:65536\n");
    t.write("etc/subgid", "dockremap:100:65536\n");
    refused(
        &t,
        &["enable"],
        3,
        &[
            "/etc/subgid:1: ",
            "covers gid 101 (group messagebus, /etc/group)",
        ],
        &[],
    );
}

#[test]
fn check_reports_ranges_covering_accounts_for_every_owner() {
    let t = Tree::fixture("debian12");
    t.write(
        "etc/subuid",
        "alice:100000:65536\ndockremap:1:65536\n1000:500:10\n",
    );
    t.write("etc/subgid", "alice:100000:65536\nbob:65000:1000\n");
    let r = t.run(&["check", "--json"]);
    assert_eq!(r.code, 3, "{r:?}");
    let found: Vec<(String, u64, String)> = problems(&r)
        .into_iter()
        .filter(|p| p.2 == "covers-account")
        .map(|p| (p.0, p.1, p.3))
        .collect();
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!((found[0].0.as_str(), found[0].1), ("/etc/subuid", 2));
    assert!(
        found[0].2.contains("covers uid 1 (user daemon"),
        "{found:?}"
    );
    assert_eq!((found[1].0.as_str(), found[1].1), ("/etc/subuid", 3));
    assert!(
        found[1].2.contains("at or below UID_MAX 60000"),
        "{found:?}"
    );
    assert_eq!((found[2].0.as_str(), found[2].1), ("/etc/subgid", 2));
    assert!(
        found[2].2.contains("covers gid 65534 (group nogroup"),
        "{found:?}"
    );
    let text = t.run(&["check"]);
    assert!(
        text.stdout
            .contains("/etc/subuid:2: covers-account: dockremap:1:65536 covers uid 1"),
        "{text:?}"
    );
}

#[test]
fn a_zero_count_line_of_the_remap_user_is_refused() {
    // Existing user, and a user still to be created: refused before useradd runs.
    for t in [with_dockremap(), Tree::fixture("debian12")] {
        t.write("etc/subuid", "alice:100000:65536\ndockremap:165536:0\n");
        refused(
            &t,
            &["enable"],
            3,
            &[
                "/etc/subuid:2: dockremap:165536:0 gives dockremap no ids",
                "remove that line",
            ],
            &[],
        );
    }
    // check keeps reporting it as empty.
    let t = Tree::fixture("debian12");
    t.write("etc/subuid", "dockremap:100000:0\n");
    let r = t.run(&["check", "--json"]);
    assert_eq!(r.code, 3);
    assert!(problems(&r).iter().any(|p| p.1 == 1 && p.2 == "empty"));
}

#[test]
fn a_system_uid_above_uid_min_as_useradd_gives_it_is_accepted() {
    // useradd --system takes uids from SYS_UID_MIN..=SYS_UID_MAX, here all above UID_MIN.
    let t = with_login_defs("UID_MIN 1000\nSYS_UID_MIN 2000\nSYS_UID_MAX 5000\n");
    let r = t.run(&["--json", "enable"]);
    assert_eq!(r.code, 0, "{r:?}");
    let uid = r.json()["user"]["uid"].as_u64().unwrap();
    assert!((2000..=5000).contains(&uid), "uid {uid}");
    let again = t.run(&["--json", "enable"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(again.json()["changed"], false);
    // An existing user neither below UID_MIN nor in that range is not a system account.
    let t = with_login_defs("UID_MIN 1000\nSYS_UID_MAX 5000\n");
    t.write(
        "etc/passwd",
        &(t.read("etc/passwd") + "dockremap:x:6000:6000::/nonexistent:/usr/sbin/nologin\n"),
    );
    refused(
        &t,
        &["enable"],
        3,
        &[
            "uid 6000, which is not a system uid (below UID_MIN 1000, or in SYS_UID_MIN..SYS_UID_MAX 100..=5000",
        ],
        &[],
    );
}

#[test]
fn a_system_uid_that_cannot_exist_is_refused_before_useradd() {
    let t = with_login_defs("SYS_UID_MIN 900\nSYS_UID_MAX 800\n");
    refused(
        &t,
        &["enable"],
        3,
        &["SYS_UID_MIN 900 is above SYS_UID_MAX 800 in /etc/login.defs"],
        &[],
    );
    // The only system uid is taken (messagebus, 100).
    let t = with_login_defs("SYS_UID_MIN 100\nSYS_UID_MAX 100\n");
    refused(
        &t,
        &["enable"],
        3,
        &["every system uid from 100 to SYS_UID_MAX 100"],
        &[],
    );
}

#[test]
fn inverted_bounds_and_a_huge_count_say_what_is_wrong() {
    let t = with_login_defs("SUB_UID_MIN 700000\nSUB_UID_MAX 600000\n");
    refused(
        &t,
        &["enable"],
        3,
        &["SUB_UID_MIN 700000 is above SUB_UID_MAX 600000 in /etc/login.defs"],
        &["every gap"],
    );
    let t = Tree::fixture("debian12");
    refused(
        &t,
        &["enable", "--count", "4294967296"],
        3,
        &[
            "a range of 4294967296 ids cannot fit between SUB_UID_MIN 100000 and SUB_UID_MAX 600100000 (/etc/login.defs)",
        ],
        &["every gap"],
    );
}

#[test]
fn a_symlink_lock_is_refused_and_its_target_untouched() {
    let t = with_dockremap();
    // Points at a file holding a live pid (ours): read through the link it looks held.
    t.write("victim", &std::process::id().to_string());
    std::os::unix::fs::symlink(t.path("victim"), t.path("etc/subuid.lock")).unwrap();
    // /etc and the victim, but not /etc/.pwd.lock (shadow's lckpwdf file, created once).
    let files = |t: &Tree| -> Vec<_> {
        t.snapshot()
            .into_iter()
            .filter(|(p, _)| {
                (p.starts_with("etc") || p.starts_with("victim")) && !p.ends_with(".pwd.lock")
            })
            .collect()
    };
    let etc_before = files(&t);
    let started = std::time::Instant::now();
    let r = t.run(&["--json", "enable"]);
    assert_eq!(r.code, 3, "{r:?}");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("subuid.lock is a symbolic link, not a lock file"),
        "{msg}"
    );
    assert!(!msg.contains("another program"), "{msg}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "refused at once, not after waiting for a holder"
    );
    let etc_after = files(&t);
    assert_eq!(etc_before, etc_after, "/etc or the link's target changed");
}
