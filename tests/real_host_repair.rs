//! `enable --repair` on Debian forky (docker.io 28.5.2) and on docker-ce 29 (`docker29`): dockerd 28 and 29 hand their remap user the
//! range of the first regular user (alice:100000:65536). With an image, a named volume with
//! files and a created container in that remapped data root, `status` names the overlap,
//! `enable` without `--repair` refuses saying what the repair would do, a repair docker refuses
//! at start is rolled back (subuid/subgid, the data root's name and every owner as before,
//! docker running as before), and `enable --repair --yes` moves the range, the data root and
//! its owners: `check` is clean, the image runs, the volume's files are readable and writable
//! by container root, the container starts. Needs root; fails, never skips.

mod common;
#[path = "testhost/mod.rs"]
mod testhost;

use serde_json::Value;
use testhost::{Host, Output};

fn json(out: &Output) -> Value {
    common::json_doc(&out.stdout, out)
}

fn info(host: &Host, field: &str) -> String {
    host.ok(&format!("docker info --format '{{{{json .{field}}}}}'"))
        .trim()
        .to_string()
}

#[test]
fn repair_moves_the_range_dockerd_28_took_with_its_data_root() {
    repair_moves_the_range(Host::boot_suite("repair", "forky"));
}

/// docker-ce 29 allocates as 28 does (root's ranges only); remapped, its data root is overlay2
/// in DATA_ROOT/UID.GID (the containerd store switched off), and the repair moves that.
#[test]
fn repair_moves_the_range_dockerd_29_took_with_its_data_root_docker29() {
    repair_moves_the_range(Host::boot_suite("repair29", "docker29"));
}

