//! `granary inspect FILE`: the OAuth 2.0 side of an OpenAPI document, as a table or JSON.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use granary_openapi::{Document, Flow, ParseOptions};
use url::Url;

use crate::exit;

/// Arguments of `granary inspect`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The OpenAPI 3.x or Swagger 2.0 document (JSON or YAML; `-` reads standard input).
    file: PathBuf,
    /// Print the result as JSON, for machines.
    #[arg(long)]
    json: bool,
    /// The URL the document came from: the base of relative server and OAuth URLs.
    #[arg(long, value_name = "URL")]
    base_url: Option<Url>,
}

/// Runs the subcommand: 0 on success, 1 for a document granary cannot read, 2 for I/O.
pub(crate) fn run(args: &Args) -> ExitCode {
    let name = args.file.display().to_string();
    let bytes = if name == "-" {
        let mut buffer = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buffer).map(|_| buffer)
    } else {
        std::fs::read(&args.file)
    };
    let bytes = match bytes {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("error: cannot read {name}: {e}");
            return ExitCode::from(exit::USAGE_OR_IO);
        }
    };
    let options = match &args.base_url {
        Some(url) => ParseOptions::with_base_url(url.clone()),
        None => ParseOptions::default(),
    };
    let doc = match granary_openapi::parse_with(&bytes, &options) {
        Ok(doc) => doc,
        Err(e) => {
            eprintln!("error: {name}: {e}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let output = if args.json {
        match serde_json::to_string_pretty(&doc) {
            Ok(json) => json + "\n",
            Err(e) => {
                eprintln!("error: cannot write JSON: {e}");
                return ExitCode::from(exit::USAGE_OR_IO);
            }
        }
    } else {
        table(&doc)
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the output: {e}");
            ExitCode::from(exit::USAGE_OR_IO)
        }
    }
}

/// The readable report: summary, one block per oauth2 scheme, other schemes, warnings.
fn table(doc: &Document) -> String {
    let mut out = String::new();
    let title = doc
        .title
        .as_deref()
        .map_or_else(|| "(untitled)".to_owned(), clean);
    let _ = writeln!(out, "{title}");
    let _ = writeln!(out, "  {}, {}", doc.spec_version, doc.format);
    match doc.authorization_code_flows() {
        Ok(flows) => {
            let names: Vec<String> = flows.iter().map(|f| clean(&f.scheme.name)).collect();
            let _ = writeln!(
                out,
                "  authorization-code flows: {} ({})",
                flows.len(),
                names.join(", ")
            );
        }
        Err(e) => {
            let _ = writeln!(out, "  {e}");
        }
    }
    for scheme in &doc.schemes {
        let _ = writeln!(out, "\noauth2 scheme {}", clean(&scheme.name));
        if let Some(description) = &scheme.description {
            let _ = writeln!(out, "  {}", clean(description));
        }
        for flow in &scheme.flows {
            write_flow(&mut out, flow);
        }
    }
    if !doc.other_schemes.is_empty() {
        let _ = writeln!(out, "\nother schemes");
        let width = column_width(doc.other_schemes.iter().map(|s| s.name.as_str()));
        for scheme in &doc.other_schemes {
            let _ = writeln!(
                out,
                "  {:<width$}  {}",
                clean(&scheme.name),
                clean(&scheme.kind)
            );
        }
    }
    if !doc.warnings.is_empty() {
        let _ = writeln!(out, "\nwarnings ({})", doc.warnings.len());
        for warning in &doc.warnings {
            let _ = writeln!(out, "  {}", clean(&warning.to_string()));
        }
    }
    out
}

fn write_flow(out: &mut String, flow: &Flow) {
    let _ = writeln!(out, "  {}", flow.kind);
    let url = |u: &Option<Url>| {
        u.as_ref()
            .map_or_else(|| "-".to_owned(), |u| clean(u.as_str()))
    };
    if flow.kind.needs_authorization_url() {
        let _ = writeln!(
            out,
            "    authorization URL  {}",
            url(&flow.authorization_url)
        );
    }
    if flow.kind.needs_token_url() {
        let _ = writeln!(out, "    token URL          {}", url(&flow.token_url));
    }
    if flow.refresh_url.is_some() {
        let _ = writeln!(out, "    refresh URL        {}", url(&flow.refresh_url));
    }
    if flow.scopes.is_empty() {
        let _ = writeln!(out, "    scopes             (none declared)");
        return;
    }
    let _ = writeln!(out, "    scopes ({})", flow.scopes.len());
    let width = column_width(flow.scopes.keys().map(String::as_str));
    for (name, description) in &flow.scopes {
        let name = if name.trim().is_empty() {
            format!("{name:?}")
        } else {
            clean(name)
        };
        let _ = writeln!(out, "      {name:<width$}  {}", clean(description));
    }
}

/// The width of a name column: the longest name, at most 40 characters.
fn column_width<'a>(names: impl Iterator<Item = &'a str>) -> usize {
    names
        .map(|n| clean(n).chars().count())
        .max()
        .unwrap_or(0)
        .min(40)
}

/// Text from the document made safe for a terminal: control characters (escape sequences,
/// newlines) become spaces and runs of whitespace one space.
fn clean(text: &str) -> String {
    let replaced: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    replaced.split_whitespace().collect::<Vec<_>>().join(" ")
}
