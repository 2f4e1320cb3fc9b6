//! Helper programs, unit-file scanning, the Engine API client's input handling and the CLI's
//! messages, through the binary (`--root` on fixture trees; run as root, as CI does).

mod common;

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{Run, Tree};

fn euid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").map(|m| m.uid()).unwrap()
}

/// The binary with `args`, `PATH` put first as given.
fn run_with_path(path_first: &std::path::Path, args: &[&str]) -> Run {
    let path = format!(
        "{}:{}",
        path_first.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    common::run_cmd(Command::new(common::bin()).env("PATH", path).args(args))
}

#[test]
fn a_fake_useradd_first_on_path_is_not_run() {
    assert_eq!(
        euid(),
        0,
        "this test creates a user with useradd: run it as root"
    );
    let evil = tempfile::tempdir().unwrap();
    let marker = evil.path().join("ran");
    let fake = evil.path().join("useradd");
    fs::write(
        &fake,
        format!("#!/bin/sh\ntouch '{}'\nexit 0\n", marker.display()),
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let t = Tree::fixture("debian12");
    let root = t.dir.path().to_str().unwrap().to_string();
    let r = run_with_path(
        evil.path(),
        &["--root", &root, "--json", "enable", "--no-restart"],
    );
    assert!(
        !marker.exists(),
        "the fake useradd on the caller's PATH ran: {r:?}"
    );
    assert_eq!(r.code, 0, "{r:?}");
    let doc = r.json();
    assert_eq!(doc["user"]["create"], true, "{doc:#}");
    // The real useradd created it in the tree.
    assert!(t.read("etc/passwd").contains("\ndockremap:"), "{r:?}");
}

#[test]
fn a_remap_flag_in_a_dropin_counts_before_docker_is_installed() {
    let t = Tree::fixture("debian12");
    // docker not installed yet: no unit file anywhere.
    fs::remove_file(t.path("lib/systemd/system/docker.service")).unwrap();
    t.write(
        "etc/systemd/system/docker.service.d/override.conf",
        // A flag naming another user than --user (one naming the same user is kept: issue 24).
        "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// --userns-remap=remapper\n",
    );
    let before = t.snapshot();
    let r = t.run(&["--json", "enable"]);
    assert_eq!(r.code, 3, "{r:?}");
    let doc = r.json();
    let msg = doc["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("/etc/systemd/system/docker.service.d/override.conf:3"),
        "{msg}"
    );
    assert_eq!(before, t.snapshot(), "the tree changed although refused");
    // The same drop-in without the flag is no conflict.
    t.write(
        "etc/systemd/system/docker.service.d/override.conf",
        "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd://\n",
    );
    assert_eq!(t.run(&["--json", "plan"]).code, 0);
}

/// `verify --image` with an empty or malformed reference (a space, upper case, an empty tag)
/// is a usage error (exit 2) before the engine is asked, never a panic or an HTTP 301 from the
/// Engine API (issue 19 item 15). The unit tests
/// `engine::tests::a_bad_path_is_an_error_not_a_panic_and_nothing_is_sent` and
/// `verify::tests::a_requested_image_name_is_percent_encoded_not_a_panic` cover the client.
#[test]
fn verify_with_an_invalid_image_reference_is_a_usage_error() {
    for image in ["", "a b", "Busybox", "busybox:", "a/../b"] {
        let r = common::run_cmd(
            Command::new(common::bin()).args(["--json", "verify", "--image", image]),
        );
        assert_eq!(r.code, 2, "{image:?}: {r:?}");
        assert!(!r.stderr.contains("panicked"), "{r:?}");
        let doc = r.json();
        assert_eq!(doc["error"]["kind"], "usage", "{doc:#}");
        let msg = doc["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("--image") && msg.contains("is not an image reference"),
            "{image:?}: {msg}"
        );
    }
}

/// Arguments that are not UTF-8 are a usage error naming the argument (exit 2; with --json
/// one JSON document), not a panic (exit 101) (issue 19 item 15).
#[test]
fn a_non_utf8_argument_is_a_usage_error_not_a_panic() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let bad = OsStr::from_bytes(b"x\xff");
    for args in [
        vec![
            OsStr::new("--json"),
            OsStr::new("plan"),
            OsStr::new("--user"),
            bad,
        ],
        vec![OsStr::new("--json"), OsStr::new("status"), bad],
        vec![OsStr::new("--json"), bad],
    ] {
        let r = common::run_cmd(Command::new(common::bin()).args(&args));
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(!r.stderr.contains("panicked"), "{r:?}");
        let doc = r.json();
        assert_eq!(doc["error"]["code"], 2, "{doc:#}");
        assert_eq!(doc["error"]["kind"], "usage", "{doc:#}");
    }
    let r = common::run_cmd(Command::new(common::bin()).args([
        OsStr::new("plan"),
        OsStr::new("--user"),
        bad,
    ]));
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("argument 3") && r.stderr.contains("not valid UTF-8"),
        "{r:?}"
    );
}