fn repair_moves_the_range(host: Host) {
    // What every docker >= 28 host with one regular user and remapping has.
    host.ok("useradd -m alice");
    host.write(
        "/etc/docker/daemon.json",
        "{\"userns-remap\": \"default\"}\n",
    );
    host.ok("systemctl restart docker");
    let subuid = host.read_string("/etc/subuid").unwrap();
    assert!(
        subuid.contains("alice:100000:65536") && subuid.contains("dockremap:100000:65536"),
        "dockerd did not take alice's range: {subuid}"
    );
    assert_eq!(
        info(&host, "DockerRootDir"),
        "\"/var/lib/docker/100000.100000\""
    );

    // Data made while remapped: an image, a volume with files of two owners, a container.
    host.reimport_image();
    host.ok("docker run --rm -v data:/data busybox:local sh -c \
         'echo hello > /data/f && mkdir /data/d && touch /data/d/g && chown -R 1000:1000 /data/d'");
    host.ok("docker create --name keep -v data:/data busybox:local cat /data/f");
    let old_root = "/var/lib/docker/100000.100000";
    let before_owners = host.owners(old_root);
    assert!(
        before_owners.contains(" 101000 101000 "),
        "no file of container uid 1000"
    );

    // status names the overlap, and what fixes it.
    let st = json(&host.sh("docker-userns status --json"));
    let problems = st["problems"].as_array().expect("problems");
    assert!(
        problems.iter().any(|p| p["kind"] == "remap-range-overlap"
            && p["message"]
                .as_str()
                .unwrap()
                .contains("alice:100000:65536")
            && p["fix"].as_str().unwrap().contains("--repair")),
        "{st}"
    );

    // Without --repair: refused, saying what the repair does; nothing changed.
    let inv = host.ok("systemctl show -p InvocationID --value docker.service");
    let out = host.sh("docker-userns enable --yes");
    assert_eq!(out.code, 3, "{out}");
    assert!(
        out.stderr
            .contains("--repair stops docker, renames /var/lib/docker/100000.100000")
            && out.stderr.contains("inodes"),
        "{out}"
    );
    assert_eq!(host.read_string("/etc/subuid").unwrap(), subuid);
    assert_eq!(
        host.ok("systemctl show -p InvocationID --value docker.service"),
        inv
    );

    // kill -9 with the data root renamed, and again with every owner shifted (docker stopped
    // both times): the next run (status, as root) undoes it all and brings docker back.
    let subgid = host.read_string("/etc/subgid").unwrap();
    for point in ["repair:before-shift", "repair:after-shift"] {
        host.ok(&format!(
            "rm -f /tmp/k.log
             DOCKER_USERNS_FAILPOINTS={point}=sleep setsid docker-userns enable --repair --yes >/tmp/k.log 2>&1 &
             for i in $(seq 600); do grep -q 'failpoint {point}' /tmp/k.log && break; sleep 0.05; done
             grep -q 'failpoint {point}' /tmp/k.log || {{ cat /tmp/k.log; exit 1; }}
             pkill -9 -x docker-userns; sleep 0.2"
        ));
        assert!(
            host.sh("test -d /var/lib/docker/165536.165536").code == 0,
            "{point}: not renamed"
        );
        let st = host.sh("docker-userns status --json");
        assert_eq!(st.code, 0, "{point}: {st}");
        assert!(
            json(&st)["notes"]
                .to_string()
                .contains("was rolled back first"),
            "{point}: {st}"
        );
        assert_eq!(host.read_string("/etc/subuid").unwrap(), subuid, "{point}");
        assert_eq!(host.read_string("/etc/subgid").unwrap(), subgid, "{point}");
        assert!(
            host.sh("test -e /var/lib/docker/165536.165536").code != 0,
            "{point}"
        );
        assert_eq!(
            host.owners(old_root),
            before_owners,
            "{point}: owners not back"
        );
        assert_eq!(
            info(&host, "DockerRootDir"),
            "\"/var/lib/docker/100000.100000\""
        );
    }

    // A repair docker refuses at start: rolled back, owners and names as before.
    host.write(
        "/etc/systemd/system/docker.service.d/refuse-moved.conf",
        "[Service]\nExecStartPre=/bin/sh -c '! grep -q dockremap:165536 /etc/subuid'\n",
    );
    host.ok("systemctl daemon-reload");
    let out = host.sh("docker-userns enable --repair --yes --json --settle 2");
    assert_eq!(out.code, 5, "{out}");
    let msg = json(&out)["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("renamed back and its owners shifted back"),
        "{msg}"
    );
    assert_eq!(host.read_string("/etc/subuid").unwrap(), subuid);
    assert_eq!(host.read_string("/etc/subgid").unwrap(), subgid);
    assert!(host.sh("test -e /var/lib/docker/165536.165536").code != 0);
    assert_eq!(
        host.owners(old_root),
        before_owners,
        "owners not shifted back"
    );
    assert_eq!(
        host.sh("systemctl is-active docker.service").stdout.trim(),
        "active"
    );
    assert_eq!(
        info(&host, "DockerRootDir"),
        "\"/var/lib/docker/100000.100000\""
    );
    host.ok("rm /etc/systemd/system/docker.service.d/refuse-moved.conf && systemctl daemon-reload");

    // Issue 19 item 12: what the engine keeps outside its data root keeps its owners: a local
    // volume with bind options and a host directory moved earlier with `shift --to remapped`,
    // bind-mounted into a container. `plan` and the repair name both, with what to do.
    host.ok(
        "mkdir -p /srv/x /srv/app && touch /srv/app/a && chown 100000:100000 /srv/x \
         && docker volume create -o type=none -o o=bind -o device=/srv/x bv >/dev/null \
         && docker run --rm -v bv:/d busybox:local touch /d/f \
         && docker-userns shift /srv/app --to remapped >/dev/null \
         && docker create --name web -v /srv/app:/app busybox:local true >/dev/null",
    );
    assert_eq!(
        host.ok("stat -c %u /srv/x/f /srv/app/a")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["100000", "100000"]
    );
    let named = |notes: &str| {
        notes.contains("/srv/x (volume bv; 2 inode(s))")
            && notes.contains("/srv/app (container web: /app; 2 inode(s))")
    };
    // The container made here lives in the data root too.
    let before_owners = host.owners(old_root);
    let planned = json(&host.sh("docker-userns plan --repair --json"));
    let notes = planned["notes"].to_string();
    assert!(
        named(&notes) && notes.contains("Before --repair, run `docker-userns shift DIR --to host`"),
        "{planned}"
    );

    // The repair.
    let out = host.sh("docker-userns enable --repair --yes --json --settle 2 --jobs 3");
    assert_eq!(out.code, 0, "{out}");
    let done = json(&out);
    let notes = done["notes"].to_string();
    assert!(
        named(&notes)
            && notes.contains("No `docker-userns shift` command moves owners from the old range"),
        "{done}"
    );
    assert_eq!(done["restarted"], true, "{done}");
    assert_eq!(done["subuid"]["start"], 165536, "{done}");
    assert_eq!(done["subuid"]["moved_from"], 100000, "{done}");
    assert!(
        done["notes"].to_string().contains("--repair: renamed"),
        "{done}"
    );
    let subuid = host.read_string("/etc/subuid").unwrap();
    assert!(
        subuid.contains("alice:100000:65536") && subuid.contains("dockremap:165536:65536"),
        "{subuid}"
    );
    assert_eq!(
        info(&host, "DockerRootDir"),
        "\"/var/lib/docker/165536.165536\""
    );
    assert!(host.sh(&format!("test -e {old_root}")).code != 0);
    let check = host.sh("docker-userns check");
    assert_eq!(check.code, 0, "{check}");
    let st = json(&host.sh("docker-userns status --json"));
    assert_eq!(st["problems"], serde_json::json!([]), "{st}");

    // Every owner moved by exactly 65536; root's stayed.
    let after = host.owners("/var/lib/docker/165536.165536");
    let shift = |line: &str| -> String {
        let mut w: Vec<String> = line.split(' ').map(str::to_string).collect();
        for id in &mut w[1..3] {
            let n: u64 = id.parse().unwrap();
            if (100000..165536).contains(&n) {
                *id = (n + 65536).to_string();
            }
        }
        w.join(" ")
    };
    let expected: Vec<String> = before_owners.lines().map(shift).collect();
    assert_eq!(
        after.lines().collect::<Vec<_>>(),
        expected,
        "owners not shifted exactly"
    );

    // What was made while remapped still works: the image, the volume, the container.
    assert_eq!(host.ok("docker run --rm busybox:local id -u").trim(), "0");
    assert_eq!(host.ok("docker start -a keep").trim(), "hello");
    assert_eq!(
        host.ok("docker run --rm -v data:/data busybox:local sh -c \
             'echo more >> /data/f && touch /data/d/h && stat -c %u /data/d/g && cat /data/f'")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["1000", "hello", "more"]
    );
    let v = json(&host.sh("docker-userns verify --json --image busybox:local"));
    assert_eq!(v["effective"], true, "{v}");
}

