//! The emulator judged by clients: a plain RFC 6749 client against every behaviour (the
//! providers with quirks that matter refuse it, the standard ones serve it), hand-written
//! correct clients for a few quirky providers, and the emulator's own rules (single-use and
//! expiring codes, PKCE, rotation, bad input).

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use granary_providers_conformance::{Behaviour, CLIENT_ID, CLIENT_SECRET, Emulator, LONG_LIVED};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Where the emulator sends the browser back (never contacted: the test reads the redirect).
const REDIRECT_URI: &str = "http://127.0.0.1:9/admin/oauth/";

/// The ids of PROVIDERS.md's "~50 most used" table, as the catalogue names them.
const IDS: &[&str] = &[
    "google",
    "microsoft",
    "salesforce",
    "hubspot",
    "stripe-connect",
    "gusto",
    "gitlab",
    "bitbucket",
    "clickup",
    "front",
    "salesloft",
    "miro",
    "spotify",
    "discord",
    "outreach",
    "slack",
    "github",
    "atlassian",
    "zoom",
    "dropbox",
    "box",
    "notion",
    "shopify",
    "xero",
    "quickbooks",
    "zendesk",
    "linear",
    "asana",
    "airtable",
    "linkedin",
    "x",
    "facebook",
    "instagram",
    "docusign",
    "calendly",
    "pipedrive",
    "intercom",
    "monday",
    "typeform",
    "figma",
    "zoho",
    "netsuite",
    "servicenow",
    "okta",
    "auth0",
    "bamboohr",
    "workday",
    "reddit",
    "paypal",
    "canva",
    "deel",
    "gong",
    "square",
    "wrike",
    "tiktok",
    "adobe",
    "close",
    "amazon",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Authorize,
    Callback,
    Exchange,
    Api,
    Refresh,
    Revoke,
}

#[derive(Debug)]
enum Outcome {
    Ok,
    Failed { stage: Stage, reason: String },
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a reqwest client")
}

fn pkce_pair() -> (String, String) {
    let verifier = "plain-client-verifier-0123456789-abcdefghijklmnopqrstuvwxyz".to_owned();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Opens the authorization URL with these parameters; the callback's parameters, or the
/// status and body of the refusal.
async fn authorize(
    emu: &Emulator,
    url: &str,
    params: &[(&str, &str)],
) -> Result<HashMap<String, String>, (u16, String)> {
    let mut url = url::Url::parse(url).expect("authorization URL");
    url.query_pairs_mut().extend_pairs(params);
    let response = http()
        .get(url)
        .send()
        .await
        .map_err(|e| (0, e.to_string()))?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.text().await.unwrap_or_default();
    match (status, location) {
        (302, Some(location)) => {
            assert!(
                location.starts_with(REDIRECT_URI),
                "{}: redirected elsewhere: {location}",
                emu.behaviour().id
            );
            let parsed = url::Url::parse(&location).expect("callback URL");
            Ok(parsed.query_pairs().into_owned().collect())
        }
        _ => Err((status, body)),
    }
}

/// The JSON answer of a token request (form-encoded answers read as strings).
async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let form = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let text = response.text().await.unwrap_or_default();
    let value = if form {
        Value::Object(
            url::form_urlencoded::parse(text.as_bytes())
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect(),
        )
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

fn text(v: &Value, path: &str) -> Option<String> {
    let mut cur = v;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    cur.as_str().map(str::to_owned)
}

fn why(status: u16, body: &Value) -> String {
    let described = text(body, "error_description").or_else(|| text(body, "error"));
    format!(
        "HTTP {status}: {}",
        described.unwrap_or_else(|| body.to_string())
    )
}

/// A token-endpoint POST of a plain client: a form, client credentials in HTTP Basic or in
/// the body.
fn plain_post(url: &str, form: &[(&str, &str)], basic: bool) -> reqwest::RequestBuilder {
    let mut form = form.to_vec();
    let mut request = http().post(url).header("accept", "application/json");
    if basic {
        request = request.basic_auth(CLIENT_ID, Some(CLIENT_SECRET));
    } else {
        form.push(("client_id", CLIENT_ID));
        form.push(("client_secret", CLIENT_SECRET));
    }
    request.form(&form)
}

/// A plain RFC 6749 client: PKCE S256, space-separated scopes, `client_secret_post` (the
/// default of most integration platforms' generic OAuth clients, Nango's catalogue among
/// them; RFC 6749 only requires servers to support Basic), a form body, the token at the top
/// level, a bearer token at the API, refresh at the token URL with the refresh token, and
/// RFC 7009 revocation. The URLs are the provider's published ones with the connection's
/// fields filled in.
async fn plain_client(emu: &Emulator, basic: bool) -> Outcome {
    let b = emu.behaviour().clone();
    let fail = |stage, reason: String| Outcome::Failed { stage, reason };
    let (verifier, challenge) = pkce_pair();
    let scope = b.scopes.join(" ");
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT_URI),
        ("state", "plain-state-0123456789abcdef"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    if !scope.is_empty() {
        params.push(("scope", &scope));
    }
    let callback = match authorize(emu, &emu.example_url(b.authorization_url()), &params).await {
        Ok(callback) => callback,
        Err((status, body)) => {
            let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
            return fail(Stage::Authorize, why(status, &body));
        }
    };
    if let Some(error) = callback.get("error") {
        return fail(Stage::Callback, format!("error={error}"));
    }
    if callback.get("state").map(String::as_str) != Some("plain-state-0123456789abcdef") {
        return fail(Stage::Callback, "state missing or changed".into());
    }
    let Some(code) = callback.get("code") else {
        return fail(
            Stage::Callback,
            format!(
                "no code in the callback (got {:?})",
                callback.keys().collect::<Vec<_>>()
            ),
        );
    };

    let token_url = emu.example_url(b.token_url());
    let response = plain_post(
        &token_url,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
        ],
        basic,
    )
    .send()
    .await;
    let (status, body) = match response {
        Ok(r) => answer(r).await,
        Err(e) => return fail(Stage::Exchange, e.to_string()),
    };
    let Some(access) = text(&body, "access_token").filter(|_| status == 200) else {
        return fail(Stage::Exchange, why(status, &body));
    };
    if !emu.is_valid_access_token(&access) {
        return fail(Stage::Exchange, "the API refuses the access token".into());
    }
    if let Some(url) = b.api_url() {
        let response = http()
            .get(emu.example_url(url))
            .bearer_auth(&access)
            .send()
            .await;
        let (status, body) = match response {
            Ok(r) => answer(r).await,
            Err(e) => return fail(Stage::Api, e.to_string()),
        };
        if status != 200 {
            return fail(Stage::Api, why(status, &body));
        }
    }
    let Some(refresh) = text(&body, "refresh_token") else {
        return fail(Stage::Exchange, "no refresh token".into());
    };

    let response = plain_post(
        &token_url,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ],
        basic,
    )
    .send()
    .await;
    let (status, body) = match response {
        Ok(r) => answer(r).await,
        Err(e) => return fail(Stage::Refresh, e.to_string()),
    };
    let Some(renewed) = text(&body, "access_token").filter(|_| status == 200) else {
        return fail(Stage::Refresh, why(status, &body));
    };
    if !emu.is_valid_access_token(&renewed) {
        return fail(
            Stage::Refresh,
            "the API refuses the refreshed access token".into(),
        );
    }

    if let Some(url) = b.revocation_url() {
        let response = plain_post(&emu.example_url(url), &[("token", renewed.as_str())], basic)
            .send()
            .await;
        let (status, body) = match response {
            Ok(r) => answer(r).await,
            Err(e) => return fail(Stage::Revoke, e.to_string()),
        };
        if status != 200 || body.get("ok") == Some(&Value::Bool(false)) {
            return fail(Stage::Revoke, why(status, &body));
        }
        if emu.is_valid_access_token(&renewed) {
            return fail(
                Stage::Revoke,
                "the token still works after revocation".into(),
            );
        }
    }
    Outcome::Ok
}

