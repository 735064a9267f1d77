//! How an operator embeds chatflow, as a crate outside this workspace
//! would: the Code block module is a file it reads. Run it with
//!
//! ```sh
//! cargo run -p chatflow-cli -- demo --export-modules /tmp/chatflow-modules
//! cargo run -p chatflow-embed-example -- /tmp/chatflow-modules/application_status_xml.wasm
//! ```
//!
//! One [`Engine`] per process (it owns the HTTP connection pool, the network
//! policy and the sandbox); flows loaded and validated once; each user
//! message resumes that user's conversation, which lives as JSON in the
//! operator's own storage between messages (a `HashMap` here, a database
//! row in production). The flow is `examples/flows/application-status.json`,
//! run against the demo business API on 127.0.0.1. `README.md` beside this
//! file has the build settings an embedder wants.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use chatflow_engine::net::NetPolicy;
use chatflow_engine::{Conversation, Engine, EngineConfig, Flow, Properties, TurnStatus};

/// Where the operator keeps conversations between user messages.
type Store = HashMap<String, String>;

const USAGE: &str = "usage: embed MODULE.wasm (the application-status Code block; \
`chatflow demo --export-modules DIR` writes it as DIR/application_status_xml.wasm)";

#[tokio::main]
async fn main() -> Result<()> {
    let Some(module_path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };

    // The demo API stands in for the business API the flow calls.
    let api = chatflow_demo_api::DemoApi::start().await?;

    // Network policy: only the business API's host, which resolves to a
    // loopback address here (so loopback must be allowed explicitly).
    let mut policy = NetPolicy::default();
    policy.allow_host(chatflow_demo_api::HOST)?;
    policy.allow_loopback = true;
    policy
        .resolve
        .insert(chatflow_demo_api::HOST.into(), api.addr());
    let engine = Engine::new(EngineConfig::default().with_net(policy))?;

    // Load and validate the flow once; every conversation shares it. The
    // Code block's module comes as bytes (an operator might keep uploaded
    // modules in object storage); paths inside the flow file's directory,
    // or a module directory, work too (`FlowLoader::module_dir`).
    let module = std::fs::read(&module_path)
        .with_context(|| format!("reading the Code block {}", module_path.display()))?;
    let flow_file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../flows/application-status.json"
    );
    let flow = engine
        .flow_loader()
        .module("application_status_xml.wasm", module)
        .load_file(flow_file)?;

    let mut store = Store::new();
    // Messages arriving from two users, interleaved, as a chat platform
    // would deliver them.
    let inbox = [
        ("alice", None),
        ("bob", None),
        ("alice", Some("APP-2024-0042")),
        ("bob", Some("APP-404")),
        ("bob", Some("APP-2024-0007")),
    ];
    for (user, text) in inbox {
        match text {
            Some(text) => println!("{user:>5} > {text}"),
            None => println!("{user:>5} opens the chat"),
        }
        for reply in handle_message(&engine, &flow, &mut store, user, text).await? {
            println!("  bot > {reply}");
        }
    }
    println!("\nstored state for bob: {}", store["bob"]);
    Ok(())
}

/// Handles one incoming message for `user`: load their conversation (or
/// start one), give it the answer, run it to the next question or the end,
/// store it again, and return the bot's replies.
async fn handle_message(
    engine: &Engine,
    flow: &Flow,
    store: &mut Store,
    user: &str,
    text: Option<&str>,
) -> Result<Vec<String>> {
    let mut conversation: Conversation = match store.get(user) {
        Some(saved) => serde_json::from_str(saved)?,
        None => {
            let props: Properties = [("user", user)].into_iter().collect();
            engine.start(flow, props)
        }
    };
    if let Some(text) = text {
        conversation.answer(text)?;
    }
    let turn = engine.run(flow, &mut conversation).await;
    if turn.status == TurnStatus::Stopped {
        // A block failed without Ignore error: tell the user, log the cause.
        eprintln!("conversation of {user} stopped: {:?}", turn.error);
    }
    store.insert(user.to_string(), serde_json::to_string(&conversation)?);
    Ok(turn.messages.into_iter().map(|m| m.text).collect())
}
