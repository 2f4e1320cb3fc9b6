//! `--carry images` on a booted test host (Debian 12, docker 20.10): `plan --carry images`
//! lists what would be carried and the containers that cannot be; an `enable --carry images`
//! whose load fails (injected) still switches, exits 8 and keeps its spool; the same command
//! again carries the rest (the same image id under the same tags in the remapped engine, the
//! spool removed); `disable --carry images` skips what the old engine still holds. Needs root;
//! fails, never skips.

mod common;
#[path = "testhost/mod.rs"]
mod testhost;

use serde_json::Value;
use testhost::{Host, Output};

fn json(out: &Output) -> Value {
    common::json_doc(&out.stdout, out)
}

fn ids(host: &Host) -> String {
    host.ok("docker image inspect -f '{{.Id}}' busybox:local app:1")
}

#[test]
fn images_are_carried_across_the_switch_and_a_failed_carry_is_finished_by_the_next_run() {
    let host = Host::boot("carry");
    host.ok("docker tag busybox:local app:1 && docker create --name keep app:1 sleep 1 >/dev/null");
    let before = ids(&host);

    let plan = host.sh("docker-userns plan --carry images --json");
    assert_eq!(plan.code, 0, "{plan}");
    let c = &json(&plan)["carry"];
    assert_eq!(c["images"], serde_json::json!(["app:1"]), "{plan}");
    assert!(c["bytes"].as_u64().unwrap() > 0, "{plan}");
    assert!(
        c["containers_not_carried"][0]
            .as_str()
            .unwrap()
            .starts_with("keep (app:1"),
        "{plan}"
    );

    // The load fails: the switch stands, exit 8, the spool is kept.
    let out = host.sh(
        "DOCKER_USERNS_FAILPOINTS=carry:before-load docker-userns enable --yes --carry images --json --settle 2",
    );
    assert_eq!(out.code, 8, "{out}");
    let done = json(&out);
    assert_eq!(done["restarted"], true, "{done}");
    assert!(
        !done["carry"]["failed"].as_array().unwrap().is_empty(),
        "{done}"
    );
    assert!(
        host.ok("docker info --format '{{json .SecurityOptions}}'")
            .contains("name=userns")
    );
    assert!(
        host.sh("docker image inspect app:1").code != 0,
        "loaded although it failed"
    );
    assert!(
        host.sh("test -s /var/lib/docker-userns/carry/images.json")
            .code
            == 0
    );

    // The same command again: nothing to switch, the spool is loaded.
    let out = host.sh("docker-userns enable --carry images --json");
    assert_eq!(out.code, 0, "{out}");
    let again = json(&out);
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(
        again["carry"]["images"],
        serde_json::json!(["app:1"]),
        "{again}"
    );
    assert_eq!(
        ids(&host),
        before,
        "not the same image ids under the same tags"
    );
    assert!(
        host.sh("test -e /var/lib/docker-userns/carry").code != 0,
        "spool left"
    );
    let v = json(&host.sh("docker-userns verify --json --image app:1"));
    assert_eq!(v["effective"], true, "{v}");

    // Back: the old engine still holds the image, so it is skipped, not loaded over.
    let out = host.sh("docker-userns disable --yes --carry images --json --settle 2");
    assert_eq!(out.code, 0, "{out}");
    let back = json(&out);
    assert!(
        back["carry"]["skipped"][0]
            .as_str()
            .unwrap()
            .contains("already there"),
        "{back}"
    );
    assert_eq!(ids(&host), before);
    assert_eq!(host.ok("docker ps -a --format '{{.Names}}'").trim(), "keep");
}

/// What a container sees in a volume: every path with owner, group, mode, size, link count
/// and mtime.
fn view(host: &Host, volume: &str) -> String {
    host.ok(&format!(
        "docker run --rm -v {volume}:/d busybox:local sh -c 'cd /d && find . -exec stat -c \"%n %u %g %a %s %h %Y\" {{}} + | sort'"
    ))
}

/// The old data root's copy of a volume, byte for byte (paths, owners, modes, times, sums).
fn old_bytes(host: &Host, volume: &str) -> String {
    host.ok(&format!(
        "cd /var/lib/docker/volumes/{volume}/_data && find . -printf '%p %U %G %m %T@ %s\n' | sort \
         && find . -type f -exec md5sum {{}} + | sort"
    ))
}

