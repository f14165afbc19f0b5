//! A small ordered tree for the few parts of a document that the importer keeps.
//!
//! `serde_json::Value` would sort object keys (its `preserve_order` feature is off in this
//! workspace), and the order of schemes, flows and scopes matters to users, so the kept
//! parts are read into this tree instead. It also turns YAML's non-string keys into text.
//!
//! Strings borrow from the document when they can (JSON strings without escapes), so that
//! only the strings that end up in the result are ever copied, and each only once.

use std::borrow::Cow;
use std::fmt;

use crate::Error;

use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

/// One value of the kept parts of a document; `'a` is the document's text.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Node<'a> {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Seq(Vec<Node<'a>>),
    Map(Members<'a>),
}

impl<'a> Node<'a> {
    /// What kind of value this is, for messages ("found a number").
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Int(_) | Node::UInt(_) | Node::Float(_) => "a number",
            Node::Str(_) => "a string",
            Node::Seq(_) => "an array",
            Node::Map(_) => "an object",
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The members of an object; anything else is an [`Error::Invalid`] at the pointer that
    /// `at` builds (only on error), saying what was `expected` and what was found.
    pub(crate) fn into_members(
        self,
        at: impl FnOnce() -> String,
        expected: &str,
    ) -> Result<Members<'a>, Error> {
        match self {
            Node::Map(members) => Ok(members),
            other => Err(Error::Invalid {
                pointer: at(),
                problem: format!("expected {expected}, found {}", other.kind()),
            }),
        }
    }

    pub(crate) fn as_map(&self) -> Option<&Members<'a>> {
        match self {
            Node::Map(m) => Some(m),
            _ => None,
        }
    }

    pub(crate) fn as_map_mut(&mut self) -> Option<&mut Members<'a>> {
        match self {
            Node::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The member `key` of an object (`None` for anything else).
    pub(crate) fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.as_map().and_then(|m| m.get(key))
    }

    /// This value as JSON (object members sorted by name, as `serde_json::Value` keeps
    /// them; a float that JSON cannot hold, such as NaN, becomes `null`).
    pub(crate) fn into_json(self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(b),
            Node::Int(i) => Value::from(i),
            Node::UInt(u) => Value::from(u),
            Node::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
            Node::Str(s) => Value::String(s.into_owned()),
            Node::Seq(items) => Value::Array(items.into_iter().map(Node::into_json).collect()),
            Node::Map(members) => Value::Object(
                members
                    .into_iter()
                    .map(|(name, value)| (name.into_owned(), value.into_json()))
                    .collect(),
            ),
        }
    }

    /// The text of a scalar: strings as they are, numbers and booleans as written.
    pub(crate) fn scalar_text(&self) -> Option<String> {
        match self {
            Node::Str(s) => Some(s.as_ref().to_owned()),
            Node::Bool(b) => Some(b.to_string()),
            Node::Int(i) => Some(i.to_string()),
            Node::UInt(u) => Some(u.to_string()),
            // `{:?}` keeps the fraction of whole numbers: YAML's `swagger: 2.0` reads "2.0".
            Node::Float(f) => Some(format!("{f:?}")),
            Node::Null | Node::Seq(_) | Node::Map(_) => None,
        }
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON or YAML value")
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
    fn visit_string<E: de::Error>(self, v: String) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(v)))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(
            String::from_utf8_lossy(v).into_owned(),
        )))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
        Node::deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node<'de>>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut members = Members::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value = map.next_value::<Node<'de>>()?;
            members.push(key, value);
        }
        members.dedup_last_wins();
        Ok(Node::Map(members))
    }
    /// A YAML tag (`!foo value`): the tag is dropped, the value kept.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Node<'de>, A::Error> {
        let (_tag, variant) = data.variant::<de::IgnoredAny>()?;
        variant.newtype_variant::<Node<'de>>()
    }
}

