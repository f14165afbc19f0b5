//! Turns an engine error into a banner that names the cause and the fix.

use granary_flow::Error as ProtocolError;
use granary_flow::engine::{DisconnectReport, EngineError};

use crate::sessions::Banner;

/// The banner for a failed authorization, refresh or token request of `instance`.
pub fn failure_banner(title: &str, error: &EngineError) -> Banner {
    let (cause, fix) = explain(error);
    Banner::error(title, cause, fix)
}

/// The banner after a Disconnect: a warning when tokens were deleted without the provider
/// confirming their revocation (they may still work there until they expire).
pub fn disconnect_banner(id: &str, report: &DisconnectReport) -> Banner {
    let title = format!("Disconnected: instance {id} holds no token now.");
    match (report.revoked, &report.revocation_note) {
        (true, _) => Banner {
            cause: "Its tokens were revoked at the provider.".to_string(),
            ..Banner::success(title)
        },
        (false, _) if !report.token_deleted => Banner {
            cause: "It held no token, so there was nothing to revoke.".to_string(),
            ..Banner::success(title)
        },
        (false, note) => Banner::warning(
            format!("{title} Not revoked at the provider."),
            match note {
                Some(note) => format!("The revocation failed: {note}."),
                None => "The provider did not confirm the revocation.".to_string(),
            },
            "The old tokens may still work at the provider until they expire: revoke the \
             grant there (its page of connected apps or clients) if they must stop now.",
        ),
    }
}

/// How the granted scopes (space-separated, as the provider said) differ from the
/// requested ones, in words; `None` when they are the same set.
pub fn scopes_differ(requested: &[String], granted: &str) -> Option<String> {
    let granted: Vec<&str> = granted.split_whitespace().collect();
    let missing: Vec<&str> = requested
        .iter()
        .map(String::as_str)
        .filter(|s| !granted.contains(s))
        .collect();
    let extra: Vec<&str> = granted
        .iter()
        .copied()
        .filter(|g| !requested.iter().any(|r| r == g))
        .collect();
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("not granted: {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        parts.push(format!(
            "granted without being requested: {}",
            extra.join(", ")
        ));
    }
    (!parts.is_empty()).then(|| {
        format!(
            "The provider granted other scopes than requested ({}).",
            parts.join("; ")
        )
    })
}

/// The fix for a refused client authentication.
const CLIENT_AUTH_FIX: &str = "The provider rejected the client credentials. Check the client \
     id, the client secret (Edit, then paste the secret again) and the client authentication \
     method (HTTP Basic or in the request body), then click \"Get access token\" again.";

/// Whether the provider refused the client itself: `invalid_client` (any status), or
/// `unauthorized_client` or a bare 403 from the token endpoint, which some providers answer
/// to a wrong secret or authentication method instead of the standard 401 `invalid_client`.
fn client_refused(error: &ProtocolError) -> bool {
    let not_an_endpoint_status = matches!(
        error,
        ProtocolError::Provider {
            status: 404 | 405 | 410,
            ..
        } | ProtocolError::InvalidResponse {
            status: 404 | 405 | 410,
            ..
        }
    );
    // Whatever the shape of the answer: the provider's words name the client's credentials.
    if error.points_at_client_authentication() && !not_an_endpoint_status {
        return true;
    }
    match error {
        ProtocolError::InvalidClient { .. } => true,
        ProtocolError::Provider {
            status, details, ..
        } => {
            matches!(status, 400 | 401 | 403)
                && matches!(
                    details.error.as_str(),
                    "unauthorized_client" | "invalid_client"
                )
        }
        ProtocolError::InvalidResponse {
            endpoint: granary_flow::Endpoint::Token,
            status: 401 | 403,
            ..
        } => true,
        _ => false,
    }
}

