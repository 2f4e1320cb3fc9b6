//! `enable` and `disable` against a real systemd + D-Bus + dockerd (a Debian 12 container
//! booted with systemd-nspawn, see tests/testhost/): restart, health gate, idempotence, the
//! start limit, rollback, crash recovery, concurrency, and refusals that change nothing. A
//! dockerd dying after a remapped start also runs on docker-ce 29 (`docker29`:
//! `Restart=always`; its start limit is in tests/real_host_docker28.rs). Needs root; fails,
//! never skips, when the host cannot be booted.

mod common;
#[path = "testhost/mod.rs"]
mod testhost;

use serde_json::Value;
use testhost::{Host, Output};

const FILES: &str = "/etc/subuid /etc/subgid /etc/docker/daemon.json";

fn json(out: &Output) -> Value {
    common::json_doc(&out.stdout, out)
}

fn run(host: &Host, args: &str) -> Output {
    host.sh(&format!("docker-userns {args}"))
}

fn ok_json(host: &Host, args: &str) -> Value {
    let out = run(host, args);
    assert_eq!(out.code, 0, "docker-userns {args}: {out}");
    json(&out)
}

/// Content of the three files (missing ones marked), to compare before and after.
fn files(host: &Host) -> String {
    host.ok(&format!(
        "for f in {FILES}; do echo \"== $f\"; cat \"$f\" 2>/dev/null || echo MISSING; done"
    ))
}

fn assert_active(host: &Host) {
    assert_eq!(
        host.sh("systemctl is-active docker.service").stdout.trim(),
        "active"
    );
    host.ok("docker version >/dev/null");
}

fn security_options(host: &Host) -> String {
    host.ok("docker info --format '{{json .SecurityOptions}}'")
}

/// Host uid of a container's main process.
fn host_uid_of(host: &Host, container: &str) -> String {
    let pid = host.ok(&format!(
        "docker inspect -f '{{{{.State.Pid}}}}' {container}"
    ));
    host.ok(&format!("stat -c %u /proc/{}", pid.trim()))
        .trim()
        .to_string()
}

