//! File formats: pure parsers, linters and writers of the host's configuration files. No I/O.

pub(crate) mod accounts;
pub mod daemon_config;
pub(crate) mod id_shift;
pub(crate) mod image_ref;
pub(crate) mod image_tar;
pub mod login_defs;
pub(crate) mod remap_value;
pub mod subid;
pub(crate) mod xattr;
