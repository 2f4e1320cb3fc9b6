//! The carry benchmark (issue 14, item 3), as root: `cargo bench --bench carry`.
//!
//! Boots one test host per suite (tests/testhost; bookworm's docker 20.10 unless `--suite`
//! says otherwise) and measures, in the same run:
//!
//! - C1: carrying images. The tool's part of `enable --yes --settle 0 --carry images` (one
//!   export of all images through `GET /images/get?names=…` before docker stops, one load
//!   through `POST /images/load` after the gate) is that command's wall time minus the wall
//!   time of a plain `enable --yes --settle 0` on the same host state (remapped engine empty,
//!   same user and ranges), in the same cycle. Baseline: the docker CLI doing the same move,
//!   `docker save -o FILE ID...` of all images from the old engine and `docker load -i FILE`
//!   into the remapped one after a plain `enable`. The set: ten images of one 5 MB layer each on
//!   one 200 MB base (`bench/base:1`, tagged too), so the base is shared by all; target ≤ 1.0x.
//!   Also the spool's bytes (`carry.spool_bytes` of `--json`: the files in the spool) against
//!   the bytes of that `docker save` tar: target ≤ 1.1x.
//! - C2: carrying volumes. `enable --carry volumes` minus the plain `enable` the same way,
//!   against `cp -a` of the same tree beside the new data root plus the floor of the owner
//!   shift, `chown -R --no-dereference` of the copy. A volume of 10^5 files / 1 GB (owners
//!   root, 1000 and others below 65536, 1% symlinks, 1% hard links, 0.1% setuid), and one of
//!   10^3 files / 10 MB. Target ≤ 1.3x.
//! - C3: peak RSS (VmHWM under ptrace, as in `perf`: the docker-userns process alone, not `cp`
//!   or dockerd) of those `enable --carry` runs: at the C1 set against one 100 MB image, and at
//!   the big volume against the small one; it must not grow with the size.
//!
//! Everything measured is written to a filesystem made for the run ([`QuietFs`]: an ext4 with
//! its journal in a sparse file on a loop device, bound over /var/lib/docker,
//! /var/lib/containerd, /var/lib/docker-userns and /var/tmp inside the test host), so other
//! work on the machine's root filesystem (its own ext4 has no journal) does not share its
//! allocator and writeback with the data measured. The CPU and the disk below stay shared.
//!
//! Every timed step starts after a `sync`, and at least 40 s after the last deletion of a big
//! tree (see [`settle_deletes`]). Each cycle ends with the remapped engine emptied and
//! remapping off again; checked after each carry: the same layers (diff IDs) under the same
//! tags (not the image ids: on docker 29 the containerd store names an image by its manifest,
//! the remapped overlay2 store by its config), the volume's inode count and the owner
//! START+1000 of a file owned by 1000.
//!
//! Options (after `--`): `--reps N` cycles of the C1 set and of the big volume (default 3),
//! `--files N` and `--volume-mb N` (the big volume, default 100000 and 1024), `--base-mb N`
//! and `--own-mb N` (the C1 set, default 200 and 5), `--images-only`, `--volumes-only`, `--suite
//! NAME` (repeatable: `--suite bookworm --suite docker29` measures both, one after the other,
//! in one run; the rows name the engine and its image store). Inside the
//! test host this binary (copied to /root/carrybench) is the timer: `carry --measure ...`, the
//! helper of benches/measure.

mod measure;
#[path = "../tests/testhost/mod.rs"]
mod testhost;

use measure::{
    Row, helper_measure, load, mb, measured_lines, median, print_machine, print_missed, sh,
};
use testhost::Host;

struct Opts {
    reps: usize,
    files: u64,
    volume_mb: u64,
    base_mb: u64,
    own_mb: u64,
    images: bool,
    volumes: bool,
    suites: Vec<String>,
}

fn opts() -> Option<Opts> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("benches/carry.rs: run it with `cargo bench --bench carry` (see BENCHMARKS.md)");
        return None;
    }
    let mut o = Opts {
        reps: 3,
        files: 100_000,
        volume_mb: 1024,
        base_mb: 200,
        own_mb: 5,
        images: true,
        volumes: true,
        suites: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |what: &str| -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what} needs a number"))
        };
        match a.as_str() {
            "--bench" => {}
            "--reps" => o.reps = num("--reps") as usize,
            "--files" => o.files = num("--files"),
            "--volume-mb" => o.volume_mb = num("--volume-mb"),
            "--base-mb" => o.base_mb = num("--base-mb"),
            "--own-mb" => o.own_mb = num("--own-mb"),
            "--images-only" => o.volumes = false,
            "--volumes-only" => o.images = false,
            "--suite" => o.suites.push(
                it.next()
                    .cloned()
                    .unwrap_or_else(|| panic!("--suite needs a name")),
            ),
            other => panic!("unknown option {other:?} (see the top of benches/carry.rs)"),
        }
    }
    if o.suites.is_empty() {
        o.suites.push("bookworm".into());
    }
    Some(o)
}

