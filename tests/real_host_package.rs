//! The Debian package: built with `cargo deb` (cargo-deb, `[package.metadata.deb]` in
//! Cargo.toml), checked with lintian, then installed, used (also as `docker userns`, the docker
//! CLI plugin, through the package's link: tests/docker_plugin) and removed on a real systemd +
//! D-Bus + dockerd host (tests/testhost): bookworm (docker.io 20.10) and docker-ce 29
//! (`docker29`); the Prometheus rules, their tests and the Grafana dashboard are installed
//! under /usr/share/docker-userns with packaging/'s bytes. Must run as root. What it needs on the host is
//! installed by the test itself when missing (`testhost.sh pkgdeps`, once per process:
//! dpkg-dev, binutils, lintian and man-db with apt; cargo-deb 3.8.0 with `cargo install` into
//! target/tools); it fails, never skips, when that fails.
//!
//! The .deb is built by the test itself (tests/testhost/deb.rs: in target/deb-build, once per
//! test process; cargo rebuilds only what changed, so it is never stale).

mod common;
#[path = "docker_plugin/mod.rs"]
mod docker_plugin;
#[path = "testhost/mod.rs"]
mod testhost;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use testhost::Host;

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The exposure score that README's "Packaging" section states for docker-userns.service.
const MAX_EXPOSURE: f64 = 1.2;

use testhost::deb::run;

/// Files shipped under /usr/share/docker-userns: (installed path, source in the repository).
const SHARED_FILES: [(&str, &str); 3] = [
    (
        "/usr/share/docker-userns/prometheus/docker-userns.rules.yml",
        "packaging/prometheus/docker-userns.rules.yml",
    ),
    (
        "/usr/share/docker-userns/prometheus/docker-userns.rules.test.yml",
        "packaging/prometheus/docker-userns.rules.test.yml",
    ),
    (
        "/usr/share/docker-userns/grafana/docker-userns.json",
        "packaging/grafana/docker-userns.json",
    ),
];

fn field(deb: &Path, name: &str) -> String {
    let r = run(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name));
    assert_eq!(r.code, 0, "dpkg-deb --field {name}: {}", r.stderr);
    r.stdout.trim().to_string()
}