fn volumes(suite: &str) {
    let host = Host::boot_suite(&format!("carryvol-{suite}"), suite);
    // A volume with root- and 1000-owned files, a 0700 directory, a symlink, a hard link, a
    // setuid file and an old mtime.
    host.ok(
        "docker run --rm -v data:/d busybox:local sh -c \
         'echo hi > /d/f && mkdir /d/u && touch /d/u/g && chown -R 1000:1000 /d/u && chmod 0700 /d/u \
          && cp /bin/busybox /d/suid && chmod 4755 /d/suid && ln -s f /d/link && ln /d/f /d/hard \
          && touch -d \"2001-02-03 04:05:06\" /d/f /d/u/g'",
    );
    host.ok("docker run --rm -v odd:/d busybox:local sh -c 'touch /d/x && chown 70000 /d/x'");
    host.ok("docker volume create --opt type=tmpfs --opt device=tmpfs tmpv >/dev/null");
    // An image with a file owned by 1000 and a setuid file.
    host.ok(
        "docker run --name mk busybox:local sh -c 'mkdir -p /home/x && touch /home/x/f && chown -R 1000:1000 /home/x \
         && cp /bin/busybox /suidbin && chmod 4755 /suidbin' && docker commit mk app:2 >/dev/null && docker rm mk >/dev/null",
    );
    let image_view = "docker run --rm app:2 stat -c '%n %u %g %a' /home/x /home/x/f /suidbin";
    let image_before = host.ok(image_view);
    let before = view(&host, "data");
    let old = old_bytes(&host, "data");

    let plan = json(&host.sh("docker-userns plan --carry volumes --json"));
    assert_eq!(
        plan["carry"]["volumes"],
        serde_json::json!(["data", "odd"]),
        "{plan}"
    );

    // kill -9 between creating the first volume and putting its data in; the switch stands.
    host.ok(
        "rm -f /tmp/k.log
         DOCKER_USERNS_FAILPOINTS=carry:before-exchange=sleep setsid docker-userns enable --yes --carry images,volumes --settle 2 >/tmp/k.log 2>&1 &
         for i in $(seq 900); do grep -q 'failpoint carry:before-exchange' /tmp/k.log && break; sleep 0.05; done
         grep -q 'failpoint carry:before-exchange' /tmp/k.log || { cat /tmp/k.log; exit 1; }
         pkill -9 -x docker-userns; sleep 0.2",
    );
    assert!(
        host.ok("docker info --format '{{json .SecurityOptions}}'")
            .contains("name=userns")
    );

    // The rerun finishes it; odd has an id the new mapping cannot express: it fails alone, exit 8.
    let out = host.sh("docker-userns enable --carry images,volumes --json");
    assert_eq!(out.code, 8, "{out}");
    let done = json(&out);
    assert_eq!(done["changed"], false, "{done}");
    let c = &done["carry"];
    assert_eq!(c["volumes"], serde_json::json!(["data"]), "{done}");
    assert!(
        c["failed"][0].as_str().unwrap().starts_with("volume odd:"),
        "{done}"
    );
    assert!(
        c["failed"][0].as_str().unwrap().contains("outside"),
        "{done}"
    );
    assert_eq!(
        host.ok("docker volume ls -q | sort")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["data"],
        "a failed volume is visible in the new engine"
    );

    // Containers see exactly what they saw; remapped root writes there; the host shows
    // START+1000; the old root is byte for byte as it was; the image came along too.
    assert_eq!(
        view(&host, "data"),
        before,
        "the volume looks different inside"
    );
    assert_eq!(
        host.ok(image_view),
        image_before,
        "the image looks different inside"
    );
    host.ok("docker run --rm -v data:/d busybox:local sh -c 'touch /d/new'");
    let start = json(&host.sh("docker-userns status --json"))["subuid"]["start"]
        .as_u64()
        .unwrap();
    let mp = host.ok("docker volume inspect -f '{{.Mountpoint}}' data");
    let owners = host.ok(&format!("stat -c '%u %g' {0}/f {0}/u/g", mp.trim()));
    assert_eq!(
        owners.split_whitespace().collect::<Vec<_>>(),
        [
            start.to_string(),
            start.to_string(),
            (start + 1000).to_string(),
            (start + 1000).to_string()
        ]
    );
    assert_eq!(old_bytes(&host, "data"), old, "the old data root changed");

    // Once odd's owner is one the mapping expresses, the same command carries it; then a
    // rerun changes nothing.
    host.ok("chown 1000 /var/lib/docker/volumes/odd/_data/x");
    let out = host.sh("docker-userns enable --carry volumes --json --jobs 1");
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        json(&out)["carry"]["volumes"],
        serde_json::json!(["odd"]),
        "{out}"
    );
    let out = host.sh("docker-userns enable --carry images,volumes --json");
    assert_eq!(out.code, 0, "{out}");
    let again = json(&out);
    assert_eq!(again["changed"], false, "{again}");
    assert!(
        again["notes"].to_string().contains("nothing to carry"),
        "{again}"
    );

    // A volume made while remapped comes back with its owners through disable.
    host.ok("docker run --rm -v back:/d busybox:local sh -c 'touch /d/b && chown 1000:1000 /d/b'");
    let out = host.sh("docker-userns disable --yes --carry volumes --json --settle 2 --jobs 4");
    assert_eq!(out.code, 0, "{out}");
    let back = json(&out);
    assert!(
        back["carry"]["volumes"].to_string().contains("back"),
        "{back}"
    );
    assert_eq!(
        host.ok("docker run --rm -v back:/d busybox:local stat -c '%u %g' /d/b")
            .trim(),
        "1000 1000"
    );
    assert_eq!(
        host.ok("stat -c '%u' /var/lib/docker/volumes/back/_data/b")
            .trim(),
        "1000"
    );
}

