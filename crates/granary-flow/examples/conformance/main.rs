//! The flow conformance runner: full authorization code flows against a real oidc-provider, driven through the public API of `granary_flow::protocol` only.
//!
//! `cargo xtask conformance flow` starts the server and runs this with
//! `--issuer http://127.0.0.1:<port> --clients <clients.json>` (the file the server was
//! started with). It prints `PASS name` or `FAIL name: why` per scenario and ends with
//! `flow conformance: scenarios=N passed=N failed=N`; the exit status is non-zero on any failure.

mod user_agent;

use std::collections::{BTreeSet, HashMap};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use granary_flow::Error;
use granary_flow::protocol::{
    self, ClientAuth, ClientConfig, ExposeSecret, IssuerParameter, PendingAuthorization,
    ProviderMetadata, RetryPolicy, SecretString, Timeouts, TokenResponse, TokenTypeHint,
};
use serde_json::Value;
use url::Url;
use user_agent::Answer;

type Outcome = Result<(), String>;

/// Set by `--show-errors`: print the message of every expected error under its scenario.
static SHOW_ERRORS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A check of an error's kind.
type ErrorCheck = fn(&Error) -> bool;

/// Fails the scenario with a message unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Everything scenarios share: the server, its metadata, the clients, an HTTP client.
struct Env {
    issuer: String,
    metadata: ProviderMetadata,
    http: reqwest::Client,
    clients: HashMap<String, Client>,
    redirect_uri: Url,
}

struct Client {
    secret: Option<String>,
    auth_method: ClientAuth,
    access_token_ttl: Option<u64>,
}

/// Every scenario, by name, in the order they run; [`run_scenario`] runs each.
const SCENARIOS: &[&str] = &[
    "discovery",
    "client_secret_basic",
    "client_secret_post without PKCE",
    "secret with reserved characters (basic)",
    "secret with reserved characters (post)",
    "public client with PKCE and refresh-token rotation",
    "refresh after a short access-token lifetime",
    "narrower scope on refresh",
    "revoked refresh token",
    "replayed rotated refresh token",
    "wrong secret",
    "unknown scope at authorization",
    "wider scope on refresh",
    "user declines",
    "tampered state",
    "replayed state",
    "mismatched iss",
    "replayed code",
    "wrong verifier",
    "token URL that is not a token endpoint",
];

