//! The Ansible collection's role (packaging/ansible_collections/docker_userns/docker_userns,
//! built with `ansible-galaxy collection build` and installed from that tarball inside the host)
//! run through its `site` playbook with real ansible-core (Debian's package, inside the
//! bookworm test host, local connection) against real systemd and dockerd, starting from a bare
//! host (docker-userns not installed): check mode changes nothing; the first run installs the
//! package from the .deb (built as tests/real_host_package.rs builds it: tests/testhost/deb.rs)
//! and remaps, with --diff showing daemon.json, /etc/subuid, /etc/subgid and the user; the
//! second run is unchanged without a restart; check mode with --diff shows the planned change
//! and changes nothing; a forced failure is reported with the rollback stated while docker keeps
//! running; check mode's diff on a numeric-uid owner line and a `1e3` number is byte for byte
//! what the real run then writes. Needs root; never skips.

#[path = "testhost/mod.rs"]
mod testhost;

use serde_json::Value;
use testhost::Host;

/// The counters of the PLAY RECAP line (`ok=5 changed=1 ... failed=0 ...`).
fn recap(stdout: &str) -> Value {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("localhost") && l.contains("changed="))
        .unwrap_or_else(|| panic!("no PLAY RECAP in:\n{stdout}"));
    let mut m = serde_json::Map::new();
    for kv in line.split_whitespace().filter_map(|w| w.split_once('=')) {
        m.insert(
            kv.0.to_string(),
            Value::from(kv.1.parse::<u64>().unwrap_or(0)),
        );
    }
    Value::Object(m)
}

/// Runs the installed collection's example playbook (ansible-core's default output); returns
/// (exit code, recap, output).
fn playbook(host: &Host, extra: &str) -> (i32, Value, String) {
    play(host, "docker_userns.docker_userns.site", extra)
}

/// Runs a playbook (a file in /root/ansible, or a collection's by FQCN); returns (exit code,
/// recap, output).
fn play(host: &Host, file: &str, extra: &str) -> (i32, Value, String) {
    let out = host.sh(&format!(
        "cd /root/ansible && ANSIBLE_NOCOLOR=1 \
         ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false \
         ansible-playbook -i localhost, -c local {file} -e ansible_become=false {extra}"
    ));
    (
        out.code,
        recap(&out.stdout),
        format!("{}\n{}", out.stdout, out.stderr),
    )
}

fn snapshot(host: &Host) -> String {
    host.ok("cat /etc/subuid /etc/subgid /etc/docker/daemon.json 2>&1; getent passwd dockremap; systemctl show -p InvocationID --value docker.service")
}

fn userns(host: &Host) -> bool {
    host.ok("docker info --format '{{json .SecurityOptions}}'")
        .contains("name=userns")
}

/// Where the .deb lies on the "controller" (the same host: local connection).
const DEB_INSIDE: &str = "/root/docker-userns.deb";

fn installed(host: &Host) -> bool {
    host.sh(
        "dpkg-query -W -f '${Status}' docker-userns 2>/dev/null | grep -q 'install ok installed'",
    )
    .success()
}

