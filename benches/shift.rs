//! The owner-shift benchmark (issue 13 item 6, issue 22 items 1 and 3), as root:
//! `cargo bench --bench shift`.
//!
//! S1: [`shift_tree_with`] of a generated tree of 10^5 and 10^6 inodes (directories, files,
//! symlinks, hard links, some setuid/setgid files; uids and gids spread over 100000..165536) to
//! another range, with `--jobs 1` and with the default number of workers (the cores), against
//! the syscall floor: `chown -R --no-dereference 1000:1000` of an identical tree, generated from
//! the same seed in the same run. Each size runs on a filesystem of its own, made for the run: a
//! sparse file in `--dir`, `mkfs.ext4` **with** its journal (inode tables and journal written
//! up front, so no lazy init runs beside the figures), loop-mounted, unmounted and deleted at
//! the end; so other work on the machine's root filesystem does not move the figures as much.
//! Every walk and every `chown -R` is a child process (this binary re-run with `--walk`), timed
//! from spawn to exit; a walk reports its own peak RSS (VmHWM: `wait4`'s would count this
//! process's from before the exec). Rounds alternate the direction and the order
//! of the two walk rows; `sync` and a cache-warming `count` before each run. Prints a Markdown
//! table: median (min–max) wall time, inodes/s, ratios; targets: default jobs ≤ 1.0x
//! `chown -R`, peak RSS at the largest size ≤ 1.1x at the smallest.
//!
//! Options (after `--`): `--sizes N,N` (default 100000,1000000), `--reps N` rounds per size
//! (default 5, 2 at 10^6), `--dir D` where the filesystem images go (default
//! target/shift-bench), `--jobs N` for the "default" row (default: the cores), `--rss-only`
//! (one tree per size, one walk, the peak RSS row only); for profiling by hand, `--generate DIR
//! N` makes one tree and `--walk DIR LOG JOBS fwd` shifts it.

use std::fs;
use std::ops::ControlFlow;
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use docker_userns::host::root::Root;
use docker_userns::host::shift::{self, IdShift, Mapping, OpenDir, Options};

mod measure;

const SOURCE: u32 = 100_000;
const TARGET: u32 = 300_000;
const COUNT: u32 = 65_536;

/// A small deterministic generator (xorshift64*), so both trees are identical.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Default, Debug, Clone, Copy)]
struct Made {
    inodes: u64,
    setid: u64,
    links: u64,
}

/// Builds a tree of `inodes` inodes under `top`: one directory per 10 inodes (8 subdirectories
/// each), then files (0.3% setuid or setgid), symlinks (15%, some pointing out of the tree) and,
/// besides, a second name for 5% of the files.
fn generate(top: &Path, inodes: u64, seed: u64) -> Made {
    let mut rng = Rng(seed | 1);
    let mut made = Made::default();
    let id = |rng: &mut Rng| SOURCE + rng.below(u64::from(COUNT)) as u32;
    let ndirs = (inodes / 10).max(1);
    let mut dirs: Vec<PathBuf> = Vec::with_capacity(ndirs as usize);
    fs::create_dir(top).unwrap();
    lchown(top, Some(id(&mut rng)), Some(id(&mut rng))).unwrap();
    dirs.push(top.to_path_buf());
    made.inodes += 1;
    for i in 1..ndirs {
        let parent = &dirs[((i - 1) / 8) as usize];
        let d = parent.join(format!("d{i}"));
        fs::create_dir(&d).unwrap();
        lchown(&d, Some(id(&mut rng)), Some(id(&mut rng))).unwrap();
        dirs.push(d);
        made.inodes += 1;
    }
    let mut files: Vec<PathBuf> = Vec::new();
    let mut n = 0u64;
    while made.inodes < inodes {
        let dir = &dirs[(n % ndirs) as usize];
        n += 1;
        let roll = rng.below(1000);
        if roll < 150 {
            let p = dir.join(format!("l{n}"));
            let target = if roll < 10 {
                "/etc/passwd".to_string()
            } else {
                format!("f{}", n.saturating_sub(1))
            };
            symlink(target, &p).unwrap();
            lchown(&p, Some(id(&mut rng)), Some(id(&mut rng))).unwrap();
        } else {
            let p = dir.join(format!("f{n}"));
            fs::write(&p, b"").unwrap();
            lchown(&p, Some(id(&mut rng)), Some(id(&mut rng))).unwrap();
            if roll >= 997 {
                let mode = if roll == 999 { 0o2755 } else { 0o4755 };
                fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
                made.setid += 1;
            }
            if rng.below(100) < 5 && !files.is_empty() {
                let other = &files[rng.below(files.len() as u64) as usize];
                fs::hard_link(other, dir.join(format!("h{n}"))).unwrap();
                made.links += 1;
            }
            if files.len() < 100_000 {
                files.push(p);
            }
        }
        made.inodes += 1;
    }
    made
}

fn sync() {
    rustix::fs::sync();
}

