//! Provider profiles: how a real provider departs from RFC 6749, as data, layered from the
//! built-in catalogue, the OpenAPI document and the instance, and filled with the values
//! of one connection.
//!
//! A [`ProviderProfile`] is one layer; [`Catalogue::resolve`] picks the catalogue profile
//! (by `use` or by host) and lays the document's and the instance's layers on top, giving a
//! [`ResolvedProfile`] that says where each layer came from. URL templates
//! (`https://{shop}.myshopify.com/...`) are filled by [`ProviderProfile::connection_values`]
//! and [`expand_url`], each value checked against its [`ConnectionField`]'s kind.

mod catalogue;
mod describe;
mod error;
mod merge;
mod model;
mod resolve;
mod template;

pub use catalogue::{Catalogue, catalogue};
pub use error::ProfileError;
pub use model::{
    ApiQuirks, AuthorizationQuirks, ConnectionField, ExchangeRequest, FieldKind, ProviderProfile,
    RefreshKind, RefreshQuirks, RevocationQuirks, TokenQuirks,
};
pub use resolve::{NO_PROFILE, ProfileSource, ResolvedProfile};
pub use template::{Values, expand, expand_url, host_matches, match_template};
