//! A rolling rollout across four real hosts of different docker generations, run from this
//! machine as the Ansible control node (Debian's ansible-core) with the collection built and
//! installed from its tarball (tests/fleet/mod.rs): the bookworm (docker 20.10), forky (28),
//! trixie (26) and docker29 (docker-ce 29) test hosts are booted at once and reached through a
//! real connection plugin, tests/fleet/connection_plugins/nsenter_pid.py (`nsenter -t PID -a`,
//! the way testhost.sh runs commands in them; the hosts have no network to the controller, and
//! community.docker's nsenter connection comes only with Debian's 259 MB `ansible` package).
//!
//! Check mode with --diff of `docker_userns.docker_userns.rolling` against all four shows each
//! host's planned change exactly as `docker-userns plan --json` on that host lists it, and
//! changes nothing. The real run (serial [1, "50%"]: batches of 1, 2, 1; max_fail_percentage
//! 0), with forky's docker refusing the remapped configuration: the canary (bookworm) is
//! remapped and verified; in the second batch forky fails with the tool's exit 5 and is rolled
//! back (files byte-identical, docker running unremapped) while trixie beside it finishes; the
//! last host (docker29) is never contacted (files byte-identical, same docker InvocationID, no
//! Ansible temp dir), and the play recap says so. The batch of two makes max_fail_percentage
//! matter: without it Ansible would go on to the last batch (it stops by itself only when every
//! host of a batch failed). Needs root; never skips.

#[path = "fleet/mod.rs"]
mod fleet;
#[path = "testhost/mod.rs"]
mod testhost;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;
use testhost::Host;

/// What a host must keep byte for byte when the rollout does not (or no longer) touch it.
const FILES: &[&str] = &[
    "/etc/subuid",
    "/etc/subgid",
    "/etc/docker/daemon.json",
    "/etc/passwd",
    "/etc/group",
];

/// The files that a rolled-back run restores byte for byte (a remap user it created is kept).
const RESTORED: usize = 3;

fn files(host: &Host) -> Vec<Option<Vec<u8>>> {
    FILES.iter().map(|p| host.read(p)).collect()
}

/// Panics unless the first `n` of FILES are byte for byte as `before`, showing them as text.
fn assert_same(host: &Host, before: &[Option<Vec<u8>>], n: usize, what: &str) {
    let now = files(host);
    for (i, path) in FILES.iter().enumerate().take(n) {
        let show =
            |v: &Option<Vec<u8>>| v.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
        assert!(
            now[i] == before[i],
            "{what}: {path} changed:\nbefore: {:?}\nnow: {:?}",
            show(&before[i]),
            show(&now[i])
        );
    }
}

fn userns(host: &Host) -> bool {
    host.ok("docker info --format '{{json .SecurityOptions}}'")
        .contains("name=userns")
}

/// The PLAY RECAP counters per host (`h1 : ok=5 changed=1 ... failed=0 ...`).
fn recap(stdout: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    let Some(at) = stdout.rfind("PLAY RECAP") else {
        panic!("no PLAY RECAP in:\n{stdout}");
    };
    for line in stdout[at..].lines().skip(1) {
        let Some((host, counts)) = line.split_once(" : ") else {
            continue;
        };
        let m = counts
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.parse::<u64>().unwrap_or(0)))
            .collect();
        out.insert(host.trim().to_string(), m);
    }
    out
}

