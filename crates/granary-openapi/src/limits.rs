//! Limits on what a document may cost, checked before any JSON or YAML is built.
//!
//! The size is compared first; then one linear pass over the bytes ([`check_depth`]) finds
//! how deep the document nests, without building anything. Both parsers refuse deep nesting
//! themselves, but only after the work: the YAML scanner costs time quadratic in the depth
//! of flow collections (`paths: [[[[...` of 100 000 levels took 18 s), so the check must
//! come first.

use crate::{Error, Format, Result};

/// What a document may cost. [`crate::parse`] uses [`Limits::default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The largest document read, in bytes. Default: [`Limits::DEFAULT_MAX_BYTES`] (64 MiB,
    /// above the largest real API documents: Microsoft Graph's is 47 MB).
    pub max_bytes: usize,
    /// The deepest nesting read: JSON arrays and objects, YAML flow collections and block
    /// (indented or compact `- -`) collections, counted together. Default:
    /// [`Limits::DEFAULT_MAX_DEPTH`] (128, the limit serde_json and serde_yaml_ng apply
    /// themselves, after the work; real documents nest a few dozen levels at most).
    pub max_depth: usize,
}

impl Limits {
    /// The default of [`Limits::max_bytes`]: 64 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;
    /// The default of [`Limits::max_depth`]: 128 levels.
    pub const DEFAULT_MAX_DEPTH: usize = 128;

    /// Limits of `max_bytes` bytes and `max_depth` levels.
    pub fn new(max_bytes: usize, max_depth: usize) -> Self {
        Self {
            max_bytes,
            max_depth,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_BYTES, Self::DEFAULT_MAX_DEPTH)
    }
}

/// Refuses a document over the size limit.
pub(crate) fn check_size(input: &[u8], limits: &Limits) -> Result<()> {
    if input.len() > limits.max_bytes {
        return Err(Error::TooLarge {
            size: input.len(),
            limit: limits.max_bytes,
        });
    }
    Ok(())
}

/// Refuses a document that nests deeper than `limits.max_depth`, in one pass over the bytes.
pub(crate) fn check_depth(body: &[u8], format: Format, limits: &Limits) -> Result<()> {
    let max = limits.max_depth;
    let found = match format {
        Format::Json => json_depth(body, max),
        Format::Yaml => Yaml::new(body, max).run(),
    };
    match found {
        Some(line) => Err(Error::TooDeep { line, limit: max }),
        None => Ok(()),
    }
}

