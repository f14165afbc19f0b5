//! OpenAPI 3.x: `components/securitySchemes`, read through the openapiv3 types.
//!
//! Each oauth2 scheme is checked member by member first (so that every problem is reported
//! with its JSON pointer), then handed to `openapiv3::SecurityScheme` in a normalised form,
//! and mapped onto this crate's types with its URLs resolved.

use openapiv3::{OAuth2Flows, SecurityScheme};
use serde::Deserialize;
use serde::de::IntoDeserializer;

use crate::context::{Context, member, required};
use crate::node::{Members, Node};
use crate::{Error, Flow, FlowKind, OAuth2Scheme, OtherScheme, Result, pointer};

const SCHEMES: &str = "/components/securitySchemes";

/// The flows of OpenAPI 3 and the member names each reads.
const FLOWS: &[(&str, FlowKind)] = &[
    ("authorizationCode", FlowKind::AuthorizationCode),
    ("clientCredentials", FlowKind::ClientCredentials),
    ("implicit", FlowKind::Implicit),
    ("password", FlowKind::Password),
];

/// Reads every security scheme of an OpenAPI 3.x document.
pub(crate) fn schemes(cx: &Context<'_>) -> Result<(Vec<OAuth2Scheme>, Vec<OtherScheme>)> {
    let mut oauth2 = Vec::new();
    let mut others = Vec::new();
    let components = match cx.top.get("components") {
        None | Some(Node::Null) => return Ok((oauth2, others)),
        Some(Node::Map(_)) => cx.top.get("components"),
        Some(other) => {
            return Err(Error::Invalid {
                pointer: "/components".to_owned(),
                problem: format!("expected an object, found {}", other.kind()),
            });
        }
    };
    let list = match components.and_then(|c| c.get("securitySchemes")) {
        None | Some(Node::Null) => return Ok((oauth2, others)),
        Some(Node::Map(list)) => list,
        Some(other) => {
            return Err(Error::Invalid {
                pointer: SCHEMES.to_owned(),
                problem: format!(
                    "expected an object of named security schemes, found {}",
                    other.kind()
                ),
            });
        }
    };
    for (name, node) in list {
        let at = pointer::join(SCHEMES, name);
        let (at, scheme) = cx.resolve(&at, node)?;
        match crate::scheme_type(cx, &at, scheme)? {
            Some(kind) if kind == "oauth2" => oauth2.push(read_oauth2(cx, name, &at, scheme)?),
            Some(kind) => others.push(OtherScheme {
                name: name.clone(),
                kind,
            }),
            None => others.push(OtherScheme {
                name: name.clone(),
                kind: "(none)".to_owned(),
            }),
        }
    }
    Ok((oauth2, others))
}

fn read_oauth2(cx: &Context<'_>, name: &str, at: &str, scheme: &Node) -> Result<OAuth2Scheme> {
    let Some(members) = scheme.as_map() else {
        return Err(Error::Invalid {
            pointer: at.to_owned(),
            problem: format!("expected a security scheme object, found {}", scheme.kind()),
        });
    };
    let flows_at = pointer::join(at, "flows");
    let flows = match required(members, at, "flows")? {
        Node::Map(flows) => flows,
        other => {
            return Err(Error::Invalid {
                pointer: flows_at,
                problem: format!("expected an object of flows, found {}", other.kind()),
            });
        }
    };

    // Check and normalise each flow, in document order.
    let mut order = Vec::new();
    let mut normalised = Members::with_capacity(flows.len());
    for (key, flow) in flows {
        let Some(&(_, kind)) = FLOWS.iter().find(|(name, _)| name == key) else {
            if !key.starts_with("x-") {
                cx.warn(
                    pointer::join(&flows_at, key),
                    "unknown flow, ignored (OpenAPI 3 flows are authorizationCode, clientCredentials, implicit and password)",
                );
            }
            continue;
        };
        let flow_at = pointer::join(&flows_at, key);
        let Some(flow) = flow.as_map() else {
            return Err(Error::Invalid {
                pointer: flow_at,
                problem: format!("expected a flow object, found {}", flow.kind()),
            });
        };
        normalised.push(key.clone(), normalise_flow(cx, kind, &flow_at, flow)?);
        order.push(kind);
    }

    let mut typed = Members::with_capacity(2);
    typed.push("type".to_owned(), Node::Str("oauth2".to_owned()));
    typed.push("flows".to_owned(), Node::Map(normalised));
    let description = member(members, "description")
        .and_then(Node::as_str)
        .map(str::to_owned);
    let parsed =
        SecurityScheme::deserialize(Node::Map(typed).into_deserializer()).map_err(|e| {
            Error::Invalid {
                pointer: at.to_owned(),
                problem: format!("not a valid OAuth 2.0 security scheme: {e}"),
            }
        })?;
    let SecurityScheme::OAuth2 { flows, .. } = parsed else {
        return Err(Error::Invalid {
            pointer: at.to_owned(),
            problem: "not an OAuth 2.0 security scheme".to_owned(),
        });
    };
    Ok(OAuth2Scheme {
        name: name.to_owned(),
        description,
        flows: map_flows(cx, &flows_at, flows, &order)?,
    })
}

