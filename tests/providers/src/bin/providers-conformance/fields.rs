//! The connection a profile gets: its fields' values, read off the provider's example URLs
//! (the emulator's behaviour names its fields its own way: `subdomain`, `region`,
//! `accountId`), and a small table where a value cannot be read off a URL.

use std::collections::BTreeMap;

use granary_flow::profile::{ProviderProfile, match_template};
use granary_providers_conformance::Behaviour;

/// Values no URL of the behaviour gives: `(profile id, profile field, value)`. Each names
/// why in a comment.
const TABLE: &[(&str, &str, &str)] = &[
    // The emulator's Intercom example connection is region `eu`; its default URLs are the
    // US hosts, which is what the profile's defaults are: nothing to add.
];

/// The profile's connection fields (those an admin enters) with the values that make its
/// URL templates give the behaviour's example URLs, then [`TABLE`].
pub fn connection(profile: &ProviderProfile, b: &Behaviour) -> BTreeMap<String, String> {
    let pairs = [
        (&profile.authorization.url, Some(b.authorization_url())),
        (&profile.token.url, Some(b.token_url())),
        (&profile.refresh.url, Some(b.refresh_url())),
        (&profile.revocation.url, b.revocation_url()),
    ];
    let admin_field = |name: &str| {
        profile
            .fields
            .iter()
            .any(|f| f.name == name && !f.from_callback)
    };
    let mut values = BTreeMap::new();
    for (template, url) in pairs {
        let (Some(template), Some(url)) = (template, url) else {
            continue;
        };
        let url = b.example_url(url);
        for (name, value) in match_template(template, &url).unwrap_or_default() {
            if admin_field(&name) {
                values.entry(name).or_insert(value);
            }
        }
    }
    let id = profile.id.as_deref().unwrap_or_default();
    for (of, name, value) in TABLE {
        if *of == id && admin_field(name) {
            values.insert((*name).to_owned(), (*value).to_owned());
        }
    }
    values
}
