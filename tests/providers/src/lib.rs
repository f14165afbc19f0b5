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
//!
//! A suite starts one emulator per behaviour, takes the provider's URL templates
//! ([`Behaviour::authorization_url`], [`Behaviour::token_url`], [`Behaviour::refresh_url`],
//! [`Behaviour::revocation_url`], [`Behaviour::api_url`]) and connection values that work
//! ([`Behaviour::example_connection`]), rewrites every `https://HOST` the client builds to
//! `{origin}/HOST` ([`Emulator::rewrite`]), registers [`CLIENT_ID`] / [`CLIENT_SECRET`], and
//! drives the client. The authorization endpoint answers with a redirect whose `Location` is
//! the callback to deliver. [`Emulator::refusals`] says why a step failed;
//! [`Emulator::advance`] lets tokens and codes expire without waiting.
//!
//! ```
//! use granary_providers_conformance::{Behaviour, Emulator};
//! # tokio::runtime::Runtime::new().expect("runtime").block_on(async {
//! let shopify = Behaviour::named("shopify").expect("in the catalogue");
//! assert_eq!(shopify.authorization_url(), "https://{shop}.myshopify.com/admin/oauth/authorize");
//! assert_eq!(shopify.example_connection(), vec![("shop".to_owned(), "acme".to_owned())]);
//! let emu = Emulator::start(shopify).await?;
//! // The URL a client builds for shop=acme, served by the emulator:
//! let url = emu.rewrite("https://acme.myshopify.com/admin/oauth/authorize");
//! assert_eq!(url, format!("{}/acme.myshopify.com/admin/oauth/authorize", emu.origin()));
//! assert!(emu.refusals().is_empty());
//! emu.stop().await;
//! # Ok::<(), std::io::Error>(()) }).expect("example");
//! ```

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