fn mapping() -> Mapping {
    let s = IdShift {
        from: SOURCE,
        to: TARGET,
        count: COUNT,
    };
    Mapping::new(s, s).unwrap()
}

/// `--walk DIR LOG JOBS fwd|rev`: the child that shifts one tree and prints its report.
fn walk_child(args: &[String]) {
    let (top, log, jobs, dir) = (&args[0], &args[1], &args[2], &args[3]);
    let m = if dir == "fwd" {
        mapping()
    } else {
        mapping().reverse()
    };
    let opts = Options {
        jobs: jobs.parse().expect("jobs"),
        drop_privileged: false,
    };
    let r = shift::shift_tree_with(
        &open(Path::new(top)),
        &m,
        shift::LogAt::Path(Path::new(log)),
        opts,
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    // Its own peak RSS: what `wait4` says includes the parent's, from before the exec.
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM");
    println!("{} {} {}", r.inodes, r.shifted, r.setid_restored);
    println!("{hwm}");
}

/// Wall time from spawn to exit and `wait4`'s peak RSS (kB) of `cmd` (which counts the
/// parent's from before the exec), which must succeed; its stdout.
/// (Reaped with `wait4`, for its rusage.)
#[allow(clippy::zombie_processes)]
fn run(cmd: &mut Command) -> (Duration, u64, String) {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let t = Instant::now();
    let child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let pid = child.id() as libc::pid_t;
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.unwrap(), &mut out).unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child with valid pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = t.elapsed();
    assert_eq!(r, pid);
    assert!(
        std::process::ExitStatus::from_raw(status).success(),
        "{cmd:?} failed"
    );
    (wall, ru.ru_maxrss as u64, out)
}

/// Runs the walk child (`me --walk`) on `top`: its wall time and stdout.
fn walk(me: &Path, top: &Path, log: &Path, jobs: usize, forward: bool) -> (Duration, String) {
    let (wall, _, out) = run(Command::new(me).arg("--walk").args([
        top.to_str().unwrap(),
        log.to_str().unwrap(),
        &jobs.to_string(),
        if forward { "fwd" } else { "rev" },
    ]));
    (wall, out)
}

/// A loop-mounted ext4 (with its journal) in a sparse file, gone when dropped.
struct Scratch {
    image: PathBuf,
    mnt: PathBuf,
}

impl Scratch {
    fn new(base: &Path, inodes: u64) -> Scratch {
        let image = base.join("fs.img");
        let mnt = base.join("mnt");
        let _ = Command::new("umount").arg(&mnt).status();
        let _ = fs::remove_file(&image);
        fs::create_dir_all(&mnt).unwrap();
        // Two trees: an inode (256 bytes) and a tenth of a directory block each, doubled.
        let bytes = (inodes * 2 * 1500).max(256 << 20) + (256 << 20);
        fs::File::create(&image).unwrap().set_len(bytes).unwrap();
        let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
        ok(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-N"])
            .arg((inodes * 5 / 2 + 1000).to_string())
            .args([
                "-E",
                "lazy_itable_init=0,lazy_journal_init=0",
                "-O",
                "has_journal",
            ])
            .arg(&image));
        ok(Command::new("mount")
            .arg("-o")
            .arg("loop")
            .arg(&image)
            .arg(&mnt));
        Scratch { image, mnt }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
        let _ = fs::remove_file(&self.image);
    }
}