/// What the plain client must meet at each provider: `None` = the whole lifecycle works;
/// else the stage it fails at and words the reason must hold.
fn expected(id: &str, basic: bool) -> Option<(Stage, &'static str)> {
    use Stage::*;
    if basic {
        return expected_basic(id);
    }
    const NO_REFRESH: &str = "no refresh token";
    const NO_PKCE: &str = "PKCE must be off";
    const COMMAS: &str = "separates scopes with commas";
    const BASIC: &str = "HTTP Basic only";
    match id {
        "hubspot" | "stripe-connect" | "gusto" | "gitlab" | "bitbucket" | "front" | "salesloft"
        | "miro" | "spotify" | "discord" | "outreach" | "box" | "calendly" | "netsuite"
        | "servicenow" | "bamboohr" => None,
        "google" | "salesforce" | "clickup" | "github" | "dropbox" | "xero" | "zendesk"
        | "facebook" | "intercom" | "okta" | "auth0" | "adobe" | "close" => {
            Some((Exchange, NO_REFRESH))
        }
        "microsoft" | "slack" | "linear" | "linkedin" | "pipedrive" | "typeform" | "figma"
        | "square" => Some((Authorize, NO_PKCE)),
        "zoom" | "shopify" | "instagram" | "zoho" | "wrike" => Some((Authorize, COMMAS)),
        "airtable" | "x" | "docusign" | "workday" | "reddit" | "paypal" | "canva" | "deel"
        | "gong" => Some((Exchange, BASIC)),
        "atlassian" => Some((Authorize, "audience=api.atlassian.com is required")),
        "notion" => Some((Authorize, "owner=user is required")),
        "asana" => Some((Authorize, "the scope \"default\" is required")),
        "monday" => Some((Authorize, "response_type is not accepted")),
        "tiktok" => Some((Authorize, "client_key is missing")),
        "amazon" => Some((Authorize, "application_id is missing")),
        // The API path needs the realmId the callback gave.
        "quickbooks" => Some((
            Api,
            "/%7BrealmId%7D/companyinfo/%7BrealmId%7D still holds a template part",
        )),
        _ => Some((Revoke, "no expectation written for this behaviour")),
    }
}

/// The same for the plain client with `client_secret_basic`: the Basic-only providers now
/// pass client authentication, the post-only ones refuse it.
fn expected_basic(id: &str) -> Option<(Stage, &'static str)> {
    use Stage::*;
    const BASIC_REFUSED: &str = "an Authorization: Basic header is refused";
    match id {
        "airtable" | "docusign" | "workday" | "paypal" | "canva" | "deel" => None,
        "x" | "reddit" | "gong" => Some((Exchange, "no refresh token")),
        "hubspot" | "box" | "zendesk" | "facebook" | "intercom" => Some((Exchange, BASIC_REFUSED)),
        _ => expected(id, false),
    }
}

#[test]
fn the_catalogue_has_the_providers_of_the_table_once_each() {
    let ids: Vec<&str> = Behaviour::all().iter().map(|b| b.id).collect();
    assert_eq!(ids, IDS);
    for id in IDS {
        let b = Behaviour::named(id).expect("named");
        assert!(
            !b.authorization_url().is_empty() && !b.token_url().is_empty(),
            "{id}"
        );
        for (name, _) in b.example_connection() {
            assert!(
                b.authorization_urls
                    .iter()
                    .chain(b.token_urls)
                    .any(|u| u.contains(&format!("{{{name}}}"))),
                "{id}: field {name} is in no URL"
            );
        }
    }
    assert!(Behaviour::named("nope").is_none());
}

/// Runs the plain client against every behaviour; the table, and the unexpected outcomes.
async fn plain_client_table(basic: bool) -> (Vec<String>, Vec<String>) {
    let mut table = Vec::new();
    let mut wrong = Vec::new();
    for behaviour in Behaviour::all() {
        let id = behaviour.id;
        let emu = Emulator::start(behaviour).await.expect("emulator starts");
        let outcome = plain_client(&emu, basic).await;
        let line = match &outcome {
            Outcome::Ok => "ok".to_owned(),
            Outcome::Failed { stage, reason } => format!("FAIL at {stage:?}: {reason}"),
        };
        table.push(format!("{id:<15} {line}"));
        let matches = match (&outcome, expected(id, basic)) {
            (Outcome::Ok, None) => true,
            (Outcome::Failed { stage, reason }, Some((want_stage, words))) => {
                *stage == want_stage && reason.contains(words)
            }
            _ => false,
        };
        if !matches {
            wrong.push(format!(
                "{id}: expected {:?}, got {line}\n  refusals: {:?}",
                expected(id, basic),
                emu.refusals()
            ));
        }
        emu.stop().await;
    }
    (table, wrong)
}

