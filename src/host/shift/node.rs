//! One inode of the walk and the syscalls made on it: through its own fd or by name in its
//! parent, never following a symlink (xattrs, chown, chmod).

use std::ffi::CStr;
use std::io::Write as _;
use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::fs::{self as rfs, AtFlags, Gid, Mode, Uid};
use rustix::io::Errno;

/// An inode being worked on: through its own fd (directories, opened to be walked) or by name
/// in its parent, with `/proc/self/fd/PARENT/NAME` for the xattr calls but the listing
/// (l*xattr: the name is not followed; f*xattr does not work on `O_PATH` fds). That path is
/// made only when one is called: most inodes have no xattr, so only their listing.
#[derive(Clone, Copy)]
pub(super) enum Node<'a> {
    Fd(BorrowedFd<'a>),
    At {
        parent: BorrowedFd<'a>,
        name: &'a CStr,
    },
}

impl Node<'_> {
    pub(super) fn list(self, buf: &mut [u8]) -> rustix::io::Result<usize> {
        match self {
            Node::Fd(fd) => rfs::flistxattr(fd, buf),
            Node::At { parent, name } => match listxattrat(parent, name, buf) {
                Err(Errno::NOSYS) => with_proc_path(parent, name, |p| rfs::llistxattr(p, buf)),
                r => r,
            },
        }
    }

    pub(super) fn get(self, name: &CStr, buf: &mut [u8]) -> rustix::io::Result<usize> {
        match self {
            Node::Fd(fd) => rfs::fgetxattr(fd, name, buf),
            Node::At { parent, name: n } => {
                with_proc_path(parent, n, |p| rfs::lgetxattr(p, name, buf))
            }
        }
    }

    pub(super) fn set(self, name: &CStr, value: &[u8]) -> rustix::io::Result<()> {
        match self {
            Node::Fd(fd) => rfs::fsetxattr(fd, name, value, rfs::XattrFlags::empty()),
            Node::At { parent, name: n } => with_proc_path(parent, n, |p| {
                rfs::lsetxattr(p, name, value, rfs::XattrFlags::empty())
            }),
        }
    }

    pub(super) fn remove(self, name: &CStr) -> rustix::io::Result<()> {
        match self {
            Node::Fd(fd) => rfs::fremovexattr(fd, name),
            Node::At { parent, name: n } => {
                with_proc_path(parent, n, |p| rfs::lremovexattr(p, name))
            }
        }
    }

    pub(super) fn chown(self, uid: Option<u32>, gid: Option<u32>) -> rustix::io::Result<()> {
        // The mapping keeps every id below 4294967295 (see IdShift::check).
        let uid = uid.map(Uid::from_raw_unchecked);
        let gid = gid.map(Gid::from_raw_unchecked);
        match self {
            Node::Fd(fd) => rfs::fchown(fd, uid, gid),
            Node::At { parent, name, .. } => {
                rfs::chownat(parent, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
            }
        }
    }

    pub(super) fn chmod(self, mode: u32) -> rustix::io::Result<()> {
        let mode = Mode::from_raw_mode(mode);
        match self {
            Node::Fd(fd) => rfs::fchmod(fd, mode),
            // Only called on what statx said is not a symlink.
            Node::At { parent, name, .. } => rfs::chmodat(parent, name, mode, AtFlags::empty()),
        }
    }
}

/// `listxattrat(2)` (Linux 6.13) with `AT_SYMLINK_NOFOLLOW`: the names of `name`'s xattrs, looked
/// up in `parent` alone, where `llistxattr` on `/proc/self/fd/PARENT/NAME` walks /proc first (it
/// is most of the walk's cost above `chown -R`'s, see BENCHMARKS.md). `NOSYS` on older kernels
/// (remembered, so only the first call pays for it).
pub(super) fn listxattrat(
    parent: BorrowedFd<'_>,
    name: &CStr,
    buf: &mut [u8],
) -> rustix::io::Result<usize> {
    use std::sync::atomic::{AtomicBool, Ordering};
    // The same number on every architecture Rust targets since the tables were unified (424).
    const SYS_LISTXATTRAT: libc::c_long = 465;
    static MISSING: AtomicBool = AtomicBool::new(false);
    #[cfg(test)]
    if FORCE_PROC_PATH.get() {
        return Err(Errno::NOSYS);
    }
    if MISSING.load(Ordering::Relaxed) {
        return Err(Errno::NOSYS);
    }
    // SAFETY: the fd and the NUL-terminated name are valid for the call, and the kernel writes
    // at most `buf.len()` bytes into `buf`.
    let n = unsafe {
        libc::syscall(
            SYS_LISTXATTRAT,
            parent.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW as libc::c_uint,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    match usize::try_from(n) {
        Ok(n) => Ok(n),
        Err(_) => {
            let e = Errno::from_raw_os_error(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            );
            if e == Errno::NOSYS {
                MISSING.store(true, Ordering::Relaxed);
            }
            Err(e)
        }
    }
}

/// Calls `f` with `/proc/self/fd/PARENT/NAME` (made on the stack: a name has at most 255
/// bytes).
fn with_proc_path<R>(
    parent: BorrowedFd<'_>,
    name: &CStr,
    f: impl FnOnce(&CStr) -> rustix::io::Result<R>,
) -> rustix::io::Result<R> {
    let mut buf = [0u8; 320];
    let mut w = &mut buf[..];
    let _ = write!(w, "/proc/self/fd/{}/", parent.as_raw_fd());
    let prefix = 320 - w.len();
    let name = name.to_bytes_with_nul();
    let end = prefix + name.len();
    if end > buf.len() {
        return Err(Errno::NAMETOOLONG);
    }
    buf[prefix..end].copy_from_slice(name);
    f(CStr::from_bytes_with_nul(&buf[..end]).map_err(|_| Errno::INVAL)?)
}

#[cfg(test)]
thread_local! {
    /// Test switch: list xattrs through /proc, as on kernels before 6.13.
    pub(super) static FORCE_PROC_PATH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}
