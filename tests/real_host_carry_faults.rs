//! The fault matrix of `enable --carry images,volumes` on one booted test host (Debian 12,
//! docker 20.10): `kill -9` at every step of a carry (the spool journaled but nothing
//! exported, after the export, after the switch before the load, a volume copied but its
//! owners not shifted, a volume created but its copy not exchanged in). After each, the next
//! run (`docker-userns status`) finds the host exactly as before (the switch rolled back,
//! the spool gone) or switched with docker running and says which (remapping, nothing
//! unfinished, a carry waiting); the same command then carries the rest, and the host is
//! exactly as after a clean carry: the same image ids under the same tags, the volume's
//! owner/mode listing and its in-container view equal to the clean carry's, no spool, no
//! staging copy, nothing pending. Needs root; fails, never skips.

mod common;
#[path = "testhost/mod.rs"]
mod testhost;

use serde_json::Value;
use testhost::{Host, Output};

fn json(out: &Output) -> Value {
    common::json_doc(&out.stdout, out)
}

const CARRY: &str = "docker-userns enable --yes --carry images,volumes --settle 2";

/// Every inode of a directory: path, owner, group, mode, size (sorted).
fn listing(host: &Host, dir: &str) -> String {
    host.ok(&format!(
        "cd {dir} && find . -printf '%p %U %G %m %s\\n' | LC_ALL=C sort"
    ))
}

/// What a container sees in the volume.
fn view(host: &Host) -> String {
    host.ok(
        "docker run --rm -v data:/d busybox:local sh -c 'cd /d && find . -exec stat -c \"%n %u %g %a %s %h\" {} + | sort'",
    )
}

/// What the host holds that a carry touches: the files, the engine's remapping and data
/// root, its images (tag and id) and volumes, the old volume's listing, the tool's state.
fn state(host: &Host) -> String {
    host.ok(
        "cat /etc/docker/daemon.json 2>/dev/null; echo; grep -h dockremap /etc/subuid /etc/subgid; \
         docker info --format '{{json .SecurityOptions}} {{.DockerRootDir}}'; \
         docker image ls --format '{{.Repository}}:{{.Tag}} {{.ID}}' | LC_ALL=C sort; \
         docker volume ls -q | LC_ALL=C sort; \
         cd /var/lib/docker/volumes/data/_data && find . -printf '%p %U %G %m %s\\n' | LC_ALL=C sort; \
         ls -A /var/lib/docker-userns | grep -v -e '^lock$' -e '^backup' | LC_ALL=C sort",
    )
}

/// The running engine's copy of a volume, as the host sees it.
fn carried_named(host: &Host, volume: &str) -> String {
    let mp = host.ok(&format!(
        "docker volume inspect -f '{{{{.Mountpoint}}}}' {volume}"
    ));
    listing(host, mp.trim())
}

/// The remapped engine's copy of `data`.
fn carried(host: &Host) -> String {
    carried_named(host, "data")
}

/// Runs `cmd` until `fp` logs, then kills it with SIGKILL.
fn kill_at(host: &Host, fp: &str, cmd: &str) {
    host.ok(&format!(
        "rm -f /tmp/k.log
         DOCKER_USERNS_FAILPOINTS={fp}=sleep {cmd} >/tmp/k.log 2>&1 &
         pid=$!
         for i in $(seq 1200); do grep -q 'failpoint {fp}' /tmp/k.log && break; sleep 0.05; done
         grep -q 'failpoint {fp}' /tmp/k.log || {{ cat /tmp/k.log; exit 1; }}
         kill -9 $pid; wait $pid; true"
    ));
}

/// Back to where every case starts: the carried image and volume removed from the remapped
/// engine, remapping off.
fn reset(host: &Host, before: &str) {
    host.ok("docker volume rm data >/dev/null && docker rmi app:1 busybox:local >/dev/null");
    host.ok("docker-userns disable --yes --settle 2");
    assert_eq!(state(host), before, "the reset did not restore the host");
}

fn status(host: &Host) -> Value {
    let out = host.sh("docker-userns status --json");
    assert_eq!(out.code, 0, "{out}");
    json(&out)
}

