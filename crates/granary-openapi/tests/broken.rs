//! Tests of broken documents: each error says where (line and column, or JSON pointer) and what.

use granary_openapi::{Error, Format, parse};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/broken/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn error(name: &str) -> Error {
    match parse(&fixture(name)) {
        Ok(doc) => panic!("{name} parsed: {doc:?}"),
        Err(e) => e,
    }
}

fn syntax(err: &Error) -> (Format, Option<usize>, Option<usize>) {
    match err {
        Error::Syntax {
            format,
            line,
            column,
            ..
        } => (*format, *line, *column),
        other => panic!("not a syntax error: {other:?}"),
    }
}

#[test]
fn bad_json_has_line_and_column() {
    let err = error("bad-json.json");
    assert_eq!(syntax(&err), (Format::Json, Some(4), Some(3)));
    assert_eq!(
        err.to_string(),
        "JSON syntax error at line 4, column 3: expected `,` or `}`; fix the document and import it again"
    );
}

#[test]
fn bad_yaml_has_line_and_column() {
    let err = error("bad-yaml.yaml");
    let (format, line, column) = syntax(&err);
    assert_eq!(format, Format::Yaml);
    assert_eq!(line, Some(4), "{err}");
    assert!(column.is_some(), "{err}");
    let err = error("bad-yaml-flow.yaml");
    assert_eq!(syntax(&err).0, Format::Yaml);
    assert!(syntax(&err).1.is_some(), "{err}");
}

#[test]
fn missing_token_url_names_the_pointer() {
    assert_eq!(
        error("missing-token-url.json").to_string(),
        "/components/securitySchemes/Box/flows/authorizationCode/tokenUrl: missing"
    );
    assert_eq!(
        error("missing-flows.json").to_string(),
        "/components/securitySchemes/o/flows: missing"
    );
    assert_eq!(
        error("swagger-missing-flow.json").to_string(),
        "/securityDefinitions/o/flow: missing"
    );
}

#[test]
fn wrong_types_name_the_pointer() {
    assert_eq!(
        error("flows-array.json").to_string(),
        "/components/securitySchemes/o/flows: expected an object of flows, found an array"
    );
    assert_eq!(
        error("token-url-number.json").to_string(),
        "/components/securitySchemes/o/flows/clientCredentials/tokenUrl: expected a URL string, found a number"
    );
    assert_eq!(
        error("scopes-array.json").to_string(),
        "/components/securitySchemes/o/flows/clientCredentials/scopes: expected an object of scope names to descriptions, found an array"
    );
    assert_eq!(
        error("components-string.json").to_string(),
        "/components: expected an object, found a string"
    );
}

#[test]
fn invalid_urls() {
    let err = error("invalid-url.json");
    assert!(
        err.to_string()
            .starts_with("/components/securitySchemes/o/flows/authorizationCode/authorizationUrl: `https://{tenant}.example.com/authorize` has the template variable `{tenant}`"),
        "{err}"
    );
    let input = br#"{"openapi": "3.0.0", "components": {"securitySchemes": {"o": {"type": "oauth2", "flows": {
        "password": {"tokenUrl": "https://exa mple.com/token", "scopes": {}}}}}}}"#;
    let err = parse(input).unwrap_err();
    assert!(err.to_string().contains("is not a valid URL"), "{err}");
    let err = error("ftp-url.json");
    assert!(err.to_string().contains("is not an http(s) URL"), "{err}");
}

#[test]
fn versions() {
    assert!(
        matches!(error("unknown-version.json"), Error::UnsupportedVersion { found, .. } if found == "4.0.0")
    );
    let err = error("swagger12.json");
    assert!(
        matches!(&err, Error::UnsupportedVersion { pointer, found } if pointer == "/swaggerVersion" && found == "1.2"),
        "{err:?}"
    );
    assert_eq!(error("not-openapi.json"), Error::NotOpenApi);
    let err = error("swagger-unknown-flow.json");
    assert!(
        err.to_string()
            .starts_with("/securityDefinitions/o/flow: unknown flow `device`"),
        "{err}"
    );
}

#[test]
fn not_an_object() {
    assert_eq!(
        error("array.json"),
        Error::NotAnObject {
            found: "an array".into()
        }
    );
    assert_eq!(
        error("scalar.json"),
        Error::NotAnObject {
            found: "a number".into()
        }
    );
    assert_eq!(
        error("scalar.yaml"),
        Error::NotAnObject {
            found: "a string".into()
        }
    );
    assert!(matches!(
        parse(b"# only a comment\n"),
        Err(Error::NotAnObject { .. })
    ));
    assert!(matches!(parse(b"null"), Err(Error::NotAnObject { .. })));
}

#[test]
fn empty_input() {
    assert_eq!(parse(b""), Err(Error::Empty));
    assert_eq!(error("whitespace-only.txt"), Error::Empty);
    assert_eq!(parse(b"\xEF\xBB\xBF"), Err(Error::Empty));
}

#[test]
fn non_utf8() {
    let err = error("non-utf8.json");
    assert_eq!(syntax(&err).0, Format::Json);
    assert_eq!(syntax(&err).1, Some(1), "{err}");
    let err = error("non-utf8.yaml");
    assert_eq!(syntax(&err).0, Format::Yaml);
    let err = parse(b"\xff\xfe{\x00}\x00").unwrap_err();
    assert!(matches!(err, Error::Syntax { .. }), "{err:?}");
}

#[test]
fn trailing_text_and_deep_nesting() {
    assert_eq!(
        syntax(&error("trailing.json")),
        (Format::Json, Some(1), Some(22))
    );
    // Deep nesting, in a kept part or a skipped one, is refused before parsing (see
    // tests/limits.rs), with the limit in the message.
    let err = error("deep.json");
    assert!(matches!(err, Error::TooDeep { limit: 128, .. }), "{err:?}");
    let deep = format!(
        r#"{{"openapi": "3.0.0", "paths": {}{}}}"#,
        "[".repeat(1_000_000),
        "]".repeat(1_000_000)
    );
    assert!(matches!(parse(deep.as_bytes()), Err(Error::TooDeep { .. })));
    let deep_yaml = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    for doc in [format!("a: {deep_yaml}"), format!("openapi: {deep_yaml}")] {
        let err = parse(doc.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("limit of 128 levels"), "{err}");
    }
}

#[test]
fn yaml_oddities_do_not_panic() {
    let inputs: [&[u8]; 8] = [
        b"openapi: 3.0.0\n---\nopenapi: 3.1.0\n",
        b"openapi: !!str 3.0.0\ncomponents: !tagged {securitySchemes: {}}\n",
        b"? [complex, key]\n: value\nopenapi: 3.0.0\n",
        b"a: &anchor {b: 1}\nc: *anchor\nopenapi: 3.0.0\n",
        b"a: *nowhere\n",
        b"openapi: 3.0.0\ncomponents:\n  securitySchemes:\n    1: {type: oauth2, flows: {}}\n",
        b"- - - -\n",
        b"\t\x00\x01",
    ];
    for input in inputs {
        let _ = parse(input);
    }
    let doc = parse(
        b"openapi: 3.0.0\ncomponents:\n  securitySchemes:\n    1: {type: oauth2, flows: {}}\n",
    )
    .unwrap();
    assert_eq!(doc.schemes[0].name, "1");
}
