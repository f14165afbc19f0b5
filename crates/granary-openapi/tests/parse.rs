//! Tests of `parse` over the fixtures: every version and format, references, URLs, scopes.

use granary_openapi::{Error, FlowKind, Format, ParseOptions, SpecFamily, parse, parse_with};
use url::Url;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

#[test]
fn box_document() {
    let doc = parse(&fixture("box.json")).unwrap();
    assert_eq!(doc.title.as_deref(), Some("Box"));
    assert_eq!(doc.spec_version.family, SpecFamily::OpenApi30);
    assert_eq!(doc.spec_version.exact, "3.0.0");
    assert_eq!(doc.format, Format::Json);
    assert!(doc.warnings.is_empty(), "{:?}", doc.warnings);
    assert!(doc.other_schemes.is_empty());
    assert_eq!(doc.schemes.len(), 1);
    let flows = doc.authorization_code_flows().unwrap();
    assert_eq!(flows.len(), 1);
    let ac = flows[0];
    assert_eq!(ac.scheme.name, "OAuth2Security");
    assert_eq!(
        ac.authorization_url.as_str(),
        "https://account.box.com/api/oauth2/authorize"
    );
    assert_eq!(ac.token_url.as_str(), "https://api.box.com/oauth2/token");
    assert_eq!(ac.flow.refresh_url, None);
    let names: Vec<&str> = ac.flow.scopes.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "manage_app_users",
            "manage_data_retention",
            "manage_enterprise_properties",
            "manage_groups",
            "manage_legal_hold",
            "manage_managed_users",
            "manage_webhook",
            "root_readonly",
            "root_readwrite"
        ],
        "scopes keep document order"
    );
    assert_eq!(
        ac.flow.scopes["manage_groups"],
        "Manage an enterprise's groups"
    );
}

