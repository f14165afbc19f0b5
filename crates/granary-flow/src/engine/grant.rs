//! Grants without a refresh token: why a provider issues none (the usual cause for this
//! provider, in words an admin can act on), and the words for what follows from it.

use granary_store::{Instance, Timestamp, TokenRecord};

use super::Engine;

/// The usual cause of a grant without a refresh token, from the instance's authorization
/// URL (its host names the provider), scopes and extra authorization parameters.
pub fn missing_refresh_token_cause(
    authorization_url: Option<&str>,
    scopes: &[String],
    extra_authorization_params: &[(String, String)],
) -> String {
    let host = authorization_url
        .and_then(|url| url::Url::parse(url).ok())
        .and_then(|url| url.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    let has_param = |name: &str, value: &str| {
        extra_authorization_params
            .iter()
            .any(|(n, v)| n == name && v.eq_ignore_ascii_case(value))
    };
    let has_scope = |name: &str| scopes.iter().any(|s| s == name);
    let provider = |names: &[&str]| names.iter().any(|name| host.contains(name));
    if provider(&["google", "zoho"]) {
        if has_param("access_type", "offline") {
            return "this provider issues a refresh token only at the first consent: add the \
                    authorization parameter `prompt=consent` (or remove the app's access at \
                    the provider), then authorize again"
                .to_string();
        }
        return "this provider issues a refresh token only when the authorization asks for \
                offline access: add the authorization parameters `access_type=offline` and \
                `prompt=consent`, then authorize again"
            .to_string();
    }
    if provider(&["dropbox"]) && !has_param("token_access_type", "offline") {
        return "this provider issues a refresh token only when asked: add the authorization \
                parameter `token_access_type=offline`, then authorize again"
            .to_string();
    }
    if provider(&[
        "microsoftonline",
        "login.live",
        "salesforce",
        "atlassian",
        "xero",
    ]) && !has_scope("offline_access")
    {
        return "this provider issues a refresh token only for the scope `offline_access`: \
                add it to the scopes, then authorize again"
            .to_string();
    }
    if provider(&["github", "facebook", "slack"]) {
        return "this provider issues no refresh token to this kind of client (GitHub OAuth \
                apps, Slack without token rotation, Facebook): its tokens are used until they \
                expire or are refused, then authorized again"
            .to_string();
    }
    if has_scope("offline_access") || has_param("access_type", "offline") {
        return "the provider issued none though offline access was asked for: check that \
                the client may use refresh tokens at the provider (some providers never issue \
                one)"
            .to_string();
    }
    "many providers issue a refresh token only when asked: the scope `offline_access` \
     (OpenID Connect, Microsoft, Salesforce, Atlassian), the authorization parameter \
     `access_type=offline` (Google, Zoho) or `token_access_type=offline` (Dropbox); some \
     never issue one (GitHub OAuth apps, Facebook)"
        .to_string()
}

/// A timestamp as `YYYY-MM-DD HH:MM:SS UTC`, for messages.
pub(crate) fn utc(time: Timestamp) -> String {
    let seconds = time.as_unix_millis().div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        (rest % 3600) / 60,
        rest % 60
    )
}

/// "after 2027-01-01 10:00:00 UTC" or "when the provider refuses the token".
pub(crate) fn after_expiry(expires_at: Option<Timestamp>) -> String {
    expires_at.map_or_else(
        || "when the provider refuses the token (it did not say when it expires)".to_string(),
        |at| format!("after {}", utc(at)),
    )
}

/// The reason an instance without a refresh token needs authorization once its token
/// expired (or was refused).
pub(crate) fn expired_without_refresh_token(
    record: &TokenRecord,
    now: Timestamp,
    cause: &str,
) -> String {
    let what = match record.expires_at {
        Some(at) if at <= now => format!("the access token expired at {}", utc(at)),
        _ => "the provider refused the access token".to_string(),
    };
    format!(
        "no refresh token: {what} and the provider issued no refresh token, so a new \
         authorization is needed ({cause})"
    )
}

