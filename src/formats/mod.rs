//! File formats: pure parsers, linters and writers of the host's configuration files. No I/O.

pub mod accounts;
pub mod daemon_config;
pub mod id_shift;
pub mod image_ref;
pub mod image_tar;
pub mod login_defs;
pub mod remap_value;
pub mod subid;
pub mod xattr;
