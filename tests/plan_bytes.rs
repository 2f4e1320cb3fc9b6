//! `plan --json` carries its bytes: for each file the run would write, `files[].after` is
//! exactly what `enable` (or `disable`, for `plan --disable`) then writes, and `before` what
//! the file held; the list names every file the run writes (besides useradd's account files
//! and the run's own record). Refusals carry a typed `error.refusal`. All under `--root`.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::Tree;
use serde_json::Value;

/// Decodes standard base64 (the tool's `encoding: base64`).
fn unbase64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::new();
    for chunk in s.as_bytes().chunks(4) {
        let digits: Vec<u8> = chunk
            .iter()
            .filter(|c| **c != b'=')
            .map(|c| val(*c))
            .collect();
        let n = digits
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | u32::from(*d) << (18 - 6 * i));
        for i in 0..digits.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// A content field of a `files` entry, as bytes.
fn content(f: &Value, field: &str) -> Option<Vec<u8>> {
    let s = f[field].as_str()?;
    Some(match f["encoding"].as_str().unwrap() {
        "utf-8" => s.as_bytes().to_vec(),
        "base64" => unbase64(s),
        e => panic!("encoding {e}"),
    })
}

/// Files a run may write that `files` does not list: useradd's account files, the run's
/// record and the backups `files[].backup` names.
fn unlisted(rel: &str) -> bool {
    // With shadow's own backups (passwd-, ...) and lock files.
    [
        "etc/passwd",
        "etc/group",
        "etc/shadow",
        "etc/gshadow",
        "etc/.pwd.lock",
        "var/lib/docker-userns",
    ]
    .iter()
    .any(|p| rel.starts_with(p))
}

/// Runs `plan --json PLAN_ARGS`, then the command `RUN_ARGS`, and asserts: every file the
/// plan lists now holds exactly its `after`, its `before` was the content before, its backup
/// holds the old content, and no other file changed (but those of `unlisted`). Returns the
/// plan's `files`.
fn plan_then_run(t: &Tree, plan_args: &[&str], run_args: &[&str]) -> Vec<Value> {
    let snap = t.snapshot();
    let mut args = vec!["--json", "plan"];
    args.extend_from_slice(plan_args);
    let r = t.run(&args);
    assert_eq!(r.code, 0, "{r:?}");
    let plan = r.json();
    assert_eq!(snap, t.snapshot(), "plan wrote something");
    let files = plan["files"].as_array().expect("plan lists files").clone();
    for f in &files {
        let path = f["path"].as_str().unwrap();
        let now = std::fs::read(t.path(path)).ok();
        assert_eq!(
            now,
            content(f, "before"),
            "{path}: before is not the content now"
        );
        assert_eq!(
            f["change"],
            if now.is_some() { "update" } else { "create" },
            "{f}"
        );
    }
    let r = t.run(run_args);
    assert_eq!(r.code, 0, "{r:?}");
    let listed: BTreeSet<PathBuf> = files
        .iter()
        .flat_map(|f| [f["path"].as_str(), f["backup"].as_str()])
        .flatten()
        .map(|p| PathBuf::from(p.trim_start_matches('/')))
        .collect();
    for f in &files {
        let path = f["path"].as_str().unwrap();
        let written = std::fs::read(t.path(path)).unwrap();
        let after = content(f, "after").unwrap();
        assert!(
            written == after,
            "{path}: `{}` wrote\n{:?}\nbut plan showed\n{:?}",
            run_args.join(" "),
            String::from_utf8_lossy(&written),
            String::from_utf8_lossy(&after)
        );
        if let Some(backup) = f["backup"].as_str() {
            assert_eq!(
                Some(std::fs::read(t.path(backup)).unwrap()),
                content(f, "before"),
                "{backup}"
            );
        }
    }
    // Nothing else was written.
    let now = t.snapshot();
    for (rel, (bytes, mode, ..)) in &now {
        let changed = snap
            .get(rel)
            .is_none_or(|(b, m, ..)| b != bytes || m != mode);
        let r = rel.to_string_lossy();
        if changed && !unlisted(&r) && !rel.as_os_str().is_empty() {
            let is_dir = t.path(&r).is_dir();
            assert!(
                is_dir || listed.contains(rel),
                "{r} changed, but plan's files do not list it: {files:?}"
            );
        }
    }
    files
}

