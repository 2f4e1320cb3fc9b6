//! /etc/subuid and /etc/subgid: [`file`] parses and writes the bytes, [`alloc`] chooses the remap
//! user's ranges, [`lint`] finds what is wrong in a file. The common names are re-exported here.

pub mod alloc;
pub mod file;
pub mod lint;

pub use alloc::{AllocError, Decision, How, Outside, Request, Side, decide};
pub use file::{Entry, ID_SPACE, Malformed, SubIdFile, Which, append_line, with_moved};
pub use lint::{Covered, Problem, Reserved, covers_accounts, lint, user_problems};
