//! `plan`, `enable`, `disable` and `check` on fixture trees under `--root` (no services, no NSS).

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::{Run, Tree};
use serde_json::json;

fn ok(r: &Run) -> serde_json::Value {
    assert_eq!(r.code, 0, "{r:?}");
    r.json()
}

fn range(v: &serde_json::Value, file: &str) -> (u64, u64, bool) {
    let r = &v[file];
    (
        r["start"].as_u64().unwrap(),
        r["count"].as_u64().unwrap(),
        r["add"].as_bool().unwrap(),
    )
}

/// Asserts the command failed with `code`, named `needle` on stderr and in the JSON error, and
/// changed nothing in the tree.
fn refused(t: &Tree, args: &[&str], code: i32, needle: &str) -> Run {
    let before = t.snapshot();
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let r = t.run(&full);
    assert_eq!(r.code, code, "{r:?}");
    assert!(r.stderr.contains(needle), "stderr lacks {needle:?}: {r:?}");
    let doc = r.json();
    assert_eq!(doc["error"]["code"], code);
    assert!(doc["error"]["message"].as_str().unwrap().contains(needle));
    assert_eq!(
        before,
        t.snapshot(),
        "the tree changed although the command was refused"
    );
    r
}

#[test]
fn plan_changes_nothing_and_enable_then_converges() {
    let t = Tree::fixture("debian12");
    let before = t.snapshot();
    let plan = ok(&t.run(&["plan", "--json"]));
    assert_eq!(before, t.snapshot(), "plan wrote something");
    assert_eq!(plan["schema_version"], 1);
    assert_eq!(plan["changed"], true);
    assert_eq!(
        plan["user"],
        json!({"name": "dockremap", "uid": null, "create": true, "group": null, "gid": null, "value_from": "/etc/docker/daemon.json"})
    );
    assert_eq!(range(&plan, "subuid"), (165536, 65536, true));
    assert_eq!(range(&plan, "subgid"), (165536, 65536, true));
    assert_eq!(plan["daemon_json"], json!({"userns-remap": "default"}));
    assert_eq!(plan["restart"], true);
    assert_eq!(
        plan["docker"]["unit_file"],
        "/lib/systemd/system/docker.service"
    );

    let done = ok(&t.run(&["enable", "--json"]));
    assert_eq!(done["changed"], true);
    assert_eq!(done["user"]["create"], true);
    let uid = done["user"]["uid"]
        .as_u64()
        .expect("uid known after creation");
    assert!((100..1000).contains(&uid), "system uid, got {uid}");
    assert_eq!(
        t.read("etc/subuid"),
        "alice:100000:65536\ndockremap:165536:65536\n"
    );
    assert_eq!(
        t.read("etc/subgid"),
        "alice:100000:65536\ndockremap:165536:65536\n"
    );
    assert_eq!(
        t.read("etc/subuid-"),
        "alice:100000:65536\n",
        "shadow-style backup"
    );
    assert_eq!(
        t.read("etc/docker/daemon.json"),
        "{\n  \"userns-remap\": \"default\"\n}\n"
    );
    let passwd = t.read("etc/passwd");
    let line = passwd
        .lines()
        .find(|l| l.starts_with("dockremap:"))
        .expect("user created");
    assert!(line.ends_with(":/nonexistent:/usr/sbin/nologin"), "{line}");
    assert!(
        t.read("etc/group")
            .lines()
            .any(|l| l.starts_with("dockremap:")),
        "own group"
    );
    assert_eq!(
        fs::metadata(t.path("etc/docker/daemon.json"))
            .unwrap()
            .mode()
            & 0o777,
        0o644
    );
    assert_eq!(
        fs::metadata(t.path("etc/docker")).unwrap().mode() & 0o777,
        0o755
    );
    for lock in ["etc/subuid.lock", "etc/subgid.lock"] {
        assert!(!t.exists(lock), "{lock} left behind");
    }

    // The second run is a no-op, down to the mtimes.
    let converged = t.snapshot();
    let again = ok(&t.run(&["enable", "--json"]));
    assert_eq!(again["changed"], false);
    assert_eq!(again["restart"], false);
    assert_eq!(
        again["user"],
        json!({"name": "dockremap", "uid": uid, "create": false, "group": "dockremap", "gid": again["user"]["gid"], "value_from": "/etc/docker/daemon.json"})
    );
    assert_eq!(range(&again, "subuid"), (165536, 65536, false));
    assert_eq!(
        converged,
        t.snapshot(),
        "a converged enable wrote something"
    );
    let text = t.run(&["enable"]);
    assert!(text.stdout.starts_with("Already converged"), "{text:?}");
}

