//! The connection a profile gets: its fields' values, read off the provider's example URLs
//! (the emulator's behaviour names its fields its own way: `subdomain`, `region`,
//! `accountId`), and a small table where a value cannot be read off a URL.

use std::collections::BTreeMap;

use granary_flow::profile::{ProviderProfile, match_template};
use granary_providers_conformance::{Behaviour, CLIENT_ID};

/// Values no URL of the behaviour gives: `(profile id, profile field, value)`. Each names
/// why in a comment.
const TABLE: &[(&str, &str, &str)] = &[
    // Seller Central's consent page takes the app's application_id; the emulator registers
    // one client, whose application id is its client id.
    ("amazon", "application_id", CLIENT_ID),
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
        let mut url = b.example_url(url);
        // A query the provider's URL carries (`?request=token`) the profile sends as a
        // parameter.
        if !template.contains('?') {
            url.truncate(url.find('?').unwrap_or(url.len()));
        }
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