#[tokio::test]
async fn a_plain_client_fails_where_the_provider_has_quirks_that_matter() {
    let (table, wrong) = plain_client_table(false).await;
    println!(
        "plain client (client_secret_post) per behaviour:\n{}",
        table.join("\n")
    );
    assert!(
        wrong.is_empty(),
        "unexpected outcomes:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test]
async fn a_plain_basic_client_fails_where_the_provider_has_quirks_that_matter() {
    let (table, wrong) = plain_client_table(true).await;
    println!(
        "plain client (client_secret_basic) per behaviour:\n{}",
        table.join("\n")
    );
    assert!(
        wrong.is_empty(),
        "unexpected outcomes:\n{}",
        wrong.join("\n")
    );
}

/// The API's answer status to a GET with this header.
async fn api_status(url: &str, header: &str, value: &str) -> u16 {
    let response = http().get(url).header(header, value).send().await;
    response.expect("answered").status().as_u16()
}

/// Posts a form, with HTTP Basic when `basic`.
async fn post_form(url: &str, form: &[(&str, &str)], basic: bool) -> (u16, Value) {
    let mut request = http().post(url).form(form);
    if basic {
        request = request.basic_auth(CLIENT_ID, Some(CLIENT_SECRET));
    }
    answer(request.send().await.expect("request sent")).await
}

#[tokio::test]
async fn slack_served_right_nests_the_user_token_and_errors_inside_a_200() {
    let emu = Emulator::start(Behaviour::named("slack").expect("slack"))
        .await
        .expect("start");
    let callback = authorize(
        &emu,
        &emu.example_url(emu.behaviour().authorization_url()),
        &[
            ("client_id", CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
            ("user_scope", "channels:read,chat:write"),
            ("state", "s1"),
        ],
    )
    .await
    .expect("Slack accepts comma scopes without PKCE");
    let code = callback["code"].clone();
    let token_url = emu.example_url(emu.behaviour().token_url());
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];
    let (status, body) = post_form(&token_url, &exchange, false).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], Value::Bool(true));
    assert!(
        body.get("access_token").is_none(),
        "no bot scopes, no top-level token: {body}"
    );
    assert_eq!(text(&body, "team.id").as_deref(), Some("T0EMULATOR"));
    let user_token = text(&body, "authed_user.access_token").expect("user token nested");
    assert!(emu.is_valid_access_token(&user_token));
    let refresh = text(&body, "authed_user.refresh_token").expect("rotation on");

    // The code again: an error inside an HTTP 200.
    let (status, body) = post_form(&token_url, &exchange, false).await;
    assert_eq!(
        (status, body["ok"].clone()),
        (200, Value::Bool(false)),
        "{body}"
    );
    assert_eq!(text(&body, "error").as_deref(), Some("invalid_grant"));
    assert!(
        !emu.is_valid_access_token(&user_token),
        "a replayed code revokes its tokens"
    );

    // A fresh authorization, refreshed at the token URL (the refreshed token is top level).
    let callback = authorize(
        &emu,
        &emu.example_url(emu.behaviour().authorization_url()),
        &[
            ("client_id", CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
            ("user_scope", "channels:read"),
        ],
    )
    .await
    .expect("authorized");
    let code = callback["code"].clone();
    let mut form = exchange.to_vec();
    form[1] = ("code", code.as_str());
    let (_, body) = post_form(&token_url, &form, false).await;
    let refresh_token = text(&body, "authed_user.refresh_token").expect("refresh token");
    assert_ne!(refresh_token, refresh);
    let (status, body) = post_form(
        &token_url,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ],
        false,
    )
    .await;
    assert_eq!(
        (status, body["ok"].clone()),
        (200, Value::Bool(true)),
        "{body}"
    );
    let renewed = text(&body, "access_token").expect("refreshed token at top level");
    assert!(emu.is_valid_access_token(&renewed));

    let revoke = emu.example_url(emu.behaviour().revocation_url().expect("auth.revoke"));
    let (status, body) = post_form(&revoke, &[("token", &renewed)], false).await;
    assert_eq!(
        (status, body["revoked"].clone()),
        (200, Value::Bool(true)),
        "{body}"
    );
    assert!(!emu.is_valid_access_token(&renewed));
    assert_eq!(emu.revoked(), vec![renewed]);

    // Bot scopes in `scope`: the bot token at the top level.
    let callback = authorize(
        &emu,
        &emu.example_url(emu.behaviour().authorization_url()),
        &[
            ("client_id", CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "channels:read,chat:write"),
        ],
    )
    .await
    .expect("authorized");
    let mut form = exchange.to_vec();
    form[1] = ("code", callback["code"].as_str());
    let (_, body) = post_form(&token_url, &form, false).await;
    assert_eq!(text(&body, "token_type").as_deref(), Some("bot"), "{body}");
    assert!(emu.is_valid_access_token(&text(&body, "access_token").expect("bot token")));
    assert!(body["authed_user"].get("access_token").is_none(), "{body}");
    emu.stop().await;
}

