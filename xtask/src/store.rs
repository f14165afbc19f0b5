//! The `store` conformance suite (being built).

use crate::cmd::{Ctx, Failure};

pub fn conformance(_ctx: &Ctx) -> Result<(), Failure> {
    Err(Failure::new("the store conformance suite is not built yet"))
}

pub fn bench(_ctx: &Ctx) -> Result<(), Failure> {
    Err(Failure::new("the store bench is not built yet"))
}
