//! `status --prometheus FILE`: the status as gauges in the Prometheus text exposition format,
//! for node_exporter's textfile collector, written atomically on the live host.
//!
//! [`render`] is pure: the same [`Status`] that `status --json` prints, so every value in the
//! file matches the JSON document of the same run. [`check_path`] refuses what cannot be
//! written before any status is gathered; [`fn@write`] replaces the file (temp file in the same
//! directory, fsync, rename, fsync of the directory), so node_exporter never reads half a file.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use crate::commands::status::{PROBLEM_KINDS, Status};
use crate::exit::{Conflict, Usage};
use crate::host::root::{Perms, Root};
use crate::host::unit_log;

/// Every metric name starts with this.
pub(crate) const PREFIX: &str = "docker_userns_";

/// Escapes a label value (exposition format: backslash, double quote and line feed).
pub(crate) fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a HELP text (exposition format: backslash and line feed).
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// One gauge family: its HELP and TYPE lines and its samples (label pairs, value). A family
/// without samples is left out entirely, HELP and TYPE included.
fn gauge(out: &mut String, name: &str, help: &str, samples: &[(Vec<(&str, &str)>, u64)]) {
    if samples.is_empty() {
        return;
    }
    let _ = writeln!(out, "# HELP {PREFIX}{name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {PREFIX}{name} gauge");
    for (labels, value) in samples {
        let _ = write!(out, "{PREFIX}{name}");
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let _ = write!(out, "{{{}}}", pairs.join(","));
        }
        let _ = writeln!(out, " {value}");
    }
}

/// The status as node_exporter textfile content. Metrics (all gauges):
///
/// - `docker_userns_info{version, docker_version, data_root, remap_user}` 1 (a label whose
///   value is not known, such as the docker version when the engine was not asked, is "").
/// - `docker_userns_remapping_configured`: 1 when daemon.json sets `userns-remap`.
/// - `docker_userns_remapping_active`: 1 when the engine reports `name=userns`; absent when
///   the engine was not asked (`remapping_active` null in the JSON).
/// - `docker_userns_remap_range_start{ids="uid"|"gid"}` and `..._remap_range_size{ids}`: the
///   remap user's /etc/subuid and /etc/subgid range (lowest start, ids owned); a sample is
///   absent when the user has no range in that file.
/// - `docker_userns_problems{kind}`: the entries of `problems` of each kind; every known kind
///   is present, 0 when there is none.
/// - `docker_userns_docker_failed{cause}`: 1 for the cause of docker.service's last failed
///   start (`service.last_failure.cause`); every cause is present, 0 when none is named;
///   absent when systemd was not asked (`service` null).
/// - `docker_userns_unfinished_run`: 1 when an interrupted run left its record.
/// - `docker_userns_host_root_containers`: running containers that are root on the host;
///   absent when the engine was not asked.
/// - `docker_userns_max_user_namespaces`: the kernel's limit (0: user namespaces off); absent
///   when not known (under --root).
/// - `docker_userns_image_store{when="now"|"after_switch", store}` 1: the engine's image store
///   (`containerd (overlayfs snapshotter)`, `overlay2`) and the one switching remapping would
///   lead to (docker 29 switches its containerd image store off while remapping is on);
///   absent when the engine was not asked (`image_store_switch` null in the JSON).
pub fn render(st: &Status) -> String {
    let mut out = String::new();
    remap_gauges(&mut out, st);
    problem_gauges(&mut out, st);
    engine_gauges(&mut out, st);
    out
}

