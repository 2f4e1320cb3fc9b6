//! The benchmark suite (issue 7), one command, as root: `cargo bench --bench perf`.
//!
//! Prints every figure next to its baseline as a ratio (a Markdown table, pasted into
//! BENCHMARKS.md):
//!
//! - P1: median wall time of `enable` on a converged host: under `--root` on a copy of
//!   `tests/fixtures/debian12`, and on the nspawn test host (systemd over D-Bus, the Engine API);
//!   baseline `cat` of the same three files, timed the same way. Target ≤ 5 ms.
//! - P2: docker API downtime (`tests/testhost/downtime.py`: longest gap between answered
//!   `/_ping`s, polled every 5 ms) of `enable` against a bare `systemctl restart docker` on the
//!   same test host. Target ratio ≤ 1.1.
//! - P3: `enable` allocating a range in /etc/subuid and /etc/subgid of 10^3 … 10^6 generated lines
//!   (other owners spread over the id space, shuffled, the only free gap above all of them);
//!   baseline shadow's `useradd --prefix` creating a regular user, which allocates a
//!   subordinate range in both files (checked in the result). Target ≤ 0.5 s at 10^6.
//! - P4: peak RSS of the `docker-userns enable` process itself: VmHWM read in its exit stop under
//!   ptrace (wait4's ru_maxrss would include the parent's memory at fork and every child it
//!   ran: useradd, `dockerd --validate`). Target ≤ 16 MB.
//!
//! Options (after `--`): `--no-host` skips the test-host parts, `--host-only` runs only them;
//! `--rounds N` runs of each P1 command (default 200), `--host-rounds N` on the test host
//! (default 30); `--reps N` runs per P3 size (default 5, 3 at 10^6); `--cycles N` P2 restarts of
//! each kind (default 10); `--max-lines N` caps the P3 sizes.
//!
//! Inside the test host this same binary (copied to /root/perf) is the timer: `perf --measure
//! ROUNDS OUT [--trace] CMD... [--- CMD...]` and `perf --engine-latency N`. `PERF_BIN=PATH`
//! measures another build of docker-userns in the files-only parts (P1 `--root`, P3, P4).

#[path = "../tests/common/mod.rs"]
mod common;
mod measure;
#[path = "../tests/testhost/mod.rs"]
mod testhost;

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use measure::{
    Row, helper_measure, load, mb, measure_ok, measured_lines, median, ms, print_machine,
    print_missed, sh,
};

/// The binary measured by the files-only parts: this build's, or `PERF_BIN` (to compare with
/// another build, e.g. of an older commit).
fn bin() -> PathBuf {
    std::env::var_os("PERF_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_docker-userns")),
        PathBuf::from,
    )
}
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/debian12");
const DOWNTIME_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testhost/downtime.py");
const SIZES: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];
const COUNT: u64 = 65_536;

struct Opts {
    host: bool,
    files: bool,
    rounds: usize,
    host_rounds: usize,
    reps: Option<usize>,
    cycles: usize,
    max_lines: usize,
}

fn opts() -> Option<Opts> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs bench binaries without --bench: nothing to do there.
        println!("benches/perf.rs: run it with `cargo bench --bench perf` (see BENCHMARKS.md)");
        return None;
    }
    let mut o = Opts {
        host: true,
        files: true,
        rounds: 200,
        host_rounds: 30,
        reps: None,
        cycles: 10,
        max_lines: 1_000_000,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |what: &str| -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what} needs a number"))
        };
        match a.as_str() {
            "--bench" => {}
            "--no-host" => o.host = false,
            "--host-only" => o.files = false,
            "--rounds" => o.rounds = num("--rounds"),
            "--host-rounds" => o.host_rounds = num("--host-rounds"),
            "--reps" => o.reps = Some(num("--reps")),
            "--cycles" => o.cycles = num("--cycles"),
            "--max-lines" => o.max_lines = num("--max-lines"),
            other => panic!("unknown option {other:?} (see the top of benches/perf.rs)"),
        }
    }
    Some(o)
}

/// A fresh copy of the fixture in `dir/name`.
fn fixture_tree(dir: &Path, name: &str) -> PathBuf {
    let t = dir.join(name);
    if t.exists() {
        fs::remove_dir_all(&t).unwrap();
    }
    common::copy_tree(Path::new(FIXTURE), &t);
    t
}