/// (cause, fix) in words. The fix is page words, so it stays here; it is chosen by the
/// engine's classification ([`EngineError::code`]), and by the provider's answer where the
/// page can say more (which setting to check).
pub fn explain(error: &EngineError) -> (String, String) {
    let cause = error.to_string();
    if let EngineError::Exchange { source, .. } = error {
        if !client_refused(source) {
            return (
                cause,
                "The callback named the provider's data centre (above). Edit the instance and \
                 set the token URL override to the token endpoint at that host or region (the \
                 provider's documentation lists one per data centre), then click \"Get access \
                 token\" again."
                    .to_string(),
            );
        }
    }
    let fix = match error.protocol_error() {
        Some(error) if client_refused(error) => CLIENT_AUTH_FIX,
        Some(
            ProtocolError::Discovery { .. }
            | ProtocolError::NotAnEndpoint {
                endpoint: granary_flow::Endpoint::Discovery,
                ..
            }
            | ProtocolError::InvalidResponse {
                endpoint: granary_flow::Endpoint::Discovery,
                ..
            },
        ) => {
            "The issuer URL belongs to the integration, not to an instance: on the integration's \
             page, enter the provider's issuer (the URL its metadata document names as \
             `issuer`) and click \"Discover\" again."
        }
        Some(ProtocolError::InvalidScope { scopes, .. }) if scopes.len() > 1 => {
            "The provider refused the scopes. If it lists every one of them, it likely wants \
             them separated otherwise than by spaces (commas, for Slack, Zoom, Linear, Figma); \
             else edit the instance and request only scopes the provider allows this client, \
             then click \"Get access token\" again."
        }
        Some(ProtocolError::InvalidScope { .. }) => {
            "The provider refused a scope. Edit the instance, request only scopes the provider \
             allows this client, then click \"Get access token\" again."
        }
        Some(ProtocolError::AccessDenied { .. }) => {
            "Access was declined at the provider, so nothing was connected. Click \"Get access \
             token\" again and approve the request."
        }
        Some(ProtocolError::NotAnEndpoint { .. }) => {
            "The token URL does not answer like a token endpoint. Edit the instance and set the \
             token URL override to the provider's token endpoint, then try again."
        }
        Some(ProtocolError::InvalidResponse { .. }) => {
            "The token endpoint answered, so its URL reaches the provider, but not in a form \
             granary reads (its answer is quoted above). Check the instance's client \
             authentication method, extra token parameters and headers against the provider's \
             documentation, then try again."
        }
        Some(ProtocolError::CodeRejected { .. }) => {
            "The provider rejected the authorization code (expired, used, or a redirect URI \
             mismatch). Check that the redirect URI registered at the provider is exactly the one \
             shown here, then click \"Get access token\" again."
        }
        Some(ProtocolError::StateMismatch) => {
            "The answer does not belong to the authorization this browser started. Click \"Get \
             access token\" again, and finish it in the same browser."
        }
        Some(ProtocolError::IssuerMismatch { .. } | ProtocolError::IssuerMissing { .. }) => {
            "The answer came from another authorization server than expected. Check the \
             integration's issuer, then start again."
        }
        Some(ProtocolError::AuthorizationGone { .. }) => {
            "The provider no longer accepts the refresh token. Click \"Get access token\" to \
             authorize again."
        }
        Some(error) if error.is_transient() => {
            "The provider is unreachable or overloaded for now. Nothing was changed; try again in \
             a moment."
        }
        Some(_) => "Fix what the provider names in the instance's settings, then try again.",
        None => match error.code() {
            "unknown_state" => {
                "This authorization expired (after 10 minutes) or was used already. Click \"Get \
                 access token\" again and finish within 10 minutes."
            }
            "needs_authorization" => "Click \"Get access token\" and approve at the provider.",
            "not_authorized" => "Click \"Get access token\" to authorize the instance.",
            "disabled" => "Enable the instance first.",
            "backing_off" => {
                "The last refresh failed, so granary waits before it asks the provider again (the \
                 wait is shared by every granary process). Try again after the wait; if it keeps \
                 failing, see the cause above."
            }
            "refresh_failing" => {
                "The token endpoint answered before, so its URL is right; it now refuses the \
                 refresh without saying why. If this repeats, click \"Get access token\" to \
                 authorize again."
            }
            "shutting_down" => "granary is stopping; try again once it runs.",
            "no_refresh_token" => {
                "Nothing was sent and nothing changed: the token stays usable until it expires. \
                 To be refreshed from then on, change the setting named above and click \
                 \"Get access token\" again."
            }
            _ => "See the cause above; the server log has details.",
        },
    };
    (cause, fix.to_string())
}

#[cfg(test)]
mod tests {
    use granary_flow::protocol::ClientAuth;
    use granary_flow::{Endpoint, EndpointProblem, OAuthError, Operation};

    use super::*;

    const TOKEN_URL: &str = "https://provider.example/token";

    fn details(code: &str) -> OAuthError {
        OAuthError {
            error: code.to_string(),
            description: None,
            uri: None,
        }
    }

    fn fix_of(error: ProtocolError) -> String {
        explain(&EngineError::Protocol(error)).1
    }

    fn invalid_client(status: u16, details: Option<OAuthError>) -> ProtocolError {
        ProtocolError::InvalidClient {
            url: TOKEN_URL.to_string(),
            status,
            auth_method: ClientAuth::ClientSecretBasic,
            details,
        }
    }

    fn provider(status: u16, code: &str) -> ProtocolError {
        ProtocolError::Provider {
            operation: Operation::CodeExchange,
            url: TOKEN_URL.to_string(),
            status,
            details: details(code),
        }
    }

    fn bare(endpoint: Endpoint, status: u16) -> ProtocolError {
        ProtocolError::InvalidResponse {
            endpoint,
            url: TOKEN_URL.to_string(),
            status,
            content_type: "no content type".to_string(),
            problem: "a body that is neither a JSON object nor form-urlencoded".to_string(),
            excerpt: String::new(),
        }
    }