#[test]
fn empty_tree_gets_everything_created() {
    let t = Tree::empty();
    let plan = ok(&t.run(&["plan", "--json"]));
    assert_eq!(range(&plan, "subuid"), (100000, 65536, true));
    assert_eq!(plan["restart"], false, "no docker.service in the tree");
    assert!(
        plan["notes"][0]
            .as_str()
            .unwrap()
            .contains("docker does not seem to be installed")
    );
    let done = ok(&t.run(&["enable", "--json"]));
    assert_eq!(done["changed"], true);
    assert_eq!(t.read("etc/subuid"), "dockremap:100000:65536\n");
    assert_eq!(t.read("etc/subgid"), "dockremap:100000:65536\n");
    assert!(
        !t.exists("etc/subuid-"),
        "no backup of a file that did not exist"
    );
    assert_eq!(
        fs::metadata(t.path("etc/subuid")).unwrap().mode() & 0o777,
        0o644
    );
    assert_eq!(ok(&t.run(&["enable", "--json"]))["changed"], false);
}

#[test]
fn other_owners_before_after_and_around_the_gap() {
    let t = Tree::fixture("debian12");
    t.write("etc/subuid", "alice:100000:65536\ncarol:231072:65536\n");
    t.write("etc/subgid", "alice:100000:65536\ncarol:231072:65536\n");
    assert_eq!(
        range(&ok(&t.run(&["plan", "--json"])), "subuid"),
        (165536, 65536, true)
    );
    // One id too few in the subuid gap: the range goes after carol, at the first start that
    // is free in both files (carol's subgid range ends one id later than her subuid range).
    t.write("etc/subuid", "alice:100000:65536\ncarol:231071:65536\n");
    let p = ok(&t.run(&["plan", "--json"]));
    assert_eq!(range(&p, "subuid"), (296608, 65536, true));
    assert_eq!(
        range(&p, "subgid"),
        (296608, 65536, true),
        "same start in both files"
    );
}

#[test]
fn a_tiny_range_inside_the_candidate_is_not_overlapped() {
    // dockerd's own allocator would choose 100000 here and overlap bob.
    let t = Tree::fixture("debian12");
    t.write("etc/subuid", "bob:110000:100\n");
    t.write("etc/subgid", "");
    let p = ok(&t.run(&["enable", "--json"]));
    assert_eq!(range(&p, "subuid"), (110100, 65536, true));
    assert_eq!(range(&p, "subgid"), (110100, 65536, true));
}

#[test]
fn numeric_owners_count() {
    let t = Tree::fixture("debian12");
    t.write("etc/subuid", "1000:100000:65536\n1001:165536:65536\n");
    let p = ok(&t.run(&["plan", "--json"]));
    assert_eq!(range(&p, "subuid"), (231072, 65536, true));
    assert_eq!(range(&p, "subgid"), (231072, 65536, true));
}

#[test]
fn existing_ranges_in_one_file_are_kept_and_mirrored() {
    let t = Tree::fixture("debian12");
    t.write(
        "etc/passwd",
        &(t.read("etc/passwd") + "dockremap:x:101:102::/nonexistent:/bin/false\n"),
    );
    t.write("etc/subuid", "alice:100000:65536\ndockremap:300000:65536\n");
    let p = ok(&t.run(&["enable", "--json"]));
    assert_eq!(
        p["user"],
        json!({"name": "dockremap", "uid": 101, "create": false, "group": "docker", "gid": 102, "value_from": "/etc/docker/daemon.json"})
    );
    assert_eq!(range(&p, "subuid"), (300000, 65536, false));
    assert_eq!(range(&p, "subgid"), (300000, 65536, true));
    assert_eq!(
        t.read("etc/subuid"),
        "alice:100000:65536\ndockremap:300000:65536\n"
    );
    assert_eq!(
        t.read("etc/subgid"),
        "alice:100000:65536\ndockremap:300000:65536\n"
    );
}