const ENABLE: &str = "docker-userns -q enable --yes --settle 0";
const DISABLE: &str = "docker-userns -q disable --yes --settle 0";

/// Runs `cmd` (split into words by sh) inside under the timer, after a `sync`: (seconds, peak
/// RSS in kB, 0 unless traced). Panics with its output unless it exits 0.
fn timed(host: &Host, traced: bool, cmd: &str) -> (f64, u64) {
    host.ok("sync");
    timed_now(host, traced, cmd)
}

/// [`timed`] without the `sync` first.
fn timed_now(host: &Host, traced: bool, cmd: &str) -> (f64, u64) {
    host.ok("rm -f /root/m.txt /root/m.txt.log");
    let trace = if traced { "--trace " } else { "" };
    host.ok(&format!(
        "/root/carrybench --measure 1 /root/m.txt {trace}{cmd}"
    ));
    let r = measured_lines(&host.read_string("/root/m.txt").unwrap_or_default());
    assert_eq!(r.len(), 1, "`{cmd}`: no measurement");
    if r[0].3 != 0 {
        panic!(
            "`{cmd}` exited {}:\n{}",
            r[0].3,
            host.read_string("/root/m.txt.log").unwrap_or_default()
        );
    }
    (r[0].1 / 1000.0, r[0].2)
}

fn remapped(host: &Host) -> bool {
    host.ok("docker info --format '{{json .SecurityOptions}}'")
        .contains("name=userns")
}

/// The images as `REPO:TAG [DIFF_ID...]` lines, sorted: what an image is in every store.
fn images(host: &Host) -> String {
    host.ok(
        "for t in $(docker images --format '{{.Repository}}:{{.Tag}}' | sort); do echo \"$t $(docker image inspect -f '{{json .RootFS.Layers}}' \"$t\")\"; done",
    )
}

/// Removes every image of the engine (children before parents: `prune`, not `rmi`).
fn empty_images(host: &Host) {
    host.ok("docker image prune -a -f >/dev/null");
    assert_eq!(host.ok("docker images -aq"), "", "images left");
}

/// Adds an image `bench/imgN:1` of two layers of `mb`/2 MB of random data each on busybox:local.
fn make_image(host: &Host, n: usize, mb: u64) {
    let half = mb * 1024 * 1024 / 2;
    let run = |from: &str, file: &str, to: &str| {
        format!(
            "docker run --pull=never --network none --name mk {from} sh -c 'head -c {half} /dev/urandom > /{file}' && docker commit mk {to} >/dev/null && docker rm mk >/dev/null"
        )
    };
    host.ok(&format!(
        "{} && {} && docker rmi bench/img{n}:tmp >/dev/null",
        run("busybox:local", "a", &format!("bench/img{n}:tmp")),
        run(
            &format!("bench/img{n}:tmp"),
            "b",
            &format!("bench/img{n}:1")
        ),
    ));
}

/// Adds `bench/base:1` (busybox:local and a layer of `mb` MB of random data) and `n` images
/// `bench/onbase{i}:1` of one more layer of `own` MB each on it: the layers of the base are
/// shared by all of them.
fn make_shared(host: &Host, mb: u64, n: usize, own: u64) {
    let run = |from: &str, size: u64, to: &str| {
        format!(
            "docker run --pull=never --network none --name mk {from} sh -c 'head -c {} /dev/urandom > /own' && docker commit mk {to} >/dev/null && docker rm mk >/dev/null",
            size << 20
        )
    };
    let mut script = run("busybox:local", mb, "bench/base:1");
    for i in 0..n {
        script = format!(
            "{script} && {}",
            run("bench/base:1", own, &format!("bench/onbase{i}:1"))
        );
    }
    host.ok(&script);
}

