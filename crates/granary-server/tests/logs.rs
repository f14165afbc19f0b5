//! The log output of `granary serve` as a log collector sees it (stderr not a terminal):
//! plain text without colour codes, or JSON lines with `--log-format json`.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_granary");

/// The server process, killed when the test ends however it ends (an assertion that fails
/// before the SIGTERM included).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `granary serve` on a free port with `format` (and request spans logged), waits
/// for the line that says it listens, sends one request with the id `request_id`, stops it
/// with SIGTERM, and returns everything it logged.
fn serve_logs(format: &str, request_id: &str) -> Vec<String> {
    let data = tempfile::tempdir().unwrap();
    let mut child = Running(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", format])
            .arg("--data-dir")
            .arg(data.path())
            .env(
                "GRANARY_ADMIN_TOKEN",
                "logs-test-admin-token-0123456789abcdef",
            )
            .env("GRANARY_LOG", "info,tower_http=debug")
            .env_remove("GRANARY_LOG_FORMAT")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the granary binary runs"),
    );
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let mut logged = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let listening = line.contains("granary listens");
        logged.push(line);
        if listening {
            break;
        }
    }
    assert!(
        logged.last().is_some_and(|l| l.contains("granary listens")),
        "serve ended before it listened: {logged:#?}"
    );
    let address = logged
        .last()
        .and_then(|line| line.split("127.0.0.1:").nth(1))
        .map(|rest| {
            let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
            format!("127.0.0.1:{port}")
        })
        .expect("the listen line names the address");
    let mut stream = TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "GET /admin/ HTTP/1.1\r\nHost: {address}\r\nx-request-id: {request_id}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(
        answer.contains(&format!("x-request-id: {request_id}")),
        "{answer}"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    logged.extend(lines.map(Result::unwrap));
    assert!(child.0.wait().unwrap().success());
    logged
}

#[test]
fn text_logs_to_a_pipe_carry_no_escape_codes() {
    let logged = serve_logs("text", "text-request-1");
    assert!(
        logged.iter().any(|l| l.contains("granary stopped")),
        "{logged:#?}"
    );
    assert!(
        logged
            .iter()
            .any(|l| l.contains("request_id=text-request-1") && l.contains("/admin/")),
        "no line of the request carries its id: {logged:#?}"
    );
    for line in &logged {
        assert!(!line.contains('\u{1b}'), "an escape code in {line:?}");
    }
}

#[test]
fn json_logs_are_one_object_a_line() {
    let logged = serve_logs("json", "json-request-1");
    assert!(logged.len() >= 2, "{logged:#?}");
    for line in logged.iter().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
        assert!(value["level"].is_string(), "{line}");
        assert!(value["fields"]["message"].is_string(), "{line}");
    }
    let listens = logged
        .iter()
        .find(|l| l.contains("granary listens"))
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(listens).unwrap();
    assert!(
        value["fields"]["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{listens}"
    );
    let of_the_request: Vec<serde_json::Value> = logged
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|value| value["span"]["request_id"] == "json-request-1")
        .collect();
    assert!(
        !of_the_request.is_empty(),
        "no line of the request carries its id: {logged:#?}"
    );
    assert!(
        of_the_request
            .iter()
            .all(|v| v["span"]["path"] == "/admin/")
    );
}

#[test]
fn an_unknown_log_format_is_refused_with_the_choices() {
    let out = Command::new(BIN)
        .args(["--log-format", "yaml", "instance", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("text") && stderr.contains("json"),
        "{stderr}"
    );
}
