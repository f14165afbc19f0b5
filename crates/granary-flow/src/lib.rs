//! granary-flow: the flow engine of granary.
//!
//! [`protocol`] is the client side of the OAuth 2.0 authorization code grant (RFC 6749),
//! with PKCE (RFC 7636), the `iss` callback parameter (RFC 9207), token revocation
//! (RFC 7009) and metadata discovery (RFC 8414 and OpenID Connect Discovery). It takes
//! values and returns values and knows nothing of storage: whoever holds a client id and
//! the two URLs can use it on its own.
//!
//! [`engine`] runs the token lifecycle over a store (pending authorizations, sealing,
//! single-flight refresh, events, background refresh) and builds on it.

#![warn(missing_docs)]

pub mod engine;
mod error;
pub mod profile;
pub mod protocol;

pub use error::{Endpoint, EndpointProblem, Error, OAuthError, Operation, Result};

/// The examples of this crate's README.md, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
