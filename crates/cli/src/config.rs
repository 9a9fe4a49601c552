//! Where the deployed stack is: `labpipe_lab::stack` resolves it for every front end (a flag,
//! else its environment variable — clap reads `LABPIPE_TABLE`, `LABPIPE_PROCESSED_BUCKET`,
//! `LABPIPE_RAW_BUCKET`, `LABPIPE_STACK_OUTPUTS` —, else the stack outputs file found from the
//! current folder); this module only hands it the flags. A [`StackError`] is a usage error
//! (exit code 2, `main.rs`).

pub use labpipe_lab::stack::{PipelineQueue, Stack};
use labpipe_lab::stack::{Spelling, StackError, StackGiven};

use crate::cli::StackArgs;

/// The stack the flags, the environment and the outputs file name.
pub fn stack(args: &StackArgs) -> Result<Stack, StackError> {
    Stack::from_process(
        &StackGiven {
            table: args.table.clone(),
            processed_bucket: args.processed_bucket.clone(),
            raw_bucket: args.raw_bucket.clone(),
            stack_outputs: args.stack_outputs.clone(),
        },
        Spelling::CLI,
    )
}
