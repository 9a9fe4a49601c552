//! Writes the TypeScript bindings of the types the app sends that live in library crates
//! (`labpipe_lab`'s views with core's and the catalog's types inside them) to
//! `ui/src/lib/bindings/`; the app's own types export themselves (`#[ts(export)]`).
//! `scripts/test.sh` fails when the committed bindings differ from what this writes.

use ts_rs::{Config, TS};

#[test]
fn export_library_bindings() {
    // Relative to ./bindings of this crate, like every `export_to` in the tree.
    let cfg = Config::from_env();
    labpipe_lab::PendingSession::export_all(&cfg).unwrap();
    labpipe_lab::TransferView::export_all(&cfg).unwrap();
    labpipe_lab::PipelineState::export_all(&cfg).unwrap();
    labpipe_lab::Eligibility::export_all(&cfg).unwrap();
    // Exported here, not by a `#[ts(export)]` of its own: that one runs in the lab crate's tests,
    // where the same relative path lands in `crates/ui/`.
    labpipe_lab::WatchMode::export_all(&cfg).unwrap();
    labpipe_lab::sessions::CatalogSnapshot::export_all(&cfg).unwrap();
    labpipe_lab::sessions::FilterResult::export_all(&cfg).unwrap();
    labpipe_lab::sessions::SessionDetail::export_all(&cfg).unwrap();
}
