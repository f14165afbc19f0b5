//! JSON pointers (RFC 6901): building them for messages and following local `$ref`s.

use crate::node::Node;

/// `base` followed by `/` and `token`, escaped: `~` becomes `~0`, `/` becomes `~1`.
pub(crate) fn join(base: &str, token: &str) -> String {
    join_all(base, &[token])
}

/// `base` followed by each of `tokens`, escaped as by [`join`]. Callers build pointers only
/// when a message needs one, so that a document without problems costs no pointer text.
pub(crate) fn join_all(base: &str, tokens: &[&str]) -> String {
    let len = base.len() + tokens.iter().map(|t| t.len() + 1).sum::<usize>();
    let mut out = String::with_capacity(len);
    out.push_str(base);
    for token in tokens {
        out.push('/');
        if !token.contains(['~', '/']) {
            out.push_str(token);
            continue;
        }
        for c in token.chars() {
            match c {
                '~' => out.push_str("~0"),
                '/' => out.push_str("~1"),
                c => out.push(c),
            }
        }
    }
    out
}

/// The JSON pointer of a local reference (`#/a/b`), with percent-encoding undone; `None`
/// when the reference is not local (another file or a URL).
pub(crate) fn local_target(reference: &str) -> Option<String> {
    let fragment = reference.strip_prefix('#')?;
    Some(percent_decode(fragment))
}

/// Follows `pointer` from `root`. `None` when a step does not exist or the pointer is
/// malformed (it must be empty or start with `/`).
pub(crate) fn lookup<'n, 'a>(root: &'n Node<'a>, pointer: &str) -> Option<&'n Node<'a>> {
    if pointer.is_empty() {
        return Some(root);
    }
    let rest = pointer.strip_prefix('/')?;
    let mut node = root;
    for raw in rest.split('/') {
        let token = raw.replace("~1", "/").replace("~0", "~");
        node = match node {
            Node::Map(members) => members.get(&token)?,
            Node::Seq(items) => items.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

/// Undoes `%XX` escapes (a URI fragment may encode spaces and other characters this way).
/// Malformed escapes and byte sequences that are not UTF-8 are kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(value) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(value);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_decodes() {
        assert_eq!(join("/a", "b/c~d"), "/a/b~1c~0d");
        assert_eq!(join_all("/a", &["b/c", "d~"]), "/a/b~1c/d~0");
        assert_eq!(
            local_target("#/x/My%20Scheme").as_deref(),
            Some("/x/My Scheme")
        );
        assert_eq!(local_target("#/x/100%").as_deref(), Some("/x/100%"));
        assert_eq!(local_target("#/x/%E9").as_deref(), Some("/x/%E9"));
        assert_eq!(local_target("other.yaml#/x"), None);
    }

    #[test]
    fn looks_up_maps_and_arrays() {
        let root: Node<'_> = serde_json::from_str(r#"{"a": {"b/c": [1, {"d~": true}]}}"#).unwrap();
        assert_eq!(lookup(&root, "/a/b~1c/1/d~0"), Some(&Node::Bool(true)));
        assert_eq!(lookup(&root, "/a/b~1c/7"), None);
        assert_eq!(lookup(&root, "a"), None);
        assert_eq!(lookup(&root, ""), Some(&root));
    }
}
