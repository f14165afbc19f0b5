//! OpenAPI 3.x: `components/securitySchemes`, read into the openapiv3 types.
//!
//! Each oauth2 scheme is checked member by member (so that every problem is reported with
//! its JSON pointer) and its flows are built as `openapiv3::OAuth2Flows`, the strings moved
//! out of the kept tree; those are then mapped onto this crate's types with their URLs
//! resolved. Pointers are built only for warnings and errors.

use indexmap::IndexMap;
use openapiv3::{
    AuthorizationCodeOAuth2Flow, ClientCredentialsOAuth2Flow, ImplicitOAuth2Flow, OAuth2Flows,
    PasswordOAuth2Flow,
};

use crate::context::{Context, missing};
use crate::extension::{PROFILE_EXTENSION, take_profile};
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

/// Reads every security scheme of an OpenAPI 3.x document; `list` is
/// `components/securitySchemes`, moved out of the kept tree.
pub(crate) fn schemes<'a>(
    cx: &Context<'a>,
    list: Node<'a>,
) -> Result<(Vec<OAuth2Scheme>, Vec<OtherScheme>)> {
    match cx.top.get("components") {
        None | Some(Node::Null) | Some(Node::Map(_)) => {}
        Some(other) => {
            return Err(Error::Invalid {
                pointer: "/components".to_owned(),
                problem: format!("expected an object, found {}", other.kind()),
            });
        }
    }
    let list = match list {
        Node::Null => return Ok((Vec::new(), Vec::new())),
        list => list.into_members(|| SCHEMES.to_owned(), "an object of named security schemes")?,
    };
    crate::read_schemes(cx, SCHEMES, list, read_oauth2)
}

fn read_oauth2<'a>(
    cx: &Context<'a>,
    name: String,
    at: &str,
    scheme: Node<'a>,
) -> Result<OAuth2Scheme> {
    let mut members = scheme.into_members(|| at.to_owned(), "a security scheme object")?;
    let profile_extension = take_profile(&mut members, || at.to_owned())?;
    let flows = match members.take("flows") {
        Some(flows) => flows.into_members(|| pointer::join(at, "flows"), "an object of flows")?,
        None => return Err(missing(pointer::join(at, "flows"))),
    };

    // Check each flow and build it as openapiv3 reads it, in document order.
    // Each flow name appears once (later duplicates win), so there are at most 4.
    let mut order = [FlowKind::AuthorizationCode; FLOWS.len()];
    let mut count = 0;
    let mut typed = OAuth2Flows::default();
    for (key, flow) in flows {
        let Some(&(_, kind)) = FLOWS.iter().find(|(name, _)| *name == key) else {
            if !key.starts_with("x-") {
                cx.warn(
                    pointer::join_all(at, &["flows", &key]),
                    "unknown flow, ignored (OpenAPI 3 flows are authorizationCode, clientCredentials, implicit and password)",
                );
            }
            continue;
        };
        let flow =
            flow.into_members(|| pointer::join_all(at, &["flows", &key]), "a flow object")?;
        add_flow(cx, &mut typed, kind, at, flow)?;
        if let Some(slot) = order.get_mut(count) {
            *slot = kind;
            count += 1;
        }
    }

    let description = match members.take("description") {
        Some(Node::Str(text)) => Some(text.into_owned()),
        _ => None,
    };
    Ok(OAuth2Scheme {
        name,
        description,
        flows: map_flows(cx, at, typed, order.get(..count).unwrap_or_default())?,
        profile_extension,
    })
}