    fn is_client_auth_hint(fix: &str) -> bool {
        fix == CLIENT_AUTH_FIX
            && fix.contains("client id")
            && fix.contains("client secret")
            && fix.contains("authentication method")
    }

    #[test]
    fn a_refused_client_at_the_code_exchange_gets_the_client_authentication_hint() {
        for status in [400, 401, 403] {
            for code in ["unauthorized_client", "invalid_client"] {
                let fix = fix_of(provider(status, code));
                assert!(is_client_auth_hint(&fix), "{code} at HTTP {status}: {fix}");
            }
            let fix = fix_of(invalid_client(status, Some(details("invalid_client"))));
            assert!(
                is_client_auth_hint(&fix),
                "invalid_client at HTTP {status}: {fix}"
            );
        }
        // A bare 401 (the protocol reads it as invalid_client) and a bare 403.
        let fix = fix_of(invalid_client(401, None));
        assert!(is_client_auth_hint(&fix), "bare 401: {fix}");
        let fix = fix_of(bare(Endpoint::Token, 403));
        assert!(is_client_auth_hint(&fix), "bare 403: {fix}");
        // Through a failed refresh too.
        let refresh = EngineError::Refresh {
            instance: "box-1".to_string(),
            source: std::sync::Arc::new(provider(403, "unauthorized_client")),
        };
        assert!(is_client_auth_hint(&explain(&refresh).1));
    }

    #[test]
    fn other_refusals_do_not_blame_the_client_credentials() {
        for error in [
            provider(400, "invalid_request"),
            provider(403, "access_denied"),
            provider(404, "unauthorized_client"),
            bare(Endpoint::Token, 400),
            bare(Endpoint::Discovery, 403),
        ] {
            let text = error.to_string();
            let fix = fix_of(error);
            assert_ne!(fix, CLIENT_AUTH_FIX, "{text}");
        }
    }

    #[test]
    fn a_discover_failure_points_at_the_integrations_issuer_and_the_discover_button() {
        let issuer = "https://provider.example";
        for error in [
            ProtocolError::Discovery {
                issuer: issuer.to_string(),
                reason: "the metadata names another issuer".to_string(),
            },
            ProtocolError::NotAnEndpoint {
                endpoint: Endpoint::Discovery,
                url: format!("{issuer}/.well-known/openid-configuration"),
                problem: EndpointProblem::Status(404),
            },
            bare(Endpoint::Discovery, 200),
        ] {
            let text = error.to_string();
            let fix = fix_of(error);
            assert!(
                fix.contains("integration's page")
                    && fix.contains("issuer")
                    && fix.contains("\"Discover\""),
                "{text}: {fix}"
            );
            assert!(
                !fix.contains("Edit the instance") && !fix.contains("Get access token"),
                "{text}: the issuer is no instance setting: {fix}"
            );
        }
    }
    #[test]
    fn the_token_url_is_blamed_only_when_the_answer_is_no_token_endpoints() {
        const URL_FIX: &str = "token URL override";
        for problem in [
            EndpointProblem::Status(404),
            EndpointProblem::Redirect {
                status: 302,
                location: None,
            },
            EndpointProblem::Html {
                status: 200,
                content_type: "text/html".to_string(),
                excerpt: "Sign in".to_string(),
            },
            EndpointProblem::Unreachable("connection refused".to_string()),
        ] {
            let text = problem.to_string();
            let fix = fix_of(ProtocolError::NotAnEndpoint {
                endpoint: Endpoint::Token,
                url: TOKEN_URL.to_string(),
                problem,
            });
            assert!(fix.contains(URL_FIX), "{text}: {fix}");
        }
        for error in [
            bare(Endpoint::Token, 400),
            bare(Endpoint::Token, 200),
            provider(400, "invalid_json"),
        ] {
            let text = error.to_string();
            assert!(!text.contains("check that the URL"), "{text}");
            let fix = fix_of(error);
            assert!(!fix.contains(URL_FIX), "{text}: {fix}");
        }
    }

    #[test]
    fn the_providers_words_decide_the_client_authentication_hint() {
        let worded = |error: &str, description: &str| ProtocolError::Provider {
            operation: Operation::CodeExchange,
            url: TOKEN_URL.to_string(),
            status: 400,
            details: OAuthError {
                error: error.to_string(),
                description: Some(description.to_string()),
                uri: None,
            },
        };
        for (error, description) in [
            ("OAuthException", "Error validating client secret. (code 1)"),
            (
                "OAuthException",
                "Error validating application. Invalid application ID.",
            ),
            ("error", "Client authentication failed"),
        ] {
            let fix = fix_of(worded(error, description));
            assert!(is_client_auth_hint(&fix), "{description}: {fix}");
        }
        let fix = fix_of(worded("invalid_json", "Error parsing JSON body."));
        assert!(!is_client_auth_hint(&fix), "{fix}");
    }
}
