//! `shift` on a booted test host (Debian 12, docker 20.10): a bind-mounted host directory that
//! a remapped container's root cannot write becomes writable after `shift --to remapped`, with
//! in-container owners as before (root, uid 1000, a setuid file), `--dry-run` changes nothing,
//! a rerun changes nothing, `--to host` gives back exactly the tree it started from, and system
//! trees, docker's data root and ids the mapping cannot express are refused with nothing
//! changed. Into host ids, a container's setuid file or file capability is refused (exit 3,
//! nothing changed) or dropped when asked, never kept; `disable --carry volumes` fails such a
//! volume. Docker's data root is refused by its real path too; a `shift` killed at a log batch
//! is finished by the next run (the other direction is refused until then); `shift` waits for
//! the run lock; a parallel `shift --jobs 4` killed mid-batch is finished exactly by the next
//! run. The first case (a bind mount there and back) also runs on docker-ce 29
//! (`docker29`). Needs root; fails, never skips.

mod common;
#[path = "testhost/mod.rs"]
mod testhost;

use serde_json::Value;
use testhost::{Host, Output};

fn json(out: &Output) -> Value {
    common::json_doc(&out.stdout, out)
}

#[test]
fn shift_gives_a_bind_mount_to_the_remapped_root_and_back() {
    shift_there_and_back("bookworm");
}

/// The same on docker-ce 29 (remapped, overlay2 in the remapped data root).
#[test]
fn shift_gives_a_bind_mount_to_the_remapped_root_and_back_docker29() {
    shift_there_and_back("docker29");
}

fn shift_there_and_back(suite: &str) {
    let host = Host::boot_suite(&format!("shift-{suite}"), suite);
    let out = host.sh("docker-userns enable --json --settle 2");
    assert_eq!(out.code, 0, "{out}");
    host.reimport_image();
    host.ok(
        "mkdir -p /srv/app/data/sub && echo hi > /srv/app/data/f && cp /bin/true /srv/app/data/suid \
         && chmod 4755 /srv/app/data/suid && chown 1000:1000 /srv/app/data/sub && ln -s /etc/passwd /srv/app/data/link",
    );
    let before = host.owners("/srv/app/data");
    let run = "docker run --rm -v /srv/app/data:/d busybox:local";

    // Remapped root cannot write the root-owned directory.
    let denied = host.sh(&format!("{run} touch /d/new"));
    assert_ne!(
        denied.code, 0,
        "remapped root wrote a root-owned host dir: {denied}"
    );

    // Refusals change nothing.
    for (args, needle) in [
        ("/etc --to remapped", "system tree"),
        ("/var/lib/docker --to remapped", "data root"),
        ("/srv --to remapped", "system tree"),
    ] {
        let r = host.sh(&format!("docker-userns shift {args} --json"));
        assert_eq!(r.code, 3, "{args}: {r}");
        assert!(
            json(&r)["error"]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{args}: {r}"
        );
    }
    host.ok("mkdir -p /srv/odd && touch /srv/odd/x && chown 70000 /srv/odd/x");
    let r = host.sh("docker-userns shift /srv/app/data /srv/odd --to remapped");
    assert_eq!(r.code, 3, "{r}");
    assert!(
        r.stderr.contains("/srv/odd/x") && r.stderr.contains("outside"),
        "{r}"
    );
    // uid 70000 is outside, gid 0 is not: one id on one inode.
    assert!(r.stderr.contains("1 id(s) on 1 inode(s)"), "{r}");
    assert_eq!(
        host.owners("/srv/app/data"),
        before,
        "a refused shift changed something"
    );

    // Dry run: what would change, nothing changed.
    let dry = json(&host.sh("docker-userns shift /srv/app/data --to remapped --dry-run --json"));
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["roots"][0]["shifted"], 5, "{dry}");
    assert_eq!(host.owners("/srv/app/data"), before);

    // The shift.
    let done = json(&host.sh("docker-userns shift /srv/app/data --to remapped --json"));
    let start = done["uid_to"].as_u64().unwrap();
    assert_eq!(done["roots"][0]["shifted"], 5, "{done}");
    assert_eq!(done["roots"][0]["setid_restored"], 1, "{done}");
    let stat = host.ok(&format!(
        "{run} sh -c 'touch /d/new && stat -c \"%n %u %g\" /d/f /d/sub /d/new && ls -l /d/suid'"
    ));
    assert!(
        stat.contains("/d/f 0 0")
            && stat.contains("/d/sub 1000 1000")
            && stat.contains("/d/new 0 0"),
        "{stat}"
    );
    assert!(stat.contains("-rwsr-xr-x"), "setuid bit lost: {stat}");
    let host_view = host.ok("stat -c '%u %g' /srv/app/data/f /srv/app/data/sub /etc/passwd");
    assert_eq!(
        host_view.split_whitespace().collect::<Vec<_>>(),
        [
            start.to_string(),
            start.to_string(),
            (start + 1000).to_string(),
            (start + 1000).to_string(),
            "0".into(),
            "0".into()
        ],
        "symlink target touched or ids wrong"
    );

    // Idempotent, and back exactly.
    let again = json(&host.sh("docker-userns shift /srv/app/data --to remapped --json"));
    assert_eq!(again["roots"][0]["shifted"], 0, "{again}");
    host.ok("rm /srv/app/data/new");
    // Back to host ids, the setuid file (which a container could have made) is refused ...
    let r = host.sh("docker-userns shift /srv/app/data --to host --json");
    assert_eq!(r.code, 3, "{r}");
    assert!(r.stdout.contains("/srv/app/data/suid (setuid)"), "{r}");
    // ... and shifted with its bit dropped when asked; everything else is as it was.
    let back =
        json(&host.sh("docker-userns shift /srv/app/data --to host --drop-setid-and-caps --json"));
    assert_eq!(back["roots"][0]["shifted"], 5, "{back}");
    assert_eq!(back["roots"][0]["privileged"], 1, "{back}");
    assert_eq!(
        host.owners("/srv/app/data"),
        before.replace("./suid 0 0 4755", "./suid 0 0 755"),
        "--to host did not restore the tree"
    );
}

