//! The docker CLI plugin checked through the real docker CLI on a test host: shared by
//! tests/real_host_plugin.rs (a link placed by hand, trixie and forky) and
//! tests/real_host_package.rs (the package's link, bookworm). Include with
//! `#[path = "docker_plugin/mod.rs"] mod docker_plugin;` next to `mod common;` and
//! `#[path = "testhost/mod.rs"] mod testhost;`.

use serde_json::Value;

use crate::common;
use crate::testhost::{Host, Output};

/// Where the docker CLI finds the plugin (one of its system plugin directories on Linux:
/// docker/cli `cli-plugins/manager/manager_unix.go`, the same list since 20.10).
pub const PLUGIN_PATH: &str = "/usr/libexec/docker/cli-plugins/docker-userns";

fn json(out: &Output, what: &str) -> Value {
    common::json_doc(&out.stdout, format_args!("{what}: {out}"))
}

/// Runs `docker userns ARGS` and `docker-userns ARGS` (whichever is first on PATH); panics
/// unless both exit `code`. Returns both outputs.
fn both(host: &Host, args: &str, code: i32) -> (Output, Output) {
    let plugin = host.sh(&format!("docker userns {args}"));
    let direct = host.sh(&format!("docker-userns {args}"));
    assert_eq!(
        (plugin.code, direct.code),
        (code, code),
        "{}: exit codes of `docker userns {args}` and `docker-userns {args}`\n{plugin}\n{direct}",
        host.name()
    );
    (plugin, direct)
}

/// `--json` through the plugin is the same document as run directly.
fn same_json(host: &Host, args: &str, code: i32) -> Value {
    let (plugin, direct) = both(host, args, code);
    let (p, d) = (
        json(&plugin, &format!("docker userns {args}")),
        json(&direct, &format!("docker-userns {args}")),
    );
    assert_eq!(p, d, "{}: `docker userns {args}` differs", host.name());
    p
}

/// With the plugin at [`PLUGIN_PATH`]: the docker CLI lists it and runs it as `docker userns`
/// with the same output and exit codes as `docker-userns`. Changes nothing on the host but a
/// tree in /tmp.
pub fn answers_as_docker_userns(host: &Host) {
    let name = host.name();
    let version = env!("CARGO_PKG_VERSION");
    eprintln!("{name}: {}", host.ok("docker --version").trim());

    // `docker --help` asks every plugin for its metadata and lists the valid ones under
    // "Management Commands" as `NAME*  ShortDescription`, up to docker 24 followed by
    // `(Vendor, Version)` (docker/cli `cli/cobra.go`, the usage template).
    let help = host.ok("docker --help");
    let line = help
        .lines()
        .find(|l| l.trim_start().starts_with("userns*"))
        .unwrap_or_else(|| panic!("{name}: `docker --help` does not list userns:\n{help}"));
    assert!(
        line.contains(env!("CARGO_PKG_DESCRIPTION")),
        "{name}: {line}"
    );
    if host.suite() == "bookworm" {
        assert!(
            line.contains(&format!("(docker-userns, {version})")),
            "{name}: {line}"
        );
    }
    assert!(
        !help.contains("Invalid Plugins"),
        "{name}: the docker CLI rejects a plugin:\n{help}"
    );
    let meta: Value =
        serde_json::from_str(&host.ok(&format!("{PLUGIN_PATH} docker-cli-plugin-metadata")))
            .expect("metadata is JSON");
    assert_eq!(meta["SchemaVersion"], "0.1.0");
    assert_eq!(meta["Version"], version);

    // Read-only commands: the same document, the same exit code.
    let status = same_json(host, "status --json", 0);
    assert_eq!(status["command"], "status");
    let (plugin, direct) = both(host, "status", 0);
    assert_eq!(plugin.stdout, direct.stdout, "{name}: status text");
    let plan = same_json(host, "plan --json", 0);
    assert_eq!(plan["command"], "plan");
    both(host, "check", 0);

    // Exit codes pass through the docker CLI: check finding problems (3) in a tree with
    // overlapping ranges, given with the global --root; a usage error (2).
    host.cp_in(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/debian12"),
        "/tmp/plugin-tree",
    );
    host.ok(
        "printf 'bob:100000:100\\nalice:100050:100\\n' >>/tmp/plugin-tree/etc/subuid && \
         printf 'bob:100000:100\\nalice:100050:100\\n' >>/tmp/plugin-tree/etc/subgid",
    );
    let check = same_json(host, "--root /tmp/plugin-tree check --json", 3);
    assert_eq!(check["ok"], false, "{check}");
    host.ok("rm -rf /tmp/plugin-tree");
    let usage = same_json(host, "enable --count 0 --json", 2);
    assert_eq!(usage["error"]["code"], 2, "{usage}");
    let (plugin, _) = both(host, "enable --bogus", 2);
    assert!(
        plugin.stderr.contains("Usage: docker userns enable"),
        "{name}: usage through the plugin names `docker userns`:\n{plugin}"
    );

    // Help: `docker userns --help` and `docker help userns` are the tool's, as `docker userns`.
    for cmd in ["docker userns --help", "docker help userns"] {
        let out = host.ok(cmd);
        assert!(
            out.contains("Usage: docker userns [OPTIONS] <COMMAND>") && out.contains("enable"),
            "{name}: {cmd}:\n{out}"
        );
    }

    // docker's own global options before `userns` are refused (usage error), not ignored:
    // `docker -H tcp://elsewhere userns enable` would otherwise change this host.
    let out = host.sh("docker -H tcp://192.0.2.1:2375 userns --json status");
    assert_eq!(out.code, 2, "{name}: {out}");
    let doc = json(&out, "docker -H … userns --json status");
    assert!(
        doc["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("-H tcp://192.0.2.1:2375")),
        "{name}: {doc}"
    );
}