/// Runs the scenario `name` of [`SCENARIOS`]; a name without a scenario fails.
async fn run_scenario(name: &str, env: &Env) -> Outcome {
    match name {
        "discovery" => discovery(env).await,
        "client_secret_basic" => confidential(env, "basic", true).await,
        "client_secret_post without PKCE" => confidential(env, "post", false).await,
        "secret with reserved characters (basic)" => confidential(env, "reserved", true).await,
        "secret with reserved characters (post)" => reserved_post(env).await,
        "public client with PKCE and refresh-token rotation" => public_rotation(env).await,
        "refresh after a short access-token lifetime" => short_lifetime(env).await,
        "narrower scope on refresh" => narrower_scope(env).await,
        "revoked refresh token" => revocation(env).await,
        "replayed rotated refresh token" => replayed_refresh_token(env).await,
        "wrong secret" => wrong_secret(env).await,
        "unknown scope at authorization" => scope_not_allowed(env).await,
        "wider scope on refresh" => wider_scope(env).await,
        "user declines" => declined(env).await,
        "tampered state" => tampered_state(env).await,
        "replayed state" => replayed_state(env).await,
        "mismatched iss" => mismatched_iss(env).await,
        "replayed code" => replayed_code(env).await,
        "wrong verifier" => wrong_verifier(env).await,
        "token URL that is not a token endpoint" => not_a_token_endpoint(env).await,
        other => Err(format!("no scenario is named `{other}`")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // Counted from the scenarios defined, also when none can run: a failed setup fails
    // every one of them.
    let results: Vec<(&str, Outcome)> = match setup().await {
        Ok(env) => {
            let mut results = Vec::with_capacity(SCENARIOS.len());
            for &name in SCENARIOS {
                let outcome = run_scenario(name, &env).await;
                match &outcome {
                    Ok(()) => println!("PASS {name}"),
                    Err(why) => println!("FAIL {name}: {why}"),
                }
                results.push((name, outcome));
            }
            results
        }
        Err(why) => {
            println!("FAIL setup: {why}");
            SCENARIOS
                .iter()
                .map(|&name| {
                    println!("FAIL {name}: not run, the setup failed");
                    (name, Err(format!("the setup failed: {why}")))
                })
                .collect()
        }
    };
    let failed = results
        .iter()
        .filter(|(_, outcome)| outcome.is_err())
        .count();
    println!(
        "flow conformance: scenarios={} passed={} failed={}",
        results.len(),
        results.len() - failed,
        failed
    );
    if failed == 0 && !results.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn setup() -> Result<Env, String> {
    let mut issuer = None;
    let mut clients_path = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--issuer" => issuer = args.next(),
            "--clients" => clients_path = args.next(),
            "--show-errors" => SHOW_ERRORS.store(true, std::sync::atomic::Ordering::Relaxed),
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: --issuer URL --clients FILE [--show-errors]"
                ));
            }
        }
    }
    let issuer = issuer.ok_or("--issuer URL is required")?;
    let clients_path = clients_path.ok_or("--clients FILE is required")?;
    let text = std::fs::read_to_string(&clients_path)
        .map_err(|e| format!("cannot read {clients_path}: {e}"))?;
    let json: Value = serde_json::from_str(&text).map_err(|e| format!("{clients_path}: {e}"))?;
    let list = json
        .get("clients")
        .and_then(Value::as_array)
        .ok_or("the clients file has no `clients` array")?;
    let mut clients = HashMap::new();
    for client in list {
        let id = client["client_id"]
            .as_str()
            .ok_or("a client without client_id")?
            .to_string();
        let auth_method = match client["token_endpoint_auth_method"].as_str() {
            Some("client_secret_post") => ClientAuth::ClientSecretPost,
            Some("none") => ClientAuth::None,
            _ => ClientAuth::ClientSecretBasic,
        };
        clients.insert(
            id,
            Client {
                secret: client["client_secret"].as_str().map(str::to_string),
                auth_method,
                access_token_ttl: client["access_token_ttl"].as_u64(),
            },
        );
    }
    let http = protocol::http_client(&Timeouts {
        connect: Duration::from_secs(5),
        total: Duration::from_secs(20),
    })
    .map_err(|e| e.to_string())?;
    let metadata = protocol::discover(&http, &issuer)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Env {
        issuer,
        metadata,
        http,
        clients,
        redirect_uri: Url::parse("http://127.0.0.1/admin/oauth/").map_err(|e| e.to_string())?,
    })
}

impl Env {
    /// The configuration of a declared client, from discovery, asking for consent (so that
    /// offline_access yields a refresh token).
    fn config(&self, id: &str) -> Result<ClientConfig, String> {
        let client = self
            .clients
            .get(id)
            .ok_or_else(|| format!("the clients file has no client `{id}`"))?;
        let mut config = self
            .metadata
            .client_config(id)
            .with_authorization_param("prompt", "consent");
        config.auth_method = client.auth_method;
        config.client_secret = client.secret.clone().map(SecretString::from);
        Ok(config)
    }

    fn secret_of(&self, id: &str) -> String {
        self.clients
            .get(id)
            .and_then(|c| c.secret.clone())
            .unwrap_or_default()
    }

    /// Builds the authorization request and lets the user answer; returns the callback query.
    async fn authorize(
        &self,
        config: &ClientConfig,
        scopes: &[&str],
        answer: Answer,
    ) -> Result<(String, PendingAuthorization), String> {
        let (url, pending) =
            protocol::authorization_request(config, &self.redirect_uri, scopes, Some(&self.issuer))
                .map_err(|e| format!("authorization_request: {e}"))?;
        let query = user_agent::authorize(&url, &self.redirect_uri, answer).await?;
        Ok((query, pending))
    }

    /// A whole authorization: request, consent, callback check, code exchange.
    async fn connect(
        &self,
        config: &ClientConfig,
        scopes: &[&str],
    ) -> Result<(TokenResponse, PendingAuthorization), String> {
        let (query, pending) = self.authorize(config, scopes, Answer::Approve).await?;
        let code = protocol::parse_callback(&query, &pending, self.metadata.issuer_parameter())
            .map_err(|e| format!("parse_callback: {e}"))?;
        let tokens = protocol::exchange_code(&self.http, config, &code, &pending)
            .await
            .map_err(|e| format!("exchange_code: {e}"))?;
        Ok((tokens, pending))
    }