#[test]
fn volumes_are_copied_with_their_owners_shifted_and_the_rest_is_named() {
    volumes("bookworm");
}

#[test]
fn volumes_are_copied_with_their_owners_shifted_and_the_rest_is_named_trixie() {
    volumes("trixie");
}

fn id(host: &Host, name: &str) -> String {
    host.ok(&format!("docker image inspect -f '{{{{.Id}}}}' {name}"))
        .trim()
        .to_string()
}

/// Runs `cmd` in the background on the host until the failpoint named in it logs, then sends
/// `signal`; returns what the shell saw: `rc=N`, or `STILL-RUNNING` when the run had not
/// ended 5 s later (it is then killed).
fn signal_at_failpoint(host: &Host, failpoint: &str, cmd: &str, signal: &str) -> String {
    host.ok(&format!(
        "rm -f /tmp/sig.log
         DOCKER_USERNS_FAILPOINTS={failpoint}=sleep {cmd} >/tmp/sig.log 2>&1 &
         pid=$!
         for i in $(seq 1200); do grep -q 'failpoint {failpoint}' /tmp/sig.log && break; sleep 0.05; done
         grep -q 'failpoint {failpoint}' /tmp/sig.log || {{ cat /tmp/sig.log; exit 1; }}
         kill -{signal} $pid
         for i in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
         if kill -0 $pid 2>/dev/null; then echo STILL-RUNNING; kill -9 $pid; fi
         wait $pid; echo rc=$?; cat /tmp/sig.log >&2"
    ))
}

