//! What the end-to-end binaries (`browser`, `load`, `lifecycle`, `multinode`) share:
//! `--name value` arguments, the tokio runtime, the Box fixture pointed at a provider, and
//! granary's admin page and the provider's devInteractions forms driven over plain HTTP (no
//! browser); and in modules, a `granary serve` process and its REST API ([`server`]), the
//! fault proxy in front of the provider's token endpoint ([`token_proxy`]), and a scenario's
//! outcome and line ([`scenario`]).

pub mod scenario;
pub mod server;
pub mod token_proxy;

use std::collections::HashMap;
use std::process::ExitCode;

use reqwest::{Client, StatusCode, Url};

/// The arguments of a command line, every one a `--name value` pair.
pub struct Flags {
    values: HashMap<String, String>,
    hint: &'static str,
}

impl Flags {
    /// Reads `args` (without the program name) as `--name value` pairs; a later pair wins
    /// over an earlier one of the same name. `hint` follows the message of a missing
    /// required argument (`--NAME is required{hint}`).
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        hint: &'static str,
    ) -> Result<Self, String> {
        let mut values = HashMap::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let name = arg
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {arg}"))?
                .to_string();
            let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
            values.insert(name, value);
        }
        Ok(Flags { values, hint })
    }

    /// The value of `--name`, if given.
    pub fn optional(&mut self, name: &str) -> Option<String> {
        self.values.remove(name)
    }

    /// The value of `--name`, which must be given.
    pub fn required(&mut self, name: &str) -> Result<String, String> {
        let hint = self.hint;
        self.optional(name)
            .ok_or_else(|| format!("--{name} is required{hint}"))
    }
}

/// A multi-threaded tokio runtime (with `workers` worker threads, or one per core); when it
/// cannot start, says so on stderr as `program` and gives the exit code to end with.
pub fn runtime(program: &str, workers: Option<usize>) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = workers {
        builder.worker_threads(workers);
    }
    builder.enable_all().build().map_err(|e| {
        eprintln!("{program}: cannot start the runtime: {e}");
        ExitCode::FAILURE
    })
}

/// The Box document of the OpenAPI fixtures, its authorization and token URLs pointed at
/// `issuer`.
pub fn box_document(issuer: &str) -> Result<String, String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../crates/granary-openapi/tests/fixtures/box.json"
    );
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    Ok(text
        .replace(
            "https://account.box.com/api/oauth2/authorize",
            &format!("{issuer}/auth"),
        )
        .replace(
            "https://api.box.com/oauth2/token",
            &format!("{issuer}/token"),
        ))
}

/// The value of the form field `name` (`name="NAME" value="..."`) on an HTML page.
pub fn hidden(html: &str, name: &str) -> Result<String, String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .ok_or_else(|| format!("no {name} field on the page"))?
        + marker.len();
    let end = html[start..].find('"').ok_or("unterminated value")? + start;
    Ok(html[start..end].to_string())
}

/// Where `response` redirects to, relative to `base`.
pub fn location(response: &reqwest::Response, base: &Url) -> Result<Url, String> {
    let value = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            format!(
                "{} answered {} without a Location",
                response.url(),
                response.status()
            )
        })?;
    base.join(value)
        .map_err(|e| format!("bad Location {value}: {e}"))
}

fn error(e: reqwest::Error) -> String {
    e.to_string()
}

/// Sends `request` and reads the body of its answer, whatever the status.
pub async fn text(request: reqwest::RequestBuilder) -> Result<String, String> {
    request
        .send()
        .await
        .map_err(error)?
        .text()
        .await
        .map_err(error)
}

/// Signs in to the admin page of `base` with `admin_token` (`http` keeps the cookies and
/// does not follow redirects), and returns the CSRF token of the admin home page.
pub async fn sign_in(http: &Client, base: &str, admin_token: &str) -> Result<String, String> {
    let page = text(http.get(format!("{base}/admin/login"))).await?;
    http.post(format!("{base}/admin/login"))
        .form(&[
            ("csrf", hidden(&page, "csrf")?.as_str()),
            ("token", admin_token),
        ])
        .send()
        .await
        .map_err(error)?;
    let home = text(http.get(format!("{base}/admin/"))).await?;
    hidden(&home, "csrf")
}

/// How an authorization through the provider ended, when every request was answered.
pub enum Authorization {
    /// The callback redirected to the instance's admin page.
    Connected,
    /// The callback answered otherwise: its status and the first 300 characters of its body.
    Callback(StatusCode, String),
    /// The provider had not redirected back to granary after 20 steps.
    NotBack,
}

/// Starts the authorization of instance `id` on the admin page of `base` (signed in, with
/// its `csrf` token), signs in at the provider `issuer` as `user` (password `user`) and
/// consents (oidc-provider's devInteractions forms), and follows the callback.
pub async fn authorize(
    http: &Client,
    base: &str,
    issuer: &str,
    id: &str,
    csrf: &str,
    user: &str,
) -> Result<Authorization, String> {
    let started = start_authorization(http, base, id, csrf).await?;
    match through_provider(http, issuer, base, started, user).await? {
        Some(callback) => follow_callback(http, callback, id).await,
        None => Ok(Authorization::NotBack),
    }
}

/// Clicks "Get access token" of instance `id` on the admin page of `base`: the provider's
/// authorization URL it redirects to.
pub async fn start_authorization(
    http: &Client,
    base: &str,
    id: &str,
    csrf: &str,
) -> Result<reqwest::Response, String> {
    http.post(format!("{base}/admin/instances/{id}/authorize"))
        .form(&[("csrf", csrf)])
        .send()
        .await
        .map_err(error)
}

/// Follows `started` (the answer that redirects to the provider `issuer`) through the
/// provider: GETs are followed, its login (as `user`, password `user`) and consent forms
/// posted, until it redirects to a URL under `public_url` (granary's callback), which is
/// returned unrequested; `None` when it had not after 20 steps.
pub async fn through_provider(
    http: &Client,
    issuer: &str,
    public_url: &str,
    started: reqwest::Response,
    user: &str,
) -> Result<Option<Url>, String> {
    let issuer = Url::parse(issuer).map_err(|e| e.to_string())?;
    let mut next = location(&started, &issuer)?;
    for _ in 0..20 {
        if next.as_str().starts_with(public_url) {
            return Ok(Some(next));
        }
        let response = http.get(next.clone()).send().await.map_err(error)?;
        if response.status().is_redirection() {
            next = location(&response, &next)?;
            continue;
        }
        let page = response.text().await.map_err(error)?;
        let form: Vec<(&str, &str)> = if page.contains("name=\"login\"") {
            vec![("prompt", "login"), ("login", user), ("password", user)]
        } else {
            vec![("prompt", "consent")]
        };
        let posted = http
            .post(next.clone())
            .form(&form)
            .send()
            .await
            .map_err(error)?;
        next = location(&posted, &next)?;
    }
    Ok(None)
}

/// Requests granary's `callback` URL of instance `id`: [`Authorization::Connected`] when it
/// redirects to the instance's admin page.
pub async fn follow_callback(
    http: &Client,
    callback: Url,
    id: &str,
) -> Result<Authorization, String> {
    let done = http.get(callback.clone()).send().await.map_err(error)?;
    if done.status() != 303
        || location(&done, &callback)?.path() != format!("/admin/instances/{id}")
    {
        let status = done.status();
        let body = done.text().await.unwrap_or_default();
        return Ok(Authorization::Callback(
            status,
            body.chars().take(300).collect(),
        ));
    }
    Ok(Authorization::Connected)
}
