//! `status` on a docker.service that does not start (issue 24, item 3): docker is made to fail
//! as an admin would (daemon.json naming a user without a /etc/subgid line, a `--userns-remap`
//! flag in a drop-in plus the key in daemon.json, ...), `systemctl restart docker` fails, and
//! `status` / `status --json` name the cause from the unit's last start in the journal, with the
//! line dockerd wrote and what to do; a failure that is not about remapping is quoted. On
//! bookworm (docker 20.10), trixie (docker 26), forky (docker 28) and docker-ce 29. Needs
//! root; fails, never skips.

mod common;
#[path = "testhost/mod.rs"]
mod testhost;

use serde_json::Value;
use testhost::Host;

/// Restarts docker (which must fail), then returns `status --json` and `status`.
fn fail_and_status(host: &Host, case: &str) -> (Value, String) {
    let restart =
        host.sh("systemctl reset-failed docker.service; systemctl restart docker.service");
    assert_ne!(restart.code, 0, "{case}: docker started: {restart}");
    let out = host.sh("docker-userns status --json");
    assert_eq!(out.code, 0, "{case}: {out}");
    let doc = common::json_doc(&out.stdout, &out);
    let text = host.sh("docker-userns status");
    assert_eq!(text.code, 0, "{case}: {text}");
    (doc, text.stdout)
}

/// Checks the failure's cause, that the quoted line contains `line` and the advice `advice`,
/// and that the text shows the same; returns the failure.
fn expect(host: &Host, case: &str, cause: &str, line: &str, advice: &[&str]) -> Value {
    let (doc, text) = fail_and_status(host, case);
    let svc = &doc["service"];
    let f = &svc["last_failure"];
    assert_eq!(f["cause"], cause, "{case}: {doc:#}");
    assert_eq!(f["unit"], "docker.service", "{case}");
    let quoted = f["line"].as_str().unwrap();
    assert!(
        quoted.contains(line),
        "{case}: line {quoted:?} lacks {line:?}"
    );
    let said = f["advice"].as_str().unwrap();
    for a in advice {
        assert!(said.contains(a), "{case}: advice {said:?} lacks {a:?}");
    }
    assert_ne!(svc["active_state"], "active", "{case}: {svc}");
    assert_eq!(svc["result"], "exit-code", "{case}: {svc}");
    // The same in the text: the cause, dockerd's line and the advice.
    for want in [
        format!("({cause})"),
        // (docker may have been restarted automatically between the two runs: another
        // invocation, the same line)
        "docker.service said (invocation ".to_string(),
        format!("): {quoted}"),
        format!("do: {said}"),
        "docker does not start: ".to_string(),
    ] {
        assert!(text.contains(&want), "{case}: text lacks {want:?}:\n{text}");
    }
    f.clone()
}

