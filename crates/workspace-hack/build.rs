//! A build script, so that cargo applies this crate's `[build-dependencies]`: the features of
//! crates used by build scripts and proc macros are unified as well.
fn main() {}