impl Engine {
    /// The expiry of a token whose response stated none, as the provider's introspection
    /// endpoint (RFC 7662) tells it, when the integration has one: `None` when there is
    /// none, it fails (logged; the token is then used until refused), or it says nothing
    /// usable.
    pub(crate) async fn introspected_expiry(
        &self,
        id: &str,
        config: &crate::protocol::ClientConfig,
        access_token: &secrecy::SecretString,
        obtained: Timestamp,
    ) -> Option<Timestamp> {
        config.introspection_url.as_ref()?;
        let asked = crate::protocol::introspect(&self.inner.http, config, access_token);
        let answer = match tokio::time::timeout(self.inner.refresh_deadline, asked).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => {
                tracing::warn!(instance = id, %error, "token introspection failed: the token's expiry stays unknown");
                return None;
            }
            Err(_) => {
                tracing::warn!(
                    instance = id,
                    "token introspection did not answer in time: the token's expiry stays unknown"
                );
                return None;
            }
        };
        if !answer.active {
            tracing::warn!(
                instance = id,
                "the introspection endpoint says the new token is not active: its expiry stays unknown"
            );
            return None;
        }
        let at = Timestamp::from_unix_millis(answer.exp?.checked_mul(1000)?);
        (at > obtained).then_some(at)
    }

    /// The usual cause of a grant of `instance` without a refresh token (see
    /// [`missing_refresh_token_cause`]), with the authorization URL in force.
    ///
    /// The request judged is the one the instance sends: its provider profile's parameters
    /// and always-requested scopes included. A profile whose refresh strategy is `none`
    /// says so instead: the provider's tokens do not expire.
    pub async fn no_refresh_token_cause(&self, instance: &Instance) -> String {
        let Ok(setup) = self.instance_setup(instance, &Default::default()).await else {
            return missing_refresh_token_cause(
                instance.authorization_url.as_deref(),
                &instance.scopes,
                &instance.extra_authorization_params,
            );
        };
        if setup.profile.profile.refresh.strategy == Some(crate::profile::RefreshKind::None) {
            let title = setup
                .profile
                .profile
                .title
                .as_deref()
                .unwrap_or("this provider");
            return format!(
                "the provider profile says {title} issues tokens that do not expire and no \
                 refresh token: the token is used until it is refused or revoked"
            );
        }
        missing_refresh_token_cause(
            Some(setup.config.authorization_url.as_str()),
            &setup.scopes(instance),
            &setup.config.extra_authorization_params,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_names_the_setting_of_the_provider() {
        let google = missing_refresh_token_cause(
            Some("https://accounts.google.com/o/oauth2/v2/auth"),
            &[],
            &[],
        );
        assert!(google.contains("access_type=offline"), "{google}");
        let asked = missing_refresh_token_cause(
            Some("https://accounts.google.com/o/oauth2/v2/auth"),
            &[],
            &[("access_type".into(), "offline".into())],
        );
        assert!(
            asked.contains("prompt=consent") && !asked.contains("`access_type=offline` and"),
            "{asked}"
        );
        let microsoft = missing_refresh_token_cause(
            Some("https://login.microsoftonline.com/common/oauth2/v2.0/authorize"),
            &["User.Read".into()],
            &[],
        );
        assert!(microsoft.contains("offline_access"), "{microsoft}");
        let dropbox =
            missing_refresh_token_cause(Some("https://www.dropbox.com/oauth2/authorize"), &[], &[]);
        assert!(dropbox.contains("token_access_type=offline"), "{dropbox}");
        let github =
            missing_refresh_token_cause(Some("https://github.com/login/oauth/authorize"), &[], &[]);
        assert!(github.contains("GitHub OAuth apps"), "{github}");
        let other = missing_refresh_token_cause(Some("https://id.example/authorize"), &[], &[]);
        assert!(other.contains("offline_access") && other.contains("access_type=offline"));
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(
            utc(Timestamp::from_unix_millis(1_800_000_000_000)),
            "2027-01-15 08:00:00 UTC"
        );
        assert_eq!(
            utc(Timestamp::from_unix_millis(0)),
            "1970-01-01 00:00:00 UTC"
        );
    }
}
