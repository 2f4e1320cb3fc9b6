//! What the kernel says about this process and the host: the effective uid, user-namespace
//! support, and which user a process runs as.

use crate::host::root::Root;

/// True when this process runs as root (effective uid 0).
pub(crate) fn is_root() -> bool {
    uzers::get_effective_uid() == 0
}

/// Reads /proc/sys/user/max_user_namespaces on the live host (None under `--root`, or when
/// the file is absent or hidden, as under systemd's `ProcSubset=pid`).
pub(crate) fn max_user_namespaces(root: &Root) -> Option<u64> {
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
pub(crate) fn uid_of_pid(pid: u32) -> Option<u32> {
    status_uid(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// The real uid in the text of a /proc/PID/status file (its `Uid:` line).
pub(crate) fn status_uid(status: &str) -> Option<u32> {
    status.lines().find_map(|l| {
        l.strip_prefix("Uid:")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// A /proc/PID/stat line split after its command name (field 2, in parentheses, which may
/// hold spaces or ')'): the name, and the fields from 3 on.
pub(crate) fn stat_split(stat: &str) -> Option<(&str, &str)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    Some((stat.get(open + 1..close)?, stat.get(close + 1..)?))
}

/// When a process started (field 22 of /proc/PID/stat, clock ticks since boot): with its pid,
/// it names one process, also after the pid is reused. None: no such process.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat_split(&text)?;
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
