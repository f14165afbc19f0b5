//! Which profile applies to an instance: the instance's own settings over the OpenAPI
//! document's `x-granary-profile` over the catalogue (chosen by `use` or recognised by host).

use serde::{Deserialize, Serialize};
use url::Url;

use super::catalogue::Catalogue;
use super::error::ProfileError;
use super::model::ProviderProfile;

/// Where the layers of an applied profile came from, bottom first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProfileSource {
    /// A catalogue profile, named by `use` (`recognised_by` = None) or recognised by host.
    Catalogue {
        /// Its id.
        id: String,
        /// Its title.
        title: String,
        /// The host that recognised it, when it was not named.
        recognised_by: Option<String>,
    },
    /// The OpenAPI document's `x-granary-profile`.
    Document,
    /// The instance's own settings.
    Instance,
}

/// The profile that applies, and where its layers came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedProfile {
    /// The layers merged.
    pub profile: ProviderProfile,
    /// Their sources, bottom first; empty when the standard applies unchanged.
    pub sources: Vec<ProfileSource>,
}

/// The name of `use` that means "no catalogue profile".
pub const NO_PROFILE: &str = "none";

impl Catalogue {
    /// Resolves the profile of one instance: the catalogue profile named by the instance's
    /// `use`, else the document's, else the one recognised by the host of `urls`
    /// (authorization and token URL); `none` anywhere in that order stops the search. Then
    /// the document's layer, then the instance's, on top.
    ///
    /// # Errors
    /// [`ProfileError::UnknownProfile`] when a `use` names no catalogue profile.
    pub fn resolve(
        &self,
        document: Option<&ProviderProfile>,
        instance: Option<&ProviderProfile>,
        urls: &[&Url],
    ) -> Result<ResolvedProfile, ProfileError> {
        let named = instance
            .and_then(|p| p.base.as_deref())
            .or_else(|| document.and_then(|p| p.base.as_deref()));
        let base = match named {
            Some(NO_PROFILE) => None,
            Some(name) => Some((
                self.get(name).ok_or_else(|| ProfileError::UnknownProfile {
                    name: name.to_string(),
                    known: self.ids(),
                })?,
                None,
            )),
            None => self.recognise(urls).map(|(p, host)| (p, Some(host))),
        };
        let mut resolved = ResolvedProfile::default();
        if let Some((profile, recognised_by)) = base {
            resolved.profile = profile.clone();
            resolved.sources.push(ProfileSource::Catalogue {
                id: profile.id.clone().unwrap_or_default(),
                title: profile.title.clone().unwrap_or_default(),
                recognised_by,
            });
        }
        for (layer, source) in [
            (document, ProfileSource::Document),
            (instance, ProfileSource::Instance),
        ] {
            if let Some(layer) = layer.filter(|l| !l.is_layer_empty()) {
                resolved.profile = resolved.profile.merged_with(layer);
                resolved.sources.push(source);
            }
        }
        resolved.profile.base = None;
        Ok(resolved)
    }
}

impl ProviderProfile {
    /// Reads a layer given as JSON: a profile object, or a string naming a catalogue
    /// profile (`"google"` is `{"use": "google"}`). `source_name` says where it came from,
    /// for the error.
    ///
    /// # Errors
    /// [`ProfileError::Invalid`] naming the member that is wrong.
    pub fn from_json(
        value: &serde_json::Value,
        source_name: &str,
    ) -> Result<ProviderProfile, ProfileError> {
        if let Some(name) = value.as_str() {
            return Ok(ProviderProfile {
                base: Some(name.to_string()),
                ..ProviderProfile::default()
            });
        }
        serde_json::from_value(value.clone()).map_err(|e| ProfileError::Invalid {
            source_name: source_name.to_string(),
            reason: e.to_string(),
        })
    }

    /// Whether the layer changes nothing but (possibly) which catalogue profile is used.
    fn is_layer_empty(&self) -> bool {
        ProviderProfile {
            base: None,
            ..self.clone()
        } == ProviderProfile::default()
    }
}
