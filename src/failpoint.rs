//! Fault injection for tests: named points that fail on demand, in debug builds only.
//!
//! `DOCKER_USERNS_FAILPOINTS=a,b` makes [`hit`] fail at points `a` and `b`. Release builds
//! compile the check out, so the shipped binary has no such seam.

/// The environment variable listing the points to fail.
pub const ENV: &str = "DOCKER_USERNS_FAILPOINTS";

/// Fails when `name` is listed in [`ENV`] (debug builds only).
pub fn hit(name: &str) -> anyhow::Result<()> {
    if cfg!(debug_assertions)
        && let Ok(list) = std::env::var(ENV)
        && list.split(',').any(|n| n.trim() == name)
    {
        anyhow::bail!("injected failure at {name} ({ENV})");
    }
    Ok(())
}
