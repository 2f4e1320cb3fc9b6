//! `docker userns` as a docker CLI plugin, through the real docker CLI: Debian trixie (the
//! separate docker-cli package, 26.1), forky (docker-cli 28.5) and docker29 (forky's CLI 28.5
//! talking to docker-ce's dockerd 29.7.2), the binary linked into
//! /usr/libexec/docker/cli-plugins by hand. The same checks run on bookworm (docker.io 20.10,
//! the CLI built in) with the package's own link in tests/real_host_package.rs. On the three
//! suites here, whose docker CLIs complete plugins, `docker __complete userns …` answers with
//! the plugin's completion. Needs root;
//! fails, never skips. One host per suite; they boot in parallel.

mod common;
#[path = "docker_plugin/mod.rs"]
mod docker_plugin;
#[path = "testhost/mod.rs"]
mod testhost;

use std::time::Instant;

use serde_json::Value;
use testhost::{Host, PRODUCT_INSIDE};

fn plugin_json(host: &Host, args: &str) -> Value {
    let out = host.sh(&format!("docker userns {args}"));
    assert_eq!(out.code, 0, "{}: docker userns {args}: {out}", host.name());
    common::json_doc(&out.stdout, &out)
}

/// `docker __complete userns WORDS`, what the docker CLI's shell completion runs for `docker
/// userns <TAB>` (docker/cli `cli-plugins/manager/cobra.go`: the plugin's stub command hands
/// completion to `docker-userns __complete userns WORDS` and copies its output): the same
/// lines as the binary answers directly, in cobra's protocol.
fn completes_through_docker(host: &Host) {
    let name = host.name();
    let complete = |words: &str| -> (Vec<String>, String) {
        let via_docker = host.sh(&format!("docker __complete userns {words}"));
        let direct = host.sh(&format!("{PRODUCT_INSIDE} __complete userns {words}"));
        assert_eq!(
            (via_docker.code, direct.code),
            (0, 0),
            "{name}: docker __complete userns {words}\n{via_docker}\n{direct}"
        );
        assert_eq!(
            via_docker.stdout, direct.stdout,
            "{name}: the docker CLI changed the plugin's answer to {words}"
        );
        let mut lines: Vec<String> = via_docker.stdout.lines().map(String::from).collect();
        let directive = lines.pop().unwrap_or_default();
        let names = lines
            .iter()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect();
        (names, directive)
    };
    let (names, directive) = complete("''");
    assert_eq!(directive, ":4", "{name}: {names:?}");
    for sub in [
        "plan", "enable", "disable", "status", "verify", "shift", "check", "help",
    ] {
        assert!(
            names.contains(&sub.to_string()),
            "{name}: {sub} not in {names:?}"
        );
    }
    assert_eq!(complete("sta"), (vec!["status".to_string()], ":4".into()));
    assert_eq!(
        complete("status --pro"),
        (vec!["--prometheus".to_string()], ":4".into())
    );
    assert_eq!(
        complete("plan --carry ''"),
        (vec!["images".to_string(), "volumes".into()], ":4".into())
    );
    // A path: no candidates, the shell's own file completion.
    assert_eq!(complete("shift ''"), (vec![], ":0".into()));
    completes_through_docker_bash_script(host);
}

/// The docker CLI's own bash completion (Debian's docker-cli ships docker/cli's
/// contrib/completion/bash/docker): it finds the plugin with `docker info` and runs it as
/// `docker-userns __completeNoDesc WORDS…` (without the plugin's name), falling back to file
/// names when the answer is empty. The test tree has no bash-completion package, so the three
/// helpers of it the script calls are stubbed: `_get_comp_words_by_ref` (the words as given),
/// `_filedir` (answers `<files>`), `__ltrim_colon_completions`.
fn completes_through_docker_bash_script(host: &Host) {
    let name = host.name();
    host.ok(
        r#"cat >/tmp/complete-docker.sh <<'EOF'
_get_comp_words_by_ref() { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }
_filedir() { COMPREPLY=('<files>'); }
__ltrim_colon_completions() { :; }
. /usr/share/bash-completion/completions/docker
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
_docker
printf '%s
' "${COMPREPLY[@]}"
EOF"#,
    );
    let tab = |line: &str| -> Vec<String> {
        let out = host.ok(&format!("bash /tmp/complete-docker.sh {line}"));
        let mut v: Vec<String> = out.lines().map(String::from).collect();
        v.sort();
        v
    };
    let subs = tab("docker userns ''");
    for sub in [
        "check", "disable", "enable", "help", "plan", "shift", "status", "verify",
    ] {
        assert!(
            subs.contains(&sub.to_string()),
            "{name}: docker userns <TAB>: {subs:?}"
        );
    }
    assert_eq!(tab("docker userns sta"), ["status"], "{name}");
    assert_eq!(tab("docker userns enable --se"), ["--settle"], "{name}");
    assert_eq!(
        tab("docker userns plan --carry ''"),
        ["images", "volumes"],
        "{name}"
    );
    assert_eq!(tab("docker userns shift --to h"), ["host"], "{name}");
    assert_eq!(tab("docker userns shift ''"), ["<files>"], "{name}");
}

/// The checks of `docker_plugin`, then a real run through the plugin: `enable` restarts
/// docker remapped and health-gated, `verify` proves it, a second `enable` changes nothing.
fn plugin_works(suite: &str) {
    let t0 = Instant::now();
    let host = Host::boot_suite("plugin", suite);
    assert!(
        host.ok("dpkg-query -W -f '${Status}' docker-cli")
            .contains("installed"),
        "{suite}: the docker CLI comes from the docker-cli package"
    );
    host.ok(&format!(
        "mkdir -p /usr/libexec/docker/cli-plugins && ln -s {PRODUCT_INSIDE} {}",
        docker_plugin::PLUGIN_PATH
    ));
    docker_plugin::answers_as_docker_userns(&host);
    completes_through_docker(&host);

    let enable = plugin_json(&host, "enable --settle 2 --json");
    assert_eq!(
        (&enable["changed"], &enable["restarted"]),
        (&Value::Bool(true), &Value::Bool(true)),
        "{enable}"
    );
    host.reimport_image();
    let verify = plugin_json(&host, "verify --json");
    assert_eq!(verify["effective"], true, "{verify}");
    let again = plugin_json(&host, "enable --json");
    assert_eq!(
        (&again["changed"], &again["restarted"]),
        (&Value::Bool(false), &Value::Bool(false)),
        "{again}"
    );
    let status = plugin_json(&host, "status --json");
    assert_eq!(status["remapping_active"], true, "{status}");
    eprintln!("plugin: {suite} checked in {} ms", t0.elapsed().as_millis());
}

#[test]
fn plugin_on_trixie_docker_cli_26() {
    plugin_works("trixie");
}

#[test]
fn plugin_on_forky_docker_cli_28() {
    plugin_works("forky");
}

/// docker-ce 29's engine behind forky's docker-cli 28.5.2 (API version negotiation).
#[test]
fn plugin_on_docker29_engine_29() {
    plugin_works("docker29");
}
