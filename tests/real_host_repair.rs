//! `enable --repair` on Debian forky (docker.io 28.5.2): dockerd 28 hands its remap user the
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

/// Every inode below `dir`: path, owner, group, mode (sorted).
fn owners(host: &Host, dir: &str) -> String {
    host.ok(&format!(
        "cd {dir} && find . -printf '%p %U %G %m\\n' | LC_ALL=C sort"
    ))
}

#[test]
fn repair_moves_the_range_dockerd_28_took_with_its_data_root() {
    let host = Host::boot_suite("repair", "forky");

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
        "dockerd 28 did not take alice's range: {subuid}"
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
    let before_owners = owners(&host, old_root);
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
            owners(&host, old_root),
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
        owners(&host, old_root),
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

    // The repair.
    let out = host.sh("docker-userns enable --repair --yes --json --settle 2");
    assert_eq!(out.code, 0, "{out}");
    let done = json(&out);
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
    let after = owners(&host, "/var/lib/docker/165536.165536");
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
