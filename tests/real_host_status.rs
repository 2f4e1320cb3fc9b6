//! `status`, the impact report of `plan`/`enable`/`disable`, the preflight checks and `verify`
//! on a real systemd + dockerd host (tests/testhost/): bookworm (docker 20.10) and docker-ce 29
//! (`docker29`). Needs root; fails, never skips.

mod common;
#[path = "testhost/mod.rs"]
mod testhost;

use serde_json::{Value, json};
use testhost::{Host, Output};

fn json(out: &Output) -> Value {
    common::json_doc(&out.stdout, out)
}

fn ok_json(host: &Host, args: &str) -> Value {
    let out = host.sh(&format!("docker-userns {args}"));
    assert_eq!(out.code, 0, "docker-userns {args}: {out}");
    json(&out)
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn status_impact_preflight_and_verify_before_and_after() {
    status_impact_preflight_and_verify("bookworm");
}

/// The same on docker-ce 29: the containers and the image in the containerd store before,
/// the remapped overlay2 root after.
#[test]
fn status_impact_preflight_and_verify_before_and_after_docker29() {
    status_impact_preflight_and_verify("docker29");
}

fn status_impact_preflight_and_verify(suite: &str) {
    let host = Host::boot_suite(&format!("status-{suite}"), suite);
    host.ok(
        "docker volume create v1 >/dev/null
         docker run -d --name web --pid=host -v /root:/data --pull=never busybox:local sleep 600 >/dev/null
         docker run -d --name plain --pull=never busybox:local sleep 600 >/dev/null
         docker run -d --name nobody --user 65534:65534 --pull=never busybox:local sleep 600 >/dev/null
         docker create --name idle --pull=never busybox:local true >/dev/null",
    );

    // -vv names every call to the engine with its status and time; -vvv stamps each line
    // with the seconds since the start.
    let out = host.sh("docker-userns -vv status");
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("DEBUG engine: GET /info: 200 in ") && l.ends_with(" ms")),
        "{out}"
    );
    let out = host.sh("docker-userns -vvv status");
    assert_eq!(out.code, 0, "{out}");
    let engine_line = out
        .stderr
        .lines()
        .find(|l| l.contains("engine: GET /info"))
        .unwrap_or_else(|| panic!("{out}"));
    let stamp = engine_line.split_whitespace().next().unwrap();
    assert!(
        stamp.ends_with('s') && stamp.trim_end_matches('s').parse::<f64>().is_ok(),
        "{engine_line}"
    );

    // Before: dockerd runs as root, remapping off, and the containers that are root on the host.
    let st = ok_json(&host, "status --json");
    assert_eq!(st["service"]["active_state"], "active", "{st}");
    assert_eq!(st["service"]["main_pid_user"], "root");
    assert_eq!(st["remapping_active"], false);
    assert_eq!(st["remapping_configured"], Value::Null);
    assert!(st["max_user_namespaces"].as_u64().unwrap() > 0);
    let found: Vec<(String, Vec<String>)> = st["host_root_containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                names(&c["reasons"]),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("plain".to_string(), vec!["no --user".to_string()]),
            (
                "web".to_string(),
                vec!["--pid=host".to_string(), "no --user".to_string()]
            )
        ]
    );
    let text = host.ok("docker-userns status");
    assert!(
        text.contains("remapping is OFF") && text.contains("runs as root"),
        "{text}"
    );
    assert!(text.contains("--user UID:GID"), "{text}");

    // verify before: not in effect, with the reason.
    let v = host.sh("docker-userns verify --json");
    assert_eq!(v.code, 7, "{v}");
    let v = json(&v);
    assert_eq!(v["effective"], false);
    assert_eq!(v["image"], "busybox:local");
    assert_eq!(v["checks"][0]["ok"], false, "{v}");
    assert!(
        v["checks"][0]["name"]
            .as_str()
            .unwrap()
            .contains("user namespaces")
    );

    // The impact report lists exactly what was made above.
    let plan = ok_json(&host, "plan --json");
    let i = &plan["impact"];
    assert_eq!(i["data_root"], "/var/lib/docker");
    assert_eq!(names(&i["images"]), ["busybox:local"]);
    assert_eq!(names(&i["containers"]), ["idle", "nobody", "plain", "web"]);
    assert_eq!(names(&i["volumes"]), ["v1"]);
    assert_eq!(names(&i["stopped_by_restart"]), ["nobody", "plain", "web"]);
    assert_eq!(names(&i["unwritable_binds"]), ["web: /root -> /data"]);
    assert_eq!(names(&i["need_userns_host"]), ["web (--pid=host)"]);

    // Preflight: a data-root parent without o+x stops enable, nothing changed.
    let files = || {
        host.ok("cat /etc/subuid /etc/subgid /etc/docker/daemon.json 2>&1; getent passwd dockremap; true")
    };
    let before = files();
    host.ok("chmod 0700 /var/lib");
    let refused = host.sh("docker-userns enable --yes --json");
    host.ok("chmod 0755 /var/lib");
    assert_eq!(refused.code, 3, "{refused}");
    assert!(
        refused
            .stderr
            .contains("/var/lib does not let other users traverse it"),
        "{refused}"
    );
    assert_eq!(files(), before);
    assert_eq!(ok_json(&host, "status --json")["remapping_active"], false);

    // enable shows the same impact and switches.
    let done = ok_json(&host, "enable --yes --json");
    assert_eq!(done["restarted"], true);
    assert_eq!(names(&done["impact"]["volumes"]), ["v1"]);
    host.reimport_image();

    let st = ok_json(&host, "status --json");
    assert_eq!(st["remapping_active"], true);
    assert_eq!(st["remapping_configured"], "default");
    assert_eq!(st["remap_user"], "dockremap");
    assert_eq!(st["subuid"], json!({"start": 100000, "count": 65536}));
    assert_eq!(st["docker_root_dir"], "/var/lib/docker/100000.100000");
    assert_eq!(
        st["host_root_containers"],
        json!([]),
        "nothing runs after the restart"
    );

    // verify after: every check passes.
    let v = ok_json(&host, "verify --json");
    assert_eq!(v["effective"], true, "{v}");
    let checks: Vec<(String, bool)> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["ok"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(checks.len(), 6, "{v}");
    assert!(checks.iter().all(|(_, ok)| *ok), "{v}");
    assert!(
        v.to_string()
            .contains("privileged mode is incompatible with user namespaces")
    );
    assert!(v.to_string().contains("Permission denied"));
    let leftovers = host.ok("docker ps -aq --filter label=docker-userns.verify");
    assert_eq!(leftovers.trim(), "", "verify left containers behind");

    // disable shows the mirror image: what was made while remapped will not be visible.
    let d = ok_json(&host, "disable --json");
    assert_eq!(names(&d["impact"]["images"]), ["busybox:local"]);
    assert_eq!(d["impact"]["data_root"], "/var/lib/docker/100000.100000");
    assert!(d["notes"].to_string().contains("switching back and forth"));
}