/// The cases every suite shares, one host.
fn common_cases(host: &Host) {
    // Before: docker runs, nothing to explain.
    let st = common::json_doc(&host.ok("docker-userns status --json"), "status");
    assert_eq!(st["service"]["active_state"], "active", "{st}");
    assert_eq!(st["service"]["last_failure"], Value::Null, "{st}");

    // user:group with the range under the group's name in /etc/subgid (issue 24's host).
    host.ok(
        "useradd -r -s /usr/sbin/nologin remapu && groupadd -r remapg
         echo remapu:200000:65536 >> /etc/subuid
         echo remapg:200000:65536 >> /etc/subgid",
    );
    let subgid_line = host
        .ok("grep -n '^remapg:' /etc/subgid | cut -d: -f1")
        .trim()
        .to_string();
    host.write(
        "/etc/docker/daemon.json",
        r#"{"userns-remap": "remapu:remapg"}"#,
    );
    let f = expect(
        host,
        "user:group",
        "no-subid-ranges",
        "ranges found for user \"remapu\"",
        &[
            &format!("the line /etc/subgid:{subgid_line}: remapg:200000:65536 is for the group"),
            "give that line to remapu",
            "docker-userns enable --repair --user remapu",
        ],
    );
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("no range for user \"remapu\" in /etc/subgid"),
        "{f}"
    );

    // The same cause as a Prometheus gauge.
    let prom = host.ok(
        "docker-userns status --prometheus /root/status.prom >/dev/null && grep '^docker_userns_docker_failed' /root/status.prom",
    );
    assert!(
        prom.contains("docker_userns_docker_failed{cause=\"no-subid-ranges\"} 1\n")
            && prom.contains("docker_userns_docker_failed{cause=\"other\"} 0\n"),
        "{prom}"
    );

    // A caller who may not read the system journal: nothing explained, a note says why.
    let out =
        host.sh("setpriv --reuid=65534 --regid=65534 --clear-groups docker-userns status --json");
    assert_eq!(out.code, 0, "{out}");
    let doc = common::json_doc(&out.stdout, &out);
    assert_eq!(doc["service"]["last_failure"], Value::Null, "{doc:#}");
    assert!(
        doc["notes"]
            .to_string()
            .contains("was not read from the journal: the journal has no lines of docker.service"),
        "{doc:#}"
    );

    // A user name that does not exist.
    host.write("/etc/docker/daemon.json", r#"{"userns-remap": "nosuch"}"#);
    let f = expect(
        host,
        "no such user",
        "remap-account",
        "Error during uid lookup for \"nosuch\"",
        &["create the user nosuch"],
    );
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("the user \"nosuch\""),
        "{f}"
    );

    // The flag in a drop-in and the key in daemon.json.
    host.write("/etc/docker/daemon.json", r#"{"userns-remap": "default"}"#);
    let exec_start = host
        .ok("systemctl show docker.service -p ExecStart --value | sed -n 's/.*argv\\[\\]=\\([^;]*\\);.*/\\1/p'")
        .trim()
        .to_string();
    assert!(exec_start.contains("dockerd"), "{exec_start}");
    host.write(
        "/etc/systemd/system/docker.service.d/remap.conf",
        format!("[Service]\nExecStart=\nExecStart={exec_start} --userns-remap=default\n"),
    );
    host.ok("systemctl daemon-reload");
    expect(
        host,
        "flag conflict",
        "remap-flag-conflict",
        "specified both as a flag and in the configuration file: userns-remap",
        &["passed at /etc/systemd/system/docker.service.d/remap.conf:3"],
    );
    host.ok("rm /etc/systemd/system/docker.service.d/remap.conf && systemctl daemon-reload");

    // The remapped data root cannot be created: a file sits where it goes.
    host.ok("echo remapu:200000:65536 >> /etc/subgid");
    host.write("/etc/docker/daemon.json", r#"{"userns-remap": "remapu"}"#);
    host.ok("touch /var/lib/docker/200000.200000");
    expect(
        host,
        "data root",
        "data-root",
        "Cannot create daemon root: /var/lib/docker/200000.200000",
        &["ls -ld /var/lib/docker/200000.200000"],
    );
    host.ok("rm /var/lib/docker/200000.200000");

    // Crash-looping, caught while systemd starts it again: the attempt before the current
    // one is the failed one (a slow ExecStartPre keeps the new one starting for a while).
    host.write("/etc/docker/daemon.json", r#"{"userns-remap": "nosuch"}"#);
    host.write(
        "/etc/systemd/system/docker.service.d/slow.conf",
        "[Service]\nExecStartPre=/bin/sleep 4\nRestart=always\nRestartSec=1\n",
    );
    host.ok("systemctl daemon-reload");
    let restart =
        host.sh("systemctl reset-failed docker.service; systemctl restart docker.service");
    assert_ne!(restart.code, 0, "{restart}");
    host.ok("for i in $(seq 1 40); do
           s=$(systemctl show docker.service -p SubState --value)
           n=$(systemctl show docker.service -p NRestarts --value)
           [ \"$s\" = start-pre ] && [ \"$n\" -ge 1 ] && exit 0
           sleep 0.25
         done; systemctl status docker.service; exit 1");
    let current = host
        .ok("systemctl show docker.service -p InvocationID --value")
        .trim()
        .to_string();
    let doc = common::json_doc(&host.ok("docker-userns status --json"), "status");
    let svc = &doc["service"];
    assert_eq!(
        (svc["active_state"].as_str(), svc["sub_state"].as_str()),
        (Some("activating"), Some("start-pre")),
        "{svc}"
    );
    assert_eq!(svc["last_failure"]["cause"], "remap-account", "{svc}");
    assert_ne!(
        svc["last_failure"]["invocation_id"],
        current.as_str(),
        "{svc}"
    );
    host.ok(
        "rm /etc/systemd/system/docker.service.d/slow.conf && systemctl daemon-reload
         systemctl stop docker.service; systemctl reset-failed docker.service",
    );

    // Not about remapping: dockerd's own line is quoted.
    host.write("/etc/docker/daemon.json", r#"{"nosuchkey": 1}"#);
    let f = expect(
        host,
        "bad key",
        "other",
        "",
        &["journalctl -u docker.service -b"],
    );
    assert_eq!(
        f["line"],
        "unable to configure the Docker daemon with file /etc/docker/daemon.json: the following directives don't match any configuration option: nosuchkey",
        "{f}"
    );

    // Fixed: docker starts, and status has nothing to explain any more.
    host.write("/etc/docker/daemon.json", "{}\n");
    host.ok("systemctl reset-failed docker.service; systemctl restart docker.service");
    let st = common::json_doc(&host.ok("docker-userns status --json"), "status");
    assert_eq!(st["service"]["active_state"], "active", "{st}");
    assert_eq!(st["service"]["last_failure"], Value::Null, "{st}");
}

#[test]
fn status_explains_a_failed_docker_bookworm() {
    let host = Host::boot_suite("sfail", "bookworm");
    common_cases(&host);
}

#[test]
fn status_explains_a_failed_docker_trixie() {
    let host = Host::boot_suite("sfail", "trixie");
    common_cases(&host);
}

#[test]
fn status_explains_a_failed_docker_forky() {
    let host = Host::boot_suite("sfail", "forky");
    common_cases(&host);
}

/// docker-ce 29: the ID-mapping line in 29's words, and the containerd image store switched
/// on explicitly, which 29 refuses with remapping; then a crash loop (Restart=always) that
/// ends at the start limit still names the cause.
#[test]
fn status_explains_a_failed_docker_docker29() {
    let host = Host::boot_suite("sfail", "docker29");
    host.ok(
        "useradd -r -s /usr/sbin/nologin remapu && groupadd -r remapg
         echo remapu:200000:65536 >> /etc/subuid
         echo remapg:200000:65536 >> /etc/subgid",
    );
    host.write(
        "/etc/docker/daemon.json",
        r#"{"userns-remap": "remapu:remapg"}"#,
    );
    expect(
        &host,
        "user:group",
        "no-subid-ranges",
        "error creating ID mappings: no subuid ranges found for user \"remapu\"",
        &["is for the group", "give that line to remapu"],
    );

    host.ok("echo remapu:200000:65536 >> /etc/subgid");
    host.write(
        "/etc/docker/daemon.json",
        r#"{"userns-remap": "remapu", "features": {"containerd-snapshotter": true}}"#,
    );
    expect(
        &host,
        "snapshotter",
        "snapshotter-conflict",
        "containerd-snapshotter is explicitly enabled, but is not compatible with userns remapping",
        &["remove \"containerd-snapshotter\": true"],
    );

    // Let systemd restart it until the start limit (3 in 60 s, RestartSec=2): failed for good,
    // with NRestarts climbed, and the cause still named.
    host.ok("for i in $(seq 1 40); do
           [ \"$(systemctl show docker.service -p ActiveState --value)\" = failed ] && exit 0
           sleep 0.5
         done; systemctl status docker.service; exit 1");
    let doc = common::json_doc(&host.ok("docker-userns status --json"), "status");
    let svc = &doc["service"];
    assert_eq!(svc["active_state"], "failed", "{svc}");
    assert!(svc["n_restarts"].as_u64().unwrap() >= 1, "{svc}");
    assert_eq!(
        svc["last_failure"]["cause"], "snapshotter-conflict",
        "{svc}"
    );
}
