//! What can be wrong with a profile or with the values it is given, in words that name the fix.

/// A profile that cannot be used as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// `use` names no catalogue profile.
    #[error("no provider profile is named `{name}`: use one of {known}, or `none`")]
    UnknownProfile {
        /// The name given.
        name: String,
        /// The catalogue's ids, comma-separated.
        known: String,
    },
    /// A profile's data does not decode.
    #[error("the provider profile {source_name} is not valid: {reason}")]
    Invalid {
        /// Where it came from (`x-granary-profile of scheme oauth`, `the instance's profile`).
        source_name: String,
        /// What is wrong, with its place.
        reason: String,
    },
    /// A connection field the provider needs has no value and no default.
    #[error("the connection field `{field}` ({label}) is not set: set it on the instance")]
    MissingField {
        /// The field's name.
        field: String,
        /// What it is.
        label: String,
    },
    /// A connection field's value is not of its kind.
    #[error("the connection field `{field}` is `{value}`, which is not {expected}")]
    InvalidField {
        /// The field's name.
        field: String,
        /// The value given (never a secret: connection fields are not secret).
        value: String,
        /// What it must look like.
        expected: String,
    },
    /// A value was given for a field the profile does not have.
    #[error("`{field}` is not a connection field of this provider: {known}")]
    UnknownField {
        /// The name given.
        field: String,
        /// The fields there are, or a sentence saying there are none.
        known: String,
    },
    /// A URL template names a value that is not there.
    #[error(
        "the URL template `{template}` needs `{name}`, which is neither a connection field nor a value kept from the provider: add the field to the profile or fix the template"
    )]
    Template {
        /// The template.
        template: String,
        /// The name it needs.
        name: String,
    },
    /// A template expanded to something that is not a URL.
    #[error("the {what} `{url}` is not a valid URL: {reason}")]
    InvalidUrl {
        /// Which URL (`authorization URL`).
        what: String,
        /// The expanded URL.
        url: String,
        /// Why.
        reason: String,
    },
}