/// The tool, the remap user's ranges, and whether remapping is configured and in effect.
fn remap_gauges(out: &mut String, st: &Status) {
    let docker_version = st.docker_version.as_deref().unwrap_or("");
    let remap_user = st.remap_user.as_deref().unwrap_or("");
    gauge(
        out,
        "info",
        "docker-userns and docker on this host; the value is always 1.",
        &[(
            vec![
                ("version", env!("CARGO_PKG_VERSION")),
                ("docker_version", docker_version),
                ("data_root", st.setup.data_root.as_str()),
                ("remap_user", remap_user),
            ],
            1,
        )],
    );
    gauge(
        out,
        "remapping_configured",
        "1 when \"userns-remap\" is set in /etc/docker/daemon.json.",
        &[(vec![], u64::from(st.remapping_configured.is_some()))],
    );
    let active: Vec<_> = st
        .remapping_active
        .map(|on| (vec![], u64::from(on)))
        .into_iter()
        .collect();
    gauge(
        out,
        "remapping_active",
        "1 when the running engine reports name=userns; absent when the engine was not asked.",
        &active,
    );
    let ranges = [("uid", &st.subuid), ("gid", &st.subgid)];
    let starts: Vec<_> = ranges
        .iter()
        .filter_map(|(ids, r)| r.as_ref().map(|r| (vec![("ids", *ids)], r.start)))
        .collect();
    gauge(
        out,
        "remap_range_start",
        "First id of the remap user's range in /etc/subuid (ids=\"uid\") or /etc/subgid (ids=\"gid\"): container root on the host.",
        &starts,
    );
    let sizes: Vec<_> = ranges
        .iter()
        .filter_map(|(ids, r)| r.as_ref().map(|r| (vec![("ids", *ids)], r.count)))
        .collect();
    gauge(
        out,
        "remap_range_size",
        "Ids the remap user owns in /etc/subuid (ids=\"uid\") or /etc/subgid (ids=\"gid\").",
        &sizes,
    );
}

/// What needs an admin: problems by kind, docker's last failed start, an unfinished run.
fn problem_gauges(out: &mut String, st: &Status) {
    let mut kinds: Vec<&str> = PROBLEM_KINDS.to_vec();
    for p in &st.problems {
        if !kinds.contains(&p.kind) {
            kinds.push(p.kind);
        }
    }
    let problems: Vec<_> = kinds
        .iter()
        .map(|k| {
            let n = st.problems.iter().filter(|p| p.kind == *k).count();
            (vec![("kind", *k)], n as u64)
        })
        .collect();
    gauge(
        out,
        "problems",
        "Problems status found, by kind (status --json \"problems\", each with its fix): the remap user's ranges, an unreadable run record (journal), a host-root container the engine does not know.",
        &problems,
    );
    let failed: Vec<_> = st
        .service
        .iter()
        .flat_map(|svc| {
            let cause = svc.last_failure.as_ref().map(|f| f.cause);
            unit_log::CAUSES
                .iter()
                .map(move |c| (vec![("cause", *c)], u64::from(cause == Some(*c))))
        })
        .collect();
    gauge(
        out,
        "docker_failed",
        "1 for the cause of docker.service's last failed start (status --json service.last_failure.cause), read from the journal while the unit is failed or restarting; every cause 0 otherwise; absent when systemd was not asked.",
        &failed,
    );
    gauge(
        out,
        "unfinished_run",
        "1 when an interrupted run left its record in /var/lib/docker-userns.",
        &[(vec![], u64::from(st.unfinished.is_some()))],
    );
}

/// What the engine and the kernel report: host-root containers, user namespaces, image store.
fn engine_gauges(out: &mut String, st: &Status) {
    let host_root: Vec<_> = st
        .remapping_active
        .map(|_| (vec![], st.host_root_containers.len() as u64))
        .into_iter()
        .collect();
    gauge(
        out,
        "host_root_containers",
        "Running containers that are root on the host; absent when the engine was not asked.",
        &host_root,
    );
    let userns: Vec<_> = st
        .max_user_namespaces
        .map(|n| (vec![], n))
        .into_iter()
        .collect();
    gauge(
        out,
        "max_user_namespaces",
        "The kernel's user.max_user_namespaces (0: user namespaces are off).",
        &userns,
    );
    let stores: Vec<_> = st
        .image_store_switch
        .iter()
        .flat_map(|sw| {
            [
                (vec![("when", "now"), ("store", sw.before.as_str())], 1),
                (
                    vec![("when", "after_switch"), ("store", sw.after.as_str())],
                    1,
                ),
            ]
        })
        .collect();
    gauge(
        out,
        "image_store",
        "The engine's image store (when=\"now\") and the one enable or disable would switch it to (when=\"after_switch\"); the value is always 1; absent when the engine was not asked.",
        &stores,
    );
}