fn enable(root: &Path) -> Command {
    let mut c = Command::new(bin());
    c.arg("--root").arg(root).args(["-q", "enable"]);
    c
}

fn sync() {
    // Earlier writes are flushed before a timed run, so writeback of the generated files does
    // not land in it.
    rustix::fs::sync();
}

/// RSS runs of each command (traced, apart from the timed runs).
const RSS_RUNS: usize = 3;

/// P1 and P4 under `--root` on the fixture.
fn p1_root(work: &Path, rounds: usize, rows: &mut Vec<Row>, rss: &mut Vec<Row>) {
    let log = work.join("p1.log");
    let t = fixture_tree(work, "p1");
    let first = measure_ok(&mut enable(&t), &log, true);
    let json = Command::new(bin())
        .arg("--root")
        .arg(&t)
        .args(["--json", "enable"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["changed"], false, "not converged: {doc}");
    let files = ["etc/subuid", "etc/subgid", "etc/docker/daemon.json"].map(|f| t.join(f));
    let cat = || {
        let mut c = Command::new("cat");
        c.args(&files);
        c
    };
    // Interleaved, so that both see the same load.
    let (mut tool_ms, mut cat_ms) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        tool_ms.push(ms(measure_ok(&mut enable(&t), &log, false).wall));
        cat_ms.push(ms(measure_ok(&mut cat(), &log, false).wall));
    }
    let (mut tool_rss, mut cat_rss) = (0, 0);
    for _ in 0..RSS_RUNS {
        tool_rss = tool_rss.max(measure_ok(&mut enable(&t), &log, true).rss_kb);
        cat_rss = cat_rss.max(measure_ok(&mut cat(), &log, true).rss_kb);
    }
    let (tool, cat) = (median(tool_ms), median(cat_ms));
    rows.push(Row {
        figure: format!("P1 converged `enable`, `--root` fixture (median of {rounds})"),
        value: format!("{tool:.2} ms"),
        baseline: format!("`cat` of the 3 files {cat:.2} ms"),
        ratio: tool / cat,
        target: "≤ 5 ms".into(),
        met: Some(tool <= 5.0),
    });
    rss.push(Row {
        figure: "P4 peak RSS, converged `enable`, `--root` fixture".into(),
        value: mb(tool_rss),
        baseline: format!("`cat` {}", mb(cat_rss)),
        ratio: tool_rss as f64 / cat_rss as f64,
        target: "≤ 16 MB".into(),
        met: Some(tool_rss <= 16 * 1024),
    });
    rss.push(Row {
        figure: "P4 peak RSS, first `enable` (creates user, ranges, daemon.json), `--root` fixture"
            .into(),
        value: mb(first.rss_kb),
        baseline: format!("`cat` {}", mb(cat_rss)),
        ratio: first.rss_kb as f64 / cat_rss as f64,
        target: "≤ 16 MB".into(),
        met: Some(first.rss_kb <= 16 * 1024),
    });
}

