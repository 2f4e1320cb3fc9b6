//! The fault matrix, on one real systemd + D-Bus + dockerd host (tests/testhost/): a table of
//! faults (kill -9 at each step of a run, a docker that refuses the new configuration, one that
//! dies seconds after starting, a full state directory, a read-only /etc, malformed input),
//! each followed by the one invariant that matters: the host is whole. Either the three files
//! are byte for byte as before the fault and docker runs in its old mode, or the change is
//! complete and docker runs remapped and health-gated; never a half state, never docker left
//! down, and a failed command says why. The kill -9 matrix runs on docker-ce 29 (`docker29`)
//! too. Needs root; fails, never skips.

mod common;
#[path = "testhost/mod.rs"]
mod testhost;

use serde_json::Value;
use testhost::{Host, Output};

const FILES: &str = "/etc/subuid /etc/subgid /etc/docker/daemon.json";

fn files(host: &Host) -> String {
    host.ok(&format!(
        "for f in {FILES}; do echo \"== $f\"; cat \"$f\" 2>/dev/null || echo MISSING; done"
    ))
}

fn remapped(host: &Host) -> bool {
    host.ok("docker info --format '{{json .SecurityOptions}}'")
        .contains("name=userns")
}

fn json(out: &Output) -> Value {
    common::json_doc(&out.stdout, out)
}

/// The invariant after a fault (and the recovery that the next run does): docker is up and
/// answers, no journal is left, and either nothing changed or everything did.
fn assert_whole(host: &Host, case: &str, before: &str, was_remapped: bool) -> bool {
    // The next run (here `status`, as root) recovers what a killed run left.
    let st = host.recovered(case);
    assert_eq!(json(&st)["unfinished"], Value::Null, "{case}: {st}");
    host.ok("docker version >/dev/null");
    let now = files(host);
    if now == before {
        assert_eq!(
            remapped(host),
            was_remapped,
            "{case}: files as before, but the engine is not in its old mode"
        );
        false
    } else {
        let daemon = host
            .read_string("/etc/docker/daemon.json")
            .unwrap_or_default();
        assert!(
            daemon.contains("userns-remap") && remapped(host),
            "{case}: files changed but the change is not complete: {now}"
        );
        let subuid = host.read_string("/etc/subuid").unwrap_or_default();
        assert!(subuid.contains("dockremap:"), "{case}: {subuid}");
        true
    }
}

/// Back to remapping off, for the next case.
fn reset(host: &Host) {
    let out = host.sh("docker-userns disable --yes --json");
    assert_eq!(out.code, 0, "reset: {out}");
    assert!(!remapped(host));
}

/// `enable` stopped at `point` (a debug-build failpoint that sleeps) and killed with SIGKILL.
fn kill_at(host: &Host, point: &str) {
    host.ok(&format!(
        "rm -f /tmp/k.log
         DOCKER_USERNS_FAILPOINTS={point}=sleep setsid docker-userns enable --yes >/tmp/k.log 2>&1 &
         for i in $(seq 600); do grep -q 'failpoint {point}' /tmp/k.log && break; sleep 0.05; done
         grep -q 'failpoint {point}' /tmp/k.log || {{ cat /tmp/k.log; exit 1; }}
         pkill -9 -x docker-userns; sleep 0.2"
    ));
}

