//! End-to-end tests on a real systemd + D-Bus + dockerd host (a Debian container booted with
//! systemd-nspawn by tests/testhost/testhost.sh). Must run as root; they fail, never skip,
//! when the host cannot be booted.

#[path = "testhost/mod.rs"]
mod testhost;

use serde_json::Value;
use testhost::Host;

fn assert_docker_works(host: &Host) {
    let state = host.exec(&["systemctl", "is-active", "docker.service"]);
    assert_eq!(state.stdout.trim(), "active", "{}: {state}", host.name());
    assert_eq!(state.code, 0, "{}: {state}", host.name());
    let uid = host.ok("docker run --rm --pull=never busybox:local id -u");
    assert_eq!(uid.trim(), "0", "{}", host.name());
}

#[test]
fn boots_with_docker_and_runs_the_product() {
    let host = Host::boot("basic");
    assert_docker_works(&host);
    assert_eq!(
        host.ok("systemctl is-system-running").trim(),
        "running",
        "{}",
        host.name()
    );

    // The freshly built binary is installed and found through PATH.
    assert_eq!(
        host.ok("command -v docker-userns").trim(),
        testhost::PRODUCT_INSIDE
    );
    let mode = host.ok(&format!("stat -c %a {}", testhost::PRODUCT_INSIDE));
    assert_eq!(mode.trim(), "755");
    let version = host.exec(&["docker-userns", "--version"]);
    assert_eq!(version.code, 0, "{version}");
    assert!(
        version.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{version}"
    );

    // A fresh Debian host with docker.io has no remapping yet: `plan` wants to change things.
    let plan = host.exec(&["docker-userns", "plan", "--json"]);
    assert_eq!(plan.code, 0, "{plan}");
    let v: Value = serde_json::from_str(&plan.stdout)
        .unwrap_or_else(|e| panic!("plan --json is not JSON ({e}): {plan}"));
    assert_eq!(v["changed"], Value::Bool(true), "{plan}");
    assert!(v["subuid"].is_object(), "{plan}");

    // The helper's file access and exit codes.
    assert_eq!(host.exec(&["sh", "-c", "exit 7"]).code, 7);
    assert_eq!(host.read("/nonexistent/file"), None);
    host.write("/run/testhost/probe.txt", "hello\n");
    assert_eq!(
        host.read_string("/run/testhost/probe.txt").as_deref(),
        Some("hello\n")
    );
    assert_eq!(
        host.ok("stat -c '%a %U' /run/testhost/probe.txt").trim(),
        "644 root"
    );
    // The environment inside is the clean one, not the test's.
    let env = host.ok("env");
    assert!(
        env.lines()
            .any(|l| l == format!("PATH={}", testhost::INNER_PATH)),
        "{env}"
    );
    assert!(!env.contains("CARGO"), "{env}");
}

#[test]
fn two_hosts_boot_concurrently_and_are_isolated() {
    let hosts: Vec<Host> = std::thread::scope(|s| {
        let a = s.spawn(|| Host::boot("par-a"));
        let b = s.spawn(|| Host::boot("par-b"));
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    let (a, b) = (&hosts[0], &hosts[1]);
    assert_ne!(a.name(), b.name());
    assert_ne!(a.pid(), b.pid());

    std::thread::scope(|s| {
        s.spawn(|| assert_docker_works(a));
        s.spawn(|| assert_docker_works(b));
    });

    // Each has its own filesystem and its own docker.
    a.write("/etc/testhost-marker", a.name());
    assert_eq!(
        a.read_string("/etc/testhost-marker").as_deref(),
        Some(a.name())
    );
    assert_eq!(b.read("/etc/testhost-marker"), None);
    a.ok("docker run -d --name only-in-a --pull=never busybox:local sleep 300");
    assert_eq!(
        a.ok("docker ps -q --filter name=only-in-a").lines().count(),
        1
    );
    assert_eq!(b.ok("docker ps -aq").trim(), "", "{}", b.name());
    // A running container would delay the poweroff by docker's 10 s stop timeout.
    a.ok("docker rm -f only-in-a");
}
