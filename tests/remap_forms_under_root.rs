//! Every `userns-remap` value form (issue 24) on fixture trees under `--root`: `--user`
//! matching a value of any form, what dockerd will reject or misuse (`check`), the refusal
//! that names the line dockerd needs and the line in the way, and `enable --repair` renaming
//! that line, with the exact bytes of /etc/subuid and /etc/subgid after.

mod common;

use common::{Run, Tree};
use serde_json::Value;

/// The issue's host: system user remapu (uid 998, own group 998), group remapg (997).
fn issue_host(value: &str, subuid: &str, subgid: &str) -> Tree {
    let t = Tree::fixture("debian12");
    t.write(
        "etc/passwd",
        &(t.read("etc/passwd") + "remapu:x:998:998::/nonexistent:/usr/sbin/nologin\n"),
    );
    t.write(
        "etc/group",
        &(t.read("etc/group") + "remapu:x:998:\nremapg:x:997:\n"),
    );
    t.write("etc/subuid", subuid);
    t.write("etc/subgid", subgid);
    if !value.is_empty() {
        t.write(
            "etc/docker/daemon.json",
            &format!("{{\n  \"log-level\": \"info\",\n  \"userns-remap\": {value:?}\n}}\n"),
        );
    }
    t
}

fn ok(r: &Run) -> Value {
    assert_eq!(r.code, 0, "{r:?}");
    r.json()
}

/// Exit 3 naming every needle, in the JSON error too, and nothing changed.
fn refused(t: &Tree, args: &[&str], needles: &[&str]) -> String {
    let before = t.snapshot();
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let r = t.run(&full);
    assert_eq!(r.code, 3, "{r:?}");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    for n in needles {
        assert!(msg.contains(n), "error lacks {n:?}: {msg}");
        assert!(r.stderr.contains(n), "stderr lacks {n:?}: {r:?}");
    }
    assert_eq!(before, t.snapshot(), "a refused command changed the tree");
    msg
}

