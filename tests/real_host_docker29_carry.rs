//! `--carry images,volumes` on docker-ce 29 (the `docker29` test host), whose fresh install
//! keeps images in the containerd image store while a remapped dockerd 29 uses overlay2: an
//! image's id differs between the two stores (manifest or index digest there, config digest
//! here), its config digest and layers (diff IDs) do not. From a fresh boot with an imported
//! image, a committed one under two tags, one of two platforms (an index, made offline by
//! tests/fixtures/oci/mkmulti.py) and a volume: `enable --yes --carry images,volumes` exits 0
//! with every tag there afterwards, holding the same config digest and diff IDs (the image of
//! several platforms as the host's platform alone, the other named as not carried);
//! `verify` passes; `disable --yes --carry images,volumes` exits 0 and reports the images the
//! containerd store still holds as "already there"; a rerun of either changes nothing and
//! exits 0; a tag whose image has the same layers under another config is a conflict (exit 8,
//! named, left as it is). Needs root; fails, never skips.

mod common;
#[path = "testhost/mod.rs"]
mod testhost;

use serde_json::Value;
use testhost::{Host, Output};

fn json(out: &Output) -> Value {
    common::json_doc(&out.stdout, out)
}

const TAGS: &str = "busybox:local app:1 app:two multi:1";

