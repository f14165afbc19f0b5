//! Disconnect: an instance forgets its tokens (revoked at the provider where it can be) and
//! stays configured, ready to be authorized again.

use granary_store::{Instance, InstanceStatus};

use super::cas::retry_on_conflict;
use super::{Engine, EngineResult, Event};

/// What the revocation and deletion of the token record did.
pub(super) struct Forgotten {
    pub(super) revoked: bool,
    pub(super) revocation_note: Option<String>,
    pub(super) token_deleted: bool,
}

/// What [`Engine::disconnect`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisconnectReport {
    /// Whether the provider confirmed the revocation of the tokens.
    pub revoked: bool,
    /// Why revocation failed or was skipped, if it was (the instance is disconnected anyway).
    pub revocation_note: Option<String>,
    /// Whether a token record was stored and is now deleted.
    pub token_deleted: bool,
    /// The status of the instance now: `New`, or `Disabled` when it was disabled (a
    /// disconnect does not switch an instance back on).
    pub status: InstanceStatus,
}

impl Engine {
    /// Disconnects instance `id`: revokes its refresh and access tokens at the provider
    /// where the integration knows a revocation endpoint (a failed revocation is reported in
    /// the result, not an error), deletes its token record, sets its status to `New` (a
    /// disabled instance stays disabled), drops its in-memory token and single-flight state
    /// so that [`Engine::access_token`] answers "not authorized" at once, and emits
    /// [`Event::Disconnected`]. The instance keeps its configuration; a new authorization
    /// connects it again.
    ///
    /// The store writes are ordered so that a crash at any point leaves a usable instance:
    ///
    /// 1. The status first. From then on no process hands the stored token out (a token is
    ///    read only for an `Authorized` instance), and this process's cached copy is dropped
    ///    right after.
    /// 2. The revocation, while the token record is still stored: a crash before it leaves
    ///    the record in place, so running Disconnect again revokes it. Deleting the record
    ///    first would lose tokens that the provider still honours.
    /// 3. The token record last. A crash before this leaves a `New` instance with a stale
    ///    record, which is never handed out, which the next authorization overwrites (its
    ///    write compares against whatever version is stored) and which the next Disconnect
    ///    or Delete removes. The reverse order would leave an `Authorized` instance without
    ///    a token. The deletion compares against the version of the record that was
    ///    revoked: when a refresh in another process wrote a newer record in between, the
    ///    deletion fails with a conflict, and the newer record is read, revoked and deleted
    ///    in turn (a bounded number of times), so no token is deleted without having been
    ///    revoked first.
    ///
    /// In this process the single-flight lock of the instance is held throughout, so that a
    /// refresh that is running finishes first and its new token is the one revoked.
    ///
    /// # Errors
    /// [`EngineError::NotFound`](super::EngineError::NotFound) when the instance does not
    /// exist; a store error (the steps done so far leave a usable instance, see above: run
    /// Disconnect again).
    pub async fn disconnect(&self, id: &str) -> EngineResult<DisconnectReport> {
        let flight = self.flight(id);
        let mut state = flight.lock.lock().await;

        let (instance, status) = self.mark_disconnected(id).await?;
        self.forget(id);

        let Forgotten {
            revoked,
            revocation_note,
            token_deleted,
        } = self.revoke_and_delete_tokens(&instance).await?;
        if let Some(note) = &revocation_note {
            tracing::warn!(instance = id, note = %note, "tokens not revoked at the provider on disconnect");
        }

        // Nothing of the old connection stays in memory: no token, no remembered failure.
        *state = Default::default();
        self.forget(id);
        drop(state);

        self.emit(Event::Disconnected {
            instance: id.to_string(),
            revoked,
        });
        Ok(DisconnectReport {
            revoked,
            revocation_note,
            token_deleted,
            status,
        })
    }

    /// Revokes the stored token record of `instance` at the provider (where it can), then
    /// deletes it if it is still the version that was revoked. On a conflict a newer record
    /// was written meanwhile (a refresh in another process): it is read, revoked and deleted
    /// in turn, at most [`super::cas::CAS_ATTEMPTS`] times. `revoked` is true only when every record
    /// read was revoked; the note is the first reason one was not.
    pub(super) async fn revoke_and_delete_tokens(
        &self,
        instance: &Instance,
    ) -> EngineResult<Forgotten> {
        let id = instance.id.as_str();
        let config = self.revocation_config(instance).await;
        let mut note = config.as_ref().err().cloned();
        let mut revoked_any = false;
        retry_on_conflict!(
            format!("the tokens of instance `{id}` kept changing while it was disconnected"),
            {
                let Some(record) = self.inner.store.get_token(id).await? else {
                    if !revoked_any && note.is_none() {
                        note = Some("the instance held no token".into());
                    }
                    return Ok(Forgotten {
                        revoked: revoked_any && note.is_none(),
                        revocation_note: note.clone(),
                        token_deleted: false,
                    });
                };
                if let Ok(config) = &config {
                    match self.revoke_record(instance, config, &record).await {
                        Ok(()) => revoked_any = true,
                        Err(why) => {
                            note.get_or_insert(why);
                        }
                    }
                }
                let deleted = self
                    .inner
                    .store
                    .delete_token(id, Some(record.version))
                    .await;
                if let Err(granary_store::Error::Conflict { .. }) = &deleted {
                    tracing::info!(
                        instance = id,
                        "a newer token was stored during the disconnect: revoking it too"
                    );
                }
                Ok(Forgotten {
                    revoked: revoked_any && note.is_none(),
                    revocation_note: note.clone(),
                    token_deleted: deleted?,
                })
            }
        )
    }

    /// Sets the status of `id` to `New` (keeps `Disabled`) with a version compare-and-swap,
    /// re-reading on a conflict. Returns the instance as it was read and the status written.
    async fn mark_disconnected(&self, id: &str) -> EngineResult<(Instance, InstanceStatus)> {
        let (instance, _) = self
            .change_instance(id, "it was disconnected", |instance| {
                let status = match instance.status {
                    InstanceStatus::Disabled => InstanceStatus::Disabled,
                    _ => InstanceStatus::New,
                };
                let changes = instance.status != status;
                instance.status = status;
                Ok(changes)
            })
            .await?;
        let status = instance.status;
        Ok((instance, status))
    }
}