/// Items 10, 14 and 16 of issue 19: an image one of whose tags names other content in the
/// new engine is carried under its other tags, the conflicting tag named (exit 8, never
/// silent) and carried by the same command once it is free; SIGINT during the load (after
/// the switch is recorded) ends the run at once, resumably; ENOSPC while spooling names the
/// spool's full filesystem, not the engine.
#[test]
fn a_tag_conflict_is_named_sigint_after_the_switch_is_prompt_and_a_full_spool_is_named() {
    let host = Host::boot("carrytags");
    // X: my/app:1.0 and my/app:latest in the engine without remapping.
    host.ok(
        "docker run --name mk busybox:local sh -c 'echo x > /x' && docker commit mk my/app:1.0 >/dev/null \
         && docker rm mk >/dev/null && docker tag my/app:1.0 my/app:latest",
    );
    let x = id(&host, "my/app:1.0");
    let busybox = id(&host, "busybox:local");
    // Y: other content under my/app:1.0 in the remapped engine.
    host.ok("docker-userns enable --yes --settle 2");
    host.ok("tar -C /opt/testimage -c . | docker import -c 'LABEL side=remapped' - my/app:1.0 >/dev/null");
    let y = id(&host, "my/app:1.0");
    assert_ne!(x, y);
    host.ok("docker-userns disable --yes --settle 2");

    // SIGINT while the load waits: the switch is recorded, so the run ends at once (130),
    // remapped, nothing unfinished, the spool kept and named by status.
    let seen = signal_at_failpoint(
        &host,
        "carry:before-load",
        "docker-userns enable --yes --carry images --settle 2",
        "INT",
    );
    assert!(
        seen.contains("rc=130"),
        "SIGINT after the switch did not end the run promptly: {seen}"
    );
    let st = json(&host.sh("docker-userns status --json"));
    assert_eq!(st["remapping_active"], true, "{st}");
    assert_eq!(st["unfinished"], Value::Null, "{st}");
    assert!(
        st["notes"]
            .to_string()
            .contains("a --carry did not complete"),
        "{st}"
    );
    assert!(
        host.sh("test -s /var/lib/docker-userns/carry/images.json")
            .code
            == 0
    );

    // The same command carries the rest: busybox:local whole, X under my/app:latest; the
    // conflicting tag is named with what holds it and how to carry it (exit 8).
    let out = host.sh("docker-userns enable --carry images --json");
    assert_eq!(out.code, 8, "{out}");
    let c = &json(&out)["carry"];
    let failed = c["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{out}");
    let why = failed[0].as_str().unwrap();
    let short = |i: &str| i.trim_start_matches("sha256:")[..12].to_string();
    for want in [
        "my/app:1.0".to_string(),
        short(&y),
        short(&x),
        "my/app:latest".into(),
        "docker tag".into(),
    ] {
        assert!(why.contains(&want), "{want:?} not in {why:?}");
    }
    assert!(
        c["images"].to_string().contains("busybox:local")
            && c["images"].to_string().contains("my/app:latest"),
        "{out}"
    );
    assert_eq!(id(&host, "my/app:latest"), x);
    assert_eq!(
        id(&host, "my/app:1.0"),
        y,
        "the other image's tag was moved"
    );
    assert_eq!(id(&host, "busybox:local"), busybox);
    assert!(
        host.sh("test -s /var/lib/docker-userns/carry/images.json")
            .code
            == 0
    );

    // Once the tag is free, the same command carries it, and the spool goes.
    host.ok("docker rmi my/app:1.0 >/dev/null");
    let out = host.sh("docker-userns enable --carry images --json");
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(id(&host, "my/app:1.0"), x);
    assert!(host.sh("test -e /var/lib/docker-userns/carry").code != 0);

    // A spool filesystem that fills while the images are exported: named as full (path, free,
    // needed), not as trouble with the engine; rolled back, docker remapped and running.
    host.ok(
        "cp -a /var/lib/docker-userns /tmp/dus-saved && mount -t tmpfs -o size=64m tmpfs /var/lib/docker-userns \
         && cp -a /tmp/dus-saved/. /var/lib/docker-userns/",
    );
    host.ok(
        "rm -f /tmp/full.log
         DOCKER_USERNS_FAILPOINTS=carry:before-export=sleep3 docker-userns disable --yes --carry images --settle 2 >/tmp/full.log 2>&1 &
         pid=$!
         for i in $(seq 600); do grep -q 'failpoint carry:before-export' /tmp/full.log && break; sleep 0.05; done
         dd if=/dev/zero of=/var/lib/docker-userns/carry/fill bs=1M 2>/dev/null; true
         wait $pid; echo rc=$? >> /tmp/full.log",
    );
    let log = host.ok("cat /tmp/full.log");
    host.ok("umount /var/lib/docker-userns");
    assert!(!log.contains("rc=0"), "{log}");
    assert!(!log.contains("talking to the docker engine"), "{log}");
    for want in [
        "/var/lib/docker-userns/carry is full",
        "MiB free now",
        "the images need about",
    ] {
        assert!(log.contains(want), "{want:?} not in {log}");
    }
    let st = json(&host.sh("docker-userns status --json"));
    assert_eq!(st["remapping_active"], true, "{st}");
    assert_eq!(st["service"]["active_state"], "active", "{st}");
}