fn spread(v: &[Duration]) -> (f64, f64, f64) {
    let mut s: Vec<f64> = v.iter().map(Duration::as_secs_f64).collect();
    s.sort_by(f64::total_cmp);
    (s[0], s[s.len() / 2], s[s.len() - 1])
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--walk") {
        return walk_child(&args[i + 1..]);
    }
    if let Some(i) = args.iter().position(|a| a == "--generate") {
        // For profiling by hand (heaptrack, perf): `--generate DIR N`, then `--walk DIR LOG
        // JOBS fwd`.
        let n = args[i + 2].parse().expect("--generate DIR N");
        let made = generate(Path::new(&args[i + 1]), n, n);
        return println!("{made:?}");
    }
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let sizes: Vec<u64> = opt("--sizes")
        .map(|s| {
            s.split(',')
                .map(|n| n.parse().expect("--sizes N,N"))
                .collect()
        })
        .unwrap_or_else(|| vec![100_000, 1_000_000]);
    let reps_opt: Option<usize> = opt("--reps").map(|s| s.parse().expect("--reps N"));
    let rss_only = args.iter().any(|a| a == "--rss-only");
    let jobs = opt("--jobs").map_or_else(shift::default_jobs, |s| s.parse().expect("--jobs N"));
    let base = opt("--dir").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/shift-bench"),
        PathBuf::from,
    );
    assert!(
        rustix::process::geteuid().is_root(),
        "the shift benchmark runs as root (it chowns and mounts)"
    );
    fs::create_dir_all(&base).unwrap();
    let me = std::env::current_exe().unwrap();
    let load_before = measure::load();
    let date = measure::sh("date -u '+%Y-%m-%d %H:%M UTC'");

    let mut rows = Vec::new();
    let mut rss = Vec::new();
    for &size in &sizes {
        let reps = reps_opt.unwrap_or(if size >= 1_000_000 { 2 } else { 5 });
        let scratch = Scratch::new(&base, size);
        let ours = scratch.mnt.join("shift");
        let floor = scratch.mnt.join("chown");
        let log = scratch.mnt.join("shift.log");
        let t = Instant::now();
        let made = generate(&ours, size, 42);
        if rss_only {
            sync();
            let (_, out) = walk(&me, &ours, &log, jobs, true);
            let kb: u64 = out
                .lines()
                .nth(1)
                .and_then(|l| l.parse().ok())
                .expect("VmHWM");
            eprintln!("{size}: --jobs {jobs} peak RSS {kb} kB");
            rss.push((made.inodes, kb));
            continue;
        }
        let made_floor = generate(&floor, size, 42);
        assert_eq!(made.inodes, made_floor.inodes);
        eprintln!(
            "{size}: generated 2 trees of {} inodes ({} setid, {} extra hard links) in {:.1} s on a loop-mounted ext4 with a journal",
            made.inodes,
            made.setid,
            made.links,
            t.elapsed().as_secs_f64()
        );
        let (mut t_one, mut t_par, mut t_chown) = (Vec::new(), Vec::new(), Vec::new());
        let mut peak = 0;
        let mut forward = true;
        for rep in 0..reps {
            let order: [usize; 2] = if rep % 2 == 0 { [1, jobs] } else { [jobs, 1] };
            for j in order {
                sync();
                assert_eq!(shift::count(&open(&ours)).unwrap(), made.inodes);
                let (wall, out) = walk(&me, &ours, &log, j, forward);
                forward = !forward;
                let n = format!("{} {} {}", made.inodes, made.inodes, made.setid);
                let mut lines = out.lines();
                assert_eq!(
                    lines.next(),
                    Some(n.as_str()),
                    "the walk did not shift every inode"
                );
                let kb: u64 = lines.next().and_then(|l| l.parse().ok()).expect("VmHWM");
                if j == jobs {
                    t_par.push(wall);
                    peak = peak.max(kb);
                }
                if j == 1 {
                    t_one.push(wall);
                }
                eprintln!(
                    "{size} rep {rep}: --jobs {j} {:.3} s, {kb} kB",
                    wall.as_secs_f64()
                );
            }
            sync();
            assert_eq!(shift::count(&open(&floor)).unwrap(), made.inodes);
            let owner = if rep % 2 == 0 {
                "1000:1000"
            } else {
                "2000:2000"
            };
            let (wall, _, _) = run(Command::new("chown")
                .args(["-R", "--no-dereference", owner])
                .arg(&floor));
            t_chown.push(wall);
            eprintln!("{size} rep {rep}: chown -R {:.3} s", wall.as_secs_f64());
        }
        drop(scratch);
        let c = spread(&t_chown);
        let rate = |s: f64| made.inodes as f64 / s;
        let fmt = |(lo, med, hi): (f64, f64, f64)| {
            format!("{med:.3} s ({lo:.3}–{hi:.3}), {:.0} inodes/s", rate(med))
        };
        let floor_txt = format!("`chown -R --no-dereference` {}", fmt(c));
        for (label, t, target) in [
            ("--jobs 1".to_string(), &t_one, None),
            (format!("--jobs {jobs} (default)"), &t_par, Some(1.0)),
        ] {
            let sp = spread(t);
            let ratio = sp.1 / c.1;
            rows.push(measure::Row {
                figure: format!(
                    "S1 shift {label} of {} inodes (median (min–max) of {reps})",
                    made.inodes
                ),
                value: fmt(sp),
                baseline: floor_txt.clone(),
                ratio,
                target: target.map_or("—".into(), |t| format!("≤ {t:.1}")),
                met: target.map(|t| ratio <= t),
            });
        }
        rss.push((made.inodes, peak));
    }
    if let (Some(&(n0, r0)), Some(&(n1, r1))) = (rss.first(), rss.last())
        && n1 > n0
    {
        let ratio = r1 as f64 / r0 as f64;
        rows.push(measure::Row {
            figure: format!("S1 peak RSS of the walk (--jobs {jobs}) at {n1} inodes"),
            value: measure::mb(r1),
            baseline: format!("{} at {n0} inodes", measure::mb(r0)),
            ratio,
            target: "≤ 1.1".into(),
            met: Some(ratio <= 1.1),
        });
    }
    print!("{}", measure::Row::print(&rows));
    measure::print_machine(&date, &load_before);
    measure::print_missed(&rows);
}

/// The directory at `p`, opened as the tool opens one (the open is not timed).
fn open(p: &Path) -> OpenDir {
    Root::new(Path::new("/"))
        .and_then(|r| r.open_dir(p.to_str().expect("a UTF-8 path")))
        .unwrap()
}