const FILES: &str = "/etc/subuid /etc/subgid /etc/docker/daemon.json";
const OLD_ROOT: &str = "/var/lib/docker/100000.100000";
const NEW_ROOT: &str = "/var/lib/docker/165536.165536";

/// The three files a run writes, content and mode.
fn files(host: &Host) -> String {
    host.ok(&format!(
        "for f in {FILES}; do echo \"== $f $(stat -c '%U %G %a' $f 2>/dev/null)\"; cat \"$f\" 2>/dev/null || echo MISSING; done"
    ))
}

/// `before` with every id of the old range moved by 65536: what a complete repair leaves.
fn shifted(before: &str) -> String {
    before
        .lines()
        .map(|line| {
            let mut w: Vec<String> = line.split(' ').map(str::to_string).collect();
            let n = w.len();
            for id in &mut w[n - 3..n - 1] {
                let v: u64 = id.parse().unwrap();
                if (100000..165536).contains(&v) {
                    *id = (v + 65536).to_string();
                }
            }
            w.join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The lines only in `a` and only in `b` (empty when equal): a listing of thousands of lines
/// compared without printing all of it.
fn diff(a: &str, b: &str) -> String {
    let (la, lb): (
        std::collections::BTreeSet<&str>,
        std::collections::BTreeSet<&str>,
    ) = (a.lines().collect(), b.lines().collect());
    let only_a: Vec<&&str> = la.difference(&lb).take(20).collect();
    let only_b: Vec<&&str> = lb.difference(&la).take(20).collect();
    if only_a.is_empty() && only_b.is_empty() {
        String::new()
    } else {
        format!("only now: {only_a:#?}\nonly expected: {only_b:#?}")
    }
}

/// Starts `enable --repair --yes` in the background and kills it with SIGKILL once `ready`
/// (a shell condition) holds.
fn kill_repair_when(host: &Host, env: &str, ready: &str, case: &str) {
    let out = host.sh(&format!(
        "rm -f /tmp/k.log
         {env} setsid docker-userns enable --repair --yes >/tmp/k.log 2>&1 &
         for i in $(seq 1200); do {ready} && break; sleep 0.05; done
         {ready} || {{ echo 'never ready'; cat /tmp/k.log; exit 1; }}
         pkill -9 -x docker-userns; sleep 0.3"
    ));
    assert_eq!(out.code, 0, "{case}: {out}");
}

/// Issue 19 items 6, 7, 9 and 16 on forky (dockerd 28 takes alice's range): what --repair
/// refuses before it stops docker, and, after a kill -9 at each of its steps followed by a
/// `systemctl start docker` behind its back, the next run (`status`) leaves the host exactly
/// as before or exactly as after (every owner and mode of the data root, the three files),
/// docker running, and says which; never a cleared record with half-shifted owners.
#[test]
fn repair_killed_at_each_step_then_docker_started_behind_its_back_is_whole() {
    let host = Host::boot_suite("repair-kill", "forky");
    host.ok("useradd -m alice");
    host.write(
        "/etc/docker/daemon.json",
        "{\"userns-remap\": \"default\"}\n",
    );
    host.ok("systemctl restart docker");
    assert_eq!(info(&host, "DockerRootDir"), format!("\"{OLD_ROOT}\""));
    host.reimport_image();
    host.ok("docker run --rm -v data:/data busybox:local sh -c \
         'echo hello > /data/f && mkdir /data/d && touch /data/d/g && chown -R 1000:1000 /data/d'");
    host.ok("docker create --name keep -v data:/data busybox:local cat /data/f");
    // More inodes than one progress batch (4096), so that the walk can be killed in its middle.
    let vol = format!("{OLD_ROOT}/volumes/data/_data");
    host.ok(&format!(
        "mkdir {vol}/m && cd {vol}/m && seq 6000 | xargs touch && chown -R 101000:101000 {vol}/m"
    ));
    let before_files = files(&host);
    let before = host.owners(OLD_ROOT);
    let after = shifted(&before);
    assert_ne!(before, after);
    let inv = || host.ok("systemctl show -p InvocationID --value docker.service");
    let unchanged = |case: &str, inv0: &str| {
        assert_eq!(files(&host), before_files, "{case}: files changed");
        assert_eq!(
            diff(&host.owners(OLD_ROOT), &before),
            "",
            "{case}: owners changed"
        );
        assert!(host.sh(&format!("test -e {NEW_ROOT}")).code != 0, "{case}");
        assert_eq!(inv(), inv0, "{case}: docker was restarted");
        assert!(
            host.read("/var/lib/docker-userns/transaction.json")
                .is_none()
        );
    };

    // Item 16: --no-restart cannot move a data root, and says so (not "start docker").
    let inv0 = inv();
    let out = host.sh("docker-userns enable --repair --no-restart");
    assert_eq!(out.code, 3, "{out}");
    assert!(
        out.stderr
            .contains("--repair cannot be used with --no-restart")
            && !out.stderr.contains("start docker.service first"),
        "{out}"
    );
    unchanged("--no-restart", &inv0);

    // Item 9: an inode owned already by the target range is refused up front (the undo
    // could not tell it from those the repair shifts), docker untouched.
    host.ok(&format!(
        "touch {vol}/planted && chown 170000:170000 {vol}/planted"
    ));
    let planted_before = host.owners(OLD_ROOT);
    let out = host.sh("docker-userns enable --repair --yes");
    assert_eq!(out.code, 3, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "1 inode(s) below {OLD_ROOT} are owned already by ids of the range --repair moves to"
        )) && out.stderr.contains(&format!("e.g. {vol}/planted")),
        "{out}"
    );
    assert_eq!(diff(&host.owners(OLD_ROOT), &planted_before), "");
    host.ok(&format!("rm {vol}/planted"));
    unchanged("target range", &inv0);
    // The same for an inode whose uid would shift but whose group is in the target range
    // already: the undo would move that gid back too.
    host.ok(&format!(
        "touch {vol}/mixed && chown 100001:170000 {vol}/mixed"
    ));
    let mixed_before = host.owners(OLD_ROOT);
    let out = host.sh("docker-userns enable --repair --yes");
    assert_eq!(out.code, 3, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "1 inode(s) below {OLD_ROOT} are owned already by ids of the range --repair moves to"
        )) && out.stderr.contains(&format!("e.g. {vol}/mixed")),
        "{out}"
    );
    assert_eq!(diff(&host.owners(OLD_ROOT), &mixed_before), "");
    host.ok(&format!("rm {vol}/mixed"));
    unchanged("a group in the target range", &inv0);

    // Item 7: a tree the walk cannot take (deeper than it walks, or than the open-file limit
    // lets it) is refused while docker still runs.
    host.ok(&format!(
        "cd {vol} && mkdir -p $(printf 'deep/%.0s' $(seq 4200))"
    ));
    let out = host.sh("ulimit -n 1024; docker-userns enable --repair --yes");
    assert_eq!(out.code, 3, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "--repair must walk the whole tree below {OLD_ROOT}"
        )) && out.stderr.contains("docker still runs"),
        "{out}"
    );
    assert_eq!(
        host.sh("systemctl is-active docker.service").stdout.trim(),
        "active"
    );
    host.ok(&format!("rm -rf {vol}/deep"));
    unchanged("too deep", &inv0);

    // Item 6: kill -9 at each step of the repair, then docker started behind its back.
    let drop_in = "/etc/systemd/system/docker.service.d/slow-stop.conf";
    let cases = [
        "while docker stops",
        "repair:before-rename",
        "repair:before-shift",
        "repair:during-shift",
        "repair:after-shift",
    ];
    for case in cases {
        if case == "while docker stops" {
            // A stop that takes seconds: the kill lands while docker.service deactivates.
            host.write(drop_in, "[Service]\nExecStopPost=/bin/sleep 4\n");
            host.ok("systemctl daemon-reload");
            kill_repair_when(
                &host,
                "",
                "[ \"$(systemctl is-active docker.service)\" = deactivating ]",
                case,
            );
            host.ok(&format!("rm {drop_in} && systemctl daemon-reload"));
        } else {
            kill_repair_when(
                &host,
                &format!("DOCKER_USERNS_FAILPOINTS={case}=sleep"),
                &format!("grep -q 'failpoint {case}' /tmp/k.log"),
                case,
            );
        }
        // Whoever starts docker now (an admin, a reboot) starts it with the repair's files.
        host.ok(
            "for i in $(seq 200); do s=$(systemctl is-active docker.service); \
             [ \"$s\" = deactivating ] || break; sleep 0.1; done; systemctl start docker",
        );
        assert!(remapped_to(&host).is_some(), "{case}: docker did not start");
        // What dockerd makes in its data root once it answers (buildkit's state, for one) is
        // made by then, as on any host where it ran a while.
        host.ok("sleep 3");

        let st = host.recovered(case);
        let notes = json(&st)["notes"].to_string();
        if files(&host) == before_files {
            // Exactly as before: the data root back under its name with its owners.
            assert!(notes.contains("was rolled back first"), "{case}: {notes}");
            assert_eq!(
                diff(&host.owners(OLD_ROOT), &before),
                "",
                "{case}: owners not back"
            );
            assert_eq!(remapped_to(&host).as_deref(), Some(OLD_ROOT), "{case}");
            if host.sh(&format!("test -e {NEW_ROOT}")).code == 0 {
                // Made by the docker started before the rename: named, left, removed here.
                assert!(
                    notes.contains(&format!(
                        "{NEW_ROOT} was made by a docker started meanwhile"
                    )),
                    "{case}: {notes}"
                );
                host.ok(&format!("rm -rf {NEW_ROOT}"));
            }
        } else {
            // Exactly as after: complete, owners all shifted, docker on the moved root.
            assert!(
                notes.contains("had already restarted docker as intended"),
                "{case}: {notes}"
            );
            assert_eq!(
                diff(&host.owners(NEW_ROOT), &after),
                "",
                "{case}: half-shifted owners"
            );
            assert_eq!(remapped_to(&host).as_deref(), Some(NEW_ROOT), "{case}");
            assert!(host.sh(&format!("test -e {OLD_ROOT}")).code != 0, "{case}");
            assert_eq!(case, "repair:after-shift", "finished too early: {notes}");
        }
        // Only a kill after the walk may be found finished.
        if case != "repair:after-shift" {
            assert!(
                !notes.contains("had already restarted docker"),
                "{case}: cleared a half-done repair: {notes}"
            );
        }
    }
}

/// The data root docker runs on (None: it does not answer).
fn remapped_to(host: &Host) -> Option<String> {
    let out = host.sh("docker info --format '{{.DockerRootDir}}'");
    (out.code == 0).then(|| out.stdout.trim().to_string())
}
