//! Swagger 2.0: `securityDefinitions`, read by hand (openapiv3 has no 2.0 types).
//!
//! Flows map as `accessCode` -> authorization code, `application` -> client credentials,
//! `implicit` and `password` as they are. Swagger 2.0 has no refresh URL.

use crate::context::{Context, member, required};
use crate::node::Node;
use crate::{Error, Flow, FlowKind, OAuth2Scheme, OtherScheme, Result, pointer};

const DEFINITIONS: &str = "/securityDefinitions";

/// Reads every security definition of a Swagger 2.0 document.
pub(crate) fn schemes(cx: &Context<'_>) -> Result<(Vec<OAuth2Scheme>, Vec<OtherScheme>)> {
    let mut oauth2 = Vec::new();
    let mut others = Vec::new();
    let list = match cx.top.get("securityDefinitions") {
        None | Some(Node::Null) => return Ok((oauth2, others)),
        Some(Node::Map(list)) => list,
        Some(other) => {
            return Err(Error::Invalid {
                pointer: DEFINITIONS.to_owned(),
                problem: format!(
                    "expected an object of named security schemes, found {}",
                    other.kind()
                ),
            });
        }
    };
    for (name, node) in list {
        let at = pointer::join(DEFINITIONS, name);
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
    let flow_at = pointer::join(at, "flow");
    let flow_node = required(members, at, "flow")?;
    let Some(flow_name) = flow_node.as_str() else {
        return Err(Error::Invalid {
            pointer: flow_at,
            problem: format!("expected a flow name string, found {}", flow_node.kind()),
        });
    };
    let kind = match flow_name {
        "accessCode" => FlowKind::AuthorizationCode,
        "application" => FlowKind::ClientCredentials,
        "implicit" => FlowKind::Implicit,
        "password" => FlowKind::Password,
        // OpenAPI 3 names, seen in hand-written 2.0 documents.
        "authorizationCode" | "clientCredentials" => {
            cx.warn(
                &flow_at,
                format!("`{flow_name}` is the OpenAPI 3 name; read as the Swagger 2.0 flow it stands for"),
            );
            if flow_name == "authorizationCode" {
                FlowKind::AuthorizationCode
            } else {
                FlowKind::ClientCredentials
            }
        }
        other => {
            return Err(Error::Invalid {
                pointer: flow_at,
                problem: format!(
                    "unknown flow `{other}`; Swagger 2.0 flows are accessCode, implicit, password and application"
                ),
            });
        }
    };
    let url = |key: &str, needed: bool| -> Result<Option<url::Url>> {
        let value = if needed {
            Some(required(members, at, key)?)
        } else {
            member(members, key)
        };
        value.map(|v| cx.url(at, key, v)).transpose()
    };
    let authorization_url = url("authorizationUrl", kind.needs_authorization_url())?;
    let token_url = url("tokenUrl", kind.needs_token_url())?;
    let scopes = cx.scopes(&pointer::join(at, "scopes"), member(members, "scopes"))?;
    Ok(OAuth2Scheme {
        name: name.to_owned(),
        description: member(members, "description")
            .and_then(Node::as_str)
            .map(str::to_owned),
        flows: vec![Flow {
            kind,
            // Only the URLs the flow uses are kept, as for OpenAPI 3.
            authorization_url: authorization_url.filter(|_| kind.needs_authorization_url()),
            token_url: token_url.filter(|_| kind.needs_token_url()),
            refresh_url: None,
            scopes,
        }],
    })
}
