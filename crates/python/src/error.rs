//! The one error type of the Rust side, kept free of Python so it can be unit-tested; `lib.rs`
//! turns each kind into its Python exception (`labpipe.FilterError`, `ConfigError`, `SyncError`,
//! `CatalogError`, `DataError`). The messages are the engines' own, which already say what to do.

use labpipe_sync::SyncError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The filter does not parse or names an unknown field / a wrong type; `rendered` is the
    /// filter with a caret under the mistake, as `labpipe query` prints it.
    #[error("invalid filter:\n{rendered}")]
    Filter {
        rendered: String,
        message: String,
        column: usize,
    },

    /// Where the stack is, the schema, a keyword: something the caller can fix by configuration.
    #[error("{0}")]
    Config(String),

    /// A catalog read failed (network, permissions, a missing table).
    #[error("{0}")]
    Catalog(String),

    /// Selecting or downloading files failed; `code` is the CLI's `--json` error code.
    #[error("{source}")]
    Sync {
        code: &'static str,
        #[source]
        source: SyncError,
    },

    /// A synced output file is missing or not in the format the pipeline writes.
    #[error("{0}")]
    Data(String),
}

impl From<SyncError> for Error {
    fn from(source: SyncError) -> Error {
        Error::Sync {
            code: source.code(),
            source,
        }
    }
}
