//! The store chosen by URL (`--store`, `GRANARY_STORE`): the CLI on a SQLite file outside
//! the data directory, its key file beside it, and a wrong key refused at open.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_granary");

fn granary(data: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("GRANARY_SERVER")
        .env_remove("GRANARY_API_KEY")
        .env_remove("GRANARY_PUBLIC_URL")
        .env_remove("GRANARY_CONFIG")
        .env_remove("GRANARY_MASTER_KEY")
        .env_remove("GRANARY_STORE")
        .env_remove("GRANARY_KEY_FILE")
        .stdin(Stdio::null());
    for (name, value) in envs {
        command.env(name, value);
    }
    command.output().unwrap()
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

fn stderr(output: &Output) -> String {
    assert!(!output.status.success(), "succeeded: {output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_cli_works_on_a_sqlite_store_url_and_refuses_another_key_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = dir.path().join("stores").join("main.sqlite");
    let store = format!("sqlite:{}", db.display());
    let document = dir.path().join("box.json");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../granary-openapi/tests/fixtures/box.json"
        ),
        &document,
    )
    .unwrap();
    let doc = document.to_str().unwrap();

    let out = ok(&granary(&data, &["import", doc, "--store", &store], &[]));
    assert!(out.contains("imported integration box"), "{out}");
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
            "--store",
            &store,
        ],
        &[],
    ));
    assert!(db.exists(), "the store is the file the URL names");
    assert!(
        dir.path().join("stores").join("main.sqlite.key").exists(),
        "its key file is beside it"
    );
    assert!(
        !data.join("granary.sqlite").exists(),
        "not the default file"
    );

    // The same store through the environment variable; the default store knows nothing.
    let list = ok(&granary(
        &data,
        &["instance", "list"],
        &[("GRANARY_STORE", &store)],
    ));
    assert!(list.contains("box-1"), "{list}");
    let error = stderr(&granary(&data, &["instance", "list"], &[]));
    assert!(error.contains("holds no granary data"), "{error}");

    // Another key (a key file of its own) is refused at open, saying why.
    let other_key = dir.path().join("other.key");
    let error = stderr(&granary(
        &data,
        &[
            "instance",
            "list",
            "--store",
            &store,
            "--key-file",
            other_key.to_str().unwrap(),
        ],
        &[],
    ));
    assert!(
        error.contains("cannot open this store's secrets"),
        "{error}"
    );

    // A store URL of no accepted form names the forms.
    let error = stderr(&granary(
        &data,
        &["instance", "list", "--store", "mysql://db/granary"],
        &[],
    ));
    assert!(
        error.contains("sqlite:PATH") && error.contains("postgres://"),
        "{error}"
    );
    // PostgreSQL without GRANARY_MASTER_KEY or a key file: refused before connecting.
    let error = stderr(&granary(
        &data,
        &[
            "instance",
            "list",
            "--store",
            "postgres://granary@127.0.0.1:9/granary",
        ],
        &[],
    ));
    assert!(
        error.contains("GRANARY_MASTER_KEY") && error.contains("--key-file"),
        "{error}"
    );
}