    /// Calls the userinfo endpoint with an access token: its status and body.
    async fn userinfo(&self, token: &SecretString) -> Result<(u16, Value), String> {
        let url = self
            .metadata
            .raw
            .get("userinfo_endpoint")
            .and_then(Value::as_str)
            .ok_or("no userinfo_endpoint")?;
        let response = self
            .http
            .get(url)
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(|e| format!("userinfo: {e}"))?;
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    async fn expect_userinfo_ok(&self, token: &SecretString) -> Outcome {
        let (status, body) = self.userinfo(token).await?;
        ensure!(
            status == 200,
            "userinfo refused the access token with {status}: {body}"
        );
        ensure!(body.get("sub").is_some(), "userinfo has no sub: {body}");
        Ok(())
    }
}

fn scope_set(scope: &Option<Vec<String>>) -> BTreeSet<String> {
    scope.iter().flatten().cloned().collect()
}

fn set_of(scopes: &[&str]) -> BTreeSet<String> {
    scopes.iter().map(|s| s.to_string()).collect()
}

/// Checks an error's variant and that its message says what to do and holds no secret.
fn expect_error<T>(
    result: Result<T, Error>,
    what: &str,
    is_kind: impl Fn(&Error) -> bool,
    says: &[&str],
    secrets: &[&str],
) -> Outcome {
    let error = match result {
        Ok(_) => return Err(format!("{what} succeeded, but must fail")),
        Err(error) => error,
    };
    let message = error.to_string();
    if SHOW_ERRORS.load(std::sync::atomic::Ordering::Relaxed) {
        println!("  {what}: {message}");
    }
    ensure!(
        is_kind(&error),
        "{what} failed with the wrong error: {error:?}"
    );
    for text in says {
        ensure!(
            message.contains(text),
            "the message of {what} does not say `{text}`: {message}"
        );
    }
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        ensure!(
            !message.contains(secret),
            "the message of {what} shows a secret: {message}"
        );
        ensure!(
            !format!("{error:?}").contains(secret),
            "the Debug of {what} shows a secret"
        );
    }
    Ok(())
}

const FULL: &[&str] = &["openid", "offline_access", "email", "profile"];

async fn discovery(env: &Env) -> Outcome {
    let m = &env.metadata;
    ensure!(
        m.issuer == env.issuer,
        "issuer {} != {}",
        m.issuer,
        env.issuer
    );
    ensure!(
        m.token_endpoint.as_str().starts_with(&env.issuer),
        "token endpoint {}",
        m.token_endpoint
    );
    ensure!(
        m.revocation_endpoint.is_some(),
        "no revocation endpoint discovered"
    );
    ensure!(
        m.issuer_parameter() == IssuerParameter::Required,
        "oidc-provider advertises iss in callbacks"
    );
    ensure!(
        m.source.path() == "/.well-known/oauth-authorization-server"
            || m.source.path() == "/.well-known/openid-configuration",
        "read from {}",
        m.source
    );
    let wrong = protocol::discover(&env.http, &format!("{}/", env.issuer)).await;
    expect_error(
        wrong,
        "discovery with another issuer string",
        |e| matches!(e, Error::Discovery { .. }),
        &["RFC 8414"],
        &[],
    )
}

/// A confidential client: connect, use the access token, refresh, use the new one.
async fn confidential(env: &Env, id: &str, pkce: bool) -> Outcome {
    let config = env.config(id)?.with_pkce(pkce);
    let (tokens, pending) = env.connect(&config, FULL).await?;
    ensure!(
        pending.code_verifier.is_some() == pkce,
        "PKCE on/off not honoured"
    );
    ensure!(tokens.is_bearer(), "token_type {:?}", tokens.token_type);
    ensure!(tokens.expires_in.is_some(), "no expires_in");
    ensure!(tokens.id_token.is_some(), "no id_token for scope openid");
    ensure!(
        scope_set(&tokens.scope) == set_of(FULL),
        "granted scope {:?}",
        tokens.scope
    );
    env.expect_userinfo_ok(&tokens.access_token).await?;
    let refresh_token = tokens
        .refresh_token
        .ok_or("no refresh token although offline_access and consent")?;
    let refreshed = protocol::refresh(
        &env.http,
        &config,
        &refresh_token,
        None::<&[&str]>,
        &RetryPolicy::none(),
    )
    .await
    .map_err(|e| format!("refresh: {e}"))?;
    ensure!(
        refreshed.tokens.access_token.expose_secret() != tokens.access_token.expose_secret(),
        "refresh returned the same access token"
    );
    env.expect_userinfo_ok(&refreshed.tokens.access_token).await
}

