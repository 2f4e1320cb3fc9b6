//! The run: `preflight → plan → apply → restart → verify | rollback`, with the journal that
//! records every step before it happens and owns undo and crash recovery.
//!
//! [`converge`] drives a changing run: [`preflight`] reads every input, [`plan`] decides (pure),
//! [`apply`] writes through the [`journal`], [`restart`] restarts docker and health-gates it;
//! on any failure, or after a crash, the journal's undo puts the host back. [`carry`] takes the
//! images across the switch (`--carry images`). What a run has to say beside its result is a
//! typed [`note::Note`], worded by `report.rs`.

pub(crate) mod apply;
pub(crate) mod carry;
pub(crate) mod converge;
pub(crate) mod engine_checks;
pub(crate) mod journal;
pub(crate) mod note;
pub(crate) mod outcome;
pub(crate) mod plan;
pub(crate) mod plan_refusals;
pub(crate) mod preflight;
pub(crate) mod range_refusal;
pub(crate) mod repair;
pub mod restart;
pub mod signals;