/// Reads a mapping key as its text: a string key borrowed from the document when it can be, any other kind
/// (YAML allows keys of any kind) through a [`Node`] and [`key_text`].
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Cow<'de, str>, E> {
        NodeVisitor.visit_bool(v).map(|n| Cow::Owned(key_text(&n)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cow<'de, str>, E> {
        NodeVisitor.visit_i64(v).map(|n| Cow::Owned(key_text(&n)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cow<'de, str>, E> {
        NodeVisitor.visit_u64(v).map(|n| Cow::Owned(key_text(&n)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cow<'de, str>, E> {
        NodeVisitor.visit_f64(v).map(|n| Cow::Owned(key_text(&n)))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Cow<'de, str>, E> {
        NodeVisitor.visit_bytes(v).map(|n| Cow::Owned(key_text(&n)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Cow<'de, str>, E> {
        NodeVisitor.visit_unit().map(|n| Cow::Owned(key_text(&n)))
    }
    fn visit_none<E: de::Error>(self) -> Result<Cow<'de, str>, E> {
        NodeVisitor.visit_none().map(|n| Cow::Owned(key_text(&n)))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        NodeVisitor.visit_some(d).map(|n| Cow::Owned(key_text(&n)))
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        NodeVisitor
            .visit_newtype_struct(d)
            .map(|n| Cow::Owned(key_text(&n)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Cow<'de, str>, A::Error> {
        NodeVisitor.visit_seq(seq).map(|n| Cow::Owned(key_text(&n)))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Cow<'de, str>, A::Error> {
        NodeVisitor.visit_map(map).map(|n| Cow::Owned(key_text(&n)))
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Cow<'de, str>, A::Error> {
        NodeVisitor
            .visit_enum(data)
            .map(|n| Cow::Owned(key_text(&n)))
    }
}

/// The text of a mapping key; YAML allows keys of any kind.
pub(crate) fn key_text(key: &Node<'_>) -> String {
    match key.scalar_text() {
        Some(text) => text,
        None => match key {
            Node::Null => "null".to_owned(),
            _ => format!("({})", key.kind()),
        },
    }
}

/// The members of an object, in document order, each name once.
///
/// A vector rather than a hash map: the kept objects are small, and building a hash map for
/// each of them cost more than reading the document.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Members<'a>(Vec<(Cow<'a, str>, Node<'a>)>);

impl<'a> Members<'a> {
    /// Adds a member; call [`Members::dedup_last_wins`] after adding names that may repeat.
    pub(crate) fn push(&mut self, name: Cow<'a, str>, value: Node<'a>) {
        self.0.push((name, value));
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Node<'a>> {
        self.0.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub(crate) fn get_mut(&mut self, name: &str) -> Option<&mut Node<'a>> {
        self.0
            .iter_mut()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Moves the value of member `name` out (leaving `null` in its place); `None` when it
    /// is absent or `null`.
    pub(crate) fn take(&mut self, name: &str) -> Option<Node<'a>> {
        self.get_mut(name)
            .map(std::mem::take)
            .filter(|n| !matches!(n, Node::Null))
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Keeps the last of members with the same name (a later duplicate wins, as in
    /// serde_json), at the place of the last one.
    pub(crate) fn dedup_last_wins(&mut self) {
        let n = self.0.len();
        let has_duplicates = if n <= 16 {
            let names = &self.0;
            names
                .iter()
                .enumerate()
                .any(|(i, (name, _))| names.iter().skip(i + 1).any(|(other, _)| other == name))
        } else {
            let mut names: Vec<&str> = self.0.iter().map(|(k, _)| k.as_ref()).collect();
            names.sort_unstable();
            names.windows(2).any(|w| w.first() == w.get(1))
        };
        if !has_duplicates {
            return;
        }
        let mut seen = std::collections::HashSet::new();
        let mut kept: Vec<(Cow<'a, str>, Node<'a>)> = Vec::with_capacity(n);
        for (name, value) in std::mem::take(&mut self.0).into_iter().rev() {
            if seen.insert(name.clone()) {
                kept.push((name, value));
            }
        }
        kept.reverse();
        self.0 = kept;
    }
}

impl<'m, 'a> IntoIterator for &'m Members<'a> {
    type Item = (&'m Cow<'a, str>, &'m Node<'a>);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'m, (Cow<'a, str>, Node<'a>)>,
        fn(&'m (Cow<'a, str>, Node<'a>)) -> (&'m Cow<'a, str>, &'m Node<'a>),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(n, v)| (n, v))
    }
}

impl<'a> IntoIterator for Members<'a> {
    type Item = (Cow<'a, str>, Node<'a>);
    type IntoIter = std::vec::IntoIter<(Cow<'a, str>, Node<'a>)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}
