//! `granary webhook add URL --events a,b | list | enable ID | disable ID | remove ID |
//! deliveries ID`: on the data directory, or against a server (`--server`, an `admin` API
//! key) through `/api/v1/webhooks`.

use reqwest::Method;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use crate::cli::{RemoteArgs, Target, target};
use crate::settings::Settings;
use crate::webhooks::api::{delivery_json, endpoint_json};
use crate::webhooks::endpoints::{self, WebhookError};
use crate::{Error, Result};

/// The subcommands of `granary webhook`.
#[derive(Debug, clap::Subcommand)]
pub enum WebhookCommand {
    /// Register an endpoint; prints its id and its signing secret (shown this once).
    Add {
        /// Where deliveries are posted (https; http only to localhost unless
        /// --allow-insecure-http).
        url: String,
        /// The event types, comma-separated: authorized, refreshed, refresh_failed,
        /// needs_authorization, disconnected.
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the endpoints: id, enabled, events, URL, last delivery.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Deliver new events to an endpoint again.
    Enable {
        /// The endpoint id.
        id: String,
    },
    /// Stop delivering new events to an endpoint.
    Disable {
        /// The endpoint id.
        id: String,
    },
    /// Remove an endpoint and its delivery log.
    Remove {
        /// The endpoint id.
        id: String,
    },
    /// Show an endpoint's delivery log (newest 20): event, created, state, attempts.
    Deliveries {
        /// The endpoint id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn local(error: WebhookError) -> Error {
    match error {
        WebhookError::Engine(error) => Error::Engine(error),
        WebhookError::Store(source) => Error::store("managing webhooks", source),
        other => Error::Config(other.to_string()),
    }
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn text(value: &Value, key: &str) -> String {
    match value.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".to_string(),
        Some(other) => other.to_string(),
    }
}

/// Runs `granary webhook ...`.
pub async fn webhook(
    settings: &Settings,
    remote: &RemoteArgs,
    command: &WebhookCommand,
) -> Result<()> {
    let create = matches!(command, WebhookCommand::Add { .. });
    let target = target(settings, remote, create).await?;
    match command {
        WebhookCommand::Add { url, events, json } => {
            let created = match &target {
                Target::Local(engine, settings) => {
                    let created =
                        endpoints::create(engine, settings.allow_insecure_http, url, events)
                            .await
                            .map_err(local)?;
                    let mut value = endpoint_json(&created.endpoint, None);
                    if let Some(object) = value.as_object_mut() {
                        object.insert("secret".into(), json!(created.secret.expose_secret()));
                    }
                    value
                }
                Target::Remote(remote) => {
                    remote
                        .call(
                            Method::POST,
                            "/webhooks",
                            Some(json!({ "url": url, "events": events })),
                        )
                        .await?
                }
            };
            if *json {
                print_json(&created);
            } else {
                println!("added webhook {}", text(&created, "id"));
                println!("signing secret (shown once): {}", text(&created, "secret"));
            }
            Ok(())
        }
        WebhookCommand::List { json } => {
            let list = match &target {
                Target::Local(engine, _) => {
                    let mut list = Vec::new();
                    for endpoint in endpoints::list(engine).await.map_err(local)? {
                        let last = engine
                            .store()
                            .list_deliveries(&endpoint.id, 1)
                            .await
                            .map_err(|e| Error::store("reading the delivery log", e))?;
                        list.push(endpoint_json(&endpoint, last.first()));
                    }
                    list
                }
                Target::Remote(remote) => remote
                    .call(Method::GET, "/webhooks", None)
                    .await?
                    .get("webhooks")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            };
            if *json {
                print_json(&Value::Array(list));
                return Ok(());
            }
            if list.is_empty() {
                println!("no webhook: add one with `granary webhook add URL --events ...`");
            }
            for endpoint in &list {
                let events: Vec<String> = endpoint
                    .get("events")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect();
                let last = endpoint
                    .get("last_delivery")
                    .filter(|l| !l.is_null())
                    .map_or_else(
                        || "-".to_string(),
                        |l| format!("{} {}", text(l, "state"), text(l, "created")),
                    );
                let enabled = endpoint
                    .get("enabled")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                println!(
                    "{}\t{}\t{}\t{}\tlast: {last}",
                    text(endpoint, "id"),
                    if enabled { "enabled" } else { "disabled" },
                    events.join(","),
                    text(endpoint, "url"),
                );
            }
            Ok(())
        }
        WebhookCommand::Enable { id } | WebhookCommand::Disable { id } => {
            let enabled = matches!(command, WebhookCommand::Enable { .. });
            match &target {
                Target::Local(engine, _) => {
                    endpoints::update(engine, id, Some(enabled), None)
                        .await
                        .map_err(local)?;
                }
                Target::Remote(remote) => {
                    remote
                        .call(
                            Method::PATCH,
                            &format!("/webhooks/{id}"),
                            Some(json!({ "enabled": enabled })),
                        )
                        .await?;
                }
            }
            println!(
                "{} webhook {id}",
                if enabled { "enabled" } else { "disabled" }
            );
            Ok(())
        }
        WebhookCommand::Remove { id } => {
            match &target {
                Target::Local(engine, _) => endpoints::delete(engine, id).await.map_err(local)?,
                Target::Remote(remote) => {
                    remote
                        .call(Method::DELETE, &format!("/webhooks/{id}"), None)
                        .await?;
                }
            }
            println!("removed webhook {id} and its delivery log");
            Ok(())
        }
        WebhookCommand::Deliveries { id, json } => {
            let list = match &target {
                Target::Local(engine, _) => endpoints::deliveries(engine, id)
                    .await
                    .map_err(local)?
                    .iter()
                    .map(delivery_json)
                    .collect(),
                Target::Remote(remote) => remote
                    .call(Method::GET, &format!("/webhooks/{id}/deliveries"), None)
                    .await?
                    .get("deliveries")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            };
            if *json {
                print_json(&Value::Array(list));
                return Ok(());
            }
            if list.is_empty() {
                println!("no delivery yet");
            }
            for delivery in &list {
                println!(
                    "{}\t{}\t{}\t{}",
                    text(delivery, "id"),
                    text(delivery, "event"),
                    text(delivery, "created"),
                    text(delivery, "state"),
                );
                for attempt in delivery
                    .get("attempts")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    println!(
                        "  attempt {}\tstatus {}\t{}",
                        text(attempt, "at"),
                        text(attempt, "status"),
                        text(attempt, "answer"),
                    );
                }
            }
            Ok(())
        }
    }
}