#[test]
fn enable_remaps_is_idempotent_and_survives_the_start_limit() {
    let host = Host::boot("flow");

    // Before: root in the container is root on the host.
    assert_eq!(
        host.ok("docker run --rm --pull=never busybox:local id -u")
            .trim(),
        "0"
    );
    host.ok("docker run -d --name before --pull=never busybox:local sleep 600");
    assert_eq!(host_uid_of(&host, "before"), "0");
    assert!(!security_options(&host).contains("userns"));

    // A running container blocks the restart unless --yes; nothing changes.
    let (files0, inv0) = (files(&host), host.invocation());
    let refused = run(&host, "enable --json");
    assert_eq!(refused.code, 3, "{refused}");
    assert!(
        refused
            .stderr
            .contains("running container(s) would be stopped")
            && refused.stderr.contains("before"),
        "{refused}"
    );
    assert_eq!(
        (files(&host), host.invocation()),
        (files0, inv0),
        "refused enable changed something"
    );
    assert!(
        host.sh("getent passwd dockremap").code != 0,
        "user created by a refused run"
    );

    // With --yes: files, restart, health gate.
    let done = ok_json(&host, "enable --yes --json");
    assert_eq!(done["changed"], true);
    assert_eq!(done["restarted"], true, "{done}");
    assert!(done["downtime_ms"].as_u64().unwrap() > 0);
    let start = done["subuid"]["start"].as_u64().unwrap();
    assert_eq!(start, 100000);
    assert!(security_options(&host).contains("name=userns"));
    assert_eq!(
        host.ok("docker info --format '{{.DockerRootDir}}'").trim(),
        format!("/var/lib/docker/{start}.{}", done["subgid"]["start"])
    );
    assert_eq!(
        host.sh("docker ps -q").stdout.trim(),
        "",
        "the restart stopped the container"
    );
    // Images of the old data root are not visible any more.
    assert!(host.sh("docker image inspect busybox:local").code != 0);
    host.reimport_image();

    // After: still root inside, the range start outside; host root's files are off limits.
    assert_eq!(
        host.ok("docker run --rm --pull=never busybox:local id -u")
            .trim(),
        "0"
    );
    host.ok("docker run -d --name after --pull=never busybox:local sleep 600");
    assert_eq!(host_uid_of(&host, "after"), start.to_string());
    host.ok("docker rm -f after >/dev/null");
    let bind = host.sh("docker run --rm -v /root:/r --pull=never busybox:local touch /r/x");
    assert!(
        bind.code != 0 && bind.stderr.contains("Permission denied"),
        "{bind}"
    );
    let privileged = host.sh("docker run --rm --privileged --pull=never busybox:local true");
    assert!(
        privileged
            .stderr
            .contains("privileged mode is incompatible with user namespaces"),
        "{privileged}"
    );

    // Idempotent: no change, no restart (same invocation).
    let inv = host.invocation();
    let again = ok_json(&host, "enable --json");
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(again["restarted"], false);
    assert_eq!(
        host.invocation(),
        inv,
        "a converged enable restarted docker"
    );
    // `plan` without access to the engine socket decides from the files alone, and says so.
    let nobody =
        host.sh("setpriv --reuid=65534 --regid=65534 --clear-groups docker-userns plan --json");
    assert_eq!(nobody.code, 0, "{nobody}");
    let p = json(&nobody);
    assert_eq!(p["changed"], false, "{p}");
    assert!(
        p["notes"].to_string().contains("engine did not answer"),
        "{p}"
    );

    // Six restarts within a minute: well past StartLimitBurst=3.
    for round in 0..3 {
        let d = ok_json(&host, "disable --json");
        assert_eq!(
            (d["changed"].clone(), d["restarted"].clone()),
            (Value::Bool(true), Value::Bool(true)),
            "round {round}: {d}"
        );
        assert!(!security_options(&host).contains("userns"));
        let e = ok_json(&host, "enable --json");
        assert_eq!(e["restarted"], true, "round {round}: {e}");
        assert!(security_options(&host).contains("name=userns"));
    }
    assert_active(&host);
}

#[test]
fn docker_refusing_the_new_config_is_rolled_back() {
    let host = Host::boot("refuse");
    // Let boot finish (journald's flush to /var/log/journal included) so the journal lines of
    // the failure below are all in one place.
    host.sh("systemctl is-system-running --wait");
    host.write(
        "/etc/systemd/system/docker.service.d/refuse-remap.conf",
        "[Service]\nExecStartPre=/bin/sh -c '! grep -q userns-remap /etc/docker/daemon.json'\n",
    );
    host.ok("systemctl daemon-reload");
    let before = files(&host);
    let out = run(&host, "enable --json");
    assert_eq!(out.code, 5, "{out}");
    let doc = json(&out);
    assert_eq!(doc["error"]["kind"], "rolled-back");
    let msg = doc["error"]["message"].as_str().unwrap();
    assert!(msg.contains("restored byte for byte"), "{msg}");
    assert!(msg.contains("Result=exit-code"), "{msg}");
    assert!(
        msg.contains("Control process exited"),
        "journal lines expected: {msg}"
    );
    assert_eq!(files(&host), before, "files not restored");
    assert_active(&host);
    assert!(!security_options(&host).contains("userns"));
    assert!(
        host.read("/var/lib/docker-userns/transaction.json")
            .is_none(),
        "record left behind"
    );
}