#[test]
fn ranges_owned_by_the_users_numeric_uid_are_kept() {
    let t = Tree::fixture("debian12");
    t.write(
        "etc/passwd",
        &(t.read("etc/passwd") + "dockremap:x:101:102::/nonexistent:/usr/sbin/nologin\n"),
    );
    t.write("etc/subuid", "101:400000:65536\n");
    t.write("etc/subgid", "101:400000:65536\n");
    let p = ok(&t.run(&["plan", "--json"]));
    assert_eq!(range(&p, "subuid"), (400000, 65536, false));
    assert_eq!(p["daemon_json"]["userns-remap"], "default");
}

#[test]
fn login_defs_bounds_and_count_are_honoured() {
    let t = Tree::fixture("debian12");
    t.write(
        "etc/login.defs",
        "SUB_UID_MIN 1000000\nSUB_UID_MAX 2000000\nSUB_UID_COUNT 70000\nSUB_GID_MIN 3000000\n",
    );
    let p = ok(&t.run(&["plan", "--json"]));
    assert_eq!(range(&p, "subuid"), (1000000, 70000, true));
    assert_eq!(range(&p, "subgid"), (3000000, 65536, true));
    let p = ok(&t.run(&["plan", "--json", "--count", "131072"]));
    assert_eq!(range(&p, "subuid").1, 131072);
    assert_eq!(range(&p, "subgid").1, 131072);
}

#[test]
fn a_zero_count_in_login_defs_means_the_default() {
    let t = Tree::fixture("debian12");
    t.write("etc/login.defs", "SUB_UID_COUNT 0\nSUB_GID_COUNT 0\n");
    let p = ok(&t.run(&["plan", "--json"]));
    assert_eq!(range(&p, "subuid"), (165536, 65536, true));
    assert_eq!(range(&p, "subgid"), (165536, 65536, true));
}

#[test]
fn no_room_left_is_refused() {
    let t = Tree::fixture("debian12");
    t.write("etc/login.defs", "SUB_UID_MIN 100000\nSUB_UID_MAX 200000\n");
    refused(
        &t,
        &["enable"],
        3,
        "no free range of 65536 ids between 100000 and 200000",
    );
}

#[test]
fn comments_blank_lines_and_no_final_newline_are_preserved() {
    let t = Tree::fixture("debian12");
    let original =
        "# managed by hand\n\nalice:100000:65536\n   # indented comment\t\nbob:165536:65536";
    t.write("etc/subuid", original);
    ok(&t.run(&["enable", "--json"]));
    assert_eq!(
        t.read("etc/subuid"),
        format!("{original}\ndockremap:231072:65536\n")
    );
}

#[test]
fn a_malformed_line_stops_enable_with_file_and_line() {
    let t = Tree::fixture("debian12");
    t.write("etc/subuid", "alice:100000:65536\n# fine\nbob:1e5:65536\n");
    refused(
        &t,
        &["enable"],
        3,
        "/etc/subuid:3: start \"1e5\" is not a decimal number",
    );
    refused(&t, &["plan"], 3, "/etc/subuid:3");
}

