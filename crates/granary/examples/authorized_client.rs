//! Calls an API of your choosing as a granary instance, with [`granary::AuthorizedClient`]:
//! every request carries `Authorization: Bearer <access token>`, the token comes from
//! granary (from memory, refreshed when due), and a 401 from the API forces one refresh and
//! one retry. Prints the response status and the start of the body; never the token.
//!
//! ```text
//! cargo run -p granary --example authorized_client -- STORE INSTANCE URL
//! # or
//! GRANARY_STORE=... GRANARY_INSTANCE=... GRANARY_URL=... \
//!     cargo run -p granary --example authorized_client
//! ```
//!
//! - `STORE` (`GRANARY_STORE`, default `./granary-data`): the granary data directory (the
//!   CLI's `--data-dir`; its store is `granary.sqlite` in it), a SQLite file, or a store URL
//!   (`sqlite:PATH`, `postgres://...` when built with the `postgres` feature). The master
//!   key is `GRANARY_MASTER_KEY`, else the key file next to the SQLite file
//!   (`granary.sqlite.key`), as the CLI keeps it.
//! - `INSTANCE` (`GRANARY_INSTANCE`): the id of an instance that was authorized.
//! - `URL` (`GRANARY_URL`): the API endpoint to `GET`, e.g. `https://api.github.com/user`.
//!
//! # Setting up an instance first, with the granary CLI
//!
//! The example only uses a token; it never authorizes. Do that once with the `granary`
//! binary (`cargo run --release -p granary-server -- ...`, or `cargo install --path
//! crates/granary-server`), on the same data directory:
//!
//! ```text
//! # 1. The API's OpenAPI document gives the authorization URL, token URL and scopes.
//! granary import github.yaml --name github
//! # 2. An instance with the client id and secret the provider issued you. Register the
//! #    redirect URI `http://127.0.0.1:8080/admin/oauth/` (with the slash) at the provider.
//! GRANARY_CLIENT_SECRET=... granary instance create github-me --integration github \
//!     --client-id Iv1.0123456789 --scope read:user
//! # 3. The server receives the provider's redirect; keep it running while you approve.
//! granary serve &
//! granary authorize github-me        # open the printed link and approve
//! granary instance show github-me    # status: connected
//! # 4. Call the API with the instance's token.
//! cargo run -p granary --example authorized_client -- ./granary-data github-me \
//!     https://api.github.com/user
//! ```
//!
//! No provider at hand? `cargo xtask demo` starts a real authorization server on 127.0.0.1
//! and granary with an instance ready to authorize, and prints what to open.

use std::path::Path;
use std::process::ExitCode;

use granary::{Config, Granary, StoreConfig};

/// How much of the response body is printed.
const EXCERPT_CHARS: usize = 400;

/// The SQLite file in a granary data directory (as `granary serve` and the CLI keep it).
const STORE_FILE: &str = "granary.sqlite";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut arg = |name: &str, default: Option<&str>| {
        args.next()
            .or_else(|| std::env::var(name).ok())
            .or_else(|| default.map(str::to_string))
            .ok_or_else(|| {
                format!(
                    "missing {name}: give STORE INSTANCE URL as arguments or set \
                     GRANARY_STORE, GRANARY_INSTANCE and GRANARY_URL (see the top of \
                     crates/granary/examples/authorized_client.rs)"
                )
            })
    };
    let store = store_config(&arg("GRANARY_STORE", Some("granary-data"))?)?;
    let instance = arg("GRANARY_INSTANCE", None)?;
    let url = arg("GRANARY_URL", None)?;
    let url: url::Url = url
        .parse()
        .map_err(|e| format!("`{url}` is not a URL: {e}"))?;

    // The public URL only matters for authorizing (the redirect URI); this program never does.
    let public_url = std::env::var("GRANARY_PUBLIC_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8080".to_string())
        .parse()
        .map_err(|e| format!("GRANARY_PUBLIC_URL is not a URL: {e}"))?;
    let granary = Granary::open(Config::new(store, public_url))
        .await
        .map_err(|e| e.to_string())?;

    // The API is called with a client of your own (timeouts, proxies, redirects as you
    // like); granary's client for the providers is another one.
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let client = granary.authorized_client(&instance, http);
    let response = client
        .send(client.http().get(url.clone()))
        .await
        .map_err(|e| format!("calling {url} as `{instance}`: {e}"))?;

    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    let excerpt: String = body.chars().take(EXCERPT_CHARS).collect();
    println!("GET {url} as instance `{instance}`: {status}");
    println!(
        "{excerpt}{}",
        if body.chars().count() > EXCERPT_CHARS {
            " [...]"
        } else {
            ""
        }
    );
    granary.shutdown(std::time::Duration::from_secs(5)).await;
    Ok(())
}

/// A data directory, a SQLite file or a store URL; an existing store only (opening a path
/// that holds none would create an empty store, with no instance in it).
fn store_config(store: &str) -> Result<StoreConfig, String> {
    let known_url = [
        "sqlite:",
        "sled:",
        "memory:",
        "postgres://",
        "postgresql://",
    ]
    .iter()
    .any(|scheme| store.starts_with(scheme));
    if known_url {
        return StoreConfig::from_url(store).map_err(|e| e.to_string());
    }
    let path = Path::new(store);
    let file = if path.is_dir() {
        path.join(STORE_FILE)
    } else {
        path.to_path_buf()
    };
    if !file.is_file() {
        return Err(format!(
            "no granary store at {}: set up an instance first with the granary CLI (see the \
             top of crates/granary/examples/authorized_client.rs), or pass its data directory",
            file.display()
        ));
    }
    // Through the URL form so that a build without the `sqlite` feature says so by name.
    StoreConfig::from_url(&format!("sqlite:{}", file.display())).map_err(|e| e.to_string())
}