/// A v3 `security.capability` (CAP_SETUID and CAP_DAC_OVERRIDE permitted and effective) with
/// root id `rootid`, as the kernel stores it when root in a namespace whose root is `rootid`
/// runs setcap.
fn set_caps_v3(host: &Host, path: &str, rootid: u64) {
    host.ok(&format!(
        "python3 -c '
import os, struct
perm = (1 << 7) | (1 << 1)
v = struct.pack(\"<IIIIII\", 0x03000001, perm, 0, 0, 0, {rootid})
os.setxattr(\"{path}\", \"security.capability\", v, follow_symlinks=False)
'"
    ));
}

#[test]
fn into_host_ids_a_containers_setuid_file_and_capability_are_refused_or_dropped() {
    let host = Host::boot("shiftsetid");
    let out = host.sh("docker-userns enable --json --settle 2");
    assert_eq!(out.code, 0, "{out}");
    host.reimport_image();
    host.ok("mkdir -p /srv/app/sub && echo hi > /srv/app/sub/f");
    let done = json(&host.sh("docker-userns shift /srv/app --to remapped --json"));
    let start = done["uid_to"].as_u64().unwrap();
    // Container root makes a setuid copy of busybox and a file with a capability, in the bind
    // mount and in a volume.
    host.ok("docker volume create vol");
    host.ok(
        "docker run --rm -v /srv/app:/app -v vol:/v busybox:local sh -c \
         'busybox cp /bin/busybox /app/rootsh && busybox chmod 4755 /app/rootsh \
          && busybox cp /bin/busybox /app/capsh && busybox cp /bin/busybox /v/rootsh \
          && busybox chmod 4755 /v/rootsh'",
    );
    set_caps_v3(&host, "/srv/app/capsh", start);
    assert_eq!(
        host.ok("stat -c '%u %a' /srv/app/rootsh").trim(),
        format!("{start} 4755")
    );

    // The carry of the volume on disable fails it, naming the file; nothing is carried silently.
    let out = host.sh("docker-userns disable --yes --carry volumes --json --settle 2");
    assert_eq!(out.code, 8, "{out}");
    let failed = json(&out)["carry"]["failed"].to_string();
    assert!(
        failed.contains("volume vol") && failed.contains("rootsh") && failed.contains("setuid"),
        "{out}"
    );
    assert_ne!(
        host.sh("docker volume inspect vol").code,
        0,
        "the volume was created in the host-ids engine"
    );

    // `shift --to host` refuses them, naming them, before changing anything.
    let before = host.listing("/srv/app");
    let r = host.sh("docker-userns shift /srv/app --to host --json");
    assert_eq!(r.code, 3, "{r}");
    let msg = json(&r)["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("/srv/app/rootsh (setuid)")
            && msg.contains("/srv/app/capsh (file capability)")
            && msg.contains("--drop-setid-and-caps"),
        "{msg}"
    );
    assert_eq!(
        host.listing("/srv/app"),
        before,
        "a refused shift changed something"
    );
    // The dry run names them too.
    let dry = json(&host.sh("docker-userns shift /srv/app --to host --dry-run --json"));
    assert_eq!(dry["roots"][0]["privileged"], 2, "{dry}");
    assert_eq!(host.listing("/srv/app"), before);

    // Dropped when asked: host root owns a plain file, no capability, and nobody gains anything.
    let out = host.sh("docker-userns shift /srv/app --to host --drop-setid-and-caps --json");
    assert_eq!(out.code, 0, "{out}");
    let done = json(&out);
    assert_eq!(done["roots"][0]["privileged"], 2, "{done}");
    assert_eq!(done["roots"][0]["privileged_dropped"], true, "{done}");
    assert_eq!(
        host.ok("stat -c '%u %g %a' /srv/app/rootsh /srv/app/capsh /srv/app/sub/f"),
        "0 0 755\n0 0 755\n0 0 644\n"
    );
    let after = host.listing("/srv/app");
    assert!(!after.contains("capsh 01"), "a capability is left: {after}");
    // Run as nobody (busybox picks its applet by the link's name).
    host.ok(
        "mkdir -p /tmp/bb && ln -sf /srv/app/rootsh /tmp/bb/id && ln -sf /srv/app/capsh /tmp/bb/touch",
    );
    assert_eq!(
        host.ok("setpriv --reuid=65534 --regid=65534 --clear-groups /tmp/bb/id -u")
            .trim(),
        "65534"
    );
    let w = host.sh("setpriv --reuid=65534 --regid=65534 --clear-groups /tmp/bb/touch /etc/pwned");
    assert!(w.code != 0 && w.stderr.contains("Permission denied"), "{w}");
    assert_eq!(host.sh("test -e /etc/pwned").code, 1);
}

#[test]
fn shift_refuses_docker_data_root_by_its_real_path_and_state_no_container_should_own() {
    let host = Host::boot("shiftroot");
    let out = host.sh("docker-userns enable --json --settle 2");
    assert_eq!(out.code, 0, "{out}");
    // /var/lib/docker becomes a symlink to /data/docker.
    host.ok(
        "systemctl stop docker.service docker.socket && mkdir -p /data \
         && mv /var/lib/docker /data/docker && ln -s /data/docker /var/lib/docker \
         && systemctl start docker.service",
    );
    host.ok("mkdir -p /home/alice/.ssh /root/.ssh /data/app");
    let before = host.ok(
        "find /data/docker /var/lib/dpkg /home/alice /root -printf '%p %U %G %m\\n' | LC_ALL=C sort",
    );
    for (path, needle) in [
        ("/data/docker", "data root"),
        ("/data/docker/volumes", "data root"),
        ("/data", "data root"),
        ("/var/lib/docker/", "data root"),
        ("/var/lib/dpkg", "/var/lib/dpkg"),
        ("/var/lib/containerd", "/var/lib/containerd"),
        ("/var/lib/systemd", "/var/lib/systemd"),
        ("/var/tmp", "/var/tmp"),
        ("/root/.ssh", "/root"),
        ("/home/alice/.ssh", "home directory"),
        ("/home/alice", "home directory"),
        ("/var/lib/docker-userns", "tool's state"),
    ] {
        let r = host.sh(&format!("docker-userns shift {path} --to remapped --json"));
        assert_eq!(r.code, 3, "{path}: {r}");
        let msg = json(&r)["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains(needle), "{path}: {msg}");
    }
    assert_eq!(
        host.ok(
            "find /data/docker /var/lib/dpkg /home/alice /root -printf '%p %U %G %m\\n' | LC_ALL=C sort"
        ),
        before,
        "a refused shift changed something"
    );
    // The drop flag belongs to --to host.
    let r = host.sh("docker-userns shift /data/app --to remapped --drop-setid-and-caps --json");
    assert_eq!(r.code, 2, "{r}");
    // An application directory beside it is fine.
    let r = host.sh("docker-userns shift /data/app --to remapped --json");
    assert_eq!(r.code, 0, "{r}");
}

#[test]
fn a_shift_killed_at_a_log_batch_is_finished_by_the_next_run_and_waits_for_the_lock() {
    let host = Host::boot("shiftkill");
    let out = host.sh("docker-userns enable --json --settle 2");
    assert_eq!(out.code, 0, "{out}");
    // More than one log batch (1024) of setuid files, in nested directories.
    host.ok("set -e; for d in a b c; do mkdir -p /srv/big/$d/sub; \
         for f in $(seq 1 400); do echo x > /srv/big/$d/sub/f$f; chown $f:$f /srv/big/$d/sub/f$f; \
         chmod 4755 /srv/big/$d/sub/f$f; done; done; cp -a /srv/big /srv/clean");
    let out = host.sh("docker-userns shift /srv/clean --to remapped --json");
    assert_eq!(out.code, 0, "{out}");
    let clean = host.listing("/srv/clean");

    // kill -9 right after the first batch is logged, before any of it is chowned.
    let pid = host.ok(
        "DOCKER_USERNS_FAILPOINTS=shift:after-log-batch=sleep setsid docker-userns shift /srv/big --to remapped \
         >/tmp/k.log 2>&1 </dev/null & echo $!",
    );
    let pid = pid.trim();
    host.ok(&format!(
        "for i in $(seq 1 300); do grep -q 'failpoint shift:after-log-batch' /tmp/k.log && break; sleep 0.1; done; \
         grep -q 'failpoint shift:after-log-batch' /tmp/k.log && kill -9 {pid}; sleep 0.3; ! kill -0 {pid} 2>/dev/null"
    ));
    assert!(
        host.ok("ls /var/lib/docker-userns").contains("shift-"),
        "no log left"
    );

    // The other direction is refused, naming the command that finishes the first.
    let before = host.listing("/srv/big");
    let r = host.sh("docker-userns shift /srv/big --to host --json");
    assert_eq!(r.code, 3, "{r}");
    let msg = json(&r)["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("other direction")
            && msg.contains("docker-userns shift /srv/big --to remapped"),
        "{msg}"
    );
    assert_eq!(host.listing("/srv/big"), before);

    // The same command finishes it: exactly what a clean shift gives.
    let out = host.sh("docker-userns shift /srv/big --to remapped --json");
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(host.listing("/srv/big"), clean);
    assert!(
        !host.ok("ls /var/lib/docker-userns").contains("shift-"),
        "the log stays"
    );

    // With the run lock held by another process, shift waits for it.
    host.ok("mkdir -p /srv/locked");
    let out = host.sh(
        "(flock /var/lib/docker-userns/lock sleep 4 &) ; sleep 0.5; \
         t0=$(date +%s%N); docker-userns shift /srv/locked --to remapped; rc=$?; \
         echo elapsed=$((($(date +%s%N) - t0) / 1000000)) rc=$rc",
    );
    let ms: u64 = out
        .stdout
        .split("elapsed=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(out.stdout.contains("rc=0"), "{out}");
    assert!(
        ms >= 3000,
        "shift did not wait for the lock ({ms} ms): {out}"
    );
    assert!(out.stderr.contains("another docker-userns run"), "{out}");
}

/// A parallel shift (`--jobs 4`) killed with `kill -9` while its workers are in the middle of
/// their log batches (each stopped by the failpoint right after the first chown of its batch,
/// that inode's setuid bit and capability cleared by the chown and not yet put back) is
/// finished by the next run exactly as a clean serial shift leaves the same tree.
#[test]
fn a_parallel_shift_killed_mid_batch_is_finished_exactly_by_the_next_run() {
    let host = Host::boot("parkill");
    let out = host.sh("docker-userns enable --json --settle 2");
    assert_eq!(out.code, 0, "{out}");
    // 8 directories of 200 setuid files (every 50th with a capability), hard links, symlinks.
    host.ok(
        "set -e; for d in 1 2 3 4 5 6 7 8; do mkdir -p /srv/par/d$d/sub; \
         for f in $(seq 1 200); do p=/srv/par/d$d/sub/f$f; echo x > $p; chown $f:$d $p; chmod 4755 $p; done; \
         ln /srv/par/d$d/sub/f1 /srv/par/d$d/hard; ln -s sub/f2 /srv/par/d$d/link; chown -h 7:7 /srv/par/d$d/link; done",
    );
    for d in 1..=8 {
        for f in (1..=200).step_by(50) {
            set_caps_v3(&host, &format!("/srv/par/d{d}/sub/f{f}"), 0);
        }
    }
    host.ok("cp -a /srv/par /srv/parclean");
    let out = host.sh("docker-userns shift /srv/parclean --to remapped --jobs 1 --json");
    assert_eq!(out.code, 0, "{out}");
    let clean = host.listing("/srv/parclean");

    let pid = host.ok(
        "DOCKER_USERNS_FAILPOINTS=shift:after-batch-chown=sleep setsid docker-userns shift /srv/par --to remapped \
         --jobs 4 >/tmp/p.log 2>&1 </dev/null & echo $!",
    );
    let pid = pid.trim();
    // Wait until at least two workers sit right after a chown, then kill -9.
    host.ok(&format!(
        "for i in $(seq 1 300); do [ $(grep -c 'failpoint shift:after-batch-chown' /tmp/p.log) -ge 2 ] && break; sleep 0.1; done; \
         [ $(grep -c 'failpoint shift:after-batch-chown' /tmp/p.log) -ge 2 ] && kill -9 {pid}; sleep 0.3; ! kill -0 {pid} 2>/dev/null"
    ));
    assert!(
        host.ok("ls /var/lib/docker-userns").contains("shift-"),
        "no log left"
    );
    // The window is real: setuid files whose bit the chown cleared.
    let cleared = host.ok("find /srv/par -type f -name 'f*' ! -perm -4000 | wc -l");
    assert!(
        cleared.trim().parse::<u32>().unwrap() >= 2,
        "no worker was caught between a chown and putting the bits back: {cleared}"
    );
    assert_ne!(host.listing("/srv/par"), clean);

    let out = host.sh("docker-userns shift /srv/par --to remapped --json");
    assert_eq!(out.code, 0, "{out}");
    assert!(
        json(&out)["roots"][0]["log_replayed"].as_u64().unwrap() >= 2,
        "{out}"
    );
    assert_eq!(host.listing("/srv/par"), clean);
    assert!(
        !host.ok("ls /var/lib/docker-userns").contains("shift-"),
        "the log stays"
    );
}
