//! Tests of `granary inspect` through the built binary: table, JSON, errors and exit codes.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../granary-openapi/tests/fixtures")
        .join(name)
}

fn granary(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_granary"))
        .args(args)
        .output()
        .expect("the granary binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn table_of_the_box_document() {
    let path = fixture("box.json");
    let out = granary(&["inspect", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(
            "Box\n  OpenAPI 3.0.0, JSON\n  authorization-code flows: 1 (OAuth2Security)\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("oauth2 scheme OAuth2Security\n  authorizationCode\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("    authorization URL  https://account.box.com/api/oauth2/authorize\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("    token URL          https://api.box.com/oauth2/token\n"),
        "{stdout}"
    );
    assert!(stdout.contains("    scopes (9)\n"), "{stdout}");
    assert!(
        stdout.contains("      manage_app_users              Provision and manage app users\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("warnings"), "{stdout}");
}

#[test]
fn table_shows_other_schemes_and_warnings() {
    let path = fixture("openapi30.yaml");
    let out = granary(&["inspect", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("OpenAPI 3.0.3, YAML"), "{stdout}");
    assert!(
        stdout.contains("other schemes\n  key  apiKey\n"),
        "{stdout}"
    );
    assert!(stdout.contains("warnings (1)\n  /components/securitySchemes/github/flows/authorizationCode/tokenUrl: relative URL"), "{stdout}");
}

#[test]
fn table_says_when_there_is_no_authorization_code_flow() {
    let path = fixture("no-oauth2.json");
    let out = granary(&["inspect", path.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains(
            "its security schemes are: machines (oauth2: clientCredentials); key (apiKey)"
        ),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn json_output_is_the_document() {
    let path = fixture("several.json");
    let out = granary(&["inspect", "--json", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: granary_openapi::Document =
        serde_json::from_slice(&out.stdout).expect("valid JSON of a Document");
    let expected = granary_openapi::parse(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(doc, expected);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["schemes"][0]["flows"][3]["kind"], "authorizationCode");
    assert_eq!(value["spec_version"]["exact"], "3.0.2");
}

#[test]
fn base_url_option_resolves_relative_urls() {
    let path = fixture("relative-server.json");
    let out = granary(&["inspect", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("relative URL `/oauth/authorize` cannot be resolved"),
        "{}",
        text(&out.stderr)
    );
    let out = granary(&[
        "inspect",
        "--base-url",
        "https://docs.example.net/api/spec.json",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("token URL          https://docs.example.net/oauth/token"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_broken_document_exits_1_with_the_error() {
    let path = fixture("broken/missing-token-url.json");
    let out = granary(&["inspect", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: {}: /components/securitySchemes/Box/flows/authorizationCode/tokenUrl: missing\n",
            path.display()
        )
    );
    let path = fixture("broken/bad-json.json");
    let out = granary(&["inspect", "--json", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("JSON syntax error at line 4, column 3"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn usage_and_io_errors_exit_2() {
    let out = granary(&["inspect", "/nonexistent/granary/openapi.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("error: cannot read /nonexistent/granary/openapi.json"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(granary(&["inspect"]).status.code(), Some(2));
    assert_eq!(
        granary(&["inspect", "--base-url", "not a url", "x.json"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(granary(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn terminal_control_characters_are_not_printed() {
    let dir = std::env::temp_dir().join(format!("granary-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("evil.json");
    std::fs::write(
        &path,
        r#"{"openapi": "3.0.0", "info": {"title": "evil\u001b[2J title\nnext"}, "components": {"securitySchemes": {
            "o": {"type": "oauth2", "flows": {"clientCredentials": {"tokenUrl": "https://e.example/t", "scopes": {"a\u0007": "bell\rreturn"}}}}}}}"#,
    )
    .unwrap();
    let out = granary(&["inspect", path.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\u{7}') && !stdout.contains('\r'),
        "{stdout:?}"
    );
    assert!(stdout.starts_with("evil [2J title next\n"), "{stdout:?}");
}

#[test]
fn reads_standard_input_with_a_dash() {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_granary"))
        .args(["inspect", "--json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the granary binary runs");
    let input = std::fs::read(fixture("openapi31.json")).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["spec_version"]["family"], "openapi-3.1");
}