/// Checks one flow's members (reporting each problem with its pointer) and returns it in
/// the shape openapiv3 reads: URL strings and a string-to-string scope map.
fn normalise_flow(cx: &Context<'_>, kind: FlowKind, at: &str, flow: &Members) -> Result<Node> {
    let mut out = Members::with_capacity(4);
    let mut url_member = |key: &str, needed: bool| -> Result<()> {
        let value = if needed {
            Some(required(flow, at, key)?)
        } else {
            member(flow, key)
        };
        if let Some(value) = value {
            match value {
                Node::Str(text) if !text.trim().is_empty() => {
                    out.push(key.to_owned(), Node::Str(text.clone()));
                }
                Node::Str(_) => {
                    return Err(Error::Invalid {
                        pointer: pointer::join(at, key),
                        problem: "empty URL".to_owned(),
                    });
                }
                other => {
                    return Err(Error::Invalid {
                        pointer: pointer::join(at, key),
                        problem: format!("expected a URL string, found {}", other.kind()),
                    });
                }
            }
        }
        Ok(())
    };
    if kind.needs_authorization_url() {
        url_member("authorizationUrl", true)?;
    }
    if kind.needs_token_url() {
        url_member("tokenUrl", true)?;
    }
    url_member("refreshUrl", false)?;
    let scopes = match member(flow, "scopes") {
        // The usual case, taken as it is: names to description strings.
        Some(Node::Map(scopes)) if scopes.all_strings() => scopes.clone(),
        other => cx
            .scopes(&pointer::join(at, "scopes"), other)?
            .into_iter()
            .map(|(k, v)| (k, Node::Str(v)))
            .collect(),
    };
    out.push("scopes".to_owned(), Node::Map(scopes));
    Ok(Node::Map(out))
}

/// Maps the openapiv3 flows onto [`Flow`]s, in document order, resolving their URLs.
fn map_flows(
    cx: &Context<'_>,
    at: &str,
    mut flows: OAuth2Flows,
    order: &[FlowKind],
) -> Result<Vec<Flow>> {
    let mut out = Vec::with_capacity(order.len());
    for &kind in order {
        let (authorization, token, refresh, scopes) = match kind {
            FlowKind::AuthorizationCode => match flows.authorization_code.take() {
                Some(f) => (
                    Some(f.authorization_url),
                    Some(f.token_url),
                    f.refresh_url,
                    f.scopes,
                ),
                None => continue,
            },
            FlowKind::ClientCredentials => match flows.client_credentials.take() {
                Some(f) => (None, Some(f.token_url), f.refresh_url, f.scopes),
                None => continue,
            },
            FlowKind::Implicit => match flows.implicit.take() {
                Some(f) => (Some(f.authorization_url), None, f.refresh_url, f.scopes),
                None => continue,
            },
            FlowKind::Password => match flows.password.take() {
                Some(f) => (None, Some(f.token_url), f.refresh_url, f.scopes),
                None => continue,
            },
        };
        let flow_at = pointer::join(at, kind.as_str());
        let resolve = |key: &str, raw: Option<String>| {
            raw.map(|raw| cx.url_text(&flow_at, key, &raw)).transpose()
        };
        out.push(Flow {
            kind,
            authorization_url: resolve("authorizationUrl", authorization)?,
            token_url: resolve("tokenUrl", token)?,
            refresh_url: resolve("refreshUrl", refresh)?,
            scopes,
        });
    }
    Ok(out)
}