#[test]
fn a_killed_run_is_recovered_and_concurrent_runs_serialize() {
    let host = Host::boot("crash");
    let before = files(&host);
    // Stall right after docker was stopped, then kill -9 the tool there.
    host.ok(
        "DOCKER_USERNS_FAILPOINTS=restart:after-stop=sleep setsid docker-userns enable >/tmp/killed.log 2>&1 &
         for i in $(seq 300); do systemctl is-active -q docker.service || break; sleep 0.05; done
         test -e /var/lib/docker-userns/transaction.json",
    );
    assert_eq!(
        host.sh("systemctl is-active docker.service").stdout.trim(),
        "inactive"
    );
    host.ok("pkill -9 -x docker-userns");
    assert!(
        host.read("/var/lib/docker-userns/transaction.json")
            .is_some()
    );

    // The next run rolls the interrupted one back, then does its own work.
    let done = ok_json(&host, "enable --json");
    let notes = done["notes"].to_string();
    assert!(notes.contains("interrupted run"), "{done}");
    assert_eq!(done["restarted"], true);
    assert_active(&host);
    assert!(security_options(&host).contains("name=userns"));
    assert!(
        host.read("/var/lib/docker-userns/transaction.json")
            .is_none()
    );
    assert_ne!(files(&host), before);

    // Two runs at once: one restarts, the other waits for it and finds nothing to do.
    let both = host.ok(
        "(docker-userns disable --json >/tmp/a.json 2>/tmp/a.err; echo $? >/tmp/a.rc) &
         (docker-userns disable --json >/tmp/b.json 2>/tmp/b.err; echo $? >/tmp/b.rc) &
         wait; cat /tmp/a.rc /tmp/b.rc",
    );
    assert_eq!(
        both.split_whitespace().collect::<Vec<_>>(),
        ["0", "0"],
        "{both}"
    );
    let a: Value = serde_json::from_slice(&host.read("/tmp/a.json").unwrap()).unwrap();
    let b: Value = serde_json::from_slice(&host.read("/tmp/b.json").unwrap()).unwrap();
    let restarted = [&a, &b].iter().filter(|d| d["restarted"] == true).count();
    assert_eq!(restarted, 1, "exactly one run restarts: {a} {b}");
    let errs = format!(
        "{}{}",
        host.read_string("/tmp/a.err").unwrap(),
        host.read_string("/tmp/b.err").unwrap()
    );
    assert!(
        errs.contains("another docker-userns run is in progress"),
        "{errs}"
    );
    assert_active(&host);
    assert!(!security_options(&host).contains("userns"));
}

#[test]
fn no_bus_masked_or_missing_docker_changes_nothing() {
    let host = Host::boot("refusals");
    let before = files(&host);
    let unchanged = |what: &str| {
        assert_eq!(files(&host), before, "{what}: files changed");
        assert!(
            host.sh("getent passwd dockremap").code != 0,
            "{what}: user created"
        );
    };

    let nobus =
        host.sh("DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent docker-userns --json enable");
    assert_eq!(nobus.code, 1, "{nobus}");
    assert!(
        nobus.stderr.contains("cannot connect to the system D-Bus"),
        "{nobus}"
    );
    unchanged("no bus");

    host.ok("systemctl mask docker.service >/dev/null 2>&1");
    let masked = run(&host, "--json enable");
    assert_eq!(masked.code, 3, "{masked}");
    assert!(
        masked.stderr.contains("docker.service is masked"),
        "{masked}"
    );
    unchanged("masked");
    host.ok("systemctl unmask docker.service >/dev/null 2>&1");

    host.ok("systemctl stop docker.socket docker.service && mv /lib/systemd/system/docker.service /etc/init.d/docker /root/ && systemctl daemon-reload");
    let missing = run(&host, "--json enable");
    assert_eq!(missing.code, 3, "{missing}");
    assert!(missing.stderr.contains("not known to systemd"), "{missing}");
    unchanged("missing unit");
}

