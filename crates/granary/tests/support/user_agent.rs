//! A browser stand-in for oidc-provider's devInteractions: follows its redirects and posts
//! its login and consent forms with plain HTTP, and stops at the redirect URI.

use url::Url;

/// Hops before giving up.
const MAX_HOPS: usize = 20;

/// Takes `authorization_url` through sign-in and consent and returns the query of the
/// redirect to `redirect_uri` (which is not fetched). A fresh cookie jar per call; the jar
/// honours cookie paths, as oidc-provider needs.
pub async fn authorize(authorization_url: &Url, redirect_uri: &Url) -> Result<String, String> {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let mut url = authorization_url.clone();
    let mut post: Option<&'static [(&'static str, &'static str)]> = None;
    for _ in 0..MAX_HOPS {
        let response = match post {
            Some(form) => http.post(url.clone()).form(form).send().await,
            None => http.get(url.clone()).send().await,
        }
        .map_err(|e| format!("{url}: {e}"))?;
        post = None;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| format!("{url} redirected without a Location"))?;
            let next = url
                .join(location)
                .map_err(|e| format!("bad Location {location}: {e}"))?;
            if next.origin() == redirect_uri.origin() && next.path() == redirect_uri.path() {
                return Ok(next.query().unwrap_or_default().to_string());
            }
            url = next;
            continue;
        }
        let body = response.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{url} answered {status}"));
        }
        post = if body.contains(r#"name="prompt" value="login""#) {
            Some(&[
                ("prompt", "login"),
                ("login", "facade-user"),
                ("password", "any"),
            ])
        } else if body.contains(r#"name="prompt" value="consent""#) {
            Some(&[("prompt", "consent")])
        } else {
            return Err(format!("{url} is neither a login nor a consent form"));
        };
    }
    Err(format!(
        "no redirect to {redirect_uri} after {MAX_HOPS} hops"
    ))
}
