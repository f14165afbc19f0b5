//! The CLI subcommands that manage granary: on the data directory directly, or against a
//! running server (`--server URL` with an API key).

use std::io::BufRead as _;
use std::path::PathBuf;

use granary_flow::engine::{
    Engine, IdKind, InstanceUpdate, MAX_PAGE_SIZE, NewInstance, check_page, validate_id,
};
use granary_store::InstanceFilter;
use reqwest::Method;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use url::Url;

use crate::api::instance_json;
use crate::api_keys::ApiKeys;
use crate::cli_profiles::{connection_arg, profile_arg, profile_lines};
use crate::profiles::{ProfileLookup, instance_json_with_profile, integration_json_with_profiles};
use crate::settings::Settings;
use crate::views::{parse_client_auth, parse_pairs};
use crate::{Error, Result, open};

/// Where the CLI works: `--server` and `--api-key`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RemoteArgs {
    /// Work against a running granary at this URL (through its REST API) instead of the
    /// data directory.
    #[arg(long, global = true, env = "GRANARY_SERVER", value_name = "URL")]
    pub server: Option<Url>,
    /// The API key for `--server` (create one on the admin page, or `granary api-key create`).
    #[arg(
        long,
        global = true,
        env = "GRANARY_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<SecretString>,
}

/// `granary import FILE`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The OpenAPI document (JSON or YAML).
    pub file: PathBuf,
    /// The integration's name [default: the file name without extension].
    #[arg(long)]
    pub name: Option<String>,
    /// The provider's issuer URL: its metadata gives the issuer checked against every
    /// callback's `iss` and the revocation endpoint (a document names neither).
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,
    /// The lifetime, in seconds, of a token of unknown expiry of its instances that have
    /// none of their own [default: kept on a re-import; else the server's]; 0: none.
    #[arg(long, value_name = "SECONDS")]
    pub token_lifetime: Option<u64>,
}

/// The fields of `granary instance create` and `update`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct InstanceFields {
    /// The OAuth2 scheme [default: the first with an authorization-code flow].
    #[arg(long)]
    pub scheme: Option<String>,
    /// The client id issued by the provider.
    #[arg(long)]
    pub client_id: Option<String>,
    /// The client secret (prefer the environment variable or --client-secret-stdin: a flag
    /// shows in the process list).
    #[arg(long, env = "GRANARY_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<SecretString>,
    /// Read the client secret from the first line of standard input.
    #[arg(long)]
    pub client_secret_stdin: bool,
    /// client_secret_basic, client_secret_post or none.
    #[arg(long)]
    pub client_auth: Option<String>,
    /// A scope to request (repeat the flag, or give them space-separated).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Accept scopes the document does not declare.
    #[arg(long)]
    pub force_scopes: bool,
    /// Override the authorization URL.
    #[arg(long)]
    pub authorization_url: Option<Url>,
    /// Override the token URL.
    #[arg(long)]
    pub token_url: Option<Url>,
    /// An extra authorization parameter `name=value` (repeatable).
    #[arg(long = "auth-param")]
    pub auth_params: Vec<String>,
    /// An extra token request parameter `name=value` (repeatable).
    #[arg(long = "token-param")]
    pub token_params: Vec<SecretString>,
    /// An extra token request header `Name: value` (repeatable).
    #[arg(long = "token-header")]
    pub token_headers: Vec<SecretString>,
    /// The lifetime, in seconds, of a token whose expiry the provider does not state
    /// (refreshed once that old) [default: the integration's, else the server's]; 0 on
    /// update: back to that default.
    #[arg(long, value_name = "SECONDS")]
    pub token_lifetime: Option<u64>,
    /// A connection field the provider profile needs, `NAME=VALUE` (`shop=acme`;
    /// repeatable; on update, the given ones replace them all).
    #[arg(long = "connection", value_name = "NAME=VALUE")]
    pub connection: Vec<String>,
    /// The instance's own provider-profile settings: a JSON object, `@FILE` holding one, a
    /// catalogue id (`granary providers` lists them), or `none` for no catalogue profile;
    /// on update, an empty value removes the instance's own settings.
    #[arg(long, value_name = "JSON|@FILE|ID|none")]
    pub profile: Option<String>,
}

/// A lifetime in seconds of the command line, for the engine (0 is none).
fn lifetime(secs: Option<u64>) -> Option<std::time::Duration> {
    secs.filter(|s| *s > 0).map(std::time::Duration::from_secs)
}

