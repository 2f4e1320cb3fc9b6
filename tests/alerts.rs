//! The Prometheus alerting rules (packaging/prometheus/docker-userns.rules.yml) and the Grafana
//! dashboard (packaging/grafana/docker-userns.json) shipped in the .deb:
//!
//! - `promtool check rules` and `promtool test rules` (Debian's promtool 2.42, unpacked by
//!   tests/prometheus/tools.sh into target/tools when none is on PATH; the test fails,
//!   never skips, when it cannot get one); every alert has a case that fires and one that
//!   does not, and each alert's firing cases fail when its expr is replaced by one that never
//!   fires (the cases check the alert, not just the file's syntax).
//! - The stale-file alert against a real node_exporter (Debian's 1.5.0, the same way): its
//!   textfile collector reads what `status --prometheus` writes without error, and the
//!   `node_textfile_mtime_seconds` series it serves for docker_userns.prom, labels verbatim,
//!   makes `DockerUsernsMetricsStale` fire in `promtool test rules`, another file's does not.
//! - The dashboard's structure, checked here by hand (Grafana itself cannot be installed
//!   offline): schemaVersion, uid, unique panel ids, grid positions, targets with refIds and
//!   exprs, the data source variable; its queries parse as PromQL (`promtool check rules` on
//!   them as recording rules).
//! - Every metric the rules and the dashboard name is one `status --prometheus` writes
//!   (`prometheus::render` of a status with every value known; the same check runs on a real
//!   host's file in tests/real_host_prometheus.rs), or node_exporter's
//!   `node_textfile_mtime_seconds`.

#[path = "prometheus/queries.rs"]
mod queries;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use docker_userns::commands::prometheus;
use docker_userns::commands::status::{HostRoot, Range, Service, Status, StatusProblem};
use docker_userns::host::setup::{Setup, StoreSwitch};
use docker_userns::host::unit_log::LastFailure;
use queries::{RULE_TESTS, RULES, packaging};
use serde_json::Value;

/// `tests/prometheus/tools.sh TOOL`'s answer: the tool's path. Panics (the test fails) when
/// there is none.
fn tool(name: &str) -> PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/prometheus/tools.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(name)
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(
        out.status.success(),
        "{name} is missing and {script} could not get it (from Debian's package): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(path.is_file(), "{script} printed {path:?}, not a file");
    path
}

/// The promtool to run, once per process.
fn promtool() -> &'static Path {
    static TOOL: OnceLock<PathBuf> = OnceLock::new();
    TOOL.get_or_init(|| tool("promtool"))
}