/// The blocks of Ansible's diff output (`--- before: LABEL` ... up to the next task).
fn diff_text(msgs: &str) -> String {
    msgs.lines()
        .filter(|l| {
            l.starts_with("--- before")
                || l.starts_with("+++ after")
                || l.starts_with('+')
                || l.starts_with('-')
                || l.starts_with("@@")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_role_installs_converges_diffs_is_idempotent_and_reports_rollbacks() {
    let t_all = std::time::Instant::now();
    let deb = testhost::deb::build();
    let host = Host::boot("ansible");
    host.cp_in(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packaging/ansible_collections/docker_userns/docker_userns"
        ),
        "/root/src/docker_userns",
    );
    host.cp_in(&deb, DEB_INSIDE);
    assert!(host.ok("ansible-playbook --version").contains("core"));
    // The collection as a user gets it: built into a tarball, installed from it (offline).
    host.ok("mkdir -p /root/ansible && cd /root/ansible && \
         ansible-galaxy collection build /root/src/docker_userns && \
         ansible-galaxy collection install --offline docker_userns-docker_userns-*.tar.gz");
    assert!(
        host.ok("ansible-galaxy collection list docker_userns.docker_userns")
            .contains("docker_userns.docker_userns")
    );
    // A bare host: the harness's binary removed, the package not installed.
    host.ok(&format!("rm -f {}", testhost::PRODUCT_INSIDE));
    assert!(!installed(&host));
    let with_deb = format!("-e docker_userns_deb={DEB_INSIDE}");
    let mut t = std::time::Instant::now();
    let mut lap = |what: &str| {
        eprintln!("ansible: {what}: {} ms", t.elapsed().as_millis());
        t = std::time::Instant::now();
    };

    // Check mode on the bare host: would install (and then remap), changes nothing.
    let before = snapshot(&host);
    let (code, stats, msgs) = playbook(&host, &format!("--check --diff {with_deb}"));
    assert_eq!(code, 0, "{msgs}");
    assert!(
        stats["changed"].as_u64().unwrap() >= 1,
        "check mode should report a change: {stats}"
    );
    assert_eq!(stats["failed"], 0);
    assert!(msgs.contains("is not installed yet"), "{msgs}");
    assert_eq!(snapshot(&host), before, "check mode changed the host");
    assert!(!installed(&host));
    assert!(host.sh("ls /var/cache/apt/archives/docker-userns.deb").code != 0);
    assert!(!userns(&host));
    lap("check mode, bare host");

    // First run from the bare host: installs the package, remaps, carries the image along
    // (docker_userns_carry); --diff shows what changed.
    let (code, stats, msgs) = playbook(
        &host,
        &format!(
            r#"--diff {with_deb} -e '{{"docker_userns_carry": ["images"], "docker_userns_settle": 2}}'"#
        ),
    );
    assert_eq!(code, 0, "{msgs}");
    assert!(
        stats["changed"].as_u64().unwrap() >= 3,
        "copy, apt, run: {stats}"
    );
    assert!(installed(&host));
    assert!(userns(&host));
    host.ok("docker image inspect busybox:local >/dev/null");
    let diff = diff_text(&msgs);
    eprintln!("ansible: --diff of the first run:\n{diff}");
    let subuid = host.ok("grep ^dockremap: /etc/subuid");
    let subgid = host.ok("grep ^dockremap: /etc/subgid");
    let passwd = host.ok("getent passwd dockremap");
    for want in [
        "--- before: /etc/docker/daemon.json",
        "+++ after: /etc/docker/daemon.json",
        r#"+  "userns-remap": "default""#,
        "+++ after: /etc/subuid",
        "+++ after: /etc/subgid",
        "--- before: user dockremap (absent)",
        "+++ after: user dockremap",
    ] {
        assert!(diff.contains(want), "{want:?} not in the diff:\n{diff}");
    }
    for line in [&subuid, &subgid, &passwd] {
        let want = format!("+{}", line.trim());
        assert!(diff.contains(&want), "{want:?} not in the diff:\n{diff}");
    }
    lap("install + remap");

    // Second run: ok, unchanged (package and remapping), docker not restarted, no diff.
    let converged = snapshot(&host);
    let (code, stats, msgs) = playbook(&host, &format!("--diff {with_deb}"));
    assert_eq!(code, 0, "{msgs}");
    assert_eq!(stats["changed"], 0, "{stats}\n{msgs}");
    assert_eq!(
        snapshot(&host),
        converged,
        "a converged run changed something (or restarted docker)"
    );
    assert_eq!(diff_text(&msgs), "", "a converged run shows a diff");
    let (_, stats, msgs) = playbook(&host, "--check --diff");
    assert_eq!(
        stats["changed"], 0,
        "check mode on a converged host: {stats}\n{msgs}"
    );
    lap("second run + check");

    // Turn it off: first in check mode (status; the key's removal shown, nothing changed), then
    // for real (--diff: the key removed).
    let (code, stats, msgs) = playbook(&host, "--check --diff -e docker_userns_state=disabled");
    assert_eq!(code, 0, "{msgs}");
    assert!(stats["changed"].as_u64().unwrap() >= 1, "{stats}");
    let diff = diff_text(&msgs);
    assert!(
        diff.contains("+++ after: /etc/docker/daemon.json (planned)")
            && diff.contains(r#"-  "userns-remap": "default""#),
        "the planned removal is not in the diff:\n{diff}"
    );
    assert_eq!(snapshot(&host), converged, "check mode changed the host");
    let (code, stats, msgs) = playbook(&host, "--diff -e docker_userns_state=disabled");
    assert_eq!(code, 0, "{msgs}");
    assert!(stats["changed"].as_u64().unwrap() >= 1);
    assert!(!userns(&host));
    let diff = diff_text(&msgs);
    assert!(
        diff.contains(r#"-  "userns-remap": "default""#),
        "the removal is not in the diff:\n{diff}"
    );
    lap("disable --diff");
    // Check mode with --diff for another remap user: every kind of change shown (the key, new
    // subuid/subgid lines, the new user), nothing changed.
    let disabled = snapshot(&host);
    let (code, stats, msgs) = playbook(&host, "--check --diff -e docker_userns_user=remap2");
    assert_eq!(code, 0, "{msgs}");
    assert!(stats["changed"].as_u64().unwrap() >= 1, "{stats}");
    let diff = diff_text(&msgs);
    eprintln!("ansible: --check --diff, user remap2:\n{diff}");
    for want in [
        "+++ after: /etc/docker/daemon.json (planned)",
        r#"+  "userns-remap": "remap2""#,
        "+++ after: /etc/subuid (planned)",
        "+++ after: /etc/subgid (planned)",
        "+remap2:",
        "+++ after: user remap2 (planned)",
    ] {
        assert!(diff.contains(want), "{want:?} not in the diff:\n{diff}");
    }
    assert_eq!(snapshot(&host), disabled, "check mode changed the host");
    assert!(!host.sh("getent passwd remap2").success());
    lap("check --diff, other user");

    // Make docker refuse remapping: the run fails, says it rolled back, and docker keeps
    // running with the previous settings.
    host.write(
        "/etc/systemd/system/docker.service.d/refuse-remap.conf",
        "[Service]\nExecStartPre=/bin/sh -c '! grep -q userns-remap /etc/docker/daemon.json'\n",
    );
    host.ok("systemctl daemon-reload");
    let files = host.ok("cat /etc/subuid /etc/subgid /etc/docker/daemon.json");
    let (code, stats, msgs) = playbook(&host, "");
    assert_ne!(code, 0);
    assert_eq!(stats["failed"], 1, "{stats}");
    assert!(
        msgs.contains("exit 5, rolled-back") && msgs.contains("ROLLED BACK"),
        "{msgs}"
    );
    assert!(
        msgs.contains("Control process exited"),
        "docker's journal in the message: {msgs}"
    );
    assert_eq!(
        host.ok("cat /etc/subuid /etc/subgid /etc/docker/daemon.json"),
        files
    );
    assert_eq!(
        host.ok("systemctl is-active docker.service").trim(),
        "active"
    );
    assert!(!userns(&host));
    lap("refused config, rollback");

    // Check mode's diff is the bytes enable writes (issue 21 item 5): a numeric-uid owner line
    // (no final newline), a daemon.json with `1e3`, `1.50`, a unicode escape, tabs and no
    // final newline; a new user remap2, files only (restart: false, so docker never reads
    // them). The module's diff (the registered result, saved by a test-only play) is compared
    // with what the real run then wrote, byte for byte.
    const DIFF_PLAY: &str = "---\n- name: The role, its diff saved\n  hosts: all\n  gather_facts: false\n  roles:\n    - role: docker_userns.docker_userns.docker_userns\n  post_tasks:\n    - name: Save the diff\n      ansible.builtin.copy:\n        content: \"{{ docker_userns_result.diff | default([]) | to_json }}\"\n        dest: /root/diff.json\n        mode: \"0600\"\n      check_mode: false\n";
    host.write("/root/ansible/diff.yml", DIFF_PLAY);
    let subuid = host.read_string("/etc/subuid").unwrap() + "4242:165536:65536";
    let subgid = host.read_string("/etc/subgid").unwrap() + "# numeric owner\n4242:165536:65536\n";
    host.write("/etc/subuid", &subuid);
    host.write("/etc/subgid", &subgid);
    host.write(
        "/etc/docker/daemon.json",
        "{\n\t\"debug\": false,\n\t\"x-count\": 1e3,\n\t\"x-ratio\": 1.50,\n\t\"x-label\": \"caf\\u00e9\"\n}",
    );
    let vars = "-e docker_userns_user=remap2 -e docker_userns_restart=false";
    let paths = ["/etc/subuid", "/etc/subgid", "/etc/docker/daemon.json"];
    let read_all = || paths.map(|p| host.read(p).unwrap());
    let before = read_all();
    let (code, _, msgs) = play(&host, "diff.yml", &format!("--check --diff {vars}"));
    assert_eq!(code, 0, "{msgs}");
    assert_eq!(read_all(), before, "check mode changed the files");
    let planned: Vec<Value> =
        serde_json::from_slice(&host.read("/root/diff.json").expect("the diff was saved"))
            .expect("the saved diff is JSON");
    eprintln!("ansible: --check --diff, odd inputs: {planned:#?}");
    let (code, _, msgs) = playbook(&host, vars);
    assert_eq!(code, 0, "{msgs}");
    let written = read_all();
    for (path, (was, now)) in paths.iter().zip(before.iter().zip(&written)) {
        let entry = planned
            .iter()
            .find(|d| d["after_header"] == format!("{path} (planned)"))
            .unwrap_or_else(|| panic!("no planned diff for {path}: {planned:#?}"));
        assert_eq!(
            entry["before"].as_str().unwrap().as_bytes(),
            &was[..],
            "{path}: the diff's before is not the file as it was"
        );
        assert_eq!(
            entry["after"].as_str().unwrap().as_bytes(),
            &now[..],
            "{path}: check mode's diff is not what enable wrote:\n{}",
            String::from_utf8_lossy(now)
        );
    }
    // The odd spellings are the tool's writer's, not a re-rendering: 1.50 stays 1.50.
    let daemon = String::from_utf8_lossy(&written[2]).into_owned();
    assert!(daemon.contains("\t\"x-ratio\": 1.50,"), "{daemon}");
    assert!(daemon.contains("\"userns-remap\": \"remap2\""), "{daemon}");
    assert!(
        String::from_utf8_lossy(&written[0]).ends_with("4242:165536:65536\nremap2:231072:65536\n"),
        "{}",
        String::from_utf8_lossy(&written[0])
    );
    lap("check --diff bytes = enable's bytes");
    eprintln!("ansible: whole test {} ms", t_all.elapsed().as_millis());
}