/// `granary instance ...`.
#[derive(Debug, clap::Subcommand)]
pub enum InstanceCommand {
    /// Create an instance of an integration.
    Create {
        /// The instance id.
        id: String,
        /// The integration it belongs to.
        #[arg(long)]
        integration: String,
        /// The settings.
        #[command(flatten)]
        fields: InstanceFields,
    },
    /// Change an instance (only the given fields change).
    Update {
        /// The instance id.
        id: String,
        /// The settings to change.
        #[command(flatten)]
        fields: InstanceFields,
    },
    /// List the instances, by id: every one (read a page of 1,000 at a time and printed as
    /// it comes), or one page with `--limit`.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Print one page of at most this many instances (1 to 1,000); the cursor of the next
        /// page is printed on stderr.
        #[arg(long)]
        limit: Option<usize>,
        /// Start after this instance id (the cursor a previous page printed).
        #[arg(long)]
        after: Option<String>,
    },
    /// Show an instance and its token's state.
    Show {
        /// The instance id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Switch an instance off: no token is handed out or refreshed, in this process and,
    /// within a second, in every other granary process on the same store.
    Disable {
        /// The instance id.
        id: String,
    },
    /// Switch a disabled instance on again.
    Enable {
        /// The instance id.
        id: String,
    },
    /// Disconnect an instance: revoke its tokens where the provider allows and forget them;
    /// the instance stays, to be authorized again.
    Disconnect {
        /// The instance id.
        id: String,
    },
    /// Delete an instance (its tokens are revoked where the provider allows).
    Delete {
        /// The instance id.
        id: String,
    },
    /// Create a single-use link that opens "Get access token" for this instance without the
    /// admin page, for whoever owns the account at the provider; prints it (only now).
    ReconnectLink {
        /// The instance id.
        id: String,
        /// How long the link works: seconds, or a number with s, m, h or d (`3d`), at most
        /// 90 days [default: the reconnect_link_ttl setting, 7d].
        #[arg(long)]
        ttl: Option<String>,
    },
}

/// `granary key ...`.
#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    /// Generate a new master key and re-seal every stored secret with it (stop the server
    /// first: it keeps the old key in memory).
    Rotate,
}

/// `granary api-key ...`.
#[derive(Debug, clap::Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key and print it (once).
    Create {
        /// What the key is for.
        name: String,
        /// What the key may do: `tokens` (list and read instances, get and refresh tokens,
        /// read events) or `admin` (everything).
        #[arg(long, default_value = "tokens", value_name = "tokens|admin")]
        role: crate::api_keys::Role,
    },
    /// List the API keys (never the keys themselves).
    List,
    /// Revoke an API key by id.
    Revoke {
        /// The key's id.
        id: String,
    },
}

/// Where the commands run.
pub(crate) enum Target {
    Local(Engine, Box<Settings>),
    Remote(Remote),
}

pub(crate) struct Remote {
    base: String,
    key: SecretString,
    http: reqwest::Client,
}

impl Remote {
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut request = self
            .http
            .request(method, &url)
            .bearer_auth(self.key.expose_secret());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Error::Remote(format!("cannot reach {url}: {e}; check --server")))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| Error::Remote(format!("cannot read the answer of {url}: {e}")))?;
        if status.is_success() {
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text).map_err(|e| {
                Error::Remote(format!(
                    "{url} answered with something other than JSON: {e}"
                ))
            });
        }
        let detail = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_string))
            .unwrap_or(text);
        Err(Error::Remote(format!(
            "the server answered {status}: {detail}"
        )))
    }
}

/// Where the commands run: the server of `--server`, or the data directory (`create`: it may
/// be new; otherwise it must hold a store, so that a mistyped `--data-dir` is not taken for
/// an empty granary).
pub(crate) async fn target(
    settings: &Settings,
    remote: &RemoteArgs,
    create: bool,
) -> Result<Target> {
    match &remote.server {
        Some(_) => Ok(Target::Remote(self::remote(remote)?)),
        None if !create && !open::store_exists(settings) => Err(Error::Config(format!(
            "{} holds no granary data: pass the --data-dir of your server (or --server URL with an API key), or import a document first",
            settings.data_dir.display()
        ))),
        None => Ok(Target::Local(
            open::engine(settings).await?,
            Box::new(settings.clone()),
        )),
    }
}

/// The server of `--server` with the API key of `--api-key`.
pub(crate) fn remote(remote: &RemoteArgs) -> Result<Remote> {
    let server = remote
        .server
        .as_ref()
        .ok_or_else(|| Error::Config("pass --server URL".into()))?;
    let key = remote.api_key.clone().ok_or_else(|| {
        Error::Config("--server needs an API key: pass --api-key or set GRANARY_API_KEY".into())
    })?;
    if !ApiKeys::looks_like_key(&key) {
        return Err(Error::Config(format!(
            "the API key does not start with `{}`: copy it from the admin page",
            crate::api_keys::PREFIX
        )));
    }
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| Error::Remote(format!("cannot build the HTTP client: {e}")))?;
    Ok(Remote {
        base: server.as_str().trim_end_matches('/').to_string(),
        key,
        http,
    })
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn pairs(list: &[String], separator: char) -> Result<Vec<(String, String)>> {
    parse_pairs(&list.join("\n"), separator).map_err(Error::Config)
}