#[tokio::test]
async fn salesforce_served_right_keeps_instance_url_and_sends_no_expiry() {
    let emu = Emulator::start(Behaviour::named("salesforce").expect("sf"))
        .await
        .expect("start");
    let (verifier, challenge) = pkce_pair();
    let authorize_url = emu.example_url("https://{hostname}/services/oauth2/authorize");
    assert!(authorize_url.ends_with("/acme.my.salesforce.com/services/oauth2/authorize"));
    let callback = authorize(
        &emu,
        &authorize_url,
        &[
            ("client_id", CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "api refresh_token"),
            ("prompt", "consent"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await
    .expect("authorized");
    let token_url = emu.example_url("https://{hostname}/services/oauth2/token");
    let (status, body) = post_form(
        &token_url,
        &[
            ("grant_type", "authorization_code"),
            ("code", &callback["code"]),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
        ],
        true,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        text(&body, "instance_url"),
        Some(emu.rewrite("https://acme.my.salesforce.com"))
    );
    assert!(
        body.get("expires_in").is_none(),
        "Salesforce sends no expires_in: {body}"
    );
    let refresh = text(&body, "refresh_token").expect("refresh_token scope asked");
    let instance = text(&body, "instance_url").expect("instance_url");
    let bearer = format!("Bearer {}", text(&body, "access_token").expect("token"));
    let api = format!("{instance}/services/data/v60.0/");
    assert_eq!(api_status(&api, "authorization", &bearer).await, 200);
    let (status, body) = post_form(
        &token_url,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        true,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.get("refresh_token").is_none(),
        "the old refresh token stays: {body}"
    );
    assert!(emu.is_valid_access_token(&text(&body, "access_token").expect("token")));

    // An unsubstituted host part is no host at all.
    for host in ["{hostname}", "%7Bhostname%7D"] {
        let url = format!("{}/{host}/services/oauth2/token", emu.origin());
        let response = http().post(&url).send().await.expect("sent");
        assert_eq!(response.status().as_u16(), 404, "{url}");
        let text = response.text().await.unwrap_or_default();
        assert!(text.contains("still holds a template part"), "{text}");
    }
    let url = emu.rewrite("https://-acme.my.salesforce.com/services/oauth2/token");
    let response = http().post(&url).send().await.expect("sent");
    assert_eq!(response.status().as_u16(), 404, "{url}");
    let text = response.text().await.unwrap_or_default();
    assert!(text.contains("no such host"), "{text}");
    emu.stop().await;
}

#[tokio::test]
async fn facebook_served_right_exchanges_the_access_token_for_a_long_lived_one() {
    let emu = Emulator::start(Behaviour::named("facebook").expect("fb"))
        .await
        .expect("start");
    let callback = authorize(
        &emu,
        &emu.example_url(emu.behaviour().authorization_url()),
        &[
            ("client_id", CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "email,public_profile"),
        ],
    )
    .await
    .expect("authorized");
    // Graph API version in the path may differ from the published one.
    let token_url = format!(
        "{}/graph.facebook.com/v19.0/oauth/access_token",
        emu.origin()
    );
    let response = http()
        .get(&token_url)
        .query(&[
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("redirect_uri", REDIRECT_URI),
            ("code", &callback["code"]),
        ])
        .send()
        .await
        .expect("sent");
    let (status, body) = answer(response).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none());
    let short = text(&body, "access_token").expect("token");

    let exchange = |token: String| {
        let url = token_url.clone();
        async move {
            let response = http()
                .get(&url)
                .query(&[
                    ("grant_type", "fb_exchange_token"),
                    ("client_id", CLIENT_ID),
                    ("client_secret", CLIENT_SECRET),
                    ("fb_exchange_token", &token),
                ])
                .send()
                .await
                .expect("sent");
            answer(response).await
        }
    };
    let (status, body) = exchange(short.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], Value::from(LONG_LIVED));
    let long = text(&body, "access_token").expect("long-lived");
    assert!(emu.is_valid_access_token(&long));

    // Once the token expired there is nothing to exchange: authorize again.
    emu.advance(Duration::from_secs(2 * 3600));
    assert!(!emu.is_valid_access_token(&short));
    let (status, body) = exchange(short).await;
    assert_eq!(status, 400, "{body}");
    assert!(why(status, &body).contains("authorize again"), "{body}");
    emu.stop().await;
}

#[tokio::test]
async fn shopify_served_right_needs_the_shop_and_expiring_1() {
    let emu = Emulator::start(Behaviour::named("shopify").expect("shopify"))
        .await
        .expect("start");
    let authorize_url = emu.example_url(emu.behaviour().authorization_url());
    assert!(authorize_url.contains("/acme.myshopify.com/"));
    let params = [
        ("client_id", CLIENT_ID),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "read_products,write_orders"),
        ("state", "n1"),
    ];
    let token_url = emu.example_url(emu.behaviour().token_url());

    // Without expiring=1: an offline token that never expires, no refresh token.
    let callback = authorize(&emu, &authorize_url, &params)
        .await
        .expect("authorized");
    let response = http()
        .post(&token_url)
        .json(&serde_json::json!({
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "code": callback["code"], "redirect_uri": REDIRECT_URI,
            "grant_type": "authorization_code",
        }))
        .send()
        .await
        .expect("sent");
    let (status, body) = answer(response).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.get("refresh_token").is_none() && body.get("expires_in").is_none(),
        "{body}"
    );
    assert_eq!(
        text(&body, "scope").as_deref(),
        Some("read_products,write_orders")
    );

    // With expiring=1: an expiring token and a rotating refresh token.
    let callback = authorize(&emu, &authorize_url, &params)
        .await
        .expect("authorized");
    let (status, body) = post_form(
        &token_url,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("code", &callback["code"]),
            ("redirect_uri", REDIRECT_URI),
            ("expiring", "1"),
        ],
        false,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], Value::from(3600));
    let first = text(&body, "refresh_token").expect("refresh token");
    let refresh = |token: String| {
        let url = token_url.clone();
        async move {
            post_form(
                &url,
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", CLIENT_ID),
                    ("client_secret", CLIENT_SECRET),
                    ("refresh_token", &token),
                ],
                false,
            )
            .await
        }
    };
    let (status, body) = refresh(first.clone()).await;
    assert_eq!(status, 200, "{body}");
    let second = text(&body, "refresh_token").expect("rotated");
    assert_ne!(first, second);
    let (status, body) = refresh(first).await;
    assert_eq!(status, 400, "a rotated refresh token is single use: {body}");
    assert!(why(status, &body).contains("already used"), "{body}");
    let (status, body) = refresh(second).await;
    assert_eq!(status, 200, "{body}");

    // The API takes the token in X-Shopify-Access-Token, not as a bearer token.
    let token = text(&body, "access_token").expect("token");
    let api = emu.example_url(emu.behaviour().api_url().expect("api"));
    assert_eq!(
        api_status(&api, "authorization", &format!("Bearer {token}")).await,
        401
    );
    assert_eq!(
        api_status(&api, "x-shopify-access-token", &token).await,
        200
    );

    // Basic is refused; another shop's host cannot redeem the code; {shop} is no host.
    let callback = authorize(&emu, &authorize_url, &params)
        .await
        .expect("authorized");
    let (status, body) = post_form(
        &token_url,
        &[
            ("code", &callback["code"]),
            ("grant_type", "authorization_code"),
        ],
        true,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let other = emu.rewrite("https://other.myshopify.com/admin/oauth/access_token");
    let (status, body) = post_form(
        &other,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("code", &callback["code"]),
            ("redirect_uri", REDIRECT_URI),
        ],
        false,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(why(status, &body).contains("shop=acme"), "{body}");
    let unfilled = emu.rewrite("https://{shop}.myshopify.com/admin/oauth/authorize");
    assert!(
        authorize(&emu, &unfilled, &params)
            .await
            .is_err_and(|(s, _)| s == 404)
    );
    emu.stop().await;
}

