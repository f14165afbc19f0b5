//! The one rule for instance ids and integration names: they appear in URLs, file names,
//! metric labels and log lines, so the engine refuses any other before it stores one.

use super::{EngineError, EngineResult};

/// Which kind of id a value is, for the message that refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdKind {
    /// An instance id.
    Instance,
    /// An integration name.
    Integration,
}

impl IdKind {
    /// The words for this kind of id: `instance id`, `integration name`.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Instance => "instance id",
            Self::Integration => "integration name",
        }
    }
}

/// Whether `id` is a usable instance id or integration name: 1 to 64 of `A-Z a-z 0-9 . _ -`,
/// starting with a letter or digit.
pub fn is_valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && id.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Refuses an id that [`is_valid_id`] refuses, with [`EngineError::Invalid`] naming the rule.
pub fn validate_id(kind: IdKind, id: &str) -> EngineResult<()> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "the {} `{id}` is not usable: use 1 to 64 letters, digits, `.`, `_` or `-`, starting \
             with a letter or digit",
            kind.noun()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(is_valid_id("box-prod_1.2"));
        assert!(is_valid_id(&"a".repeat(64)));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("-x"));
        assert!(!is_valid_id(".x"));
        assert!(!is_valid_id("a/b"));
        assert!(!is_valid_id("a b"));
        assert!(!is_valid_id("é"));
        assert!(!is_valid_id(&"a".repeat(65)));
    }

    #[test]
    fn the_message_names_the_kind_the_id_and_the_rule() {
        let error = validate_id(IdKind::Instance, "a/b").unwrap_err();
        assert!(matches!(error, EngineError::Invalid(_)), "{error:?}");
        assert_eq!(
            error.to_string(),
            "the instance id `a/b` is not usable: use 1 to 64 letters, digits, `.`, `_` or `-`, \
             starting with a letter or digit"
        );
        let error = validate_id(IdKind::Integration, "").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("the integration name `` is not usable")
        );
        assert!(validate_id(IdKind::Integration, "box").is_ok());
    }
}
