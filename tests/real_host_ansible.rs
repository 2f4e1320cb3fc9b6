//! The Ansible role in packaging/ansible run with real ansible-core (Debian's package, inside the
//! bookworm test host, local connection) against real systemd and dockerd: first run changes,
//! second is unchanged without a restart, check mode changes nothing, and a forced failure is
//! reported with the rollback stated while docker keeps running. Needs root; never skips.

#[path = "testhost/mod.rs"]
mod testhost;

use serde_json::Value;
use testhost::Host;

/// The counters of the PLAY RECAP line (`ok=5 changed=1 ... failed=0 ...`).
fn recap(stdout: &str) -> Value {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("localhost") && l.contains("changed="))
        .unwrap_or_else(|| panic!("no PLAY RECAP in:\n{stdout}"));
    let mut m = serde_json::Map::new();
    for kv in line.split_whitespace().filter_map(|w| w.split_once('=')) {
        m.insert(
            kv.0.to_string(),
            Value::from(kv.1.parse::<u64>().unwrap_or(0)),
        );
    }
    Value::Object(m)
}

/// Runs the example playbook (ansible-core's default output); returns (exit code, recap, output).
fn playbook(host: &Host, extra: &str) -> (i32, Value, String) {
    let out = host.sh(&format!(
        "cd /root/ansible && ANSIBLE_ROLES_PATH=/root/ansible/roles ANSIBLE_NOCOLOR=1 \
         ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false \
         ansible-playbook -i localhost, -c local playbook.yml \
         -e ansible_become=false -e docker_userns_binary=/usr/local/sbin/docker-userns {extra}"
    ));
    (
        out.code,
        recap(&out.stdout),
        format!("{}\n{}", out.stdout, out.stderr),
    )
}

fn snapshot(host: &Host) -> String {
    host.ok("cat /etc/subuid /etc/subgid /etc/docker/daemon.json 2>&1; getent passwd dockremap; systemctl show -p InvocationID --value docker.service")
}

fn userns(host: &Host) -> bool {
    host.ok("docker info --format '{{json .SecurityOptions}}'")
        .contains("name=userns")
}

#[test]
fn the_role_converges_is_idempotent_checks_and_reports_rollbacks() {
    let host = Host::boot("ansible");
    host.cp_in(
        concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/ansible"),
        "/root/ansible",
    );
    assert!(host.ok("ansible-playbook --version").contains("core"));

    // Check mode on a fresh host: would change, changes nothing.
    let before = snapshot(&host);
    let (code, stats, _) = playbook(&host, "--check");
    assert_eq!(code, 0);
    assert!(
        stats["changed"].as_u64().unwrap() >= 1,
        "check mode should report a change: {stats}"
    );
    assert_eq!(stats["failed"], 0);
    assert_eq!(snapshot(&host), before, "check mode changed the host");
    assert!(!userns(&host));

    // First run: changed, remapped, the image carried along (docker_userns_carry).
    let (code, stats, msgs) = playbook(
        &host,
        r#"-e '{"docker_userns_carry": ["images"], "docker_userns_settle": 2}'"#,
    );
    assert_eq!(code, 0, "{msgs}");
    assert!(stats["changed"].as_u64().unwrap() >= 1, "{stats}");
    assert!(userns(&host));
    host.ok("docker image inspect busybox:local >/dev/null");

    // Second run: ok, unchanged, docker not restarted.
    let converged = snapshot(&host);
    let (code, stats, msgs) = playbook(&host, "");
    assert_eq!(code, 0, "{msgs}");
    assert_eq!(stats["changed"], 0, "{stats}");
    assert_eq!(
        snapshot(&host),
        converged,
        "a converged run changed something (or restarted docker)"
    );
    let (_, stats, _) = playbook(&host, "--check");
    assert_eq!(
        stats["changed"], 0,
        "check mode on a converged host: {stats}"
    );

    // Turn it off, then make docker refuse remapping: the run fails, says it rolled back, and
    // docker keeps running with the previous settings.
    let (code, stats, msgs) = playbook(&host, "-e docker_userns_state=disabled");
    assert_eq!(code, 0, "{msgs}");
    assert!(stats["changed"].as_u64().unwrap() >= 1);
    assert!(!userns(&host));
    host.write(
        "/etc/systemd/system/docker.service.d/refuse-remap.conf",
        "[Service]\nExecStartPre=/bin/sh -c '! grep -q userns-remap /etc/docker/daemon.json'\n",
    );
    host.ok("systemctl daemon-reload");
    let files = host.ok("cat /etc/subuid /etc/subgid /etc/docker/daemon.json");
    let (code, stats, msgs) = playbook(&host, "");
    assert_ne!(code, 0);
    assert_eq!(stats["failed"], 1, "{stats}");
    assert!(
        msgs.contains("exit 5, rolled-back") && msgs.contains("ROLLED BACK"),
        "{msgs}"
    );
    assert!(
        msgs.contains("Control process exited"),
        "docker's journal in the message: {msgs}"
    );
    assert_eq!(
        host.ok("cat /etc/subuid /etc/subgid /etc/docker/daemon.json"),
        files
    );
    assert_eq!(
        host.ok("systemctl is-active docker.service").trim(),
        "active"
    );
    assert!(!userns(&host));
}