#[test]
fn daemon_json_keys_keep_their_order() {
    let t = Tree::fixture("debian12");
    let original = "{\n    \"log-driver\": \"journald\",\n    \"data-root\": \"/srv/docker\",\n    \"default-address-pools\": [{\"base\": \"10.10.0.0/16\", \"size\": 24}],\n    \"debug\": false\n}\n";
    t.write("etc/docker/daemon.json", original);
    fs::set_permissions(
        t.path("etc/docker/daemon.json"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let p = ok(&t.run(&["enable", "--json"]));
    assert_eq!(p["daemon_json_change"], "update");
    let written = t.read("etc/docker/daemon.json");
    let keys: Vec<String> =
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&written)
            .unwrap()
            .keys()
            .cloned()
            .collect();
    assert_eq!(
        keys,
        [
            "log-driver",
            "data-root",
            "default-address-pools",
            "debug",
            "userns-remap"
        ]
    );
    assert!(
        written.starts_with("{\n    \"log-driver\""),
        "indentation kept: {written}"
    );
    assert_eq!(
        fs::metadata(t.path("etc/docker/daemon.json"))
            .unwrap()
            .mode()
            & 0o777,
        0o600,
        "mode kept"
    );
    assert_eq!(
        t.read("etc/docker/daemon.json.docker-userns-backup"),
        original
    );

    let d = ok(&t.run(&["disable", "--json"]));
    assert_eq!(d["changed"], true);
    assert_eq!(d["removed"], "default");
    let keys: Vec<String> = d["daemon_json"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        keys,
        ["log-driver", "data-root", "default-address-pools", "debug"]
    );
    assert_eq!(
        t.read("etc/subuid").lines().count(),
        2,
        "disable keeps the ranges"
    );
    let again = ok(&t.run(&["disable", "--json"]));
    assert_eq!(again["changed"], false);
}

#[test]
fn invalid_daemon_json_is_refused() {
    let t = Tree::fixture("debian12");
    t.write("etc/docker/daemon.json", "{\n  \"debug\": true,\n}\n");
    refused(
        &t,
        &["enable"],
        3,
        "daemon.json: invalid JSON at line 3, column 1",
    );
    t.write("etc/docker/daemon.json", "[\"debug\"]\n");
    refused(&t, &["enable"], 3, "top level is an array");
    t.write("etc/docker/daemon.json", "{\"userns-remap\": 1}\n");
    refused(&t, &["enable"], 3, "\"userns-remap\" is a number");
}

#[test]
fn a_different_remap_user_in_daemon_json_is_refused() {
    let t = Tree::fixture("debian12");
    t.write("etc/docker/daemon.json", "{\"userns-remap\": \"alice\"}\n");
    refused(
        &t,
        &["enable"],
        3,
        "already has \"userns-remap\": \"alice\"",
    );
}

#[test]
fn a_symlinked_daemon_json_is_refused() {
    let t = Tree::fixture("debian12");
    t.write("srv/daemon.json", "{}\n");
    fs::create_dir_all(t.path("etc/docker")).unwrap();
    std::os::unix::fs::symlink("/srv/daemon.json", t.path("etc/docker/daemon.json")).unwrap();
    refused(&t, &["enable"], 3, "is a symbolic link");
}

#[test]
fn a_remap_flag_in_a_dropin_is_refused() {
    let t = Tree::fixture("debian12");
    t.write(
        "etc/systemd/system/docker.service.d/override.conf",
        "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd \\\n  -H fd:// --userns-remap=remapper\n",
    );
    // A flag naming another user than --user (issue 24: a flag naming the same one is fine).
    refused(
        &t,
        &["enable"],
        3,
        "/etc/systemd/system/docker.service.d/override.conf:3",
    );
    refused(&t, &["disable"], 3, "override.conf:3");
}

#[test]
fn a_flag_reset_by_a_later_dropin_is_no_conflict() {
    let t = Tree::fixture("debian12");
    t.write(
        "usr/lib/systemd/system/docker.service.d/10-remap.conf",
        "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd --userns-remap=default\n",
    );
    t.write(
        "etc/systemd/system/docker.service.d/20-plain.conf",
        "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd://\n",
    );
    ok(&t.run(&["plan", "--json"]));
}

#[test]
fn a_remap_flag_in_etc_default_docker_is_refused() {
    let t = Tree::fixture("debian12");
    t.write(
        "etc/default/docker",
        "# options\nDOCKER_OPTS=\"--dns 10.0.0.1 --userns-remap=remapper\"\n",
    );
    refused(&t, &["enable"], 3, "/etc/default/docker:2");
    // The same flag with the key in daemon.json too: dockerd refuses to start.
    t.write(
        "etc/default/docker",
        "# options\nDOCKER_OPTS=\"--dns 10.0.0.1 --userns-remap=default\"\n",
    );
    t.write(
        "etc/docker/daemon.json",
        "{\"userns-remap\": \"default\"}\n",
    );
    refused(&t, &["enable"], 3, "/etc/default/docker:2");
    // The flag alone naming the user: enable converges the ranges and leaves daemon.json be.
    std::fs::remove_file(t.path("etc/docker/daemon.json")).unwrap();
    let done = ok(&t.run(&["enable", "--json"]));
    assert_eq!(done["daemon_json_change"], "none");
    assert_eq!(
        done["user"]["value_from"],
        "--userns-remap at /etc/default/docker:2"
    );
    assert!(!t.exists("etc/docker/daemon.json"));
    assert!(t.read("etc/subuid").contains("dockremap:165536:65536\n"));
}

#[test]
fn an_existing_user_with_a_login_shell_is_refused() {
    let t = Tree::fixture("debian12");
    t.write(
        "etc/passwd",
        &(t.read("etc/passwd") + "dockremap:x:101:102::/home/d:/bin/bash\n"),
    );
    refused(&t, &["enable"], 3, "login shell");
    refused(&t, &["enable", "--user", "alice"], 3, "not a system uid");
}

#[test]
fn invalid_user_names_are_refused() {
    // A usage error (exit 2), not a conflict in the host's files (issue 19 item 15).
    let t = Tree::fixture("debian12");
    for name in ["Bad", "a:b", "../x", "default", "root", ""] {
        for cmd in ["enable", "plan"] {
            refused(&t, &[cmd, "--user", name], 2, "--user");
        }
    }
}

/// A dangling link where the run writes (a directory it writes in, or an account file) is
/// refused in preflight (exit 3, nothing changed), not found by the first write after others
/// were made (exit 5) (issue 19 item 15).
#[test]
fn a_dangling_link_where_the_run_writes_is_refused_before_any_write() {
    for rel in [
        "etc/docker",
        "var/lib/docker-userns",
        "var/lib",
        "etc/passwd",
        "etc/group",
    ] {
        for cmd in ["enable", "plan"] {
            let t = Tree::fixture("debian12");
            let at = t.path(rel);
            fs::create_dir_all(at.parent().unwrap()).unwrap();
            let _ = fs::remove_dir_all(&at);
            let _ = fs::remove_file(&at);
            std::os::unix::fs::symlink("/missing/target", &at).unwrap();
            let r = refused(&t, &[cmd], 3, "dangling symbolic link");
            assert!(r.stderr.contains(&format!("/{rel}")), "{rel}: {r:?}");
        }
    }
}

#[test]
fn a_named_user_gets_its_name_in_daemon_json() {
    let t = Tree::fixture("debian12");
    let p = ok(&t.run(&["enable", "--json", "--user", "remapper"]));
    assert_eq!(p["daemon_json"]["userns-remap"], "remapper");
    assert!(t.read("etc/subuid").contains("remapper:165536:65536"));
    assert_eq!(
        ok(&t.run(&["enable", "--json", "--user", "remapper"]))["changed"],
        false
    );
    refused(
        &t,
        &["enable"],
        3,
        "not user dockremap; pass --user remapper",
    );
}

#[test]
fn a_stale_lock_of_a_dead_process_is_cleared() {
    let t = Tree::fixture("debian12");
    t.write("etc/subuid.lock", "99999999");
    ok(&t.run(&["enable", "--json"]));
    assert!(!t.exists("etc/subuid.lock"));
}

#[test]
fn the_host_is_untouched_under_root() {
    let host_files = [
        "/etc/subuid",
        "/etc/subgid",
        "/etc/passwd",
        "/etc/group",
        "/etc/docker/daemon.json",
    ];
    let state = || host_files.map(|f| fs::read(f).ok());
    let before = state();
    let t = Tree::fixture("debian12");
    ok(&t.run(&["enable", "--json"]));
    ok(&t.run(&["disable", "--json"]));
    assert_eq!(before, state());
}

#[test]
fn check_reports_problems_with_lines() {
    let t = Tree::fixture("debian12");
    t.write(
        "etc/subuid",
        "alice:100000:65536\nbob:110000:100\n#x\nodd\ncarol:50:10\n",
    );
    t.write("etc/subgid", "alice:100000:65536\n");
    let r = t.run(&["check", "--json"]);
    assert_eq!(r.code, 3, "{r:?}");
    let doc = r.json();
    assert_eq!(doc["ok"], false);
    let found: Vec<(String, u64, String)> = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["file"].as_str().unwrap().into(),
                p["line"].as_u64().unwrap(),
                p["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("/etc/subuid".into(), 2, "overlap".into()),
            ("/etc/subuid".into(), 4, "malformed".into()),
            ("/etc/subuid".into(), 5, "out-of-bounds".into()),
            // carol:50:10 also lies in the ordinary accounts' ids (at or below UID_MAX).
            ("/etc/subuid".into(), 5, "covers-account".into())
        ]
    );
    let text = t.run(&["check"]);
    assert!(
        text.stdout.contains(
            "/etc/subuid:2: overlap: bob:110000:100 overlaps alice:100000:65536 on line 1"
        ),
        "{text:?}"
    );
    t.write("etc/subuid", "alice:100000:65536\n");
    let clean = t.run(&["check", "--json"]);
    assert_eq!(clean.code, 0);
    assert_eq!(clean.json()["problems"], json!([]));
}