#[test]
fn every_fault_leaves_the_host_whole() {
    let host = Host::boot("faults");
    host.sh("systemctl is-system-running --wait");
    kill_9_at_every_step(&host);

    // docker refuses the new configuration: rolled back (exit 5), with docker's words.
    let before = files(&host);
    host.write(
        "/etc/systemd/system/docker.service.d/refuse.conf",
        "[Service]\nExecStartPre=/bin/sh -c '! grep -q userns-remap /etc/docker/daemon.json'\n",
    );
    host.ok("systemctl daemon-reload");
    let out = host.sh("docker-userns enable --yes --json");
    assert_eq!(out.code, 5, "{out}");
    assert!(
        json(&out)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("docker.service"),
        "{out}"
    );
    assert!(!assert_whole(&host, "failing start", &before, false));
    host.ok("rm /etc/systemd/system/docker.service.d/refuse.conf && systemctl daemon-reload");

    // docker dies 4 s after a remapped start: rolled back within the settle window.
    let before = files(&host);
    host.write(
        "/etc/systemd/system/docker.service.d/late.conf",
        "[Service]\nExecStartPost=/bin/sh -c 'grep -q userns-remap /etc/docker/daemon.json && { (sleep 4; kill -9 $MAINPID) >/dev/null 2>&1 & } ; true'\n",
    );
    host.ok("systemctl daemon-reload");
    let out = host.sh("docker-userns enable --yes --json");
    assert_eq!(out.code, 5, "{out}");
    assert!(out.stderr.contains("did not stay up"), "{out}");
    host.ok("sleep 5");
    assert!(!assert_whole(&host, "late death", &before, false));
    host.ok("rm /etc/systemd/system/docker.service.d/late.conf && systemctl daemon-reload");

    // No room for the journal: nothing is changed, and the message says why.
    let before = files(&host);
    host.ok("mount -t tmpfs -o size=64k tmpfs /var/lib/docker-userns
         dd if=/dev/zero of=/var/lib/docker-userns/fill bs=4k count=100 2>/dev/null || true");
    let out = host.sh("docker-userns enable --yes --json");
    host.ok("umount -l /var/lib/docker-userns");
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stderr.contains("No space left") || out.stderr.contains("space"),
        "{out}"
    );
    assert!(!assert_whole(&host, "full state directory", &before, false));

    // A read-only /etc: nothing is changed, and the message names the file.
    let before = files(&host);
    host.ok("mount --bind /etc /etc && mount -o remount,bind,ro /etc");
    let out = host.sh("docker-userns enable --yes --json");
    host.ok("umount -l /etc");
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stderr.contains("/etc/") && out.stderr.contains("Read-only"),
        "{out}"
    );
    assert!(!assert_whole(&host, "read-only /etc", &before, false));

    // Malformed input: refused before anything happens (exit 3), naming the file.
    host.write("/etc/docker/daemon.json", "{\"debug\": true,,}\n");
    let before = files(&host);
    let out = host.sh("docker-userns enable --yes --json");
    assert_eq!(out.code, 3, "{out}");
    assert!(out.stderr.contains("/etc/docker/daemon.json"), "{out}");
    // (status refuses an unreadable daemon.json too, so the invariant is checked directly.)
    assert_eq!(files(&host), before, "malformed daemon.json: files changed");
    host.ok("systemctl is-active -q docker.service && docker version >/dev/null");
    assert!(!remapped(&host));
    host.ok("rm /etc/docker/daemon.json");

    // And after all of it, the change goes through.
    let out = host.sh("docker-userns enable --yes --json");
    assert_eq!(out.code, 0, "{out}");
    assert!(remapped(&host));

    repair_faults(&host);
}

/// kill -9 at each step of a run, in the order a run takes them, each followed by `status`
/// (which recovers) and the invariant. The user is created by the first one and kept (as a
/// rollback keeps it); every later run writes the ranges and daemon.json again.
fn kill_9_at_every_step(host: &Host) {
    let mut converged_cases = Vec::new();
    for point in [
        "apply:after-user",
        "apply:after-subuid",
        "apply:before-daemon-json",
        "converge:after-apply",
        "restart:after-stop",
        "restart:before-start",
        "converge:before-finish",
    ] {
        let before = files(host);
        let was = remapped(host);
        kill_at(host, point);
        if assert_whole(host, &format!("kill -9 at {point}"), &before, was) {
            converged_cases.push(point);
            reset(host);
        }
    }
    // Only a run killed after its restart had passed the health gate may count as done.
    assert_eq!(converged_cases, ["converge:before-finish"]);
}

/// The kill -9 matrix on docker-ce 29: its unit restarts always and is socket-activated, and
/// the remapped engine switches the image store; none of it may leave a half state.
#[test]
fn every_kill_9_leaves_a_docker29_host_whole() {
    let host = Host::boot_suite("faults29", "docker29");
    host.sh("systemctl is-system-running --wait");
    kill_9_at_every_step(&host);
}

/// The data root docker runs on.
fn data_root(host: &Host) -> String {
    host.ok("docker info --format '{{.DockerRootDir}}'")
        .trim()
        .to_string()
}

