//! The `openapi` conformance suite (being built).

use crate::cmd::{Ctx, Failure};

pub fn conformance(_ctx: &Ctx) -> Result<(), Failure> {
    Err(Failure::new("the openapi conformance suite is not built yet"))
}

pub fn bench(_ctx: &Ctx) -> Result<(), Failure> {
    Err(Failure::new("the openapi bench is not built yet"))
}

pub fn fuzz(_ctx: &Ctx, _args: &[String]) -> Result<(), Failure> {
    Err(Failure::new("the openapi fuzz target is not built yet"))
}