/// The files the brief names: a numeric-uid owner line without a final newline, a
/// daemon.json with `1e3`, `1.50`, unicode escapes, tab indentation and no final newline.
fn odd_inputs() -> Tree {
    let t = Tree::fixture("debian12");
    std::fs::write(t.path("/etc/subuid"), "1000:100000:65536").unwrap();
    t.write("/etc/subgid", "# ranges\nalice:100000:65536\n\n");
    t.write(
        "/etc/docker/daemon.json",
        "{\n\t\"log-opts\": {\"max-size\": \"10m\", \"n\": 1e3},\n\t\"ratio\": 1.50,\n\t\"label\": \"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\"\",\n\t\"big\": 12345678901234567890123\n}",
    );
    t
}

#[test]
fn plan_shows_the_bytes_enable_writes_for_odd_inputs() {
    let t = odd_inputs();
    let files = plan_then_run(&t, &[], &["enable"]);
    let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        ["/etc/subuid", "/etc/subgid", "/etc/docker/daemon.json"]
    );
    // The numeric owner (alice's uid) counts: the new range is after it.
    assert_eq!(
        files[0]["after"],
        "1000:100000:65536\ndockremap:165536:65536\n"
    );
    assert_eq!(files[0]["backup"], "/etc/subuid-");
    // Numbers as written (serde_json's arbitrary precision), tabs kept.
    let after = files[2]["after"].as_str().unwrap();
    assert!(after.contains("\t\"ratio\": 1.50,\n"), "{after}");
    assert!(after.contains("12345678901234567890123"), "{after}");
    assert!(
        after.ends_with("\t\"userns-remap\": \"default\"\n}\n"),
        "{after}"
    );
    // Converged: plan lists nothing.
    let r = t.run(&["--json", "plan"]);
    assert_eq!(r.json()["files"], serde_json::json!([]));
}

#[test]
fn plan_disable_shows_the_bytes_disable_writes() {
    let t = odd_inputs();
    assert_eq!(t.run(&["enable"]).code, 0);
    let files = plan_then_run(&t, &["--disable"], &["disable"]);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0]["path"], "/etc/docker/daemon.json");
    assert!(
        !files[0]["after"].as_str().unwrap().contains("userns-remap"),
        "{files:?}"
    );
    // Already disabled: nothing to write.
    let r = t.run(&["--json", "plan", "--disable"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["files"], serde_json::json!([]));
    // --disable takes no enable options.
    assert_eq!(t.run(&["plan", "--disable", "--count", "70000"]).code, 2);
}

#[test]
fn a_range_under_the_users_numeric_uid_is_moved_by_repair_as_plan_shows() {
    // dockremap (uid 999) owns, by uid, alice's range: --repair moves it; the numeric line is
    // the one replaced.
    let t = Tree::fixture("debian12");
    let passwd = t.read("/etc/passwd") + "dockremap:x:999:999::/nonexistent:/usr/sbin/nologin\n";
    t.write("/etc/passwd", &passwd);
    let group = t.read("/etc/group") + "dockremap:x:999:\n";
    t.write("/etc/group", &group);
    t.write("/etc/subuid", "alice:100000:65536\n999:100000:65536\n");
    t.write("/etc/subgid", "alice:100000:65536\n999:100000:65536\n");
    let files = plan_then_run(&t, &["--repair"], &["enable", "--repair"]);
    assert_eq!(
        files[0]["after"],
        "alice:100000:65536\ndockremap:165536:65536\n"
    );
}

