//! What the engine reports as it runs: a broadcast channel a server shows and a user alerts on.

use granary_store::Timestamp;

/// Something that happened to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// An authorization completed: the instance holds a token.
    Authorized {
        /// The instance.
        instance: String,
    },
    /// A token was refreshed.
    Refreshed {
        /// The instance.
        instance: String,
        /// When the new access token expires, if the provider said.
        expires_at: Option<Timestamp>,
        /// Whether the provider sent a new refresh token.
        rotated: bool,
    },
    /// A refresh failed; the stored token was kept.
    RefreshFailed {
        /// The instance.
        instance: String,
        /// What went wrong (never a secret).
        message: String,
        /// Whether a later try can succeed.
        transient: bool,
    },
    /// The instance needs an admin to authorize it again.
    NeedsAuthorization {
        /// The instance.
        instance: String,
        /// Why (never a secret).
        reason: String,
        /// A single-use link that lets whoever owns the account at the provider authorize
        /// the instance again without the admin page (see
        /// [`super::Engine::create_reconnect_link`]); `None` when the engine makes none
        /// ([`super::EngineBuilder::reconnect_link_ttl`]) or it could not be stored.
        reconnect: Option<super::ReconnectLinkCreated>,
    },
    /// An admin disconnected the instance: its tokens were forgotten (and revoked at the
    /// provider where that worked); it is configured still and can be authorized again.
    Disconnected {
        /// The instance.
        instance: String,
        /// Whether the provider confirmed the revocation of its tokens.
        revoked: bool,
    },
}

impl Event {
    /// The instance the event is about.
    pub fn instance(&self) -> &str {
        match self {
            Self::Authorized { instance }
            | Self::Refreshed { instance, .. }
            | Self::RefreshFailed { instance, .. }
            | Self::NeedsAuthorization { instance, .. }
            | Self::Disconnected { instance, .. } => instance,
        }
    }
}
