//! The one error type of the retention library: failures that stop the whole run (not the
//! per-folder reasons to keep a folder, which are [`crate::Keep`]).

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("{path}: {source}")]
    Scan {
        path: String,
        #[source]
        source: labpipe_core::scan::ScanError,
    },
}
