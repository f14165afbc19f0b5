//! Listing instances a page at a time (one store query per page, each instance with its
//! token summary), and the counts per status (one aggregate query): what the admin page,
//! the REST API and the CLI show, at a cost that follows the page, not the instances kept.

use granary_store::{InstanceCounts, InstanceFilter};

use super::{Engine, EngineError, EngineResult, InstanceReport, TokenSummary, is_valid_id};

/// The most instances one page holds ([`Engine::list_instances_page`]).
pub const MAX_PAGE_SIZE: usize = 1_000;

/// The page size when a caller names none.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// One page of instances (see [`Engine::list_instances_page`]).
#[derive(Debug, Clone)]
pub struct InstancePage {
    /// The instances of the page, by id, each with its token summary.
    pub instances: Vec<InstanceReport>,
    /// The cursor of the next page (the id of this page's last instance), or `None` when
    /// this page is the last.
    pub next: Option<String>,
}

impl Engine {
    /// The instances passing `filter` with an id above `after` (`None`: from the first),
    /// by id, at most `limit` (1 to [`MAX_PAGE_SIZE`]), each with its token summary, read in
    /// one store query; `next` says where the following page starts. Following `next` until
    /// it is `None` lists every instance exactly once.
    ///
    /// Fails with `Invalid` when `limit` is 0 or above [`MAX_PAGE_SIZE`], or `after` is not
    /// an instance id.
    pub async fn list_instances_page(
        &self,
        after: Option<&str>,
        limit: usize,
        filter: &InstanceFilter,
    ) -> EngineResult<InstancePage> {
        check_page(after, limit)?;
        // One more than asked: whether it comes back says whether a next page exists.
        let mut rows = self
            .inner
            .store
            .list_instances_page(after, limit + 1, filter)
            .await?;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|row| row.instance.id.clone())
        } else {
            None
        };
        let mut instances = Vec::with_capacity(rows.len());
        for row in rows {
            let mut token = row.token.as_ref().map(TokenSummary::from);
            if let Some(summary) = token.as_mut().filter(|t| !t.has_refresh_token) {
                summary.no_refresh_token = Some(self.no_refresh_token_cause(&row.instance).await);
            }
            instances.push(InstanceReport {
                instance: row.instance,
                token,
            });
        }
        Ok(InstancePage { instances, next })
    }

    /// How many instances have each status, from one aggregate store query.
    pub async fn count_instances_by_status(&self) -> EngineResult<InstanceCounts> {
        Ok(self.inner.store.count_instances_by_status().await?)
    }
}

/// The rule of a page request: `limit` 1 to [`MAX_PAGE_SIZE`], `after` an instance id.
pub fn check_page(after: Option<&str>, limit: usize) -> EngineResult<()> {
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(EngineError::Invalid(format!(
            "the page size (limit) must be 1 to {MAX_PAGE_SIZE}, not {limit}: ask for at most \
             {MAX_PAGE_SIZE} instances and follow `next` for the rest"
        )));
    }
    if let Some(after) = after.filter(|after| !is_valid_id(after)) {
        return Err(EngineError::Invalid(format!(
            "the cursor (after) `{after}` is no instance id: pass the `next` of the previous \
             page, or leave it out for the first page"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_asks_for_1_to_1000_instances_after_an_id() {
        assert!(check_page(None, 1).is_ok());
        assert!(check_page(Some("inst-1"), MAX_PAGE_SIZE).is_ok());
        let zero = check_page(None, 0).unwrap_err().to_string();
        assert!(zero.contains("1 to 1000, not 0"), "{zero}");
        let big = check_page(None, MAX_PAGE_SIZE + 1).unwrap_err().to_string();
        assert!(big.contains("follow `next`"), "{big}");
        let cursor = check_page(Some("not an id"), 10).unwrap_err().to_string();
        assert!(
            cursor.contains("pass the `next` of the previous page"),
            "{cursor}"
        );
    }
}
