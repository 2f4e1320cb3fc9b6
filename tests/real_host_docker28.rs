//! Debian forky: docker.io 28.5.2 (containerd 2.1, runc 1.3) on systemd 262 and cgroup v2, a
//! booted test host (tests/testhost/, `forky`). The main flow runs there as on bookworm: enable
//! next to a regular user's range (the very case where dockerd 28's own allocator would hand
//! out that user's ids), idempotence, verify, a `kill -9` mid-restart recovered by the next
//! run, and a refused configuration rolled back. The same flow runs on `docker29`: dockerd
//! 29.7.2 with docker-ce's units (no /etc/default/docker, `Restart=always`, `Requires=
//! docker.socket`), where turning remapping on also switches the image store from containerd's
//! to overlay2 (and back on `disable`), and then six restarts within a minute pass its start
//! limit. Needs root; fails, never skips.

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

#[test]
fn docker_28_on_forky_remaps_next_to_a_regular_users_range() {
    remaps_next_to_a_regular_users_range("forky", "28.");
}

/// docker-ce 29: the same flow, plus what differs there (the image store, the unit).
#[test]
fn docker29_ce_remaps_next_to_a_regular_users_range() {
    remaps_next_to_a_regular_users_range("docker29", "29.");
}

fn remaps_next_to_a_regular_users_range(suite: &str, version: &str) {
    let host = Host::boot_suite(suite, suite);
    assert!(
        host.ok("docker version --format '{{.Server.Version}}'")
            .starts_with(version),
        "not docker {version}"
    );
    let docker29 = suite == "docker29";
    if docker29 {
        // docker-ce's layout: its unit, its dockerd, no DOCKER_OPTS file; the containerd store.
        assert_eq!(
            host.ok("systemctl show -p FragmentPath --value docker.service")
                .trim(),
            "/usr/lib/systemd/system/docker.service"
        );
        assert!(host.read("/etc/default/docker").is_none());
        assert_eq!(info(&host, "Driver").trim(), "\"overlayfs\"");
    }
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
    if docker29 {
        // Remapped, dockerd 29 leaves the containerd store for overlay2 in the remapped root.
        assert_eq!(info(&host, "Driver").trim(), "\"overlay2\"");
    }
    let st = ok_json(&host, "status --json");
    assert_eq!(st["remapping_active"], true, "{st}");
    assert_eq!(st["problems"].as_array().map(Vec::len), Some(0), "{st}");
    assert!(
        st["docker_version"].as_str().unwrap().starts_with(version),
        "{st}"
    );
    let text = host.ok("docker-userns status");
    assert!(
        text.starts_with("remapping is ON (container root = host uid 165536)"),
        "{text}"
    );

    // Root in a container is the range start on the host, never alice's ids.
    // (The remapped engine has a data root of its own: import the test image there.)
    host.reimport_image();
    let v = ok_json(&host, "verify --json --image busybox:local");
    assert_eq!(v["effective"], true, "{v}");

    // Idempotent: nothing written, docker not restarted.
    let inv = host.invocation();
    let again = ok_json(&host, "enable --json");
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(host.invocation(), inv, "docker restarted again");

    // kill -9 with docker stopped mid-restart (disable): the next run (`status`) rolls the
    // interrupted run back and brings docker back, still remapped.
    let files = "/etc/subuid /etc/subgid /etc/docker/daemon.json";
    let before = host.ok(&format!("cat {files}"));
    host.ok(
        "DOCKER_USERNS_FAILPOINTS=restart:after-stop=sleep setsid docker-userns disable >/tmp/killed.log 2>&1 &
         for i in $(seq 300); do systemctl is-active -q docker.service || break; sleep 0.05; done
         test -e /var/lib/docker-userns/transaction.json
         pkill -9 -x docker-userns",
    );
    let rec = json(&host.recovered("kill -9 after the stop"));
    assert_eq!(rec["remapping_active"], true, "{rec}");
    assert_eq!(host.ok(&format!("cat {files}")), before);
    assert!(info(&host, "SecurityOptions").contains("name=userns"));

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

    // And off again: the engine back on its first data root (on docker 29, the containerd
    // store with the image imported at boot).
    host.ok("rm /etc/systemd/system/docker.service.d/refuse-plain.conf && systemctl daemon-reload");
    let off = ok_json(&host, "disable --yes --json");
    assert_eq!(off["restarted"], true, "{off}");
    assert!(!info(&host, "SecurityOptions").contains("name=userns"));
    assert_eq!(info(&host, "DockerRootDir").trim(), "\"/var/lib/docker\"");
    if docker29 {
        assert_eq!(info(&host, "Driver").trim(), "\"overlayfs\"");
    }
    let v = host.sh("docker-userns verify --json --image busybox:local");
    assert_eq!(v.code, 7, "verify with remapping off: {v}");
    assert_eq!(json(&v)["effective"], false, "{v}");
    let again = ok_json(&host, "disable --json");
    assert_eq!(again["changed"], false, "{again}");

    // Six restarts within a minute, well past StartLimitBurst=3: docker-ce's unit
    // (`Restart=always`) must not end in "start of the service was attempted too often".
    if docker29 {
        for round in 0..3 {
            let e = ok_json(&host, "enable --json");
            assert_eq!(e["restarted"], true, "round {round}: {e}");
            assert!(info(&host, "SecurityOptions").contains("name=userns"));
            let d = ok_json(&host, "disable --json");
            assert_eq!(d["restarted"], true, "round {round}: {d}");
            assert!(!info(&host, "SecurityOptions").contains("name=userns"));
        }
    }
}