/// Items 11 and 16 of issue 19: `disable --carry volumes` finding a volume of the same name in
/// the engine it switches back to says so (not compared, not overwritten, where the other
/// copy stays) and overwrites nothing; `enable --repair --carry` does not call containers
/// uncarriable when the repair keeps them in the data root it moves.
#[test]
fn an_existing_volume_is_named_not_overwritten_and_a_repair_carries_nothing() {
    let host = Host::boot("carryexist");
    host.ok("docker run --rm -v data:/d busybox:local sh -c 'echo old > /d/f'");
    let out = host.sh("docker-userns enable --yes --carry images,volumes --json --settle 2");
    assert_eq!(out.code, 0, "{out}");
    // Written while remapped.
    host.ok("docker run --rm -v data:/d busybox:local sh -c 'echo new > /d/f'");
    let remapped = host
        .ok("docker volume inspect -f '{{.Mountpoint}}' data")
        .trim()
        .to_string();
    assert!(remapped.starts_with("/var/lib/docker/1"), "{remapped}");

    let out = host.sh("docker-userns disable --yes --carry volumes --json --settle 2");
    assert_eq!(out.code, 0, "{out}");
    let back = json(&out);
    let skipped = back["carry"]["skipped"].to_string();
    for want in [
        "volume data:",
        "exists already",
        "/var/lib/docker/volumes/data/_data",
        "not compared",
        "not overwritten",
        remapped.as_str(),
    ] {
        assert!(skipped.contains(want), "{want:?} not in {back}");
    }
    assert!(!skipped.contains("already there"), "{back}");
    assert_eq!(
        host.ok("docker run --rm -v data:/d busybox:local cat /d/f")
            .trim(),
        "old",
        "the old volume was overwritten"
    );
    assert_eq!(host.ok(&format!("cat {remapped}/f")).trim(), "new");

    // A repair with --carry: dockremap's range is alice's (what dockerd 28 does, made by hand
    // here); a created container stays, and nothing calls it uncarriable.
    host.ok("docker-userns enable --yes --settle 2");
    host.ok("docker create --name keep busybox:local true >/dev/null");
    host.ok(
        "useradd -m alice && sed -i '/^alice:/d' /etc/subuid /etc/subgid \
         && r=$(grep '^dockremap:' /etc/subuid | cut -d: -f2,3) && echo alice:$r >> /etc/subuid \
         && r=$(grep '^dockremap:' /etc/subgid | cut -d: -f2,3) && echo alice:$r >> /etc/subgid",
    );
    let plan = host.sh("docker-userns plan --repair --carry images,volumes");
    assert_eq!(plan.code, 0, "{plan}");
    assert!(!plan.stdout.contains("cannot be carried"), "{plan}");
    assert!(plan.stdout.contains("nothing to carry"), "{plan}");
    let out = host.sh("docker-userns enable --repair --yes --carry images,volumes --settle 2");
    assert_eq!(out.code, 0, "{out}");
    assert!(!out.stdout.contains("cannot be carried"), "{out}");
    assert!(
        out.stdout
            .contains("--repair keeps the images, containers and volumes"),
        "{out}"
    );
    assert_eq!(host.ok("docker ps -a --format '{{.Names}}'").trim(), "keep");
    assert_eq!(
        host.ok("docker run --rm -v data:/d busybox:local cat /d/f")
            .trim(),
        "new"
    );
}

/// Tags and layers of the images of the shared-base case, in whichever engine runs.
fn layers_of(host: &Host, names: &str) -> String {
    host.ok(&format!(
        "docker image inspect -f '{{{{.RepoTags}}}} {{{{.RootFS.Layers}}}}' {names}"
    ))
}