/// Checks FILE before anything is gathered: the live host only (not with `--root`), an
/// absolute UTF-8 path whose name ends in `.prom` (what node_exporter's textfile collector
/// reads), in an existing directory, naming a regular file or nothing. A symbolic link, a
/// device (`/dev/null`), a fifo, a socket or a directory at that name is refused, never
/// followed or replaced: `status` changes nothing but its own metrics file. Refusals of the
/// path's form are usage errors (exit 2); a name held by something other than a regular file
/// is a conflict (exit 3).
pub(crate) fn check_path(root: &Root, file: &Path) -> Result<String> {
    let shown = file.display();
    if !root.is_host() {
        return Err(Usage(format!(
            "--prometheus writes {shown} on the live host: it cannot be used with --root"
        ))
        .into());
    }
    let Some(abs) = file.to_str().filter(|f| f.starts_with('/')) else {
        return Err(Usage(format!(
            "--prometheus {shown}: the file must be an absolute path (in node_exporter's textfile directory)"
        ))
        .into());
    };
    if abs.ends_with('/') || std::fs::symlink_metadata(file).is_ok_and(|m| m.is_dir()) {
        return Err(Usage(format!("--prometheus {shown}: a directory, not a file")).into());
    }
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !name.ends_with(".prom") || name == ".prom" {
        return Err(Usage(format!(
            "--prometheus {shown}: the file name must end in .prom (node_exporter's textfile collector reads only *.prom); status writes nothing else"
        ))
        .into());
    }
    let dir = file.parent().unwrap_or(Path::new("/"));
    if !dir.is_dir() {
        return Err(Usage(format!(
            "--prometheus {shown}: directory {} does not exist (create node_exporter's textfile directory first)",
            dir.display()
        ))
        .into());
    }
    existing_is_replaceable(file)?;
    Ok(abs.to_string())
}

/// Refuses `file` when its name holds anything but a regular file (the final component is
/// not followed); a missing file is fine.
fn existing_is_replaceable(file: &Path) -> Result<()> {
    let shown = file.display();
    let meta = match std::fs::symlink_metadata(file) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Conflict::new(format!(
                "--prometheus {shown}: cannot look at it ({e}); nothing was written"
            ))
            .kind("prometheus-path-unreadable")
            .into());
        }
    };
    let ft = meta.file_type();
    if ft.is_file() {
        return Ok(());
    }
    let what = if ft.is_symlink() {
        let to = std::fs::read_link(file)
            .map(|t| format!(" (to {})", t.display()))
            .unwrap_or_default();
        format!("a symbolic link{to}")
    } else if ft.is_dir() {
        "a directory".into()
    } else {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            "a fifo".into()
        } else if ft.is_socket() {
            "a socket".into()
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device".into()
        } else {
            "not a regular file".into()
        }
    };
    Err(Conflict::new(format!(
        "--prometheus {shown} is {what}: only a regular file (or a missing one) is replaced with the metrics, and links are not followed; nothing was written"
    ))
    .kind("prometheus-path-not-file")
    .into())
}

