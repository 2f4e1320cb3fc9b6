//! Progress of the long operations (the owner-shift walk of `shift` and `--repair`,
//! `--carry`'s image export and load, and each carried volume's copy and shift), drawn on standard error with `indicatif`: a bar with the
//! count, the rate and the time left.
//!
//! A [`Progress`] is made once, at the top (`dispatch`), from `--json` and whether standard
//! error is a terminal, and handed down. It draws nothing with `--json` or when standard error
//! is not a terminal (a pipe, a log, a systemd unit), and never anything on standard output.
//! It is a plain `Copy` value so that it rides along in the run's policy; the layers below
//! `run/` never see it (the shift walk reports a count to a closure made at the call site).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether (and so how) long operations show their progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Progress {
    shown: bool,
}

/// What a bar counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Inodes,
    Bytes,
}

impl Progress {
    /// For a command run with `json` (`--json`): shown only without it and when standard error
    /// is a terminal.
    pub(crate) fn for_output(json: bool) -> Progress {
        Progress::decide(json, std::io::stderr().is_terminal())
    }

    /// Shown only when not `json` and `stderr_is_tty`.
    pub(crate) fn decide(json: bool, stderr_is_tty: bool) -> Progress {
        Progress {
            shown: !json && stderr_is_tty,
        }
    }

    /// Shows nothing (tests, library callers).
    pub(crate) fn hidden() -> Progress {
        Progress { shown: false }
    }

    /// Whether anything is drawn.
    #[cfg(test)]
    pub(crate) fn is_shown(self) -> bool {
        self.shown
    }

    /// A bar counting inodes, `what` in front (`shifting owners below /var/lib/docker`).
    pub(crate) fn inodes(self, what: &str, total: u64) -> Bar {
        self.bar(what, total, Unit::Inodes, ProgressDrawTarget::stderr())
    }

    /// A bar counting bytes, `what` in front (`exporting images`).
    pub(crate) fn bytes(self, what: &str, total: u64) -> Bar {
        self.bar(what, total, Unit::Bytes, ProgressDrawTarget::stderr())
    }

    fn bar(self, what: &str, total: u64, unit: Unit, target: ProgressDrawTarget) -> Bar {
        if !self.shown {
            return Bar(ProgressBar::hidden());
        }
        let template = match unit {
            Unit::Inodes => "{msg}: [{bar:30}] {human_pos}/{human_len} inodes, {rate}, {eta} left",
            Unit::Bytes => "{msg}: [{bar:30}] {bytes}/{total_bytes}, {bytes_per_sec}, {eta} left",
        };
        let style = ProgressStyle::with_template(template)
            .expect("a valid template")
            // Inodes a second as a whole number (`{per_sec}` shows four decimals).
            .with_key(
                "rate",
                |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0}/s", s.per_sec());
                },
            )
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(total), target)
            .with_style(style)
            .with_message(what.to_string());
        Bar(bar)
    }
}

/// One operation's bar; hidden when its [`Progress`] is. Left on screen, finished, when dropped.
#[derive(Debug)]
pub(crate) struct Bar(ProgressBar);

impl Bar {
    /// `done` of the total so far. A total passed (a walk that finds more than it counted
    /// first) grows the total.
    pub(crate) fn set(&self, done: u64) {
        if self.0.length().is_some_and(|len| done > len) {
            self.0.set_length(done);
        }
        self.0.set_position(done);
    }

    /// Whether this bar draws nothing.
    #[cfg(test)]
    pub(crate) fn is_hidden(&self) -> bool {
        self.0.is_hidden()
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if !self.0.is_finished() {
            self.0.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use indicatif::TermLike;

    use super::*;

    /// A terminal that records what is written to it.
    #[derive(Debug, Default, Clone)]
    struct Recorder(Arc<Mutex<String>>);

    impl TermLike for Recorder {
        fn width(&self) -> u16 {
            120
        }
        fn move_cursor_up(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            self.0.lock().unwrap().push('\n');
            Ok(())
        }
        fn write_str(&self, s: &str) -> io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    fn drawn(p: Progress, unit: Unit) -> String {
        let rec = Recorder::default();
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(rec.clone()), 1);
        let bar = p.bar("shifting owners below /x", 1000, unit, target);
        bar.set(10);
        bar.set(500);
        drop(bar);
        rec.0.lock().unwrap().clone()
    }

    #[test]
    fn json_or_no_terminal_draws_nothing() {
        for (json, tty) in [(true, true), (true, false), (false, false)] {
            let p = Progress::decide(json, tty);
            assert!(!p.is_shown(), "json {json} tty {tty}");
            assert!(p.inodes("x", 10).is_hidden());
            assert!(p.bytes("x", 10).is_hidden());
            assert_eq!(drawn(p, Unit::Inodes), "", "json {json} tty {tty}");
            assert_eq!(drawn(p, Unit::Bytes), "", "json {json} tty {tty}");
        }
        assert_eq!(drawn(Progress::hidden(), Unit::Inodes), "");
    }

    #[test]
    fn a_terminal_without_json_gets_the_count_the_rate_and_the_time_left() {
        let p = Progress::decide(false, true);
        assert!(p.is_shown());
        let text = drawn(p, Unit::Inodes);
        assert!(text.contains("shifting owners below /x"), "{text}");
        assert!(text.contains("500/1,000 inodes"), "{text}");
        let rate = text
            .split("inodes, ")
            .nth(1)
            .and_then(|r| r.split("/s").next());
        assert!(
            rate.is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit())),
            "a whole number of inodes a second: {text}"
        );
        assert!(text.contains("left"), "{text}");
        let text = drawn(p, Unit::Bytes);
        assert!(text.contains("500 B/1000 B"), "{text}");
    }

    #[test]
    fn a_walk_that_finds_more_than_it_counted_grows_the_total() {
        let rec = Recorder::default();
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(rec.clone()), 1);
        let bar = Progress::decide(false, true).bar("w", 10, Unit::Inodes, target);
        bar.set(15);
        assert_eq!(bar.0.length(), Some(15));
    }
}
