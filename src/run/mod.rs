//! The run: `preflight → plan → apply → restart → verify | rollback`, with the journal that
//! records every step before it happens and owns undo and crash recovery.
//!
//! [`converge`] drives a changing run: [`preflight`] reads every input, [`plan`] decides (pure),
//! [`apply`] writes through the [`journal`], [`restart`] restarts docker and health-gates it;
//! on any failure, or after a crash, the journal's undo puts the host back. [`carry`] takes the
//! images across the switch (`--carry images`). What a run has to say beside its result is a
//! typed [`note::Note`], worded by `report.rs`.

pub mod apply;
pub mod carry;
pub mod converge;
pub mod engine_checks;
pub mod journal;
pub mod note;
pub mod outcome;
pub mod plan;
pub mod preflight;
pub mod range_refusal;
pub mod repair;
pub mod restart;
pub mod signals;
