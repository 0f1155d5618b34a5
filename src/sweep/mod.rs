//! Sweeps: run the same attack at each rate of a plan, judge every step, stop early when the
//! target is saturated, and write the run folder (`reports/<run-id>/`).
//!
//! [`run`] drives steps with the attacker; [`output`] writes and rebuilds the folder;
//! [`reprice`] copies a folder at another price; [`scrape`] wraps the attacker to scrape the
//! server's `/metrics` during each step; [`timeline`] fixes every phase's start for a sweep
//! run in shards and [`merge`] makes their folders one run. The judging is `analysis`'s and the plan, SLO and
//! rules are `scenario`'s; this module owns the clock and the files. Knows no wire format and
//! draws nothing itself.

pub mod merge;
pub mod output;
pub mod reprice;
pub mod run;
pub mod runner;
pub mod scrape;
pub mod timeline;
