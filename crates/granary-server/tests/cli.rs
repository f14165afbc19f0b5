//! The `granary` binary: `serve` (admin token printed once, 0600 files, graceful SIGTERM),
//! and the CLI commands on the data directory and against the running server.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_granary");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Running {
    child: Child,
    base: String,
    first_line: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &Path) -> Running {
    serve_with(data, &[])
}

fn serve_with(data: &Path, extra: &[&str]) -> Running {
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .env_remove("GRANARY_PUBLIC_URL")
        .env_remove("GRANARY_CONFIG")
        .env_remove("GRANARY_ADMIN_TOKEN")
        .env_remove("GRANARY_MASTER_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let _ = sender.send(first);
        for _ in lines {}
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "granary serve did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let first_line = receiver
        .recv_timeout(Duration::from_millis(500))
        .unwrap_or_default();
    Running {
        child,
        base,
        first_line,
    }
}

fn granary(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("GRANARY_SERVER")
        .env_remove("GRANARY_API_KEY")
        .env_remove("GRANARY_PUBLIC_URL")
        .env_remove("GRANARY_CONFIG")
        .env_remove("GRANARY_MASTER_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn box_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("box.json");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../granary-openapi/tests/fixtures/box.json"
        ),
        &path,
    )
    .unwrap();
    path
}

#[test]
fn serve_and_the_cli_share_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let document = box_file(dir.path());
    let empty = granary(&dir.path().join("typo"), &["instance", "list"], None);
    assert!(!empty.status.success());
    assert!(String::from_utf8_lossy(&empty.stderr).contains("holds no granary data"));
    assert!(
        !dir.path().join("typo").exists(),
        "a read command creates nothing"
    );
    let mut server = serve(&data);

    // The admin token is printed once and kept with mode 0600.
    let token_file = data.join("admin-token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(
        server.first_line.contains(&token),
        "{:?}",
        server.first_line
    );
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(data.join("granary.sqlite.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // A `tokens` key (the default role) cannot import: the server names the role needed.
    let tokens_key = ok(&granary(&data, &["api-key", "create", "reader"], None))
        .trim()
        .to_string();
    let refused = granary(
        &data,
        &[
            "import",
            document.to_str().unwrap(),
            "--server",
            server.base.as_str(),
            "--api-key",
            tokens_key.as_str(),
        ],
        None,
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("role `admin`"), "{stderr}");

    // An admin API key from the CLI, used against the running server.
    let key = ok(&granary(
        &data,
        &["api-key", "create", "cli-test", "--role", "admin"],
        None,
    ))
    .trim()
    .to_string();
    assert!(key.starts_with("granary_"));
    let remote = ["--server", server.base.as_str(), "--api-key", key.as_str()];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(remote.iter())
            .map(|s| (*s).to_string())
            .collect()
    };
    let run = |args: Vec<String>, stdin: Option<&str>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        granary(&data, &refs, stdin)
    };
    let out = ok(&run(with(&["import", document.to_str().unwrap()]), None));
    assert!(out.contains("imported integration box"), "{out}");
    let out = ok(&run(
        with(&[
            "instance",
            "create",
            "box-1",
            "--integration",
            "box",
            "--client-id",
            "cid",
            "--client-secret-stdin",
            "--scope",
            "root_readonly manage_groups",
        ]),
        Some("the-secret\n"),
    ));
    assert!(
        out.contains(&format!("{}/admin/oauth/", server.base)),
        "{out}"
    );
    let out = ok(&run(
        with(&[
            "instance",
            "update",
            "box-1",
            "--token-url",
            "http://127.0.0.1:9/token",
        ]),
        None,
    ));
    assert!(out.contains("updated instance box-1"));
    let shown = ok(&run(with(&["instance", "show", "box-1", "--json"]), None));
    let value: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(value["client_secret_set"], true);
    assert_eq!(value["token_url"], "http://127.0.0.1:9/token");
    assert!(!shown.contains("the-secret"));

    // The same data directory, without the server.
    let list = ok(&granary(&data, &["instance", "list"], None));
    assert!(list.contains("box-1\tbox\tnew"), "{list}");
    let link = ok(&granary(
        &data,
        &["authorize", "box-1", "--public-url", &server.base],
        None,
    ));
    assert_eq!(
        link.trim(),
        format!("{}/admin/instances/box-1/authorize", server.base)
    );
    let link = ok(&run(with(&["authorize", "box-1"]), None));
    assert_eq!(
        link.trim(),
        format!("{}/admin/instances/box-1/authorize", server.base)
    );
    let refused = run(with(&["token", "box-1"]), None);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not authorized yet"));
    let refused = granary(&data, &["token", "box-1"], None);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not authorized yet"));
    let out = ok(&run(with(&["instance", "disconnect", "box-1"]), None));
    assert!(out.contains("disconnected instance box-1"), "{out}");
    let out = ok(&granary(&data, &["instance", "disconnect", "box-1"], None));
    assert!(out.contains("disconnected instance box-1"), "{out}");
    let refused = granary(&data, &["instance", "disconnect", "missing"], None);
    assert!(!refused.status.success());
    let wrong_key = granary(
        &data,
        &[
            "instance",
            "list",
            "--server",
            &server.base,
            "--api-key",
            "granary_wrong",
        ],
        None,
    );
    assert!(!wrong_key.status.success());
    assert!(String::from_utf8_lossy(&wrong_key.stderr).contains("401"));

    // SIGTERM: a graceful stop.
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "granary did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut server.child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("SIGTERM: shutting down"), "{stderr}");
    assert!(!stderr.contains(&token), "the admin token is never logged");

    // Key rotation re-seals the client secret; a second start prints no token.
    let out = ok(&granary(&data, &["key", "rotate"], None));
    assert!(out.contains("1 client secrets"), "{out}");
    let again = serve(&data);
    assert!(!again.first_line.contains(&token), "{:?}", again.first_line);
    let delete = ok(&granary(
        &data,
        &[
            "instance",
            "delete",
            "box-1",
            "--server",
            &again.base,
            "--api-key",
            &key,
        ],
        None,
    ));
    assert!(delete.contains("deleted instance box-1"));
}

