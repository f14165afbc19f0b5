//! docs/guides/providers.md keeps up with the catalogue: its table has one row per catalogue
//! profile, with its title and exactly its hosts, and no row for a profile that is gone; its
//! example profile reads.

use std::collections::BTreeMap;

use granary_flow::profile::{ProviderProfile, catalogue};

fn guide() -> String {
    let path = format!(
        "{}/../../docs/guides/providers.md",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The catalogue table's rows, by id: (title, hosts).
fn table_rows(guide: &str) -> BTreeMap<String, (String, Vec<String>)> {
    let mut rows = BTreeMap::new();
    let start = guide
        .find("| id | title | hosts | what it changes |")
        .expect("the guide has the catalogue table (| id | title | hosts | what it changes |)");
    for line in guide[start..].lines().skip(2) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        let [id, title, hosts, _changes] = cells[..] else {
            panic!("a row of the catalogue table has not 4 cells: {line}");
        };
        let id = id.trim_matches('`').to_string();
        let hosts = hosts
            .split(", ")
            .map(|h| h.trim_matches('`').to_string())
            .collect();
        assert!(
            rows.insert(id.clone(), (title.to_string(), hosts))
                .is_none(),
            "the guide's table lists {id} twice"
        );
    }
    rows
}

#[test]
fn the_guide_table_lists_every_catalogue_profile_with_its_title_and_hosts() {
    let mut rows = table_rows(&guide());
    for profile in catalogue().all() {
        let id = profile.id.clone().unwrap_or_default();
        let Some((title, hosts)) = rows.remove(&id) else {
            panic!("docs/guides/providers.md's catalogue table has no row for `{id}`: add one");
        };
        assert_eq!(
            Some(&title),
            profile.title.as_ref(),
            "the guide's title of {id}"
        );
        assert_eq!(hosts, profile.hosts, "the guide's hosts of {id}");
    }
    assert!(
        rows.is_empty(),
        "the guide's table lists profiles the catalogue does not have: {:?}",
        rows.keys().collect::<Vec<_>>()
    );
}

#[test]
fn the_guide_example_profile_reads() {
    let guide = guide();
    let start = guide
        .find("```toml\n")
        .expect("the guide has a TOML example")
        + "```toml\n".len();
    let end = start + guide[start..].find("```").expect("the TOML example ends");
    let example: ProviderProfile = toml::from_str(&guide[start..end])
        .unwrap_or_else(|e| panic!("the guide's example profile does not read: {e}"));
    assert_eq!(example.id.as_deref(), Some("acme"));
    assert_eq!(example.fields.len(), 2);
    assert!(example.refresh.exchange.is_some());
    assert!(example.api.token_prefix.is_some());
}
