//! The lifetime of a token whose expiry the provider did not state (item 2 of issue 17):
//! the instance's, else the integration's, else the engine's default, else none (used until
//! refused). Each level is proven to win over the next, on token reads and in the
//! background refresher.

use std::time::Duration;

use granary_flow::engine::{Engine, InstanceUpdate, IntegrationFlows, RefresherConfig};
use wiremock::ResponseTemplate;

mod support;

use support::{World, token_json};

const INSTANCE: u64 = 100;
const INTEGRATION: u64 = 1_000;
const DEFAULT: u64 = 10_000;
/// Ages (seconds since the token was obtained) at which the token is read.
const PROBES: [u64; 5] = [50, 150, 1_050, 10_050, 100 * 24 * 3_600];

/// A world whose token has no expiry and a refresh token, with the lifetimes given set at
/// each level; the engine reads it.
async fn world_with(
    instance: Option<u64>,
    integration: Option<u64>,
    default: Option<u64>,
) -> (World, Engine) {
    let world = World::new().await;
    let engine = world.engine("p1", |b| {
        b.default_token_lifetime(default.map(Duration::from_secs))
    });
    engine
        .set_integration_token_lifetime("stub", integration.map(Duration::from_secs))
        .await
        .unwrap();
    let update = InstanceUpdate {
        token_lifetime: Some(instance.map(Duration::from_secs)),
        ..InstanceUpdate::default()
    };
    engine.update_instance("inst", update).await.unwrap();
    world
        .authorize(&engine, "access-1", Some("refresh-1"), None)
        .await;
    world
        .on_refresh(ResponseTemplate::new(200).set_body_json(token_json("access-2", None, None)))
        .await;
    (world, engine)
}

/// The first probe age at which a token read refreshed; `None`: never.
async fn first_refresh_on_read(world: &World, engine: &Engine) -> Option<u64> {
    let mut age = 0;
    for probe in PROBES {
        world.advance(Duration::from_secs(probe - age));
        age = probe;
        let token = engine.access_token("inst").await.unwrap();
        if world.refreshes().await > 0 {
            assert_eq!(token.secret(), "access-2");
            return Some(probe);
        }
        assert_eq!(token.secret(), "access-1");
    }
    None
}

/// The first probe age at which a background refresher round refreshed; `None`: never.
async fn first_refresh_in_background(world: &World, engine: &Engine) -> Option<u64> {
    let config = RefresherConfig {
        jitter: Duration::ZERO,
        ..RefresherConfig::default()
    };
    // A round looks ahead by its interval: probe at the age less the interval.
    let ahead = config.interval.as_secs();
    let mut age = 0;
    for probe in PROBES {
        world.advance(Duration::from_secs(probe - ahead - age));
        age = probe - ahead;
        let round = engine.run_refresh_round(&config).await;
        if world.refreshes().await > 0 {
            assert_eq!(round.refreshed, 1, "{round:?}");
            return Some(probe);
        }
    }
    None
}

#[tokio::test]
async fn the_instance_lifetime_wins_over_the_integration_and_the_default() {
    let (world, engine) = world_with(Some(INSTANCE), Some(INTEGRATION), Some(DEFAULT)).await;
    assert_eq!(first_refresh_on_read(&world, &engine).await, Some(150));
}

#[tokio::test]
async fn the_integration_lifetime_wins_over_the_default() {
    let (world, engine) = world_with(None, Some(INTEGRATION), Some(DEFAULT)).await;
    assert_eq!(first_refresh_on_read(&world, &engine).await, Some(1_050));
}

#[tokio::test]
async fn the_default_lifetime_applies_without_an_instance_or_integration_one() {
    let (world, engine) = world_with(None, None, Some(DEFAULT)).await;
    assert_eq!(first_refresh_on_read(&world, &engine).await, Some(10_050));
}

#[tokio::test]
async fn without_any_lifetime_the_token_is_used_until_refused() {
    let (world, engine) = world_with(None, None, None).await;
    assert_eq!(first_refresh_on_read(&world, &engine).await, None);
}

#[tokio::test]
async fn an_instance_lifetime_cleared_falls_back_to_the_integration() {
    let (world, engine) = world_with(Some(INSTANCE), Some(INTEGRATION), None).await;
    let clear = InstanceUpdate {
        token_lifetime: Some(None),
        ..InstanceUpdate::default()
    };
    let instance = engine.update_instance("inst", clear).await.unwrap();
    assert_eq!(instance.token_lifetime, None);
    assert_eq!(first_refresh_on_read(&world, &engine).await, Some(1_050));
}

#[tokio::test]
async fn an_integration_lifetime_is_kept_and_old_records_read_as_none() {
    let world = World::new().await;
    let engine = world.engine("p1", |b| b);
    let integration = engine
        .set_integration_token_lifetime("stub", Some(Duration::from_secs(INTEGRATION)))
        .await
        .unwrap();
    let flows = IntegrationFlows::of(&engine.integration("stub").await.unwrap()).unwrap();
    assert_eq!(flows.token_lifetime, Some(INTEGRATION));
    // A record written before the field was kept reads as none.
    let mut old = integration.clone();
    old.flows.as_object_mut().unwrap().remove("token_lifetime");
    assert_eq!(IntegrationFlows::of(&old).unwrap().token_lifetime, None);
    // Zero is none.
    let integration = engine
        .set_integration_token_lifetime("stub", Some(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(
        IntegrationFlows::of(&integration).unwrap().token_lifetime,
        None
    );
}

#[tokio::test]
async fn the_background_refresher_follows_each_level() {
    for (levels, expected) in [
        (
            (Some(INSTANCE), Some(INTEGRATION), Some(DEFAULT)),
            Some(150),
        ),
        ((None, Some(INTEGRATION), Some(DEFAULT)), Some(1_050)),
        ((None, None, Some(DEFAULT)), Some(10_050)),
        ((None, None, None), None),
    ] {
        let (world, engine) = world_with(levels.0, levels.1, levels.2).await;
        assert_eq!(
            first_refresh_in_background(&world, &engine).await,
            expected,
            "levels {levels:?}"
        );
    }
}