#[test]
fn usage_errors_exit_2() {
    let r = common::run_cmd(std::process::Command::new(common::bin()).args([
        "--root",
        "/nonexistent/dir",
        "plan",
    ]));
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("/nonexistent/dir"));
    let r =
        common::run_cmd(std::process::Command::new(common::bin()).args(["enable", "--count", "0"]));
    assert_eq!(r.code, 2, "{r:?}");
    let r =
        common::run_cmd(std::process::Command::new(common::bin()).args(["--json", "frobnicate"]));
    assert_eq!(r.code, 2);
    assert_eq!(r.json()["error"]["kind"], "usage");
}

#[test]
fn changing_the_live_host_needs_root() {
    // As root (CI), drop to nobody for this run; as a normal user, run as is.
    let mut cmd = if unsafe_geteuid() == 0 {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(common::bin());
        c
    } else {
        std::process::Command::new(common::bin())
    };
    let r = common::run_cmd(cmd.args(["--json", "enable"]));
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("must run as root"), "{r:?}");
    assert_eq!(r.json()["error"]["kind"], "not-root");
}

fn unsafe_geteuid() -> u32 {
    fs::metadata("/proc/self").map(|m| m.uid()).unwrap()
}

fn run_with_failpoint(t: &Tree, point: &str, args: &[&str]) -> Run {
    common::run_cmd(
        std::process::Command::new(common::bin())
            .env("DOCKER_USERNS_FAILPOINTS", point)
            .arg("--root")
            .arg(t.dir.path())
            .args(args),
    )
}

