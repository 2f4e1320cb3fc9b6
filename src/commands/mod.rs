//! The commands that are not a change: `status`, `verify` and `check`. Each reads the host
//! through the layers below and returns a value for the output layer; none calls another.

pub(crate) mod check;
pub mod prometheus;
pub(crate) mod shift;
pub mod status;
pub(crate) mod verify;