/// client_secret_post with the secret full of reserved characters.
async fn reserved_post(env: &Env) -> Outcome {
    let config = env
        .config("reserved")?
        .with_auth_method(ClientAuth::ClientSecretPost);
    let (tokens, _) = env.connect(&config, &["openid"]).await?;
    env.expect_userinfo_ok(&tokens.access_token).await
}

/// A public client: PKCE, a new refresh token at each refresh, each new one used in turn.
async fn public_rotation(env: &Env) -> Outcome {
    let config = env.config("public")?;
    ensure!(
        config.client_secret.is_none(),
        "the public client has a secret"
    );
    let (tokens, pending) = env.connect(&config, FULL).await?;
    ensure!(pending.code_verifier.is_some(), "no PKCE verifier");
    let mut current = tokens.refresh_token.ok_or("no refresh token")?;
    let mut seen = vec![current.expose_secret().to_string()];
    for round in 1..=3 {
        let refreshed = protocol::refresh(
            &env.http,
            &config,
            &current,
            None::<&[&str]>,
            &RetryPolicy::none(),
        )
        .await
        .map_err(|e| format!("refresh {round}: {e}"))?;
        ensure!(
            refreshed.rotated,
            "refresh {round}: the public client's refresh token was not rotated"
        );
        let new = refreshed.refresh_token.expose_secret().to_string();
        ensure!(
            !seen.contains(&new),
            "refresh {round}: an old refresh token came back"
        );
        env.expect_userinfo_ok(&refreshed.tokens.access_token)
            .await?;
        seen.push(new);
        current = refreshed.refresh_token;
    }
    Ok(())
}

/// An access token of a few seconds dies at the resource server; a refresh brings a live one.
async fn short_lifetime(env: &Env) -> Outcome {
    let ttl = env
        .clients
        .get("short")
        .and_then(|c| c.access_token_ttl)
        .ok_or("client `short` has no access_token_ttl")?;
    let config = env.config("short")?;
    let (tokens, _) = env.connect(&config, FULL).await?;
    let received = Instant::now();
    let lifetime = tokens.expires_in.ok_or("no expires_in")?;
    ensure!(
        lifetime <= Duration::from_secs(ttl),
        "expires_in {lifetime:?} is longer than the configured {ttl}s"
    );
    env.expect_userinfo_ok(&tokens.access_token).await?;
    tokio::time::sleep((lifetime + Duration::from_millis(1500)).saturating_sub(received.elapsed()))
        .await;
    let (status, _) = env.userinfo(&tokens.access_token).await?;
    ensure!(
        status == 401,
        "the expired access token still worked ({status})"
    );
    let refresh_token = tokens.refresh_token.ok_or("no refresh token")?;
    let refreshed = protocol::refresh(
        &env.http,
        &config,
        &refresh_token,
        None::<&[&str]>,
        &RetryPolicy::default(),
    )
    .await
    .map_err(|e| format!("refresh: {e}"))?;
    env.expect_userinfo_ok(&refreshed.tokens.access_token).await
}

async fn narrower_scope(env: &Env) -> Outcome {
    let config = env.config("basic")?;
    let (tokens, _) = env.connect(&config, FULL).await?;
    let (_, before) = env.userinfo(&tokens.access_token).await?;
    ensure!(
        before.get("name").is_some(),
        "profile claims missing before the refresh: {before}"
    );
    let narrower = ["openid", "email"];
    let refresh_token = tokens.refresh_token.ok_or("no refresh token")?;
    let refreshed = protocol::refresh(
        &env.http,
        &config,
        &refresh_token,
        Some(&narrower[..]),
        &RetryPolicy::none(),
    )
    .await
    .map_err(|e| format!("refresh with a narrower scope: {e}"))?;
    ensure!(
        scope_set(&refreshed.tokens.scope) == set_of(&narrower),
        "the refreshed scope is {:?}, not {narrower:?}",
        refreshed.tokens.scope
    );
    let (status, after) = env.userinfo(&refreshed.tokens.access_token).await?;
    ensure!(
        status == 200 && after.get("email").is_some(),
        "email missing after the refresh: {after}"
    );
    ensure!(
        after.get("name").is_none(),
        "profile claims still granted after narrowing: {after}"
    );
    Ok(())
}

