//! Judging measured steps: pure functions from records and a scenario to verdicts and the
//! numbers a run reports. Below both `sweep` (which calls it live, after every step) and
//! `report` (which draws what it computed), so the two can never judge a step differently.
//!
//! [`pace`] (did the target keep pace with the arrivals), [`scaling`] (did a closed loop's
//! added users still buy throughput), [`goodput`] (which requests met every SLO clause on
//! their own), [`verdict`] (sustainable or not, the stop rule, the headline), [`search`]
//! (which level a search probes next, from the verdicts so far), [`summary`] (per-step and
//! per-rate rows, token rates and cost), [`compare`] (two sweeps: the levels both measured,
//! the changes, the regression rule), [`server`] (the server's own figures per step, from its
//! Prometheus scrapes). No clock, no I/O.

pub mod compare;
pub mod goodput;
pub mod pace;
pub mod scaling;
pub mod search;
pub mod server;
pub mod summary;
pub mod verdict;
