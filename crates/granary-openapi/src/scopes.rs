//! Checking the scopes an admin types against the scopes a flow declares.

use serde::{Deserialize, Serialize};

use crate::Flow;

/// The result of [`check_scopes`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ScopeCheck {
    /// The scopes the flow declares, as the flow names them, in input order, without repeats.
    pub known: Vec<String>,
    /// The scopes the flow does not declare, in input order, without repeats.
    pub unknown: Vec<UnknownScope>,
}

impl ScopeCheck {
    /// Whether every scope is known.
    pub fn is_ok(&self) -> bool {
        self.unknown.is_empty()
    }
}

/// A scope the flow does not declare, with the nearest name it does declare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownScope {
    /// The scope as typed.
    pub name: String,
    /// A declared scope close enough to be a likely typo (case, or at most a third of the
    /// characters edited).
    pub suggestion: Option<String>,
}

/// Splits `input` (scopes separated by whitespace, as an admin types them) into the scopes
/// `flow` declares and those it does not, suggesting the nearest declared name for each
/// unknown one.
///
/// Scope names with whitespace exist in real documents (`read:LH Open API`, or a key like
/// `accounts offline_access` that lists two scopes). At each position the longest declared
/// multi-word name that the next words spell is taken first (words compared exactly,
/// whitespace runs counting as one space); otherwise a single word is looked up. Either way
/// the scope parameter sent to the provider is the same, since OAuth joins scopes with
/// spaces. A declared name made of whitespace only (` `) can never be typed and never matches.
pub fn check_scopes(flow: &Flow, input: &str) -> ScopeCheck {
    let words: Vec<&str> = input.split_whitespace().collect();
    let multi: Vec<(Vec<&str>, &String)> = flow
        .scopes
        .keys()
        .map(|name| (name.split_whitespace().collect::<Vec<_>>(), name))
        .filter(|(parts, _)| parts.len() > 1)
        .collect();
    let mut check = ScopeCheck::default();
    let mut i = 0;
    while let Some(rest) = words.get(i..).filter(|r| !r.is_empty()) {
        let longest = multi
            .iter()
            .filter(|(parts, _)| rest.starts_with(parts))
            .max_by_key(|(parts, _)| parts.len());
        if let Some((parts, name)) = longest {
            push_known(&mut check, name);
            i += parts.len();
            continue;
        }
        let word = rest.first().copied().unwrap_or_default();
        i += 1;
        if let Some(name) = single_word(flow, word) {
            push_known(&mut check, name);
        } else if !check.unknown.iter().any(|u| u.name == word) {
            check.unknown.push(UnknownScope {
                name: word.to_owned(),
                suggestion: suggest(flow, word),
            });
        }
    }
    check
}

fn push_known(check: &mut ScopeCheck, name: &str) {
    if !check.known.iter().any(|k| k == name) {
        check.known.push(name.to_owned());
    }
}

/// The declared name `word` stands for: the exact key, or a key that is `word` with
/// surrounding whitespace.
fn single_word<'f>(flow: &'f Flow, word: &str) -> Option<&'f String> {
    if let Some((name, _)) = flow.scopes.get_key_value(word) {
        return Some(name);
    }
    flow.scopes.keys().find(|name| name.trim() == word)
}

/// The declared name nearest to `word`, when it is near enough to be a typo.
fn suggest(flow: &Flow, word: &str) -> Option<String> {
    let lower = word.to_lowercase();
    let mut best: Option<(usize, &String)> = None;
    for name in flow.scopes.keys() {
        let candidate = name.trim();
        if candidate.is_empty() {
            continue;
        }
        let candidate_lower = candidate.to_lowercase();
        let distance = strsim::damerau_levenshtein(&lower, &candidate_lower);
        let longest = lower.chars().count().max(candidate_lower.chars().count());
        let limit = (longest / 3).max(1);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, name));
        }
    }
    best.map(|(_, name)| name.clone())
}
