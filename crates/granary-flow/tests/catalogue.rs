//! The built-in provider catalogue is sound: every file reads, ids and hosts are unique,
//! every template names only values a connection has, and resolution follows its order.

use std::collections::{BTreeMap, BTreeSet};

use granary_flow::profile::{
    Catalogue, FieldKind, ProfileError, ProfileSource, ProviderProfile, catalogue, expand,
};
use url::Url;

#[test]
fn every_catalogue_file_reads() {
    assert_eq!(catalogue().problems(), &[] as &[String]);
    assert!(!catalogue().all().is_empty());
}

#[test]
fn a_file_that_does_not_decode_is_a_problem_named_by_file() {
    let read = Catalogue::read(&[
        ("good.toml", "id = \"good\"\ntitle = \"Good\""),
        ("typo.toml", "id = \"typo\"\n[authorization]\nparam = {}"),
        ("other.toml", "id = \"not-other\""),
    ]);
    assert_eq!(read.all().len(), 1);
    assert_eq!(read.problems().len(), 2, "{:?}", read.problems());
    assert!(
        read.problems()[0].contains("typo.toml"),
        "{:?}",
        read.problems()
    );
    assert!(
        read.problems()[1].contains("must be `other`"),
        "{:?}",
        read.problems()
    );
}

#[test]
fn ids_titles_and_hosts_are_unique_and_present() {
    let mut ids = BTreeSet::new();
    let mut hosts = BTreeMap::new();
    for profile in catalogue().all() {
        let id = profile
            .id
            .clone()
            .expect("every catalogue profile has an id");
        assert!(profile.title.is_some(), "{id} has no title");
        assert!(
            profile.why.is_some(),
            "{id} says nothing on why it is needed"
        );
        assert!(ids.insert(id.clone()), "{id} twice");
        for host in &profile.hosts {
            if let Some(other) = hosts.insert(host.clone(), id.clone()) {
                panic!("the host {host} is claimed by {other} and {id}");
            }
        }
    }
}

/// Every name a template uses is a field of the profile or a value the profile keeps.
#[test]
fn templates_name_only_fields_and_kept_values() {
    for profile in catalogue().all() {
        let id = profile.id.as_deref().unwrap_or_default();
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        for field in &profile.fields {
            values.insert(field.name.clone(), "x".to_string());
            if field.kind == FieldKind::Origin {
                assert!(
                    !field.hosts.is_empty(),
                    "{id}: origin field {} allows no host",
                    field.name
                );
            }
        }
        for kept in profile
            .token
            .keep
            .iter()
            .flatten()
            .chain(profile.authorization.keep.iter().flatten())
        {
            values.insert(kept.clone(), "https://kept.example".to_string());
        }
        let mut templates: Vec<&String> = Vec::new();
        templates.extend(profile.authorization.url.iter());
        templates.extend(profile.token.url.iter());
        templates.extend(profile.refresh.url.iter());
        templates.extend(profile.revocation.url.iter());
        templates.extend(profile.api.base_url.iter());
        templates.extend(
            profile
                .refresh
                .exchange
                .iter()
                .filter_map(|e| e.url.as_ref()),
        );
        templates.extend(profile.authorization.params.values());
        for template in templates {
            if let Err(e) = expand(template, &values) {
                panic!("{id}: {e}");
            }
        }
    }
}

#[test]
fn a_profile_round_trips_through_json() {
    for profile in catalogue().all() {
        let json = serde_json::to_value(profile).expect("serializes");
        let back = ProviderProfile::from_json(&json, "test").expect("reads back");
        assert_eq!(&back, profile);
    }
}

fn url(s: &str) -> Url {
    Url::parse(s).expect("a URL")
}

#[test]
fn resolution_order_instance_then_document_then_host() {
    let google = url("https://accounts.google.com/o/oauth2/v2/auth");
    let by_host = catalogue()
        .resolve(None, None, &[&google])
        .expect("resolves");
    assert!(matches!(
        &by_host.sources[..],
        [ProfileSource::Catalogue { id, recognised_by: Some(host), .. }] if id == "google" && host == "accounts.google.com"
    ));
    assert!(
        by_host
            .headline()
            .expect("a headline")
            .contains("Recognised Google")
    );

    let document = ProviderProfile::from_json(&serde_json::json!("shopify"), "doc").unwrap();
    let named = catalogue()
        .resolve(Some(&document), None, &[&google])
        .unwrap();
    assert_eq!(named.profile.id.as_deref(), Some("shopify"));

    let instance =
        ProviderProfile::from_json(&serde_json::json!({"use": "none"}), "instance").unwrap();
    let none = catalogue()
        .resolve(Some(&document), Some(&instance), &[&google])
        .unwrap();
    assert!(none.sources.is_empty(), "{none:?}");
    assert_eq!(none.profile, ProviderProfile::default());

    let over = ProviderProfile::from_json(
        &serde_json::json!({"authorization": {"params": {"prompt": ""}}}),
        "instance",
    )
    .unwrap();
    let layered = catalogue().resolve(None, Some(&over), &[&google]).unwrap();
    assert_eq!(layered.sources.len(), 2);
    assert!(!layered.profile.authorization.params.contains_key("prompt"));
    assert!(
        layered
            .profile
            .authorization
            .params
            .contains_key("access_type")
    );
}

#[test]
fn an_unknown_profile_name_lists_the_catalogue() {
    let document = ProviderProfile::from_json(&serde_json::json!("gogle"), "doc").unwrap();
    let error = catalogue().resolve(Some(&document), None, &[]).unwrap_err();
    assert!(matches!(error, ProfileError::UnknownProfile { .. }));
    assert!(error.to_string().contains("google"), "{error}");
}

#[test]
fn a_misspelt_member_is_refused_with_its_name() {
    let error = ProviderProfile::from_json(
        &serde_json::json!({"authorization": {"pcke": false}}),
        "x-granary-profile of scheme oauth",
    )
    .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("pcke") && text.contains("x-granary-profile"),
        "{text}"
    );
}
