//! SIGINT, SIGTERM and SIGHUP are held back while a change is in flight (files saved, docker
//! being restarted or rolled back), so a dropped ssh session, a Ctrl-C or `systemctl stop`
//! never leaves docker stopped; outside that window they end the process as usual. The window
//! ([`Critical`]) ends once the switch is recorded finished: a `--carry` after it is resumable
//! (the spool and the volumes to carry are recorded), so a signal then ends the run at once.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static CRITICAL: AtomicBool = AtomicBool::new(false);
static DEFERRED: AtomicI32 = AtomicI32::new(0);

fn set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a sigset_t we own.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut s);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut s, sig);
        }
        s
    }
}

/// Blocks the signals in this thread (call first in `main`, before any thread exists, so every
/// thread inherits the mask) and handles them on a thread of their own.
pub fn install() {
    let s = set();
    // SAFETY: s is a valid, initialised signal set.
    if unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &s, std::ptr::null_mut()) } != 0 {
        return;
    }
    std::thread::spawn(move || {
        loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: s is valid; sig receives the signal number.
            if unsafe { libc::sigwait(&s, &mut sig) } != 0 {
                continue;
            }
            if CRITICAL.load(Ordering::SeqCst) {
                DEFERRED.store(sig, Ordering::SeqCst);
                tracing::warn!(
                    "signal {sig} received while docker is being changed: finishing (or rolling back) first"
                );
            } else {
                std::process::exit(128 + sig);
            }
        }
    });
}

/// Holds signals back while alive.
#[derive(Debug)]
pub(crate) struct Critical(());

impl Critical {
    /// Starts holding signals back.
    pub(crate) fn enter() -> Critical {
        CRITICAL.store(true, Ordering::SeqCst);
        Critical(())
    }
}

impl Drop for Critical {
    fn drop(&mut self) {
        CRITICAL.store(false, Ordering::SeqCst);
    }
}

/// The signal that arrived during a critical section, if any.
pub fn deferred() -> Option<i32> {
    match DEFERRED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}