fn run_promtool(dir: &Path, args: &[&str]) -> Output {
    Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run promtool {args:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn rules_pass_promtool_check_and_their_unit_tests() {
    let dir = packaging("prometheus");
    let check = run_promtool(&dir, &["check", "rules", "docker-userns.rules.yml"]);
    assert!(
        check.status.success(),
        "promtool check rules: {}",
        text(&check)
    );
    let n = queries::alerts().len();
    assert!(
        String::from_utf8_lossy(&check.stdout).contains(&format!("SUCCESS: {n} rules found")),
        "{}",
        text(&check)
    );
    let test = run_promtool(&dir, &["test", "rules", "docker-userns.rules.test.yml"]);
    assert!(
        test.status.success(),
        "promtool test rules: {}",
        text(&test)
    );
    assert!(
        String::from_utf8_lossy(&test.stdout).contains("SUCCESS"),
        "{}",
        text(&test)
    );
}

/// For each alertname in the rule tests: (a case expects it firing, a case expects nothing).
fn cases() -> BTreeMap<String, (bool, bool)> {
    let path = packaging(RULE_TESTS);
    let body = std::fs::read_to_string(&path).unwrap();
    let mut out: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in body.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("alertname:") {
            current = Some(name.trim().to_string());
        } else if let Some(rest) = t.strip_prefix("exp_alerts:") {
            let name = current.take().expect("exp_alerts after an alertname");
            let e = out.entry(name).or_default();
            match rest.trim() {
                "[]" => e.1 = true,
                "" => e.0 = true,
                other => panic!("{path:?}: write exp_alerts as [] or a block list, not {other}"),
            }
        }
    }
    out
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_case() {
    let names: BTreeSet<String> = queries::alerts().into_iter().map(|(n, _)| n).collect();
    // The five the issue asks for, and docker's failed start.
    for want in [
        "DockerUsernsRemapNotActive",
        "DockerUsernsProblem",
        "DockerUsernsUnfinishedRun",
        "DockerUsernsHostRootContainers",
        "DockerUsernsMetricsStale",
        "DockerUsernsDockerFailed",
    ] {
        assert!(names.contains(want), "{want} missing: {names:?}");
    }
    let cases = cases();
    for name in &names {
        assert_eq!(
            cases.get(name),
            Some(&(true, true)),
            "{name}: (a firing case, a quiet case) in {RULE_TESTS}"
        );
    }
    let tested: BTreeSet<String> = cases.keys().cloned().collect();
    assert_eq!(&tested, &names, "cases for alerts that do not exist");
}

/// Each alert's expr replaced by one that never fires: `promtool test rules` must fail, on
/// that alert. Proves the firing cases test the alert (an `exp_alerts` left out, or a wrong
/// alertname, would pass with any expr).
#[test]
fn an_alert_that_never_fires_fails_its_cases() {
    let rules = std::fs::read_to_string(packaging(RULES)).unwrap();
    let tests = std::fs::read_to_string(packaging(RULE_TESTS)).unwrap();
    for (name, expr) in queries::alerts() {
        let dir = tempfile::tempdir().unwrap();
        let line = format!("expr: {expr}");
        assert_eq!(rules.matches(&line).count(), 1, "{name}: {line}");
        let broken = rules.replacen(&line, "expr: vector(1) == 0", 1);
        std::fs::write(dir.path().join("docker-userns.rules.yml"), broken).unwrap();
        std::fs::write(dir.path().join("docker-userns.rules.test.yml"), &tests).unwrap();
        let check = run_promtool(dir.path(), &["check", "rules", "docker-userns.rules.yml"]);
        assert!(check.status.success(), "{name}: {}", text(&check));
        let out = run_promtool(
            dir.path(),
            &["test", "rules", "docker-userns.rules.test.yml"],
        );
        assert!(
            !out.status.success(),
            "{name} never fires, yet its cases pass: {}",
            text(&out)
        );
        assert!(
            text(&out).contains(&format!("alertname: {name}")),
            "{name}: {}",
            text(&out)
        );
    }
}

/// A status in which every value is known, so `render` writes every metric family.
fn full_status() -> Status {
    let problem = |kind| StatusProblem {
        kind,
        message: "m".into(),
        fix: "f".into(),
    };
    Status {
        service: Some(Service {
            active_state: "failed".into(),
            sub_state: "failed".into(),
            main_pid: 0,
            main_pid_user: None,
            n_restarts: 1,
            result: "exit-code".into(),
            last_failure: Some(LastFailure {
                cause: "no-subid-ranges",
                summary: "s".into(),
                unit: "docker.service",
                invocation_id: "i".into(),
                line: "l".into(),
                advice: "a".into(),
            }),
        }),
        remapping_active: Some(true),
        remapping_configured: Some("default".into()),
        remap_user: Some("dockremap".into()),
        remap_group: Some("dockremap".into()),
        subuid: Some(Range {
            start: 100000,
            count: 65536,
        }),
        subgid: Some(Range {
            start: 100000,
            count: 65536,
        }),
        docker_root_dir: Some("/var/lib/docker/100000.100000".into()),
        docker_version: Some("28.5.2".into()),
        max_user_namespaces: Some(63704),
        unfinished: Some("enable 1 (phase Applied)".into()),
        host_root_containers: vec![HostRoot {
            name: "web".into(),
            reasons: vec!["--pid=host".into()],
            advice: "a".into(),
        }],
        problems: vec![problem("remap-range-overlap")],
        setup: Setup {
            data_root: "/var/lib/docker".into(),
            ..Setup::default()
        },
        image_store_switch: Some(StoreSwitch {
            before: "overlay2".into(),
            after: "overlay2".into(),
            switches: false,
            why: "w".into(),
        }),
        notes: Vec::new(),
    }
}

#[test]
fn rules_and_dashboard_use_only_metrics_the_tool_writes() {
    let written = queries::written_metrics(&prometheus::render(&full_status()));
    // The renderer wrote every family it documents (else this check proves little).
    assert_eq!(written.len(), 11, "{written:?}");
    queries::assert_only_written_metrics(&written, "prometheus::render of a full status");
    // The rules use what they are about.
    let used: BTreeSet<String> = queries::used_metrics()
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    for m in [
        "docker_userns_remapping_configured",
        "docker_userns_remapping_active",
        "docker_userns_problems",
        "docker_userns_unfinished_run",
        "docker_userns_host_root_containers",
        "docker_userns_docker_failed",
        "node_textfile_mtime_seconds",
    ] {
        assert!(used.contains(m), "{m} not used: {used:?}");
    }
    // And the check catches a name the tool does not write.
    let mut fewer = written.clone();
    fewer.remove("docker_userns_unfinished_run");
    let caught = std::panic::catch_unwind(|| {
        queries::assert_only_written_metrics(&fewer, "without unfinished_run")
    });
    assert!(caught.is_err(), "a missing metric was not caught");
}

#[test]
fn metric_names_are_found_in_promql() {
    let names = |e: &str| -> Vec<String> { queries::metric_names(e).into_iter().collect() };
    assert_eq!(
        names(
            r#"docker_userns_a == 1 unless on (instance, job) docker_userns_b{x="y z",k=~"a\"b"} == 1"#
        ),
        ["docker_userns_a", "docker_userns_b"]
    );
    assert_eq!(
        names(
            r#"count(time() - node_textfile_mtime_seconds{file=~"(.*/)?x\\.prom"} > 900) or vector(0)"#
        ),
        ["node_textfile_mtime_seconds"]
    );
    assert_eq!(
        names("sum by (kind) (rate(foo_total[5m])) and bool bar"),
        ["bar", "foo_total"]
    );
    assert_eq!(
        names("label_values(docker_userns_info, instance)"),
        ["docker_userns_info"]
    );
}

#[test]
fn dashboard_is_a_grafana_dashboard() {
    let d = queries::dashboard();
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "title");
    assert!(
        d["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty() && u.len() <= 40),
        "uid: 1 to 40 characters"
    );
    let schema = d["schemaVersion"]
        .as_u64()
        .expect("schemaVersion: a number");
    assert!((30..=41).contains(&schema), "schemaVersion {schema}");
    assert!(d["time"]["from"].is_string() && d["time"]["to"].is_string());
    // Templating: a Prometheus data source variable that every panel and target uses.
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let ds_var = vars
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a data source variable");
    assert_eq!(ds_var["query"], "prometheus");
    let ds_uid = format!("${{{}}}", ds_var["name"].as_str().unwrap());
    let var_names: BTreeSet<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();
    let uses_ds = |v: &Value, what: &str| {
        assert_eq!(v["datasource"]["type"], "prometheus", "{what}");
        assert_eq!(v["datasource"]["uid"], ds_uid.as_str(), "{what}");
    };
    for v in vars.iter().filter(|v| v["type"] == "query") {
        uses_ds(v, &format!("variable {}", v["name"]));
    }
    let panels = d["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8, "{} panels", panels.len());
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().expect("every panel has a title");
        let id = p["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "panel id {id} twice");
        assert!(
            ["stat", "table", "timeseries", "gauge", "bargauge"]
                .contains(&p["type"].as_str().unwrap_or("")),
            "{title}: type {}",
            p["type"]
        );
        uses_ds(p, title);
        let g = &p["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| {
            g[k].as_u64()
                .unwrap_or_else(|| panic!("{title}: gridPos.{k}"))
        });
        assert!(w >= 1 && h >= 1 && x + w <= 24, "{title}: {g}");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(
                    cells.insert((cx, cy)),
                    "{title} overlaps another panel at {cx},{cy}"
                );
            }
        }
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no target");
        let mut refs = BTreeSet::new();
        for t in targets {
            uses_ds(t, title);
            let r = t["refId"].as_str().expect("refId");
            assert!(refs.insert(r), "{title}: refId {r} twice");
            let e = t["expr"].as_str().expect("expr");
            assert!(!e.trim().is_empty(), "{title}: empty expr");
            // Every $variable in a query is one the dashboard defines.
            for (i, _) in e.match_indices('$') {
                let v: String = e[i + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(var_names.contains(v.as_str()), "{title}: ${v} not defined");
            }
        }
    }
}

/// The dashboard's queries as recording rules, with `$instance` as `.*`: `promtool check
/// rules` parses each as PromQL.
#[test]
fn dashboard_queries_parse_as_promql() {
    let dir = tempfile::tempdir().unwrap();
    let mut yml = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let exprs = queries::dashboard_exprs();
    let mut n = 0;
    for (i, (title, expr)) in exprs.iter().enumerate() {
        if title.starts_with("variable ") {
            continue; // label_values() is Grafana's, not PromQL
        }
        let e = expr.replace("$instance", ".*");
        yml.push_str(&format!(
            "      - record: dashboard:q{i}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        ));
        n += 1;
    }
    std::fs::write(dir.path().join("q.yml"), &yml).unwrap();
    let out = run_promtool(dir.path(), &["check", "rules", "q.yml"]);
    assert!(out.status.success(), "{}\n{yml}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("SUCCESS: {n} rules found")),
        "{}",
        text(&out)
    );
}

/// GET http://127.0.0.1:PORT/metrics with HTTP/1.0; the body, or None when it does not answer.
fn scrape(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    conn.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.1 200").then(|| body.to_string()))
}

#[test]
fn stale_alert_matches_a_real_node_exporters_labels() {
    let node_exporter = tool("node_exporter");
    let textfiles = tempfile::tempdir().unwrap();
    let ours = textfiles.path().join("docker_userns.prom");
    let written = prometheus::render(&full_status());
    std::fs::write(&ours, &written).unwrap();
    std::fs::write(
        textfiles.path().join("other.prom"),
        "# TYPE other_metric gauge\nother_metric 1\n",
    )
    .unwrap();
    // A free port: bound, then let go for node_exporter.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(&node_exporter)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args(["--collector.disable-defaults", "--collector.textfile"])
        .arg(format!(
            "--collector.textfile.directory={}",
            textfiles.path().display()
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {node_exporter:?}: {e}"));
    let t0 = std::time::Instant::now();
    let body = loop {
        if let Some(body) = scrape(port) {
            break Some(body);
        }
        if t0.elapsed().as_secs() > 20 || child.try_wait().unwrap().is_some() {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let body = body.unwrap_or_else(|| {
        panic!(
            "node_exporter on 127.0.0.1:{port} did not answer: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    // The collector read both files, and serves every family of ours.
    assert!(
        body.lines().any(|l| l == "node_textfile_scrape_error 0"),
        "{body}"
    );
    let served = queries::written_metrics(&body);
    for m in queries::written_metrics(&written) {
        assert!(
            served.contains(&m),
            "node_exporter does not serve {m}:\n{body}"
        );
    }
    let mtime_line = |file: &Path| -> String {
        let prefix = "node_textfile_mtime_seconds{";
        body.lines()
            .find(|l| l.starts_with(prefix) && l.contains(&format!("\"{}\"", file.display())))
            .unwrap_or_else(|| panic!("no mtime series for {file:?}:\n{body}"))
            .to_string()
    };
    // `{file="..."}` as served, with the labels Prometheus adds to every scraped series.
    let labels = |line: &str| -> String {
        let inner = &line[line.find('{').unwrap() + 1..line.rfind('}').unwrap()];
        format!("{inner},instance=\"h:9100\",job=\"node\"")
    };
    let ours_labels = labels(&mtime_line(&ours));
    let other_labels = labels(&mtime_line(&textfiles.path().join("other.prom")));
    let file = ours.display().to_string();
    let test = format!(
        r#"rule_files:
  - docker-userns.rules.yml
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'node_textfile_mtime_seconds{{{ours_labels}}}'
        values: '0x30'
      - series: 'node_textfile_mtime_seconds{{{other_labels}}}'
        values: '0x30'
    alert_rule_test:
      - eval_time: 21m
        alertname: DockerUsernsMetricsStale
        exp_alerts:
          - exp_labels: {{severity: warning, instance: "h:9100", job: node, file: "{file}"}}
            exp_annotations:
              summary: "docker-userns metrics on h:9100 not refreshed"
              description: "{file} on h:9100 is 21m 0s old: the docker-userns-metrics timer stopped, or `docker-userns status --prometheus` fails there (run it by hand)."
"#
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(packaging(RULES), dir.path().join("docker-userns.rules.yml")).unwrap();
    std::fs::write(dir.path().join("t.yml"), &test).unwrap();
    let out = run_promtool(dir.path(), &["test", "rules", "t.yml"]);
    assert!(out.status.success(), "{}\n{test}", text(&out));
}
