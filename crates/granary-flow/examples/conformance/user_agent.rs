//! A browser stand-in: follows oidc-provider's redirects and submits its devInteractions login and consent forms with plain HTTP.

use url::Url;

/// Redirects and forms followed before giving up.
const MAX_HOPS: usize = 20;

/// What the user does at the provider.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Sign in and approve.
    Approve,
    /// Cancel at the first form (oidc-provider answers `access_denied`).
    Decline,
}

/// Takes the authorization URL through sign-in and consent and returns the query of the
/// redirect to `redirect_uri` (which is not fetched). Each call uses a fresh cookie jar, so
/// every authorization signs in anew; the jar honours cookie paths, as oidc-provider needs.
pub async fn authorize(
    authorization_url: &Url,
    redirect_uri: &Url,
    answer: Answer,
) -> Result<String, String> {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the user agent: {e}"))?;
    let mut url = authorization_url.clone();
    for _ in 0..MAX_HOPS {
        let response = http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status();
        if status.is_redirection() {
            let next = location(&url, &response)?;
            if is_redirect_uri(&next, redirect_uri) {
                return Ok(next.query().unwrap_or_default().to_string());
            }
            url = next;
            continue;
        }
        let body = response
            .text()
            .await
            .map_err(|e| format!("reading {url}: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {url} answered {status}: {}", shorten(&body)));
        }
        let prompt = if body.contains(r#"name="prompt" value="login""#) {
            "login"
        } else if body.contains(r#"name="prompt" value="consent""#) {
            "consent"
        } else {
            return Err(format!(
                "{url} is neither a login nor a consent form: {}",
                shorten(&body)
            ));
        };
        let response = if answer == Answer::Decline {
            let mut abort = url.clone();
            abort.set_path(&format!("{}/abort", url.path().trim_end_matches('/')));
            http.get(abort).send().await
        } else if prompt == "login" {
            let form = [
                ("prompt", "login"),
                ("login", "conformance-user"),
                ("password", "any"),
            ];
            http.post(url.clone()).form(&form).send().await
        } else {
            http.post(url.clone())
                .form(&[("prompt", "consent")])
                .send()
                .await
        }
        .map_err(|e| format!("submitting the {prompt} form at {url}: {e}"))?;
        if !response.status().is_redirection() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(format!(
                "the {prompt} form at {url} answered {status}: {}",
                shorten(&body)
            ));
        }
        let next = location(&url, &response)?;
        if is_redirect_uri(&next, redirect_uri) {
            return Ok(next.query().unwrap_or_default().to_string());
        }
        url = next;
    }
    Err(format!(
        "no redirect to {redirect_uri} after {MAX_HOPS} steps"
    ))
}

/// The `Location` of a redirect, resolved against the URL that answered it.
fn location(base: &Url, response: &reqwest::Response) -> Result<Url, String> {
    let value = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("{base} redirected without a Location"))?;
    base.join(value)
        .map_err(|e| format!("bad Location {value} from {base}: {e}"))
}

fn is_redirect_uri(url: &Url, redirect_uri: &Url) -> bool {
    url.scheme() == redirect_uri.scheme()
        && url.host_str() == redirect_uri.host_str()
        && url.port_or_known_default() == redirect_uri.port_or_known_default()
        && url.path() == redirect_uri.path()
}

fn shorten(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    flat.chars().take(200).collect()
}