#[test]
fn the_cli_links_under_the_public_url_serve_runs_at() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let document = box_file(dir.path());
    ok(&granary(
        &data,
        &["import", document.to_str().unwrap()],
        None,
    ));
    ok(&granary(
        &data,
        &[
            "instance",
            "create",
            "box-1",
            "--integration",
            "box",
            "--client-id",
            "cid",
        ],
        None,
    ));
    // No server ran yet: the default.
    let link = ok(&granary(&data, &["authorize", "box-1"], None));
    assert_eq!(
        link.trim(),
        "http://127.0.0.1:8080/admin/instances/box-1/authorize"
    );

    let server = serve_with(&data, &["--public-url", "https://granary.example/"]);
    let recorded = std::fs::read_to_string(data.join("public-url")).unwrap();
    assert_eq!(recorded.trim(), "https://granary.example");
    assert_eq!(
        std::fs::metadata(data.join("public-url"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let link = ok(&granary(&data, &["authorize", "box-1"], None));
    assert_eq!(
        link.trim(),
        "https://granary.example/admin/instances/box-1/authorize"
    );
    // The redirect URI the CLI prints is the server's too.
    let out = ok(&granary(
        &data,
        &[
            "instance",
            "create",
            "box-2",
            "--integration",
            "box",
            "--client-id",
            "cid",
        ],
        None,
    ));
    assert!(
        out.contains(
            "register this redirect URI at the provider: https://granary.example/admin/oauth/"
        ),
        "{out}"
    );
    // A public URL given to the CLI wins.
    let link = ok(&granary(
        &data,
        &[
            "authorize",
            "box-1",
            "--public-url",
            "http://other.example:8000",
        ],
        None,
    ));
    assert_eq!(
        link.trim(),
        "http://other.example:8000/admin/instances/box-1/authorize"
    );
    drop(server);
}

/// `granary instance list` prints every instance (read a page at a time), or one page with
/// `--limit` (the next cursor on stderr) after `--after`, locally and against a server; a
/// wrong page size names the fix.
#[test]
fn instance_list_pages_with_limit_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let document = box_file(dir.path());
    ok(&granary(
        &data,
        &["import", document.to_str().unwrap()],
        None,
    ));
    for n in 0..5 {
        ok(&granary(
            &data,
            &[
                "instance",
                "create",
                &format!("box-{n}"),
                "--integration",
                "box",
                "--client-id",
                "cid",
                "--scope",
                "root_readonly",
            ],
            None,
        ));
    }
    let ids = |stdout: &str| -> Vec<String> {
        stdout
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect()
    };
    let all = ok(&granary(&data, &["instance", "list"], None));
    assert_eq!(ids(&all), ["box-0", "box-1", "box-2", "box-3", "box-4"]);
    let first = granary(&data, &["instance", "list", "--limit", "2"], None);
    assert_eq!(ids(&ok(&first)), ["box-0", "box-1"]);
    assert!(
        String::from_utf8_lossy(&first.stderr).contains("next page: --after box-1"),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let last = granary(
        &data,
        &["instance", "list", "--limit", "2", "--after", "box-3"],
        None,
    );
    assert_eq!(ids(&ok(&last)), ["box-4"]);
    assert!(!String::from_utf8_lossy(&last.stderr).contains("next page"));
    let wrong = granary(&data, &["instance", "list", "--limit", "0"], None);
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("must be 1 to 1000, not 0"), "{stderr}");
    assert!(stderr.contains("--limit"), "{stderr}");

    // Against a server: the same pages through the API.
    let key = ok(&granary(
        &data,
        &["api-key", "create", "lister", "--role", "admin"],
        None,
    ))
    .trim()
    .to_string();
    let server = serve(&data);
    let remote = |extra: &[&str]| {
        let mut args = vec![
            "instance",
            "list",
            "--server",
            &server.base,
            "--api-key",
            &key,
        ];
        args.extend_from_slice(extra);
        granary(&data, &args, None)
    };
    assert_eq!(
        ids(&ok(&remote(&[]))),
        ["box-0", "box-1", "box-2", "box-3", "box-4"]
    );
    let page = remote(&["--limit", "3", "--after", "box-0"]);
    assert_eq!(ids(&ok(&page)), ["box-1", "box-2", "box-3"]);
    assert!(String::from_utf8_lossy(&page.stderr).contains("next page: --after box-3"));
}

/// The Box document with its URLs on a shop's host, as Shopify's are: the catalogue's
/// Shopify profile recognises it.
fn shopify_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("shop.json");
    let text = std::fs::read_to_string(box_file(dir))
        .unwrap()
        .replace(
            "https://account.box.com/api/oauth2/authorize",
            "https://shop.myshopify.com/admin/oauth/authorize",
        )
        .replace(
            "https://api.box.com/oauth2/token",
            "https://shop.myshopify.com/admin/oauth/access_token",
        );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn instances_take_connection_fields_and_profiles_and_show_the_applied_profile() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let document = shopify_file(dir.path());
    let imported = ok(&granary(
        &data,
        &["import", document.to_str().unwrap(), "--name", "shop"],
        None,
    ));
    assert!(
        imported.contains("provider profile: Recognised Shopify"),
        "{imported}"
    );
    let create = |id: &str, extra: &[&str]| {
        let mut args = vec![
            "instance",
            "create",
            id,
            "--integration",
            "shop",
            "--client-id",
            "cid",
        ];
        args.extend_from_slice(extra);
        granary(&data, &args, None)
    };
    let refused = create("bad", &["--connection", "shop=no!"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("`shop`") && stderr.contains("no!"),
        "{stderr}"
    );
    let refused = create("bad", &["--connection", "shop"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("NAME=VALUE"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    ok(&create("acme", &["--connection", "shop=acme"]));
    let shown = ok(&granary(&data, &["instance", "show", "acme"], None));
    assert!(shown.contains("connection: shop=acme"), "{shown}");
    assert!(
        shown.contains("provider profile: Recognised Shopify"),
        "{shown}"
    );
    assert!(shown.contains("  - joins scopes with `,`"), "{shown}");
    assert!(shown.contains("kept: -"), "{shown}");
    let json: serde_json::Value = serde_json::from_str(&ok(&granary(
        &data,
        &["instance", "show", "acme", "--json"],
        None,
    )))
    .unwrap();
    assert_eq!(json["connection"]["shop"], "acme");
    assert_eq!(json["provider_profile"]["fields"][0]["name"], "shop");

    // `--profile none`: no catalogue profile; the shop is then no field of the instance.
    let refused = granary(
        &data,
        &["instance", "update", "acme", "--profile", "none"],
        None,
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("`shop` is not a connection field"),
        "{stderr}"
    );
    ok(&create("plain", &["--profile", "none"]));
    let shown = ok(&granary(&data, &["instance", "show", "plain"], None));
    assert!(shown.contains("own profile settings: \"none\""), "{shown}");
    assert!(
        shown.contains("provider profile: none: the standard applies"),
        "{shown}"
    );
    let listed = ok(&granary(&data, &["providers"], None));
    assert!(
        listed.lines().any(|l| l.starts_with("shopify\tShopify\t")),
        "{listed}"
    );

    // Against a server: the same through the API, with a profile object from a file.
    let key = ok(&granary(
        &data,
        &["api-key", "create", "profiles", "--role", "admin"],
        None,
    ))
    .trim()
    .to_string();
    let profile_file = dir.path().join("profile.json");
    std::fs::write(&profile_file, r#"{"authorization": {"pkce": false}}"#).unwrap();
    let server = serve(&data);
    let remote = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--server", &server.base, "--api-key", &key]);
        granary(&data, &all, None)
    };
    let profile_arg = format!("@{}", profile_file.display());
    ok(&remote(&[
        "instance",
        "create",
        "remote",
        "--integration",
        "shop",
        "--client-id",
        "cid",
        "--connection",
        "shop=remote-shop",
        "--profile",
        &profile_arg,
    ]));
    let shown = ok(&remote(&["instance", "show", "remote"]));
    assert!(shown.contains("connection: shop=remote-shop"), "{shown}");
    assert!(
        shown.contains("Recognised Shopify") && shown.contains("then the instance's own settings"),
        "{shown}"
    );
    assert!(shown.contains("  - no PKCE"), "{shown}");
    let refused = remote(&["instance", "update", "remote", "--profile", "none"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("`shop` is not a connection field"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    ok(&remote(&["instance", "update", "remote", "--profile", ""]));
    let shown = ok(&remote(&["instance", "show", "remote"]));
    assert!(!shown.contains("own profile settings"), "{shown}");
    assert!(!shown.contains("no PKCE"), "{shown}");
    let listed = ok(&remote(&["providers"]));
    assert!(
        listed.lines().any(|l| l.starts_with("shopify\tShopify\t")),
        "{listed}"
    );
}
