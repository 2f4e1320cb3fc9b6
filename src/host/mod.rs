//! Host access: the root-relative file layer and the services a run talks to (accounts,
//! the helper programs it runs, shadow's lock, docker's unit files, systemd over D-Bus and docker.service's journal, the Docker Engine API, the kernel),
//! and the walk that shifts the owners of a tree from one id range to another.

pub(crate) mod account;
pub mod docker_unit;
pub mod engine;
pub(crate) mod inspect;
pub(crate) mod kernel;
pub(crate) mod programs;
pub mod root;
pub mod setup;
pub(crate) mod shadow_lock;
pub mod shift;
pub(crate) mod systemd;
pub mod unit_log;