#[test]
fn bytes_that_are_not_utf8_are_shown_in_base64() {
    let t = Tree::fixture("debian12");
    // A comment in Latin-1: shadow's tools keep it, and so does the writer.
    std::fs::write(
        t.path("/etc/subuid"),
        b"# caf\xe9\nalice:100000:65536\n".as_slice(),
    )
    .unwrap();
    let files = plan_then_run(&t, &[], &["enable"]);
    assert_eq!(files[0]["path"], "/etc/subuid");
    assert_eq!(files[0]["encoding"], "base64");
    assert_eq!(files[1]["encoding"], "utf-8");
}

#[test]
fn refusals_are_typed_in_json() {
    let cases: [(&str, &str, &str, &str, Option<u64>); 4] = [
        (
            "/etc/login.defs",
            "UID_MIN 1000\nSUB_UID_MIN many\n",
            "login-defs-invalid",
            "/etc/login.defs",
            Some(2),
        ),
        (
            "/etc/subuid",
            "alice:100000:65536\nbob:x:1\n",
            "subid-malformed",
            "/etc/subuid",
            Some(2),
        ),
        (
            "/etc/docker/daemon.json",
            "{\n  \"debug\": true,\n  oops\n}\n",
            "daemon-json-invalid",
            "/etc/docker/daemon.json",
            Some(3),
        ),
        (
            "/etc/docker/daemon.json",
            "{\"userns-remap\": \"bob\"}\n",
            "remap-value-conflict",
            "/etc/docker/daemon.json",
            Some(1),
        ),
    ];
    for (file, text, kind, path, line) in cases {
        let t = Tree::fixture("debian12");
        t.write(file, text);
        let before = t.snapshot();
        for cmd in ["plan", "enable"] {
            let r = t.run(&["--json", cmd]);
            assert_eq!(r.code, 3, "{r:?}");
            let doc = r.json();
            let refusal = &doc["error"]["refusal"];
            assert_eq!(refusal["kind"], kind, "{doc}");
            assert_eq!(refusal["path"], path, "{doc}");
            assert_eq!(refusal["line"].as_u64(), line, "{doc}");
            assert_eq!(refusal["message"], doc["error"]["message"], "{doc}");
            assert_eq!(before, t.snapshot());
        }
    }
    // Errors other than refusals carry none.
    let t = Tree::fixture("debian12");
    let r = t.run(&["--json", "verify"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.json()["error"].get("refusal").is_none());
}

#[test]
fn the_line_repair_renames_is_shown_as_written() {
    // dockerd needs remapu's line in /etc/subgid (value remapu:remapg); the range sits under
    // the group's name, on a last line without a final newline: --repair renames its owner.
    let t = Tree::fixture("debian12");
    let passwd = t.read("/etc/passwd") + "remapu:x:998:998::/nonexistent:/usr/sbin/nologin\n";
    t.write("/etc/passwd", &passwd);
    let group = t.read("/etc/group") + "remapu:x:998:\nremapg:x:997:\n";
    t.write("/etc/group", &group);
    t.write("/etc/subuid", "alice:100000:65536\nremapu:200000:65536\n");
    t.write("/etc/subgid", "alice:100000:65536\nremapg:200000:65536");
    t.write(
        "/etc/docker/daemon.json",
        "{\n  \"log-level\": \"info\",\n  \"userns-remap\": \"remapu:remapg\"\n}\n",
    );
    // Without --repair: refused, typed, naming the line in the way.
    let r = t.run(&["--json", "plan", "--user", "remapu"]);
    assert_eq!(r.code, 3, "{r:?}");
    let refusal = r.json()["error"]["refusal"].clone();
    assert_eq!(refusal["kind"], "subid-stand-in-owner", "{refusal}");
    assert_eq!(refusal["path"], "/etc/subgid", "{refusal}");
    assert_eq!(refusal["line"], 2, "{refusal}");
    let files = plan_then_run(
        &t,
        &["--repair", "--user", "remapu"],
        &["enable", "--repair", "--user", "remapu"],
    );
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0]["path"], "/etc/subgid");
    assert_eq!(files[0]["after"], "alice:100000:65536\nremapu:200000:65536");
}
