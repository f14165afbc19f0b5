//! The enqueuer: a task subscribed to the engine's events that turns each one into one
//! delivery per enabled endpoint subscribed to its type (one payload, one event id, a
//! delivery id per endpoint), stored in one `enqueue_deliveries` call, then wakes the local
//! worker. Each process enqueues the events it emitted itself (the engine emits an event in
//! the process that made the change), so no event is enqueued twice across nodes.

use std::sync::Arc;

use granary_flow::engine::{Engine, Event};
use granary_store::{DeliveryState, WebhookDelivery};
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};
use tokio::sync::{Notify, watch};

use super::endpoints::random_id;
use super::payload::{Payload, event_type};

/// Runs until `stop` turns true or the engine's event channel closes.
pub(super) async fn run(
    engine: Engine,
    mut events: broadcast::Receiver<Event>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let received = tokio::select! {
            received = events.recv() => Some(received),
            _ = stop.wait_for(|stop| *stop) => None,
        };
        let Some(event) = received else {
            drain(&engine, &mut events).await;
            return;
        };
        match event {
            Ok(event) => match enqueue(&engine, &event).await {
                Ok(0) => {}
                Ok(_) => wake.notify_one(),
                Err(error) => tracing::error!(
                    %error,
                    instance = event.instance(),
                    ?event,
                    "the webhook deliveries of an event could not be stored: they are lost"
                ),
            },
            Err(RecvError::Lagged(missed)) => tracing::warn!(
                missed,
                "the webhook enqueuer fell behind the engine's events: {missed} events were \
                 missed and get no webhook delivery"
            ),
            Err(RecvError::Closed) => return,
        }
    }
}

/// At shutdown: stores the deliveries of the events already emitted (the worker of the next
/// start, or another node, sends them).
async fn drain(engine: &Engine, events: &mut broadcast::Receiver<Event>) {
    loop {
        match events.try_recv() {
            Ok(event) => {
                if let Err(error) = enqueue(engine, &event).await {
                    tracing::error!(%error, instance = event.instance(), ?event, "the webhook deliveries of an event could not be stored: they are lost");
                }
            }
            Err(TryRecvError::Lagged(missed)) => tracing::warn!(
                missed,
                "the webhook enqueuer fell behind the engine's events: {missed} events were \
                 missed and get no webhook delivery"
            ),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return,
        }
    }
}

/// Stores the deliveries of `event`; returns how many.
///
/// # Errors
/// A store failure (listing the endpoints, storing the deliveries).
pub async fn enqueue(engine: &Engine, event: &Event) -> Result<usize, granary_store::Error> {
    let Some(kind) = event_type(event) else {
        return Ok(0);
    };
    let endpoints: Vec<_> = engine
        .store()
        .list_webhook_endpoints()
        .await?
        .into_iter()
        .filter(|e| e.enabled && e.events.iter().any(|t| t == kind))
        .collect();
    if endpoints.is_empty() {
        return Ok(0);
    }
    let now = engine.now();
    let integration = match engine.store().get_instance(event.instance()).await {
        Ok(found) => found.map(|instance| instance.integration),
        Err(error) => {
            tracing::warn!(%error, "the instance of an event could not be read for its webhook");
            None
        }
    };
    let payload = Payload::new(random_id("evt_", 16), event, kind, now, integration);
    let body = serde_json::to_string(&payload)
        .map_err(|e| granary_store::Error::undecodable("a webhook payload", e.to_string()))?;
    let deliveries: Vec<WebhookDelivery> = endpoints
        .iter()
        .map(|endpoint| WebhookDelivery {
            id: random_id("dlv_", 16),
            endpoint: endpoint.id.clone(),
            event_type: kind.to_string(),
            payload: body.clone(),
            created: now,
            state: DeliveryState::Pending,
            attempts: Vec::new(),
            next_attempt: now,
            claimed_by: None,
            claimed_until: None,
        })
        .collect();
    engine.store().enqueue_deliveries(&deliveries).await?;
    tracing::debug!(event = %payload.id, kind, deliveries = deliveries.len(), "webhook deliveries enqueued");
    Ok(deliveries.len())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use granary_flow::engine::{Keyring, MasterKey};
    use granary_store::{MemoryStore, Store as _};

    use super::*;
    use crate::webhooks::endpoints;

    #[tokio::test]
    async fn at_shutdown_the_events_already_emitted_become_deliveries() {
        let store = Arc::new(MemoryStore::new());
        let engine = Engine::builder(
            store.clone(),
            Keyring::new(MasterKey::generate().0, Vec::new()),
            url::Url::parse("http://127.0.0.1:1").expect("a URL"),
        )
        .build()
        .expect("an engine");
        let created = endpoints::create(&engine, false, "https://h.example/", &["disconnected"])
            .await
            .expect("created");
        let (sender, mut events) = broadcast::channel(4);
        for n in 0..2 {
            sender
                .send(Event::Disconnected {
                    instance: format!("i{n}"),
                    revoked: false,
                })
                .expect("sent");
        }
        drain(&engine, &mut events).await;
        let log = store
            .list_deliveries(&created.endpoint.id, 10)
            .await
            .expect("listed");
        assert_eq!(log.len(), 2, "{log:?}");
        assert!(log.iter().all(|d| d.state == DeliveryState::Pending));
    }
}
