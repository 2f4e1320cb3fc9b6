//! Every `userns-remap` value form (issue 24) on real hosts: Debian 13 (`trixie`, docker.io
//! 26.1) and Debian forky (docker.io 28). Each form is set by hand as an admin would (user and
//! group created, daemon.json written, docker restarted, or left failed) before the tool
//! runs. `status` names the user, the group and the problem; `enable --user remapu` converges
//! each form without restarting a docker that already runs it remapped (InvocationID
//! compared), and a second `enable` restarts nothing; the host (`remapu:remapg`, the
//! range in /etc/subgid under remapg, docker failed) follows the tool's advice literally
//! (`enable --repair --user remapu`, which leaves a failed docker stopped, then the
//! `systemctl` commands the advice names) and ends with docker running remapped and `verify`
//! passing.
//!
//! `DOCKER_USERNS_TEST_BIN=PATH` runs another binary inside (to show the test fails on one
//! without issue 24). Needs root; fails, never skips.

mod common;
#[path = "testhost/mod.rs"]
mod testhost;

use serde_json::Value;
use testhost::{Host, Output, PRODUCT_INSIDE};

fn json(out: &Output) -> Value {
    common::json_doc(&out.stdout, out)
}

fn ok_json(host: &Host, args: &str) -> Value {
    let out = host.sh(&format!("docker-userns {args}"));
    assert_eq!(out.code, 0, "docker-userns {args}: {out}");
    json(&out)
}

fn active(host: &Host) -> String {
    host.sh("systemctl is-active docker.service")
        .stdout
        .trim()
        .to_string()
}

fn root_dir(host: &Host) -> String {
    host.ok("docker info --format '{{.DockerRootDir}}'")
        .trim()
        .to_string()
}

/// Writes the value and both files as an admin would, then restarts docker the admin's way
/// (it may fail, and is left failed). Returns whether docker came up.
fn set_by_hand(host: &Host, value: &str, subuid: &str, subgid: &str) -> bool {
    host.write("/etc/subuid", subuid);
    host.write("/etc/subgid", subgid);
    host.write(
        "/etc/docker/daemon.json",
        format!("{{\n  \"log-level\": \"info\",\n  \"userns-remap\": \"{value}\"\n}}\n"),
    );
    // A restart that fails three times in a row hits the start limit: clear it, as an admin
    // trying forms one after the other would not notice.
    host.sh("systemctl reset-failed docker.service docker.socket");
    host.sh("systemctl restart docker.service").code == 0
}

#[test]
fn every_remap_form_is_understood_and_converged_trixie_and_forky() {
    for suite in ["trixie", "forky"] {
        every_form(suite);
    }
}

