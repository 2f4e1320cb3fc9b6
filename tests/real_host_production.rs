//! Hosts as production configures them (issue 12), each on a booted test host
//! (tests/testhost/): `"live-restore": true` with a running container (enable and disable stop
//! it through the engine API, and no process of it outlives the switch), an active single-node
//! swarm (refused, the node stays `active`), docker.socket moved by a drop-in (the engine is
//! found where it listens, end to end), `--data-root` in DOCKER_OPTS under a 0750 directory
//! (refused before anything changes), and socket activation with docker.service stopped
//! (`status`, `plan` and `check` leave it stopped; `enable` says what it did). The swarm,
//! live-restore and moved-socket cases run on bookworm (docker 20.10) and trixie (docker 26);
//! live-restore, the moved socket, the flag data root and socket activation also on docker-ce
//! 29 (`docker29`: docker-ce's units, so the flag is in an ExecStart drop-in, as docker-ce's
//! users set it, not in /etc/default/docker, which docker-ce's unit does not read).
//! Needs root; fails, never skips.

mod common;
#[path = "testhost/mod.rs"]
mod testhost;

use serde_json::Value;
use testhost::{Host, Output};

fn json(out: &Output) -> Value {
    common::json_doc(&out.stdout, out)
}

fn ok_json(host: &Host, args: &str) -> Value {
    let out = host.sh(&format!("docker-userns {args}"));
    assert_eq!(out.code, 0, "docker-userns {args}: {out}");
    json(&out)
}

fn is_active(host: &Host, unit: &str) -> String {
    // `systemctl is-active` exits non-zero for anything but active: only its word counts.
    host.sh(&format!("systemctl is-active {unit}"))
        .stdout
        .trim()
        .to_string()
}

/// The files `enable` writes, byte for byte (None: absent), and docker's invocation.
fn snapshot(host: &Host) -> (Vec<Option<Vec<u8>>>, String) {
    let files = ["/etc/docker/daemon.json", "/etc/subuid", "/etc/subgid"]
        .iter()
        .map(|p| host.read(p))
        .collect();
    (files, host.invocation())
}

fn notes(doc: &Value) -> Vec<String> {
    doc["notes"]
        .as_array()
        .unwrap_or_else(|| panic!("no notes list: {doc}"))
        .iter()
        .map(|n| n.as_str().unwrap_or_default().to_string())
        .collect()
}

/// A container whose main process stops at once on SIGTERM (so the engine's stop takes
/// milliseconds, not the 10 s kill timeout) and has a child `sleep MARKER`, found on the host by
/// its exact command line. Returns the main process as "PID STARTTIME" (field 22 of
/// /proc/PID/stat, so a reused PID does not count as the same process).
fn run_marked(host: &Host, name: &str, marker: u32) -> String {
    host.ok(&format!(
        "docker run -d --name {name} --pull=never busybox:local \
           sh -c 'trap \"exit 0\" TERM; sleep {marker} & wait' >/dev/null"
    ));
    let pid = host
        .ok(&format!("docker inspect -f '{{{{.State.Pid}}}}' {name}"))
        .trim()
        .to_string();
    assert!(
        pid != "0" && !pid.is_empty(),
        "{name} is not running: {pid}"
    );
    let found = host.ok(&format!(
        "for i in 1 2 3 4 5 6 7 8 9 10; do pgrep -fx 'sleep {marker}' >/dev/null && break; sleep 0.1; done
         pgrep -fx 'sleep {marker}' >/dev/null || {{ echo 'no sleep {marker}' >&2; exit 1; }}
         echo {pid} $(cut -d' ' -f22 /proc/{pid}/stat)"
    ));
    found.trim().to_string()
}

/// Panics if the process recorded by [`run_marked`] or any process of its container still
/// runs on the host.
fn assert_gone(host: &Host, proc_id: &str, marker: u32, when: &str) {
    let (pid, start) = proc_id.split_once(' ').unwrap();
    let out = host.sh(&format!(
        "if [ -e /proc/{pid}/stat ] && [ \"$(cut -d' ' -f22 /proc/{pid}/stat)\" = {start} ]; then
           echo \"main process {pid} alive: $(ps -o pid=,user=,args= -p {pid})\"; fi
         pgrep -afx 'sleep {marker}' | sed 's/^/container process alive: /'
         true"
    ));
    assert!(
        out.code == 0 && out.stdout.trim().is_empty(),
        "{when}: a process of the container the old daemon ran is still alive, \
         invisible to the running daemon (`docker ps -a`: {:?}):\n{out}",
        host.sh("docker ps -a --format '{{.Names}} {{.Status}}'")
            .stdout
    );
}

