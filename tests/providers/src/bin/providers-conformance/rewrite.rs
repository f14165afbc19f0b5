//! A catalogue profile pointed at the emulator: every provider URL `https://HOST/...` becomes
//! `{origin}/HOST/...` (the `{field}` parts kept), and origin fields may name 127.0.0.1.

use granary_flow::profile::{FieldKind, ProviderProfile};
use granary_providers_conformance::rewrite;

/// `profile` with each of its URL templates (authorization, token, refresh, exchange,
/// revocation, API base, field defaults that are URLs) served by the emulator at `origin`.
/// A template that starts with a value (`{instance_url}/services/data`) is left alone: the
/// value comes from the emulator, already rewritten. Origin fields also allow `127.0.0.1`,
/// the emulator's host. The result has no `hosts` (it is an instance's own layer, not a
/// catalogue entry).
pub fn profile_at(profile: &ProviderProfile, origin: &str) -> ProviderProfile {
    let mut p = profile.clone();
    let urls = [
        &mut p.authorization.url,
        &mut p.token.url,
        &mut p.refresh.url,
        &mut p.revocation.url,
        &mut p.api.base_url,
    ];
    for url in urls {
        rewrite_option(url, origin);
    }
    if let Some(exchange) = p.refresh.exchange.as_mut() {
        rewrite_option(&mut exchange.url, origin);
    }
    for field in &mut p.fields {
        rewrite_option(&mut field.default, origin);
        if field.kind == FieldKind::Origin {
            field.hosts.push("127.0.0.1".to_owned());
        }
    }
    p.hosts.clear();
    p
}

fn rewrite_option(url: &mut Option<String>, origin: &str) {
    if let Some(template) = url.as_mut() {
        *template = rewrite(template, origin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_url_is_served_by_the_emulator_with_its_fields_kept() {
        let shopify = granary_flow::profile::catalogue()
            .get("shopify")
            .expect("shopify")
            .clone();
        let at = profile_at(&shopify, "http://127.0.0.1:9");
        assert_eq!(
            at.authorization.url.as_deref(),
            Some("http://127.0.0.1:9/{shop}.myshopify.com/admin/oauth/authorize")
        );
        assert_eq!(
            at.api.base_url.as_deref(),
            Some("http://127.0.0.1:9/{shop}.myshopify.com/admin/api")
        );
        let zoho = granary_flow::profile::catalogue()
            .get("zoho")
            .expect("zoho")
            .clone();
        let at = profile_at(&zoho, "http://127.0.0.1:9");
        assert_eq!(
            at.token.url.as_deref(),
            Some("{accounts-server}/oauth/v2/token")
        );
        assert!(at.fields[1].hosts.contains(&"127.0.0.1".to_owned()));
        assert!(at.hosts.is_empty());
    }
}
