//! One run of the lifecycle through granary's engine against the emulator: authorize,
//! callback, exchange, kept values, an API call, refresh by the profile's strategy,
//! revocation; with the catalogue profile (pointed at the emulator) or without any.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use granary_flow::engine::{AccessToken, Engine, Keyring, ManualClock, MasterKey, NewInstance};
use granary_flow::profile::{ProviderProfile, RefreshKind};
use granary_flow::protocol::RetryPolicy;
use granary_providers_conformance::{Behaviour, CLIENT_ID, CLIENT_SECRET, Emulator, Refusal, fill};
use granary_store::{MemoryStore, Timestamp};
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;

use crate::fields;
use crate::rewrite::profile_at;

const INTEGRATION: &str = "provider";
const INSTANCE: &str = "conn";
/// Long enough for any token that expires to have expired.
const LONG: Duration = Duration::from_secs(400 * 24 * 3600);

/// With the catalogue profile (as the instance's own layer), or with `{"use": "none"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    With,
    Without,
}

/// The step of the lifecycle that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Setup,
    Authorize,
    Exchange,
    Kept,
    Api,
    Refresh,
    Revoke,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Setup => "setup",
            Stage::Authorize => "authorize",
            Stage::Exchange => "exchange",
            Stage::Kept => "kept fields",
            Stage::Api => "api",
            Stage::Refresh => "refresh",
            Stage::Revoke => "revocation",
        }
    }
}

/// Why a run failed: the step and what was seen (the emulator's refusal where it refused).
#[derive(Debug)]
pub struct Failure {
    pub stage: Stage,
    pub reason: String,
}

fn fail(stage: Stage, reason: impl std::fmt::Display) -> Failure {
    Failure {
        stage,
        reason: reason.to_string(),
    }
}

/// What one run gave: notes on what it proved (or the failure), and every refusal of the
/// emulator.
pub struct Outcome {
    pub result: Result<Vec<String>, Failure>,
    pub refusals: Vec<Refusal>,
}

/// Runs the lifecycle of `profile` against an emulator behaving like `b`.
pub async fn run(profile: &ProviderProfile, b: &Behaviour, mode: Mode) -> Outcome {
    let emu = match Emulator::start(b.clone()).await {
        Ok(emu) => emu,
        Err(e) => {
            return Outcome {
                result: Err(fail(
                    Stage::Setup,
                    format!("the emulator did not start: {e}"),
                )),
                refusals: Vec::new(),
            };
        }
    };
    let mut result = steps(&emu, profile, b, mode).await;
    let refusals = emu.refusals();
    // Where the emulator refused, its words say best why the step failed.
    if let (Err(failure), Some(last)) = (&mut result, refusals.last()) {
        if failure.stage == Stage::Authorize {
            failure.reason = format!(
                "the provider refused the authorization request (HTTP {} {}: {})",
                last.status, last.error, last.reason
            );
        } else if failure.stage != Stage::Setup && !failure.reason.contains(&last.reason) {
            failure.reason = format!(
                "{} (the provider refused at its {} endpoint: HTTP {} {}: {})",
                failure.reason, last.endpoint, last.status, last.error, last.reason
            );
        }
    }
    emu.stop().await;
    Outcome { result, refusals }
}

fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    Timestamp::from_unix_millis(i64::try_from(millis).unwrap_or(i64::MAX))
}

/// The OpenAPI document of the provider: its authorization and token URLs (the example
/// connection's, at the emulator) and its scopes.
fn document(emu: &Emulator, b: &Behaviour) -> Value {
    let scopes: serde_json::Map<String, Value> = b
        .scopes
        .iter()
        .map(|s| ((*s).to_owned(), json!(s)))
        .collect();
    json!({
        "openapi": "3.0.3",
        "info": {"title": b.name, "version": "1"},
        "servers": [{"url": emu.origin()}],
        "paths": {},
        "components": {"securitySchemes": {"oauth": {"type": "oauth2", "flows": {
            "authorizationCode": {
                "authorizationUrl": emu.example_url(b.authorization_url()),
                "tokenUrl": emu.example_url(b.token_url()),
                "scopes": scopes
            }
        }}}}
    })
}

