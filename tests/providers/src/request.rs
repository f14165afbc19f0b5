//! One incoming request, read once: its target `HOST/PATH`, query, body parameters and credentials.

use axum::http::{HeaderMap, Method, header};
use base64::Engine as _;

/// The body's format, from its `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    None,
    Form,
    Json,
    Other,
}

/// What the emulator reads from a request.
#[derive(Debug)]
pub struct Incoming {
    pub method: Method,
    /// The request path without its leading `/`: `HOST/PATH`, raw (still percent-encoded).
    pub host_path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub format: Format,
    pub body: Vec<(String, String)>,
}

impl Incoming {
    /// Reads the request; an unreadable body is an error that names the problem.
    pub fn read(
        method: Method,
        path: &str,
        query: Option<&str>,
        headers: HeaderMap,
        body: &[u8],
    ) -> Result<Incoming, String> {
        let host_path = path.trim_start_matches('/').to_owned();
        let query = query.map(form_pairs).unwrap_or_default();
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let format = match content_type.as_deref() {
            _ if body.is_empty() => Format::None,
            Some("application/x-www-form-urlencoded") => Format::Form,
            Some("application/json") => Format::Json,
            _ => Format::Other,
        };
        let body = match format {
            Format::None | Format::Other => Vec::new(),
            Format::Form => {
                let text = std::str::from_utf8(body)
                    .map_err(|_| "the form body is not UTF-8".to_owned())?;
                form_pairs(text)
            }
            Format::Json => json_pairs(body)?,
        };
        Ok(Incoming {
            method,
            host_path,
            query,
            headers,
            format,
            body,
        })
    }

    /// A body parameter.
    pub fn body_param(&self, name: &str) -> Option<&str> {
        self.body
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A parameter from the body, else from the query (token endpoints of some providers
    /// read the query: ClickUp, Gong, Zoho).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.body_param(name).or_else(|| self.query_param(name))
    }

    /// The `Authorization` header's scheme and value.
    fn authorization(&self) -> Option<(String, String)> {
        let value = self.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, rest) = value.trim().split_once(' ')?;
        Some((scheme.to_ascii_lowercase(), rest.trim().to_owned()))
    }

    /// HTTP Basic credentials, form-urldecoded (RFC 6749 2.3.1): `None` when there is no
    /// Basic header, `Some(Err)` when it is malformed.
    pub fn basic(&self) -> Option<Result<(String, String), String>> {
        let (scheme, value) = self.authorization()?;
        if scheme != "basic" {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.as_bytes())
            .map_err(|_| "the Basic credentials are not base64".to_owned())
            .and_then(|b| {
                String::from_utf8(b).map_err(|_| "the Basic credentials are not UTF-8".to_owned())
            });
        Some(decoded.and_then(|text| match text.split_once(':') {
            Some((id, secret)) => Ok((form_decode(id), form_decode(secret))),
            None => Err("the Basic credentials have no ':' between id and secret".to_owned()),
        }))
    }

    /// A bearer token in the `Authorization` header.
    pub fn bearer(&self) -> Option<String> {
        match self.authorization()? {
            (scheme, token) if scheme == "bearer" => Some(token),
            _ => None,
        }
    }

    /// Whether the client accepts a JSON answer.
    pub fn accepts_json(&self) -> bool {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"))
    }

    /// The names of the headers, for the log.
    pub fn header_names(&self) -> Vec<String> {
        self.headers.keys().map(|k| k.as_str().to_owned()).collect()
    }
}

/// `a=1&b=2`, form-urldecoded.
pub fn form_pairs(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn form_decode(text: &str) -> String {
    form_pairs(&format!("x={text}"))
        .pop()
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// A JSON object's top-level members as text (strings as they are, other values as JSON).
fn json_pairs(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the JSON body does not parse: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err("the JSON body is not an object".to_owned());
    };
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, text)
        })
        .collect())
}
