//! Reconnect links: a single-use, expiring link that opens "Get access token" for one
//! instance without the admin page, to hand to whoever owns the account at the provider.
//! Only the SHA-256 digest of the link's secret is stored.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use granary_store::{InstanceStatus, ReconnectLink, Timestamp};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use url::Url;

use super::{AuthorizationStart, Engine, EngineError, EngineResult};

/// How many random bytes a link's secret holds (256 bits).
const SECRET_BYTES: usize = 32;

/// How long the reconnect link of a needs-authorization event lives unless set otherwise
/// ([`super::EngineBuilder::reconnect_link_ttl`]): 7 days.
pub const DEFAULT_RECONNECT_LINK_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The longest a reconnect link may live: 90 days.
pub const MAX_RECONNECT_LINK_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// A reconnect link just created: the only time its URL (which carries the secret) exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectLinkCreated {
    /// `{public_url}/reconnect/{secret}`.
    pub url: Url,
    /// When it stops working (if not used before).
    pub expires: Timestamp,
}

/// What an unused, unexpired reconnect link opens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconnectTarget {
    /// The instance it reconnects.
    pub instance: String,
    /// The instance's integration.
    pub integration: String,
    /// When the link stops working.
    pub expires: Timestamp,
}

impl Engine {
    /// Creates a single-use link, valid for `ttl` (at most [`MAX_RECONNECT_LINK_TTL`]), that
    /// lets whoever opens it start an authorization of `instance` (any status but
    /// disabled): `{public_url}/reconnect/{secret}`, the secret being 256 random bits
    /// (base64url) of which only the SHA-256 digest is stored.
    ///
    /// # Errors
    /// [`EngineError::NotFound`] for an unknown instance, [`EngineError::Disabled`] for a
    /// disabled one, [`EngineError::Invalid`] for a zero or too long `ttl`, a store error.
    pub async fn create_reconnect_link(
        &self,
        instance: &str,
        ttl: Duration,
    ) -> EngineResult<ReconnectLinkCreated> {
        check_ttl(ttl)?;
        let record = self.instance(instance).await?;
        if record.status == InstanceStatus::Disabled {
            return Err(EngineError::Disabled {
                instance: instance.to_string(),
            });
        }
        let mut bytes = [0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let secret = URL_SAFE_NO_PAD.encode(bytes);
        let now = self.now();
        // Expired links of any instance are dead weight; their removal is best effort.
        if let Err(error) = self.inner.store.purge_expired_reconnect_links(now).await {
            tracing::warn!(%error, "could not purge expired reconnect links");
        }
        let link = ReconnectLink {
            digest: secret_digest(&secret),
            instance: instance.to_string(),
            created: now,
            expires: now.saturating_add(ttl),
        };
        self.inner.store.create_reconnect_link(&link).await?;
        tracing::info!(instance, expires = ?link.expires, "reconnect link created");
        Ok(ReconnectLinkCreated {
            url: self.reconnect_url(&secret),
            expires: link.expires,
        })
    }

    /// What the link with this secret opens, without using it.
    ///
    /// # Errors
    /// [`EngineError::LinkGone`] when the link is unknown, used or expired (or its instance
    /// was deleted): one error for all, so that it tells nothing about which;
    /// [`EngineError::Disabled`] when its instance was disabled since; a store error.
    pub async fn reconnect_link(&self, secret: &str) -> EngineResult<ReconnectTarget> {
        let Some(digest) = checked_digest(secret) else {
            return Err(EngineError::LinkGone);
        };
        let link = self
            .inner
            .store
            .find_reconnect_link(&digest, self.now())
            .await?
            .ok_or(EngineError::LinkGone)?;
        let record = match self.instance(&link.instance).await {
            Ok(record) => record,
            Err(EngineError::NotFound { .. }) => return Err(EngineError::LinkGone),
            Err(error) => return Err(error),
        };
        if record.status == InstanceStatus::Disabled {
            return Err(EngineError::Disabled {
                instance: link.instance,
            });
        }
        Ok(ReconnectTarget {
            instance: link.instance,
            integration: record.integration,
            expires: link.expires,
        })
    }

    /// Uses the link with this secret (once: of concurrent callers one wins) and begins an
    /// authorization of its instance, as [`Engine::begin_authorization`] does. When the
    /// authorization cannot begin (the instance was disabled since, a store fault), the
    /// link is put back so that it can be used once it can.
    ///
    /// # Errors
    /// [`EngineError::LinkGone`] when the link is unknown, used or expired (one error for
    /// all); the errors of [`Engine::begin_authorization`].
    pub async fn begin_reconnect(&self, secret: &str) -> EngineResult<AuthorizationStart> {
        let Some(digest) = checked_digest(secret) else {
            return Err(EngineError::LinkGone);
        };
        let link = self
            .inner
            .store
            .take_reconnect_link(&digest, self.now())
            .await?
            .ok_or(EngineError::LinkGone)?;
        match self.begin_authorization(&link.instance).await {
            Ok(start) => {
                tracing::info!(instance = %link.instance, "reconnect link used");
                Ok(start)
            }
            Err(EngineError::NotFound { .. }) => Err(EngineError::LinkGone),
            Err(error) => {
                if let Err(put_back) = self.inner.store.create_reconnect_link(&link).await {
                    tracing::warn!(error = %put_back, instance = %link.instance,
                        "could not put back a reconnect link whose authorization failed");
                }
                Err(error)
            }
        }
    }

    /// `{public_url}/reconnect/{secret}`: outside `/admin/`, since whoever opens it has no
    /// admin session.
    fn reconnect_url(&self, secret: &str) -> Url {
        let mut url = self.inner.admin_url.clone();
        let base = url.path().trim_end_matches('/');
        let base = base.strip_suffix("/admin").unwrap_or(base);
        let path = format!("{base}/reconnect/{secret}");
        url.set_path(&path);
        url
    }
}

/// The SHA-256 digest (hex) of a link's secret: the key the store holds it under.
pub fn secret_digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The digest of `secret` when it has the shape of a secret (43 base64url characters),
/// else `None`: anything else cannot be a link, and is not looked up.
fn checked_digest(secret: &str) -> Option<String> {
    let shaped = secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    shaped.then(|| secret_digest(secret))
}

fn check_ttl(ttl: Duration) -> EngineResult<()> {
    if ttl.is_zero() || ttl > MAX_RECONNECT_LINK_TTL {
        return Err(EngineError::Invalid(format!(
            "a reconnect link lives between 1 second and 90 days, not {}s: give a ttl in that \
             range",
            ttl.as_secs()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_secret_shaped_strings_are_looked_up() {
        let secret = URL_SAFE_NO_PAD.encode([7u8; SECRET_BYTES]);
        assert_eq!(checked_digest(&secret), Some(secret_digest(&secret)));
        assert_eq!(secret_digest(&secret).len(), 64);
        for bad in [
            "",
            "short",
            &format!("{secret}A"),
            &secret.replace('B', "+"),
        ] {
            assert_eq!(checked_digest(bad), None, "{bad}");
        }
    }

    #[test]
    fn ttl_is_bounded() {
        assert!(check_ttl(Duration::ZERO).is_err());
        assert!(check_ttl(Duration::from_secs(1)).is_ok());
        assert!(check_ttl(MAX_RECONNECT_LINK_TTL).is_ok());
        assert!(check_ttl(MAX_RECONNECT_LINK_TTL + Duration::from_secs(1)).is_err());
    }
}