// ---------------------------------------------------------------------------------------------
// 1. live-restore

fn live_restore(host: &Host) {
    host.write("/etc/docker/daemon.json", "{\"live-restore\": true}\n");
    host.ok("systemctl restart docker");
    assert_eq!(
        host.ok("docker info --format '{{.LiveRestoreEnabled}}'")
            .trim(),
        "true"
    );
    let old = run_marked(host, "web", 100001);

    // Without --yes: refused, nothing changed, docker not restarted.
    let before = snapshot(host);
    let refused = host.sh("docker-userns enable --json --settle 2");
    assert_eq!(refused.code, 3, "enable without --yes: {refused}");
    assert!(
        refused.stderr.contains("web") || refused.stdout.contains("web"),
        "the running container is not named: {refused}"
    );
    assert_eq!(
        snapshot(host),
        before,
        "enable without --yes changed something"
    );

    // With --yes: the container is stopped, and nothing of it outlives the old daemon.
    let out = host.sh("docker-userns enable --yes --json --settle 2");
    assert_eq!(out.code, 0, "enable --yes: {out}");
    let done = json(&out);
    assert_gone(host, &old, 100001, "after enable --yes");
    assert_eq!(
        host.ok("docker ps -aq").trim(),
        "",
        "the remapped daemon lists containers"
    );
    assert_eq!(done["restarted"], true, "{done}");
    assert_eq!(done["setup"]["live_restore"], true, "{done}");
    assert!(
        notes(&done)
            .iter()
            .any(|n| n.contains("stopped") && n.contains("API")),
        "no note says the running containers were stopped through the engine API: {done}"
    );

    // And back: a container of the remapped daemon does not outlive it either.
    host.reimport_image();
    let remapped = run_marked(host, "web2", 100002);
    let out = host.sh("docker-userns disable --yes --json --settle 2");
    assert_eq!(out.code, 0, "disable --yes: {out}");
    let done = json(&out);
    assert_eq!(done["restarted"], true, "{done}");
    assert_gone(host, &remapped, 100002, "after disable --yes");
    assert_eq!(
        host.ok("docker ps -q").trim(),
        "",
        "the old daemon runs a container again (re-adopted?)"
    );
}

#[test]
fn live_restore_containers_are_stopped_not_left_invisible() {
    live_restore(&Host::boot_suite("livere-bookworm", "bookworm"));
}

#[test]
fn live_restore_containers_are_stopped_not_left_invisible_trixie() {
    live_restore(&Host::boot_suite("livere-trixie", "trixie"));
}