#[tokio::test]
async fn zoho_served_right_redeems_the_code_at_the_accounts_server_of_the_callback() {
    let emu = Emulator::start(Behaviour::named("zoho").expect("zoho"))
        .await
        .expect("start");
    let callback = authorize(
        &emu,
        &emu.example_url(emu.behaviour().authorization_url()),
        &[
            ("client_id", CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "ZohoCRM.modules.ALL,ZohoCRM.settings.READ"),
            ("access_type", "offline"),
            ("prompt", "consent"),
        ],
    )
    .await
    .expect("authorized");
    let server = callback["accounts-server"].clone();
    assert_eq!(server, emu.rewrite("https://accounts.zoho.eu"));
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("code", callback["code"].as_str()),
        ("redirect_uri", REDIRECT_URI),
    ];
    // The connection's own extension (com) is the wrong data centre for this user.
    let (status, body) =
        post_form(&emu.example_url(emu.behaviour().token_url()), &form, false).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post_form(&format!("{server}/oauth/v2/token"), &form, false).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        text(&body, "api_domain"),
        Some(emu.rewrite("https://www.zohoapis.eu"))
    );
    assert!(
        text(&body, "refresh_token").is_some(),
        "access_type=offline was sent"
    );
    // The API is at the kept api_domain and takes `Zoho-oauthtoken TOKEN`.
    let token = text(&body, "access_token").expect("token");
    let domain = text(&body, "api_domain").expect("api_domain");
    let zoho = format!("Zoho-oauthtoken {token}");
    assert_eq!(
        api_status(&format!("{domain}/crm/v2/users"), "authorization", &zoho).await,
        200
    );
    let bearer = format!("Bearer {token}");
    assert_eq!(
        api_status(&format!("{domain}/crm/v2/users"), "authorization", &bearer).await,
        401
    );
    let default_domain = emu.rewrite("https://www.zohoapis.com/crm/v2/users");
    assert_eq!(
        api_status(&default_domain, "authorization", &zoho).await,
        404
    );
    emu.stop().await;
}

