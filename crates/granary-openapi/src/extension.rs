//! `x-granary-profile`: the provider profile a document asks for, on an oauth2 scheme or flow.
//!
//! The value is kept as JSON, unread: a string names a profile of granary's catalogue
//! (`"google"`), an object is a profile in granary's profile format (see granary's
//! `docs/guides/providers.md`). This crate only checks that it is one of the two; granary's
//! engine reads it (`ProviderProfile::from_json`), and a flow's value wins over its scheme's.

use crate::node::{Members, Node};
use crate::{Error, Result, pointer};

/// The member name of the extension.
pub const PROFILE_EXTENSION: &str = "x-granary-profile";

/// Moves `x-granary-profile` out of `members` (an oauth2 scheme, a flow, or a Swagger 2.0
/// security definition, whose pointer `at` builds, only on error): `None` when absent or
/// `null`.
///
/// # Errors
/// [`Error::Invalid`] when the value is neither a string nor an object.
pub(crate) fn take_profile(
    members: &mut Members<'_>,
    at: impl FnOnce() -> String,
) -> Result<Option<serde_json::Value>> {
    match members.take(PROFILE_EXTENSION) {
        None => Ok(None),
        Some(Node::Str(name)) if name.trim().is_empty() => Err(Error::Invalid {
            pointer: pointer::join(&at(), PROFILE_EXTENSION),
            problem: "empty profile name: name a profile of granary's catalogue (such as `google`) or `none`, or give a profile object".to_owned(),
        }),
        Some(value @ (Node::Str(_) | Node::Map(_))) => Ok(Some(value.into_json())),
        Some(other) => Err(Error::Invalid {
            pointer: pointer::join(&at(), PROFILE_EXTENSION),
            problem: format!(
                "expected a profile name (such as `google`) or a profile object, found {}",
                other.kind()
            ),
        }),
    }
}
