//! Measuring commands for the benches (`perf`, `carry`): wall time, peak RSS of the process
//! itself (VmHWM under ptrace), medians, the Markdown table of results, and the `--measure`
//! helper the benches run inside a test host.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One finished process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    pub rss_kb: u64,
    pub code: i32,
}

/// Points stdin at /dev/null and stdout and stderr at `log`.
pub fn redirect(cmd: &mut Command, log: &Path) {
    let out = fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
}

pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

/// Runs `cmd` (stdin /dev/null, stdout and stderr to `log`): wall time from spawn to exit.
pub fn measure(cmd: &mut Command, log: &Path) -> Sample {
    redirect(cmd, log);
    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let status = child.wait().expect("wait");
    Sample {
        wall: t0.elapsed(),
        rss_kb: 0,
        code: status.code().unwrap_or(128),
    }
}

pub fn ptrace(req: libc::c_uint, pid: libc::pid_t, data: usize) -> libc::c_long {
    // SAFETY: only requests that take an integer `data` and no address are used here.
    unsafe { libc::ptrace(req, pid, std::ptr::null_mut::<libc::c_void>(), data) }
}

/// VmHWM (peak resident set of the process's current memory image) in kB.
pub fn vm_hwm(pid: libc::pid_t) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Like [`measure`], under ptrace: `rss_kb` is the command's own peak RSS, read from
/// /proc/PID/status when it stops on its way out (PTRACE_O_TRACEEXIT). Its memory image is new
/// at exec, so neither this process's memory nor the commands it runs itself are counted.
pub fn measure_traced(cmd: &mut Command, log: &Path) -> Sample {
    redirect(cmd, log);
    // SAFETY: ptrace(PTRACE_TRACEME) is async-signal-safe; the child then stops at its exec.
    unsafe {
        cmd.pre_exec(|| {
            if ptrace(libc::PTRACE_TRACEME, 0, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let t0 = Instant::now();
    // Reaped below with waitpid, which ptrace needs (Child::wait would not see the stops).
    #[allow(clippy::zombie_processes)]
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    assert!(libc::WIFSTOPPED(status), "{cmd:?} did not stop at exec");
    let opts = libc::PTRACE_O_TRACEEXIT | libc::PTRACE_O_EXITKILL;
    assert_eq!(ptrace(libc::PTRACE_SETOPTIONS, pid, opts as usize), 0);
    ptrace(libc::PTRACE_CONT, pid, 0);
    let mut rss_kb = 0;
    let code = loop {
        // SAFETY: as above.
        if unsafe { libc::waitpid(pid, &mut status, libc::__WALL) } != pid {
            panic!("waitpid: {}", std::io::Error::last_os_error());
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            break exit_code(status);
        }
        let sig = libc::WSTOPSIG(status);
        let inject = if status >> 16 == libc::PTRACE_EVENT_EXIT {
            rss_kb = vm_hwm(pid);
            0
        } else if sig == libc::SIGTRAP {
            0
        } else {
            sig // a signal for the command (SIGCHLD...): deliver it
        };
        ptrace(libc::PTRACE_CONT, pid, inject as usize);
    };
    Sample {
        wall: t0.elapsed(),
        rss_kb,
        code,
    }
}

/// Like [`measure`] or [`measure_traced`], and panics with the output unless the command exited 0.
pub fn measure_ok(cmd: &mut Command, log: &Path, traced: bool) -> Sample {
    let s = if traced {
        measure_traced(cmd, log)
    } else {
        measure(cmd, log)
    };
    if s.code != 0 {
        panic!(
            "{cmd:?} exited {}:\n{}",
            s.code,
            fs::read_to_string(log).unwrap_or_default()
        );
    }
    s
}

pub fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty());
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn load() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// One row of the summary table.
pub struct Row {
    pub figure: String,
    pub value: String,
    pub baseline: String,
    pub ratio: f64,
    pub target: String,
    pub met: Option<bool>,
}

impl Row {
    pub fn print(rows: &[Row]) -> String {
        let mut s = String::from(
            "| figure | value | baseline | ratio | target | met? |\n|---|---|---|---|---|---|\n",
        );
        for r in rows {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2} | {} | {met} |",
                r.figure, r.value, r.baseline, r.ratio, r.target
            );
        }
        s
    }
}

pub fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

/// The `--measure` helper's output: (index, wall ms, peak RSS kB, exit code) per run.
pub fn measured_lines(text: &str) -> Vec<(usize, f64, u64, i32)> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect()
}

/// `perf --measure ROUNDS OUT [--trace] CMD... [--- CMD...]` (inside the test host): runs the
/// commands in turn, ROUNDS times, and appends "INDEX WALL_MS RSS_KB EXIT_CODE" per run to OUT
/// (RSS 0 unless traced). The output of the last command run is left in OUT.log.
pub fn helper_measure(args: &[String]) {
    let rounds: usize = args[0].parse().expect("rounds");
    let out = &args[1];
    let (traced, rest) = match args.get(2).map(String::as_str) {
        Some("--trace") => (true, &args[3..]),
        _ => (false, &args[2..]),
    };
    let cmds: Vec<&[String]> = rest.split(|a| a == "---").collect();
    let log = format!("{out}.log");
    let log = Path::new(&log);
    let mut text = String::new();
    for _ in 0..rounds {
        for (i, c) in cmds.iter().enumerate() {
            let mut cmd = Command::new(&c[0]);
            cmd.args(&c[1..]);
            let s = if traced {
                measure_traced(&mut cmd, log)
            } else {
                measure(&mut cmd, log)
            };
            let _ = writeln!(text, "{i} {:.3} {} {}", ms(s.wall), s.rss_kb, s.code);
        }
    }
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("cannot write the results");
}

pub fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Prints the line that says where and when a run was measured.
pub fn print_machine(date: &str, load_before: &str) {
    let cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2");
    let mem = sh("grep MemTotal /proc/meminfo | awk '{printf \"%.1f GB\", $2/1048576}'");
    println!();
    println!(
        "{date}; {} ({} cores, {mem}); kernel {}; load average before {load_before}, after {}",
        cpu.trim(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        sh("uname -r"),
        load()
    );
    println!();
}

/// Prints which targets the rows missed, or that every one was met.
pub fn print_missed(rows: &[Row]) {
    let missed: Vec<&str> = rows
        .iter()
        .filter(|r| r.met == Some(false))
        .map(|r| r.figure.as_str())
        .collect();
    println!();
    if missed.is_empty() {
        println!("every target met");
    } else {
        println!("targets missed: {}", missed.join("; "));
    }
}