/// The invariant for `--repair` after a fault and the next run (`status`): docker runs, no
/// record is left, and either the files, the data root's name and every owner and mode below
/// it are as before, or the repair is complete (range moved, docker on the renamed root, every
/// owner of the old range shifted by the same offset). Returns true for the latter, and the
/// notes of `status` (what it says it found).
fn assert_repair_whole(
    host: &Host,
    case: &str,
    before: &str,
    old_root: &str,
    tree: &str,
) -> (bool, String) {
    let st = host.recovered(case);
    let notes = json(&st)["notes"].to_string();
    if files(host) == before {
        assert_eq!(data_root(host), old_root, "{case}");
        assert!(
            host.owners(old_root) == tree,
            "{case}: owners not as before"
        );
        (false, notes)
    } else {
        let now = data_root(host);
        assert_ne!(now, old_root, "{case}: files changed, data root not moved");
        assert!(host.sh(&format!("test -e {old_root}")).code != 0, "{case}");
        // The offset of the move, from the two names (UID.GID).
        let start = |p: &str| -> i64 {
            p.rsplit('/')
                .next()
                .unwrap()
                .split('.')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let (from, off) = (start(old_root), start(&now) - start(old_root));
        let expected: Vec<String> = tree
            .lines()
            .map(|l| {
                let mut w: Vec<String> = l.split(' ').map(str::to_string).collect();
                let n = w.len();
                for id in &mut w[n - 3..n - 1] {
                    let v: i64 = id.parse().unwrap();
                    if (from..from + 65536).contains(&v) {
                        *id = (v + off).to_string();
                    }
                }
                w.join(" ")
            })
            .collect();
        assert!(
            host.owners(&now)
                .lines()
                .eq(expected.iter().map(String::as_str)),
            "{case}: owners not shifted exactly"
        );
        (true, notes)
    }
}

/// `--repair` in the fault matrix: a range dockerd 20.10 gave next to bob's (it overlaps it),
/// with an image and a volume of more than one progress batch of inodes; a kill -9 in the
/// middle of the shift with docker started behind the tool's back, and a docker that dies
/// seconds after the repaired start, each leave the host as before; then the repair completes.
fn repair_faults(host: &Host) {
    host.ok("docker-userns disable --yes >/dev/null");
    host.ok("echo bob:110000:100 >> /etc/subuid && echo bob:110000:100 >> /etc/subgid");
    host.write(
        "/etc/docker/daemon.json",
        "{\"userns-remap\": \"default\"}\n",
    );
    host.ok("systemctl restart docker");
    assert!(
        host.read_string("/etc/subuid")
            .unwrap()
            .contains("dockremap:100000:65536")
    );
    let old_root = data_root(host);
    assert_eq!(old_root, "/var/lib/docker/100000.100000");
    host.reimport_image();
    host.ok("docker run --rm -v data:/data busybox:local sh -c 'mkdir /data/m && chown 1000:1000 /data/m'");
    host.ok(&format!(
        "cd {old_root}/volumes/data/_data/m && seq 5000 | xargs touch && chown -R 101000:101000 ."
    ));
    let before = files(host);
    let tree = host.owners(&old_root);

    // kill -9 in the middle of the shift, then docker started behind the tool's back.
    host.ok(
        "rm -f /tmp/k.log
         DOCKER_USERNS_FAILPOINTS=repair:during-shift=sleep setsid docker-userns enable --repair --yes >/tmp/k.log 2>&1 &
         for i in $(seq 1200); do grep -q 'failpoint repair:during-shift' /tmp/k.log && break; sleep 0.05; done
         grep -q 'failpoint repair:during-shift' /tmp/k.log || { cat /tmp/k.log; exit 1; }
         pkill -9 -x docker-userns; sleep 0.3; systemctl start docker",
    );
    let case = "kill -9 mid-shift, docker started";
    let (done, notes) = assert_repair_whole(host, case, &before, &old_root, &tree);
    assert!(
        !done && notes.contains("was rolled back first"),
        "{case}: {notes}"
    );

    // docker dies 4 s after the repaired start: rolled back within the settle window.
    host.write(
        "/etc/systemd/system/docker.service.d/late.conf",
        "[Service]\nExecStartPost=/bin/sh -c 'grep -q dockremap:100000 /etc/subuid || { (sleep 4; kill -9 $MAINPID) >/dev/null 2>&1 & } ; true'\n",
    );
    host.ok("systemctl daemon-reload");
    let out = host.sh("docker-userns enable --repair --yes --json");
    assert_eq!(out.code, 5, "{out}");
    assert!(out.stderr.contains("did not stay up"), "{out}");
    host.ok("sleep 5");
    let case = "late death after the repair";
    assert!(!assert_repair_whole(host, case, &before, &old_root, &tree).0);
    host.ok("rm /etc/systemd/system/docker.service.d/late.conf && systemctl daemon-reload");

    // And then the repair goes through.
    let out = host.sh("docker-userns enable --repair --yes --json");
    assert_eq!(out.code, 0, "{out}");
    assert!(assert_repair_whole(host, "repair", &before, &old_root, &tree).0);
}