async fn revocation(env: &Env) -> Outcome {
    let config = env.config("basic")?;
    let (tokens, _) = env.connect(&config, FULL).await?;
    let refresh_token = tokens.refresh_token.ok_or("no refresh token")?;
    protocol::revoke(
        &env.http,
        &config,
        &refresh_token,
        Some(TokenTypeHint::RefreshToken),
    )
    .await
    .map_err(|e| format!("revoke: {e}"))?;
    let result = protocol::refresh(
        &env.http,
        &config,
        &refresh_token,
        None::<&[&str]>,
        &RetryPolicy::default(),
    )
    .await;
    expect_error(
        result,
        "a refresh with a revoked token",
        |e| {
            matches!(e, Error::AuthorizationGone { .. })
                && e.needs_reauthorization()
                && !e.is_transient()
        },
        &["authorize again"],
        &[refresh_token.expose_secret()],
    )
}

/// Why a rotated refresh token must replace the old one at once: replaying the old one
/// is refused, and the provider then revokes the new one too.
async fn replayed_refresh_token(env: &Env) -> Outcome {
    let config = env.config("public")?;
    let (tokens, _) = env.connect(&config, FULL).await?;
    let old = tokens.refresh_token.ok_or("no refresh token")?;
    let refreshed = protocol::refresh(
        &env.http,
        &config,
        &old,
        None::<&[&str]>,
        &RetryPolicy::none(),
    )
    .await
    .map_err(|e| format!("refresh: {e}"))?;
    ensure!(refreshed.rotated, "not rotated");
    let replay = protocol::refresh(
        &env.http,
        &config,
        &old,
        None::<&[&str]>,
        &RetryPolicy::default(),
    )
    .await;
    expect_error(
        replay,
        "a replay of a rotated refresh token",
        |e| matches!(e, Error::AuthorizationGone { .. }),
        &["authorize again"],
        &[old.expose_secret()],
    )?;
    let after = protocol::refresh(
        &env.http,
        &config,
        &refreshed.refresh_token,
        None::<&[&str]>,
        &RetryPolicy::none(),
    )
    .await;
    expect_error(
        after,
        "the new token after a replay",
        |e| matches!(e, Error::AuthorizationGone { .. }),
        &[],
        &[],
    )
}

async fn wrong_secret(env: &Env) -> Outcome {
    for method in [ClientAuth::ClientSecretBasic, ClientAuth::ClientSecretPost] {
        let good = env.config("basic")?;
        let (query, pending) = env.authorize(&good, FULL, Answer::Approve).await?;
        let code = protocol::parse_callback(&query, &pending, env.metadata.issuer_parameter())
            .map_err(|e| e.to_string())?;
        let wrong = "not-the-secret-42";
        let bad = good.clone().with_secret(SecretString::from(wrong), method);
        let result = protocol::exchange_code(&env.http, &bad, &code, &pending).await;
        expect_error(
            result,
            &format!("an exchange with a wrong secret ({method})"),
            |e| {
                matches!(e, Error::InvalidClient { status: 401, .. })
                    && e.is_configuration_problem()
            },
            &[
                "check client_id, client_secret and the authentication method",
                method.as_str(),
            ],
            &[wrong, &env.secret_of("basic"), code.code.expose_secret()],
        )?;
    }
    Ok(())
}

async fn scope_not_allowed(env: &Env) -> Outcome {
    // `phone` is a scope of the server that the client `basic` may not ask for.
    let config = env.config("basic")?;
    let (query, pending) = env
        .authorize(&config, &["openid", "phone"], Answer::Approve)
        .await?;
    let result = protocol::parse_callback(&query, &pending, env.metadata.issuer_parameter());
    expect_error(
        result,
        "a callback for a scope the client may not have",
        |e| {
            matches!(e, Error::InvalidScope { .. })
                && e.oauth_error().is_some_and(|d| d.error == "invalid_scope")
        },
        &["refused the scopes [openid phone]", "request only scopes"],
        &[],
    )
}