/// One image cycle from remapping off: the baseline (save, plain enable, load), then the tool.
/// Returns (carry s, save s, load s, plain enable s, enable --carry s, RSS kB, sync after the
/// save s, bytes of `docker save`'s tar, bytes of the tool's spool).
fn image_cycle(host: &Host) -> [f64; 9] {
    assert!(!remapped(host));
    let want = images(host);
    // By id, as the tool exports (no tag inside the tar); each image once.
    let ids = host.ok("docker images -q --no-trunc | sort -u");
    let ids: Vec<&str> = ids.split_whitespace().collect();
    let (save, _) = timed(
        host,
        false,
        &format!("docker save -o /var/tmp/save.tar {}", ids.join(" ")),
    );
    // Not in the baseline: what `docker save` left unwritten (the tool fsyncs its spool).
    let (flush, _) = timed_now(host, false, "sync");
    let saved: f64 = host
        .ok("stat -c %s /var/tmp/save.tar")
        .trim()
        .parse()
        .unwrap();
    let (plain, _) = timed(host, false, ENABLE);
    assert!(remapped(host));
    let (load, _) = timed(host, false, "docker load -q -i /var/tmp/save.tar");
    assert_eq!(
        host.ok("docker images -aq --no-trunc | sort -u | wc -l")
            .trim(),
        ids.len().to_string(),
        "docker load"
    );
    host.ok("rm -f /var/tmp/save.tar");
    empty_images(host);
    host.ok(DISABLE);

    let (with, rss) = timed(host, true, &format!("{ENABLE} --json --carry images"));
    let out = host.read_string("/root/m.txt.log").unwrap_or_default();
    let spool = out
        .split("\"spool_bytes\":")
        .nth(1)
        .and_then(|r| r.trim_start().split([',', '\n', '}']).next())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no spool_bytes in the output:\n{out}"));
    assert!(remapped(host));
    assert_eq!(images(host), want, "enable --carry images");
    assert!(host.sh("test -e /var/lib/docker-userns/carry").code != 0);
    empty_images(host);
    host.ok(DISABLE);
    let carry = with - plain;
    eprintln!(
        "  images: enable --carry {with:.2} s - enable {plain:.2} s = {carry:.2} s; docker save {save:.2} s + load {load:.2} s = {:.2} s (sync after save {flush:.2} s); RSS {rss} kB; spool {:.1} MB, docker save {:.1} MB",
        save + load,
        spool / 1e6,
        saved / 1e6
    );
    [
        carry, save, load, plain, with, rss as f64, flush, saved, spool,
    ]
}

