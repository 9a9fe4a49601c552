//! Structured logs: one JSON object per line on stdout, which CloudWatch Logs ingests as is.
//!
//! Handlers open a `session` span around the work on one session, and the formatter writes the
//! current span's fields on every line (`"span":{"name":"session","session":"…"}`), so the
//! session id is on every line logged while working on it and a
//! log search for one session id finds its whole story.

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the JSON subscriber (`RUST_LOG` filters, default `info`). Safe to call twice.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .try_init();
}