#[test]
fn a_shared_base_is_spooled_once_and_a_broken_image_falls_back_to_one_export_each() {
    let host = Host::boot("carryshare");
    // base:1 = busybox + a 20 MB layer; a, b and c add a few bytes each on top of it.
    host.ok(
        "docker run --pull=never --network none --name mk busybox:local sh -c 'head -c 20000000 /dev/urandom > /big' \
         && docker commit mk base:1 >/dev/null && docker rm mk >/dev/null \
         && for x in a b c; do docker run --pull=never --network none --name mk base:1 sh -c \"echo $x > /$x\" \
              && docker commit mk $x:1 >/dev/null && docker rm mk >/dev/null; done",
    );
    let names = "base:1 a:1 b:1 c:1";
    let before = layers_of(&host, names);
    // What `docker save` of all of them writes (by id, like the carry: no tags inside).
    let save: u64 = host
        .ok("docker save $(docker images -q --no-trunc | sort -u) | wc -c")
        .trim()
        .parse()
        .unwrap();
    let plan = json(&host.sh("docker-userns plan --carry images --json"));
    let (bytes, spool_bytes) = (
        plan["carry"]["bytes"].as_u64().unwrap(),
        plan["carry"]["spool_bytes"].as_u64().unwrap(),
    );
    // The free-space check counts the base once: 4 images of >= 20 MB each as the engine
    // counts them, about one base in the spool.
    assert!(bytes > 80_000_000, "{plan}");
    assert!(spool_bytes < 30_000_000, "{plan}");

    // The load stopped (injected) to measure the spool: one tar, about what `docker save` of
    // all of them writes, the 20 MB base once.
    let out = host.sh(
        "DOCKER_USERNS_FAILPOINTS=carry:before-load docker-userns enable --yes --carry images --json --settle 2",
    );
    assert_eq!(out.code, 8, "{out}");
    let files = host.ok("ls /var/lib/docker-userns/carry");
    assert_eq!(
        files.split_whitespace().collect::<Vec<_>>(),
        ["all.tar", "images.json"],
        "{files}"
    );
    let spool: u64 = host
        .ok("cat /var/lib/docker-userns/carry/*.tar | wc -c")
        .trim()
        .parse()
        .unwrap();
    assert!(
        spool * 10 <= save * 11 && spool < 30_000_000,
        "spool {spool} bytes against docker save {save}"
    );
    let out = host.sh("docker-userns enable --carry images --json");
    assert_eq!(out.code, 0, "{out}");
    let done = json(&out);
    assert_eq!(done["carry"]["export_fallback"], Value::Null, "{done}");
    assert_eq!(layers_of(&host, names), before);

    // Back without carrying, the remapped engine emptied; then one image is broken in the
    // old engine (its top layer's files gone): its export fails, and so does the one export
    // of all of them.
    host.ok("docker image prune -a -f >/dev/null && test -z \"$(docker images -aq)\"");
    let out = host.sh("docker-userns disable --yes --json --settle 2");
    assert_eq!(out.code, 0, "{out}");
    host.ok(
        "docker run --pull=never --network none --name mk base:1 sh -c 'head -c 1000000 /dev/urandom > /own' \
         && docker commit mk broken:1 >/dev/null && docker rm mk >/dev/null \
         && rm -rf \"$(docker image inspect -f '{{.GraphDriver.Data.UpperDir}}' broken:1)\"",
    );
    assert!(
        host.sh("docker save broken:1 >/dev/null").code != 0,
        "the broken image still exports"
    );
    let out = host.sh("docker-userns enable --yes --carry images --json --settle 2");
    assert_eq!(out.code, 8, "{out}");
    let c = &json(&out)["carry"];
    assert!(
        c["export_fallback"]
            .as_str()
            .is_some_and(|s| s.contains("exported on its own")),
        "{c}"
    );
    let failed = c["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{c}");
    assert!(
        failed[0]
            .as_str()
            .unwrap()
            .starts_with("broken:1: not carried: its export from the old engine failed"),
        "{c}"
    );
    for n in ["base:1", "a:1", "b:1", "c:1"] {
        assert!(
            c["images"].as_array().unwrap().iter().any(|i| i == n),
            "{n} not carried: {c}"
        );
    }
    assert_eq!(layers_of(&host, names), before);
    assert!(host.sh("docker image inspect broken:1").code != 0);
    // Nothing is left to load: the spool is gone, the same command is a no-op.
    assert!(host.sh("test -e /var/lib/docker-userns/carry").code != 0);
    let out = host.sh("docker-userns enable --yes --carry images --json");
    assert_eq!(out.code, 0, "{out}");
}