const GENVOL: &str = r#"
import os, random, sys
top, n, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(14)
blob = os.urandom(1 << 22)
mean = total // n
prev = None
for i in range(n):
    d = os.path.join(top, "d%04d" % (i // 100))
    if i % 100 == 0:
        os.mkdir(d)
        u = 1000 if rng.random() < 0.4 else 0
        os.chown(d, u, u)
    r = rng.random()
    p = os.path.join(d, "f%06d" % i)
    if prev and r < 0.01:
        os.symlink("../" + prev, p)
        os.lchown(p, 1000, 1000)
        continue
    if prev and r < 0.02:
        os.link(os.path.join(top, prev), p)
        continue
    size = rng.randint(0, 2 * mean)
    off = rng.randint(0, len(blob) - size)
    with open(p, "wb") as f:
        f.write(blob[off:off + size])
    u = 1000 if (i == 0 or r < 0.4) else (0 if r < 0.9 else rng.randint(1, 65535))
    os.chown(p, u, u)
    if r > 0.999:
        os.chmod(p, 0o4755)
    prev = os.path.relpath(p, top)
"#;

/// Creates volume `name` in the (old) engine with `files` files of `mb` MB in all.
fn make_volume(host: &Host, name: &str, files: u64, mb: u64) {
    host.ok(&format!(
        "docker volume create {name} >/dev/null && python3 /root/genvol.py \"$(docker volume inspect -f '{{{{.Mountpoint}}}}' {name})\" {files} {}",
        mb << 20
    ));
}

/// Waits until the inodes of a tree just deleted may be reused. ext4's inode allocator skips
/// inodes deleted less than `dirty_expire_centisecs` (30 s) + 5 s ago (`recently_deleted()`,
/// a buffer lookup per skipped inode): creating 10^5 files right after deleting 10^5 took
/// 30-60 s of system time in `cp -a` instead of ~8 s (perf: 70% in `recently_deleted`), for
/// whichever side of the comparison came after a deletion.
fn settle_deletes(host: &Host) {
    host.ok("sync; sleep 40");
}

/// One volume cycle from remapping off: the tool, then the baseline (plain enable, cp -a,
/// chown -R). Returns (carry s, cp s, chown s, plain enable s, enable --carry s, RSS kB).
fn volume_cycle(host: &Host, name: &str) -> [f64; 7] {
    assert!(!remapped(host));
    let src = host.ok(&format!(
        "docker volume inspect -f '{{{{.Mountpoint}}}}' {name}"
    ));
    let src = src.trim();
    let inodes = host.ok(&format!("find {src} | wc -l"));
    let (with, rss) = timed(host, true, &format!("{ENABLE} --carry volumes"));
    assert!(remapped(host));
    let mp = host.ok(&format!(
        "docker volume inspect -f '{{{{.Mountpoint}}}}' {name}"
    ));
    let mp = mp.trim();
    assert_eq!(host.ok(&format!("find {mp} | wc -l")), inodes, "{name}");
    let start = host.ok("grep ^dockremap: /etc/subuid | cut -d: -f2");
    let want = format!("{0}:{0}\n", start.trim().parse::<u64>().unwrap() + 1000);
    assert_eq!(
        host.ok(&format!("stat -c %u:%g {mp}/d0000/f000000")),
        want,
        "owner of a file owned by 1000"
    );
    host.ok(&format!("docker volume rm {name} >/dev/null"));
    host.ok(DISABLE);
    settle_deletes(host);

    let (plain, _) = timed(host, false, ENABLE);
    let dst = format!(
        "{}/bench-copy",
        host.ok("docker info --format '{{.DockerRootDir}}'").trim()
    );
    let (cp, _) = timed(
        host,
        false,
        &format!("cp -a --no-target-directory {src} {dst}"),
    );
    let (chown, _) = timed(
        host,
        false,
        &format!("chown -R --no-dereference 101000:101000 {dst}"),
    );
    host.ok(&format!("rm -rf {dst}"));
    host.ok(DISABLE);
    settle_deletes(host);
    let carry = with - plain;
    eprintln!(
        "  volume {name}: enable --carry {with:.2} s - enable {plain:.2} s = {carry:.2} s; cp -a {cp:.2} s + chown -R {chown:.2} s = {:.2} s; RSS {rss} kB",
        cp + chown
    );
    [carry, cp, chown, plain, with, rss as f64, 0.0]
}

/// A dedicated filesystem for one suite's run: an ext4 **with** its journal in a sparse file
/// of the machine, on a loop device, mounted inside the test host and bound over the
/// directories the benchmark writes (`/var/lib/docker`, `/var/lib/containerd`,
/// `/var/lib/docker-userns`, `/var/tmp`), so the data measured is the only work on it.
/// Made after boot with docker stopped, removed (loop device detached, file deleted) when
/// dropped.
struct QuietFs {
    file: String,
    dev: String,
}

impl QuietFs {
    const DIRS: [&str; 4] = [
        "/var/lib/docker",
        "/var/lib/containerd",
        "/var/lib/docker-userns",
        "/var/tmp",
    ];

    fn make(host: &Host, gb: u64) -> QuietFs {
        let file = format!(
            "/var/tmp/carrybench-{}-{}.ext4",
            std::process::id(),
            host.name()
        );
        let dev = sh(&format!(
            "truncate -s {gb}G {file} && mkfs.ext4 -q -F -O has_journal {file} && losetup -f --show {file}"
        ));
        let q = QuietFs {
            file,
            dev: dev.trim().to_string(),
        };
        assert!(q.dev.starts_with("/dev/loop"), "losetup: {dev}");
        let minor = sh(&format!("stat -c %T {}", q.dev));
        let minor = u32::from_str_radix(minor.trim(), 16).expect("loop minor");
        // The device node inside the host; mounted by a process of the machine's cgroup
        // entered into the host's mount namespace (the host's device cgroup would refuse it).
        host.ok("systemctl stop docker.socket docker.service containerd.service");
        host.ok(&format!(
            "rm -f /root/quiet.dev && mknod /root/quiet.dev b 7 {minor} && mkdir -p /mnt/quiet"
        ));
        sh(&format!(
            "nsenter -t {} -m -- mount /root/quiet.dev /mnt/quiet",
            host.pid()
        ));
        let mut binds = String::new();
        for d in Self::DIRS {
            let under = format!("/mnt/quiet/{}", d.trim_start_matches('/').replace('/', "_"));
            binds.push_str(&format!(
                "mkdir -p {under} {d} && cp -a {d}/. {under}/ && mount --bind {under} {d} && "
            ));
        }
        host.ok(&format!(
            "{binds} systemctl start containerd.service docker.socket docker.service"
        ));
        // Each directory is on the loop device now, not on the host's root filesystem.
        for d in Self::DIRS {
            let src = host.ok(&format!("findmnt -n -o SOURCE --target {d}"));
            assert!(
                src.contains("quiet.dev"),
                "{d} is on {src}, not on the quiet filesystem"
            );
        }
        host.ok("for i in $(seq 100); do docker version >/dev/null 2>&1 && break; sleep 0.2; done");
        eprintln!(
            "quiet filesystem: ext4 with a journal, {gb} GB sparse file {} on {}, bound over {}",
            q.file,
            q.dev,
            Self::DIRS.join(", ")
        );
        q
    }
}

impl Drop for QuietFs {
    fn drop(&mut self) {
        // After the host is shut down (it is dropped first): its mounts went with it.
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "for i in 1 2 3 4 5; do losetup -d {0} 2>/dev/null && break; sleep 1; done; rm -f {1}",
                self.dev, self.file
            ))
            .status();
    }
}

