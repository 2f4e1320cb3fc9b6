//! Where systemd finds docker.service's settings on a live host beyond /etc/systemd/system and
//! /usr/lib/systemd/system (issue 21, item 6): a drop-in in /etc/systemd/system.control (the
//! directory `systemctl set-property` writes) and one a generator makes at boot or reload in
//! /run/systemd/generator. Each passes `--userns-remap=default` to dockerd; `plan` and `enable`
//! must find the flag there, name the file and line, and keep it: the flag names the user they
//! would configure, so nothing is written (no daemon.json, subuid, subgid, passwd and docker's
//! InvocationID unchanged), as for the flag in /etc/systemd/system. Before, the tool looked at
//! five fixed directories, planned to write "userns-remap" into daemon.json beside the flag,
//! and dockerd refuses to start with both. On forky (docker 28).
//! Needs root; fails, never skips.

#[path = "testhost/mod.rs"]
mod testhost;

use testhost::Host;

const FLAGGED: &str = "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock --userns-remap=default\n";

fn snapshot(host: &Host) -> [Option<String>; 5] {
    [
        host.read_string("/etc/docker/daemon.json"),
        host.read_string("/etc/subuid"),
        host.read_string("/etc/subgid"),
        host.read_string("/etc/passwd"),
        Some(host.invocation()),
    ]
}

/// With docker running remapped by the flag in `file`: plan and enable find it there, keep
/// it (it names the user they would configure) and write nothing: daemon.json gets no
/// "userns-remap" beside the flag, which dockerd would refuse to start with.
fn found(host: &Host, file: &str) {
    assert!(
        host.ok("docker info --format '{{json .SecurityOptions}}'")
            .contains("name=userns"),
        "{file}: the flag did not reach dockerd"
    );
    let before = snapshot(host);
    for cmd in ["plan", "enable --yes"] {
        let out = host.sh(&format!("docker-userns {cmd}"));
        assert_eq!(out.code, 0, "{file}: {cmd}: {out}");
        for want in [
            format!("--userns-remap at {file}:3 names the user"),
            "/etc/docker/daemon.json stays without \"userns-remap\"".to_string(),
        ] {
            assert!(
                out.stdout.contains(&want),
                "{file}: {cmd}: no {want:?}: {out}"
            );
        }
        assert_eq!(snapshot(host), before, "{file}: {cmd} changed the host");
    }
    assert_eq!(before[0], None, "{file}: daemon.json was written");
}

#[test]
fn a_remap_flag_in_system_control_or_from_a_generator_is_found_before_any_write() {
    let host = Host::boot_suite("unitpaths", "forky");
    let unit = host.ok("systemctl show -P FragmentPath docker.service");
    assert!(unit.trim().ends_with("/docker.service"), "{unit}");

    // 1. /etc/systemd/system.control, where `systemctl set-property` keeps its drop-ins.
    let control = "/etc/systemd/system.control/docker.service.d/50-remap.conf";
    host.ok("mkdir -p /etc/systemd/system.control/docker.service.d");
    host.write(control, FLAGGED);
    host.ok("systemctl daemon-reload && systemctl restart docker");
    assert!(
        host.ok("systemctl show -P DropInPaths docker.service")
            .contains(control)
    );
    found(&host, control);
    host.ok(&format!(
        "rm {control} && systemctl daemon-reload && systemctl restart docker"
    ));

    // 2. A generator's drop-in, made again at every daemon-reload.
    host.write(
        "/etc/systemd/system-generators/remap-gen",
        format!(
            "#!/bin/sh\nmkdir -p \"$1/docker.service.d\"\ncat > \"$1/docker.service.d/50-gen.conf\" <<'E'\n{FLAGGED}E\n"
        ),
    );
    host.ok(
        "chmod 0755 /etc/systemd/system-generators/remap-gen && systemctl daemon-reload && systemctl reset-failed docker.service && systemctl restart docker",
    );
    found(&host, "/run/systemd/generator/docker.service.d/50-gen.conf");
    host.ok(
        "rm /etc/systemd/system-generators/remap-gen && systemctl daemon-reload && systemctl reset-failed docker.service && systemctl restart docker",
    );

    // Nothing in the way any more: enable converges.
    let out = host.sh("docker-userns enable --yes --settle 2");
    assert_eq!(out.code, 0, "{out}");
}