#[tokio::test]
async fn codes_are_single_use_expire_and_are_bound_to_the_pkce_verifier() {
    let emu = Emulator::start(Behaviour::named("gitlab").expect("gitlab"))
        .await
        .expect("start");
    let (verifier, challenge) = pkce_pair();
    let url = emu.example_url(emu.behaviour().authorization_url());
    let params = [
        ("client_id", CLIENT_ID),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT_URI),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let token_url = emu.example_url(emu.behaviour().token_url());
    let exchange = |code: String, verifier: String| {
        let url = token_url.clone();
        async move {
            post_form(
                &url,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT_URI),
                    ("code_verifier", &verifier),
                ],
                true,
            )
            .await
        }
    };

    let code = authorize(&emu, &url, &params).await.expect("ok")["code"].clone();
    let (status, body) = exchange(code.clone(), "x".repeat(50)).await;
    assert_eq!(status, 400, "a wrong verifier: {body}");
    let (status, body) = exchange(code.clone(), verifier.clone()).await;
    assert_eq!(status, 200, "{body}");
    let token = text(&body, "access_token").expect("token");
    let (status, _) = exchange(code, verifier.clone()).await;
    assert_eq!(status, 400, "second use");
    assert!(
        !emu.is_valid_access_token(&token),
        "a replayed code revokes its tokens"
    );

    let code = authorize(&emu, &url, &params).await.expect("ok")["code"].clone();
    emu.advance(Duration::from_secs(11 * 60));
    let (status, body) = exchange(code, verifier.clone()).await;
    assert_eq!(status, 400, "{body}");
    assert!(why(status, &body).contains("expired"), "{body}");

    // Many exchanges of one code at once: exactly one wins.
    let code = authorize(&emu, &url, &params).await.expect("ok")["code"].clone();
    let tries: Vec<_> = (0..16)
        .map(|_| tokio::spawn(exchange(code.clone(), verifier.clone())))
        .collect();
    let mut won = 0;
    for t in tries {
        if t.await.expect("task").0 == 200 {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    emu.stop().await;
}

#[tokio::test]
async fn bad_input_is_answered_400_not_a_crash() {
    let emu = Emulator::start(Behaviour::named("notion").expect("notion"))
        .await
        .expect("start");
    let token_url = emu.example_url(emu.behaviour().token_url());
    let cases: Vec<reqwest::RequestBuilder> = vec![
        http()
            .post(&token_url)
            .header("content-type", "application/json")
            .body("{not json"),
        http()
            .post(&token_url)
            .header("content-type", "application/json")
            .body("[1,2]"),
        http()
            .post(&token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(vec![0xff, 0xfe, 0x00]),
        http()
            .post(&token_url)
            .header("authorization", "Basic !!!")
            .json(&serde_json::json!({})),
        http()
            .post(&token_url)
            .header("authorization", "Basic Zm9v")
            .json(&serde_json::json!({})),
        http()
            .post(&token_url)
            .form(&[("grant_type", "authorization_code")]),
        http().get(emu.example_url(emu.behaviour().authorization_url())),
        http().get(format!(
            "{}?redirect_uri=javascript:alert(1)",
            emu.example_url(emu.behaviour().authorization_url())
        )),
    ];
    for case in cases {
        let response = case.send().await.expect("answered");
        let status = response.status().as_u16();
        assert!((400..500).contains(&status), "status {status}");
    }
    assert!(emu.refusals().len() >= 8, "{:?}", emu.refusals());
    // Still serving.
    let response = http()
        .get(format!("{}/nowhere.example/x", emu.origin()))
        .send()
        .await;
    assert_eq!(response.expect("answered").status().as_u16(), 404);
    assert!(emu.log().len() >= 9);
    emu.stop().await;
}

#[tokio::test]
async fn quickbooks_served_right_calls_the_api_with_the_realm_id_of_the_callback() {
    let emu = Emulator::start(Behaviour::named("quickbooks").expect("qb"))
        .await
        .expect("start");
    let callback = authorize(
        &emu,
        &emu.example_url(emu.behaviour().authorization_url()),
        &[
            ("client_id", CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "com.intuit.quickbooks.accounting"),
            ("state", "q1"),
        ],
    )
    .await
    .expect("authorized");
    let realm = callback
        .get("realmId")
        .expect("realmId in the callback")
        .clone();
    let (status, body) = post_form(
        &emu.example_url(emu.behaviour().token_url()),
        &[
            ("grant_type", "authorization_code"),
            ("code", &callback["code"]),
            ("redirect_uri", REDIRECT_URI),
        ],
        true,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let bearer = format!("Bearer {}", text(&body, "access_token").expect("token"));
    let api = |realm: &str| {
        emu.rewrite(&format!(
            "https://quickbooks.api.intuit.com/v3/company/{realm}/companyinfo/{realm}"
        ))
    };
    assert_eq!(
        api_status(&api(&realm), "authorization", &bearer).await,
        200
    );
    assert_eq!(api_status(&api("123"), "authorization", &bearer).await, 404);
    assert_eq!(
        api_status(&api(&realm), "authorization", "Bearer nope").await,
        401
    );
    emu.stop().await;
}

/// A client that follows everything the behaviour says (the way a correct profile would):
/// the emulator must serve the whole lifecycle for every behaviour, so that no behaviour is
/// impossible to satisfy.
async fn following_client(emu: &Emulator) -> Outcome {
    use granary_providers_conformance::{
        ApiAuth, BodyFormat, CallbackValue, ClientAuth, ExpiringValue, Expiry, Pkce, Refresh,
        ResponseType, Revocation, Separator,
    };
    let b = emu.behaviour().clone();
    let fail = |stage, reason: String| Outcome::Failed { stage, reason };
    let (verifier, challenge) = pkce_pair();

    let mut params: Vec<(String, String)> = vec![
        (b.client_id_param.into(), CLIENT_ID.into()),
        ("redirect_uri".into(), REDIRECT_URI.into()),
        ("state".into(), "following-state".into()),
    ];
    if b.response_type != ResponseType::Refused {
        params.push(("response_type".into(), "code".into()));
    }
    for (name, value) in b.required_params.iter().chain(b.offline_params) {
        if !params.iter().any(|(n, _)| n == name) {
            params.push(((*name).into(), (*value).into()));
        }
    }
    let mut scopes: Vec<&str> = b.scopes.to_vec();
    scopes.extend(b.required_scopes);
    scopes.extend(b.offline_scopes.first());
    let scope_param = b
        .nested_token
        .map(|(param, _)| param)
        .or_else(|| b.scope_params.first().copied());
    if let (Some(param), false) = (scope_param, scopes.is_empty()) {
        let sep = if b.scope_separator == Separator::Comma {
            ","
        } else {
            " "
        };
        params.push((param.into(), scopes.join(sep)));
    }
    if b.pkce != Pkce::Refused {
        params.push(("code_challenge".into(), challenge.clone()));
        params.push(("code_challenge_method".into(), "S256".into()));
    }
    let pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let callback = match authorize(emu, &emu.example_url(b.authorization_url()), &pairs).await {
        Ok(callback) => callback,
        Err((status, body)) => return fail(Stage::Authorize, format!("HTTP {status}: {body}")),
    };
    let Some(code) = callback.get(b.code_param).cloned() else {
        return fail(
            Stage::Callback,
            format!("no {} in the callback", b.code_param),
        );
    };
    for (name, _) in b.callback_values {
        if !callback.contains_key(*name) {
            return fail(Stage::Callback, format!("no {name} in the callback"));
        }
    }

    // The token URL, on the server the callback named where it names one.
    let mut token_url = emu.example_url(b.token_url());
    for (name, value) in b.callback_values {
        if let CallbackValue::Url(_) = value {
            let example_origin = emu
                .example_url(&b.token_url()[..b.token_url()[8..].find('/').map_or(0, |i| i + 8)]);
            token_url = token_url.replacen(&example_origin, &callback[*name], 1);
        }
    }
    let basic = b.client_auth != ClientAuth::Post;
    let send = |url: String, mut form: Vec<(String, String)>| {
        let b = b.clone();
        async move {
            if !basic {
                form.push((b.token_client_id_param.into(), CLIENT_ID.into()));
                form.push(("client_secret".into(), CLIENT_SECRET.into()));
            }
            let mut request = http().post(&url).header("accept", "application/json");
            if basic {
                request = request.basic_auth(CLIENT_ID, Some(CLIENT_SECRET));
            }
            request = if b.body_format == BodyFormat::Json {
                let map: serde_json::Map<String, Value> = form
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                request.json(&map)
            } else {
                request.form(&form)
            };
            answer(request.send().await.expect("sent")).await
        }
    };
    let expiring = |on_refresh: bool| -> Option<(String, String)> {
        let p = b.expiring_param?;
        if on_refresh && !p.on_refresh {
            return None;
        }
        let value = match p.value {
            ExpiringValue::Exactly(v) => v.to_owned(),
            ExpiringValue::Seconds { min, max } => 1800.clamp(min, max).to_string(),
        };
        Some((p.name.to_owned(), value))
    };

    let mut form: Vec<(String, String)> = vec![
        ("grant_type".into(), "authorization_code".into()),
        ("code".into(), code),
        ("redirect_uri".into(), REDIRECT_URI.into()),
    ];
    if b.pkce != Pkce::Refused {
        form.push(("code_verifier".into(), verifier));
    }
    form.extend(
        b.exchange_params
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into())),
    );
    form.extend(expiring(false));
    let (status, body) = send(token_url.clone(), form).await;
    if status != 200 || body.get("ok") == Some(&Value::Bool(false)) {
        return fail(Stage::Exchange, why(status, &body));
    }
    for (path, _) in b.extra_fields {
        if path.split('.').try_fold(&body, |v, p| v.get(p)).is_none() {
            return fail(Stage::Exchange, format!("no {path} in the token response"));
        }
    }
    let token = match b.nested_token {
        Some((_, key)) => body.get(key).cloned().unwrap_or(Value::Null),
        None => body.clone(),
    };
    let Some(access) = text(&token, "access_token") else {
        return fail(Stage::Exchange, format!("no access token in {body}"));
    };
    let sends_expiry = match b.expiry {
        Expiry::ExpiresIn => token.get("expires_in").is_some(),
        Expiry::ExpiresAt => token.get("expires_at").is_some(),
        Expiry::NotSent => false,
    };
    let expires = !matches!(b.refresh, Refresh::NonExpiring) && b.expiry != Expiry::NotSent;
    if sends_expiry != expires {
        return fail(
            Stage::Exchange,
            format!("expiry field sent: {sends_expiry}: {token}"),
        );
    }

    if let Some(url) = b.api_url() {
        let mut values = b.example_connection();
        values.extend(callback.iter().map(|(k, v)| (k.clone(), v.clone())));
        let url = emu.rewrite(&granary_providers_conformance::fill(url, &values));
        let request = match b.api_auth {
            ApiAuth::Bearer => http().get(&url).bearer_auth(&access),
            ApiAuth::Scheme(s) => http()
                .get(&url)
                .header("authorization", format!("{s} {access}")),
            ApiAuth::Header(h) => http().get(&url).header(h, &access),
        };
        let (status, body) = answer(request.send().await.expect("sent")).await;
        if status != 200 {
            return fail(Stage::Api, why(status, &body));
        }
    }

    let refresh_url = emu.example_url(b.refresh_url());
    let latest = match b.refresh {
        Refresh::NonExpiring => {
            if token.get("refresh_token").is_some() {
                return fail(
                    Stage::Refresh,
                    "a non-expiring token came with a refresh token".into(),
                );
            }
            access
        }
        Refresh::RefreshToken { rotating, .. } => {
            let Some(refresh) = text(&token, "refresh_token") else {
                return fail(Stage::Exchange, "no refresh token".into());
            };
            let mut form: Vec<(String, String)> = vec![
                ("grant_type".into(), "refresh_token".into()),
                ("refresh_token".into(), refresh.clone()),
            ];
            form.extend(
                b.refresh_params
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into())),
            );
            form.extend(expiring(true));
            let (status, body) = send(refresh_url.clone(), form.clone()).await;
            if status != 200 || body.get("ok") == Some(&Value::Bool(false)) {
                return fail(Stage::Refresh, why(status, &body));
            }
            if rotating {
                if text(&body, "refresh_token").is_none_or(|r| r == refresh) {
                    return fail(
                        Stage::Refresh,
                        "a rotating provider sent no new refresh token".into(),
                    );
                }
                let (status, _) = send(refresh_url.clone(), form).await;
                if status == 200 {
                    return fail(Stage::Refresh, "a used refresh token worked again".into());
                }
            }
            text(&body, "access_token").unwrap_or_default()
        }
        Refresh::ExchangeAccessToken { grant_type, param }
        | Refresh::AccessTokenRefresh { grant_type, param } => {
            let url = if matches!(b.refresh, Refresh::ExchangeAccessToken { .. }) {
                token_url.clone()
            } else {
                refresh_url.clone()
            };
            let response = http()
                .get(&url)
                .query(&[
                    ("grant_type", grant_type),
                    ("client_id", CLIENT_ID),
                    ("client_secret", CLIENT_SECRET),
                    (param, access.as_str()),
                ])
                .send()
                .await
                .expect("sent");
            let (status, body) = answer(response).await;
            if status != 200 {
                return fail(Stage::Refresh, why(status, &body));
            }
            text(&body, "access_token").unwrap_or_default()
        }
    };
    if !emu.is_valid_access_token(&latest) {
        return fail(Stage::Refresh, "the API refuses the renewed token".into());
    }

    if let Some(url) = b.revocation_url() {
        let url = emu.example_url(url);
        let (status, body) = match b.revocation {
            Revocation::Bearer => {
                let r = http()
                    .post(&url)
                    .bearer_auth(&latest)
                    .send()
                    .await
                    .expect("sent");
                answer(r).await
            }
            Revocation::Token {
                authenticated: true,
            } => send(url, vec![("token".into(), latest.clone())]).await,
            Revocation::Token {
                authenticated: false,
            }
            | Revocation::None => post_form(&url, &[("token", &latest)], false).await,
        };
        if status != 200 {
            return fail(Stage::Revoke, why(status, &body));
        }
        if emu.is_valid_access_token(&latest) {
            return fail(
                Stage::Revoke,
                "the token still works after revocation".into(),
            );
        }
    }
    Outcome::Ok
}