/// A content field of one of plan's `files` entries as the module shows it (text; base64
/// decoded lossily, as the module does).
fn plan_text(entry: &Value, field: &str) -> Option<String> {
    let v = entry[field].as_str()?;
    if entry["encoding"] == "base64" {
        use std::io::Write;
        let mut child = std::process::Command::new("base64")
            .arg("-d")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("base64");
        child.stdin.take().unwrap().write_all(v.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        return Some(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Some(v.to_string())
}

/// The rollout's batches here: the canary, then half of the four hosts at a time (1, 2, 1).
/// The playbook's default, [1, "10%", "25%"], makes batches of one on so few hosts.
const SERIAL: &str = r#"{"docker_userns_rollout_serial": [1, "50%"]}"#;

struct Fleet<'a> {
    dir: &'a Path,
    cols: String,
    inventory: String,
    results: String,
}

impl Fleet<'_> {
    /// Runs the collection's rolling playbook by its FQCN; returns (exit code, output).
    fn rolling(&self, extra: &[&str]) -> (i32, String) {
        let _ = std::fs::remove_dir_all(&self.results);
        std::fs::create_dir_all(&self.results).unwrap();
        let mut args = vec!["-i", self.inventory.as_str()];
        args.extend_from_slice(extra);
        args.push("docker_userns.docker_userns.rolling");
        let out = fleet::ansible(
            self.dir,
            "ansible-playbook",
            &args,
            &[
                ("ANSIBLE_COLLECTIONS_PATH", &self.cols),
                ("ANSIBLE_CONNECTION_PLUGINS", fleet::CONNECTION_PLUGINS),
                ("ANSIBLE_CALLBACK_PLUGINS", fleet::CALLBACK_PLUGINS),
                ("ANSIBLE_CALLBACKS_ENABLED", "save_results"),
                ("FLEET_RESULTS_DIR", &self.results),
            ],
        );
        (out.status.code().unwrap_or(-1), fleet::text(&out))
    }

    /// The remap task's saved result for a host (tests/fleet/callback_plugins/save_results.py).
    fn result(&self, host: &str) -> Option<Value> {
        let text = std::fs::read(Path::new(&self.results).join(format!("{host}.json"))).ok()?;
        Some(serde_json::from_slice(&text).expect("saved result is JSON"))
    }
}

#[test]
fn a_rolling_rollout_stops_at_the_first_failed_host_and_leaves_the_rest_untouched() {
    let t_all = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, cols) = fleet::build_and_install(dir.path());

    // Four hosts at once (the harness copies at most two trees at a time).
    let t = Instant::now();
    let suites = ["bookworm", "forky", "trixie", "docker29"];
    let hosts: Vec<Host> = std::thread::scope(|s| {
        let handles: Vec<_> = suites
            .iter()
            .map(|suite| s.spawn(move || Host::boot_suite(&format!("fleet-{suite}"), suite)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("boot"))
            .collect()
    });
    eprintln!("fleet: four hosts booted in {} ms", t.elapsed().as_millis());
    // Inventory order is rollout order: the canary; the second batch, whose first host will
    // fail while the other succeeds; the host after them.
    let names = ["h1-bookworm", "h2-forky", "h3-trixie", "h4-docker29"];
    let (canary, failing, mate, after) = (&hosts[0], &hosts[1], &hosts[2], &hosts[3]);

    // Each host's plan differs: forky has a daemon.json already; docker29 a user whose
    // subordinate range is where the others' remap range goes.
    failing.write(
        "/etc/docker/daemon.json",
        "{\n    \"log-level\": \"info\"\n}\n",
    );
    after.ok("useradd -m alice && grep -q '^alice:100000:65536$' /etc/subuid");

    let mut inventory = String::from("all:\n  hosts:\n");
    for (name, host) in names.iter().zip(&hosts) {
        inventory += &format!(
            "    {name}:\n      ansible_connection: nsenter_pid\n      ansible_nsenter_pid: {}\n",
            host.pid()
        );
    }
    // nsenter gives root already (the hosts have no sudo); the harness's binary; the image
    // carried, so the role's `docker-userns verify` has one to run containers from.
    inventory += &format!(
        "  vars:\n    ansible_become: false\n    ansible_python_interpreter: /usr/bin/python3\n    \
         docker_userns_binary: {}\n    docker_userns_settle: 2\n    docker_userns_carry: [images]\n",
        testhost::PRODUCT_INSIDE
    );
    let inv_path = dir.path().join("inventory.yml");
    std::fs::write(&inv_path, &inventory).unwrap();
    let f = Fleet {
        dir: dir.path(),
        cols: cols.to_string_lossy().into_owned(),
        inventory: inv_path.to_string_lossy().into_owned(),
        results: dir.path().join("results").to_string_lossy().into_owned(),
    };

    // Check mode with --diff against all four: each host's diff is its own `plan --json`.
    let plans: Vec<Value> = hosts
        .iter()
        .map(|h| {
            serde_json::from_str(&h.ok(&format!("{} --json plan", testhost::PRODUCT_INSIDE)))
                .expect("plan --json")
        })
        .collect();
    let before: Vec<_> = hosts.iter().map(files).collect();
    let invocations: Vec<_> = hosts.iter().map(Host::invocation).collect();
    let t = Instant::now();
    let (code, out) = f.rolling(&["--check", "--diff", "-e", SERIAL]);
    eprintln!(
        "fleet: --check --diff in {} ms:\n{out}",
        t.elapsed().as_millis()
    );
    assert_eq!(code, 0, "{out}");
    let stats = recap(&out);
    for name in names {
        assert_eq!(stats[name]["failed"], 0, "{name}: {stats:?}");
        assert!(stats[name]["changed"] >= 1, "{name}: {stats:?}");
    }
    let mut starts = Vec::new();
    for ((name, host), plan) in names.iter().zip(&hosts).zip(&plans) {
        let result = f
            .result(name)
            .unwrap_or_else(|| panic!("{name}: no remap result saved:\n{out}"));
        assert_eq!(result["_status"], "ok", "{name}: {result:#}");
        assert_eq!(result["result"]["command"], "plan", "{name}: {result:#}");
        let diff = result["diff"].as_array().expect("diff list");
        let planned = plan["files"].as_array().expect("plan files");
        assert!(!planned.is_empty(), "{name}: nothing planned: {plan:#}");
        for entry in planned {
            let path = entry["path"].as_str().unwrap();
            let d = diff
                .iter()
                .find(|d| {
                    d["after_header"]
                        .as_str()
                        .is_some_and(|h| h.starts_with(&format!("{path} (planned")))
                })
                .unwrap_or_else(|| panic!("{name}: {path} not in the diff: {diff:#?}"));
            assert_eq!(
                d["before"].as_str(),
                Some(plan_text(entry, "before").unwrap_or_default().as_str()),
                "{name}: {path}: before"
            );
            assert_eq!(
                d["after"].as_str(),
                plan_text(entry, "after").as_deref(),
                "{name}: {path}: after"
            );
            // The human output shows it too.
            assert!(
                out.contains(&format!("+++ after: {path} (planned)")),
                "{name}: {path}"
            );
        }
        let user_entries = usize::from(plan["user"]["create"] == true);
        assert_eq!(
            diff.len(),
            planned.len() + user_entries,
            "{name}: the diff has other entries than the plan: {diff:#?}"
        );
        starts.push(plan["subuid"]["start"].as_u64().unwrap());
        // Nothing changed on the host: files and docker's invocation.
        let i = names.iter().position(|n| n == name).unwrap();
        assert_same(
            host,
            &before[i],
            FILES.len(),
            &format!("{name}: check mode"),
        );
        assert_eq!(
            host.invocation(),
            invocations[i],
            "{name}: check mode restarted docker"
        );
    }
    // The plans are each host's own: docker29's range avoids alice's.
    assert_eq!(starts[0], 100000, "{starts:?}");
    assert_eq!(starts[2], 100000, "{starts:?}");
    assert_ne!(starts[3], 100000, "{starts:?}");
    assert!(
        plans[1]["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == "/etc/docker/daemon.json" && e["change"] == "update"),
        "{:#}",
        plans[1]
    );

    // The second host's docker refuses to start with remapping configured (its unit's
    // ExecStartPre), so its run fails after the switch and is rolled back.
    failing.write(
        "/etc/systemd/system/docker.service.d/refuse-remap.conf",
        "[Service]\nExecStartPre=/bin/sh -c '! grep -q userns-remap /etc/docker/daemon.json'\n",
    );
    failing.ok("systemctl daemon-reload");
    // Ansible's temp dirs from check mode: gone, so a contact shows.
    for h in &hosts {
        h.ok("rm -rf /root/.ansible");
    }
    let before: Vec<_> = hosts.iter().map(files).collect();
    let invocations: Vec<_> = hosts.iter().map(Host::invocation).collect();

    let t = Instant::now();
    let (code, out) = f.rolling(&["--diff", "-e", SERIAL]);
    let rollout_ms = t.elapsed().as_millis();
    eprintln!("fleet: rollout in {rollout_ms} ms:\n{out}");
    assert_ne!(code, 0, "the play must fail:\n{out}");

    // The batches, in inventory order: 1, 2, 1 hosts; the play stopped after the second.
    let batches: Vec<_> = out
        .split("PLAY [Docker user-namespace remapping, rolling]")
        .skip(1)
        .collect();
    assert_eq!(batches.len(), 2, "two batches ran, the third not:\n{out}");
    assert!(
        batches[0].contains(&format!("[{}]", names[0]))
            && !batches[0].contains(&format!("[{}]", names[1])),
        "the canary's batch: {}",
        batches[0]
    );
    assert!(
        batches[1].contains(&format!("[{}]", names[1]))
            && batches[1].contains(&format!("[{}]", names[2])),
        "the second batch: {}",
        batches[1]
    );
    assert!(out.contains("NO MORE HOSTS LEFT"), "{out}");

    // The canary: remapped, verified by the role (docker-userns verify), docker restarted.
    let r = f.result(names[0]).expect("canary result");
    assert_eq!(r["_status"], "ok", "{r:#}");
    assert_eq!(r["changed"], true, "{r:#}");
    assert_eq!(r["rc"], 0, "{r:#}");
    assert!(userns(canary), "the canary is not remapped");
    assert!(
        out.contains("Verify remapping is in effect]")
            && out.contains(&format!("ok: [{}]", names[0])),
        "{out}"
    );
    let verified = canary.sh(&format!("{} --json verify", testhost::PRODUCT_INSIDE));
    assert_eq!(verified.code, 0, "{verified}");
    let v: Value = serde_json::from_str(&verified.stdout).unwrap();
    assert_eq!(v["effective"], true, "{v:#}");
    assert_ne!(
        canary.invocation(),
        invocations[0],
        "the canary's docker was not restarted"
    );
    assert!(
        canary
            .read_string("/etc/docker/daemon.json")
            .unwrap()
            .contains("\"userns-remap\": \"default\""),
    );

    // The second host: failed with the tool's exit code, rolled back, docker up unremapped.
    let r = f.result(names[1]).expect("second host's result");
    assert_eq!(r["_status"], "failed", "{r:#}");
    assert_eq!(r["rc"], 5, "{r:#}");
    assert_eq!(r["result"]["error"]["kind"], "rolled-back", "{r:#}");
    let msg = r["msg"].as_str().unwrap();
    assert!(
        msg.contains("exit 5, rolled-back") && msg.contains("ROLLED BACK"),
        "{msg}"
    );
    assert!(
        out.contains(&format!("fatal: [{}]", names[1])) && out.contains("exit 5, rolled-back"),
        "{out}"
    );
    // The remap user created by this run is kept (the tool says so): passwd and group differ.
    assert_same(failing, &before[1], RESTORED, "the failed host");
    assert!(
        msg.contains("restored byte for byte") && msg.contains("was kept"),
        "{msg}"
    );
    assert_eq!(
        failing.ok("systemctl is-active docker.service").trim(),
        "active"
    );
    assert!(!userns(failing));

    // Its batch mate ran the remap task at the same time: remapped. The play ended right after
    // that task (the failure put the batch over max_fail_percentage), so the role's verify task
    // did not run in this batch; the test's own verify shows remapping in effect.
    assert!(
        !batches[1].contains("Verify remapping is in effect]"),
        "the second batch went on after the failure: {}",
        batches[1]
    );
    let r = f.result(names[2]).expect("the batch mate's result");
    assert_eq!(r["_status"], "ok", "{r:#}");
    assert_eq!(r["changed"], true, "{r:#}");
    assert!(userns(mate), "the batch mate is not remapped");
    let verified = mate.sh(&format!("{} --json verify", testhost::PRODUCT_INSIDE));
    assert_eq!(verified.code, 0, "{verified}");

    // The host after them: never contacted (max_fail_percentage 0: one failed host of two in
    // a batch is enough; without it Ansible goes on while not every host of a batch failed).
    assert!(f.result(names[3]).is_none(), "the last host ran the module");
    assert!(
        !out.contains(&format!("[{}]", names[3])),
        "the last host appears in a task:\n{out}"
    );
    assert_same(after, &before[3], FILES.len(), "the last host");
    assert_eq!(
        after.invocation(),
        invocations[3],
        "the last host's docker restarted"
    );
    assert!(
        after.read("/root/.ansible").is_none(),
        "Ansible connected to the last host"
    );
    assert!(!userns(after));

    // The recap: canary and batch mate changed, not failed; second failed; last absent.
    let stats = recap(&out);
    eprintln!("fleet: recap {stats:?}");
    assert_eq!(stats[names[0]]["failed"], 0, "{stats:?}");
    assert!(stats[names[0]]["changed"] >= 1, "{stats:?}");
    assert_eq!(stats[names[1]]["failed"], 1, "{stats:?}");
    assert_eq!(stats[names[1]]["changed"], 0, "{stats:?}");
    assert_eq!(stats[names[2]]["failed"], 0, "{stats:?}");
    assert!(stats[names[2]]["changed"] >= 1, "{stats:?}");
    if let Some(last) = stats.get(names[3]) {
        assert!(last.values().all(|&n| n == 0), "{stats:?}");
    }
    eprintln!(
        "fleet: whole test {} ms (rollout {rollout_ms} ms)",
        t_all.elapsed().as_millis()
    );
    // Shut them down at once (each removes its tree: ~20 s).
    std::thread::scope(|s| {
        for h in hosts {
            s.spawn(move || drop(h));
        }
    });
}
