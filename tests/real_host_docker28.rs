//! Debian forky: docker.io 28.5.2 (containerd 2.1, runc 1.3) on systemd 262 and cgroup v2, a
//! booted test host (tests/testhost/, `forky`). The main flow runs there as on bookworm: enable
//! next to a regular user's range (the very case where dockerd 28's own allocator would hand
//! out that user's ids), idempotence, verify, and a refused configuration rolled back.
//! Needs root; fails, never skips.

mod common;
#[path = "testhost/mod.rs"]
mod testhost;

use serde_json::Value;
use testhost::{Host, Output};

fn json(out: &Output) -> Value {
    common::json_doc(&out.stdout, out)
}

fn ok_json(host: &Host, args: &str) -> Value {
    let out = host.sh(&format!("docker-userns {args}"));
    assert_eq!(out.code, 0, "docker-userns {args}: {out}");
    json(&out)
}

fn info(host: &Host, field: &str) -> String {
    host.ok(&format!("docker info --format '{{{{json .{field}}}}}'"))
}

fn invocation(host: &Host) -> String {
    host.ok("systemctl show -p InvocationID --value docker.service")
        .trim()
        .to_string()
}

#[test]
fn docker_28_on_forky_remaps_next_to_a_regular_users_range() {
    let host = Host::boot_suite("forky", "forky");
    assert!(
        host.ok("docker version --format '{{.Server.Version}}'")
            .starts_with("28."),
        "not docker 28"
    );
    assert_eq!(info(&host, "CgroupVersion").trim(), "\"2\"");

    // A regular user with the range useradd gives: dockerd 28 would hand dockremap this
    // very range; the tool must not.
    host.ok("useradd -m alice");
    assert!(
        host.read_string("/etc/subuid")
            .unwrap()
            .contains("alice:100000:65536")
    );
    let done = ok_json(&host, "enable --json");
    assert_eq!(done["restarted"], true, "{done}");
    assert_eq!(done["subuid"]["start"], 165536, "{done}");
    assert_eq!(done["subgid"]["start"], 165536, "{done}");
    assert!(
        done["notes"]
            .to_string()
            .contains("dockerd --validate accepted"),
        "{done}"
    );
    assert!(info(&host, "SecurityOptions").contains("name=userns"));
    assert_eq!(
        info(&host, "DockerRootDir").trim(),
        "\"/var/lib/docker/165536.165536\""
    );
    let check = host.sh("docker-userns check --json");
    assert_eq!(check.code, 0, "{check}");

    // Root in a container is the range start on the host, never alice's ids.
    // (The remapped engine has a data root of its own: import the test image there.)
    host.reimport_image();
    let v = ok_json(&host, "verify --json --image busybox:local");
    assert_eq!(v["effective"], true, "{v}");

    // Idempotent: nothing written, docker not restarted.
    let inv = invocation(&host);
    let again = ok_json(&host, "enable --json");
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(invocation(&host), inv, "docker restarted again");

    // A configuration docker refuses at start is rolled back, docker still remapped.
    host.write(
        "/etc/systemd/system/docker.service.d/refuse-plain.conf",
        "[Service]\nExecStartPre=/bin/sh -c 'grep -q userns-remap /etc/docker/daemon.json'\n",
    );
    host.ok("systemctl daemon-reload");
    let before = host.read_string("/etc/docker/daemon.json").unwrap();
    let out = host.sh("docker-userns disable --json");
    assert_eq!(out.code, 5, "{out}");
    assert_eq!(json(&out)["error"]["kind"], "rolled-back");
    assert_eq!(host.read_string("/etc/docker/daemon.json").unwrap(), before);
    assert_eq!(
        host.sh("systemctl is-active docker.service").stdout.trim(),
        "active"
    );
    assert!(info(&host, "SecurityOptions").contains("name=userns"));
}