#[tokio::test]
async fn a_client_following_each_behaviour_completes_the_lifecycle() {
    let mut wrong = Vec::new();
    for behaviour in Behaviour::all() {
        let id = behaviour.id;
        let emu = Emulator::start(behaviour).await.expect("emulator starts");
        if let Outcome::Failed { stage, reason } = following_client(&emu).await {
            wrong.push(format!(
                "{id}: {stage:?}: {reason}\n  refusals: {:?}",
                emu.refusals()
            ));
        }
        emu.stop().await;
    }
    assert!(
        wrong.is_empty(),
        "behaviours a correct client cannot satisfy:\n{}",
        wrong.join("\n")
    );
}

/// Authorizes at a behaviour the right way and exchanges the code (form, Basic); the token answer.
async fn authorized(emu: &Emulator, extra: &[(&str, &str)]) -> Value {
    let mut params = vec![
        ("client_id", CLIENT_ID),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT_URI),
    ];
    params.extend(extra);
    let callback = authorize(
        emu,
        &emu.example_url(emu.behaviour().authorization_url()),
        &params,
    )
    .await
    .expect("authorized");
    let (status, body) = post_form(
        &emu.example_url(emu.behaviour().token_url()),
        &[
            ("grant_type", "authorization_code"),
            ("code", &callback["code"]),
            ("redirect_uri", REDIRECT_URI),
        ],
        true,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn refresh_at(emu: &Emulator, refresh_token: &str) -> (u16, Value) {
    post_form(
        &emu.example_url(emu.behaviour().refresh_url()),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
        true,
    )
    .await
}

#[tokio::test]
async fn google_refresh_tokens_lapse_when_unused_for_six_months() {
    let emu = Emulator::start(Behaviour::named("google").expect("google"))
        .await
        .expect("start");
    let body = authorized(
        &emu,
        &[
            ("scope", "openid"),
            ("access_type", "offline"),
            ("prompt", "consent"),
        ],
    )
    .await;
    let refresh = text(&body, "refresh_token").expect("offline asked");
    emu.advance(Duration::from_secs(150 * 24 * 3600));
    let (status, body) = refresh_at(&emu, &refresh).await;
    assert_eq!(status, 200, "used within six months: {body}");
    assert!(
        body.get("refresh_token").is_none(),
        "Google keeps the refresh token: {body}"
    );
    emu.advance(Duration::from_secs(150 * 24 * 3600));
    let (status, _) = refresh_at(&emu, &refresh).await;
    assert_eq!(status, 200, "the last use counts, not the issue");
    emu.advance(Duration::from_secs(181 * 24 * 3600));
    let (status, body) = refresh_at(&emu, &refresh).await;
    assert_eq!(status, 400, "{body}");
    assert!(why(status, &body).contains("lapsed"), "{body}");
    emu.stop().await;
}

#[tokio::test]
async fn concurrent_refreshes_with_one_rotating_refresh_token_leave_one_winner() {
    let emu = Emulator::start(Behaviour::named("atlassian").expect("atlassian"))
        .await
        .expect("start");
    let body = authorized(
        &emu,
        &[
            ("scope", "read:jira-work offline_access"),
            ("audience", "api.atlassian.com"),
            ("prompt", "consent"),
        ],
    )
    .await;
    let refresh = text(&body, "refresh_token").expect("offline_access asked");
    let origin = emu.origin().to_owned();
    let url = emu.example_url(emu.behaviour().refresh_url());
    assert!(url.starts_with(&origin));
    let tries: Vec<_> = (0..16)
        .map(|_| {
            let (url, refresh) = (url.clone(), refresh.clone());
            tokio::spawn(async move {
                post_form(
                    &url,
                    &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
                    true,
                )
                .await
                .0
            })
        })
        .collect();
    let mut won = 0;
    for t in tries {
        if t.await.expect("task") == 200 {
            won += 1;
        }
    }
    assert_eq!(
        won, 1,
        "a rotating refresh token is single use, even under concurrency"
    );
    emu.stop().await;
}

#[tokio::test]
async fn exchange_and_refresh_parameters_and_the_body_format_are_required_where_the_provider_wants_them()
 {
    // A Basecamp-like behaviour: type=web_server on the exchange, type=refresh on refresh.
    let basecamp = Behaviour {
        exchange_params: &[("type", "web_server")],
        refresh_params: &[("type", "refresh")],
        ..Behaviour::named("gitlab").expect("gitlab")
    };
    let emu = Emulator::start(basecamp).await.expect("start");
    let token_url = emu.example_url(emu.behaviour().token_url());
    let callback = authorize(
        &emu,
        &emu.example_url(emu.behaviour().authorization_url()),
        &[
            ("client_id", CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
        ],
    )
    .await
    .expect("authorized");
    let first = callback["code"].clone();
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", first.as_str()),
        ("redirect_uri", REDIRECT_URI),
    ];
    let (status, body) = post_form(&token_url, &form, true).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        why(status, &body).contains("type=web_server is required"),
        "{body}"
    );
    form.push(("type", "web_server"));
    let (status, body) = post_form(&token_url, &form, true).await;
    assert_eq!(
        status, 200,
        "a refused exchange leaves the code usable: {body}"
    );
    let refresh = text(&body, "refresh_token").expect("refresh token");
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];
    let (status, body) = post_form(&token_url, &form, true).await;
    assert!(
        why(status, &body).contains("type=refresh is required"),
        "{body}"
    );
    form.push(("type", "refresh"));
    let (status, body) = post_form(&token_url, &form, true).await;
    assert_eq!(status, 200, "{body}");
    emu.stop().await;

    // Notion takes JSON only, and Basic only.
    let emu = Emulator::start(Behaviour::named("notion").expect("notion"))
        .await
        .expect("start");
    let callback = authorize(
        &emu,
        &emu.example_url(emu.behaviour().authorization_url()),
        &[
            ("client_id", CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
            ("owner", "user"),
        ],
    )
    .await
    .expect("authorized");
    let token_url = emu.example_url(emu.behaviour().token_url());
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", callback["code"].as_str()),
        ("redirect_uri", REDIRECT_URI),
    ];
    let (status, body) = post_form(&token_url, &fields, true).await;
    assert_eq!(status, 400, "{body}");
    assert!(why(status, &body).contains("takes a JSON body"), "{body}");
    let json: serde_json::Map<String, Value> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
        .collect();
    let response = http()
        .post(&token_url)
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .json(&json)
        .send()
        .await
        .expect("sent");
    let (status, body) = answer(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        text(&body, "workspace_id").as_deref(),
        Some("ws-emulator-0001")
    );
    emu.stop().await;
}