fn bin_run(args: &[&str]) -> Run {
    common::run_cmd(Command::new(common::bin()).args(args))
}

#[test]
fn json_usage_errors_name_the_argument_and_value() {
    let r = bin_run(&["--json", "enable", "--count", "0"]);
    assert_eq!(r.code, 2, "{r:?}");
    let doc = r.json();
    let msg = doc["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("--count") && msg.contains("'0'") && !msg.contains('\u{1b}'),
        "{msg}"
    );
    let r = bin_run(&["--json", "plan", "--user"]);
    assert_eq!(r.code, 2, "{r:?}");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("--user"), "{msg}");
    // clap's text still goes to stderr.
    assert!(r.stderr.contains("--user"), "{r:?}");
}

#[test]
fn help_and_version_with_json_are_one_json_document() {
    for args in [
        &["--json", "--help"][..],
        &["--help", "--json"],
        &["--json", "help"],
    ] {
        let r = bin_run(args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        let doc = r.json();
        assert_eq!(doc["command"], "");
        let help = doc["help"].as_str().unwrap();
        assert!(help.contains("Usage: docker-userns"), "{help}");
        assert!(!help.contains('\u{1b}'));
    }
    let r = bin_run(&["--version", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["version"], env!("CARGO_PKG_VERSION"));
    // Without --json: text, as before.
    let r = bin_run(&["--version"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("docker-userns "), "{r:?}");
}

#[test]
fn status_reads_a_symlinked_daemon_json_and_says_so() {
    let t = Tree::fixture("debian12");
    t.write("srv/daemon.json", "{\"userns-remap\": \"default\"}\n");
    fs::create_dir_all(t.path("etc/docker")).unwrap();
    std::os::unix::fs::symlink("/srv/daemon.json", t.path("etc/docker/daemon.json")).unwrap();
    let before = t.snapshot();
    let r = t.run(&["--json", "status"]);
    assert_eq!(r.code, 0, "{r:?}");
    let doc = r.json();
    assert_eq!(doc["remapping_configured"], "default", "{doc:#}");
    let notes = doc["notes"].to_string();
    assert!(
        notes.contains("is a symbolic link (to /srv/daemon.json)") && notes.contains("refuse"),
        "{notes}"
    );
    assert_eq!(before, t.snapshot(), "status changed the tree");
    // A relative link to a missing target: still exit 0, with a note.
    fs::remove_file(t.path("etc/docker/daemon.json")).unwrap();
    std::os::unix::fs::symlink("gone.json", t.path("etc/docker/daemon.json")).unwrap();
    let r = t.run(&["--json", "status"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.json()["notes"].to_string().contains("does not exist"),
        "{r:?}"
    );
}

#[test]
fn a_prometheus_file_that_is_not_a_regular_file_is_a_typed_refusal() {
    // A fifo where the metrics go: refused (exit 3) before anything is gathered, with its kind.
    let out = tempfile::tempdir().unwrap();
    let fifo = out.path().join("docker_userns.prom");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let r = common::run_cmd(Command::new(common::bin()).args([
        "--json",
        "status",
        "--prometheus",
        fifo.to_str().unwrap(),
    ]));
    assert_eq!(r.code, 3, "{r:?}");
    let doc = r.json();
    assert_eq!(
        doc["error"]["refusal"]["kind"], "prometheus-path-not-file",
        "{doc:#}"
    );
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}

#[test]
fn prometheus_file_is_refused_with_root_relative_or_without_its_directory() {
    // Each refusal is a usage error (exit 2) before anything is gathered, and writes nothing.
    let t = Tree::fixture("debian12");
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("docker_userns.prom");
    let file = file.to_str().unwrap();
    let r = t.run(&["--json", "status", "--prometheus", file]);
    assert_eq!(r.code, 2, "{r:?}");
    let doc = r.json();
    assert_eq!(doc["error"]["kind"], "usage", "{doc:#}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be used with --root"),
        "{doc:#}"
    );
    let missing_dir = out.path().join("textfile/docker_userns.prom");
    for (args, says) in [
        (
            vec!["status", "--prometheus", "docker_userns.prom"],
            "must be an absolute path",
        ),
        (
            vec!["status", "--prometheus", missing_dir.to_str().unwrap()],
            "does not exist",
        ),
        (
            vec!["status", "--prometheus", out.path().to_str().unwrap()],
            "a directory, not a file",
        ),
    ] {
        let r = common::run_cmd(Command::new(common::bin()).args(&args));
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains(says), "{args:?}: {r:?}");
    }
    assert_eq!(
        fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

/// `status --prometheus` replaces only a regular file (or a missing one) whose name ends in
/// `.prom`: a device, a system file, a symlink (to /etc/passwd), a directory or a fifo named
/// `x.prom` is refused and left exactly as it was (issue 19 item 2).
#[test]
fn prometheus_replaces_only_a_regular_or_missing_prom_file() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let out = tempfile::tempdir().unwrap();
    let p = |n: &str| out.path().join(n);
    // Not a .prom name: refused before anything is looked at (usage, exit 2).
    for file in ["/dev/null", "/etc/subuid", "/etc/passwd"] {
        let before = fs::symlink_metadata(file)
            .ok()
            .map(|m| (m.ino(), m.mode(), m.len()));
        let content = fs::read(file).ok();
        let r = bin_run(&["--json", "status", "--prometheus", file]);
        assert_eq!(r.code, 2, "{file}: {r:?}");
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains(".prom") && msg.contains(file), "{file}: {msg}");
        let after = fs::symlink_metadata(file)
            .ok()
            .map(|m| (m.ino(), m.mode(), m.len()));
        assert_eq!(before, after, "{file} was replaced");
        assert_eq!(content, fs::read(file).ok(), "{file} changed");
    }
    assert!(
        fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    // Named x.prom but not a regular file: refused (conflict, exit 3), untouched.
    std::os::unix::fs::symlink("/etc/passwd", p("link.prom")).unwrap();
    fs::create_dir(p("dir.prom")).unwrap();
    let fifo = p("fifo.prom");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let passwd = fs::read("/etc/passwd").unwrap();
    // (A directory is a usage error, exit 2, as it was before.)
    for (name, says, code) in [
        ("link.prom", "symbolic link", 3),
        ("dir.prom", "directory", 2),
        ("fifo.prom", "fifo", 3),
    ] {
        let file = p(name);
        let before = fs::symlink_metadata(&file).unwrap();
        let r = bin_run(&["--json", "status", "--prometheus", file.to_str().unwrap()]);
        assert_eq!(r.code, code, "{name}: {r:?}");
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains(says) && msg.contains(name), "{name}: {msg}");
        let after = fs::symlink_metadata(&file).unwrap();
        assert_eq!(
            (before.ino(), before.mode()),
            (after.ino(), after.mode()),
            "{name} was replaced"
        );
    }
    assert_eq!(
        fs::read("/etc/passwd").unwrap(),
        passwd,
        "/etc/passwd changed"
    );
    assert_eq!(
        fs::read_link(p("link.prom")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(fs::read_dir(p("dir.prom")).unwrap().count(), 0);
    // A new file and an existing regular one: written.
    fs::write(p("old.prom"), "stale\n").unwrap();
    for name in ["new.prom", "old.prom"] {
        let file = p(name);
        let r = bin_run(&["status", "--prometheus", file.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{name}: {r:?}");
        let text = fs::read_to_string(&file).unwrap();
        assert!(
            text.contains("docker_userns_unfinished_run ") && !text.contains("stale"),
            "{name}: {text}"
        );
        assert!(fs::symlink_metadata(&file).unwrap().file_type().is_file());
    }
}

/// A corrupt run record is a problem in the text, the JSON and the Prometheus gauges (kind
/// `journal`), naming the file and what to do, not "no unfinished run" (issue 19 item 13).
/// Under `--root` (the journal lives under the root); the gauges from the JSON are rendered by
/// the same function `--prometheus` uses.
#[test]
fn a_corrupt_journal_is_a_problem_in_status() {
    let t = Tree::fixture("debian12");
    t.write("var/lib/docker-userns/transaction.json", "{garbage");
    let before = t.snapshot();
    let r = t.run(&["--json", "status"]);
    assert_eq!(r.code, 0, "{r:?}");
    let doc = r.json();
    let problems = doc["problems"].as_array().unwrap();
    let p = problems
        .iter()
        .find(|p| p["kind"] == "journal")
        .unwrap_or_else(|| panic!("no journal problem: {doc:#}"));
    let msg = p["message"].as_str().unwrap();
    assert!(
        msg.contains("/var/lib/docker-userns/transaction.json") && msg.contains("cannot be read"),
        "{msg}"
    );
    assert!(p["fix"].as_str().unwrap().contains("remove"), "{p}");
    // The gauge counts these entries (prometheus::tests::a_journal_problem_is_counted).
    assert_eq!(
        problems.iter().filter(|p| p["kind"] == "journal").count(),
        1
    );
    let r = t.run(&["status"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("PROBLEM") && r.stdout.contains("transaction.json"),
        "{r:?}"
    );
    assert_eq!(before, t.snapshot(), "status changed the tree");
}

/// `DOCKER_HOST`, `DOCKER_CONTEXT` or a current docker context in the CLI's config name
/// another engine; the tool acts on this host's dockerd and says so on stderr (stdout stays
/// one JSON document with --json) (issue 19 item 16). Not under --root (no engine there).
#[test]
fn another_engine_named_for_the_docker_cli_is_noted_as_not_used() {
    let home = tempfile::tempdir().unwrap();
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = Command::new(common::bin());
        cmd.env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_CONFIG")
            .env("HOME", home.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        common::run_cmd(cmd.args(args))
    };
    let plain = run(&[], &["--json", "check"]);
    assert!(!plain.stderr.contains("note:"), "{plain:?}");
    let r = run(
        &[("DOCKER_HOST", "tcp://192.0.2.7:2376")],
        &["--json", "check"],
    );
    assert_eq!(r.code, plain.code, "{r:?}");
    r.json();
    assert!(
        r.stderr.contains("DOCKER_HOST=tcp://192.0.2.7:2376 is set")
            && r.stderr.contains("this host's dockerd"),
        "{r:?}"
    );
    let r = run(&[("DOCKER_CONTEXT", "prod")], &["check"]);
    assert!(r.stderr.contains("DOCKER_CONTEXT=prod"), "{r:?}");
    fs::create_dir(home.path().join(".docker")).unwrap();
    fs::write(
        home.path().join(".docker/config.json"),
        r#"{"auths": {}, "currentContext": "remote-builder"}"#,
    )
    .unwrap();
    let r = run(&[], &["check"]);
    assert!(
        r.stderr.contains("docker context \"remote-builder\""),
        "{r:?}"
    );
    // Under --root the tree is worked on, no engine: no note.
    let t = Tree::fixture("debian12");
    let r = run(
        &[("DOCKER_HOST", "tcp://192.0.2.7:2376")],
        &["--root", t.dir.path().to_str().unwrap(), "check"],
    );
    assert!(!r.stderr.contains("DOCKER_HOST"), "{r:?}");
}
