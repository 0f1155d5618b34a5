//! Sweeps: run the same attack at each rate of a plan, judge every step, stop early when the
//! target is saturated, and write the run folder (`reports/<run-id>/`).
//!
//! Pure parts (no clock, no I/O): [`plan`] (rate plans), [`slo`] (objectives), [`pace`] (did
//! the target keep pace with the arrivals), [`verdict`]
//! (sustainable or not, stop rule, headline), [`summary`] (numbers of a run from per-step
//! metrics). The async shell: [`run`] drives steps with the attacker; [`output`] writes and
//! rebuilds the folder. Knows no wire format and draws nothing itself.

pub mod caret;
pub mod commands;
pub mod output;
pub mod pace;
pub mod plan;
pub mod run;
pub mod slo;
pub mod summary;
pub mod verdict;
