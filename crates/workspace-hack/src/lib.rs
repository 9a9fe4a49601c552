//! Empty on purpose: this crate exists for its `Cargo.toml`, which makes cargo resolve every
//! third-party crate with one feature set whichever workspace members a command selects (see the
//! comment there). No code depends on anything here.
