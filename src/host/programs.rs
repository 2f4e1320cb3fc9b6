//! The helper programs a run executes (`useradd`, `dockerd`, `journalctl`), found by absolute
//! path on a fixed system PATH, never through the caller's `PATH`: a root run must not execute
//! whatever `PATH=/tmp/evil:$PATH` puts first.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The directories searched, in order: sudo's `secure_path` on Debian.
pub(crate) const SECURE_PATH: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// A helper program that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProgramError {
    /// No executable file of that name in any [`SECURE_PATH`] directory.
    #[error(
        "{name} not found: looked for an executable file in {} (the caller's PATH is not used)",
        SECURE_PATH.join(":")
    )]
    NotFound {
        /// The program name.
        name: String,
    },
    /// An absolute path was given that is not an executable file.
    #[error("{} is not an executable file", path.display())]
    NotExecutable {
        /// The path.
        path: PathBuf,
    },
    /// A relative path with a `/` (e.g. `./dockerd`): its meaning depends on the working
    /// directory, so it is not run.
    #[error("{name:?} is a relative path; give the program by name or by absolute path")]
    Relative {
        /// The program as given.
        name: String,
    },
}

fn is_executable_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Resolves `name` to an absolute path: a name without `/` is looked up in [`SECURE_PATH`]
/// (first executable file wins), an absolute path must be an executable file, anything else
/// is an error. The environment's `PATH` plays no part.
pub(crate) fn find(name: &str) -> Result<PathBuf, ProgramError> {
    find_in(name, SECURE_PATH)
}

/// [`find`] over the given directories (for tests).
pub(crate) fn find_in(name: &str, dirs: &[&str]) -> Result<PathBuf, ProgramError> {
    if name.starts_with('/') {
        let p = PathBuf::from(name);
        return if is_executable_file(&p) {
            Ok(p)
        } else {
            Err(ProgramError::NotExecutable { path: p })
        };
    }
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(ProgramError::Relative { name: name.into() });
    }
    dirs.iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| is_executable_file(p))
        .ok_or_else(|| ProgramError::NotFound { name: name.into() })
}

/// A [`std::process::Command`] for `name` resolved with [`find`].
pub(crate) fn command(name: &str) -> Result<std::process::Command, ProgramError> {
    find(name).map(std::process::Command::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_path_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("useradd");
        std::fs::write(&fake, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let found = find_in("useradd", &["/nonexistent", dir.path().to_str().unwrap()]).unwrap();
        assert_eq!(found, fake);
        let sh = find("sh").unwrap();
        assert!(
            sh.is_absolute() && SECURE_PATH.iter().any(|d| sh.starts_with(d)),
            "{sh:?}"
        );
    }

    #[test]
    fn first_directory_wins_and_non_executables_are_skipped() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(a.path().join("tool"), "").unwrap(); // mode 0644: not executable
        std::fs::write(b.path().join("tool"), "").unwrap();
        std::fs::set_permissions(
            b.path().join("tool"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        let dirs = [a.path().to_str().unwrap(), b.path().to_str().unwrap()];
        assert_eq!(find_in("tool", &dirs).unwrap(), b.path().join("tool"));
        std::fs::create_dir(a.path().join("dir")).unwrap();
        assert!(matches!(
            find_in("dir", &dirs[..1]),
            Err(ProgramError::NotFound { .. })
        ));
    }

    #[test]
    fn missing_relative_and_absolute_paths_are_clear_errors() {
        let e = find("docker-userns-no-such-program").unwrap_err();
        assert!(
            e.to_string().contains("/usr/sbin:/usr/bin")
                && e.to_string().contains("docker-userns-no-such-program"),
            "{e}"
        );
        for rel in ["./dockerd", "bin/dockerd", "", ".."] {
            assert!(
                matches!(find(rel), Err(ProgramError::Relative { .. })),
                "{rel}"
            );
        }
        assert!(matches!(
            find("/nonexistent/dockerd"),
            Err(ProgramError::NotExecutable { .. })
        ));
        assert_eq!(find("/bin/sh").unwrap(), PathBuf::from("/bin/sh"));
    }
}
