//! `podrun get jobs` (being written: issue 21).

use super::Result;
use super::workloads::Listing;
use crate::config::Config;

pub fn listing(
    _cfg: &Config,
    _namespace: Option<&str>,
    _names: &[String],
    _wide: bool,
) -> Result<Listing> {
    Err(super::msg("podrun get jobs: not listed yet"))
}

pub fn describe(_cfg: &Config, _namespace: &str, name: &str) -> Result<i32> {
    Err(super::msg(format!(
        "podrun describe job {name}: not described yet"
    )))
}