async fn wider_scope(env: &Env) -> Outcome {
    let config = env.config("basic")?;
    let (tokens, _) = env
        .connect(&config, &["openid", "offline_access", "email"])
        .await?;
    let refresh_token = tokens.refresh_token.ok_or("no refresh token")?;
    let wider = ["openid", "email", "profile"];
    let result = protocol::refresh(
        &env.http,
        &config,
        &refresh_token,
        Some(&wider[..]),
        &RetryPolicy::default(),
    )
    .await;
    expect_error(
        result,
        "a refresh with a wider scope",
        |e| matches!(e, Error::InvalidScope { .. }),
        &["[openid email profile]"],
        &[refresh_token.expose_secret()],
    )
}

async fn declined(env: &Env) -> Outcome {
    let config = env.config("basic")?;
    let (query, pending) = env.authorize(&config, FULL, Answer::Decline).await?;
    let result = protocol::parse_callback(&query, &pending, env.metadata.issuer_parameter());
    expect_error(
        result,
        "a declined authorization",
        |e| matches!(e, Error::AccessDenied { .. }) && e.needs_reauthorization(),
        &["declined"],
        &[],
    )
}

/// Replaces one parameter of a callback query.
fn with_param(query: &str, name: &str, value: Option<&str>) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (key, old) in url::form_urlencoded::parse(query.as_bytes()) {
        if key == name {
            if let Some(value) = value {
                out.append_pair(&key, value);
            }
        } else {
            out.append_pair(&key, &old);
        }
    }
    out.finish()
}

async fn tampered_state(env: &Env) -> Outcome {
    let config = env.config("basic")?;
    let (query, pending) = env.authorize(&config, FULL, Answer::Approve).await?;
    let mut state = pending.state.clone();
    let last = if state.ends_with('A') { "B" } else { "A" };
    state.replace_range(state.len() - 1.., last);
    for (what, tampered) in [
        (
            "a callback with a tampered state",
            with_param(&query, "state", Some(&state)),
        ),
        (
            "a callback without state",
            with_param(&query, "state", None),
        ),
    ] {
        let result = protocol::parse_callback(&tampered, &pending, env.metadata.issuer_parameter());
        expect_error(
            result,
            what,
            |e| matches!(e, Error::StateMismatch),
            &["start the authorization again"],
            &[],
        )?;
    }
    Ok(())
}

/// A callback that was already used, replayed into the next authorization of the same client.
async fn replayed_state(env: &Env) -> Outcome {
    let config = env.config("basic")?;
    let (first_query, first) = env.authorize(&config, FULL, Answer::Approve).await?;
    let code = protocol::parse_callback(&first_query, &first, env.metadata.issuer_parameter())
        .map_err(|e| e.to_string())?;
    protocol::exchange_code(&env.http, &config, &code, &first)
        .await
        .map_err(|e| format!("first exchange: {e}"))?;
    let (_, second) = env.authorize(&config, FULL, Answer::Approve).await?;
    ensure!(
        protocol::callback_state(&first_query).as_deref() == Some(first.state.as_str()),
        "callback_state"
    );
    let result = protocol::parse_callback(&first_query, &second, env.metadata.issuer_parameter());
    expect_error(
        result,
        "a replayed callback",
        |e| matches!(e, Error::StateMismatch),
        &["replayed"],
        &[],
    )
}

async fn mismatched_iss(env: &Env) -> Outcome {
    let config = env.config("basic")?;
    let (query, pending) = env.authorize(&config, FULL, Answer::Approve).await?;
    ensure!(
        protocol::parse_callback(&query, &pending, IssuerParameter::Required).is_ok(),
        "the genuine callback was refused"
    );
    let other = with_param(&query, "iss", Some("http://127.0.0.1:9"));
    let result = protocol::parse_callback(&other, &pending, env.metadata.issuer_parameter());
    expect_error(
        result,
        "a callback from another issuer",
        |e| matches!(e, Error::IssuerMismatch { .. }),
        &["mix-up"],
        &[],
    )?;
    let missing = with_param(&query, "iss", None);
    let result = protocol::parse_callback(&missing, &pending, env.metadata.issuer_parameter());
    expect_error(
        result,
        "a callback without iss",
        |e| matches!(e, Error::IssuerMissing { .. }),
        &["RFC 9207"],
        &[],
    )
}