async fn steps(
    emu: &Emulator,
    profile: &ProviderProfile,
    b: &Behaviour,
    mode: Mode,
) -> Result<Vec<String>, Failure> {
    let mut notes = Vec::new();
    let clock = Arc::new(ManualClock::new(now()));
    let (key, _) = MasterKey::generate();
    let public = Url::parse("https://granary.test").map_err(|e| fail(Stage::Setup, e))?;
    let engine = Engine::builder(
        Arc::new(MemoryStore::new()),
        Keyring::new(key, vec![]),
        public,
    )
    .clock(clock.clone())
    .retry_policy(RetryPolicy::none())
    .allow_insecure_http(true)
    .build()
    .map_err(|e| fail(Stage::Setup, e))?;
    engine
        .import_integration(INTEGRATION, document(emu, b).to_string().as_bytes())
        .await
        .map_err(|e| fail(Stage::Setup, format!("the document was refused: {e}")))?;

    let mut new = NewInstance::new(INSTANCE, INTEGRATION, CLIENT_ID);
    new.client_secret = Some(SecretString::from(CLIENT_SECRET));
    new.scopes = b.scopes.iter().map(|s| (*s).to_owned()).collect();
    new.profile = Some(match mode {
        Mode::With => {
            new.connection = fields::connection(profile, b);
            serde_json::to_value(profile_at(profile, emu.origin()))
                .map_err(|e| fail(Stage::Setup, e))?
        }
        Mode::Without => json!({"use": "none"}),
    });
    engine
        .create_instance(new)
        .await
        .map_err(|e| fail(Stage::Setup, format!("the instance was refused: {e}")))?;

    // Authorize: the user's browser goes to the URL, the provider redirects to the callback.
    let start = engine
        .begin_authorization(INSTANCE)
        .await
        .map_err(|e| fail(Stage::Authorize, e))?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| fail(Stage::Setup, e))?;
    let response = http
        .get(start.url.clone())
        .send()
        .await
        .map_err(|e| fail(Stage::Authorize, e))?;
    let status = response.status();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(location) = location.filter(|_| status.as_u16() == 302) else {
        let body = response.text().await.unwrap_or_default();
        return Err(fail(
            Stage::Authorize,
            format!("HTTP {status} instead of a redirect: {body}"),
        ));
    };
    let callback = Url::parse(&location).map_err(|e| fail(Stage::Authorize, e))?;
    if !callback
        .as_str()
        .starts_with(engine.redirect_uri().as_str())
    {
        return Err(fail(
            Stage::Authorize,
            format!("redirected to {callback}, not granary's callback"),
        ));
    }

    // The callback and the code exchange.
    engine
        .complete_authorization(callback.query().unwrap_or_default())
        .await
        .map_err(|e| fail(Stage::Exchange, e))?;
    let mut token = engine
        .access_token(INSTANCE)
        .await
        .map_err(|e| fail(Stage::Exchange, e))?;
    if !emu.is_valid_access_token(token.secret()) {
        return Err(fail(
            Stage::Exchange,
            "the access token granary holds is not one the provider issued",
        ));
    }
    let strategy = profile.refresh.strategy.unwrap_or_default();
    let record = engine
        .store()
        .get_token(INSTANCE)
        .await
        .map_err(|e| fail(Stage::Exchange, e))?
        .ok_or_else(|| fail(Stage::Exchange, "no token record was stored"))?;
    if strategy == RefreshKind::RefreshToken && record.refresh_token.is_none() {
        return Err(fail(
            Stage::Exchange,
            "no refresh token: the provider issued none",
        ));
    }

    if mode == Mode::With {
        check_kept(profile, &token)?;
    }
    call_api(emu, &engine, &http, profile, b, &token, mode, &mut notes).await?;

    match strategy {
        RefreshKind::RefreshToken | RefreshKind::AccessTokenExchange => {
            let before = emu.log().len();
            let renewed = engine
                .force_refresh(INSTANCE, &token)
                .await
                .map_err(|e| fail(Stage::Refresh, e))?;
            if renewed.same_token(&token) || renewed.secret() == token.secret() {
                return Err(fail(
                    Stage::Refresh,
                    "the refresh gave the same access token",
                ));
            }
            if emu.log().len() == before {
                return Err(fail(Stage::Refresh, "no request reached the provider"));
            }
            if !emu.is_valid_access_token(renewed.secret()) {
                return Err(fail(
                    Stage::Refresh,
                    "the renewed access token is not one the provider issued",
                ));
            }
            notes.push(match strategy {
                RefreshKind::AccessTokenExchange => "access token exchanged".to_owned(),
                _ => "refreshed".to_owned(),
            });
            token = renewed;
        }
        RefreshKind::None => {
            let before = emu.log().len();
            clock.advance(LONG);
            emu.advance(LONG);
            let again = engine
                .access_token(INSTANCE)
                .await
                .map_err(|e| fail(Stage::Refresh, e))?;
            if emu.log().len() != before || again.secret() != token.secret() {
                return Err(fail(
                    Stage::Refresh,
                    "a token that never expires was refreshed",
                ));
            }
            if !emu.is_valid_access_token(again.secret()) {
                return Err(fail(
                    Stage::Refresh,
                    "the token expired at the provider although the profile says it never does",
                ));
            }
            notes.push("never refreshed (non-expiring)".to_owned());
        }
    }

    if mode == Mode::With && profile.revocation.url.is_some() {
        let report = engine
            .disconnect(INSTANCE)
            .await
            .map_err(|e| fail(Stage::Revoke, e))?;
        if !report.revoked {
            return Err(fail(
                Stage::Revoke,
                report
                    .revocation_note
                    .unwrap_or_else(|| "not revoked".to_owned()),
            ));
        }
        if emu.revoked().is_empty() {
            return Err(fail(Stage::Revoke, "the provider revoked nothing"));
        }
        if emu.is_valid_access_token(token.secret()) {
            return Err(fail(
                Stage::Revoke,
                "the access token still works after the revocation",
            ));
        }
        notes.push("revoked".to_owned());
    }
    Ok(notes)
}

