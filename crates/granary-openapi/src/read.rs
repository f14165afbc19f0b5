//! Reading the bytes: JSON or YAML detection, and a pass that keeps only the parts needed.
//!
//! The document is read once, as a stream: the members named in [`TOP`] are kept in a
//! [`Node`] tree, everything else is skipped with [`IgnoredAny`], which costs about what
//! merely checking the syntax costs. `paths` and `components/schemas`, which make up nearly
//! all of a large document, are never built into memory.

use std::borrow::Cow;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use crate::node::{Members, Node};
use crate::{Error, Format, Result};

/// What to keep of a member's value.
#[derive(Clone, Copy)]
pub(crate) enum Keep {
    /// The whole value.
    All,
    /// Only these members of an object.
    Only(&'static [(&'static str, Keep)]),
}

/// The members of a document that the importer reads.
pub(crate) const TOP: Keep = Keep::Only(&[
    ("openapi", Keep::All),
    ("swagger", Keep::All),
    ("swaggerVersion", Keep::All),
    ("info", Keep::Only(&[("title", Keep::All)])),
    ("servers", Keep::All),
    ("host", Keep::All),
    ("basePath", Keep::All),
    ("schemes", Keep::All),
    ("components", Keep::Only(&[("securitySchemes", Keep::All)])),
    ("securityDefinitions", Keep::All),
]);

/// Up to this size (in bytes) a JSON body is checked for UTF-8 as a whole (see [`read`]).
/// In a larger one the kept parts are a small share, and checking only them is cheaper.
const SMALL: usize = 16 * 1024;

/// Finds the format from the first byte that is not whitespace (a UTF-8 byte order mark is
/// skipped): `{` or `[` is JSON, anything else YAML. Returns the bytes without the mark.
pub(crate) fn detect(input: &[u8]) -> Result<(Format, &[u8])> {
    let body = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => Err(Error::Empty),
        Some(b'{' | b'[') => Ok((Format::Json, body)),
        Some(_) => Ok((Format::Yaml, body)),
    }
}

/// Reads `body` in `format`, keeping what `keep` names.
pub(crate) fn read(body: &[u8], format: Format, keep: Keep) -> Result<Node<'_>> {
    match format {
        // Reading from bytes checks each kept string for UTF-8 on its own; for a small
        // body, where nearly everything is kept, checking the whole body at once and
        // reading it as text is cheaper. A body that is not UTF-8 may still be read (skipped
        // strings are not checked), so it is then read from bytes, with the same result.
        Format::Json if body.len() <= SMALL => match std::str::from_utf8(body) {
            Ok(text) => read_json(serde_json::Deserializer::from_str(text), keep),
            Err(_) => read_json(serde_json::Deserializer::from_slice(body), keep),
        },
        Format::Json => read_json(serde_json::Deserializer::from_slice(body), keep),
        Format::Yaml => {
            let de = serde_yaml_ng::Deserializer::from_slice(body);
            Pick(keep).deserialize(de).map_err(yaml_error)
        }
    }
}

fn read_json<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    keep: Keep,
) -> Result<Node<'de>> {
    let node = Pick(keep).deserialize(&mut de).map_err(json_error)?;
    de.end().map_err(json_error)?;
    Ok(node)
}

fn json_error(e: serde_json::Error) -> Error {
    let (line, column) = (e.line(), e.column());
    let text = e.to_string();
    let suffix = format!(" at line {line} column {column}");
    let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
    Error::Syntax {
        format: Format::Json,
        line: (line > 0).then_some(line),
        column: (line > 0).then_some(column),
        message,
    }
}

fn yaml_error(e: serde_yaml_ng::Error) -> Error {
    let location = e.location();
    let text = e.to_string();
    let message = match &location {
        Some(at) => {
            let suffix = format!(" at line {} column {}", at.line(), at.column());
            match text.find(&suffix) {
                Some(i) => format!("{}{}", &text[..i], &text[i + suffix.len()..]),
                None => text.clone(),
            }
        }
        None => text.clone(),
    };
    Error::Syntax {
        format: Format::Yaml,
        line: location.as_ref().map(|at| at.line()),
        column: location.as_ref().map(|at| at.column()),
        message,
    }
}

/// Reads a value, keeping what a [`Keep`] names.
#[derive(Clone, Copy)]
struct Pick(Keep);

impl<'de> DeserializeSeed<'de> for Pick {
    type Value = Node<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node<'de>, D::Error> {
        match self.0 {
            Keep::All => de::Deserialize::deserialize(deserializer),
            Keep::Only(members) => deserializer.deserialize_any(PickVisitor(members)),
        }
    }
}

/// Keeps the named members of an object; any other kind of value is kept as a marker
/// (scalars as they are, arrays empty) so that the caller can say what it found.
struct PickVisitor(&'static [(&'static str, Keep)]);

impl<'de> Visitor<'de> for PickVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object or YAML mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut kept = Members::default();
        while let Some(found) = map.next_key_seed(KeySeed(self.0))? {
            match found {
                Some((name, keep)) => {
                    let value = map.next_value_seed(Pick(keep))?;
                    kept.push(Cow::Borrowed(name), value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        kept.dedup_last_wins();
        Ok(Node::Map(kept))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Node::Seq(Vec::new()))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node<'de>, E> {
        Ok(Node::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node<'de>, E> {
        Ok(Node::UInt(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node<'de>, E> {
        Ok(Node::Float(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_bytes<E: de::Error>(self, _v: &[u8]) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Borrowed("")))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
        d.deserialize_any(self)
    }
    /// A YAML tag on a mapping: the tag is dropped, the mapping read as usual.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Node<'de>, A::Error> {
        let (_tag, variant) = data.variant::<IgnoredAny>()?;
        variant.newtype_variant_seed(Pick(Keep::Only(self.0)))
    }
}

/// Reads a member name and looks it up in the list of members to keep, without allocating.
struct KeySeed(&'static [(&'static str, Keep)]);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<(&'static str, Keep)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Option<(&'static str, Keep)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().find(|(name, _)| *name == v).copied())
    }
    fn visit_bool<E: de::Error>(self, _v: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _v: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _v: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bytes<E: de::Error>(self, _v: &[u8]) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    /// YAML allows any value as a key: a sequence or mapping key names nothing we keep.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        let (_tag, variant) = data.variant::<IgnoredAny>()?;
        variant.newtype_variant::<IgnoredAny>()?;
        Ok(None)
    }
}
