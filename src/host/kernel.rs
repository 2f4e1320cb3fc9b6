//! What the kernel says about this process and the host: the effective uid, user-namespace
//! support, and which user a process runs as.

use crate::host::root::Root;

/// True when this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    uzers::get_effective_uid() == 0
}

/// Reads /proc/sys/user/max_user_namespaces on the live host (None under `--root`, or when
/// the file is absent or hidden, as under systemd's `ProcSubset=pid`).
pub fn max_user_namespaces(root: &Root) -> Option<u64> {
    if !root.is_host() {
        return None;
    }
    std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The real uid a process runs as, from /proc/PID/status.
pub fn uid_of_pid(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix("Uid:")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// When a process started (field 22 of /proc/PID/stat, clock ticks since boot): with its pid,
/// it names one process, also after the pid is reused. None: no such process.
pub fn start_time(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or ')'.
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_a_start_time_and_a_dead_pid_none() {
        let me = super::start_time(std::process::id()).expect("own start time");
        assert_eq!(super::start_time(std::process::id()), Some(me));
        assert_eq!(super::start_time(u32::MAX), None);
    }
}