#[test]
fn a_failure_after_writing_restores_the_files() {
    // Needs the debug binary (failpoints are compiled out of release builds).
    // One point after each kind of step the journal records under --root (user, file).
    for point in [
        "apply:after-user",
        "apply:after-subuid",
        "apply:before-daemon-json",
    ] {
        let t = Tree::fixture("debian12");
        t.write("etc/docker/daemon.json", "{\"debug\": true}\n");
        let files = ["etc/subuid", "etc/subgid", "etc/docker/daemon.json"];
        let before: Vec<String> = files.iter().map(|f| t.read(f)).collect();
        let r = run_with_failpoint(&t, point, &["--json", "enable"]);
        assert_eq!(r.code, 5, "{point}: {r:?}");
        assert_eq!(r.json()["error"]["kind"], "rolled-back");
        assert!(r.stderr.contains("failed, rolled back: restored"), "{r:?}");
        assert!(r.stderr.contains("injected failure"), "{r:?}");
        assert!(
            r.stderr
                .contains("user dockremap, created by this run, was kept"),
            "{r:?}"
        );
        let after: Vec<String> = files.iter().map(|f| t.read(f)).collect();
        assert_eq!(before, after, "{point}: files not restored");
        // The next run converges.
        assert_eq!(ok(&t.run(&["enable", "--json"]))["changed"], true);
    }
}

