//! A quirk emulator: one configurable OAuth 2.0 provider on 127.0.0.1 that behaves like each provider of the catalogue.
//!
//! [`Emulator::start`] serves one [`Behaviour`]: the provider URL `https://HOST/PATH` is
//! served at `{origin}/HOST/PATH` ([`rewrite`]). The authorization endpoint needs no browser:
//! it validates the request the way the provider would and redirects with a code (or answers
//! 400 saying why). The token endpoint checks client authentication, body format, extra
//! parameters, PKCE and single-use codes, and answers in the provider's shape. What it saw is
//! in [`Emulator::log`], what it refused and why in [`Emulator::refusals`], and
//! [`Emulator::is_valid_access_token`] tells whether the "API" would take a token.
//!
//! The behaviours are data ([`Behaviour`], one struct; the catalogue in [`Behaviour::all`]),
//! written from the providers' published documentation, independently of granary's profiles.

mod api;
mod authorize;
mod behaviour;
mod catalogue;
mod emulator;
mod request;
mod state;
mod template;
mod token;

pub use behaviour::{
    ApiAuth, Behaviour, BodyFormat, CallbackValue, ClientAuth, ExpiringParam, ExpiringValue,
    Expiry, Field, FieldKind, FieldValue, Pkce, Refresh, ResponseType, Revocation, Separator,
    rewrite,
};
pub use emulator::{CLIENT_ID, CLIENT_SECRET, Emulator};
pub use state::{CODE_LIFETIME, Refusal, RequestRecord};
pub use template::fill;
pub use token::LONG_LIVED;