/// The line (1-based) where a JSON body first nests deeper than `max`, if it does.
fn json_depth(body: &[u8], max: usize) -> Option<usize> {
    let (mut depth, mut line) = (0usize, 1usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in body {
        if b == b'\n' {
            line += 1;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Some(line);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// A block collection open at a column: a mapping, or a sequence (which may share its
/// column with the mapping key it belongs to).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Block {
    Map,
    Seq,
}

/// A scalar that may go on over the next lines.
#[derive(Clone, Copy)]
struct OpenScalar {
    /// Lines indented deeper than this column belong to the scalar (`None`: every line,
    /// for a scalar at the top level).
    parent: Option<usize>,
    /// A plain scalar (its lines may still hold a `: ` or a comment), else a block scalar.
    plain: bool,
}

/// A one-pass YAML scanner that follows only what decides nesting: indentation and compact
/// block entries, flow collections, and what hides them (quoted scalars, block scalars,
/// multi-line plain scalars, comments). When unsure it counts rather than skips: a wrong
/// guess may refuse an odd document, never let a deep one through.
struct Yaml<'a> {
    s: &'a [u8],
    i: usize,
    /// Where the current line begins.
    bol: usize,
    line: usize,
    max: usize,
    flow: usize,
    /// Open block collections, by growing column (a sequence may repeat the column of the
    /// mapping it is a value of).
    stack: Vec<(usize, Block)>,
    open_scalar: Option<OpenScalar>,
    too_deep: bool,
}

impl<'a> Yaml<'a> {
    fn new(s: &'a [u8], max: usize) -> Self {
        Self {
            s,
            i: 0,
            bol: 0,
            line: 1,
            max,
            flow: 0,
            stack: Vec::new(),
            open_scalar: None,
            too_deep: false,
        }
    }

    /// The byte at `i`; past the end, a line end.
    fn at(&self, i: usize) -> u8 {
        self.s.get(i).copied().unwrap_or(b'\n')
    }

    fn blank(b: u8) -> bool {
        matches!(b, b' ' | b'\t' | b'\r' | b'\n')
    }

    fn column(&self) -> usize {
        self.i - self.bol
    }

    fn check(&mut self) {
        if self.stack.len() + self.flow > self.max {
            self.too_deep = true;
        }
    }

    /// The column of the innermost open block collection (`None`: the top level).
    fn top_column(&self) -> Option<usize> {
        self.stack.last().map(|&(c, _)| c)
    }

    fn push(&mut self, column: usize, kind: Block) {
        let push = match self.stack.last() {
            None => true,
            Some(&(c, k)) => c < column || (c == column && k == Block::Map && kind == Block::Seq),
        };
        if push {
            self.stack.push((column, kind));
            self.check();
        }
    }

    fn open_flow(&mut self) {
        self.flow += 1;
        self.check();
    }

    fn skip_to_line_end(&mut self) {
        while self.i < self.s.len() && self.s[self.i] != b'\n' {
            self.i += 1;
        }
    }

    /// Skips a quoted scalar that starts at `self.i`, across lines.
    fn skip_quoted(&mut self) {
        let quote = self.s[self.i];
        self.i += 1;
        while self.i < self.s.len() {
            let b = self.s[self.i];
            self.i += 1;
            match b {
                b'\n' => {
                    self.line += 1;
                    self.bol = self.i;
                }
                b'\\' if quote == b'"' && self.at(self.i) != b'\n' => self.i += 1,
                b'\'' if quote == b'\'' && self.at(self.i) == b'\'' => self.i += 1,
                b if b == quote => return,
                _ => {}
            }
        }
    }

    /// Returns the line where the body first nests too deep, if it does.
    fn run(mut self) -> Option<usize> {
        while self.i < self.s.len() && !self.too_deep {
            self.bol = self.i;
            self.read_line();
            if self.too_deep {
                break;
            }
            if self.i < self.s.len() {
                // Past the line end.
                self.i += 1;
                self.line += 1;
            }
        }
        self.too_deep.then_some(self.line)
    }

    /// Reads one line from its start (more than one when a quoted scalar spans lines),
    /// stopping at its `\n`.
    fn read_line(&mut self) {
        let start = self.i;
        let mut indent = 0;
        while self.at(start + indent) == b' ' {
            indent += 1;
        }
        let mut content = start + indent;
        while matches!(self.at(content), b' ' | b'\t' | b'\r') {
            content += 1;
        }
        let first = self.at(content);
        let blank = first == b'\n' || first == b'#';
        let marker = indent == 0
            && (self.s[start..].starts_with(b"---") || self.s[start..].starts_with(b"..."))
            && Self::blank(self.at(start + 3));
        if let Some(open) = self.open_scalar {
            let inside = !marker && (blank || open.parent.is_none_or(|p| indent > p));
            if inside {
                self.i = content;
                if open.plain && self.flow == 0 && !blank {
                    // The plain scalar goes on: only a `: ` or a comment matters on it.
                    self.open_scalar = None;
                    self.scan(false, true);
                } else {
                    self.skip_to_line_end();
                }
                return;
            }
            self.open_scalar = None;
        }
        self.i = content;
        if self.flow > 0 {
            self.scan(false, false);
            return;
        }
        if blank {
            self.skip_to_line_end();
            return;
        }
        if marker {
            self.stack.clear();
            self.i = start + 3;
            self.scan(true, false);
            return;
        }
        let is_entry = first == b'-' && Self::blank(self.at(content + 1));
        while let Some(&(c, k)) = self.stack.last() {
            if c > indent || (c == indent && k == Block::Seq && !is_entry) {
                self.stack.pop();
            } else {
                break;
            }
        }
        self.scan(true, false);
    }

    /// Scans the rest of a line. `node_start`: a node may start here (line start, after
    /// `- `, `? `, `: `); `plain`: inside a plain scalar.
    fn scan(&mut self, node_start: bool, plain: bool) {
        let (mut node_start, mut plain) = (node_start, plain);
        let mut node_column = self.column();
        let mut token_start = true;
        let mut after_blank = true;
        loop {
            if self.too_deep {
                return;
            }
            let b = self.at(self.i);
            if b == b'\n' {
                if self.flow == 0 && plain {
                    self.open_scalar = Some(OpenScalar {
                        parent: self.top_column(),
                        plain: true,
                    });
                }
                return;
            }
            if matches!(b, b' ' | b'\t' | b'\r') {
                after_blank = true;
                self.i += 1;
                continue;
            }
            if b == b'#' && after_blank {
                self.skip_to_line_end();
                plain = false;
                continue;
            }
            after_blank = false;
            let next = self.at(self.i + 1);
            if self.flow > 0 {
                match b {
                    b'[' | b'{' => {
                        self.open_flow();
                        token_start = true;
                    }
                    b']' | b'}' => {
                        self.flow -= 1;
                        token_start = false;
                        node_start = false;
                        plain = false;
                    }
                    b',' => token_start = true,
                    b'"' | b'\'' if token_start => {
                        self.skip_quoted();
                        token_start = false;
                        continue;
                    }
                    b':' => {
                        token_start =
                            Self::blank(next) || matches!(next, b',' | b'[' | b']' | b'{' | b'}');
                    }
                    _ => token_start = false,
                }
                self.i += 1;
                continue;
            }
            if node_start {
                node_column = self.column();
                match b {
                    b'-' | b'?' | b':' if Self::blank(next) => {
                        let kind = if b == b'-' { Block::Seq } else { Block::Map };
                        self.push(node_column, kind);
                        self.i += 1;
                    }
                    b'&' | b'!' => {
                        while !Self::blank(self.at(self.i)) {
                            self.i += 1;
                        }
                    }
                    b'[' | b'{' => {
                        node_start = false;
                        self.open_flow();
                        token_start = true;
                        self.i += 1;
                    }
                    b'"' | b'\'' => {
                        node_start = false;
                        self.skip_quoted();
                    }
                    b'|' | b'>' => {
                        self.open_scalar = Some(OpenScalar {
                            parent: self.top_column(),
                            plain: false,
                        });
                        self.skip_to_line_end();
                        return;
                    }
                    _ => {
                        node_start = false;
                        plain = true;
                        self.i += 1;
                    }
                }
                continue;
            }
            if b == b':' && Self::blank(next) {
                self.push(node_column, Block::Map);
                node_start = true;
                plain = false;
            }
            self.i += 1;
        }
    }
}
