//! Judging measured steps: pure functions from records and a scenario to verdicts and the
//! numbers a run reports. Below both `sweep` (which calls it live, after every step) and
//! `report` (which draws what it computed), so the two can never judge a step differently.
//!
//! [`pace`] (did the target keep pace with the arrivals), [`scaling`] (did a closed loop's
//! added users still buy throughput), [`verdict`] (sustainable or not,
//! the stop rule, the headline), [`summary`] (per-step and per-rate rows, token rates and cost),
//! [`server`] (the server's own figures per step, from its Prometheus scrapes).
//! No clock, no I/O.

pub mod pace;
pub mod scaling;
pub mod server;
pub mod summary;
pub mod verdict;
