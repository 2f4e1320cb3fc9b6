//! Fault injection for tests: named points that fail or stall on demand, in debug builds only.
//!
//! `DOCKER_USERNS_FAILPOINTS=a,b=sleep,c=sleep3` makes [`hit`] fail at point `a`, sleep for
//! five minutes (long enough for a test to kill the process there) at `b`, and 3 s at `c`. Release builds
//! compile the check out, so the shipped binary has no such seam.

/// The environment variable listing the points.
pub(crate) const ENV: &str = "DOCKER_USERNS_FAILPOINTS";

/// Fails or stalls when `name` is listed in [`ENV`] (debug builds only).
pub(crate) fn hit(name: &str) -> anyhow::Result<()> {
    if !cfg!(debug_assertions) {
        return Ok(());
    }
    let Ok(list) = std::env::var(ENV) else {
        return Ok(());
    };
    for item in list.split(',').map(str::trim) {
        match item.split_once('=') {
            Some((n, how)) if n == name && how.starts_with("sleep") => {
                // `sleep` (five minutes) or `sleepN` (N seconds).
                let secs = how["sleep".len()..].parse().unwrap_or(300);
                tracing::warn!("failpoint {name}: sleeping {secs} s");
                std::thread::sleep(std::time::Duration::from_secs(secs));
            }
            None if item == name => anyhow::bail!("injected failure at {name} ({ENV})"),
            _ => {}
        }
    }
    Ok(())
}
