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
            .contains("already in the new engine"),
        "{back}"
    );
    assert_eq!(ids(&host), before);
    assert_eq!(host.ok("docker ps -a --format '{{.Names}}'").trim(), "keep");
}

/// What a container sees in a volume: every path with owner, group, mode and size.
fn view(host: &Host, volume: &str) -> String {
    host.ok(&format!(
        "docker run --rm -v {volume}:/d busybox:local sh -c 'cd /d && find . -exec stat -c \"%n %u %g %a %s %h\" {{}} + | sort'"
    ))
}

#[test]
fn volumes_are_copied_with_their_owners_shifted_and_the_rest_is_named() {
    let host = Host::boot("carryvol");
    host.ok("docker run --rm -v data:/d busybox:local sh -c \
         'echo hi > /d/f && mkdir /d/u && touch /d/u/g && chown -R 1000:1000 /d/u \
          && cp /bin/busybox /d/suid && chmod 4755 /d/suid && ln -s f /d/link && ln /d/f /d/hard'");
    host.ok("docker run --rm -v odd:/d busybox:local sh -c 'touch /d/x && chown 70000 /d/x'");
    host.ok("docker volume create --opt type=tmpfs --opt device=tmpfs tmpv >/dev/null");
    let before = view(&host, "data");

    let plan = json(&host.sh("docker-userns plan --carry volumes --json"));
    assert_eq!(
        plan["carry"]["volumes"],
        serde_json::json!(["data", "odd"]),
        "{plan}"
    );

    // odd has an id the new mapping cannot express: it fails, the rest is carried, exit 8.
    let out = host.sh("docker-userns enable --yes --carry images,volumes --json --settle 2");
    assert_eq!(out.code, 8, "{out}");
    let done = json(&out);
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
    assert!(c["skipped"].to_string().contains("volume tmpv"), "{done}");
    assert_eq!(
        host.ok("docker volume ls -q | sort")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["data"],
        "a failed volume is visible in the new engine"
    );

    // The container sees exactly what it saw, and its root can write there.
    assert_eq!(
        view(&host, "data"),
        before,
        "the volume looks different inside"
    );
    host.ok("docker run --rm -v data:/d busybox:local sh -c 'touch /d/new /d/u/new2'");
    let start = done["subuid"]["start"].as_u64().unwrap();
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
    // The old data root is untouched.
    assert_eq!(
        host.ok("stat -c '%u %g' /var/lib/docker/volumes/data/_data/f")
            .trim(),
        "0 0"
    );

    // Again: only what failed is tried (odd still cannot be expressed: exit 8 again) ...
    let out = host.sh("docker-userns enable --carry volumes --json");
    assert_eq!(out.code, 8, "{out}");
    let again = json(&out);
    assert_eq!(again["carry"]["volumes"], serde_json::json!([]), "{again}");
    assert!(
        again["carry"]["failed"][0]
            .as_str()
            .unwrap()
            .starts_with("volume odd:"),
        "{again}"
    );
    // ... and once its owner is one the mapping expresses, it is carried.
    host.ok("chown 1000 /var/lib/docker/volumes/odd/_data/x");
    let out = host.sh("docker-userns enable --carry volumes --json");
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        json(&out)["carry"]["volumes"],
        serde_json::json!(["odd"]),
        "{out}"
    );
    assert_eq!(
        host.ok("docker run --rm -v odd:/d busybox:local stat -c %u /d/x")
            .trim(),
        "1000"
    );
    assert!(
        host.sh("test -e /var/lib/docker-userns/carry-volumes.json")
            .code
            != 0
    );
}
