//! The servers the suites, the benches and the demo run against, started for one run and
//! always stopped: the conformance authorization server ([`oidc`]) and a throwaway
//! PostgreSQL ([`postgres`]).

pub mod oidc;
pub mod postgres;