fn kinds(check: &Value) -> Vec<(String, u64, String)> {
    check["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["file"].as_str().unwrap().to_string(),
                p["line"].as_u64().unwrap(),
                p["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_issue_host_is_reported_refused_with_both_lines_and_repaired_by_renaming_the_line() {
    let t = issue_host(
        "remapu:remapg",
        "alice:100000:65536\nremapu:200000:65536\n",
        "alice:100000:65536\nremapg:200000:65536\n",
    );
    // check names the file and line, and what dockerd needs.
    let r = t.run(&["--json", "check"]);
    assert_eq!(r.code, 3, "{r:?}");
    let c = r.json();
    assert_eq!(
        kinds(&c),
        [(
            "/etc/subgid".to_string(),
            2,
            "remap-range-under-other-name".to_string()
        )]
    );
    let text = t.run(&["check"]).stdout;
    assert!(
        text.contains("/etc/subgid:2: remap-range-under-other-name")
            && text.contains("needs `remapu:200000:65536`"),
        "{text}"
    );

    // Without --user: the value is remapu's, and the advice says so.
    refused(
        &t,
        &["plan"],
        &[
            "resolves to user remapu (uid 998) and group remapg (gid 997), not user dockremap",
            "pass --user remapu",
        ],
    );
    // With --user remapu: no longer "which is not user remapu"; the lines are named.
    for cmd in ["plan", "enable"] {
        let msg = refused(
            &t,
            &[cmd, "--user", "remapu"],
            &[
                "/etc/subgid:2: `remapg:200000:65536`",
                "the line dockerd needs: `remapu:200000:65536`",
                "`docker-userns enable --repair --user remapu`",
            ],
        );
        assert!(!msg.contains("which is not user"), "{msg}");
    }

    // The advice, literally: the line is renamed, every other byte kept.
    let subuid_before = t.read("etc/subuid");
    let daemon_before = t.read("etc/docker/daemon.json");
    let plan = ok(&t.run(&["--json", "plan", "--repair", "--user", "remapu"]));
    assert_eq!(plan["subgid"]["renamed_from"], "remapg");
    assert_eq!(plan["user"]["group"], "remapg");
    assert_eq!(plan["user"]["gid"], 997);
    let done = ok(&t.run(&["--json", "enable", "--repair", "--user", "remapu"]));
    assert_eq!(done["changed"], true);
    assert_eq!(done["subgid"]["start"], 200000);
    assert_eq!(done["subgid"]["renamed_from"], "remapg");
    assert_eq!(done["subuid"]["add"], false);
    assert_eq!(done["daemon_json_change"], "none");
    assert_eq!(
        t.read("etc/subgid"),
        "alice:100000:65536\nremapu:200000:65536\n"
    );
    assert_eq!(t.read("etc/subuid"), subuid_before);
    assert_eq!(t.read("etc/docker/daemon.json"), daemon_before);
    // The old file is kept as shadow keeps it.
    assert_eq!(
        t.read("etc/subgid-"),
        "alice:100000:65536\nremapg:200000:65536\n"
    );
    let text = t.run(&["plan", "--user", "remapu"]).stdout;
    assert!(text.contains("Already converged"), "{text}");
    assert_eq!(ok(&t.run(&["--json", "check"]))["ok"], true);
    let again = ok(&t.run(&["--json", "enable", "--user", "remapu"]));
    assert_eq!(again["changed"], false);

    // status names the user and the group.
    let st = ok(&t.run(&["--json", "status"]));
    assert_eq!(st["remap_user"], "remapu");
    assert_eq!(st["remap_group"], "remapg");
    assert_eq!(st["subgid"]["start"], 200000);
    assert_eq!(st["problems"], serde_json::json!([]));
}

#[test]
fn status_names_the_problem_and_its_fix_before_the_repair() {
    let t = issue_host(
        "remapu:remapg",
        "remapu:200000:65536\n",
        "remapg:200000:65536\n",
    );
    let st = ok(&t.run(&["--json", "status"]));
    assert_eq!(st["remap_user"], "remapu");
    assert_eq!(st["remap_group"], "remapg");
    let p = &st["problems"][0];
    assert_eq!(p["kind"], "remap-range-under-other-name", "{st}");
    assert!(
        p["message"].as_str().unwrap().contains("/etc/subgid:1:"),
        "{p}"
    );
    assert_eq!(
        p["fix"].as_str().unwrap().split(" (").next().unwrap(),
        "docker-userns enable --repair --user remapu"
    );
}

#[test]
fn every_form_naming_the_user_matches_user_and_changes_nothing() {
    for value in [
        "remapu",
        "remapu:remapu",
        "998",
        "+998",
        "998:998",
        "998:997",
        "remapu:997",
        "998:remapg",
        "remapu:remapg",
    ] {
        let t = issue_host(value, "remapu:200000:65536\n", "remapu:200000:65536\n");
        let before = t.snapshot();
        let p = ok(&t.run(&["--json", "enable", "--user", "remapu"]));
        assert_eq!(p["changed"], false, "{value}: {p}");
        assert_eq!(p["daemon_json_change"], "none", "{value}");
        assert_eq!(p["user"]["name"], "remapu");
        assert_eq!(before, t.snapshot(), "{value}: enable wrote something");
        assert_eq!(ok(&t.run(&["--json", "check"]))["ok"], true, "{value}");
        let st = ok(&t.run(&["--json", "status"]));
        assert_eq!(st["remap_user"], "remapu", "{value}");
        // Another user: the advice names the user the value resolves to.
        refused(
            &t,
            &["enable", "--user", "dockremap"],
            &["resolves to user remapu", "pass --user remapu"],
        );
    }
}

#[test]
fn a_value_dockerd_rejects_is_reported_and_refused() {
    for (value, needle) in [
        ("4242", "uid 4242 names no account"),
        ("remapu:nosuch", "group \"nosuch\" does not exist"),
        ("998:4242", "gid 4242 names no group"),
        ("a:b:c", "more than one ':'"),
    ] {
        let t = issue_host(value, "remapu:200000:65536\n", "remapu:200000:65536\n");
        let r = t.run(&["--json", "check"]);
        assert_eq!(r.code, 3, "{value}: {r:?}");
        assert_eq!(
            kinds(&r.json()),
            [(
                "/etc/docker/daemon.json".to_string(),
                3,
                "remap-value-rejected".to_string()
            )],
            "{value}"
        );
        assert!(
            r.json()["problems"][0]["message"]
                .as_str()
                .unwrap()
                .contains(needle)
        );
        refused(
            &t,
            &["enable", "--user", "remapu"],
            &["which dockerd rejects", needle],
        );
    }
    // A value resolving to root leaves remapping off: reported, and enable refuses.
    let t = issue_host("0", "", "");
    let r = t.run(&["--json", "check"]);
    assert_eq!(r.code, 3);
    assert!(r.stdout.contains("resolves to root"), "{r:?}");
    refused(
        &t,
        &["enable"],
        &["resolves to root", "docker-userns disable"],
    );
}

#[test]
fn a_missing_line_with_nothing_in_the_way_is_added_at_the_same_start() {
    let t = issue_host(
        "remapu",
        "alice:100000:65536\nremapu:200000:65536\n",
        "alice:100000:65536\n",
    );
    let c = t.run(&["--json", "check"]);
    assert_eq!(c.code, 3);
    assert_eq!(
        kinds(&c.json()),
        [(
            "/etc/subgid".to_string(),
            0,
            "remap-range-missing".to_string()
        )]
    );
    let done = ok(&t.run(&["--json", "enable", "--user", "remapu"]));
    assert_eq!(done["subgid"]["add"], true);
    assert_eq!(
        t.read("etc/subgid"),
        "alice:100000:65536\nremapu:200000:65536\n"
    );
    assert_eq!(
        t.read("etc/subuid"),
        "alice:100000:65536\nremapu:200000:65536\n"
    );
    assert_eq!(ok(&t.run(&["--json", "check"]))["ok"], true);
}

#[test]
fn the_groups_own_range_beside_the_users_is_reported() {
    let t = issue_host(
        "remapu:remapg",
        "remapu:200000:65536\n",
        "remapu:200000:65536\nremapg:300000:65536\n",
    );
    let c = t.run(&["--json", "check"]);
    assert_eq!(c.code, 3);
    assert_eq!(
        kinds(&c.json()),
        [(
            "/etc/subgid".to_string(),
            2,
            "remap-group-range-ignored".to_string()
        )]
    );
    // Nothing for enable to do: dockerd starts with the user's ranges.
    assert_eq!(
        ok(&t.run(&["--json", "enable", "--user", "remapu"]))["changed"],
        false
    );
}

#[test]
fn a_userns_remap_flag_of_any_form_matches_user_and_daemon_json_stays_without_the_key() {
    let t = issue_host("", "remapu:200000:65536\n", "remapg:200000:65536\n");
    t.write(
        "etc/default/docker",
        "DOCKER_OPTS=\"--userns-remap=998:remapg\"\n",
    );
    let c = t.run(&["--json", "check"]);
    assert_eq!(c.code, 3);
    assert_eq!(
        kinds(&c.json())[0].2,
        "remap-range-under-other-name",
        "{c:?}"
    );
    refused(
        &t,
        &["enable"],
        &[
            "--userns-remap at /etc/default/docker:1",
            "pass --user remapu",
            "remove the flag at /etc/default/docker:1",
        ],
    );
    refused(
        &t,
        &["enable", "--user", "remapu"],
        &["`docker-userns enable --repair --user remapu`"],
    );
    let done = ok(&t.run(&["--json", "enable", "--repair", "--user", "remapu"]));
    assert_eq!(done["daemon_json_change"], "none", "{done}");
    assert_eq!(
        done["user"]["value_from"],
        "--userns-remap at /etc/default/docker:1"
    );
    assert!(!t.exists("etc/docker/daemon.json"));
    assert_eq!(t.read("etc/subgid"), "remapu:200000:65536\n");
    let st = ok(&t.run(&["--json", "status"]));
    assert_eq!(st["remapping_configured"], "998:remapg");
    assert_eq!(st["remap_user"], "remapu");
    assert_eq!(st["remap_group"], "remapg");
    // With the key in daemon.json as well dockerd refuses to start: still refused.
    t.write("etc/docker/daemon.json", "{\"userns-remap\": \"remapu\"}\n");
    refused(
        &t,
        &["enable", "--user", "remapu"],
        &["already gets --userns-remap as a command-line flag"],
    );
}

#[test]
fn the_rename_is_journaled_and_a_failure_after_it_restores_the_bytes() {
    // Needs the debug binary (failpoints are compiled out of release builds).
    let t = issue_host(
        "remapu:remapg",
        "# keep\nremapu:200000:65536\n",
        "# keep\nalice:100000:65536\nremapg:200000:65536",
    );
    let before = t.snapshot();
    let r = common::run_cmd(
        std::process::Command::new(common::bin())
            .env("DOCKER_USERNS_FAILPOINTS", "apply:before-daemon-json")
            .arg("--root")
            .arg(t.path(""))
            .args(["--json", "enable", "--repair", "--user", "remapu"]),
    );
    assert_eq!(r.code, 5, "{r:?}");
    assert_eq!(r.json()["error"]["kind"], "rolled-back");
    assert_eq!(
        t.read("etc/subgid"),
        "# keep\nalice:100000:65536\nremapg:200000:65536"
    );
    let after = t.snapshot();
    for f in ["etc/subuid", "etc/subgid", "etc/docker/daemon.json"] {
        let k = std::path::PathBuf::from(f);
        assert_eq!(before[&k].0, after[&k].0, "{f} not restored");
    }
    // Then the same command succeeds; the line keeps its place and its missing newline.
    ok(&t.run(&["--json", "enable", "--repair", "--user", "remapu"]));
    assert_eq!(
        t.read("etc/subgid"),
        "# keep\nalice:100000:65536\nremapu:200000:65536"
    );
}

#[test]
fn writing_a_value_dockerd_would_reject_is_noted() {
    // remapper exists with the primary group users (as `adduser --system` leaves it), and no
    // group of its name: "userns-remap": "remapper" would not start.
    let t = Tree::fixture("debian12");
    t.write(
        "etc/passwd",
        &(t.read("etc/passwd") + "remapper:x:990:100::/nonexistent:/usr/sbin/nologin\n"),
    );
    t.write("etc/group", &(t.read("etc/group") + "users:x:100:\n"));
    let p = ok(&t.run(&["--json", "plan", "--user", "remapper"]));
    assert!(
        p["notes"]
            .to_string()
            .contains("no group is named remapper: dockerd rejects"),
        "{p}"
    );
    // After enable, check says so too.
    ok(&t.run(&["--json", "enable", "--user", "remapper"]));
    let c = t.run(&["--json", "check"]);
    assert_eq!(c.code, 3);
    assert_eq!(
        kinds(&c.json()),
        [(
            "/etc/docker/daemon.json".to_string(),
            2,
            "remap-value-rejected".to_string()
        )]
    );
}