/// Medians of each column.
fn medians<const N: usize>(runs: &[[f64; N]]) -> [f64; N] {
    std::array::from_fn(|i| median(runs.iter().map(|r| r[i]).collect()))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--measure") {
        return helper_measure(&args[1..]);
    }
    let Some(o) = opts() else { return };
    let load_before = load();
    let date = sh("date -u '+%Y-%m-%d %H:%M UTC'");
    let mut rows = Vec::new();
    for suite in &o.suites {
        rows.extend(run_suite(&o, suite));
    }

    print_machine(&date, &load_before);
    print!("{}", Row::print(&rows));
    print_missed(&rows);
}

/// C1 and C3 of images on `host`: one 100 MB image (C3's reference), then ten images on one
/// shared base; the rows of C1 into `rows`, of C3 into `rss`.
fn image_rows(o: &Opts, host: &Host, on: &str, rows: &mut Vec<Row>, rss: &mut Vec<Row>) {
    // The small set (one image of 100 MB) for C3's reference, then the C1 set: ten
    // images sharing one 200 MB base.
    make_image(host, 1, 100);
    eprintln!("C3 reference: bench/img1:1 (100 MB) + busybox:local…");
    let small: Vec<[f64; 9]> = (0..1).map(|_| image_cycle(host)).collect();
    let first_rss = small[0][5] as u64;
    host.ok("docker rmi bench/img1:1 >/dev/null");
    make_shared(host, o.base_mb, 10, o.own_mb);
    let bytes = host.ok("docker system df --format '{{.Type}} {{.Size}}' | grep ^Images || true");
    let set = format!(
        "10 images of {} MB each on one {} MB base",
        o.own_mb, o.base_mb
    );
    eprintln!("C1 {set} ({})…", bytes.trim());
    let runs: Vec<[f64; 9]> = (0..o.reps).map(|_| image_cycle(host)).collect();
    let m = medians(&runs);
    let base = m[1] + m[2];
    let spread = |i: usize| {
        let v: Vec<f64> = runs.iter().map(|r| r[i]).collect();
        let min = v.iter().cloned().fold(f64::MAX, f64::min);
        let max = v.iter().cloned().fold(0.0, f64::max);
        format!("{min:.2}-{max:.2}")
    };
    let reps = o.reps;
    rows.push(Row {
        figure: format!(
            "[{on}] C1 carry images, {set} (median of {reps}; carry {} s, baseline {} s)",
            spread(0),
            {
                let v: Vec<f64> = runs.iter().map(|r| r[1] + r[2]).collect();
                format!(
                    "{:.2}-{:.2}",
                    v.iter().cloned().fold(f64::MAX, f64::min),
                    v.iter().cloned().fold(0.0, f64::max)
                )
            }
        ),
        value: format!("{:.2} s", m[0]),
        baseline: format!(
            "`docker save` {:.2} s + `docker load` {:.2} s = {base:.2} s",
            m[1], m[2]
        ),
        ratio: m[0] / base,
        target: "≤ 1.0".into(),
        met: Some(m[0] / base <= 1.0),
    });
    rows.push(Row {
        figure: format!("[{on}] C1 spool bytes, {set} (median of {reps})"),
        value: format!("{:.1} MB", m[8] / 1e6),
        baseline: format!("one `docker save` of all: {:.1} MB", m[7] / 1e6),
        ratio: m[8] / m[7],
        target: "≤ 1.1".into(),
        met: Some(m[8] / m[7] <= 1.1),
    });
    println!(
        "[{on}] C1 {set}: enable --carry images {:.2} s, plain enable {:.2} s; sync after `docker save` {:.2} s (not in the baseline)",
        m[4], m[3], m[6]
    );
    let peak = runs.iter().map(|r| r[5] as u64).max().unwrap();
    rss.push(Row {
        figure: format!("[{on}] C3 peak RSS, `enable --carry images`, {set}"),
        value: mb(peak),
        baseline: format!("one 100 MB image {}", mb(first_rss)),
        ratio: peak as f64 / first_rss as f64,
        target: "≤ 1.1 (bounded)".into(),
        met: Some(peak as f64 <= first_rss as f64 * 1.1),
    });
    // The old engine's images are not needed for the volumes.
    empty_images(host);
}

