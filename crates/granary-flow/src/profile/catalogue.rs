//! The built-in catalogue: one TOML file per provider in `providers/`, compiled into the
//! crate, matched by the host of an integration's URLs or chosen by id.

use std::sync::LazyLock;

use url::Url;

use super::model::ProviderProfile;
use super::template::host_matches;

/// `(file name, contents)` of every `providers/*.toml`, written by `build.rs`.
const FILES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/catalogue.rs"));

/// The provider profiles shipped with granary.
#[derive(Debug)]
pub struct Catalogue {
    profiles: Vec<ProviderProfile>,
    problems: Vec<String>,
}

static CATALOGUE: LazyLock<Catalogue> = LazyLock::new(|| Catalogue::read(FILES));

/// The built-in catalogue.
pub fn catalogue() -> &'static Catalogue {
    &CATALOGUE
}

impl Catalogue {
    /// Reads catalogue files; a file that does not decode, or whose `id` is not its file
    /// name, is left out and listed in [`Catalogue::problems`].
    pub fn read(files: &[(&str, &str)]) -> Catalogue {
        let mut profiles = Vec::new();
        let mut problems = Vec::new();
        for (name, text) in files {
            let stem = name.trim_end_matches(".toml");
            match toml::from_str::<ProviderProfile>(text) {
                Ok(profile) if profile.id.as_deref() == Some(stem) => profiles.push(profile),
                Ok(_) => problems.push(format!("providers/{name}: its `id` must be `{stem}`")),
                Err(e) => problems.push(format!("providers/{name}: {e}")),
            }
        }
        Catalogue { profiles, problems }
    }

    /// Every profile, by id.
    pub fn all(&self) -> &[ProviderProfile] {
        &self.profiles
    }

    /// The files that could not be read, with why (empty when the catalogue is sound; a
    /// test keeps it so).
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// The profile with this id.
    pub fn get(&self, id: &str) -> Option<&ProviderProfile> {
        self.profiles.iter().find(|p| p.id.as_deref() == Some(id))
    }

    /// The ids, comma-separated, for messages.
    pub fn ids(&self) -> String {
        let ids: Vec<&str> = self
            .profiles
            .iter()
            .filter_map(|p| p.id.as_deref())
            .collect();
        ids.join(", ")
    }

    /// The profile recognised by the host of one of `urls` (the authorization and token
    /// URLs), with that host: the most specific entry wins (`login.salesforce.com` over
    /// `salesforce.com`).
    pub fn recognise<'a>(&'a self, urls: &[&Url]) -> Option<(&'a ProviderProfile, String)> {
        let mut best: Option<(&ProviderProfile, String, usize)> = None;
        for url in urls {
            let Some(host) = url.host_str() else { continue };
            for profile in &self.profiles {
                for entry in &profile.hosts {
                    if host_matches(host, std::slice::from_ref(entry))
                        && best.as_ref().is_none_or(|(_, _, len)| entry.len() > *len)
                    {
                        best = Some((profile, host.to_string(), entry.len()));
                    }
                }
            }
        }
        best.map(|(profile, host, _)| (profile, host))
    }
}