/// Every value the profile keeps (callback values, token-answer fields, callback fields)
/// is on the token.
fn check_kept(profile: &ProviderProfile, token: &AccessToken) -> Result<(), Failure> {
    let mut wanted: Vec<String> = Vec::new();
    wanted.extend(profile.authorization.keep.iter().flatten().cloned());
    wanted.extend(profile.token.keep.iter().flatten().cloned());
    wanted.extend(
        profile
            .fields
            .iter()
            .filter(|f| f.from_callback)
            .map(|f| f.name.clone()),
    );
    for name in wanted {
        if !token.kept().contains_key(&name) {
            let kept: Vec<&String> = token.kept().keys().collect();
            return Err(fail(
                Stage::Kept,
                format!("`{name}` is not kept with the token (kept: {kept:?})"),
            ));
        }
    }
    Ok(())
}

/// Calls the provider's "who am I" endpoint the way granary says the API takes the token
/// ([`Engine::api_target`]); with the profile, its API base URL must lead there.
#[allow(clippy::too_many_arguments)]
async fn call_api(
    emu: &Emulator,
    engine: &Engine,
    http: &reqwest::Client,
    profile: &ProviderProfile,
    b: &Behaviour,
    token: &AccessToken,
    mode: Mode,
    notes: &mut Vec<String>,
) -> Result<(), Failure> {
    let Some(template) = b.api_url() else {
        notes.push("no API endpoint to call".to_owned());
        return Ok(());
    };
    let mut values = b.example_connection();
    values.extend(token.kept().iter().map(|(k, v)| (k.clone(), v.clone())));
    let url = emu.rewrite(&fill(template, &values));
    let target = engine
        .api_target(INSTANCE)
        .await
        .map_err(|e| fail(Stage::Api, e))?;
    if mode == Mode::With && profile.api.base_url.is_some() {
        let base = target
            .base_url
            .as_ref()
            .map(|u| u.as_str().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        if !url
            .to_ascii_lowercase()
            .starts_with(&base.to_ascii_lowercase())
        {
            return Err(fail(
                Stage::Api,
                format!(
                    "the profile's API base URL {base} is not where the provider's API is ({url})"
                ),
            ));
        }
    }
    let response = http
        .get(&url)
        .header(
            target.token_header.as_str(),
            target.header_value(token.secret()),
        )
        .send()
        .await
        .map_err(|e| fail(Stage::Api, e))?;
    let status = response.status();
    if status.as_u16() != 200 {
        let body = response.text().await.unwrap_or_default();
        return Err(fail(
            Stage::Api,
            format!(
                "HTTP {status} from the API with the token in {}: {body}",
                target.token_header
            ),
        ));
    }
    notes.push("API called".to_owned());
    Ok(())
}