/// Issue 19 item 4, live-restore: `enable --no-restart` with a running container is refused
/// as `enable` without `--yes` is (the next restart would leave the container running as host
/// root, out of sight), and `status` lists such a container, made here by switching remapping
/// by hand with live-restore on, as a problem in its text, JSON and Prometheus gauges.
#[test]
fn no_restart_on_live_restore_is_refused_and_status_sees_a_container_left_behind() {
    let host = Host::boot_suite("lrnorst-bookworm", "bookworm");
    host.write("/etc/docker/daemon.json", "{\"live-restore\": true}\n");
    host.ok("systemctl restart docker");
    let old = run_marked(&host, "web", 100003);
    let before = snapshot(&host);
    let out = host.sh("docker-userns enable --no-restart --json");
    assert_eq!(out.code, 3, "enable --no-restart with live-restore: {out}");
    let doc = json(&out);
    let msg = doc["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("live-restore") && msg.contains("web") && msg.contains("--yes"),
        "the refusal does not name live-restore, the container and what to do: {doc}"
    );
    assert_eq!(
        snapshot(&host),
        before,
        "enable --no-restart changed something"
    );
    // disable --no-restart changes nothing here (remapping is off): not refused.
    let st = ok_json(&host, "status --json");
    assert!(
        !st["problems"]
            .to_string()
            .contains("unknown-root-container"),
        "a container the engine knows is reported unknown: {st}"
    );

    // What the refused run would have led to: remapping switched, docker restarted by
    // someone else; the container lives on as host root, unknown to the new engine.
    host.write(
        "/etc/docker/daemon.json",
        "{\"live-restore\": true, \"userns-remap\": \"default\"}\n",
    );
    host.ok("systemctl restart docker");
    assert_eq!(
        host.ok("docker ps -aq").trim(),
        "",
        "the remapped engine lists it"
    );
    let (pid, _) = old.split_once(' ').unwrap();
    assert_eq!(
        host.ok(&format!("stat -c %u /proc/{pid}")).trim(),
        "0",
        "the left-behind container is not host root"
    );
    let out = host.sh("docker-userns status --json --prometheus /root/du.prom");
    assert_eq!(out.code, 0, "{out}");
    let st = json(&out);
    let found: Vec<&Value> = st["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "unknown-root-container")
        .collect();
    assert_eq!(
        found.len(),
        1,
        "status does not list the container left behind: {st}"
    );
    let said = found[0]["message"].as_str().unwrap();
    assert!(said.contains(&format!("process {pid} ")), "{said}");
    assert!(
        found[0]["fix"]
            .as_str()
            .unwrap()
            .contains(&format!("kill {pid}")),
        "{st}"
    );
    let prom = host.read_string("/root/du.prom").unwrap();
    assert!(
        prom.contains("docker_userns_problems{kind=\"unknown-root-container\"} 1\n"),
        "{prom}"
    );
    let text = host.sh("docker-userns status");
    assert!(
        text.stdout.contains("PROBLEM") && text.stdout.contains(&format!("process {pid} ")),
        "{text}"
    );
    // Gone when it is stopped.
    host.ok(&format!(
        "kill -9 {pid}; for i in $(seq 50); do [ -e /proc/{pid} ] || break; sleep 0.1; done"
    ));
    let st = ok_json(&host, "status --json");
    assert!(
        !st["problems"]
            .to_string()
            .contains("unknown-root-container"),
        "{st}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. swarm

fn swarm(suite: &str) {
    let host = Host::boot_suite(&format!("swarm-{suite}"), suite);
    // Only lo inside (--private-network): the advertise address must be given.
    host.ok("docker swarm init --advertise-addr 127.0.0.1 >/dev/null");
    let node_state = || {
        host.ok("docker info --format '{{.Swarm.LocalNodeState}}'")
            .trim()
            .to_string()
    };
    assert_eq!(node_state(), "active");
    let before = snapshot(&host);

    let out = host.sh("docker-userns enable --yes --settle 2");
    let after = node_state();
    assert_eq!(
        out.code, 3,
        "enable --yes on an active swarm node (node state afterwards: {after}): {out}"
    );
    let said = out.stderr.to_lowercase();
    assert!(
        said.contains("swarm")
            && ["leave", "demote", "drain"]
                .iter()
                .any(|w| said.contains(w)),
        "the refusal does not say what to do (leave, demote or drain): {out}"
    );
    assert_eq!(after, "active", "the node left the swarm");
    assert_eq!(snapshot(&host), before, "enable changed something");

    // --no-restart: the next restart would take the node out of its swarm just the same
    // (issue 19 item 4).
    let out = host.sh("docker-userns enable --yes --no-restart --settle 2");
    assert_eq!(
        out.code, 3,
        "enable --yes --no-restart on an active swarm node: {out}"
    );
    assert!(out.stderr.to_lowercase().contains("swarm"), "{out}");
    assert_eq!(
        snapshot(&host),
        before,
        "enable --no-restart changed something"
    );
    assert_eq!(node_state(), "active");

    let out = host.sh("docker-userns plan --json");
    assert_eq!(out.code, 3, "plan on an active swarm node: {out}");
    let plan = json(&out);
    assert_eq!(plan["error"]["code"], 3, "{plan}");
    assert!(
        plan["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains("swarm"),
        "{plan}"
    );

    let st = ok_json(&host, "status --json");
    assert_eq!(st["setup"]["swarm"], "active", "{st}");
    assert_eq!(snapshot(&host), before, "plan or status changed something");
    assert_eq!(node_state(), "active");
}

#[test]
fn an_active_swarm_node_is_refused() {
    swarm("bookworm");
}

#[test]
fn an_active_swarm_node_is_refused_trixie() {
    swarm("trixie");
}

// ---------------------------------------------------------------------------------------------
// 3. docker.socket moved by a drop-in

const ALT: &str = "/run/docker-alt.sock";

fn moved_socket(host: &Host) {
    host.write(
        "/etc/systemd/system/docker.socket.d/alt.conf",
        format!("[Socket]\nListenStream=\nListenStream={ALT}\n"),
    );
    // Stopping docker.socket leaves its old socket file behind (RemoveOnStop=no): remove it,
    // as a boot with the drop-in would never have made it.
    host.ok("systemctl daemon-reload
         systemctl stop docker.service docker.socket
         rm -f /run/docker.sock
         systemctl start docker.socket docker.service");
    let alt_info = |field: &str| {
        host.ok(&format!(
            "DOCKER_HOST=unix://{ALT} docker info --format '{{{{json .{field}}}}}'"
        ))
    };
    assert!(!alt_info("ServerVersion").trim().is_empty());
    assert_ne!(
        host.sh("test -e /run/docker.sock").code,
        0,
        "/run/docker.sock is there"
    );
    assert_eq!(
        host.ok("systemctl show -p Listen --value docker.socket")
            .trim(),
        format!("{ALT} (Stream)")
    );

    let plan = ok_json(host, "plan --json");
    assert!(
        plan["impact"].is_object(),
        "no impact report: the engine was not found: {plan}"
    );
    assert_eq!(plan["setup"]["engine_socket"], ALT, "{plan}");

    // A bound on the health gate: the old binary waits the whole --timeout for /run/docker.sock.
    let out = host.sh("docker-userns enable --yes --json --settle 2 --timeout 30");
    assert_eq!(out.code, 0, "enable --yes: {out}");
    let done = json(&out);
    assert_eq!(done["restarted"], true, "{done}");
    assert!(
        alt_info("SecurityOptions").contains("name=userns"),
        "remapping not in effect"
    );
    let st = ok_json(host, "status --json");
    assert_eq!(st["remapping_active"], true, "{st}");

    let out = host.sh("docker-userns disable --yes --settle 2 --timeout 30");
    assert_eq!(out.code, 0, "disable --yes: {out}");
    assert!(!alt_info("SecurityOptions").contains("name=userns"));
}

#[test]
fn a_moved_docker_socket_is_found() {
    moved_socket(&Host::boot_suite("sock-bookworm", "bookworm"));
}

#[test]
fn a_moved_docker_socket_is_found_trixie() {
    moved_socket(&Host::boot_suite("sock-trixie", "trixie"));
}

// ---------------------------------------------------------------------------------------------
// 4. --data-root in DOCKER_OPTS

#[test]
fn a_flag_data_root_under_a_closed_directory_is_refused() {
    flag_data_root(&Host::boot_suite("flagroot-bookworm", "bookworm"));
}

const DROP_IN: &str = "/etc/systemd/system/docker.service.d/data-root.conf";

fn flag_data_root(host: &Host) {
    host.ok("mkdir -p /srv/dk && chmod 0750 /srv");
    let set_in = if host.suite() == "docker29" {
        assert!(host.read("/etc/default/docker").is_none());
        host.write(
            DROP_IN,
            "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd:// \
             --containerd=/run/containerd/containerd.sock --data-root /srv/dk/root\n",
        );
        host.ok("systemctl daemon-reload");
        DROP_IN
    } else {
        host.write(
            "/etc/default/docker",
            "DOCKER_OPTS=\"--data-root /srv/dk/root\"\n",
        );
        "/etc/default/docker"
    };
    host.ok("systemctl restart docker");
    assert_eq!(
        host.ok("docker info --format '{{.DockerRootDir}}'").trim(),
        "/srv/dk/root"
    );
    let before = snapshot(host);

    let out = host.sh("docker-userns enable --yes --settle 2");
    assert_eq!(
        out.code, 3,
        "enable with the data root under a 0750 /srv: {out}"
    );
    assert!(
        out.stderr.contains("/srv") && out.stderr.contains("chmod o+x /srv"),
        "the refusal does not name /srv and the fix: {out}"
    );
    assert_eq!(
        snapshot(host),
        before,
        "enable changed something or restarted docker"
    );

    let out = host.sh("docker-userns plan --json");
    assert_eq!(out.code, 3, "plan: {out}");
    assert_eq!(json(&out)["error"]["code"], 3);

    let st = ok_json(host, "status --json");
    assert_eq!(st["setup"]["data_root"], "/srv/dk/root", "{st}");
    assert!(
        st["setup"]["data_root_from"]
            .as_str()
            .unwrap_or_default()
            .contains(set_in),
        "{st}"
    );
    assert_eq!(snapshot(host), before);
}

// ---------------------------------------------------------------------------------------------
// 5. socket activation

#[test]
fn read_only_commands_leave_a_socket_activated_docker_stopped() {
    socket_activated(&Host::boot_suite("sockact-bookworm", "bookworm"));
}

fn socket_activated(host: &Host) {
    host.ok("systemctl stop docker.service 2>/dev/null");
    assert_eq!(is_active(host, "docker.service"), "inactive");
    assert_eq!(is_active(host, "docker.socket"), "active");

    for args in ["status --json", "plan --json", "check"] {
        let out = host.sh(&format!("docker-userns {args}"));
        assert_eq!(
            is_active(host, "docker.service"),
            "inactive",
            "`docker-userns {args}` started docker.service: {out}"
        );
        assert_eq!(out.code, 0, "docker-userns {args}: {out}");
        if args == "status --json" {
            let st = json(&out);
            assert_eq!(st["remapping_active"], Value::Null, "{st}");
            assert_eq!(st["setup"]["socket_activation"], true, "{st}");
            assert!(
                notes(&st).iter().any(|n| n.contains("not asked")),
                "no note says the engine was not asked: {st}"
            );
        } else if args == "plan --json" {
            json(&out);
        }
    }

    let out = host.sh("docker-userns enable --json --settle 2");
    assert_eq!(
        is_active(host, "docker.service"),
        "inactive",
        "enable started docker.service: {out}"
    );
    assert_eq!(out.code, 0, "enable: {out}");
    let done = json(&out);
    assert!(
        notes(&done).iter().any(|n| n.contains("docker.socket")),
        "no note says the change applies when docker.socket starts docker: {done}"
    );
    // What the note promises: the next connection starts docker, remapped.
    assert!(
        host.ok("docker info --format '{{json .SecurityOptions}}'")
            .contains("name=userns"),
        "docker started by the socket does not remap"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. docker-ce 29

/// docker-ce 29 (`docker29`), the four cases above on one host, one after another, each
/// undone before the next: the flag data root (docker-ce's unit reads no /etc/default/docker:
/// its users put the flag in an ExecStart drop-in, which is where the tool must find it), the
/// moved socket, live-restore, and socket activation (docker-ce's docker.service `Requires=
/// docker.socket` and restarts always: stopped by hand, it stays stopped until a connection
/// comes).
#[test]
fn production_settings_on_docker29() {
    let host = Host::boot_suite("prod-docker29", "docker29");
    // Four cases restart docker more often than StartLimitBurst=3 in 60 s allows: each clean-up
    // resets the counter first, as a fresh host for the next case would have it.
    flag_data_root(&host);
    host.ok(&format!(
        "rm {DROP_IN} && chmod 0755 /srv && systemctl daemon-reload
         systemctl reset-failed docker.service && systemctl restart docker"
    ));
    moved_socket(&host);
    host.ok(&format!(
        "rm /etc/systemd/system/docker.socket.d/alt.conf && systemctl daemon-reload
         systemctl stop docker.service docker.socket && rm -f {ALT}
         systemctl reset-failed docker.service
         systemctl start docker.socket docker.service"
    ));
    live_restore(&host);
    host.ok(
        "docker rm -f $(docker ps -aq) >/dev/null 2>&1; echo '{}' >/etc/docker/daemon.json
         systemctl reset-failed docker.service && systemctl restart docker
         systemctl reset-failed docker.service",
    );
    socket_activated(&host);
}