#[test]
fn an_untraversable_parent_of_the_data_root_is_refused() {
    let t = Tree::fixture("debian12");
    fs::create_dir_all(t.path("var/lib/docker")).unwrap();
    fs::set_permissions(
        t.path("var/lib"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    refused(
        &t,
        &["enable"],
        3,
        "/var/lib does not let other users traverse it",
    );
    // A data-root elsewhere is checked instead.
    t.write(
        "etc/docker/daemon.json",
        "{\"data-root\": \"/srv/docker\"}\n",
    );
    fs::create_dir_all(t.path("srv")).unwrap();
    ok(&t.run(&["plan", "--json"]));
}

#[test]
fn status_under_root_reads_the_files_only() {
    let t = Tree::fixture("debian12");
    let before = ok(&t.run(&["status", "--json"]));
    assert_eq!(before["remapping_configured"], serde_json::Value::Null);
    assert_eq!(before["service"], serde_json::Value::Null);
    ok(&t.run(&["enable", "--json"]));
    let after = ok(&t.run(&["status", "--json"]));
    assert_eq!(after["remapping_configured"], "default");
    assert_eq!(after["remap_user"], "dockremap");
    assert_eq!(after["subuid"], json!({"start": 165536, "count": 65536}));
    assert!(
        after["notes"]
            .to_string()
            .contains("--root: services and the engine are not inspected")
    );
    let text = t.run(&["status"]);
    assert!(
        text.stdout
            .contains("\"userns-remap\": \"default\" (user dockremap, group dockremap)"),
        "{text:?}"
    );
}

#[test]
fn every_command_json_matches_the_schema() {
    // Run::json() validates every document against schema/docker-userns.schema.json; this test
    // runs each command once, and checks the schema rejects a drifted document.
    let t = Tree::fixture("debian12");
    for args in [
        &["plan", "--json"][..],
        &["check", "--json"],
        &["status", "--json"],
        &["enable", "--json"],
        &["disable", "--json"],
        &["--json", "verify"],
        &["--json", "plan", "--user", "Bad"],
    ] {
        let r = t.run(args);
        r.json();
    }
    let mut doc = ok(&t.run(&["plan", "--json"]));
    doc["surprise"] = json!(1);
    assert!(
        !common::schema().is_valid(&doc),
        "additional fields must be rejected"
    );
    let mut doc = ok(&t.run(&["status", "--json"]));
    doc["remapping_active"] = json!("yes");
    assert!(
        !common::schema().is_valid(&doc),
        "wrong types must be rejected"
    );
}

#[test]
fn an_existing_range_overlapping_another_owner_is_refused() {
    // What dockerd 20.10 itself writes next to bob:110000:100.
    let t = Tree::fixture("debian12");
    t.write(
        "etc/passwd",
        &(t.read("etc/passwd") + "dockremap:x:101:102::/nonexistent:/bin/false\n"),
    );
    t.write("etc/subuid", "dockremap:100000:65536\nbob:110000:100\n");
    t.write("etc/subgid", "dockremap:100000:65536\n");
    refused(
        &t,
        &["enable"],
        3,
        "dockremap's existing range on line 1 overlaps bob's range on line 2",
    );
}

#[test]
fn a_config_file_flag_in_the_unit_is_refused() {
    let t = Tree::fixture("debian12");
    t.write(
        "etc/systemd/system/docker.service.d/conf.conf",
        "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd --config-file /etc/docker/custom.json\n",
    );
    refused(
        &t,
        &["enable"],
        3,
        "dockerd reads its configuration from /etc/docker/custom.json",
    );
    t.write(
        "etc/systemd/system/docker.service.d/conf.conf",
        "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd --config-file=/etc/docker/daemon.json\n",
    );
    ok(&t.run(&["plan", "--json"]));
}

/// What dockerd 28 leaves next to a regular user: dockremap (made by dockerd) with alice's
/// very range, and "userns-remap": "default".
fn docker28_overlap(t: &Tree) {
    t.write(
        "etc/passwd",
        &(t.read("etc/passwd") + "dockremap:x:103:104::/nonexistent:/usr/sbin/nologin\n"),
    );
    t.write("etc/group", &(t.read("etc/group") + "dockremap:x:104:\n"));
    for f in ["etc/subuid", "etc/subgid"] {
        t.write(f, "alice:100000:65536\ndockremap:100000:65536\n");
    }
    t.write(
        "etc/docker/daemon.json",
        "{\"userns-remap\": \"default\"}\n",
    );
}

#[test]
fn status_names_the_overlap_dockerd_28_makes_and_the_command_that_fixes_it() {
    let t = Tree::fixture("debian12");
    docker28_overlap(&t);
    let st = ok(&t.run(&["status", "--json"]));
    let problems = st["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{st}");
    for (p, file) in problems.iter().zip(["subuid", "subgid"]) {
        assert_eq!(p["kind"], "remap-range-overlap");
        let msg = p["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!("etc/{file}:2"))
                && msg.contains("overlaps alice:100000:65536 (line 1)"),
            "{msg}"
        );
        assert!(
            p["fix"]
                .as_str()
                .unwrap()
                .starts_with("docker-userns enable --repair --yes")
        );
    }
    let text = t.run(&["status"]);
    assert!(
        text.stdout.contains("PROBLEM") && text.stdout.contains("with 2 problem(s)"),
        "{text:?}"
    );
    // A clean host has none.
    let clean = Tree::fixture("debian12");
    assert_eq!(ok(&clean.run(&["status", "--json"]))["problems"], json!([]));
}

#[test]
fn the_overlap_is_refused_with_what_repair_would_do_and_repair_moves_the_range() {
    let t = Tree::fixture("debian12");
    docker28_overlap(&t);
    let r = refused(&t, &["plan"], 3, "overlaps alice's range");
    assert!(
        r.stderr
            .contains("--repair moves the range to 165536:65536"),
        "{r:?}"
    );
    let p = ok(&t.run(&["plan", "--repair", "--json"]));
    assert_eq!(p["subuid"]["moved_from"], 100000);
    assert_eq!(range(&p, "subuid"), (165536, 65536, true));
    assert_eq!(p["repair"]["from"], "/var/lib/docker/100000.100000");
    assert_eq!(p["repair"]["to"], "/var/lib/docker/165536.165536");

    // A remapped data root in the tree needs docker stopped and gated: not under --root.
    fs::create_dir_all(t.path("var/lib/docker/100000.100000/volumes")).unwrap();
    let r = refused(&t, &["enable", "--repair"], 3, "run it on the live host");
    assert!(r.stderr.contains("100000.100000"), "{r:?}");
    let r = refused(&t, &["plan"], 3, "shifts the owners of its 2 inodes");
    assert!(r.stderr.contains("165536.165536"), "{r:?}");

    // Without one, only the files change: the user's line is replaced, alice's kept.
    fs::remove_dir_all(t.path("var/lib/docker")).unwrap();
    let done = ok(&t.run(&["enable", "--repair", "--json"]));
    assert_eq!(done["changed"], true);
    for f in ["etc/subuid", "etc/subgid"] {
        assert_eq!(t.read(f), "alice:100000:65536\ndockremap:165536:65536\n");
    }
    assert_eq!(ok(&t.run(&["check", "--json"]))["ok"], true);
    assert_eq!(ok(&t.run(&["status", "--json"]))["problems"], json!([]));
}

#[test]
fn start_puts_the_range_exactly_there_or_names_who_is_in_the_way() {
    let t = Tree::fixture("debian12");
    refused(
        &t,
        &["enable", "--start", "120000"],
        3,
        "overlaps alice:100000:65536 on line 1",
    );
    refused(&t, &["plan", "--start", "1000"], 3, "--start 1000");
    let done = ok(&t.run(&["enable", "--start", "500000", "--json"]));
    assert_eq!(range(&done, "subuid"), (500000, 65536, true));
    assert_eq!(range(&done, "subgid"), (500000, 65536, true));
    // Idempotent at that start; another start moves it only with --repair.
    assert_eq!(
        ok(&t.run(&["enable", "--start", "500000", "--json"]))["changed"],
        false
    );
    refused(
        &t,
        &["enable", "--start", "700000"],
        3,
        "needs --repair as well",
    );
    // The text says the range moves, from where to where, not that one is added (issue 19
    // item 16).
    let plan = t.run(&["plan", "--start", "700000", "--repair"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    for f in ["/etc/subuid", "/etc/subgid"] {
        assert!(
            plan.stdout.contains(&format!(
                "move dockremap's range in {f} from 500000 to 700000:65536"
            )),
            "{plan:?}"
        );
    }
    assert!(!plan.stdout.contains("add dockremap"), "{plan:?}");
    let moved = t.run(&["enable", "--start", "700000", "--repair"]);
    assert_eq!(moved.code, 0, "{moved:?}");
    assert!(
        moved
            .stdout
            .contains("moved dockremap's range in /etc/subuid from 500000 to 700000:65536")
            && !moved.stdout.contains("added dockremap"),
        "{moved:?}"
    );
    // (The same run again changes nothing; the JSON says where it came from.)
    let t2 = Tree::fixture("debian12");
    ok(&t2.run(&["enable", "--start", "500000", "--json"]));
    let moved = ok(&t2.run(&["enable", "--start", "700000", "--repair", "--json"]));
    assert_eq!(moved["subuid"]["moved_from"], 500000);
    assert_eq!(
        t.read("etc/subuid"),
        "alice:100000:65536\ndockremap:700000:65536\n"
    );
}

#[test]
fn docker_29_features_that_break_remapping_are_refused() {
    let t = Tree::fixture("debian12");
    t.write(
        "etc/docker/daemon.json",
        "{\n  \"features\": {\"containerd-snapshotter\": true}\n}\n",
    );
    let r = refused(
        &t,
        &["enable"],
        3,
        "containerd-snapshotter is explicitly enabled, but is not compatible with userns remapping",
    );
    assert!(r.stderr.contains("/etc/docker/daemon.json"), "{r:?}");
    t.write(
        "etc/docker/daemon.json",
        "{\"features\": {\"containerd-migration\": true}}\n",
    );
    refused(&t, &["plan"], 3, "containerd-migration");
    // Off is fine.
    t.write(
        "etc/docker/daemon.json",
        "{\"features\": {\"containerd-snapshotter\": false}}\n",
    );
    ok(&t.run(&["enable", "--json"]));
}