#[test]
fn kill_9_at_every_carry_step_leaves_before_or_switched_and_the_same_command_finishes_it() {
    let host = Host::boot("carryfaults");
    // An image with a file of uid 1000 and a setuid file; a volume with owners 0 and 1000, a
    // 0700 directory, a setuid file, a symlink and a hard link.
    host.ok(
        "docker run --name mk busybox:local sh -c 'mkdir -p /home/x && touch /home/x/f && chown -R 1000:1000 /home/x \
         && cp /bin/busybox /suidbin && chmod 4755 /suidbin' && docker commit mk app:1 >/dev/null && docker rm mk >/dev/null",
    );
    host.ok(
        "docker run --rm -v data:/d busybox:local sh -c \
         'echo hi > /d/f && mkdir /d/u && touch /d/u/g && chown -R 1000:1000 /d/u && chmod 0700 /d/u \
          && cp /bin/busybox /d/suid && chmod 4755 /d/suid && ln -s f /d/link && ln /d/f /d/hard'",
    );
    // One switch there and back first: what it leaves for good (the remap user's ranges,
    // daemon.json without the key, the record of the verified switch) is part of "before".
    host.ok("docker-userns enable --yes --settle 2 && docker-userns disable --yes --settle 2");
    let ids = "docker image inspect -f '{{.Id}}' app:1 busybox:local";
    let ids_before = host.ok(ids);
    let view_before = view(&host);
    let before = state(&host);

    // A clean carry: what every faulted one must end as.
    let out = host.sh(CARRY);
    assert_eq!(out.code, 0, "{out}");
    let clean = carried(&host);
    let clean_state = state(&host);
    assert_eq!(view(&host), view_before, "the clean carry changed the view");
    assert_eq!(host.ok(ids), ids_before);
    let start = status(&host)["subuid"]["start"].as_u64().unwrap();
    assert!(
        clean.contains(&format!("./u/g {0} {0} 644", start + 1000)),
        "{clean}"
    );
    reset(&host, &before);

    // (failpoint, whether the switch stands after the kill)
    let cases = [
        ("carry:before-export", false),
        ("carry:after-export", false),
        ("carry:before-load", true),
        ("carry:before-shift", true),
        ("carry:before-exchange", true),
    ];
    for (fp, switched) in cases {
        kill_at(&host, fp, CARRY);
        // The next run says which: docker running, nothing unfinished; before, or switched
        // with a carry waiting.
        let st = status(&host);
        assert_eq!(st["service"]["active_state"], "active", "{fp}: {st}");
        assert_eq!(st["unfinished"], Value::Null, "{fp}: {st}");
        assert_eq!(st["remapping_active"], switched, "{fp}: {st}");
        let waiting = st["notes"]
            .to_string()
            .contains("a --carry did not complete");
        if switched {
            assert!(waiting, "{fp}: status does not say a carry waits: {st}");
        } else {
            assert!(!waiting, "{fp}: {st}");
            assert_eq!(state(&host), before, "{fp}: not exactly as before");
        }

        // The same command finishes it: exactly as after the clean carry.
        let out = host.sh(CARRY);
        assert_eq!(out.code, 0, "{fp}: {out}");
        assert_eq!(
            carried(&host),
            clean,
            "{fp}: the volume differs from a clean carry"
        );
        assert_eq!(state(&host), clean_state, "{fp}: not exactly as after");
        assert_eq!(view(&host), view_before, "{fp}: the view differs");
        assert_eq!(host.ok(ids), ids_before, "{fp}: image ids");
        let left = host.sh(
            "ls -d /var/lib/docker-userns/carry /var/lib/docker-userns/carry-volumes.json /var/lib/docker/*.*/docker-userns-carry 2>/dev/null",
        );
        assert!(left.stdout.trim().is_empty(), "{fp}: left behind: {left}");
        let st = status(&host);
        assert!(
            !st["notes"]
                .to_string()
                .contains("a --carry did not complete"),
            "{fp}: {st}"
        );
        reset(&host, &before);
    }

    // disable --carry volumes: a volume made while remapped goes back to the engine without
    // remapping (a setgid directory kept; a container's setuid file would fail the volume, as
    // tests/real_host_shift.rs shows); killed with its copy made but not shifted, or created but not exchanged in,
    // it is switched with a carry waiting, and the same command finishes it although the
    // remap user is no longer configured.
    const BACK: &str = "docker-userns disable --yes --carry volumes --settle 2";
    host.ok("docker-userns enable --yes --settle 2");
    host.reimport_image();
    host.ok(
        "docker run --rm -v back:/d busybox:local sh -c \
         'echo b > /d/b && mkdir /d/u && touch /d/u/g && chown -R 1000:1000 /d/u && chmod 0700 /d/u \
          && mkdir /d/shared && chmod 2775 /d/shared'",
    );
    let remapped = state(&host);
    let out = host.sh(BACK);
    assert_eq!(out.code, 0, "{out}");
    let clean_back = carried_named(&host, "back");
    assert!(clean_back.contains("./u/g 1000 1000 644"), "{clean_back}");
    assert!(clean_back.contains("./shared 0 0 2775"), "{clean_back}");
    let reset_back = |host: &Host| {
        host.ok("docker volume rm back >/dev/null && docker-userns enable --yes --settle 2");
        assert_eq!(state(host), remapped, "the reset did not restore the host");
    };
    reset_back(&host);
    for fp in ["carry:before-shift", "carry:before-exchange"] {
        kill_at(&host, fp, BACK);
        let st = status(&host);
        assert_eq!(st["service"]["active_state"], "active", "{fp}: {st}");
        assert_eq!(st["unfinished"], Value::Null, "{fp}: {st}");
        assert_eq!(st["remapping_active"], false, "{fp}: {st}");
        assert!(
            st["notes"]
                .to_string()
                .contains("a --carry did not complete"),
            "{fp}: {st}"
        );
        let out = host.sh(BACK);
        assert_eq!(out.code, 0, "disable {fp}: {out}");
        assert_eq!(
            carried_named(&host, "back"),
            clean_back,
            "disable {fp}: the volume differs from a clean carry"
        );
        let left = host.sh(
            "ls -d /var/lib/docker-userns/carry-volumes.json /var/lib/docker/docker-userns-carry 2>/dev/null",
        );
        assert!(
            left.stdout.trim().is_empty(),
            "disable {fp}: left behind: {left}"
        );
        reset_back(&host);
    }
}
