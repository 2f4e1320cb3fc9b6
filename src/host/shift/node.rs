//! One inode of the walk and the syscalls made on it: through its own fd or by name in its
//! parent, never following a symlink (xattrs, chown, chmod).

use std::ffi::CStr;
use std::io::Write as _;
use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::fs::{self as rfs, AtFlags, Gid, Mode, Uid};
use rustix::io::Errno;

/// An inode being worked on: through its own fd (directories, opened to be walked) or by name
/// in its parent, with `/proc/self/fd/PARENT/NAME` for the xattr calls (l*xattr: the name is not
/// followed; f*xattr does not work on `O_PATH` fds).
#[derive(Clone, Copy)]
pub(super) enum Node<'a> {
    Fd(BorrowedFd<'a>),
    At {
        parent: BorrowedFd<'a>,
        name: &'a CStr,
        proc: &'a CStr,
    },
}

impl Node<'_> {
    pub(super) fn list(self, buf: &mut [u8]) -> rustix::io::Result<usize> {
        match self {
            Node::Fd(fd) => rfs::flistxattr(fd, buf),
            Node::At { parent, name, proc } => match listxattrat(parent, name, buf) {
                Err(Errno::NOSYS) => rfs::llistxattr(proc, buf),
                r => r,
            },
        }
    }

    pub(super) fn get(self, name: &CStr, buf: &mut [u8]) -> rustix::io::Result<usize> {
        match self {
            Node::Fd(fd) => rfs::fgetxattr(fd, name, buf),
            Node::At { proc, .. } => rfs::lgetxattr(proc, name, buf),
        }
    }

    pub(super) fn set(self, name: &CStr, value: &[u8]) -> rustix::io::Result<()> {
        match self {
            Node::Fd(fd) => rfs::fsetxattr(fd, name, value, rfs::XattrFlags::empty()),
            Node::At { proc, .. } => rfs::lsetxattr(proc, name, value, rfs::XattrFlags::empty()),
        }
    }

    pub(super) fn remove(self, name: &CStr) -> rustix::io::Result<()> {
        match self {
            Node::Fd(fd) => rfs::fremovexattr(fd, name),
            Node::At { proc, .. } => rfs::lremovexattr(proc, name),
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

/// Writes `/proc/self/fd/PARENT/NAME\0` into `buf`.
pub(super) fn proc_path<'b>(buf: &'b mut Vec<u8>, parent: BorrowedFd<'_>, name: &CStr) -> &'b CStr {
    buf.clear();
    let _ = write!(buf, "/proc/self/fd/{}/", parent.as_raw_fd());
    buf.extend_from_slice(name.to_bytes_with_nul());
    CStr::from_bytes_with_nul(buf).expect("one NUL, at the end")
}

#[cfg(test)]
thread_local! {
    /// Test switch: list xattrs through /proc, as on kernels before 6.13.
    pub(super) static FORCE_PROC_PATH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}