/// Replaces `abs` with `content` atomically, mode 0644 (node_exporter runs as another user),
/// owned by whoever runs this.
pub(crate) fn write(root: &Root, abs: &str, content: &str) -> Result<()> {
    // Again right before the rename: the status may have taken seconds.
    existing_is_replaceable(Path::new(abs))?;
    let perms = Perms {
        mode: 0o644,
        uid: rustix::process::geteuid().as_raw(),
        gid: rustix::process::getegid().as_raw(),
    };
    root.write_atomic(abs, content.as_bytes(), perms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::status::{HostRoot, Range, StatusProblem};
    use crate::host::setup::Setup;

    fn base() -> Status {
        Status {
            service: None,
            remapping_active: None,
            remapping_configured: None,
            remap_user: None,
            remap_group: None,
            subuid: None,
            subgid: None,
            docker_root_dir: None,
            docker_version: None,
            max_user_namespaces: None,
            unfinished: None,
            host_root_containers: Vec::new(),
            problems: Vec::new(),
            setup: Setup {
                data_root: "/var/lib/docker".into(),
                ..Setup::default()
            },
            image_store_switch: None,
            notes: Vec::new(),
        }
    }

    fn problem(kind: &'static str) -> StatusProblem {
        StatusProblem {
            kind,
            message: "m".into(),
            fix: "f".into(),
        }
    }

    #[test]
    fn remapped_host_renders_every_gauge() {
        let st = Status {
            remapping_active: Some(true),
            remapping_configured: Some("default".into()),
            remap_user: Some("dockremap".into()),
            subuid: Some(Range {
                start: 165536,
                count: 65536,
            }),
            subgid: Some(Range {
                start: 100000,
                count: 131072,
            }),
            docker_root_dir: Some("/var/lib/docker/165536.100000".into()),
            docker_version: Some("28.5.2".into()),
            max_user_namespaces: Some(63704),
            unfinished: Some("enable 123 (phase Applied)".into()),
            host_root_containers: vec![HostRoot {
                name: "web".into(),
                reasons: vec!["--pid=host".into()],
                advice: "a".into(),
            }],
            problems: vec![
                problem("remap-range-overlap"),
                problem("remap-range-overlap"),
            ],
            image_store_switch: Some(crate::host::setup::StoreSwitch {
                before: "overlay2".into(),
                after: "containerd (overlayfs snapshotter)".into(),
                switches: true,
                why: "w".into(),
            }),
            ..base()
        };
        let v = env!("CARGO_PKG_VERSION");
        let want = format!(
            r#"# HELP docker_userns_info docker-userns and docker on this host; the value is always 1.
# TYPE docker_userns_info gauge
docker_userns_info{{version="{v}",docker_version="28.5.2",data_root="/var/lib/docker",remap_user="dockremap"}} 1
# HELP docker_userns_remapping_configured 1 when "userns-remap" is set in /etc/docker/daemon.json.
# TYPE docker_userns_remapping_configured gauge
docker_userns_remapping_configured 1
# HELP docker_userns_remapping_active 1 when the running engine reports name=userns; absent when the engine was not asked.
# TYPE docker_userns_remapping_active gauge
docker_userns_remapping_active 1
# HELP docker_userns_remap_range_start First id of the remap user's range in /etc/subuid (ids="uid") or /etc/subgid (ids="gid"): container root on the host.
# TYPE docker_userns_remap_range_start gauge
docker_userns_remap_range_start{{ids="uid"}} 165536
docker_userns_remap_range_start{{ids="gid"}} 100000
# HELP docker_userns_remap_range_size Ids the remap user owns in /etc/subuid (ids="uid") or /etc/subgid (ids="gid").
# TYPE docker_userns_remap_range_size gauge
docker_userns_remap_range_size{{ids="uid"}} 65536
docker_userns_remap_range_size{{ids="gid"}} 131072
# HELP docker_userns_problems Problems status found, by kind (status --json "problems", each with its fix): the remap user's ranges, an unreadable run record (journal), a host-root container the engine does not know.
# TYPE docker_userns_problems gauge
docker_userns_problems{{kind="remap-range-overlap"}} 2
docker_userns_problems{{kind="remap-range-covers-account"}} 0
docker_userns_problems{{kind="journal"}} 0
docker_userns_problems{{kind="unknown-root-container"}} 0
docker_userns_problems{{kind="remap-range-under-other-name"}} 0
docker_userns_problems{{kind="remap-range-missing"}} 0
docker_userns_problems{{kind="remap-group-range-ignored"}} 0
docker_userns_problems{{kind="remap-value-rejected"}} 0
# HELP docker_userns_unfinished_run 1 when an interrupted run left its record in /var/lib/docker-userns.
# TYPE docker_userns_unfinished_run gauge
docker_userns_unfinished_run 1
# HELP docker_userns_host_root_containers Running containers that are root on the host; absent when the engine was not asked.
# TYPE docker_userns_host_root_containers gauge
docker_userns_host_root_containers 1
# HELP docker_userns_max_user_namespaces The kernel's user.max_user_namespaces (0: user namespaces are off).
# TYPE docker_userns_max_user_namespaces gauge
docker_userns_max_user_namespaces 63704
# HELP docker_userns_image_store The engine's image store (when="now") and the one enable or disable would switch it to (when="after_switch"); the value is always 1; absent when the engine was not asked.
# TYPE docker_userns_image_store gauge
docker_userns_image_store{{when="now",store="overlay2"}} 1
docker_userns_image_store{{when="after_switch",store="containerd (overlayfs snapshotter)"}} 1
"#
        );
        assert_eq!(render(&st), want);
    }

    #[test]
    fn a_failed_docker_is_counted_by_cause() {
        use crate::commands::status::Service;
        use crate::host::unit_log::{CAUSES, LastFailure};
        let svc = |cause: Option<&'static str>| Service {
            active_state: "failed".into(),
            sub_state: "failed".into(),
            main_pid: 0,
            main_pid_user: None,
            n_restarts: 2,
            result: "exit-code".into(),
            last_failure: cause.map(|cause| LastFailure {
                cause,
                summary: "s".into(),
                unit: "docker.service",
                invocation_id: "i".into(),
                line: "l".into(),
                advice: "a".into(),
            }),
        };
        let text = render(&Status {
            service: Some(svc(Some("no-subid-ranges"))),
            ..base()
        });
        for c in CAUSES {
            let v = u8::from(c == "no-subid-ranges");
            assert!(
                text.contains(&format!(
                    "\ndocker_userns_docker_failed{{cause=\"{c}\"}} {v}\n"
                )),
                "{c}:\n{text}"
            );
        }
        let text = render(&Status {
            service: Some(svc(None)),
            ..base()
        });
        assert_eq!(
            text.matches("docker_userns_docker_failed{").count(),
            CAUSES.len()
        );
        assert!(
            !text.contains("docker_failed{cause=\"no-subid-ranges\"} 1"),
            "{text}"
        );
        assert!(!render(&base()).contains("docker_failed"));
    }

    #[test]
    fn unknown_values_are_left_out_and_known_kinds_are_zero() {
        let text = render(&base());
        for absent in [
            "remapping_active",
            "remap_range_start",
            "remap_range_size",
            "host_root_containers",
            "max_user_namespaces",
            "image_store",
        ] {
            assert!(
                !text.contains(&format!("docker_userns_{absent}")),
                "{absent} rendered:\n{text}"
            );
        }
        assert!(
            text.contains("\ndocker_userns_remapping_configured 0\n"),
            "{text}"
        );
        assert!(
            text.contains("\ndocker_userns_unfinished_run 0\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "docker_userns_info{{version=\"{}\",docker_version=\"\",data_root=\"/var/lib/docker\",remap_user=\"\"}} 1\n",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        for kind in PROBLEM_KINDS {
            assert!(
                text.contains(&format!("docker_userns_problems{{kind=\"{kind}\"}} 0\n")),
                "{text}"
            );
        }
        // Engine asked, remapping off, no container: both present and 0.
        let off = render(&Status {
            remapping_active: Some(false),
            ..base()
        });
        assert!(
            off.contains("\ndocker_userns_remapping_active 0\n"),
            "{off}"
        );
        assert!(
            off.contains("\ndocker_userns_host_root_containers 0\n"),
            "{off}"
        );
    }

    #[test]
    fn a_kind_not_known_yet_is_counted_too() {
        let text = render(&Status {
            problems: vec![problem("something-new")],
            ..base()
        });
        assert!(text.contains("docker_userns_problems{kind=\"something-new\"} 1\n"));
        assert!(text.contains("docker_userns_problems{kind=\"remap-range-overlap\"} 0\n"));
    }

    #[test]
    fn a_journal_problem_is_counted() {
        let text = render(&Status {
            problems: vec![problem("journal")],
            ..base()
        });
        assert!(
            text.contains("docker_userns_problems{kind=\"journal\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("docker_userns_problems{kind=\"unknown-root-container\"} 0\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(
            escape_label("plain /var/lib/docker é"),
            "plain /var/lib/docker é"
        );
        let mut st = base();
        st.setup.data_root = "/srv/\"d\\ocker\"\nroot".into();
        st.docker_version = Some("1\\2".into());
        let text = render(&st);
        let info = text
            .lines()
            .find(|l| l.starts_with("docker_userns_info{"))
            .expect("info line");
        assert_eq!(
            info,
            format!(
                r#"docker_userns_info{{version="{}",docker_version="1\\2",data_root="/srv/\"d\\ocker\"\nroot",remap_user=""}} 1"#,
                env!("CARGO_PKG_VERSION")
            )
        );
        // Every sample is one line: nothing unescaped leaked a line break.
        assert!(
            text.lines().all(|l| l.starts_with("# HELP ")
                || l.starts_with("# TYPE ")
                || l.starts_with(PREFIX)),
            "{text}"
        );
        assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
    }
}