/// For each tag, what identifies its image in every store: the config digest (read from the
/// engine's own export, `manifest.json`'s `Config`) and the diff IDs (`RootFS.Layers`).
fn facts(host: &Host) -> String {
    host.ok(&format!(
        "for t in {TAGS}; do
           c=$(docker save \"$t\" | tar -xOf - manifest.json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0][\"Config\"].split(\"/\")[-1].removesuffix(\".json\"))')
           echo \"$t config=$c layers=$(docker image inspect -f '{{{{json .RootFS.Layers}}}}' \"$t\")\"
         done"
    ))
}

fn store(host: &Host) -> String {
    host.ok("docker info -f '{{.Driver}} {{json .DriverStatus}}'")
}

#[test]
fn images_and_volumes_are_carried_between_the_containerd_store_and_overlay2_and_back() {
    let host = Host::boot_suite("d29carry", "docker29");
    assert!(
        store(&host).contains("io.containerd.snapshotter.v1"),
        "not the containerd store: {}",
        store(&host)
    );
    // busybox:local is imported at boot; app:1 is committed, and tagged twice.
    host.ok(
        "docker run --name mk busybox:local sh -c 'echo made > /made && mkdir -p /home/x && chown 1000:1000 /home/x' \
         && docker commit mk app:1 >/dev/null && docker rm mk >/dev/null && docker tag app:1 app:two \
         && docker run --rm -v data:/d busybox:local sh -c 'echo kept > /d/f && chown 1000 /d/f'",
    );
    // multi:1 is an index of linux/amd64 (the host's) and linux/arm64, both present.
    host.cp_in(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/oci/mkmulti.py"),
        "/root/mkmulti.py",
    );
    host.ok(
        "docker save busybox:local > /tmp/bb.tar && python3 /root/mkmulti.py /tmp/bb.tar /tmp/multi.tar multi 1 >/dev/null \
         && docker load -q -i /tmp/multi.tar >/dev/null && rm /tmp/bb.tar /tmp/multi.tar",
    );
    let both = "for p in linux/amd64 linux/arm64; do docker image inspect --platform $p -f '{{.Os}}/{{.Architecture}}' multi:1; done";
    assert_eq!(
        host.ok(both).trim(),
        "linux/amd64\nlinux/arm64",
        "multi:1 is not an image of two platforms"
    );
    let dropped = "multi:1: an image of several platforms: only its linux/amd64 image, the one this host runs, is carried";
    let plan = json(&host.sh("docker-userns plan --carry images --json"));
    assert!(
        plan["carry"]["skipped"].to_string().contains(dropped)
            && plan["carry"]["skipped"]
                .to_string()
                .contains("not carried: linux/arm64"),
        "{plan}"
    );
    let before = facts(&host);
    assert_eq!(before.lines().count(), 4, "{before}");
    let old_ids = host.ok("docker image inspect -f '{{.Id}}' busybox:local app:1 multi:1");

    // On: the images land in overlay2 under other ids, the same config digests and layers.
    let out = host.sh("docker-userns enable --yes --carry images,volumes --json --settle 2");
    assert_eq!(out.code, 0, "{out}");
    let on = json(&out);
    assert_eq!(on["restarted"], true, "{on}");
    let c = &on["carry"];
    assert_eq!(c["failed"], serde_json::json!([]), "{on}");
    assert_eq!(
        c["images"],
        serde_json::json!(["app:1", "busybox:local", "multi:1"]),
        "{on}"
    );
    assert_eq!(
        c["skipped"].as_array().unwrap().len(),
        1,
        "only the other platform is not carried: {on}"
    );
    assert!(
        c["skipped"][0].as_str().unwrap().starts_with(dropped)
            && c["skipped"][0]
                .as_str()
                .unwrap()
                .contains("not carried: linux/arm64"),
        "{on}"
    );
    assert_eq!(c["volumes"], serde_json::json!(["data"]), "{on}");
    assert!(
        host.ok("docker info --format '{{json .SecurityOptions}}'")
            .contains("name=userns")
    );
    assert!(
        !store(&host).contains("io.containerd.snapshotter.v1"),
        "still the containerd store: {}",
        store(&host)
    );
    assert_eq!(
        facts(&host),
        before,
        "not the same images under the same tags"
    );
    assert_eq!(
        host.ok("docker image inspect -f '{{.Architecture}} {{.Config.Labels}}' multi:1")
            .trim(),
        "amd64 map[made-by:mkmulti.py]"
    );
    assert!(
        host.sh("docker run --rm multi:1 cat /arm64.txt").code != 0,
        "the other platform's layer came along"
    );
    assert_ne!(
        host.ok("docker image inspect -f '{{.Id}}' busybox:local app:1 multi:1"),
        old_ids,
        "the ids did not change with the store: this test would prove nothing"
    );
    assert_eq!(
        host.ok(
            "docker run --rm -v data:/d app:two sh -c 'cat /made /d/f; stat -c %u /d/f /home/x'"
        )
        .split_whitespace()
        .collect::<Vec<_>>(),
        ["made", "kept", "1000", "1000"]
    );
    assert!(
        host.sh("test -e /var/lib/docker-userns/carry").code != 0,
        "spool left"
    );
    let v = json(&host.sh("docker-userns verify --json --image app:1"));
    assert_eq!(v["effective"], true, "{v}");

    // Again: nothing to switch, nothing to carry.
    let out = host.sh("docker-userns enable --yes --carry images,volumes --json");
    assert_eq!(out.code, 0, "{out}");
    let again = json(&out);
    assert_eq!(again["changed"], false, "{again}");
    assert!(
        again["notes"].to_string().contains("nothing to carry"),
        "{again}"
    );
    assert_eq!(facts(&host), before);

    // Off: the containerd store still holds both images: already there, not conflicts.
    let out = host.sh("docker-userns disable --yes --carry images,volumes --json --settle 2");
    assert_eq!(out.code, 0, "{out}");
    let off = json(&out);
    let c = &off["carry"];
    assert_eq!(c["failed"], serde_json::json!([]), "{off}");
    assert_eq!(c["images"], serde_json::json!([]), "{off}");
    let skipped: Vec<&str> = c["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(skipped.len(), 4, "{off}");
    for name in ["app:1", "busybox:local", "multi:1"] {
        assert!(
            skipped
                .iter()
                .any(|s| s.starts_with(&format!("{name}: already there"))),
            "{name} not reported already there: {off}"
        );
    }
    assert!(store(&host).contains("io.containerd.snapshotter.v1"));
    assert_eq!(facts(&host), before);
    assert_eq!(
        host.ok(both).trim(),
        "linux/amd64\nlinux/arm64",
        "the containerd store lost a platform of multi:1"
    );
    assert_eq!(
        host.ok("docker image inspect -f '{{.Id}}' busybox:local app:1 multi:1"),
        old_ids,
        "the containerd store's images were replaced"
    );

    // Again: a no-op.
    let out = host.sh("docker-userns disable --yes --carry images,volumes --json");
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(json(&out)["changed"], false, "{out}");
    assert_eq!(facts(&host), before);

    // A tag that names other content is left alone and named, even with the same layers:
    // conf:1 is busybox:local in the containerd store, and multi:1 (busybox's layers under
    // another config) in overlay2.
    host.ok("docker tag busybox:local conf:1");
    let out = host.sh("docker-userns enable --yes --carry images --json --settle 2");
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        json(&out)["carry"]["failed"],
        serde_json::json!([]),
        "{out}"
    );
    host.ok("docker tag multi:1 conf:1");
    let out = host.sh("docker-userns disable --yes --carry images --json --settle 2");
    assert_eq!(out.code, 8, "{out}");
    let off = json(&out);
    let failed = off["carry"]["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{off}");
    let f = failed[0].as_str().unwrap();
    assert!(
        f.contains("already there as")
            && f.contains("under multi:1")
            && f.contains("conf:1 names another image there"),
        "{off}"
    );
    assert_eq!(
        host.ok("docker image inspect -f '{{.Id}}' conf:1"),
        host.ok("docker image inspect -f '{{.Id}}' busybox:local"),
        "conf:1 was moved in the containerd store"
    );
    assert_eq!(facts(&host), before);
}
