//! `status --prometheus FILE` on a real systemd + dockerd host (tests/testhost/): the file
//! parses with a real parser (prometheus-client from PyPI, installed by the test through
//! `testhost.sh promparser`) and every value matches `status --json` of the same run, before
//! and after `enable`, with a range overlap, and with docker stopped; on bookworm (docker 20.10)
//! and docker-ce 29 (`docker29`); after `enable` the file holds every metric that
//! packaging/prometheus/ and packaging/grafana/ query (tests/prometheus/queries.rs). Needs root;
//! fails, never skips.

mod common;
#[path = "prometheus/queries.rs"]
mod queries;
#[path = "testhost/mod.rs"]
mod testhost;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use docker_userns::commands::prometheus;
use docker_userns::commands::status::{PROBLEM_KINDS, Status};
use docker_userns::host::setup::Setup;
use serde_json::Value;
use testhost::Host;

const FILE: &str = "/var/lib/node_exporter/textfile/docker_userns.prom";
const PARSER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/prometheus/parse.py");

/// (metric name, labels) -> value.
type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

/// Parses `text` with `prometheus_client.parser.text_string_to_metric_families`; panics with
/// the parser's error when it does not parse. Every family must be a gauge with a HELP text,
/// named docker_userns_*.
fn parse(text: &str) -> Samples {
    let dir = testhost::prometheus_parser();
    let mut child = Command::new("python3")
        .arg(PARSER)
        .env("PYTHONPATH", &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3 (the one promparser installed prometheus-client for)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client does not parse it: {}\n--- file ---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let families: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut samples = Samples::new();
    for (name, family) in families.as_object().unwrap() {
        assert!(name.starts_with("docker_userns_"), "{name}");
        assert_eq!(family["type"], "gauge", "{name}: {family}");
        assert!(
            !family["help"].as_str().unwrap().is_empty(),
            "{name} has no HELP"
        );
        for s in family["samples"].as_array().unwrap() {
            let labels = s["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            let key = (s["name"].as_str().unwrap().to_string(), labels);
            let value = s["value"].as_f64().unwrap();
            assert!(
                samples.insert(key.clone(), value).is_none(),
                "{key:?} twice"
            );
        }
    }
    samples
}

fn key(name: &str, labels: &[(&str, &str)]) -> (String, BTreeMap<String, String>) {
    (
        format!("docker_userns_{name}"),
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// What the file must hold, derived from the `status --json` document alone.
fn expected(st: &Value) -> Samples {
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let mut want = Samples::new();
    want.insert(
        key(
            "info",
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("docker_version", &text(&st["docker_version"])),
                ("data_root", &text(&st["setup"]["data_root"])),
                ("remap_user", &text(&st["remap_user"])),
            ],
        ),
        1.0,
    );
    want.insert(
        key("remapping_configured", &[]),
        flag(!st["remapping_configured"].is_null()),
    );
    if let Some(on) = st["remapping_active"].as_bool() {
        want.insert(key("remapping_active", &[]), flag(on));
        want.insert(
            key("host_root_containers", &[]),
            st["host_root_containers"].as_array().unwrap().len() as f64,
        );
    }
    for (ids, field) in [("uid", "subuid"), ("gid", "subgid")] {
        if let Some(r) = st[field].as_object() {
            want.insert(
                key("remap_range_start", &[("ids", ids)]),
                r["start"].as_f64().unwrap(),
            );
            want.insert(
                key("remap_range_size", &[("ids", ids)]),
                r["count"].as_f64().unwrap(),
            );
        }
    }
    let problems = st["problems"].as_array().unwrap();
    for kind in PROBLEM_KINDS {
        want.insert(
            key("problems", &[("kind", kind)]),
            problems.iter().filter(|p| p["kind"] == kind).count() as f64,
        );
    }
    if st["service"].is_object() {
        let cause = &st["service"]["last_failure"]["cause"];
        for c in docker_userns::host::unit_log::CAUSES {
            want.insert(key("docker_failed", &[("cause", c)]), flag(*cause == c));
        }
    }
    want.insert(
        key("unfinished_run", &[]),
        flag(!st["unfinished"].is_null()),
    );
    if let Some(n) = st["max_user_namespaces"].as_f64() {
        want.insert(key("max_user_namespaces", &[]), n);
    }
    if let Some(sw) = st["image_store_switch"].as_object() {
        for (when, field) in [("now", "before"), ("after_switch", "after")] {
            want.insert(
                key(
                    "image_store",
                    &[("when", when), ("store", &text(&sw[field]))],
                ),
                1.0,
            );
        }
    }
    want
}

/// Runs `status --json --prometheus FILE`, checks the file against the JSON, returns both.
fn status_and_file(host: &Host) -> (Value, Samples) {
    let out = host.sh(&format!("docker-userns status --json --prometheus {FILE}"));
    assert_eq!(out.code, 0, "{out}");
    let st = common::json_doc(&out.stdout, &out);
    let text = host
        .read_string(FILE)
        .expect("the metrics file was written");
    let got = parse(&text);
    assert_eq!(
        got,
        expected(&st),
        "the file does not match status --json\n--- file ---\n{text}\n--- json ---\n{st:#}"
    );
    // Replaced atomically: mode 0644, no temporary file left beside it.
    let listing = host.ok(&format!("stat -c '%a %U' {FILE}; ls -A $(dirname {FILE})"));
    assert_eq!(listing, "644 root\ndocker_userns.prom\n", "{listing}");
    (st, got)
}

fn value(s: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.get(&key(name, labels)).copied()
}

#[test]
fn prometheus_file_matches_status_json_before_and_after_enable() {
    prometheus_file_matches_status_json("bookworm", "20.10.");
}

/// The same on docker-ce 29.
#[test]
fn prometheus_file_matches_status_json_before_and_after_enable_docker29() {
    prometheus_file_matches_status_json("docker29", "29.");
}

fn prometheus_file_matches_status_json(suite: &str, version: &str) {
    let host = Host::boot_suite(&format!("prom-{suite}"), suite);
    host.ok(&format!("mkdir -p $(dirname {FILE})"));
    host.ok(
        "docker run -d --name plain --pull=never busybox:local sleep 600 >/dev/null
         docker run -d --name web --pid=host --pull=never busybox:local sleep 600 >/dev/null",
    );

    // Before: off, no range, two containers root on the host.
    let (st, got) = status_and_file(&host);
    assert_eq!(st["remapping_active"], false, "{st:#}");
    assert_eq!(value(&got, "remapping_active", &[]), Some(0.0));
    assert_eq!(value(&got, "remapping_configured", &[]), Some(0.0));
    assert_eq!(value(&got, "host_root_containers", &[]), Some(2.0));
    assert_eq!(value(&got, "remap_range_start", &[("ids", "uid")]), None);
    let docker = st["docker_version"].as_str().unwrap();
    assert!(docker.starts_with(version), "{st:#}");

    // After enable: on, the range, nothing running any more.
    let done = host.sh("docker-userns enable --yes --json");
    assert_eq!(done.code, 0, "{done}");
    let (st, got) = status_and_file(&host);
    assert_eq!(st["remapping_active"], true, "{st:#}");
    assert_eq!(value(&got, "remapping_active", &[]), Some(1.0));
    assert_eq!(value(&got, "remapping_configured", &[]), Some(1.0));
    assert_eq!(
        value(&got, "remap_range_start", &[("ids", "uid")]),
        Some(100000.0)
    );
    assert_eq!(
        value(&got, "remap_range_size", &[("ids", "gid")]),
        Some(65536.0)
    );
    assert_eq!(value(&got, "host_root_containers", &[]), Some(0.0));
    // Every metric packaging/'s alerts and dashboard query is in the real file.
    let text = host.read_string(FILE).unwrap();
    queries::assert_only_written_metrics(
        &queries::written_metrics(&text),
        &format!("{FILE} on {suite} after enable"),
    );
    assert_eq!(
        value(
            &got,
            "info",
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("docker_version", docker),
                ("data_root", "/var/lib/docker"),
                ("remap_user", "dockremap"),
            ]
        ),
        Some(1.0)
    );

    // Drift: another owner's range inside the remap user's.
    host.ok("echo bob:110000:100 >>/etc/subuid");
    let (st, got) = status_and_file(&host);
    assert_eq!(st["problems"].as_array().unwrap().len(), 1, "{st:#}");
    assert_eq!(
        value(&got, "problems", &[("kind", "remap-range-overlap")]),
        Some(1.0)
    );
    assert_eq!(
        value(&got, "problems", &[("kind", "remap-range-covers-account")]),
        Some(0.0)
    );

    // docker stopped: the engine is not asked, and what only it knows is left out.
    host.ok("systemctl stop docker.socket docker.service");
    let (st, got) = status_and_file(&host);
    assert_eq!(st["remapping_active"], Value::Null, "{st:#}");
    assert_eq!(value(&got, "remapping_active", &[]), None);
    assert_eq!(value(&got, "host_root_containers", &[]), None);
    assert_eq!(value(&got, "remapping_configured", &[]), Some(1.0));
}

#[test]
fn escaped_label_values_survive_a_real_parser() {
    let weird = "/srv/a \"quoted\" back\\slash\nnew line é";
    let st = Status {
        service: None,
        remapping_active: Some(false),
        remapping_configured: None,
        remap_user: Some("x\\\"y".into()),
        remap_group: None,
        subuid: None,
        subgid: None,
        docker_root_dir: None,
        docker_version: Some("1.2\n3".into()),
        max_user_namespaces: Some(0),
        unfinished: None,
        host_root_containers: Vec::new(),
        problems: Vec::new(),
        setup: Setup {
            data_root: weird.into(),
            ..Setup::default()
        },
        image_store_switch: None,
        notes: Vec::new(),
    };
    let got = parse(&prometheus::render(&st));
    assert_eq!(
        value(
            &got,
            "info",
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("docker_version", "1.2\n3"),
                ("data_root", weird),
                ("remap_user", "x\\\"y"),
            ]
        ),
        Some(1.0),
        "{got:#?}"
    );
    assert_eq!(value(&got, "max_user_namespaces", &[]), Some(0.0));
}
