//! docker-ce 29 (dockerd 29.7.2, the containerd image store on a fresh install), a booted test
//! host (tests/testhost/, `docker29`): the image store switch said and predicted right (plan,
//! the impact report of enable and disable, status as text, JSON and Prometheus), and docker
//! 29's refusals (`"containerd-snapshotter": true`, `"containerd-migration": true`) matched
//! against what the real dockerd 29 does with them beside `userns-remap`. The cases share one
//! host, in an order where each starts from what the one before left. Needs root; fails, never
//! skips.

mod common;
#[path = "testhost/mod.rs"]
mod testhost;

use serde_json::Value;
use testhost::{Host, Output};

/// docker 29's containerd image store, as the tool names it.
const C8D: &str = "containerd (overlayfs snapshotter)";

fn json(out: &Output) -> Value {
    common::json_doc(&out.stdout, out)
}

fn ok_json(host: &Host, args: &str) -> Value {
    let out = host.sh(&format!("docker-userns {args}"));
    assert_eq!(out.code, 0, "docker-userns {args}: {out}");
    json(&out)
}

/// The engine's store as `docker info` says it: Driver and whether DriverStatus names the
/// containerd snapshotter.
fn engine_store(host: &Host) -> String {
    host.ok("docker info --format '{{.Driver}} {{json .DriverStatus}}'")
        .trim()
        .to_string()
}

/// Restarts docker behind the tool's back (the start limit reset first).
fn restart_docker(host: &Host) {
    host.ok(
        "systemctl reset-failed docker.service docker.socket; systemctl restart docker.service",
    );
}

/// What a refused run must leave exactly as it was.
fn snapshot(
    host: &Host,
) -> (
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
) {
    (
        host.read_string("/etc/docker/daemon.json"),
        host.read_string("/etc/subuid"),
        host.read_string("/etc/subgid"),
        host.read_string("/etc/passwd").unwrap(),
        host.invocation(),
    )
}

fn store(v: &Value) -> (String, String, bool) {
    (
        v["before"].as_str().unwrap_or("?").to_string(),
        v["after"].as_str().unwrap_or("?").to_string(),
        v["switches"].as_bool().unwrap_or(false),
    )
}

fn prom(host: &Host) -> String {
    let out = host.sh("docker-userns status --prometheus /run/docker-userns.prom");
    assert_eq!(out.code, 0, "status --prometheus: {out}");
    host.read_string("/run/docker-userns.prom").unwrap()
}

