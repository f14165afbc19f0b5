//! Tests of the limits: a document over the size or depth limit is refused before it is
//! parsed, with an error that names the limit and the fix; documents within them are read as
//! before, whatever brackets their strings, block scalars and comments hold.

use granary_openapi::{Error, Limits, ParseOptions, parse, parse_with};

const HEAD_YAML: &str = "openapi: 3.0.0\ninfo:\n  title: Deep\n";

fn too_deep(input: &[u8]) -> (usize, usize) {
    match parse(input) {
        Err(Error::TooDeep { line, limit }) => (line, limit),
        other => panic!("expected TooDeep, got {other:?}"),
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

#[test]
fn a_100k_deep_yaml_flow_document_is_refused_with_the_limit() {
    let n = 100_000;
    let doc = format!("{HEAD_YAML}paths: {}{}\n", "[".repeat(n), "]".repeat(n));
    let err = parse(doc.as_bytes()).unwrap_err();
    assert_eq!(
        err,
        Error::TooDeep {
            line: 4,
            limit: Limits::DEFAULT_MAX_DEPTH
        }
    );
    let text = err.to_string();
    assert!(text.contains("limit of 128 levels"), "{text}");
    assert!(text.contains("$ref"), "{text}");
}

#[test]
fn a_100k_deep_json_document_is_refused_with_the_limit() {
    let n = 100_000;
    let doc = format!(
        "{{\"openapi\": \"3.0.0\",\n\"paths\": {}{}}}",
        "[".repeat(n),
        "]".repeat(n)
    );
    assert_eq!(too_deep(doc.as_bytes()), (2, 128));
    let objects = format!("{{\"openapi\": \"3.0.0\", \"x\": {}", "{\"a\":".repeat(n));
    assert_eq!(too_deep(objects.as_bytes()), (1, 128));
}

#[test]
fn deep_yaml_block_nesting_is_refused() {
    // Compact sequences on one line.
    let compact = format!("{HEAD_YAML}paths: \n{}x\n", "- ".repeat(100_000));
    assert_eq!(too_deep(compact.as_bytes()).1, 128);
    // Indented mappings, one level a line.
    let mut indented = String::from(HEAD_YAML);
    for level in 0..200 {
        indented.push_str(&" ".repeat(level));
        indented.push_str("a:\n");
    }
    assert_eq!(too_deep(indented.as_bytes()), (4 + 128, 128));
    // A sequence under each key, at the key's column: both levels count.
    let mut mixed = String::from(HEAD_YAML);
    for level in 0..100 {
        mixed.push_str(&" ".repeat(2 * level));
        mixed.push_str("- a:\n");
    }
    assert!(matches!(
        parse(mixed.as_bytes()),
        Err(Error::TooDeep { .. })
    ));
    // Flow inside block inside flow.
    let nested = format!("{HEAD_YAML}x:\n  - {{a: [{}\n", "{b: [".repeat(100));
    assert!(matches!(
        parse(nested.as_bytes()),
        Err(Error::TooDeep { .. })
    ));
}

#[test]
fn brackets_the_parser_sees_are_counted_even_after_quote_tricks() {
    let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    // A quote inside a plain scalar (also one going on over the next line) opens nothing.
    for doc in [
        format!("{HEAD_YAML}x: it's\ny: {deep} '\n"),
        format!("{HEAD_YAML}x: a\n  'b\ny: {deep} '\n"),
        format!("{HEAD_YAML}x: [a 'b, {deep}] '\n"),
        format!("{HEAD_YAML}x: \"a\\\"\"\ny: {deep} \"\n"),
    ] {
        assert!(
            matches!(parse(doc.as_bytes()), Err(Error::TooDeep { .. })),
            "{doc:.80}"
        );
    }
    let json = format!("{{\"a\": \"\\\"\", \"b\": {deep}, \"c\": \"\"}}");
    assert!(matches!(parse(json.as_bytes()), Err(Error::TooDeep { .. })));
}

#[test]
fn brackets_in_strings_block_scalars_and_comments_are_not_nesting() {
    let many = "[{".repeat(500);
    let yaml = format!(
        "{HEAD_YAML}  description: |\n    {many}\n    more {many}\n\
         x: \"{many}\"\ny: '{many}'\nz: plain {many}\n# {many}\nw: >-\n  {many}\n\
         paths: {{}}\ncomponents:\n  securitySchemes:\n    o:\n      type: oauth2\n      \
         flows:\n        authorizationCode:\n          authorizationUrl: https://a.example/auth\n          \
         tokenUrl: https://a.example/token\n          scopes: {{read: \"{many}\"}}\n"
    );
    let doc = parse(yaml.as_bytes()).unwrap();
    assert_eq!(doc.authorization_code_flows().unwrap().len(), 1);
    let json = format!(
        "{{\"openapi\": \"3.0.0\", \"info\": {{\"title\": \"{many}\\\\\"}}, \"paths\": {{}}}}"
    );
    parse(json.as_bytes()).unwrap();
}

#[test]
fn the_fixtures_read_as_before() {
    for name in [
        "box.json",
        "openapi30.yaml",
        "openapi31.json",
        "swagger2.yaml",
        "several.json",
    ] {
        parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn a_document_at_the_depth_limit_is_read_and_one_over_is_not() {
    let at = |depth: usize| {
        // `paths` is level 1; the arrays inside it fill up to `depth`.
        format!(
            "{{\"openapi\": \"3.0.0\", \"info\": {{\"title\": \"t\"}}, \"paths\": {{\"x\": {}{}}}}}",
            "[".repeat(depth - 2),
            "]".repeat(depth - 2)
        )
    };
    let limits = Limits::new(Limits::DEFAULT_MAX_BYTES, 20);
    let options = ParseOptions::default().limits(limits);
    parse_with(at(20).as_bytes(), &options).unwrap();
    assert!(matches!(
        parse_with(at(21).as_bytes(), &options),
        Err(Error::TooDeep { limit: 20, .. })
    ));
}

#[test]
fn a_document_over_the_size_limit_is_refused_naming_the_limit() {
    let doc = fixture("openapi31.json");
    let limits = Limits::new(1024, Limits::DEFAULT_MAX_DEPTH);
    assert!(doc.len() > 1024);
    let err = parse_with(&doc, &ParseOptions::default().limits(limits)).unwrap_err();
    assert_eq!(
        err,
        Error::TooLarge {
            size: doc.len(),
            limit: 1024
        }
    );
    assert!(
        err.to_string()
            .contains("over the limit of 1024 bytes (1 KiB)"),
        "{err}"
    );
    assert_eq!(Limits::default().max_bytes, 64 * 1024 * 1024);
}