/// Boots a host of `suite` and measures there: the rows (C1 and C2, then C3), each named for
/// the suite, the engine and its image store. The details of each row are printed as they
/// come.
fn run_suite(o: &Opts, suite: &str) -> Vec<Row> {
    let host = Host::boot_suite("carrybench", suite);
    // Room for the images (the old store, `docker save`'s tar, the spool, the new store) and
    // three copies of the big volume (the old one, the carried one, `cp -a`'s).
    let gb = 3 + (3 * o.volume_mb).div_ceil(1024);
    let quiet = QuietFs::make(&host, gb);
    host.cp_in(std::env::current_exe().unwrap(), "/root/carrybench");
    host.write("/root/genvol.py", GENVOL);
    // The first switch creates the user and ranges: not measured, so every measured enable
    // finds the same state.
    host.ok(ENABLE);
    host.ok(DISABLE);
    let engine = host.ok("docker version -f '{{.Server.Version}}'");
    let store = host.ok("docker info -f '{{.Driver}}'");
    let on = format!("{suite}, docker {}, {}", engine.trim(), store.trim());
    eprintln!("{on}:");
    let mut rows = Vec::new();
    let mut rss = Vec::new();

    if o.images {
        image_rows(o, &host, &on, &mut rows, &mut rss);
    }

    if o.volumes {
        let sets = [
            ("smallvol", o.files / 100, o.volume_mb / 100, 1, false),
            ("bigvol", o.files, o.volume_mb, o.reps, true),
        ];
        let mut first_rss = None;
        for (name, files, vmb, reps, judged) in sets {
            eprintln!("C2 volume {name}: {files} files, {vmb} MB…");
            make_volume(&host, name, files, vmb);
            let du = host.ok(&format!(
                "du -sh --apparent-size \"$(docker volume inspect -f '{{{{.Mountpoint}}}}' {name})\" | cut -f1"
            ));
            let runs: Vec<[f64; 7]> = (0..reps).map(|_| volume_cycle(&host, name)).collect();
            let m = medians(&runs);
            let base = m[1] + m[2];
            rows.push(Row {
                figure: format!(
                    "[{on}] C2 carry a volume of {files} files, {} (median of {reps})",
                    du.trim()
                ),
                value: format!("{:.2} s", m[0]),
                baseline: format!(
                    "`cp -a` {:.2} s + `chown -R` {:.2} s = {base:.2} s",
                    m[1], m[2]
                ),
                ratio: m[0] / base,
                // The small one is there for C3: its carry is below the noise of a restart.
                target: if judged { "≤ 1.3" } else { "—" }.into(),
                met: judged.then_some(m[0] / base <= 1.3),
            });
            println!(
                "[{on}] C2 {name}: enable --carry volumes {:.2} s, plain enable {:.2} s",
                m[4], m[3]
            );
            let peak = runs.iter().map(|r| r[5] as u64).max().unwrap();
            let first = *first_rss.get_or_insert(peak);
            rss.push(Row {
                figure: format!(
                    "[{on}] C3 peak RSS, `enable --carry volumes`, {files} files / {}",
                    du.trim()
                ),
                value: mb(peak),
                baseline: format!("at the small volume {}", mb(first)),
                ratio: peak as f64 / first as f64,
                target: "≤ 1.1 (bounded)".into(),
                met: Some(peak as f64 <= first as f64 * 1.1),
            });
            host.ok(&format!("docker volume rm {name} >/dev/null"));
        }
    }
    rows.extend(rss);
    // The host first: its mounts of the filesystem go with it.
    drop(host);
    drop(quiet);
    rows
}
