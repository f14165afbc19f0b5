//! Swagger 2.0: `securityDefinitions`, read by hand (openapiv3 has no 2.0 types).
//!
//! Flows map as `accessCode` -> authorization code, `application` -> client credentials,
//! `implicit` and `password` as they are. Swagger 2.0 has no refresh URL.

use crate::context::{Context, member, required};
use crate::extension::take_profile;
use crate::node::Node;
use crate::{Error, Flow, FlowKind, OAuth2Scheme, OtherScheme, Result, pointer};

const DEFINITIONS: &str = "/securityDefinitions";

/// Reads every security definition of a Swagger 2.0 document; `list` is
/// `securityDefinitions`, moved out of the kept tree.
pub(crate) fn schemes<'a>(
    cx: &Context<'a>,
    list: Node<'a>,
) -> Result<(Vec<OAuth2Scheme>, Vec<OtherScheme>)> {
    let list = match list {
        Node::Null => return Ok((Vec::new(), Vec::new())),
        list => list.into_members(
            || DEFINITIONS.to_owned(),
            "an object of named security schemes",
        )?,
    };
    crate::read_schemes(cx, DEFINITIONS, list, read_oauth2)
}

fn read_oauth2<'a>(
    cx: &Context<'a>,
    name: String,
    at: &str,
    scheme: Node<'a>,
) -> Result<OAuth2Scheme> {
    let mut members = scheme.into_members(|| at.to_owned(), "a security scheme object")?;
    let profile_extension = take_profile(&mut members, || at.to_owned())?;
    let flow_at = pointer::join(at, "flow");
    let flow_node = required(&members, at, "flow")?;
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
            Some(required(&members, at, key)?)
        } else {
            member(&members, key)
        };
        value.map(|v| cx.url(at, key, v)).transpose()
    };
    let authorization_url = url("authorizationUrl", kind.needs_authorization_url())?;
    let token_url = url("tokenUrl", kind.needs_token_url())?;
    let scopes = cx.scopes(&|| pointer::join(at, "scopes"), members.take("scopes"))?;
    let description = match members.take("description") {
        Some(Node::Str(text)) => Some(text.into_owned()),
        _ => None,
    };
    Ok(OAuth2Scheme {
        name,
        description,
        flows: vec![Flow {
            kind,
            // Only the URLs the flow uses are kept, as for OpenAPI 3.
            authorization_url: authorization_url.filter(|_| kind.needs_authorization_url()),
            token_url: token_url.filter(|_| kind.needs_token_url()),
            refresh_url: None,
            scopes,
            profile_extension: None,
        }],
        profile_extension,
    })
}
