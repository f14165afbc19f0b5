//! `cargo xtask bench multinode`: the refresh storm of the multinode suite alone, on release
//! builds: 3 nodes on one PostgreSQL x 1,000 concurrent callers right after the access token
//! expired. Goal: exactly 1 token request at the provider (counted at the fault proxy in front
//! of its token endpoint). Prints `bench multinode: nodes=3 callers=3000 token_requests=N`.

use crate::builds::Profile;
use crate::cmd::{Ctx, Failure};
use crate::suites::multinode::{self, Run};

/// The scenario the bench runs.
const SCENARIO: &str = "expiry_storm";

/// `cargo xtask bench multinode`.
pub fn bench(ctx: &Ctx) -> Result<(), Failure> {
    let (lines, result) = multinode::run(
        ctx,
        &Run {
            folder: "bench-multinode",
            profile: Profile::Release,
            only: vec![SCENARIO.to_string()],
        },
    );
    let figure = |name: &str| lines.figure(SCENARIO, name);
    let (Some(nodes), Some(callers), Some(requests)) =
        (figure("nodes"), figure("callers"), figure("token_requests"))
    else {
        return Err(result.err().unwrap_or_else(|| {
            Failure::new(format!(
                "the {SCENARIO} line of the multinode runner has no nodes, callers and \
                 token_requests figures"
            ))
        }));
    };
    let line =
        format!("bench multinode: nodes={nodes} callers={callers} token_requests={requests}");
    println!("{line}");
    if requests != "1" {
        println!("GOAL MISSED {line}");
        return Err(Failure::new(format!(
            "GOAL MISSED: {callers} callers on {nodes} nodes right after expiry caused \
             {requests} token requests; the goal is exactly 1"
        )));
    }
    result
}