/// The host's own files a volume's symlinks point at: owner, group, mode, inode, mtime and
/// ctime (a chown or chmod through a link, even to the same values, moves the ctime).
fn host_targets(host: &Host) -> String {
    host.ok("stat -c '%n %u %g %a' /etc/shadow / /etc \
         && find /srv/sentinel /srv/sdir -exec stat -c '%n %u %g %a %i %Y %Z' {} + | sort")
}

/// Links a container plants in volume `vol`: to /etc/shadow, to /, to a host file and to a
/// host directory, and a relative one climbing out.
fn plant_links(host: &Host, vol: &str) {
    host.ok(&format!(
        "docker run --rm -v {vol}:/d busybox:local sh -c \
         'ln -s /etc/shadow /d/x && ln -s / /d/up && ln -s /srv/sentinel /d/s && ln -s /srv/sdir /d/dir \
          && ln -s ../../../../../../srv/sdir /d/rel && mkdir /d/sub && ln -s /srv/sdir /d/sub/in && echo data > /d/f'"
    ));
}

/// The links of a volume as a container sees them: type, target and owner.
fn links_inside(host: &Host, vol: &str) -> String {
    host.ok(&format!(
        "docker run --rm -v {vol}:/d busybox:local sh -c \
         'for l in x up s dir rel sub/in; do echo $l $(readlink /d/$l) $(stat -c \"%F %u %g\" /d/$l); done'"
    ))
}

#[test]
fn symlinks_planted_in_a_carried_volume_are_carried_as_links_and_touch_nothing_outside() {
    let host = Host::boot("carrylink");
    host.ok(
        "mkdir -p /srv/sdir/deep && echo s > /srv/sentinel && echo t > /srv/sdir/deep/t \
         && chmod 0600 /srv/sentinel && chmod 0700 /srv/sdir",
    );
    let targets = host_targets(&host);
    plant_links(&host, "data");
    let inside = links_inside(&host, "data");
    assert!(
        inside.contains("x /etc/shadow symbolic link 0 0"),
        "{inside}"
    );

    let out = host.sh("docker-userns enable --yes --carry volumes --json --settle 2");
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        json(&out)["carry"]["volumes"],
        serde_json::json!(["data"]),
        "{out}"
    );
    assert_eq!(
        host_targets(&host),
        targets,
        "enable touched a link's target"
    );
    host.reimport_image();
    // Carried as links (the same targets, owned by the container's root) ...
    assert_eq!(links_inside(&host, "data"), inside);
    // ... shifted themselves on the host (lchown), not what they point at.
    let start = json(&host.sh("docker-userns status --json"))["subuid"]["start"]
        .as_u64()
        .unwrap();
    let data = host.ok("docker volume inspect -f '{{.Mountpoint}}' data");
    assert_eq!(
        host.ok(&format!(
            "stat -c '%u %g %F' {}/x {}/dir",
            data.trim(),
            data.trim()
        )),
        format!("{start} {start} symbolic link\n{start} {start} symbolic link\n")
    );

    // Back: links planted by a remapped container in a new volume, carried out of the ranges.
    plant_links(&host, "back");
    let inside = links_inside(&host, "back");
    let out = host.sh("docker-userns disable --yes --carry volumes --json --settle 2");
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        json(&out)["carry"]["volumes"],
        serde_json::json!(["back"]),
        "{out}"
    );
    assert_eq!(
        host_targets(&host),
        targets,
        "disable touched a link's target"
    );
    assert_eq!(links_inside(&host, "back"), inside);
    let back = host.ok("docker volume inspect -f '{{.Mountpoint}}' back");
    assert_eq!(
        host.ok(&format!("stat -c '%u %g %F' {}/up", back.trim())),
        "0 0 symbolic link\n"
    );
}
