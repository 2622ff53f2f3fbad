//! Hidden `elstream bench`.
use crate::error::{Error, Result};

#[derive(clap::Args)]
pub struct BenchArgs {}

pub fn bench(_a: BenchArgs) -> Result<i32> {
    Err(Error::Usage("bench: not built yet".into()))
}
