//! `shift` on a booted test host (Debian 12, docker 20.10): a bind-mounted host directory that
//! a remapped container's root cannot write becomes writable after `shift --to remapped`, with
//! in-container owners as before (root, uid 1000, a setuid file), `--dry-run` changes nothing,
//! a rerun changes nothing, `--to host` gives back exactly the tree it started from, and system
//! trees, docker's data root and ids the mapping cannot express are refused with nothing
//! changed. Needs root; fails, never skips.

mod common;
#[path = "testhost/mod.rs"]
mod testhost;

use serde_json::Value;
use testhost::{Host, Output};

fn json(out: &Output) -> Value {
    common::json_doc(&out.stdout, out)
}

/// Every inode below `dir`: path, owner, group, mode (sorted).
fn tree(host: &Host, dir: &str) -> String {
    host.ok(&format!(
        "cd {dir} && find . -printf '%p %U %G %m\\n' | LC_ALL=C sort"
    ))
}

#[test]
fn shift_gives_a_bind_mount_to_the_remapped_root_and_back() {
    let host = Host::boot("shift");
    let out = host.sh("docker-userns enable --json --settle 2");
    assert_eq!(out.code, 0, "{out}");
    host.reimport_image();
    host.ok(
        "mkdir -p /srv/app/data/sub && echo hi > /srv/app/data/f && cp /bin/true /srv/app/data/suid \
         && chmod 4755 /srv/app/data/suid && chown 1000:1000 /srv/app/data/sub && ln -s /etc/passwd /srv/app/data/link",
    );
    let before = tree(&host, "/srv/app/data");
    let run = "docker run --rm -v /srv/app/data:/d busybox:local";

    // Remapped root cannot write the root-owned directory.
    let denied = host.sh(&format!("{run} touch /d/new"));
    assert_ne!(
        denied.code, 0,
        "remapped root wrote a root-owned host dir: {denied}"
    );

    // Refusals change nothing.
    for (args, needle) in [
        ("/etc --to remapped", "system tree"),
        ("/var/lib/docker --to remapped", "data root"),
        ("/srv --to remapped", "system tree"),
    ] {
        let r = host.sh(&format!("docker-userns shift {args} --json"));
        assert_eq!(r.code, 3, "{args}: {r}");
        assert!(
            json(&r)["error"]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{args}: {r}"
        );
    }
    host.ok("mkdir -p /srv/odd && touch /srv/odd/x && chown 70000 /srv/odd/x");
    let r = host.sh("docker-userns shift /srv/app/data /srv/odd --to remapped");
    assert_eq!(r.code, 3, "{r}");
    assert!(
        r.stderr.contains("/srv/odd/x") && r.stderr.contains("outside"),
        "{r}"
    );
    assert_eq!(
        tree(&host, "/srv/app/data"),
        before,
        "a refused shift changed something"
    );

    // Dry run: what would change, nothing changed.
    let dry = json(&host.sh("docker-userns shift /srv/app/data --to remapped --dry-run --json"));
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["roots"][0]["shifted"], 5, "{dry}");
    assert_eq!(tree(&host, "/srv/app/data"), before);

    // The shift.
    let done = json(&host.sh("docker-userns shift /srv/app/data --to remapped --json"));
    let start = done["uid_to"].as_u64().unwrap();
    assert_eq!(done["roots"][0]["shifted"], 5, "{done}");
    assert_eq!(done["roots"][0]["setid_restored"], 1, "{done}");
    let stat = host.ok(&format!(
        "{run} sh -c 'touch /d/new && stat -c \"%n %u %g\" /d/f /d/sub /d/new && ls -l /d/suid'"
    ));
    assert!(
        stat.contains("/d/f 0 0")
            && stat.contains("/d/sub 1000 1000")
            && stat.contains("/d/new 0 0"),
        "{stat}"
    );
    assert!(stat.contains("-rwsr-xr-x"), "setuid bit lost: {stat}");
    let host_view = host.ok("stat -c '%u %g' /srv/app/data/f /srv/app/data/sub /etc/passwd");
    assert_eq!(
        host_view.split_whitespace().collect::<Vec<_>>(),
        [
            start.to_string(),
            start.to_string(),
            (start + 1000).to_string(),
            (start + 1000).to_string(),
            "0".into(),
            "0".into()
        ],
        "symlink target touched or ids wrong"
    );

    // Idempotent, and back exactly.
    let again = json(&host.sh("docker-userns shift /srv/app/data --to remapped --json"));
    assert_eq!(again["roots"][0]["shifted"], 0, "{again}");
    host.ok("rm /srv/app/data/new");
    let back = json(&host.sh("docker-userns shift /srv/app/data --to host --json"));
    assert_eq!(back["roots"][0]["shifted"], 5, "{back}");
    assert_eq!(
        tree(&host, "/srv/app/data"),
        before,
        "--to host did not restore the tree"
    );
}