/// Deterministic xorshift.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `n` ranges of other owners (login names and numeric uids, alternately) spread evenly over
/// 100000 .. 500100000 inside login.defs' default bounds (100000 ..= 600100000), each followed
/// by a 7-id gap (too small for anything), in shuffled order. The only free 65536 ids are above
/// them all, so every allocator has to look at every line. Returns the file and the start both
/// allocators must choose.
fn generate(n: usize) -> (Vec<u8>, u64) {
    let stride = 500_000_000 / n as u64;
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for i in (1..n).rev() {
        order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let mut out = Vec::with_capacity(n * 24);
    for i in order {
        let start = 100_000 + i as u64 * stride;
        if i % 2 == 0 {
            let _ = writeln!(Bytes(&mut out), "u{i:07}:{start}:{}", stride - 7);
        } else {
            let _ = writeln!(Bytes(&mut out), "{}:{start}:{}", 10_000 + i, stride - 7);
        }
    }
    (out, 100_000 + n as u64 * stride - 7)
}

/// `write!` into a byte buffer.
struct Bytes<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn append(path: &Path, line: &str) {
    let mut s = fs::read_to_string(path).unwrap();
    s.push_str(line);
    fs::write(path, s).unwrap();
}

/// The tree `enable` allocates in: the fixture with the generated files.
fn p3_tool_tree(work: &Path, subid: &[u8]) -> PathBuf {
    let t = fixture_tree(work, "p3tool");
    // The remap user exists (a system account): the run is allocation + write only.
    append(
        &t.join("etc/passwd"),
        "dockremap:x:999:999::/nonexistent:/usr/sbin/nologin\n",
    );
    append(&t.join("etc/group"), "dockremap:x:999:\n");
    fs::create_dir_all(t.join("etc/docker")).unwrap();
    fs::write(
        t.join("etc/docker/daemon.json"),
        "{\n  \"userns-remap\": \"default\"\n}\n",
    )
    .unwrap();
    fs::write(t.join("etc/subuid"), subid).unwrap();
    fs::write(t.join("etc/subgid"), subid).unwrap();
    t
}

/// The tree `useradd` allocates in: the fixture with the generated files.
fn p3_useradd_tree(work: &Path, subid: &[u8]) -> PathBuf {
    let t = fixture_tree(work, "p3useradd");
    fs::write(t.join("etc/subuid"), subid).unwrap();
    fs::write(t.join("etc/subgid"), subid).unwrap();
    t
}

struct P3 {
    lines: usize,
    tool_s: f64,
    useradd_s: f64,
    tool_rss: u64,
    useradd_rss: u64,
    reps: usize,
}

fn p3(work: &Path, o: &Opts) -> Vec<P3> {
    let log = work.join("p3.log");
    let mut out = Vec::new();
    for &n in SIZES.iter().filter(|n| **n <= o.max_lines) {
        let (subid, want) = generate(n);
        let reps = o.reps.unwrap_or(if n >= 1_000_000 { 3 } else { 5 });
        let (mut tool, mut base) = (Vec::new(), Vec::new());
        let (mut tool_rss, mut base_rss) = (0, 0);
        // The last round is traced, for the peak RSS; the others are timed.
        for round in 0..=reps {
            let traced = round == reps;
            let t = p3_tool_tree(work, &subid);
            sync();
            let s = measure_ok(&mut enable(&t), &log, traced);
            if traced {
                tool_rss = s.rss_kb;
            } else {
                tool.push(s.wall.as_secs_f64());
            }
            let line = format!("dockremap:{want}:{COUNT}\n");
            for f in ["etc/subuid", "etc/subgid"] {
                let got = fs::read(t.join(f)).unwrap();
                assert!(
                    got.starts_with(&subid) && got[subid.len()..] == *line.as_bytes(),
                    "{n} lines: {f} did not get exactly {line:?} appended"
                );
            }

            let u = p3_useradd_tree(work, &subid);
            sync();
            let mut cmd = Command::new("useradd");
            cmd.arg("--prefix").arg(&u).args(["-M", "benchuser"]);
            let s = measure_ok(&mut cmd, &log, traced);
            if traced {
                base_rss = s.rss_kb;
            } else {
                base.push(s.wall.as_secs_f64());
            }
            // useradd allocates subordinate ids for regular users only: check it really did,
            // and picked the same range.
            let line = format!("\nbenchuser:{want}:{COUNT}\n");
            for f in ["etc/subuid", "etc/subgid"] {
                let got = fs::read(u.join(f)).unwrap();
                assert!(
                    got.windows(line.len()).any(|w| w == line.as_bytes()),
                    "{n} lines: useradd did not allocate {line:?} in {f}"
                );
                assert_eq!(got.len(), subid.len() + line.len() - 1);
            }
        }
        let (tool_s, useradd_s) = (median(tool), median(base));
        eprintln!("P3 {n} lines: enable {tool_s:.3} s, useradd {useradd_s:.3} s");
        out.push(P3 {
            lines: n,
            tool_s,
            useradd_s,
            tool_rss,
            useradd_rss: base_rss,
            reps,
        });
    }
    let _ = fs::remove_dir_all(work.join("p3tool"));
    let _ = fs::remove_dir_all(work.join("p3useradd"));
    out
}

/// Median wall time of one Engine API request (HTTP/1.0 over /run/docker.sock), in ms.
fn engine_request_ms(path: &str, n: usize) -> f64 {
    let mut v = Vec::new();
    for _ in 0..n {
        let t0 = Instant::now();
        let mut s = UnixStream::connect("/run/docker.sock").expect("docker.sock");
        write!(s, "GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").unwrap();
        let mut body = Vec::new();
        s.read_to_end(&mut body).unwrap();
        assert!(body.starts_with(b"HTTP/1.0 200") || body.starts_with(b"HTTP/1.1 200"));
        v.push(ms(t0.elapsed()));
    }
    median(v)
}

/// `downtime.py`'s "MS rc=N".
fn downtime(out: &str) -> f64 {
    let mut w = out.split_whitespace();
    let ms: f64 = w.next().and_then(|v| v.parse().ok()).expect("downtime ms");
    assert_eq!(w.next(), Some("rc=0"), "downtime.py: {out}");
    ms
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Median wall time of connecting to the system bus (Hello included), and of one
/// `Properties.Get` round trip to systemd, in ms.
fn dbus_ms(n: usize) -> (f64, f64) {
    let (mut conn, mut get) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let t0 = Instant::now();
        let c = zbus::blocking::Connection::system().expect("system bus");
        conn.push(ms(t0.elapsed()));
        let t0 = Instant::now();
        c.call_method(
            Some("org.freedesktop.systemd1"),
            "/org/freedesktop/systemd1/unit/docker_2eservice",
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &("org.freedesktop.systemd1.Unit", "ActiveState"),
        )
        .expect("Properties.Get");
        get.push(ms(t0.elapsed()));
    }
    (median(conn), median(get))
}

/// P1, P2 and P4 on the nspawn test host. Returns the Engine API's own latency, for context.
fn on_host(o: &Opts, rows: &mut Vec<Row>, rss: &mut Vec<Row>) -> String {
    let host = testhost::Host::boot("bench");
    host.cp_in(DOWNTIME_PY, "/root/downtime.py");
    host.cp_in(std::env::current_exe().unwrap(), "/root/perf");
    // The first enable creates the user and ranges and restarts docker; not measured.
    let first = json(&host.ok("docker-userns --json enable --yes"));
    assert_eq!(first["restarted"], true, "{first}");

    // P1: converged, the full live path (run lock, D-Bus, Engine API), no restart.
    let conv = json(&host.ok("docker-userns --json enable"));
    assert_eq!(conv["changed"], false, "{conv}");
    let n = o.host_rounds;
    let cat = "cat /etc/subuid /etc/subgid /etc/docker/daemon.json";
    host.ok(&format!(
        "/root/perf --measure {n} /root/p1.txt docker-userns enable --- {cat}"
    ));
    host.ok(&format!(
        "/root/perf --measure {RSS_RUNS} /root/p4.txt --trace docker-userns enable --- {cat}"
    ));
    let runs = measured_lines(&host.read_string("/root/p1.txt").unwrap());
    let traced = measured_lines(&host.read_string("/root/p4.txt").unwrap());
    assert!(
        runs.iter().chain(&traced).all(|r| r.3 == 0),
        "a P1 run failed: {runs:?} {traced:?}"
    );
    let wall = |i: usize| median(runs.iter().filter(|r| r.0 == i).map(|r| r.1).collect());
    let peak = |i: usize| {
        traced
            .iter()
            .filter(|r| r.0 == i)
            .map(|r| r.2)
            .max()
            .unwrap()
    };
    let (tool, cat) = (wall(0), wall(1));
    let (conv_rss, cat_rss) = (peak(0), peak(1));
    let still = json(&host.ok("docker-userns --json enable"));
    assert_eq!(still["changed"], false, "{still}");
    let engine = host.ok("/root/perf --engine-latency 30");
    rows.push(Row {
        figure: format!("P1 converged `enable`, test host: D-Bus + Engine API (median of {n})"),
        value: format!("{tool:.2} ms"),
        baseline: format!("`cat` of the 3 files {cat:.2} ms"),
        ratio: tool / cat,
        target: "≤ 5 ms".into(),
        met: Some(tool <= 5.0),
    });

    // P2: enable (remapping off -> on) against a bare restart, measured the same way.
    let (mut en, mut bare, mut en_rss) = (Vec::new(), Vec::new(), 0);
    for _ in 0..o.cycles {
        host.ok("docker-userns -q disable --yes");
        host.ok("rm -f /root/p2.txt");
        let out = host.ok(
            "python3 /root/downtime.py /root/perf --measure 1 /root/p2.txt --trace docker-userns enable --yes",
        );
        let r = measured_lines(&host.read_string("/root/p2.txt").unwrap());
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].3, 0, "enable failed on the test host");
        en_rss = en_rss.max(r[0].2);
        en.push(downtime(&out));
        host.ok("docker info --format '{{.SecurityOptions}}' | grep -q name=userns");
        host.ok("systemctl reset-failed docker.service docker.socket");
        bare.push(downtime(
            &host.ok("python3 /root/downtime.py systemctl restart docker"),
        ));
    }
    eprintln!("P2 downtime ms: enable {en:?}, systemctl restart docker {bare:?}");
    let (e, b) = (median(en.clone()), median(bare.clone()));
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        format!("{lo:.0}–{hi:.0}")
    };
    rows.push(Row {
        figure: format!(
            "P2 docker API downtime of `enable` (median of {}; range {} ms)",
            en.len(),
            range(&en)
        ),
        value: format!("{e:.0} ms"),
        baseline: format!(
            "`systemctl restart docker` {b:.0} ms (range {} ms)",
            range(&bare)
        ),
        ratio: e / b,
        target: "ratio ≤ 1.1".into(),
        met: Some(e / b <= 1.1),
    });
    rss.push(Row {
        figure: "P4 peak RSS, converged `enable`, test host".into(),
        value: mb(conv_rss),
        baseline: format!("`cat` {}", mb(cat_rss)),
        ratio: conv_rss as f64 / cat_rss as f64,
        target: "≤ 16 MB".into(),
        met: Some(conv_rss <= 16 * 1024),
    });
    rss.push(Row {
        figure: "P4 peak RSS, `enable` with restart + health gate, test host".into(),
        value: mb(en_rss),
        baseline: format!("`cat` {}", mb(cat_rss)),
        ratio: en_rss as f64 / cat_rss as f64,
        target: "≤ 16 MB".into(),
        met: Some(en_rss <= 16 * 1024),
    });
    let w: Vec<&str> = engine.split_whitespace().collect();
    format!(
        "Engine API `GET /info` {} ms, `GET /_ping` {} ms; system bus connection {} ms, one \
         `Properties.Get` to systemd {} ms",
        w[0], w[1], w[2], w[3]
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--measure") => return helper_measure(&args[1..]),
        Some("--engine-latency") => {
            let n = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(30);
            let (info, ping) = (
                engine_request_ms("/info", n),
                engine_request_ms("/_ping", n),
            );
            let (conn, get) = dbus_ms(n);
            println!("{info:.2} {ping:.2} {conn:.2} {get:.2}");
            return;
        }
        _ => {}
    }
    let Some(o) = opts() else { return };
    let work_dir = tempfile::tempdir().expect("tempdir");
    let work = work_dir.path();
    let load_before = load();
    let date = sh("date -u '+%Y-%m-%d %H:%M UTC'");
    let mut rows = Vec::new();
    let mut rss = Vec::new();

    if o.files {
        eprintln!("P1 (--root)…");
        p1_root(work, o.rounds, &mut rows, &mut rss);
    }
    let engine = o.host.then(|| {
        eprintln!("P1, P2 on the test host…");
        on_host(&o, &mut rows, &mut rss)
    });
    eprintln!("P3…");
    let p3 = if o.files { p3(work, &o) } else { Vec::new() };
    for r in &p3 {
        let at_top = r.lines == 1_000_000;
        rows.push(Row {
            figure: format!(
                "P3 allocate + write, 10^{} lines (median of {})",
                r.lines.ilog10(),
                r.reps
            ),
            value: format!("{:.3} s", r.tool_s),
            baseline: format!("`useradd --prefix` {:.3} s", r.useradd_s),
            ratio: r.tool_s / r.useradd_s,
            target: if at_top { "≤ 0.5 s" } else { "—" }.into(),
            met: at_top.then_some(r.tool_s <= 0.5),
        });
    }
    for r in &p3 {
        rss.push(Row {
            figure: format!("P4 peak RSS, `enable` at 10^{} lines", r.lines.ilog10()),
            value: mb(r.tool_rss),
            baseline: format!("`useradd --prefix` {}", mb(r.useradd_rss)),
            ratio: r.tool_rss as f64 / r.useradd_rss as f64,
            target: "≤ 16 MB".into(),
            met: Some(r.tool_rss <= 16 * 1024),
        });
    }
    rows.extend(rss);

    print_machine(&date, &load_before);
    print!("{}", Row::print(&rows));
    if let Some(e) = engine {
        println!();
        println!("test host, the pieces alone (median of 30): {e}");
    }
    print_missed(&rows);
}
