//! The JSON body of a delivery ([`Payload`]): one per engine event, the same (same `id`)
//! for every endpoint it goes to.
//!
//! ```json
//! {"id": "evt_...", "type": "refreshed", "created_at": "2026-12-01T22:40:00Z",
//!  "instance": "box-acme", "integration": "box", "data": {"expires_at": "...", "rotated": true}}
//! ```

use granary_flow::engine::Event;
use granary_store::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::views::format_rfc3339;

/// The event types an endpoint can receive, in the order they are listed.
pub const EVENT_TYPES: [&str; 5] = [
    "authorized",
    "refreshed",
    "refresh_failed",
    "needs_authorization",
    "disconnected",
];

/// The body of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// The event's id (`evt_` and 32 hex digits): the same for every endpoint.
    pub id: String,
    /// One of [`EVENT_TYPES`].
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the event happened, RFC 3339 in UTC.
    pub created_at: String,
    /// The instance it is about.
    pub instance: String,
    /// The instance's integration (`null` when the instance is gone).
    pub integration: Option<String>,
    /// What the type tells (see [`data`]).
    pub data: Value,
}

/// The type name of an event, `None` for an event webhooks do not carry.
pub fn event_type(event: &Event) -> Option<&'static str> {
    Some(match event {
        Event::Authorized { .. } => "authorized",
        Event::Refreshed { .. } => "refreshed",
        Event::RefreshFailed { .. } => "refresh_failed",
        Event::NeedsAuthorization { .. } => "needs_authorization",
        Event::Disconnected { .. } => "disconnected",
        _ => return None,
    })
}

/// The `data` of an event, by type:
/// - `authorized`: `{}`;
/// - `refreshed`: `expires_at` (RFC 3339 or `null`), `rotated` (a new refresh token came);
/// - `refresh_failed`: `message`, `transient` (a later try can succeed);
/// - `needs_authorization`: `reason`, and when a link was made `reconnect_url` and
///   `reconnect_expires_at`;
/// - `disconnected`: `revoked` (the provider confirmed the revocation).
pub fn data(event: &Event) -> Value {
    match event {
        Event::Refreshed {
            expires_at,
            rotated,
            ..
        } => json!({ "expires_at": expires_at.map(format_rfc3339), "rotated": rotated }),
        Event::RefreshFailed {
            message, transient, ..
        } => json!({ "message": message, "transient": transient }),
        Event::NeedsAuthorization {
            reason, reconnect, ..
        } => {
            let mut data = json!({ "reason": reason });
            if let (Some(link), Some(object)) = (reconnect, data.as_object_mut()) {
                object.insert("reconnect_url".into(), json!(link.url.as_str()));
                object.insert(
                    "reconnect_expires_at".into(),
                    json!(format_rfc3339(link.expires)),
                );
            }
            data
        }
        Event::Disconnected { revoked, .. } => json!({ "revoked": revoked }),
        _ => json!({}),
    }
}

impl Payload {
    /// The payload of `event` (of type `event_type`) that happened at `now`.
    pub fn new(
        id: String,
        event: &Event,
        event_type: &str,
        now: Timestamp,
        integration: Option<String>,
    ) -> Self {
        Self {
            id,
            event_type: event_type.to_string(),
            created_at: format_rfc3339(now),
            instance: event.instance().to_string(),
            integration,
            data: data(event),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_type_carries_its_data() {
        let at = Timestamp::from_unix_millis(1_700_000_000_000);
        let refreshed = Event::Refreshed {
            instance: "i".into(),
            expires_at: Some(at),
            rotated: true,
        };
        let payload = Payload::new(
            "evt_1".into(),
            &refreshed,
            "refreshed",
            at,
            Some("box".into()),
        );
        let json = serde_json::to_value(&payload).expect("serializes");
        assert_eq!(
            json,
            json!({"id": "evt_1", "type": "refreshed", "created_at": "2023-11-14T22:13:20Z",
                   "instance": "i", "integration": "box",
                   "data": {"expires_at": "2023-11-14T22:13:20Z", "rotated": true}})
        );
        let link = granary_flow::engine::ReconnectLinkCreated {
            url: url::Url::parse("https://g.example/reconnect/x").expect("a URL"),
            expires: at,
        };
        let needs_with = |reconnect| Event::NeedsAuthorization {
            instance: "i".into(),
            reason: "invalid_grant".into(),
            reconnect,
        };
        assert_eq!(
            data(&needs_with(Some(link))),
            json!({"reason": "invalid_grant", "reconnect_url": "https://g.example/reconnect/x",
                   "reconnect_expires_at": "2023-11-14T22:13:20Z"})
        );
        let needs = needs_with(None);
        assert_eq!(data(&needs), json!({"reason": "invalid_grant"}));
        for (event, name) in [
            (
                Event::Authorized {
                    instance: "i".into(),
                },
                "authorized",
            ),
            (refreshed, "refreshed"),
            (
                Event::RefreshFailed {
                    instance: "i".into(),
                    message: "m".into(),
                    transient: true,
                },
                "refresh_failed",
            ),
            (needs, "needs_authorization"),
            (
                Event::Disconnected {
                    instance: "i".into(),
                    revoked: false,
                },
                "disconnected",
            ),
        ] {
            assert_eq!(event_type(&event), Some(name));
            assert!(EVENT_TYPES.contains(&name));
        }
    }
}
