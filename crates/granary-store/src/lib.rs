//! The storage contract of granary: the [`Store`] trait, its record types, and [`MemoryStore`].
//!
//! The flow engine is the only user of a [`Store`]. It seals every secret before it reaches
//! the store (so a backend only ever sees [`Sealed`] bytes), and it owns the clock: every
//! method whose outcome depends on time takes `now` from the caller, and no backend reads
//! the system clock.
//!
//! A backend is a crate that depends on this one alone, implements [`Store`], and runs the
//! conformance suite of `granary-store-testkit` from its tests (see
//! `docs/guides/writing-a-backend.md`).
#![warn(missing_docs)]

mod error;
mod memory;
mod query;
mod records;
mod sealed;
mod store;
mod time;
mod webhooks;

pub use error::{Error, Result};
pub use memory::MemoryStore;
pub use query::{
    InstanceCounts, InstanceFilter, InstanceToken, InstanceWithToken, after_cursor, select_due,
};
pub use records::{
    AdminSession, ApiKeyRecord, CHANGES_KEPT, Change, Changes, ClientAuth, ExtraValue, Instance,
    InstanceStatus, Integration, Lease, PendingAuthorization, RefreshErrorKind, RefreshOutcome,
    RefreshResult, TokenRecord,
};
pub use sealed::Sealed;
pub use store::{Capabilities, Store};
pub use time::Timestamp;
pub use webhooks::{
    DELIVERY_ATTEMPTS_KEPT, DeliveryAttempt, DeliveryOutcome, DeliveryState, ReconnectLink,
    WebhookDelivery, WebhookEndpoint, keep_newest_attempts,
};

/// The examples of this crate's README.md, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