#[test]
fn docker_29_says_the_image_store_switch_and_refuses_its_containerd_features() {
    let host = Host::boot_suite("d29store", "docker29");
    assert_eq!(
        host.ok("docker version --format '{{.Server.Version}}'")
            .trim(),
        "29.7.2"
    );
    let fresh = engine_store(&host);
    assert!(
        fresh.starts_with("overlayfs ") && fresh.contains("io.containerd.snapshotter.v1"),
        "not the containerd image store: {fresh}"
    );

    // --- The refusals: exit 3 before any change, naming the setting and what to do.
    for (features, names, says) in [
        (
            r#"{"features": {"containerd-snapshotter": true}}"#,
            "\"containerd-snapshotter\": true",
            "refuses to start",
        ),
        (
            r#"{"features": {"containerd-migration": true}}"#,
            "\"containerd-migration\": true",
            "turns the containerd image store back on",
        ),
    ] {
        host.write("/etc/docker/daemon.json", format!("{features}\n"));
        let before = snapshot(&host);
        for cmd in [
            "plan",
            "enable --yes",
            "enable --yes --carry images,volumes",
        ] {
            let out = host.sh(&format!("docker-userns {cmd}"));
            assert_eq!(out.code, 3, "{features}: {cmd}: {out}");
            for want in [names, says, "remove that feature", "nothing was changed"] {
                assert!(
                    out.stderr.contains(want),
                    "{features}: {cmd}: no {want:?}: {out}"
                );
            }
            assert_eq!(
                snapshot(&host),
                before,
                "{features}: {cmd} changed the host"
            );
        }
        assert!(
            !before.3.contains("dockremap:"),
            "the remap user was created by a refused run"
        );
    }
    host.ok("rm /etc/docker/daemon.json");

    // --- Before enable: plan and status name the store and where enable leads.
    let plan = ok_json(&host, "plan --json");
    assert_eq!(
        store(&plan["impact"]["image_store"]),
        (C8D.into(), "overlay2".into(), true),
        "{plan}"
    );
    let text = host.ok("docker-userns plan");
    assert!(
        text.contains(&format!("image store {C8D} -> overlay2"))
            && text.contains("only reachable with `--carry images` or after switching back")
            && text.contains("what docker holds (images in containerd's image store, containers and volumes in /var/lib/docker)"),
        "{text}"
    );
    let st = ok_json(&host, "status --json");
    assert_eq!(st["setup"]["image_store"], C8D, "{st}");
    assert_eq!(
        store(&st["image_store_switch"]),
        (C8D.into(), "overlay2".into(), true),
        "{st}"
    );
    let st_text = host.ok("docker-userns status");
    assert!(st_text.contains(&format!("image store {C8D}")), "{st_text}");
    assert!(
        st_text.contains("`enable` switches docker to overlay2"),
        "{st_text}"
    );
    let m = prom(&host);
    for line in [
        format!("docker_userns_image_store{{when=\"now\",store=\"{C8D}\"}} 1"),
        "docker_userns_image_store{when=\"after_switch\",store=\"overlay2\"} 1".to_string(),
    ] {
        assert!(m.lines().any(|l| l == line), "no {line} in:\n{m}");
    }

    // --- enable: the report says it, and dockerd 29 does what was predicted.
    let done = ok_json(&host, "enable --yes --json --settle 2");
    assert_eq!(done["restarted"], true, "{done}");
    assert_eq!(
        store(&done["impact"]["image_store"]),
        (C8D.into(), "overlay2".into(), true),
        "{done}"
    );
    let remapped = engine_store(&host);
    assert!(
        remapped.starts_with("overlay2 ") && !remapped.contains("snapshotter"),
        "{remapped}"
    );
    let st = ok_json(&host, "status --json");
    assert_eq!(st["remapping_active"], true, "{st}");
    assert_eq!(st["setup"]["image_store"], "overlay2", "{st}");
    assert_eq!(
        store(&st["image_store_switch"]),
        ("overlay2".into(), C8D.into(), true),
        "{st}"
    );
    assert!(
        st["notes"]
            .to_string()
            .contains("`disable` switches docker back to"),
        "{st}"
    );
    let m = prom(&host);
    assert!(
        m.lines()
            .any(|l| l == "docker_userns_image_store{when=\"now\",store=\"overlay2\"} 1"),
        "{m}"
    );

    // --- disable: back to the containerd store (no prior graph driver in /var/lib/docker).
    let off = ok_json(&host, "disable --yes --json --settle 2");
    assert_eq!(off["restarted"], true, "{off}");
    assert_eq!(
        store(&off["impact"]["image_store"]),
        ("overlay2".into(), C8D.into(), true),
        "{off}"
    );
    assert_eq!(engine_store(&host), fresh, "disable did not go back");
    let st = ok_json(&host, "status --json");
    assert_eq!(st["setup"]["image_store"], C8D, "{st}");

    // --- A prior graph driver in the data root (a host upgraded from docker 28): dockerd 29
    // keeps it ("using prior storage driver"), and no switch is announced either way.
    host.write(
        "/etc/docker/daemon.json",
        "{\"features\": {\"containerd-snapshotter\": false}}\n",
    );
    restart_docker(&host);
    host.ok("rm /etc/docker/daemon.json");
    restart_docker(&host);
    let kept = engine_store(&host);
    assert!(
        kept.starts_with("overlay2 "),
        "no prior driver kept: {kept}"
    );
    let plan = ok_json(&host, "plan --json");
    assert_eq!(
        store(&plan["impact"]["image_store"]),
        ("overlay2".into(), "overlay2".into(), false),
        "{plan}"
    );
    ok_json(&host, "enable --yes --json --settle 2");
    let off = ok_json(&host, "disable --yes --json --settle 2");
    assert_eq!(
        store(&off["impact"]["image_store"]),
        ("overlay2".into(), "overlay2".into(), false),
        "{off}"
    );
    assert!(engine_store(&host).starts_with("overlay2 "));
    // With an image in that graph driver, "containerd-migration" does not migrate either
    // ("Not migrating to containerd snapshotter because still have 1 images"): disable with
    // the feature set (after enable, behind the tool's back) predicts overlay2, rightly.
    host.reimport_image();
    ok_json(&host, "enable --yes --json --settle 2");
    host.write(
        "/etc/docker/daemon.json",
        "{\"userns-remap\": \"default\", \"features\": {\"containerd-migration\": true}}\n",
    );
    let off = ok_json(&host, "disable --yes --json --settle 2");
    assert_eq!(
        store(&off["impact"]["image_store"]),
        ("overlay2".into(), "overlay2".into(), false),
        "{off}"
    );
    assert!(
        off["impact"]["image_store"]["why"]
            .to_string()
            .contains("does not migrate"),
        "{off}"
    );
    assert!(engine_store(&host).starts_with("overlay2 "));

    // --- The refusals match the real dockerd 29 (dockremap and its ranges exist by now, so
    // these configurations create nothing as a side effect).
    host.write(
        "/tmp/snap.json",
        "{\"userns-remap\": \"default\", \"features\": {\"containerd-snapshotter\": true}}\n",
    );
    let v = host.sh("dockerd --validate --config-file /tmp/snap.json");
    assert_ne!(
        v.code, 0,
        "dockerd 29 accepted the snapshotter with remapping: {v}"
    );
    assert!(
        v.stderr.contains(
            "containerd-snapshotter is explicitly enabled, but is not compatible with userns remapping"
        ),
        "{v}"
    );
    // The migration: validate accepts it, and dockerd starts remapped with the containerd
    // image store on in the remapped data root.
    host.write(
        "/etc/docker/daemon.json",
        "{\"userns-remap\": \"default\", \"features\": {\"containerd-migration\": true}}\n",
    );
    let v = host.sh("dockerd --validate --config-file /etc/docker/daemon.json");
    assert_eq!(v.code, 0, "{v}");
    restart_docker(&host);
    let mig = engine_store(&host);
    assert!(
        mig.starts_with("overlayfs ") && mig.contains("io.containerd.snapshotter.v1"),
        "migration did not turn the containerd store on: {mig}"
    );
    assert!(
        host.ok("docker info --format '{{.DockerRootDir}} {{json .SecurityOptions}}'")
            .contains("name=userns"),
        "not remapped"
    );
    // The tool refuses this host as it stands (disable is not refused: no remapping, no clash).
    let out = host.sh("docker-userns enable --yes");
    assert_eq!(out.code, 3, "{out}");
    let out = host.sh("docker-userns disable --yes --settle 2");
    assert_eq!(out.code, 0, "{out}");
}
