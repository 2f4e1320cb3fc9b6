//! The owner-shift benchmark (issue 13, item 6), as root: `cargo bench --bench shift`.
//!
//! S1: [`shift_tree`] of a generated tree of 10^5 and 10^6 inodes (directories, files,
//! symlinks, hard links, some setuid/setgid files; uids and gids spread over 100000..165536) to
//! another range, against the syscall floor: `chown -R --no-dereference 1000:1000` of an
//! identical tree, generated from the same seed in the same run. Runs alternate (shift forward,
//! chown, shift back, chown to 2000:2000, ...); `sync` and a dentry/inode-cache-warming `count`
//! before each. Prints a Markdown table (median wall time, inodes/s, ratio); target ≤ 1.2x.
//!
//! Options (after `--`): `--sizes N,N` (default 100000,1000000), `--reps N` runs of each per size
//! (default 5, 3 at 10^6), `--dir D` where the trees go (default target/shift-bench, which must
//! not be tmpfs to mean anything).

use std::fs;
use std::ops::ControlFlow;
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use docker_userns::host::root::Root;
use docker_userns::host::shift::{self, IdShift, Mapping, OpenDir};

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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
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
    let base = opt("--dir").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/shift-bench"),
        PathBuf::from,
    );
    assert!(
        rustix::process::geteuid().is_root(),
        "the shift benchmark runs as root (it chowns)"
    );
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(&base).unwrap();
    let fstype = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(&base)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let map = Mapping::new(
        IdShift {
            from: SOURCE,
            to: TARGET,
            count: COUNT,
        },
        IdShift {
            from: SOURCE,
            to: TARGET,
            count: COUNT,
        },
    )
    .unwrap();
    let log = base.join("shift.log");

    let mut rows = Vec::new();
    for &size in &sizes {
        let reps = reps_opt.unwrap_or(if size >= 1_000_000 { 3 } else { 5 });
        let ours = base.join(format!("shift-{size}"));
        let floor = base.join(format!("chown-{size}"));
        let t = Instant::now();
        let made = generate(&ours, size, 42);
        let made_floor = generate(&floor, size, 42);
        assert_eq!(made.inodes, made_floor.inodes);
        eprintln!(
            "{size}: generated 2 trees of {} inodes ({} setid, {} extra hard links) in {:.1} s on {fstype}",
            made.inodes,
            made.setid,
            made.links,
            t.elapsed().as_secs_f64()
        );
        let mut t_shift = Vec::new();
        let mut t_chown = Vec::new();
        for rep in 0..reps {
            let m = if rep % 2 == 0 { map } else { map.reverse() };
            // Same conditions for both: dirty inodes written back, both trees in the caches.
            sync();
            assert_eq!(shift::count(&dir(&ours)).unwrap(), made.inodes);
            assert_eq!(shift::count(&dir(&floor)).unwrap(), made.inodes);
            let t = Instant::now();
            let r = shift::shift_tree(&dir(&ours), &m, &log, &mut |_| ControlFlow::Continue(()))
                .unwrap();
            t_shift.push(t.elapsed());
            assert_eq!((r.inodes, r.shifted), (made.inodes, made.inodes), "{r:?}");
            assert_eq!(r.setid_restored, made.setid);

            sync();
            let owner = if rep % 2 == 0 {
                "1000:1000"
            } else {
                "2000:2000"
            };
            let t = Instant::now();
            let st = Command::new("chown")
                .args(["-R", "--no-dereference", owner])
                .arg(&floor)
                .status()
                .unwrap();
            t_chown.push(t.elapsed());
            assert!(st.success());
            eprintln!(
                "{size} rep {rep}: shift {:.3} s, chown -R {:.3} s",
                t_shift[rep].as_secs_f64(),
                t_chown[rep].as_secs_f64()
            );
        }
        let (s, c) = (median(t_shift), median(t_chown));
        let rate = |d: Duration| made.inodes as f64 / d.as_secs_f64();
        rows.push(format!(
            "| S1 shift of {} inodes (median of {reps}) | {:.3} s, {:.0} inodes/s | `chown -R --no-dereference` {:.3} s, {:.0} inodes/s | {:.2} | ≤ 1.2 | {} |",
            made.inodes,
            s.as_secs_f64(),
            rate(s),
            c.as_secs_f64(),
            rate(c),
            s.as_secs_f64() / c.as_secs_f64(),
            if s.as_secs_f64() <= 1.2 * c.as_secs_f64() { "yes" } else { "**no**" }
        ));
        fs::remove_dir_all(&ours).unwrap();
        fs::remove_dir_all(&floor).unwrap();
    }
    println!("| figure | value | baseline | ratio | target | met? |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}

/// The directory at `p`, opened as the tool opens one (the open is not timed).
fn dir(p: &Path) -> OpenDir {
    Root::new(Path::new("/"))
        .and_then(|r| r.open_dir(p.to_str().expect("a UTF-8 path")))
        .unwrap()
}