#[test]
fn documents_round_trip_through_serde() {
    let doc = parse(&fixture("several.json")).unwrap();
    let json = serde_json::to_string(&doc).unwrap();
    assert!(json.contains(r#""kind":"authorizationCode""#), "{json}");
    assert!(json.contains(r#""family":"openapi-3.0""#), "{json}");
    let back: granary_openapi::Document = serde_json::from_str(&json).unwrap();
    assert_eq!(back, doc);
}

#[test]
fn swagger2_access_code_and_the_other_flows() {
    let doc = parse(&fixture("swagger2-accesscode.json")).unwrap();
    assert_eq!(doc.spec_version.family, SpecFamily::Swagger2);
    assert_eq!(doc.spec_version.exact, "2.0");
    let kinds: Vec<(&str, FlowKind)> = doc
        .schemes
        .iter()
        .map(|s| (s.name.as_str(), s.flows[0].kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("petstore_auth", FlowKind::AuthorizationCode),
            ("machine", FlowKind::ClientCredentials),
            ("browser", FlowKind::Implicit),
            ("legacy", FlowKind::Password)
        ]
    );
    let pet = &doc.schemes[0];
    assert_eq!(pet.description.as_deref(), Some("Pet store login"));
    // tokenUrl is relative: resolved against https (preferred) + host + basePath.
    assert_eq!(
        pet.flows[0].token_url.as_ref().map(Url::as_str),
        Some("https://petstore.example.com/oauth/token")
    );
    assert_eq!(doc.warnings.len(), 1, "{:?}", doc.warnings);
    assert_eq!(
        doc.warnings[0].pointer,
        "/securityDefinitions/petstore_auth/tokenUrl"
    );
    assert!(
        doc.warnings[0]
            .message
            .contains("https://petstore.example.com/v2"),
        "{}",
        doc.warnings[0]
    );
    assert_eq!(doc.schemes[2].flows[0].token_url, None);
    assert_eq!(doc.schemes[1].flows[0].authorization_url, None);
    let others: Vec<(&str, &str)> = doc
        .other_schemes
        .iter()
        .map(|s| (s.name.as_str(), s.kind.as_str()))
        .collect();
    assert_eq!(others, [("api_key", "apiKey"), ("basic", "basic")]);
}

#[test]
fn swagger2_yaml_with_unquoted_version_and_number_description() {
    let doc = parse(&fixture("swagger2.yaml")).unwrap();
    assert_eq!(doc.format, Format::Yaml);
    assert_eq!(doc.spec_version.family, SpecFamily::Swagger2);
    assert_eq!(doc.spec_version.exact, "2.0");
    let flow = &doc.schemes[0].flows[0];
    assert_eq!(flow.kind, FlowKind::AuthorizationCode);
    assert_eq!(flow.scopes["write"], "42");
    let pointers: Vec<&str> = doc.warnings.iter().map(|w| w.pointer.as_str()).collect();
    assert_eq!(
        pointers,
        ["/swagger", "/securityDefinitions/oauth/scopes/write"]
    );
}

#[test]
fn openapi31_with_webhooks_json_schema_and_extensions() {
    let doc = parse(&fixture("openapi31.json")).unwrap();
    assert_eq!(doc.spec_version.family, SpecFamily::OpenApi31);
    assert_eq!(doc.spec_version.exact, "3.1.0");
    let flow = doc.schemes[0].flow(FlowKind::AuthorizationCode).unwrap();
    assert_eq!(
        flow.refresh_url.as_ref().map(Url::as_str),
        Some("https://login.example.com/refresh")
    );
    assert_eq!(
        doc.schemes[0].description.as_deref(),
        Some("OAuth 2.0 with refresh")
    );
    let others: Vec<(&str, &str)> = doc
        .other_schemes
        .iter()
        .map(|s| (s.name.as_str(), s.kind.as_str()))
        .collect();
    assert_eq!(others, [("mtls", "mutualTLS"), ("oidc", "openIdConnect")]);
    assert!(doc.warnings.is_empty(), "{:?}", doc.warnings);
}

#[test]
fn yaml_with_server_variables_and_relative_token_url() {
    let doc = parse(&fixture("openapi30.yaml")).unwrap();
    assert_eq!(doc.format, Format::Yaml);
    assert_eq!(doc.title.as_deref(), Some("YAML Example"));
    let flow = &doc.schemes[0].flows[0];
    // /login/... is an absolute path: it replaces the server URL's path.
    assert_eq!(
        flow.token_url.as_ref().map(Url::as_str),
        Some("https://eu.api.example.com/login/oauth/access_token")
    );
    assert_eq!(doc.warnings.len(), 1);
    assert!(
        doc.warnings[0]
            .message
            .contains("variables replaced by their defaults"),
        "{}",
        doc.warnings[0]
    );
    let names: Vec<&str> = flow.scopes.keys().map(String::as_str).collect();
    assert_eq!(names, ["repo", "read:org", "user:email"]);
    assert_eq!(doc.other_schemes[0].kind, "apiKey");
}

#[test]
fn yaml_and_json_give_the_same_result() {
    let json = parse(&fixture("box.json")).unwrap();
    let text = String::from_utf8(fixture("box.json")).unwrap();
    // JSON is YAML too, but detection must not depend on it: re-indent it as a YAML mapping.
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let yaml = serde_yaml_ng::to_string(&value).unwrap();
    let from_yaml = parse(yaml.as_bytes()).unwrap();
    assert_eq!(from_yaml.format, Format::Yaml);
    assert_eq!(
        from_yaml.schemes[0].flows[0].token_url,
        json.schemes[0].flows[0].token_url
    );
    assert_eq!(
        from_yaml.schemes[0].flows[0].scopes.len(),
        json.schemes[0].flows[0].scopes.len()
    );
}

#[test]
fn byte_order_mark_and_leading_whitespace() {
    let mut input = b"\xEF\xBB\xBF \n\t".to_vec();
    input.extend(fixture("box.json"));
    let doc = parse(&input).unwrap();
    assert_eq!(doc.format, Format::Json);
    assert_eq!(doc.schemes.len(), 1);
}

#[test]
fn references_are_followed() {
    let doc = parse(&fixture("refs.json")).unwrap();
    let names: Vec<&str> = doc.schemes.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Primary", "Chained", "Elsewhere", "Shared"]);
    assert_eq!(doc.schemes[0].flows, doc.schemes[3].flows);
    assert_eq!(doc.schemes[1].flows, doc.schemes[3].flows);
    // A target outside components/securitySchemes, with an escaped `/` in its name.
    assert_eq!(doc.schemes[2].flows[0].kind, FlowKind::ClientCredentials);
    let others: Vec<(&str, &str)> = doc
        .other_schemes
        .iter()
        .map(|s| (s.name.as_str(), s.kind.as_str()))
        .collect();
    assert_eq!(others, [("Encoded", "apiKey"), ("With Space", "apiKey")]);
}

#[test]
fn reference_cycle_names_the_pointers() {
    let err = parse(&fixture("ref-cycle.json")).unwrap_err();
    let Error::ReferenceCycle { pointer, chain } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(pointer, "/components/securitySchemes/A/$ref");
    assert_eq!(
        chain,
        &[
            "/components/securitySchemes/A",
            "/components/securitySchemes/B",
            "/components/securitySchemes/C",
            "/components/securitySchemes/A"
        ]
    );
    assert!(
        err.to_string()
            .contains("/components/securitySchemes/B -> /components/securitySchemes/C"),
        "{err}"
    );
}

#[test]
fn missing_and_external_reference_targets() {
    let err = parse(&fixture("ref-missing.json")).unwrap_err();
    assert!(
        matches!(&err, Error::Reference { pointer, .. } if pointer == "/components/securitySchemes/A/$ref"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("nothing at `/components/securitySchemes/Nowhere`"),
        "{err}"
    );
    let err = parse(&fixture("ref-external.json")).unwrap_err();
    assert!(
        err.to_string()
            .contains("only references inside the document"),
        "{err}"
    );
    let err = parse(&fixture("broken/ref-number.json")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/components/securitySchemes/A/$ref: expected a reference string, found a number"
    );
}

#[test]
fn relative_urls_resolve_against_the_first_server() {
    let doc = parse(&fixture("relative-urls.json")).unwrap();
    let flow = &doc.schemes[0].flows[0];
    assert_eq!(
        flow.authorization_url.as_ref().map(Url::as_str),
        Some("https://api.example.com/oauth/authorize")
    );
    assert_eq!(
        flow.token_url.as_ref().map(Url::as_str),
        Some("https://api.example.com/v1/oauth/token")
    );
    assert_eq!(
        flow.refresh_url.as_ref().map(Url::as_str),
        Some("https://api.example.com/refresh")
    );
    let pointers: Vec<&str> = doc.warnings.iter().map(|w| w.pointer.as_str()).collect();
    assert_eq!(
        pointers,
        [
            "/components/securitySchemes/oauth/flows/authorizationCode/authorizationUrl",
            "/components/securitySchemes/oauth/flows/authorizationCode/tokenUrl",
            "/components/securitySchemes/oauth/flows/authorizationCode/refreshUrl"
        ]
    );
}

#[test]
fn unresolvable_relative_urls_fail_unless_a_base_url_is_given() {
    let err = parse(&fixture("relative-server.json")).unwrap_err();
    let Error::RelativeUrl {
        pointer,
        url,
        reason,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        pointer,
        "/components/securitySchemes/oauth/flows/authorizationCode/authorizationUrl"
    );
    assert_eq!(url, "/oauth/authorize");
    assert!(reason.contains("`/api` is relative too"), "{reason}");
    assert!(err.to_string().contains("base URL"), "{err}");

    let options = ParseOptions::with_base_url(
        Url::parse("https://docs.example.net/spec/openapi.json").unwrap(),
    );
    let doc = parse_with(&fixture("relative-server.json"), &options).unwrap();
    let flow = &doc.schemes[0].flows[0];
    assert_eq!(
        flow.token_url.as_ref().map(Url::as_str),
        Some("https://docs.example.net/oauth/token")
    );

    let err = parse(&fixture("relative-no-servers.json")).unwrap_err();
    assert!(
        err.to_string().contains("the document has no servers"),
        "{err}"
    );
    let doc = parse_with(&fixture("relative-no-servers.json"), &options).unwrap();
    assert_eq!(
        doc.schemes[0].flows[0].token_url.as_ref().map(Url::as_str),
        Some("https://docs.example.net/oauth/token")
    );
}

#[test]
fn a_base_url_does_not_override_an_absolute_server() {
    let options = ParseOptions::with_base_url(Url::parse("https://elsewhere.example/").unwrap());
    let doc = parse_with(&fixture("relative-urls.json"), &options).unwrap();
    assert_eq!(
        doc.schemes[0].flows[0].token_url.as_ref().map(Url::as_str),
        Some("https://api.example.com/v1/oauth/token")
    );
}

#[test]
fn several_schemes_and_flows_in_document_order() {
    let doc = parse(&fixture("several.json")).unwrap();
    let names: Vec<&str> = doc.schemes.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["everything", "partner", "machines"]);
    let kinds: Vec<FlowKind> = doc.schemes[0].flows.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        [
            FlowKind::Implicit,
            FlowKind::Password,
            FlowKind::ClientCredentials,
            FlowKind::AuthorizationCode
        ]
    );
    let ac: Vec<&str> = doc
        .authorization_code_flows()
        .unwrap()
        .iter()
        .map(|f| f.scheme.name.as_str())
        .collect();
    assert_eq!(ac, ["everything", "partner"]);
    assert_eq!(doc.other_schemes.len(), 2);
    // `x-custom` is an extension: ignored without a warning.
    assert!(doc.warnings.is_empty(), "{:?}", doc.warnings);
}

#[test]
fn empty_scopes() {
    let doc = parse(&fixture("empty-scopes.json")).unwrap();
    let flow = &doc.schemes[0].flows[0];
    assert!(flow.scopes.is_empty());
    let check = flow.check_scopes("read");
    assert!(check.known.is_empty());
    assert_eq!(check.unknown[0].name, "read");
    assert_eq!(check.unknown[0].suggestion, None);
}

#[test]
fn no_authorization_code_flow_names_what_there_is() {
    let doc = parse(&fixture("no-oauth2.json")).unwrap();
    let err = doc.authorization_code_flows().unwrap_err();
    assert_eq!(
        err.to_string(),
        "the document has no OAuth 2.0 authorization-code flow; its security schemes are: \
         machines (oauth2: clientCredentials); key (apiKey)"
    );
    let bare = parse(br#"{"openapi": "3.0.0", "info": {"title": "bare"}}"#).unwrap();
    let err = bare.authorization_code_flows().unwrap_err();
    assert!(
        err.to_string().contains("no security schemes at all"),
        "{err}"
    );
}

#[test]
fn version_variants() {
    for (version, family) in [
        ("3.0", SpecFamily::OpenApi30),
        ("3.0.4", SpecFamily::OpenApi30),
        ("3.1.1", SpecFamily::OpenApi31),
        ("3.1.0-rc1", SpecFamily::OpenApi31),
        ("3.2.0", SpecFamily::OpenApi32),
    ] {
        let doc = parse(format!(r#"{{"openapi": "{version}"}}"#).as_bytes()).unwrap();
        assert_eq!(doc.spec_version.family, family, "{version}");
        assert_eq!(doc.spec_version.exact, version);
    }
    for version in ["4.0.0", "3.9.0", "3.0.x", "2.0", "3"] {
        let err = parse(format!(r#"{{"openapi": "{version}"}}"#).as_bytes()).unwrap_err();
        assert!(
            matches!(&err, Error::UnsupportedVersion { found, .. } if found == version),
            "{version}: {err:?}"
        );
    }
    let err = parse(br#"{"swagger": "1.2"}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/swagger: unsupported version `1.2`; granary reads OpenAPI 3.0, 3.1 and 3.2 and Swagger 2.0 (convert the document first)"
    );
    let doc = parse(b"openapi: 3.0\ninfo: {title: float version}\n").unwrap();
    assert_eq!(doc.spec_version.exact, "3.0");
    assert_eq!(doc.warnings[0].pointer, "/openapi");
}

#[test]
fn parts_not_needed_never_fail_the_document() {
    let input = br#"{"openapi": "3.0.0", "info": 7, "paths": "not an object", "servers": {"url": 1},
        "components": {"schemas": [1, 2], "securitySchemes": {"weird": {"type": "apiKey"}, "typeless": {"in": "header"},
        "scalar": "nonsense", "cased": {"type": "OAuth2", "flows": {"clientCredentials": {"tokenUrl": "https://t.example/t"}}}}},
        "x-anything": {"deep": [[[[{}]]]]}}"#;
    let doc = parse(input).unwrap();
    assert_eq!(doc.title, None);
    let others: Vec<(&str, &str)> = doc
        .other_schemes
        .iter()
        .map(|s| (s.name.as_str(), s.kind.as_str()))
        .collect();
    assert_eq!(
        others,
        [
            ("weird", "apiKey"),
            ("typeless", "(none)"),
            ("scalar", "(none)")
        ]
    );
    assert_eq!(doc.schemes[0].name, "cased");
    let pointers: Vec<&str> = doc.warnings.iter().map(|w| w.pointer.as_str()).collect();
    assert_eq!(
        pointers,
        [
            "/components/securitySchemes/typeless/type",
            "/components/securitySchemes/scalar",
            "/components/securitySchemes/cased/type",
            "/components/securitySchemes/cased/flows/clientCredentials/scopes"
        ]
    );
}

#[test]
fn unknown_flows_are_skipped_with_a_warning() {
    let input = br#"{"openapi": "3.2.0", "components": {"securitySchemes": {"o": {"type": "oauth2", "flows": {
        "deviceAuthorization": {"deviceAuthorizationUrl": "https://d.example/device", "tokenUrl": "https://d.example/token", "scopes": {}},
        "authorizationCode": {"authorizationUrl": "https://d.example/a", "tokenUrl": "https://d.example/t", "scopes": {}}}}}}}"#;
    let doc = parse(input).unwrap();
    assert_eq!(doc.schemes[0].flows.len(), 1);
    assert_eq!(
        doc.warnings[0].pointer,
        "/components/securitySchemes/o/flows/deviceAuthorization"
    );
}

#[test]
fn the_api_base_url_is_kept_from_servers_or_host_and_base_path() {
    let flows = r#""components": {"securitySchemes": {"o": {"type": "oauth2", "flows": {
        "authorizationCode": {"authorizationUrl": "https://p.example/a",
        "tokenUrl": "https://p.example/t", "scopes": {}}}}}}"#;
    let v3 = format!(
        r#"{{"openapi": "3.0.3", "info": {{"title": "t", "version": "1"}},
        "servers": [{{"url": "https://{{region}}.api.example/v{{v}}",
        "variables": {{"region": {{"default": "eu"}}, "v": {{"default": "2"}}}}}},
        {{"url": "https://other.example"}}], "paths": {{}}, {flows}}}"#
    );
    let doc = parse(v3.as_bytes()).unwrap();
    assert_eq!(
        doc.api_base_url.as_ref().map(Url::as_str),
        Some("https://eu.api.example/v2")
    );
    let v2 = r#"{"swagger": "2.0", "info": {"title": "t", "version": "1"},
        "host": "api.example:8443", "basePath": "/base", "schemes": ["http", "https"],
        "paths": {}, "securityDefinitions": {"o": {"type": "oauth2", "flow": "accessCode",
        "authorizationUrl": "https://p.example/a", "tokenUrl": "https://p.example/t",
        "scopes": {}}}}"#;
    let doc = parse(v2.as_bytes()).unwrap();
    assert_eq!(
        doc.api_base_url.as_ref().map(Url::as_str),
        Some("https://api.example:8443/base")
    );
    let none = format!(
        r#"{{"openapi": "3.1.0", "info": {{"title": "t", "version": "1"}}, "paths": {{}}, {flows}}}"#
    );
    assert_eq!(parse(none.as_bytes()).unwrap().api_base_url, None);
}
