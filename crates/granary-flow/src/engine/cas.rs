//! The one compare-and-swap retry rule: read, decide, write with a version check, and when
//! another writer won the race, read and decide again, a bounded number of times.

use granary_store::Instance;

use super::{Engine, EngineResult};

/// How many times a compare-and-swap step is tried before it gives up.
pub(crate) const CAS_ATTEMPTS: usize = 8;

/// `retry_on_conflict!(what, { attempt })`: runs the async block `attempt` (its `?` and
/// `return` end the attempt) until it ends other than by losing a version compare-and-swap
/// (the store's `Conflict`), at most [`CAS_ATTEMPTS`] times; then
/// [`EngineError::Contention`](super::EngineError::Contention) with the message `what`.
///
/// A macro rather than a function taking an async closure: the attempt's future is then part
/// of the caller's, which keeps it `Send` for the engine's spawned tasks.
macro_rules! retry_on_conflict {
    ($what:expr, $attempt:block) => {{
        let mut outcome = None;
        for _ in 0..$crate::engine::cas::CAS_ATTEMPTS {
            let attempt: $crate::engine::EngineResult<_> = async { $attempt }.await;
            match attempt {
                Err($crate::engine::EngineError::Store(granary_store::Error::Conflict {
                    ..
                })) => continue,
                other => {
                    outcome = Some(other);
                    break;
                }
            }
        }
        outcome.unwrap_or_else(|| Err($crate::engine::EngineError::Contention { what: $what }))
    }};
}
pub(crate) use retry_on_conflict;

impl Engine {
    /// Reads instance `id`, lets `change` change it (`Ok(false)`: nothing to write), and
    /// writes it with a version compare-and-swap, again from a fresh read when another
    /// writer raced. Returns the instance as written (or as read, when unchanged) and
    /// whether it was written; `updated` is set on a write.
    pub(crate) async fn change_instance(
        &self,
        id: &str,
        doing: &str,
        mut change: impl FnMut(&mut Instance) -> EngineResult<bool> + Send,
    ) -> EngineResult<(Instance, bool)> {
        retry_on_conflict!(format!("instance `{id}` kept changing while {doing}"), {
            let mut instance = self.instance(id).await?;
            if !change(&mut instance)? {
                return Ok((instance, false));
            }
            instance.updated = self.now();
            instance.version = self.inner.store.update_instance(&instance).await?;
            Ok((instance, true))
        })
    }
}