/// `pairs` of secret-bearing flags (extra token parameters and headers).
fn secret_pairs(list: &[SecretString], separator: char) -> Result<Vec<(String, String)>> {
    let lines: Vec<&str> = list.iter().map(|s| s.expose_secret()).collect();
    parse_pairs(&lines.join("\n"), separator).map_err(Error::Config)
}

fn scopes(fields: &InstanceFields) -> Vec<String> {
    fields
        .scopes
        .iter()
        .flat_map(|s| s.split_whitespace())
        .map(str::to_string)
        .collect()
}

fn secret(fields: &InstanceFields) -> Result<Option<SecretString>> {
    if fields.client_secret_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Error::io("cannot read the client secret from standard input", e))?;
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        return Ok(Some(line).filter(|s| !s.is_empty()).map(SecretString::from));
    }
    Ok(fields.client_secret.clone())
}

/// `granary import FILE`.
pub async fn import(settings: &Settings, remote: &RemoteArgs, args: &ImportArgs) -> Result<()> {
    let name = match &args.name {
        Some(name) => name.clone(),
        None => args
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    if let Err(error) = validate_id(IdKind::Integration, &name) {
        return Err(Error::Config(format!("{error}; pass --name")));
    }
    let document = std::fs::read(&args.file)
        .map_err(|e| Error::io(format!("cannot read {}", args.file.display()), e))?;
    let value = match target(settings, remote, true).await? {
        Target::Local(engine, _) => {
            let mut integration = engine.import_integration(&name, &document).await?;
            if let Some(secs) = args.token_lifetime {
                integration = engine
                    .set_integration_token_lifetime(&name, lifetime(Some(secs)))
                    .await?;
            }
            integration_json_with_profiles(&engine, &integration).await
        }
        Target::Remote(remote) => {
            let text = String::from_utf8(document)
                .map_err(|_| Error::Config(format!("{} is not UTF-8 text", args.file.display())))?;
            remote
                .call(
                    Method::POST,
                    "/integrations",
                    Some(json!({
                        "name": name, "document": text, "token_lifetime": args.token_lifetime,
                    })),
                )
                .await?
        }
    };
    let value = match &args.issuer {
        None => value,
        Some(issuer) => match target(settings, remote, false).await? {
            Target::Local(engine, _) => {
                let integration = engine.discover_integration_endpoints(&name, issuer).await?;
                integration_json_with_profiles(&engine, &integration).await
            }
            Target::Remote(remote) => {
                remote
                    .call(
                        Method::POST,
                        &format!("/integrations/{name}/discover"),
                        Some(json!({ "issuer": issuer })),
                    )
                    .await?
            }
        },
    };
    println!("imported integration {name}");
    if let Some(issuer) = value.get("issuer").and_then(Value::as_str) {
        println!(
            "  issuer {issuer}, revocation endpoint {}",
            value
                .get("revocation_url")
                .and_then(Value::as_str)
                .unwrap_or("none")
        );
    }
    if let Some(schemes) = value.get("schemes").and_then(Value::as_array) {
        for scheme in schemes {
            println!(
                "  scheme {}",
                scheme.get("name").and_then(Value::as_str).unwrap_or("?")
            );
            if let Some(headline) = scheme
                .get("provider_profile")
                .and_then(|p| p.get("headline"))
                .and_then(Value::as_str)
            {
                println!("    provider profile: {headline}");
            }
        }
    }
    Ok(())
}

/// `granary instance ...`.
pub async fn instance(
    settings: &Settings,
    remote: &RemoteArgs,
    command: &InstanceCommand,
) -> Result<()> {
    let target = target(settings, remote, false).await?;
    match command {
        InstanceCommand::Create {
            id,
            integration,
            fields,
        } => {
            if let Err(error) = validate_id(IdKind::Instance, id) {
                return Err(Error::Config(error.to_string()));
            }
            let client_id = fields
                .client_id
                .clone()
                .ok_or_else(|| Error::Config("--client-id is required".into()))?;
            let secret = secret(fields)?;
            let client_auth = fields.client_auth.as_deref().map(auth).transpose()?;
            let value = match target {
                Target::Local(engine, _) => {
                    let new = NewInstance {
                        id: id.clone(),
                        integration: integration.clone(),
                        scheme: fields.scheme.clone(),
                        client_id,
                        client_secret: secret,
                        client_auth,
                        scopes: scopes(fields),
                        force_scopes: fields.force_scopes,
                        authorization_url: fields.authorization_url.clone(),
                        token_url: fields.token_url.clone(),
                        extra_authorization_params: pairs(&fields.auth_params, '=')?,
                        extra_token_params: secret_pairs(&fields.token_params, '=')?,
                        extra_token_headers: secret_pairs(&fields.token_headers, ':')?,
                        token_lifetime: lifetime(fields.token_lifetime),
                        connection: connection_arg(&fields.connection)?,
                        profile: own_profile(fields)?.flatten(),
                    };
                    instance_json(&engine.create_instance(new).await?, None)
                }
                Target::Remote(remote) => {
                    let mut body = json!({
                        "id": id, "integration": integration, "client_id": client_id,
                        "scopes": scopes(fields), "force_scopes": fields.force_scopes,
                        "extra_authorization_params": pairs(&fields.auth_params, '=')?,
                        "extra_token_params": secret_pairs(&fields.token_params, '=')?,
                        "extra_token_headers": secret_pairs(&fields.token_headers, ':')?,
                    });
                    set(&mut body, "scheme", fields.scheme.clone().map(Value::from));
                    set(
                        &mut body,
                        "client_secret",
                        secret.map(|s| Value::from(s.expose_secret())),
                    );
                    set(
                        &mut body,
                        "client_auth",
                        fields.client_auth.clone().map(Value::from),
                    );
                    set(
                        &mut body,
                        "authorization_url",
                        fields
                            .authorization_url
                            .as_ref()
                            .map(|u| Value::from(u.as_str())),
                    );
                    set(
                        &mut body,
                        "token_url",
                        fields.token_url.as_ref().map(|u| Value::from(u.as_str())),
                    );
                    set(
                        &mut body,
                        "token_lifetime",
                        fields.token_lifetime.map(Value::from),
                    );
                    set_profile_fields(&mut body, fields)?;
                    remote.call(Method::POST, "/instances", Some(body)).await?
                }
            };
            println!("created instance {id}");
            println!(
                "register this redirect URI at the provider: {}",
                value
                    .get("redirect_uri")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            );
            Ok(())
        }
        InstanceCommand::Update { id, fields } => {
            let secret = secret(fields)?;
            let client_auth = fields.client_auth.as_deref().map(auth).transpose()?;
            let new_scopes = scopes(fields);
            match target {
                Target::Local(engine, _) => {
                    let update = InstanceUpdate {
                        scheme: fields.scheme.clone(),
                        client_id: fields.client_id.clone(),
                        client_secret: secret.map(Some),
                        client_auth,
                        scopes: Some(new_scopes).filter(|s| !s.is_empty()),
                        force_scopes: fields.force_scopes,
                        authorization_url: fields.authorization_url.clone().map(Some),
                        token_url: fields.token_url.clone().map(Some),
                        extra_authorization_params: Some(pairs(&fields.auth_params, '=')?)
                            .filter(|p| !p.is_empty()),
                        extra_token_params: Some(secret_pairs(&fields.token_params, '=')?)
                            .filter(|p| !p.is_empty()),
                        extra_token_headers: Some(secret_pairs(&fields.token_headers, ':')?)
                            .filter(|p| !p.is_empty()),
                        token_lifetime: fields.token_lifetime.map(|secs| lifetime(Some(secs))),
                        enabled: None,
                        connection: Some(connection_arg(&fields.connection)?)
                            .filter(|c| !c.is_empty()),
                        profile: own_profile(fields)?,
                    };
                    engine.update_instance(id, update).await?;
                }
                Target::Remote(remote) => {
                    let mut body = json!({ "force_scopes": fields.force_scopes });
                    set(&mut body, "scheme", fields.scheme.clone().map(Value::from));
                    set(
                        &mut body,
                        "client_id",
                        fields.client_id.clone().map(Value::from),
                    );
                    set(
                        &mut body,
                        "client_secret",
                        secret.map(|s| Value::from(s.expose_secret())),
                    );
                    set(
                        &mut body,
                        "client_auth",
                        fields.client_auth.clone().map(Value::from),
                    );
                    set(
                        &mut body,
                        "scopes",
                        Some(json!(new_scopes)).filter(|_| !new_scopes.is_empty()),
                    );
                    set(
                        &mut body,
                        "authorization_url",
                        fields
                            .authorization_url
                            .as_ref()
                            .map(|u| Value::from(u.as_str())),
                    );
                    set(
                        &mut body,
                        "token_url",
                        fields.token_url.as_ref().map(|u| Value::from(u.as_str())),
                    );
                    set(
                        &mut body,
                        "token_lifetime",
                        fields.token_lifetime.map(Value::from),
                    );
                    set_profile_fields(&mut body, fields)?;
                    for (name, parsed) in [
                        (
                            "extra_authorization_params",
                            pairs(&fields.auth_params, '=')?,
                        ),
                        (
                            "extra_token_params",
                            secret_pairs(&fields.token_params, '=')?,
                        ),
                        (
                            "extra_token_headers",
                            secret_pairs(&fields.token_headers, ':')?,
                        ),
                    ] {
                        set(
                            &mut body,
                            name,
                            Some(json!(parsed)).filter(|_| !parsed.is_empty()),
                        );
                    }
                    remote
                        .call(Method::PATCH, &format!("/instances/{id}"), Some(body))
                        .await?;
                }
            }
            println!("updated instance {id}");
            Ok(())
        }
        InstanceCommand::List { json, limit, after } => {
            // One page with --limit; else every page, printed as it comes (JSON once all
            // are read, as one array).
            let page_size = limit.unwrap_or(MAX_PAGE_SIZE);
            check_page(after.as_deref(), page_size).map_err(|e| {
                Error::Config(format!(
                    "{e} (--limit and --after of `granary instance list`)"
                ))
            })?;
            let mut cursor = after.clone();
            let mut all = Vec::new();
            let mut printed = 0usize;
            loop {
                let (items, next) = match &target {
                    Target::Local(engine, _) => {
                        let page = engine
                            .list_instances_page(
                                cursor.as_deref(),
                                page_size,
                                &InstanceFilter::all(),
                            )
                            .await?;
                        let mut profiles = ProfileLookup::new(engine);
                        let mut items: Vec<Value> = Vec::with_capacity(page.instances.len());
                        for report in &page.instances {
                            items
                                .push(profiles.instance_json(&report.instance, Some(report)).await);
                        }
                        (items, page.next)
                    }
                    Target::Remote(remote) => {
                        let mut path = format!("/instances?limit={page_size}");
                        if let Some(cursor) = &cursor {
                            path.push_str("&after=");
                            path.push_str(
                                &url::form_urlencoded::byte_serialize(cursor.as_bytes())
                                    .collect::<String>(),
                            );
                        }
                        let answer = remote.call(Method::GET, &path, None).await?;
                        let items = answer
                            .get("instances")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default();
                        let next = answer
                            .get("next")
                            .and_then(Value::as_str)
                            .map(str::to_string);
                        (items, next)
                    }
                };
                if *json {
                    all.extend(items);
                } else {
                    for item in &items {
                        println!(
                            "{}\t{}\t{}",
                            item.get("id").and_then(Value::as_str).unwrap_or("?"),
                            item.get("integration")
                                .and_then(Value::as_str)
                                .unwrap_or("?"),
                            item.get("status").and_then(Value::as_str).unwrap_or("?"),
                        );
                    }
                    printed += items.len();
                }
                match next {
                    Some(next) if limit.is_some() => {
                        eprintln!("next page: --after {next}");
                        break;
                    }
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            if *json {
                print_json(&Value::Array(all));
            } else if printed == 0 {
                println!("no instance");
            }
            Ok(())
        }
        InstanceCommand::Show { id, json } => {
            let value = match target {
                Target::Local(engine, _) => {
                    let report = engine.status(id).await?;
                    instance_json_with_profile(&engine, &report.instance, Some(&report)).await
                }
                Target::Remote(remote) => {
                    remote
                        .call(Method::GET, &format!("/instances/{id}"), None)
                        .await?
                }
            };
            if *json {
                print_json(&value);
            } else {
                for key in [
                    "id",
                    "integration",
                    "scheme",
                    "client_id",
                    "client_auth",
                    "status",
                    "redirect_uri",
                ] {
                    println!("{key}: {}", value.get(key).map(display).unwrap_or_default());
                }
                println!(
                    "client_secret: {}",
                    if value
                        .get("client_secret_set")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                    {
                        "set"
                    } else {
                        "not set"
                    }
                );
                println!(
                    "scopes: {}",
                    value.get("scopes").map(display).unwrap_or_default()
                );
                match value.get("token").filter(|t| !t.is_null()) {
                    Some(token) => {
                        let expires = token.get("expires_at").and_then(Value::as_u64);
                        println!(
                            "token: expires {}, refresh token {}",
                            expires.map_or_else(
                                || "unknown".to_string(),
                                crate::views::format_unix_seconds
                            ),
                            if token
                                .get("has_refresh_token")
                                .and_then(Value::as_bool)
                                .unwrap_or(false)
                            {
                                "held"
                            } else {
                                "none"
                            }
                        );
                    }
                    None => println!("token: none"),
                }
                for line in profile_lines(&value) {
                    println!("{line}");
                }
            }
            Ok(())
        }
        InstanceCommand::Disable { id } | InstanceCommand::Enable { id } => {
            let enabled = matches!(command, InstanceCommand::Enable { .. });
            match target {
                Target::Local(engine, _) => {
                    let update = InstanceUpdate {
                        enabled: Some(enabled),
                        ..InstanceUpdate::default()
                    };
                    engine.update_instance(id, update).await?;
                }
                Target::Remote(remote) => {
                    remote
                        .call(
                            Method::PATCH,
                            &format!("/instances/{id}"),
                            Some(json!({ "enabled": enabled })),
                        )
                        .await?;
                }
            }
            println!(
                "{} instance {id}",
                if enabled { "enabled" } else { "disabled" }
            );
            Ok(())
        }
        InstanceCommand::ReconnectLink { id, ttl } => {
            let ttl = ttl
                .as_deref()
                .map(crate::reconnect::parse_ttl)
                .transpose()
                .map_err(|reason| Error::Config(format!("--ttl: {reason}")))?;
            let (url, expires) = match target {
                Target::Local(engine, settings) => {
                    let ttl = ttl.unwrap_or(settings.reconnect_link_ttl);
                    let created = engine.create_reconnect_link(id, ttl).await?;
                    (
                        created.url.to_string(),
                        crate::views::format_rfc3339(created.expires),
                    )
                }
                Target::Remote(remote) => {
                    let body = ttl.map(|ttl| json!({ "ttl": ttl.as_secs() }));
                    let value = remote
                        .call(
                            Method::POST,
                            &format!("/instances/{id}/reconnect-link"),
                            body,
                        )
                        .await?;
                    let field = |name: &str| {
                        value
                            .get(name)
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .ok_or_else(|| {
                                Error::Config(format!(
                                    "the server's answer has no `{name}`: {value}"
                                ))
                            })
                    };
                    (field("url")?, field("expires_at")?)
                }
            };
            println!("{url}");
            eprintln!(
                "works once, until {expires}: hand it to whoever owns the account at the provider"
            );
            Ok(())
        }
        InstanceCommand::Disconnect { id } => {
            let note = match target {
                Target::Local(engine, _) => engine.disconnect(id).await?.revocation_note,
                Target::Remote(remote) => remote
                    .call(Method::POST, &format!("/instances/{id}/disconnect"), None)
                    .await?
                    .get("revocation_note")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            };
            if let Some(note) = note {
                println!("note: {note}");
            }
            println!("disconnected instance {id}: it holds no token now");
            Ok(())
        }
        InstanceCommand::Delete { id } => {
            match target {
                Target::Local(engine, _) => {
                    let report = engine.delete_instance(id).await?;
                    if !report.deleted {
                        return Err(Error::Config(format!("instance `{id}` does not exist")));
                    }
                    if let Some(note) = report.revocation_note {
                        println!("note: {note}");
                    }
                }
                Target::Remote(remote) => {
                    remote
                        .call(Method::DELETE, &format!("/instances/{id}"), None)
                        .await?;
                }
            }
            println!("deleted instance {id}");
            Ok(())
        }
    }
}

/// The instance's own profile layer of `--profile`: `None` when not given, `Some(None)`
/// for an empty value.
fn own_profile(fields: &InstanceFields) -> Result<Option<Option<Value>>> {
    fields.profile.as_deref().map(profile_arg).transpose()
}

/// `connection` and `profile` of a create or update body (`profile: null` for an empty
/// `--profile`: removes the instance's own settings).
fn set_profile_fields(body: &mut Value, fields: &InstanceFields) -> Result<()> {
    let connection = connection_arg(&fields.connection)?;
    set(
        body,
        "connection",
        Some(json!(connection)).filter(|_| !connection.is_empty()),
    );
    set(
        body,
        "profile",
        own_profile(fields)?.map(|p| p.unwrap_or(Value::Null)),
    );
    Ok(())
}

fn set(body: &mut Value, key: &str, value: Option<Value>) {
    if let (Some(value), Some(object)) = (value, body.as_object_mut()) {
        object.insert(key.to_string(), value);
    }
}

fn display(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(display).collect::<Vec<_>>().join(" "),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

fn auth(text: &str) -> Result<granary_store::ClientAuth> {
    parse_client_auth(text).ok_or_else(|| {
        Error::Config(format!(
            "--client-auth `{text}` is unknown: use client_secret_basic, client_secret_post or none"
        ))
    })
}

/// `granary authorize INSTANCE`: prints the link that starts the authorization.
pub async fn authorize(settings: &Settings, remote: &RemoteArgs, id: &str) -> Result<()> {
    let link = match target(settings, remote, false).await? {
        Target::Local(engine, _) => engine.authorization_link(id).await?.to_string(),
        Target::Remote(remote) => remote
            .call(Method::POST, &format!("/instances/{id}/authorize"), None)
            .await?
            .get("authorization_url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    };
    println!("{link}");
    eprintln!(
        "open it in a browser signed in to granary's admin page and press \"Get access token\" \
         (the authorization's state is bound to that browser)"
    );
    Ok(())
}

/// `granary token INSTANCE`: prints a valid access token.
pub async fn token(
    settings: &Settings,
    remote: &RemoteArgs,
    id: &str,
    refresh: bool,
) -> Result<()> {
    match target(settings, remote, false).await? {
        Target::Local(engine, _) => {
            let token = if refresh {
                engine.refresh_now(id).await?
            } else {
                engine.access_token(id).await?
            };
            println!("{}", token.secret());
        }
        Target::Remote(remote) => {
            let value = if refresh {
                remote
                    .call(Method::POST, &format!("/instances/{id}/refresh"), None)
                    .await?
            } else {
                remote
                    .call(Method::GET, &format!("/instances/{id}/token"), None)
                    .await?
            };
            println!(
                "{}",
                value
                    .get("access_token")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// `granary key rotate`.
pub async fn key(settings: &Settings, remote: &RemoteArgs, command: &KeyCommand) -> Result<()> {
    if remote.server.is_some() {
        return Err(Error::Config(
            "key rotation works on the data directory only: run `granary key rotate` on the server's host (a server running on that directory loads the new key by itself)".into(),
        ));
    }
    match command {
        KeyCommand::Rotate => {
            let rotation = open::rotate_key(settings).await?;
            println!(
                "rotated the master key {} -> {}: {} instances, {} client secrets, {} token records and {} webhook secrets re-sealed",
                rotation.previous_key_id,
                rotation.new_key_id,
                rotation.report.instances,
                rotation.report.client_secrets,
                rotation.report.token_records,
                rotation.report.webhook_secrets
            );
            match &rotation.key_file {
                Some(file) => println!(
                    "{} holds the new key first and the previous one after it (for pending authorizations); restart the server",
                    file.display()
                ),
                None => println!(
                    "the key comes from GRANARY_MASTER_KEY: store the new key there yourself; restart the server"
                ),
            }
            Ok(())
        }
    }
}

/// `granary api-key ...` (on the store of the settings; every server on it sees the change
/// within a second).
pub async fn api_key(settings: &Settings, command: &ApiKeyCommand) -> Result<()> {
    if !matches!(command, ApiKeyCommand::Create { .. }) && !open::store_exists(settings) {
        return Err(Error::Config(format!(
            "{} holds no granary data: pass the --data-dir (or --store) of your server",
            settings.data_dir.display()
        )));
    }
    let granary = open::granary(settings).await?;
    let keys = ApiKeys::open(std::sync::Arc::clone(granary.store())).await?;
    match command {
        ApiKeyCommand::Create { name, role } => {
            let (record, key) = keys.create(name, *role).await?;
            eprintln!(
                "created API key {} ({}, role {}); it is shown once:",
                record.id, record.name, record.role
            );
            println!("{}", key.expose_secret());
        }
        ApiKeyCommand::List => {
            for key in keys.list().await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    key.id,
                    key.name,
                    key.role,
                    crate::views::format_unix_seconds(key.created)
                );
            }
        }
        ApiKeyCommand::Revoke { id } => {
            if keys.revoke(id).await? {
                println!("revoked API key {id}");
            } else {
                return Err(Error::Config(format!("no API key has the id `{id}`")));
            }
        }
    }
    Ok(())
}

/// `granary call INSTANCE METHOD PATH`.
#[derive(Debug, clap::Args)]
pub struct CallArgs {
    /// The instance whose token is sent.
    pub instance: String,
    /// The HTTP method (GET, POST, PUT, PATCH, DELETE, ...).
    pub method: String,
    /// The path under the API's base URL, with its query (`users/me?fields=id`).
    pub path: String,
    /// The request body: `@FILE`, `-` for standard input, or the text itself.
    #[arg(long, short = 'd', value_name = "@FILE|-|TEXT")]
    pub data: Option<String>,
    /// A request header `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
}

/// `granary call`: through the engine (data directory) or the server's proxy route
/// (`--server`); the body is read whole (it is sent again after a refresh).
pub async fn call(settings: &Settings, remote: &RemoteArgs, args: &CallArgs) -> Result<()> {
    use crate::proxy;
    use std::io::Write as _;
    let method = Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| Error::Config(format!("`{}` is not an HTTP method", args.method)))?;
    let relative = args.path.trim_start_matches('/');
    let (path, query) = match relative.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (relative, None),
    };
    if let Some(refused) = granary_flow::engine::api_path::refused(path) {
        return Err(Error::Config(format!(
            "the path is refused by the rule `{}`: {}",
            refused.rule, refused.detail
        )));
    }
    let mut headers = reqwest::header::HeaderMap::new();
    for line in &args.headers {
        let parsed = line.split_once(':').and_then(|(name, value)| {
            let name = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
            let value = reqwest::header::HeaderValue::from_str(value.trim()).ok()?;
            Some((name, value))
        });
        let (name, value) = parsed
            .ok_or_else(|| Error::Config(format!("the header `{line}` is not `Name: value`")))?;
        headers.append(name, value);
    }
    let body = match args.data.as_deref() {
        None => Vec::new(),
        Some("-") => {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes)
                .map_err(|e| Error::io("cannot read the body from standard input", e))?;
            bytes
        }
        Some(text) => match text.strip_prefix('@') {
            Some(file) => {
                std::fs::read(file).map_err(|e| Error::io(format!("cannot read {file}"), e))?
            }
            None => text.as_bytes().to_vec(),
        },
    };
    let mut response = match target(settings, remote, false).await? {
        Target::Local(engine, settings) => {
            let limits = proxy::Limits::of(&settings);
            if body.len() > limits.body {
                return Err(Error::Config(
                    proxy::ProxyError::TooLarge(limits.body).to_string(),
                ));
            }
            let request = proxy::ProxyRequest {
                instance: args.instance.clone(),
                method,
                path: path.to_string(),
                query: query.map(str::to_string),
                headers: proxy::outgoing_headers(&headers),
                body: proxy::Outgoing::Whole(body.into()),
            };
            proxy::forward(&engine, &limits, request)
                .await
                .map_err(|error| match error {
                    proxy::ProxyError::Engine(error) => Error::Engine(error),
                    other => Error::Remote(other.to_string()),
                })?
        }
        Target::Remote(remote) => {
            let url = format!(
                "{}/api/v1/instances/{}/proxy/{relative}",
                remote.base, args.instance
            );
            remote
                .http
                .request(method, &url)
                .headers(headers)
                .bearer_auth(remote.key.expose_secret())
                .body(body)
                .send()
                .await
                .map_err(|e| {
                    Error::Remote(format!("cannot reach {}: {e}; check --server", remote.base))
                })?
        }
    };
    let status = response.status();
    eprintln!("{status}");
    let mut out = std::io::stdout();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Error::Remote(format!("the answer broke off: {e}")))?
    {
        out.write_all(&chunk)
            .map_err(|e| Error::io("cannot write the answer to standard output", e))?;
    }
    out.flush()
        .map_err(|e| Error::io("cannot write the answer to standard output", e))?;
    if status.as_u16() >= 400 {
        return Err(Error::Remote(format!("the answer's status is {status}")));
    }
    Ok(())
}

/// The subcommands of this module (the binary adds `inspect`).
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the server: admin page, REST API, background refresh.
    Serve(crate::settings::ServeArgs),
    /// Import an OpenAPI document as an integration.
    Import(ImportArgs),
    /// Create, change, list, show or delete instances.
    #[command(subcommand)]
    Instance(Box<InstanceCommand>),
    /// Print the link that starts the authorization of an instance.
    Authorize {
        /// The instance id.
        instance: String,
    },
    /// Print a valid access token of an instance (refreshed when needed).
    Token {
        /// The instance id.
        instance: String,
        /// Refresh it now first; calls at the same time, from any process, share one
        /// refresh.
        #[arg(long)]
        refresh: bool,
    },
    /// Call the API of an instance's integration with its token, as the proxy does: prints
    /// the answer's body to stdout and its status to stderr; fails on a status of 400 or more.
    Call(CallArgs),
    /// Manage the master key that seals the stored secrets.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Manage the REST API's keys (in the store of the data directory or --store).
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// List the built-in provider profiles: id, title, what each changes (see
    /// docs/guides/providers.md); with --server, the server's.
    Providers {
        /// Print JSON (with hosts, why and connection fields).
        #[arg(long)]
        json: bool,
    },
    /// Manage webhook endpoints and read their delivery logs (see docs/guides/webhooks.md).
    #[command(subcommand)]
    Webhook(crate::cli_webhooks::WebhookCommand),
}

/// Runs a subcommand: sets up logging and the runtime, prints the error, and returns the
/// exit code (0, 1 on failure).
pub fn main(
    command: Command,
    common: &crate::settings::CommonArgs,
    remote: &RemoteArgs,
) -> std::process::ExitCode {
    let serve_args = match &command {
        Command::Serve(args) => args.clone(),
        _ => crate::settings::ServeArgs::default(),
    };
    let settings = match Settings::resolve(common, &serve_args) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // The server logs at the configured level; the other commands only warnings and errors
    // unless asked, so that their output stays readable.
    let level = match (&command, &common.log_level) {
        (Command::Serve(_), _) | (_, Some(_)) => settings.log_level.clone(),
        _ => "warn".to_string(),
    };
    crate::logging::init(&level, settings.log_format);
    // The other commands link to the server: under its public URL as `serve` recorded it,
    // unless one is given here.
    let settings = match &command {
        Command::Serve(_) => settings,
        _ => settings.with_recorded_public_url(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match &command {
            Command::Serve(_) => crate::serve::run(settings.clone()).await,
            Command::Import(args) => import(&settings, remote, args).await,
            Command::Instance(command) => instance(&settings, remote, command).await,
            Command::Authorize { instance } => authorize(&settings, remote, instance).await,
            Command::Token { instance, refresh } => {
                token(&settings, remote, instance, *refresh).await
            }
            Command::Call(args) => call(&settings, remote, args).await,
            Command::Key(command) => key(&settings, remote, command).await,
            Command::ApiKey(command) => api_key(&settings, command).await,
            Command::Providers { json } => crate::cli_profiles::providers(remote, *json).await,
            Command::Webhook(command) => {
                crate::cli_webhooks::webhook(&settings, remote, command).await
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
