//! The generator and the checks each know how many bytes a sample of each format takes: the
//! generator to write data files, `labpipe_core::check` to judge their sizes. They are kept in
//! their own crates (the checks must not depend on a test-data generator), so this test holds
//! them to one answer: a format the generator writes must be sized the same by the checks.

use labpipe_sample::sample_format_bytes;

#[test]
fn every_sample_format_has_the_same_size_in_the_generator_and_the_checks() {
    for format in [
        "int16", "int32", "float32", "float64", "int8", "uint16", "INT16", "", "int 16",
    ] {
        assert_eq!(
            sample_format_bytes(format).map(|b| b as u64),
            labpipe_core::check::sample_bytes(format),
            "sample format '{format}'"
        );
    }
}