#[test]
fn debian_13_validates_with_dockerd_before_restarting() {
    // Debian 13: systemd 257, docker 26.1 (has `dockerd --validate`).
    let host = Host::boot_suite("trixie", "trixie");
    let done = ok_json(&host, "enable --json");
    assert_eq!(done["restarted"], true, "{done}");
    assert!(
        done["notes"]
            .to_string()
            .contains("dockerd --validate accepted"),
        "{done}"
    );
    assert!(security_options(&host).contains("name=userns"));
    let again = ok_json(&host, "enable --json");
    assert_eq!(again["changed"], false, "{again}");
    let d = ok_json(&host, "disable --json");
    assert_eq!(d["restarted"], true, "{d}");
    assert!(!security_options(&host).contains("userns"));

    // An ExecStart that wraps dockerd in a shell: its words are not dockerd's flags, so it is
    // not validated (and sh is not blamed); the health gate decides, and the change works.
    host.write(
        "/etc/systemd/system/docker.service.d/wrapper.conf",
        "[Service]\nExecStart=\nExecStart=/bin/sh -c 'exec /usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock'\n",
    );
    host.ok("systemctl daemon-reload && systemctl restart docker.service");
    let done = ok_json(&host, "enable --json");
    assert_eq!(done["restarted"], true, "{done}");
    let notes = done["notes"].to_string();
    assert!(
        notes.contains("not validated with dockerd --validate"),
        "{done}"
    );
    assert!(security_options(&host).contains("name=userns"));
}

#[test]
fn signals_wait_for_the_restart_and_rollbacks_undo_only_their_own_changes() {
    let host = Host::boot("undo");
    host.sh("systemctl is-system-running --wait");

    // A rollback restores only what this run wrote: a line someone adds to /etc/subuid while
    // docker restarts is kept, and the message says the file was left as found.
    host.write(
        "/etc/systemd/system/docker.service.d/refuse-remap.conf",
        "[Service]\nExecStartPre=/bin/sh -c '! grep -q userns-remap /etc/docker/daemon.json'\n",
    );
    host.ok("systemctl daemon-reload");
    let out = host.sh(
        "DOCKER_USERNS_FAILPOINTS=restart:after-stop=sleep3 docker-userns enable --json >/tmp/e.json 2>/tmp/e.err &
         pid=$!
         for i in $(seq 300); do systemctl is-active -q docker.service || break; sleep 0.05; done
         echo carol:900000:65536 >> /etc/subuid
         wait $pid; echo rc=$?; cat /tmp/e.err",
    );
    assert!(out.stdout.contains("rc=5"), "{out}");
    assert!(
        out.stdout
            .contains("/etc/subuid changed after this run wrote it and was left as found"),
        "{out}"
    );
    let subuid = host.read_string("/etc/subuid").unwrap();
    assert!(
        subuid.contains("carol:900000:65536") && subuid.contains("dockremap:"),
        "{subuid}"
    );
    assert!(
        host.read("/etc/docker/daemon.json").is_none(),
        "daemon.json restored (absent)"
    );
    assert_active(&host);
    host.ok("rm /etc/systemd/system/docker.service.d/refuse-remap.conf && systemctl daemon-reload");

    // SIGTERM while docker is stopped is held back until the restart is done.
    let out = host.sh(
        "DOCKER_USERNS_FAILPOINTS=restart:after-stop=sleep3 docker-userns enable >/dev/null 2>/tmp/t.err &
         pid=$!
         for i in $(seq 300); do systemctl is-active -q docker.service || break; sleep 0.05; done
         kill -TERM $pid; wait $pid; echo rc=$?; cat /tmp/t.err",
    );
    assert!(out.stdout.contains("rc=0"), "{out}");
    assert!(out.stdout.contains("held back"), "{out}");
    assert_active(&host);
    assert!(security_options(&host).contains("name=userns"));

    // A run killed after its restart succeeded is recognised as done, not restarted again.
    ok_json(&host, "disable --json");
    host.ok(
        "DOCKER_USERNS_FAILPOINTS=converge:before-finish=sleep setsid docker-userns enable >/dev/null 2>&1 &
         for i in $(seq 600); do docker info 2>/dev/null | grep -q userns && break; sleep 0.05; done
         sleep 0.5; pkill -9 -x docker-userns; sleep 0.2
         test -e /var/lib/docker-userns/transaction.json",
    );
    let inv = host.invocation();
    let done = ok_json(&host, "enable --json");
    assert!(
        done["notes"]
            .to_string()
            .contains("had already restarted docker as intended"),
        "{done}"
    );
    assert_eq!(done["restarted"], false, "{done}");
    assert_eq!(host.invocation(), inv, "docker was restarted again");
    assert!(
        host.read("/var/lib/docker-userns/transaction.json")
            .is_none()
    );
}