async fn replayed_code(env: &Env) -> Outcome {
    let config = env.config("basic")?;
    let (query, pending) = env.authorize(&config, FULL, Answer::Approve).await?;
    let code = protocol::parse_callback(&query, &pending, env.metadata.issuer_parameter())
        .map_err(|e| e.to_string())?;
    let tokens = protocol::exchange_code(&env.http, &config, &code, &pending)
        .await
        .map_err(|e| format!("first exchange: {e}"))?;
    let again = protocol::exchange_code(&env.http, &config, &code, &pending).await;
    expect_error(
        again,
        "a second exchange of one code",
        |e| matches!(e, Error::CodeRejected { .. }) && e.needs_reauthorization(),
        &["already used", "start the authorization again"],
        &[code.code.expose_secret()],
    )?;
    // oidc-provider revokes what the code gave when it is replayed.
    let refresh_token = tokens.refresh_token.ok_or("no refresh token")?;
    let result = protocol::refresh(
        &env.http,
        &config,
        &refresh_token,
        None::<&[&str]>,
        &RetryPolicy::none(),
    )
    .await;
    expect_error(
        result,
        "a refresh after a code replay",
        |e| matches!(e, Error::AuthorizationGone { .. }),
        &[],
        &[],
    )
}

async fn wrong_verifier(env: &Env) -> Outcome {
    let config = env.config("public")?;
    let (query, pending) = env.authorize(&config, FULL, Answer::Approve).await?;
    let code = protocol::parse_callback(&query, &pending, env.metadata.issuer_parameter())
        .map_err(|e| e.to_string())?;
    let (_, other) =
        protocol::authorization_request(&config, &env.redirect_uri, FULL, Some(&env.issuer))
            .map_err(|e| e.to_string())?;
    let forged = PendingAuthorization {
        code_verifier: other.code_verifier.clone(),
        ..pending.clone()
    };
    let wrong = other
        .code_verifier
        .as_ref()
        .map(|v| v.expose_secret().to_string())
        .unwrap_or_default();
    let result = protocol::exchange_code(&env.http, &config, &code, &forged).await;
    expect_error(
        result,
        "an exchange with a wrong PKCE verifier",
        |e| matches!(e, Error::CodeRejected { .. }),
        &["PKCE verifier"],
        &[&wrong, code.code.expose_secret()],
    )
}

async fn not_a_token_endpoint(env: &Env) -> Outcome {
    let base = Url::parse(&env.issuer).map_err(|e| e.to_string())?;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        drop(listener);
        format!("http://127.0.0.1:{port}/token")
    };
    let cases: [(&str, String, ErrorCheck); 4] = [
        ("a 404 path", format!("{}/oauth/token", env.issuer), |e| {
            matches!(
                e,
                Error::NotAnEndpoint {
                    problem: granary_flow::EndpointProblem::Status(404),
                    ..
                }
            )
        }),
        (
            "the authorization endpoint",
            env.metadata.authorization_endpoint.to_string(),
            |e| {
                matches!(
                    e,
                    Error::NotAnEndpoint {
                        problem: granary_flow::EndpointProblem::Status(404),
                        ..
                    }
                )
            },
        ),
        (
            "an HTML page",
            base.join("/__granary/page")
                .map_err(|e| e.to_string())?
                .to_string(),
            |e| {
                matches!(
                    e,
                    Error::NotAnEndpoint {
                        problem: granary_flow::EndpointProblem::Html { .. },
                        ..
                    }
                )
            },
        ),
        ("a closed port", closed, |e| {
            matches!(
                e,
                Error::NotAnEndpoint {
                    problem: granary_flow::EndpointProblem::Unreachable(_),
                    ..
                }
            ) && e.is_transient()
        }),
    ];
    for (what, url, is_kind) in cases {
        let good = env.config("basic")?;
        let (query, pending) = env.authorize(&good, FULL, Answer::Approve).await?;
        let code = protocol::parse_callback(&query, &pending, env.metadata.issuer_parameter())
            .map_err(|e| e.to_string())?;
        let mut config = good.clone();
        config.token_url = Url::parse(&url).map_err(|e| e.to_string())?;
        let result = protocol::exchange_code(&env.http, &config, &code, &pending).await;
        expect_error(
            result,
            &format!("an exchange at {what}"),
            is_kind,
            &[&url, "does not look like a token endpoint"],
            &[&env.secret_of("basic"), code.code.expose_secret()],
        )?;
        // Nothing was spent: the real token endpoint still takes the code.
        protocol::exchange_code(&env.http, &good, &code, &pending)
            .await
            .map_err(|e| format!("the code should still be valid: {e}"))?;
    }
    Ok(())
}
