//! What the query methods of [`Store`](crate::Store) answer: token records due by time, a
//! page of instances with their token records, and the instance counts per status; and the
//! scans the trait's default methods run (correct, but one read per instance).

use crate::{Instance, InstanceStatus, Result, Store, Timestamp, TokenRecord};

/// A token record and the instance it belongs to, as [`Store::tokens_expiring_before`] and
/// [`Store::tokens_obtained_before`] list them.
///
/// [`Store::tokens_expiring_before`]: crate::Store::tokens_expiring_before
/// [`Store::tokens_obtained_before`]: crate::Store::tokens_obtained_before
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceToken {
    /// The instance's id.
    pub instance: String,
    /// Its token record, as stored.
    pub token: TokenRecord,
}

/// One instance of a page of [`Store::list_instances_page`], with its token record (if it
/// has one) read in the same query.
///
/// [`Store::list_instances_page`]: crate::Store::list_instances_page
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceWithToken {
    /// The instance.
    pub instance: Instance,
    /// Its token record, or `None`.
    pub token: Option<TokenRecord>,
}

/// Which instances [`Store::list_instances_page`] lists: every one (the default), or only
/// those with this status and/or of this integration.
///
/// [`Store::list_instances_page`]: crate::Store::list_instances_page
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstanceFilter {
    /// Only instances with this status.
    pub status: Option<InstanceStatus>,
    /// Only instances of the integration with this name.
    pub integration: Option<String>,
}

impl InstanceFilter {
    /// Every instance.
    pub fn all() -> Self {
        Self::default()
    }

    /// This filter, and only instances with `status`.
    #[must_use]
    pub fn with_status(self, status: InstanceStatus) -> Self {
        Self {
            status: Some(status),
            ..self
        }
    }

    /// This filter, and only instances of `integration`.
    #[must_use]
    pub fn with_integration(self, integration: impl Into<String>) -> Self {
        Self {
            integration: Some(integration.into()),
            ..self
        }
    }

    /// Whether `instance` passes.
    pub fn matches(&self, instance: &Instance) -> bool {
        self.status.is_none_or(|status| instance.status == status)
            && self
                .integration
                .as_deref()
                .is_none_or(|name| instance.integration == name)
    }
}

/// How many instances have each status ([`Store::count_instances_by_status`]).
///
/// [`Store::count_instances_by_status`]: crate::Store::count_instances_by_status
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstanceCounts {
    /// Configured, never authorized.
    pub new: u64,
    /// Holding a token.
    pub authorized: u64,
    /// Waiting for an admin to authorize again.
    pub needs_authorization: u64,
    /// Switched off.
    pub disabled: u64,
}

impl InstanceCounts {
    /// The count of `status`.
    pub fn get(&self, status: InstanceStatus) -> u64 {
        match status {
            InstanceStatus::New => self.new,
            InstanceStatus::Authorized => self.authorized,
            InstanceStatus::NeedsAuthorization => self.needs_authorization,
            InstanceStatus::Disabled => self.disabled,
        }
    }

    /// Adds `count` instances with `status`.
    pub fn add(&mut self, status: InstanceStatus, count: u64) {
        let slot = match status {
            InstanceStatus::New => &mut self.new,
            InstanceStatus::Authorized => &mut self.authorized,
            InstanceStatus::NeedsAuthorization => &mut self.needs_authorization,
            InstanceStatus::Disabled => &mut self.disabled,
        };
        *slot += count;
    }

    /// Every instance.
    pub fn total(&self) -> u64 {
        self.new + self.authorized + self.needs_authorization + self.disabled
    }
}

/// Whether `(at, instance)` comes after the cursor `after` in (time, instance id) order.
pub fn after_cursor(at: Timestamp, instance: &str, after: Option<(Timestamp, &str)>) -> bool {
    after.is_none_or(|(after_at, after_id)| (at, instance) > (after_at, after_id))
}

/// The token records with a key (`key(record)`, `None`: not listed) before `before`, after
/// the cursor, ordered by (key, instance id), at most `limit`: the filter and sort every
/// backend without an index runs (over `records`, which may come in any order).
pub fn select_due<'a>(
    records: impl IntoIterator<Item = (&'a str, &'a TokenRecord)>,
    key: impl Fn(&TokenRecord) -> Option<Timestamp>,
    before: Timestamp,
    after: Option<(Timestamp, &str)>,
    limit: usize,
) -> Vec<InstanceToken> {
    let mut due: Vec<(Timestamp, &str, &TokenRecord)> = records
        .into_iter()
        .filter_map(|(instance, token)| key(token).map(|at| (at, instance, token)))
        .filter(|&(at, instance, _)| at < before && after_cursor(at, instance, after))
        .collect();
    due.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    due.into_iter()
        .take(limit)
        .map(|(_, instance, token)| InstanceToken {
            instance: instance.to_string(),
            token: token.clone(),
        })
        .collect()
}

/// The default of the due queries: every instance listed and every token read.
pub(crate) async fn scan_due<S: Store + ?Sized>(
    store: &S,
    key: impl Fn(&TokenRecord) -> Option<Timestamp>,
    before: Timestamp,
    after: Option<(Timestamp, &str)>,
    limit: usize,
) -> Result<Vec<InstanceToken>> {
    let mut records = Vec::new();
    for instance in store.list_instances().await? {
        if let Some(token) = store.get_token(&instance.id).await? {
            records.push((instance.id, token));
        }
    }
    Ok(select_due(
        records.iter().map(|(id, token)| (id.as_str(), token)),
        key,
        before,
        after,
        limit,
    ))
}