fn every_form(suite: &str) {
    let host = Host::boot_suite(&format!("forms-{suite}"), suite);
    if let Ok(bin) = std::env::var("DOCKER_USERNS_TEST_BIN") {
        host.cp_in(bin, PRODUCT_INSIDE);
    }
    host.ok("useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin remapu
             groupadd --system remapg");
    let uid = host.ok("id -u remapu").trim().to_string();
    let gid = host.ok("id -g remapu").trim().to_string();
    let gid_g = host
        .ok("getent group remapg | cut -d: -f3")
        .trim()
        .to_string();

    // --- The host: the gid range under the group's name; dockerd fails to start.
    let up = set_by_hand(
        &host,
        "remapu:remapg",
        "remapu:200000:65536\n",
        "remapg:200000:65536\n",
    );
    assert!(
        !up,
        "{suite}: docker started with no subgid line for remapu"
    );
    assert_ne!(active(&host), "active");
    let files = || host.ok("cat /etc/subuid /etc/subgid /etc/docker/daemon.json");
    let before = files();

    let st = ok_json(&host, "status --json");
    assert_eq!(st["remap_user"], "remapu", "{suite}: {st}");
    assert_eq!(st["remap_group"], "remapg", "{suite}: {st}");
    let p = st["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "remap-range-under-other-name")
        .unwrap_or_else(|| panic!("{suite}: status names no problem: {st}"))
        .clone();
    assert!(
        p["message"]
            .as_str()
            .unwrap()
            .contains("/etc/subgid:1: /etc/subgid has no line for user remapu"),
        "{p}"
    );
    let text = host.ok("docker-userns status");
    assert!(
        text.contains("(user remapu, group remapg)") && text.contains("remapu:200000:65536"),
        "{suite}: {text}"
    );
    let check = host.sh("docker-userns check");
    assert_eq!(check.code, 3, "{suite}: {check}");
    assert!(
        check
            .stdout
            .contains("/etc/subgid:1: remap-range-under-other-name"),
        "{check}"
    );

    // enable --user remapu: refused (exit 3), both lines named, nothing changed.
    let refused = host.sh("docker-userns enable --user remapu --yes");
    assert_eq!(refused.code, 3, "{suite}: {refused}");
    for needle in [
        "/etc/subgid:1: `remapg:200000:65536`",
        "the line dockerd needs: `remapu:200000:65536`",
        "`docker-userns enable --repair --user remapu`",
    ] {
        assert!(
            refused.stderr.contains(needle),
            "{suite}: {needle}: {refused}"
        );
    }
    assert_eq!(files(), before, "{suite}: a refused enable changed files");

    // The advice, literally (status's fix is the same command).
    let fix = p["fix"].as_str().unwrap().split(" (").next().unwrap();
    assert_eq!(fix, "docker-userns enable --repair --user remapu");
    let done = host.sh(&format!("{fix} --json"));
    assert_eq!(done.code, 0, "{suite}: {done}");
    let done = json(&done);
    assert_eq!(done["subgid"]["renamed_from"], "remapg");
    // docker failed before: enable leaves a stopped docker stopped, and the fix says what next.
    assert_eq!(done["restarted"], false, "{done}");
    let rest = p["fix"].as_str().unwrap();
    for cmd in [
        "systemctl reset-failed docker.service",
        "systemctl start docker.service",
    ] {
        assert!(rest.contains(&format!("`{cmd}`")), "{suite}: {rest}");
        host.ok(cmd);
    }
    assert_eq!(
        host.read_string("/etc/subgid").unwrap(),
        "remapu:200000:65536\n"
    );
    assert_eq!(
        host.read_string("/etc/subuid").unwrap(),
        "remapu:200000:65536\n"
    );
    assert_eq!(active(&host), "active");
    assert_eq!(root_dir(&host), "/var/lib/docker/200000.200000");
    host.reimport_image();
    let v = ok_json(&host, "verify --json");
    assert_eq!(v["effective"], true, "{suite}: {v}");
    assert_eq!(v["remap_user"], "remapu");
    assert_eq!(v["remap_group"], "remapg");
    let id = host.invocation();
    let again = ok_json(&host, "enable --user remapu --yes --json");
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(
        host.invocation(),
        id,
        "{suite}: a converged enable restarted docker"
    );
    assert_eq!(host.sh("docker-userns check").code, 0);

    // --- Every form, set by hand with good ranges (docker starts remapped): status names the
    // user, and enable --user remapu changes nothing and does not restart docker.
    let ranges = "remapu:200000:65536\n";
    let forms = [
        "remapu".to_string(),
        uid.clone(),
        format!("{uid}:{gid}"),
        format!("{uid}:{gid_g}"),
        format!("remapu:{gid_g}"),
        "remapu:remapg".to_string(),
    ];
    for form in &forms {
        assert!(
            set_by_hand(&host, form, ranges, ranges),
            "{suite}: docker did not start with {form:?}"
        );
        assert_eq!(root_dir(&host), "/var/lib/docker/200000.200000", "{form}");
        let st = ok_json(&host, "status --json");
        assert_eq!(st["remap_user"], "remapu", "{suite} {form}: {st}");
        assert_eq!(st["remapping_active"], true, "{suite} {form}");
        assert_eq!(st["problems"], serde_json::json!([]), "{suite} {form}");
        let id = host.invocation();
        let e = ok_json(&host, "enable --user remapu --yes --json");
        assert_eq!(e["changed"], false, "{suite} {form}: {e}");
        assert_eq!(e["restarted"], false, "{suite} {form}");
        assert_eq!(
            host.invocation(),
            id,
            "{suite} {form}: enable restarted docker"
        );
        let v = ok_json(&host, "verify --json");
        assert_eq!(v["effective"], true, "{suite} {form}: {v}");
    }

    // --- A numeric form with no subgid line at all: dockerd fails; enable adds the line at
    // the same start (nothing in the way), restarts once, and a second enable does not.
    let up = set_by_hand(&host, &uid, ranges, "");
    assert!(!up, "{suite}: docker started without a subgid line");
    let st = ok_json(&host, "status --json");
    assert_eq!(st["remap_user"], "remapu", "{st}");
    assert!(
        st["problems"].to_string().contains("remap-range-missing"),
        "{suite}: {st}"
    );
    let fix = st["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "remap-range-missing")
        .unwrap()["fix"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        fix.starts_with("docker-userns enable --user remapu ("),
        "{fix}"
    );
    let e = ok_json(&host, "enable --user remapu --yes --json");
    assert_eq!(e["changed"], true, "{e}");
    host.ok("systemctl reset-failed docker.service && systemctl start docker.service");
    assert_eq!(
        host.read_string("/etc/subgid").unwrap(),
        "remapu:200000:65536\n"
    );
    assert_eq!(root_dir(&host), "/var/lib/docker/200000.200000");
    let id = host.invocation();
    assert_eq!(
        ok_json(&host, "enable --user remapu --yes --json")["changed"],
        false
    );
    assert_eq!(
        host.invocation(),
        id,
        "{suite}: second enable restarted docker"
    );
    assert_eq!(ok_json(&host, "verify --json")["effective"], true);

    // --- A uid naming no account: dockerd fails; status and check say why, enable refuses.
    let up = set_by_hand(&host, "4242", ranges, ranges);
    assert!(!up);
    let st = ok_json(&host, "status --json");
    assert!(
        st["problems"]
            .to_string()
            .contains("uid 4242 names no account"),
        "{suite}: {st}"
    );
    let r = host.sh("docker-userns enable --user remapu --yes");
    assert_eq!(r.code, 3, "{r}");
    assert!(r.stderr.contains("which dockerd rejects"), "{r}");
}
