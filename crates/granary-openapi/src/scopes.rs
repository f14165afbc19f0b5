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
/// `accounts offline_access` that lists two scopes). The words of the input are therefore
/// split into declared names, single words or multi-word names (whitespace runs count as
/// one space), choosing the split that leaves the fewest unknown words and, among those,
/// the one that takes the longest names first. Either way the scope parameter sent to the
/// provider is the same, since OAuth joins scopes with spaces. A declared name made of
/// whitespace only (` `) can never be typed and never matches.
pub fn check_scopes(flow: &Flow, input: &str) -> ScopeCheck {
    let words: Vec<&str> = input.split_whitespace().collect();
    let multi: Vec<(Vec<&str>, &String)> = flow
        .scopes
        .keys()
        .map(|name| (name.split_whitespace().collect::<Vec<_>>(), name))
        .filter(|(parts, _)| parts.len() > 1)
        .collect();
    let plan = segment(flow, &words, &multi);
    let mut check = ScopeCheck::default();
    let mut i = 0;
    while let Some(step) = plan.get(i) {
        match step {
            Step::Name(name, len) => {
                push_known(&mut check, name);
                i += len;
            }
            Step::Unknown(word) => {
                if !check.unknown.iter().any(|u| u.name == *word) {
                    check.unknown.push(UnknownScope {
                        name: (*word).to_owned(),
                        suggestion: suggest(flow, word),
                    });
                }
                i += 1;
            }
        }
    }
    check
}

/// What the words from one position on are read as.
#[derive(Clone, Copy)]
enum Step<'a> {
    /// A declared name spelled by this many words.
    Name(&'a str, usize),
    /// A word that is no declared name.
    Unknown(&'a str),
}

/// For each position, the step of the best split of the words from there: fewest unknown
/// words, then the longest name first (dynamic programming from the end).
fn segment<'a>(
    flow: &'a Flow,
    words: &[&'a str],
    multi: &[(Vec<&str>, &'a String)],
) -> Vec<Step<'a>> {
    let n = words.len();
    let mut cost = vec![0usize; n + 1];
    let mut steps: Vec<Option<Step<'a>>> = vec![None; n];
    for i in (0..n).rev() {
        let word = words.get(i).copied().unwrap_or_default();
        let after = cost.get(i + 1).copied().unwrap_or(0);
        let (mut best_cost, mut best) = match single_word(flow, word) {
            Some(name) => (after, Step::Name(name, 1)),
            None => (after + 1, Step::Unknown(word)),
        };
        let mut best_len = 1;
        let rest = words.get(i..).unwrap_or_default();
        for (parts, name) in multi {
            if !rest.starts_with(parts) {
                continue;
            }
            let c = cost.get(i + parts.len()).copied().unwrap_or(0);
            if c < best_cost || (c == best_cost && parts.len() > best_len) {
                best_cost = c;
                best = Step::Name(name, parts.len());
                best_len = parts.len();
            }
        }
        if let Some(slot) = cost.get_mut(i) {
            *slot = best_cost;
        }
        if let Some(slot) = steps.get_mut(i) {
            *slot = Some(best);
        }
    }
    // Every position was filled above; the fallback only keeps this free of `unwrap`.
    steps
        .into_iter()
        .map(|step| step.unwrap_or(Step::Unknown("")))
        .collect()
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
