//! [`Violation`]: a failed check, naming the contract it broke.

use std::fmt;

/// A broken contract: which one, and what the store did instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The contract, as the `Store` docs state it.
    pub contract: &'static str,
    /// What happened instead.
    pub detail: String,
}

impl Violation {
    /// A violation of `contract`.
    pub fn new(contract: &'static str, detail: impl Into<String>) -> Self {
        Self {
            contract,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "broke \"{}\": {}", self.contract, self.detail)
    }
}

impl std::error::Error for Violation {}

/// Fails with a violation of `contract` unless `condition` holds.
pub(crate) fn ensure(
    condition: bool,
    contract: &'static str,
    detail: impl FnOnce() -> String,
) -> Result<(), Violation> {
    if condition {
        Ok(())
    } else {
        Err(Violation::new(contract, detail()))
    }
}

/// Turns an unexpected store error into a violation of the contract being checked.
pub(crate) trait OrBreak<T> {
    fn or_break(self, contract: &'static str, doing: &str) -> Result<T, Violation>;
}

impl<T> OrBreak<T> for granary_store::Result<T> {
    fn or_break(self, contract: &'static str, doing: &str) -> Result<T, Violation> {
        self.map_err(|e| Violation::new(contract, format!("{doing} failed unexpectedly: {e}")))
    }
}
