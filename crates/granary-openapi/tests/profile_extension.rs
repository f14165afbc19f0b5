//! `x-granary-profile` on oauth2 schemes and flows is kept, as written, in every version and
//! format, through `$ref`s and in large documents; anything but a name or an object is refused.

use granary_openapi::{Error, FlowKind, PROFILE_EXTENSION, parse};
use serde_json::json;

const OPENAPI30_YAML: &str = r#"
openapi: 3.0.3
info: {title: Acme, version: "1"}
paths: {}
components:
  securitySchemes:
    acme:
      type: oauth2
      x-granary-profile: shopify
      flows:
        authorizationCode:
          authorizationUrl: https://acme.example/authorize
          tokenUrl: https://acme.example/token
          scopes: {read: Read}
          x-granary-profile:
            use: google
            authorization:
              params: {prompt: ""}
              pkce: false
            fields:
              - {name: shop, kind: label}
        clientCredentials:
          tokenUrl: https://acme.example/token
          scopes: {}
"#;

#[test]
fn openapi30_yaml_keeps_the_scheme_and_flow_values() {
    let doc = parse(OPENAPI30_YAML.as_bytes()).unwrap();
    let scheme = &doc.schemes[0];
    assert_eq!(scheme.profile_extension, Some(json!("shopify")));
    let code = scheme.flow(FlowKind::AuthorizationCode).unwrap();
    assert_eq!(
        code.profile_extension,
        Some(json!({
            "use": "google",
            "authorization": {"params": {"prompt": ""}, "pkce": false},
            "fields": [{"name": "shop", "kind": "label"}]
        }))
    );
    // The flow's own value wins over the scheme's; a flow without one takes the scheme's.
    assert_eq!(
        code.profile_extension_or(scheme),
        code.profile_extension.as_ref()
    );
    let machine = scheme.flow(FlowKind::ClientCredentials).unwrap();
    assert_eq!(machine.profile_extension, None);
    assert_eq!(
        machine.profile_extension_or(scheme),
        Some(&json!("shopify"))
    );
    assert!(doc.warnings.is_empty(), "{:?}", doc.warnings);
}

#[test]
fn openapi31_json_keeps_them_through_a_ref() {
    let document = json!({
        "openapi": "3.1.0",
        "info": {"title": "Acme", "version": "1"},
        "components": {"securitySchemes": {
            "acme": {"$ref": "#/components/securitySchemes/real"},
            "real": {
                "type": "oauth2",
                "x-granary-profile": {"token": {"client_auth": "client_secret_post"}},
                "flows": {"authorizationCode": {
                    "authorizationUrl": "https://acme.example/authorize",
                    "tokenUrl": "https://acme.example/token",
                    "scopes": {},
                    "x-granary-profile": "none"
                }}
            }
        }}
    });
    let doc = parse(document.to_string().as_bytes()).unwrap();
    for scheme in &doc.schemes {
        assert_eq!(
            scheme.profile_extension,
            Some(json!({"token": {"client_auth": "client_secret_post"}})),
            "{}",
            scheme.name
        );
        assert_eq!(scheme.flows[0].profile_extension, Some(json!("none")));
    }
}

#[test]
fn swagger2_keeps_the_security_definition_value() {
    let document = json!({
        "swagger": "2.0",
        "info": {"title": "Acme", "version": "1"},
        "host": "acme.example",
        "securityDefinitions": {"acme": {
            "type": "oauth2",
            "flow": "accessCode",
            "authorizationUrl": "https://acme.example/authorize",
            "tokenUrl": "https://acme.example/token",
            "scopes": {},
            "x-granary-profile": {"use": "zendesk", "token": {"params": {"expires_in": "3600"}}}
        }}
    });
    let doc = parse(document.to_string().as_bytes()).unwrap();
    let scheme = &doc.schemes[0];
    assert_eq!(
        scheme.profile_extension,
        Some(json!({"use": "zendesk", "token": {"params": {"expires_in": "3600"}}}))
    );
    assert_eq!(scheme.flows[0].profile_extension, None);
    assert_eq!(
        scheme.flows[0].profile_extension_or(scheme),
        scheme.profile_extension.as_ref()
    );
}

/// Over 16 KiB a JSON document is read from bytes, and `paths` is skipped: the extension
/// inside the security schemes must survive that pass too.
#[test]
fn a_large_document_keeps_them() {
    let paths: serde_json::Map<String, serde_json::Value> = (0..400)
        .map(|i| {
            (
                format!("/things/{i}"),
                json!({"get": {"x-granary-profile": "not-this-one", "responses": {"200": {"description": "ok"}}}}),
            )
        })
        .collect();
    let document = json!({
        "openapi": "3.0.0",
        "info": {"title": "Big", "version": "1"},
        "paths": paths,
        "components": {"securitySchemes": {"big": {
            "type": "oauth2",
            "x-granary-profile": "slack",
            "flows": {"authorizationCode": {
                "authorizationUrl": "https://slack.com/oauth/v2/authorize",
                "tokenUrl": "https://slack.com/api/oauth.v2.access",
                "scopes": {},
                "x-granary-profile": {"token": {"keep": ["team.id"]}}
            }}
        }}}
    })
    .to_string();
    assert!(document.len() > 16 * 1024, "{}", document.len());
    let doc = parse(document.as_bytes()).unwrap();
    assert_eq!(doc.schemes[0].profile_extension, Some(json!("slack")));
    assert_eq!(
        doc.schemes[0].flows[0].profile_extension,
        Some(json!({"token": {"keep": ["team.id"]}}))
    );
}

#[test]
fn a_value_that_is_no_name_nor_object_is_refused_with_its_pointer() {
    for (value, found) in [
        (json!(42), "a number"),
        (json!(["google"]), "an array"),
        (json!(""), "empty"),
    ] {
        let document = json!({
            "openapi": "3.0.0",
            "info": {"title": "Acme", "version": "1"},
            "components": {"securitySchemes": {"acme": {
                "type": "oauth2",
                "flows": {"authorizationCode": {
                    "authorizationUrl": "https://acme.example/authorize",
                    "tokenUrl": "https://acme.example/token",
                    "scopes": {},
                    "x-granary-profile": value
                }}
            }}}
        });
        match parse(document.to_string().as_bytes()) {
            Err(Error::Invalid { pointer, problem }) => {
                assert_eq!(
                    pointer,
                    format!(
                        "/components/securitySchemes/acme/flows/authorizationCode/{PROFILE_EXTENSION}"
                    )
                );
                assert!(problem.contains(found), "{problem}");
            }
            other => panic!("{value}: {other:?}"),
        }
    }
}

#[test]
fn the_values_round_trip_through_serde_and_are_absent_when_unset() {
    let doc = parse(OPENAPI30_YAML.as_bytes()).unwrap();
    let text = serde_json::to_string(&doc).unwrap();
    assert!(text.contains(r#""profile_extension":"shopify""#), "{text}");
    let back: granary_openapi::Document = serde_json::from_str(&text).unwrap();
    assert_eq!(back, doc);

    let plain = OPENAPI30_YAML
        .lines()
        .filter(|line| !line.contains("x-granary-profile: shopify"))
        .collect::<Vec<_>>()
        .join("\n");
    let doc = parse(plain.as_bytes()).unwrap();
    assert_eq!(doc.schemes[0].profile_extension, None);
    let text = serde_json::to_string(&doc.schemes[0]).unwrap();
    assert_eq!(text.matches("profile_extension").count(), 1, "{text}");
}
