//! The Sessions view's values are `labpipe_lab::sessions`' (the column store, its filter, a
//! session's detail); the app holds the loaded catalog in its state and hands them over.

pub use labpipe_lab::sessions::*;

use crate::error::AppError;

pub fn not_loaded() -> AppError {
    AppError::new(
        "not_loaded",
        "the catalog is not loaded yet; open Sessions or press Refresh",
    )
}
