//! The crate's one error type. None of these ever fails an upload: callers log them and go on,
//! and the records wait in the spool.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ClientLogError {
    #[error("client log spool {path}: {reason}; check that the folder is writable (set LABPIPE_JOURNAL to move it with the upload journal)")]
    Spool { path: PathBuf, reason: String },
    #[error("no client log group known: set LABPIPE_CLIENT_LOG_GROUP or deploy the stack (its output ClientLogGroup); records wait in the spool until then")]
    NoLogGroup,
    #[error("client log group {group} does not exist: deploy the stack (output ClientLogGroup) or fix LABPIPE_CLIENT_LOG_GROUP; records wait in the spool")]
    MissingLogGroup { group: String },
    #[error("cannot send client log records to {group}: {reason}; they wait in the spool and are sent by the next run")]
    Send { group: String, reason: String },
    #[error("sending client log records to {group} took longer than {secs} s; the rest wait in the spool and are sent by the next run")]
    Timeout { group: String, secs: u64 },
}
