//! The suite must fail a store that breaks a contract, naming that contract: each broken
//! store below is a MemoryStore with one bug.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use granary_store::{
    Capabilities, Instance, Integration, Lease, MemoryStore, PendingAuthorization, Result, Store,
    Timestamp, TokenRecord,
};
use granary_store_testkit::{Backend, Options, Outcome, run_all};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Bug {
    None,
    TakeKeepsPending,
    TakeReturnsExpired,
    TakeNotAtomic,
    TokenIgnoresVersion,
    LeaseNeverExpires,
    ReleaseByAnyone,
    DeleteDoesNothing,
    TokenDeleteIgnoresVersion,
}

struct Broken {
    inner: MemoryStore,
    bug: Bug,
}

#[async_trait]
impl Store for Broken {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn put_integration(&self, integration: &Integration) -> Result<()> {
        self.inner.put_integration(integration).await
    }
    async fn get_integration(&self, name: &str) -> Result<Option<Integration>> {
        self.inner.get_integration(name).await
    }
    async fn list_integrations(&self) -> Result<Vec<Integration>> {
        self.inner.list_integrations().await
    }
    async fn delete_integration(&self, name: &str) -> Result<bool> {
        self.inner.delete_integration(name).await
    }
    async fn create_instance(&self, instance: &Instance) -> Result<u64> {
        self.inner.create_instance(instance).await
    }
    async fn get_instance(&self, id: &str) -> Result<Option<Instance>> {
        self.inner.get_instance(id).await
    }
    async fn list_instances(&self) -> Result<Vec<Instance>> {
        self.inner.list_instances().await
    }
    async fn update_instance(&self, instance: &Instance) -> Result<u64> {
        self.inner.update_instance(instance).await
    }
    async fn delete_instance(&self, id: &str) -> Result<bool> {
        if self.bug == Bug::DeleteDoesNothing {
            return Ok(self.inner.get_instance(id).await?.is_some());
        }
        self.inner.delete_instance(id).await
    }
    async fn put_pending(&self, pending: &PendingAuthorization) -> Result<()> {
        self.inner.put_pending(pending).await
    }
    async fn take_pending(
        &self,
        state: &str,
        now: Timestamp,
    ) -> Result<Option<PendingAuthorization>> {
        match self.bug {
            Bug::TakeReturnsExpired => self.inner.take_pending(state, Timestamp::EPOCH).await,
            Bug::TakeKeepsPending => {
                let taken = self.inner.take_pending(state, now).await?;
                if let Some(pending) = &taken {
                    self.inner.put_pending(pending).await?;
                }
                Ok(taken)
            }
            Bug::TakeNotAtomic => {
                // Read, let others run, then remove: a check-then-act race.
                let taken = self.inner.take_pending(state, now).await?;
                if let Some(pending) = &taken {
                    self.inner.put_pending(pending).await?;
                    tokio::task::yield_now().await;
                    self.inner.take_pending(state, now).await?;
                }
                Ok(taken)
            }
            _ => self.inner.take_pending(state, now).await,
        }
    }
    async fn purge_expired_pendings(&self, now: Timestamp) -> Result<u64> {
        self.inner.purge_expired_pendings(now).await
    }
    async fn get_token(&self, instance: &str) -> Result<Option<TokenRecord>> {
        self.inner.get_token(instance).await
    }
    async fn put_token(
        &self,
        instance: &str,
        token: &TokenRecord,
        expected: Option<u64>,
    ) -> Result<u64> {
        if self.bug == Bug::TokenIgnoresVersion {
            let current = self.inner.get_token(instance).await?.map(|t| t.version);
            return self.inner.put_token(instance, token, current).await;
        }
        self.inner.put_token(instance, token, expected).await
    }
    async fn delete_token(&self, instance: &str, expected: Option<u64>) -> Result<bool> {
        if self.bug == Bug::TokenDeleteIgnoresVersion {
            return self.inner.delete_token(instance, None).await;
        }
        self.inner.delete_token(instance, expected).await
    }
    async fn try_acquire_lease(
        &self,
        instance: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool> {
        if self.bug == Bug::LeaseNeverExpires {
            if let Some(lease) = self.inner.get_lease(instance).await? {
                if lease.holder != holder {
                    return Ok(false);
                }
            }
        }
        self.inner
            .try_acquire_lease(instance, holder, now, ttl)
            .await
    }
    async fn release_lease(&self, instance: &str, holder: &str) -> Result<bool> {
        if self.bug == Bug::ReleaseByAnyone {
            if let Some(lease) = self.inner.get_lease(instance).await? {
                return self.inner.release_lease(instance, &lease.holder).await;
            }
        }
        self.inner.release_lease(instance, holder).await
    }
    async fn get_lease(&self, instance: &str) -> Result<Option<Lease>> {
        self.inner.get_lease(instance).await
    }
}

struct BrokenBackend(Bug);

#[async_trait]
impl Backend for BrokenBackend {
    fn name(&self) -> &str {
        "broken"
    }
    async fn open(&self, _dir: &Path) -> Result<Arc<dyn Store>> {
        Ok(Arc::new(Broken {
            inner: MemoryStore::new(),
            bug: self.0,
        }))
    }
}

/// Runs `check` on a store with `bug`; returns the broken contract, if any.
async fn broken_contract(bug: Bug, check: &str) -> Option<String> {
    let mut options = Options::default();
    options.filters = vec![check.to_string()];
    let report = run_all(&BrokenBackend(bug), &options).await;
    let result = report
        .results
        .iter()
        .find(|r| r.check == check)
        .expect("the check ran");
    match &result.outcome {
        Outcome::Passed => None,
        Outcome::Failed(violation) => Some(violation.contract.to_string()),
        Outcome::Skipped(why) => panic!("{check} skipped: {why}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bug_fails_the_check_of_its_contract() {
    let cases = [
        (Bug::TakeKeepsPending, "pending_take_once", "exactly once"),
        (
            Bug::TakeReturnsExpired,
            "pending_expiry",
            "never returns an expired",
        ),
        (
            Bug::TakeNotAtomic,
            "pending_take_concurrent",
            "exactly one gets",
        ),
        (
            Bug::TokenIgnoresVersion,
            "token_cas",
            "never overwrites a newer token",
        ),
        (
            Bug::TokenIgnoresVersion,
            "token_cas_concurrent",
            "exactly one wins",
        ),
        (
            Bug::LeaseNeverExpires,
            "lease_expiry_takeover",
            "takes over an expired lease",
        ),
        (
            Bug::ReleaseByAnyone,
            "lease_release_and_renew",
            "only the holder",
        ),
        (
            Bug::DeleteDoesNothing,
            "instance_list_and_delete",
            "also removes",
        ),
        (
            Bug::TokenDeleteIgnoresVersion,
            "token_delete_is_compare_and_swap",
            "never removes a newer token",
        ),
    ];
    for (bug, check, contract) in cases {
        assert_eq!(
            broken_contract(Bug::None, check).await,
            None,
            "{check} fails a correct store"
        );
        let broken = broken_contract(bug, check).await;
        assert!(
            broken.as_deref().is_some_and(|c| c.contains(contract)),
            "{bug:?}: {check} should break \"{contract}\", got {broken:?}"
        );
    }
}

#[tokio::test]
async fn a_full_run_on_a_correct_store_passes_and_skips_what_it_does_not_claim() {
    let report = run_all(&BrokenBackend(Bug::None), &Options::default()).await;
    assert_eq!(report.failed(), 0, "{:?}", report.results);
    assert_eq!(report.results.len(), granary_store_testkit::CHECKS.len());
    assert_eq!(
        report.skipped(),
        4,
        "durable and shared checks skip for a memory store"
    );
    assert!(
        report
            .lines()
            .iter()
            .all(|l| l.starts_with("granary-store-conformance\tbroken\t"))
    );
}
