//! The one rule for every provider URL granary is told to use (instance overrides, the URLs
//! of an imported document, a discovery issuer): https; http only for a loopback host, unless
//! the operator allows plain http (`allow_insecure_http`); no other scheme.

use std::net::IpAddr;

use url::Url;

/// The setting that lets plain http reach hosts other than loopback, for messages.
pub const ALLOW_INSECURE_HTTP: &str =
    "allow_insecure_http = true (GRANARY_ALLOW_INSECURE_HTTP=true)";

/// Whether `url`'s host is a loopback address or name (`localhost`, `*.localhost`,
/// 127.0.0.0/8, `::1`).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Checks a provider URL against the rule: `https`, or `http` to a loopback host (any host
/// when `allow_insecure_http`). `what` names the URL in the message ("the token URL").
///
/// # Errors
/// A message that names the URL, the rule and the setting.
pub fn check_provider_url(what: &str, url: &Url, allow_insecure_http: bool) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure_http || is_loopback(url) => Ok(()),
        "http" => Err(format!(
            "{what} {url} uses plain http to a host that is not loopback: use https (plain http \
             is accepted only for localhost and 127.0.0.1, unless the server runs with \
             {ALLOW_INSECURE_HTTP})"
        )),
        scheme => Err(format!(
            "{what} has the scheme `{scheme}:`; only https URLs (and http for localhost) are \
             accepted"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, allow: bool) -> Result<(), String> {
        check_provider_url("the token URL", &Url::parse(url).unwrap(), allow)
    }

    #[test]
    fn https_everywhere_http_only_for_loopback_unless_allowed() {
        assert!(check("https://as.example/token", false).is_ok());
        for loopback in [
            "http://127.0.0.1:8080/t",
            "http://127.1.2.3/t",
            "http://localhost/t",
            "http://app.localhost/t",
            "http://[::1]:9/t",
        ] {
            assert!(check(loopback, false).is_ok(), "{loopback}");
        }
        let err = check("http://as.example/token", false).unwrap_err();
        assert!(
            err.contains("use https") && err.contains("allow_insecure_http"),
            "{err}"
        );
        assert!(check("http://10.0.0.1/token", false).is_err());
        assert!(check("http://localhost.evil.example/t", false).is_err());
        assert!(check("http://as.example/token", true).is_ok());
        for bad in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "ftp://as.example/t",
            "data:text/html,x",
        ] {
            let err = check(bad, true).unwrap_err();
            assert!(err.contains("only https URLs"), "{bad}: {err}");
            assert!(!err.contains("alert"), "{err}");
        }
    }
}