#[test]
fn deb_has_the_expected_contents_and_is_lintian_clean() {
    let deb = testhost::deb::build();

    assert_eq!(field(&deb, "Package"), "docker-userns");
    assert_eq!(field(&deb, "Version"), format!("{VERSION}-1"));
    assert_eq!(field(&deb, "Section"), "admin");
    let depends = field(&deb, "Depends");
    assert!(
        depends.contains("libc6") && depends.split(", ").any(|d| d == "passwd"),
        "Depends: {depends}"
    );
    assert_eq!(field(&deb, "Recommends"), "docker.io | docker-ce");

    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    assert_eq!(contents.code, 0, "{}", contents.stderr);
    for path in [
        "./usr/sbin/docker-userns",
        "./usr/lib/systemd/system/docker-userns.service",
        "./usr/share/man/man8/docker-userns.8.gz",
        "./usr/share/man/man8/docker-userns-enable.8.gz",
        "./usr/share/bash-completion/completions/docker-userns",
        "./usr/share/zsh/vendor-completions/_docker-userns",
        "./usr/share/fish/vendor_completions.d/docker-userns.fish",
        "./usr/share/doc/docker-userns/copyright",
        "./usr/share/doc/docker-userns/changelog.Debian.gz",
        "./usr/share/lintian/overrides/docker-userns",
        "./usr/share/docker-userns/prometheus/docker-userns.rules.yml",
        "./usr/share/docker-userns/prometheus/docker-userns.rules.test.yml",
        "./usr/share/docker-userns/grafana/docker-userns.json",
    ] {
        assert!(
            contents.stdout.lines().any(|l| l.ends_with(path)),
            "{path} missing from the package:\n{}",
            contents.stdout
        );
    }
    // The docker CLI plugin: a relative link to the binary (Debian policy 10.5).
    let plugin_link = format!(
        ".{} -> ../../../sbin/docker-userns",
        docker_plugin::PLUGIN_PATH
    );
    assert!(
        contents.stdout.lines().any(|l| l.ends_with(&plugin_link)),
        "{plugin_link} missing from the package:\n{}",
        contents.stdout
    );
    assert!(
        !contents.stdout.contains("/usr/bin/"),
        "nothing goes to /usr/bin:\n{}",
        contents.stdout
    );

    // No maintainer scripts: installing, upgrading or removing never touches a service.
    let control = tempfile::tempdir().expect("tempdir");
    let r = run(Command::new("dpkg-deb")
        .arg("--control")
        .arg(&deb)
        .arg(control.path()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    for script in ["preinst", "postinst", "prerm", "postrm"] {
        assert!(
            !control.path().join(script).exists(),
            "the package has a {script}"
        );
    }

    // lintian: no error, no warning (info tags are shown). Each override, in
    // packaging/lintian-overrides, carries its reason (`--show-overrides` would make lintian
    // count the overridden tag for --fail-on).
    let t0 = Instant::now();
    let r = run(Command::new("lintian")
        .args([
            "--fail-on",
            "error,warning",
            "--display-info",
            "--tag-display-limit",
            "0",
        ])
        .arg(&deb));
    eprintln!(
        "lintian ({} ms, exit {}):\n{}{}",
        t0.elapsed().as_millis(),
        r.code,
        r.stdout,
        r.stderr
    );
    let bad: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("E: ") || l.starts_with("W: "))
        .collect();
    assert!(
        r.code == 0 && bad.is_empty(),
        "lintian found errors or warnings (exit {}):\n{}\n{}",
        r.code,
        r.stdout,
        r.stderr
    );
}

/// `systemctl show -p PROP --value UNIT` inside.
fn prop(host: &Host, unit: &str, prop: &str) -> String {
    host.ok(&format!("systemctl show -p {prop} --value {unit}"))
        .trim()
        .to_string()
}

fn docker_invocation(host: &Host) -> String {
    assert_eq!(prop(host, "docker.service", "ActiveState"), "active");
    let id = prop(host, "docker.service", "InvocationID");
    assert!(!id.is_empty(), "docker.service has no InvocationID");
    id
}

fn security_options(host: &Host) -> String {
    host.ok("docker info --format '{{json .SecurityOptions}}'")
        .trim()
        .to_string()
}

/// The journal of docker-userns.service as JSON entries (polled briefly: journald may lag).
fn journal_until(host: &Host, what: &str, found: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let t0 = Instant::now();
    loop {
        let out = host.ok("journalctl -u docker-userns.service -o json --no-pager");
        let entries: Vec<Value> = out
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if found(&entries) {
            return entries;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            let text = host.ok("journalctl -u docker-userns.service -o verbose --no-pager");
            panic!("{}: no {what} in the unit's journal:\n{text}", host.name());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn entry_is(e: &Value, transport: &str, priority: &str, message_part: &str) -> bool {
    e["SYSLOG_IDENTIFIER"] == "docker-userns"
        && e["_TRANSPORT"] == transport
        && e["PRIORITY"] == priority
        && e["MESSAGE"]
            .as_str()
            .is_some_and(|m| m.contains(message_part))
}

#[test]
fn deb_installs_converges_with_its_unit_and_removes_cleanly() {
    deb_installs_converges_and_removes("bookworm");
}

/// The same .deb on docker-ce 29 (docker-ce's units and /usr/bin/dockerd, forky's systemd and
/// docker CLI 28.5): the package recommends `docker.io | docker-ce` and must work with either.
#[test]
fn deb_installs_converges_with_its_unit_and_removes_cleanly_docker29() {
    deb_installs_converges_and_removes("docker29");
}

fn deb_installs_converges_and_removes(suite: &str) {
    let deb = testhost::deb::build();
    let host = Host::boot_suite(&format!("package-{suite}"), suite);
    // The package's binary, not the harness's copy in /usr/local/sbin, must answer. The test
    // tree excludes man pages and docs from dpkg installs (to stay small); a real host does not.
    host.ok(&format!(
        "rm -f {} /etc/dpkg/dpkg.cfg.d/01testhost-nodoc",
        testhost::PRODUCT_INSIDE
    ));
    let docker_before = docker_invocation(&host);

    // Install: nothing starts, docker is not touched, no file is converged.
    host.cp_in(&deb, "/tmp/docker-userns.deb");
    let t0 = Instant::now();
    host.ok("dpkg -i /tmp/docker-userns.deb");
    eprintln!("package: dpkg -i in {} ms", t0.elapsed().as_millis());
    assert_eq!(
        host.ok("command -v docker-userns").trim(),
        "/usr/sbin/docker-userns"
    );
    assert_eq!(
        host.ok("docker-userns --version").trim(),
        format!("docker-userns {VERSION}")
    );
    // `docker userns` through the package's link and the docker CLI (20.10's own on bookworm).
    let t1 = Instant::now();
    assert_eq!(
        host.ok(&format!("readlink {}", docker_plugin::PLUGIN_PATH))
            .trim(),
        "../../../sbin/docker-userns"
    );
    docker_plugin::answers_as_docker_userns(&host);
    eprintln!(
        "package: docker CLI plugin checked in {} ms",
        t1.elapsed().as_millis()
    );
    assert_eq!(prop(&host, "docker-userns.service", "LoadState"), "loaded");
    assert_eq!(
        prop(&host, "docker-userns.service", "ActiveState"),
        "inactive"
    );
    assert_eq!(
        prop(&host, "docker-userns.service", "UnitFileState"),
        "static",
        "the unit has no [Install] section and is not enabled"
    );
    assert_eq!(
        docker_invocation(&host),
        docker_before,
        "dpkg -i touched docker"
    );
    assert_eq!(host.read("/etc/docker/daemon.json"), None);
    assert!(
        !host
            .read_string("/etc/subuid")
            .unwrap_or_default()
            .contains("dockremap"),
        "dpkg -i converged the host"
    );

    // The man pages resolve through man-db's search path: the test host has no man-db, so
    // the host's `man -w` searches the container's installed /usr/share/man.
    let manpath = format!("/proc/{}/root/usr/share/man", host.pid());
    for (page, file) in [
        ("docker-userns", "man8/docker-userns.8.gz"),
        ("docker-userns-enable", "man8/docker-userns-enable.8.gz"),
    ] {
        let r = run(Command::new("man")
            .args(["-w", "8", page])
            .env("MANPATH", &manpath));
        assert_eq!(
            (r.code, r.stdout.trim()),
            (0, format!("{manpath}/{file}").as_str()),
            "man -w {page}: {}",
            r.stderr
        );
    }
    assert!(
        host.ok("dpkg -L docker-userns")
            .contains("/usr/share/man/man8/docker-userns.8.gz")
    );
    // The bash completion loads and registers the command.
    let complete = host.ok(
        "bash -c '. /usr/share/bash-completion/completions/docker-userns && complete -p docker-userns'",
    );
    assert!(complete.contains("docker-userns"), "{complete}");

    // The alerting rules, their promtool tests and the Grafana dashboard, as in packaging/.
    for (installed, source) in SHARED_FILES {
        let want = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(source)).unwrap();
        assert_eq!(
            host.read(installed).as_deref(),
            Some(&want[..]),
            "{installed} is not {source}"
        );
        assert_eq!(host.ok(&format!("stat -c %a {installed}")).trim(), "644");
    }

    // Hardening, measured by systemd itself.
    let security = host.ok("systemd-analyze security --no-pager docker-userns.service");
    let overall = security
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for docker-userns.service: "))
        .map(|(_, rest)| rest.trim().to_string())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{security}"));
    eprintln!("package: systemd-analyze security docker-userns.service: {overall}");
    let score: f64 = overall
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unparsable exposure {overall:?}"));
    assert!(
        score <= MAX_EXPOSURE,
        "exposure {score} > {MAX_EXPOSURE} (README):\n{security}"
    );

    // `systemctl start docker-userns` converges the host and logs to the journal.
    let t0 = Instant::now();
    host.ok("systemctl start docker-userns.service");
    eprintln!(
        "package: systemctl start docker-userns in {} ms",
        t0.elapsed().as_millis()
    );
    assert_eq!(prop(&host, "docker-userns.service", "Result"), "success");
    assert_eq!(
        prop(&host, "docker-userns.service", "ActiveState"),
        "inactive"
    );
    assert!(
        security_options(&host).contains("name=userns"),
        "{}",
        security_options(&host)
    );
    let daemon_json = host
        .read_string("/etc/docker/daemon.json")
        .unwrap_or_default();
    assert!(
        daemon_json.contains(r#""userns-remap": "default""#),
        "{daemon_json}"
    );
    // Log events arrive natively with priorities (info -> 5, notice); the report via stdout.
    journal_until(&host, "log event at priority 5 and report", |entries| {
        entries
            .iter()
            .any(|e| entry_is(e, "journal", "5", "/etc/docker/daemon.json"))
            && entries.iter().any(|e| {
                entry_is(
                    e,
                    "stdout",
                    "6",
                    "docker restarted and passed the health gate",
                )
            })
    });
    // UMask=0077 in the unit must not leak into the files written.
    let modes = host.ok(
        "stat -c '%n %a' /etc/passwd /etc/group /etc/shadow /etc/subuid /etc/subgid /etc/docker/daemon.json",
    );
    assert_eq!(
        modes.trim(),
        "/etc/passwd 644\n/etc/group 644\n/etc/shadow 640\n/etc/subuid 644\n\
         /etc/subgid 644\n/etc/docker/daemon.json 644",
        "modes after the unit ran"
    );

    // Starting it again on the converged host changes nothing and leaves docker alone.
    let docker_converged = docker_invocation(&host);
    host.ok("systemctl start docker-userns.service");
    assert_eq!(prop(&host, "docker-userns.service", "Result"), "success");
    assert_eq!(docker_invocation(&host), docker_converged);

    // Remove, then purge: docker keeps running untouched, the configuration stays.
    for (step, cmd) in [
        ("dpkg -r", "dpkg -r docker-userns"),
        ("dpkg -P", "dpkg -P docker-userns"),
    ] {
        host.ok(cmd);
        assert_eq!(
            docker_invocation(&host),
            docker_converged,
            "{step} touched docker"
        );
        assert!(
            security_options(&host).contains("name=userns"),
            "{step}: remapping is off"
        );
        let daemon = host
            .read_string("/etc/docker/daemon.json")
            .unwrap_or_default();
        assert_eq!(daemon, daemon_json, "{step} changed daemon.json");
        assert!(
            host.read_string("/etc/subuid")
                .unwrap_or_default()
                .contains("dockremap:"),
            "{step} changed /etc/subuid"
        );
        assert_eq!(host.read("/usr/sbin/docker-userns"), None, "{step}");
        assert_eq!(host.read(docker_plugin::PLUGIN_PATH), None, "{step}");
        let help = host.ok("docker --help");
        assert!(
            !help.contains("userns"),
            "{step}: `docker --help` still lists userns:\n{help}"
        );
    }
    let status = host.ok(
        "dpkg-query -W -f='${db:Status-Status}' docker-userns 2>/dev/null || echo not-installed",
    );
    assert_eq!(status.trim(), "not-installed", "purged");
}
