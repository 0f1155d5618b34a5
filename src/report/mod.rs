//! Renderers. Each reads summaries and writes one format; none computes statistics.

// ---- sweep reports (issue 3) ----
pub mod csv;
pub mod markdown;
pub mod png;
pub mod table;
pub mod text_backend;
// ---- end sweep reports ----
