//! /etc/subuid and /etc/subgid: `file` parses and writes the bytes, `alloc` chooses the remap
//! user's ranges, `lint` finds what is wrong in a file; their public items are re-exported here.

mod alloc;
mod file;
mod lint;

pub use alloc::{AllocError, Decision, How, Outside, Request, Side, decide};
pub use file::{Entry, Malformed, SubIdFile, Which, append_line, with_moved};
#[cfg(test)]
pub(crate) use lint::Covered;
pub use lint::{Problem, lint};
pub(crate) use lint::{Reserved, covers_accounts, user_problems};
