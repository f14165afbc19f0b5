//! granary-server: the HTTP side of granary (admin web page, REST API, metrics) and the CLI
//! commands of the `granary` binary.
//!
//! Entry points: [`app::AppState`] holds the engine and the server's own state (sessions,
//! API keys, metrics); [`routes::router`] builds the axum router from the route table, which
//! records every route with its access level ([`routes::Access`]) so that tests can prove
//! each admin and API route refuses an anonymous request; [`serve::run`] listens, with
//! graceful shutdown on SIGTERM and Ctrl-C.
//!
//! Invariants: every `/admin` route but the sign-in form needs a session, every `/api/v1`
//! route an API key; every admin form carries the session's CSRF token; no secret (client
//! secret, token, admin token, API key) is ever rendered after it was saved, logged or put
//! in a URL.
#![warn(missing_docs)]

pub mod api;
pub mod api_keys;
pub mod app;
pub mod cli;
mod cli_profiles;
mod cli_webhooks;
mod error;
pub mod layers;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod open;
pub mod problem;
pub mod profiles;
pub mod proxy;
pub mod reconnect;
pub mod routes;
pub mod secrets;
pub mod serve;
pub mod sessions;
pub mod settings;
pub mod throttle;
pub mod views;
pub mod web;
pub mod webhooks;

pub use error::{Error, Result};
