//! Shared helpers of the fuzz targets: a recorded secure-aggregation round
//! to replay, and a scratch folder for readers that only take paths.

pub mod round;
pub mod scratch;

/// Splits `data` at the first `sep`: `(before, after)`, or all of it and
/// nothing when `sep` is absent. Lets one input carry two files.
pub fn split_once<'a>(data: &'a [u8], sep: &[u8]) -> (&'a [u8], &'a [u8]) {
    match data.windows(sep.len()).position(|w| w == sep) {
        Some(i) => (&data[..i], &data[i + sep.len()..]),
        None => (data, &[]),
    }
}
