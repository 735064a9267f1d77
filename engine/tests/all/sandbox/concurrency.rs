//! Many runs at once on one sandbox: each sees only its own properties.

use std::sync::Arc;

use chatflow_engine::Properties;
use chatflow_engine::sandbox::{Sandbox, SandboxConfig};

use super::wat;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_runs_in_flight() {
    let sb = Arc::new(
        Sandbox::new(
            SandboxConfig::default().with_max_concurrent_runs(64),
            crate::support::loopback_client(),
        )
        .unwrap(),
    );
    // Copies `id` to `out`, with a busy loop in between so runs overlap.
    let wasm = wat::parse_str(wat(
        r#"(data (i32.const 0) "idout")
           (func (export "chatflow_run") (result i32)
             (local $n i32) (local $i i32)
             (local.set $n (call $property_get (i32.const 0) (i32.const 2) (i32.const 1024) (i32.const 64)))
             (loop $l
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const 200000))))
             (drop (call $property_set (i32.const 2) (i32.const 3) (i32.const 1024) (local.get $n)))
             (i32.const 0))"#,
    ))
    .unwrap();
    let module = sb.load(&wasm).unwrap();
    let runs = (0..200).map(|i| {
        let sb = sb.clone();
        let module = module.clone();
        tokio::spawn(async move {
            let props: Properties = [("id", format!("run-{i}"))].into_iter().collect();
            let outcome = sb.run(&module, &props, &sb.default_limits()).await;
            (i, outcome)
        })
    });
    for run in futures::future::join_all(runs).await {
        let (i, outcome) = run.unwrap();
        let output = outcome.result.unwrap();
        assert_eq!(
            output.changes.get("out"),
            Some(Some(format!("run-{i}").as_str()))
        );
    }
}