#[test]
fn recovery_matches_the_engine_to_the_restored_files_and_status_reads_after_it() {
    let host = Host::boot("behind");
    let before = files(&host);
    // Killed after writing the files, before touching docker; then docker is restarted behind
    // the tool's back (a reboot, an admin) and comes up remapped from the half-done change.
    host.ok(
        "DOCKER_USERNS_FAILPOINTS=converge:after-apply=sleep setsid docker-userns enable >/tmp/k.log 2>&1 &
         for i in $(seq 300); do grep -q userns-remap /etc/docker/daemon.json 2>/dev/null && break; sleep 0.05; done
         sleep 0.5; pkill -9 -x docker-userns; sleep 0.2
         test -e /var/lib/docker-userns/transaction.json
         systemctl restart docker.service",
    );
    assert!(security_options(&host).contains("name=userns"));

    // status as root rolls the run back first, brings the engine back in line with the
    // restored files, and reports what is there afterwards.
    let st = ok_json(&host, "status --json");
    assert!(
        st["notes"].to_string().contains("was rolled back first"),
        "{st}"
    );
    assert_eq!(st["remapping_configured"], Value::Null, "{st}");
    assert_eq!(st["remapping_active"], false, "{st}");
    assert_eq!(st["unfinished"], Value::Null, "{st}");
    assert_eq!(files(&host), before, "files not restored");
    assert_active(&host);
    assert!(!security_options(&host).contains("userns"));

    // status while an enable is restarting docker waits for it, then reports its result, not
    // a stale unfinished run.
    let out = host.sh(
        "DOCKER_USERNS_FAILPOINTS=restart:after-stop=sleep3 docker-userns enable >/dev/null 2>&1 &
         pid=$!
         for i in $(seq 300); do systemctl is-active -q docker.service || break; sleep 0.05; done
         docker-userns status --json; wait $pid; echo \"rc=$?\" >&2",
    );
    assert!(out.stderr.contains("rc=0"), "{out}");
    let st = json(&out);
    assert_eq!(st["unfinished"], Value::Null, "{st}");
    assert_eq!(st["remapping_configured"], "default", "{st}");
    assert_eq!(st["remapping_active"], true, "{st}");
}

#[test]
fn a_docker_that_dies_seconds_after_a_remapped_start_is_rolled_back() {
    late_death("bookworm");
}

/// docker-ce's `Restart=always` (RestartSec=2) brings the dead dockerd back inside the settle
/// window: still a failed start, rolled back.
#[test]
fn a_docker_that_dies_seconds_after_a_remapped_start_is_rolled_back_docker29() {
    late_death("docker29");
}

fn late_death(suite: &str) {
    let host = Host::boot_suite(&format!("late-{suite}"), suite);
    host.sh("systemctl is-system-running --wait");
    let before = files(&host);
    // dockerd says it is ready, then dies 4 s later whenever remapping is configured: after
    // the old fixed 2 s settle window, well within the default one.
    host.write(
        "/etc/systemd/system/docker.service.d/late-death.conf",
        "[Service]\nExecStartPost=/bin/sh -c 'grep -q userns-remap /etc/docker/daemon.json && { (sleep 4; kill -9 $MAINPID) >/dev/null 2>&1 & } ; true'\n",
    );
    host.ok("systemctl daemon-reload");
    let out = run(&host, "enable --json");
    assert_eq!(out.code, 5, "{out}");
    let msg = json(&out)["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("did not stay up"), "{msg}");
    assert!(msg.contains("settle window"), "{msg}");
    assert_eq!(files(&host), before, "files not restored");
    host.ok("sleep 5");
    assert_active(&host);
    assert!(!security_options(&host).contains("userns"));
}