/// Checks one flow's members (reporting each problem with its pointer) and sets it in
/// `typed`: its URL strings and its scopes, moved out of `flow`.
fn add_flow(
    cx: &Context<'_>,
    typed: &mut OAuth2Flows,
    kind: FlowKind,
    at: &str,
    mut flow: Members<'_>,
) -> Result<()> {
    let name = kind.as_str();
    let mut url = |key: &str| -> Result<Option<String>> {
        match flow.take(key) {
            None => Ok(None),
            Some(Node::Str(text)) if !text.trim().is_empty() => Ok(Some(text.into_owned())),
            Some(Node::Str(_)) => Err(Error::Invalid {
                pointer: pointer::join_all(at, &["flows", name, key]),
                problem: "empty URL".to_owned(),
            }),
            Some(other) => Err(Error::Invalid {
                pointer: pointer::join_all(at, &["flows", name, key]),
                problem: format!("expected a URL string, found {}", other.kind()),
            }),
        }
    };
    let required = |found: Option<String>, key: &str| {
        found.ok_or_else(|| missing(pointer::join_all(at, &["flows", name, key])))
    };
    let authorization_url = if kind.needs_authorization_url() {
        Some(required(url("authorizationUrl")?, "authorizationUrl")?)
    } else {
        None
    };
    let token_url = if kind.needs_token_url() {
        Some(required(url("tokenUrl")?, "tokenUrl")?)
    } else {
        None
    };
    let refresh_url = url("refreshUrl")?;
    let scopes = cx.scopes(
        &|| pointer::join_all(at, &["flows", name, "scopes"]),
        flow.take("scopes"),
    )?;
    // The flow's `x-granary-profile` rides in openapiv3's extensions to `map_flows`.
    let mut extensions = IndexMap::new();
    if let Some(profile) = take_profile(&mut flow, || pointer::join_all(at, &["flows", name]))? {
        extensions.insert(PROFILE_EXTENSION.to_owned(), profile);
    }
    match (kind, authorization_url, token_url) {
        (FlowKind::AuthorizationCode, Some(authorization_url), Some(token_url)) => {
            typed.authorization_code = Some(AuthorizationCodeOAuth2Flow {
                authorization_url,
                token_url,
                refresh_url,
                scopes,
                extensions,
            });
        }
        (FlowKind::ClientCredentials, _, Some(token_url)) => {
            typed.client_credentials = Some(ClientCredentialsOAuth2Flow {
                token_url,
                refresh_url,
                scopes,
                extensions,
            });
        }
        (FlowKind::Implicit, Some(authorization_url), _) => {
            typed.implicit = Some(ImplicitOAuth2Flow {
                authorization_url,
                refresh_url,
                scopes,
                extensions,
            });
        }
        (FlowKind::Password, _, Some(token_url)) => {
            typed.password = Some(PasswordOAuth2Flow {
                token_url,
                refresh_url,
                scopes,
                extensions,
            });
        }
        // Each kind's needed URLs were required above.
        _ => {}
    }
    Ok(())
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
        let (authorization, token, refresh, scopes, mut extensions) = match kind {
            FlowKind::AuthorizationCode => match flows.authorization_code.take() {
                Some(f) => (
                    Some(f.authorization_url),
                    Some(f.token_url),
                    f.refresh_url,
                    f.scopes,
                    f.extensions,
                ),
                None => continue,
            },
            FlowKind::ClientCredentials => match flows.client_credentials.take() {
                Some(f) => (
                    None,
                    Some(f.token_url),
                    f.refresh_url,
                    f.scopes,
                    f.extensions,
                ),
                None => continue,
            },
            FlowKind::Implicit => match flows.implicit.take() {
                Some(f) => (
                    Some(f.authorization_url),
                    None,
                    f.refresh_url,
                    f.scopes,
                    f.extensions,
                ),
                None => continue,
            },
            FlowKind::Password => match flows.password.take() {
                Some(f) => (
                    None,
                    Some(f.token_url),
                    f.refresh_url,
                    f.scopes,
                    f.extensions,
                ),
                None => continue,
            },
        };
        let resolve = |key: &str, raw: Option<String>| {
            raw.map(|raw| {
                cx.url_text(
                    &|| pointer::join_all(at, &["flows", kind.as_str(), key]),
                    &raw,
                )
            })
            .transpose()
        };
        out.push(Flow {
            kind,
            authorization_url: resolve("authorizationUrl", authorization)?,
            token_url: resolve("tokenUrl", token)?,
            refresh_url: resolve("refreshUrl", refresh)?,
            scopes,
            profile_extension: extensions.swap_remove(PROFILE_EXTENSION),
        });
    }
    Ok(out)
}
