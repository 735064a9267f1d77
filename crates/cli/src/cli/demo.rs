//! `chatflow demo`: the README's main job. Starts the demo business API on
//! 127.0.0.1 and runs the example flows against it with scripted answers,
//! printing a transcript with per-block timing and fuel.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use chatflow_demo_api::DemoApi;
use chatflow_engine::flow::{Message, Step, StepOutcome, TurnStatus};
use chatflow_engine::net::NetPolicy;
use chatflow_engine::{Engine, EngineConfig, Flow, Properties};
use serde_json::json;

use super::transcript::{answer_line, duration, render_turn, thousands};
use super::{Status, runtime};

include!(concat!(env!("OUT_DIR"), "/example_modules.rs"));

const EXAMPLES: &str = "\
Examples:
  # Run every example flow against the demo API and print the transcripts
  chatflow demo

  # Machine-readable: one JSON document with each scenario's outcome
  chatflow demo --json

  # Keep the demo API running to try the flows yourself with `chatflow run`
  chatflow demo --serve --export-modules /tmp/chatflow-modules

The demo API listens on 127.0.0.1 (a free port). The flows call it as
http://demo.chatflow.test, which the engine pins to that address
(NetPolicy::resolve, `chatflow run --resolve`). Nothing leaves this machine.

Exit status: 0 every scenario ended as expected, 1 one did not, 2 bad
arguments.";

/// Run the example flows against a demo business API on this machine.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// Print only the conversation, not one line per block.
    #[arg(long)]
    quiet: bool,
    /// Print one JSON document with every scenario instead of transcripts.
    #[arg(long, conflicts_with = "quiet")]
    json: bool,
    /// After the scenarios, keep the demo API running (until Ctrl-C) and
    /// print the `chatflow run` command for each flow.
    #[arg(long)]
    serve: bool,
    /// Write the example Code block modules built into this binary to DIR
    /// (for `chatflow run --module-dir DIR`).
    #[arg(long, value_name = "DIR")]
    export_modules: Option<PathBuf>,
}

/// One example conversation: a flow and the user's answers.
struct Scenario {
    title: &'static str,
    file: &'static str,
    json: &'static str,
    answers: &'static [&'static str],
    /// What the scenario shows, in one line.
    shows: &'static str,
}

const CRM: &str = include_str!("../../../../examples/flows/crm-profile.json");
const VALIDATE: &str = include_str!("../../../../examples/flows/validate-input.json");
const STATUS: &str = include_str!("../../../../examples/flows/application-status.json");
const COMPLEX: &str = include_str!("../../../../examples/flows/complex-call.json");
const EVERY: &str = include_str!("../../../../examples/flows/every-block.json");

const SCENARIOS: &[Scenario] = &[
    Scenario {
        title: "CRM profile: a known caller",
        file: "examples/flows/crm-profile.json",
        json: CRM,
        answers: &["+44 20 7946 0000"],
        shows: "REST API block following a 301, Code block parsing JSON, an ignored error (503)",
    },
    Scenario {
        title: "CRM profile: an unknown number",
        file: "examples/flows/crm-profile.json",
        json: CRM,
        answers: &["+1 555 0100"],
        shows: "a 404 with Ignore error: API Response removed, the branch takes `else`",
    },
    Scenario {
        title: "Validate input",
        file: "examples/flows/validate-input.json",
        json: VALIDATE,
        answers: &[
            "Ada Lovelace",
            "ada@example",
            "+44 20 7946 0000",
            "ada@example.com",
            "+44 20 7946 0000",
        ],
        shows: "a Code block calling a validation API through the host's HTTP; a loop until valid",
    },
    Scenario {
        title: "Application status (XML)",
        file: "examples/flows/application-status.json",
        json: STATUS,
        answers: &["APP-1", "APP-2024-0042"],
        shows: "an XML response with namespaces and entities parsed in the sandbox",
    },
    Scenario {
        title: "Order summary: a complex API call",
        file: "examples/flows/complex-call.json",
        json: COMPLEX,
        answers: &[],
        shows: "OAuth token, bearer calls and pagination inside one Code block",
    },
    Scenario {
        title: "Every block type, with a sparse CRM record",
        file: "examples/flows/every-block.json",
        json: EVERY,
        answers: &["+1 415 555 0123"],
        shows: "message, input, set, rest_api, branch and code blocks",
    },
];

/// How one scenario went.
struct Report {
    title: &'static str,
    status: TurnStatus,
    blocks: usize,
    time: Duration,
    fuel: u64,
    messages: Vec<Message>,
    trace: Vec<Step>,
    error: Option<String>,
}

pub fn run(args: Args) -> Result<Status> {
    if let Some(dir) = &args.export_modules {
        export_modules(dir)?;
    }
    let rt = runtime()?;
    rt.block_on(demo(args))
}

fn export_modules(dir: &PathBuf) -> Result<()> {
    if EXAMPLE_MODULES.is_empty() {
        bail!("this binary was built without the example modules (feature `cli`)");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, bytes) in EXAMPLE_MODULES {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "wrote {} example modules to {}",
        EXAMPLE_MODULES.len(),
        dir.display()
    );
    Ok(())
}

async fn demo(args: Args) -> Result<Status> {
    let api = DemoApi::start().await.context("starting the demo API")?;
    let mut policy = NetPolicy::default();
    policy.allow_host(chatflow_demo_api::HOST)?;
    policy.allow_loopback = true;
    policy
        .resolve
        .insert(chatflow_demo_api::HOST.to_string(), api.addr());
    let engine = Engine::new(EngineConfig::default().with_net(policy))?;

    let human = !args.json;
    if human {
        println!("chatflow demo: the REST API block and the Code block, on a demo business API\n");
        println!(
            "demo API on http://{} (the flows call it as {})",
            api.addr(),
            chatflow_demo_api::BASE_URL
        );
        let sizes: Vec<String> = EXAMPLE_MODULES
            .iter()
            .map(|(name, bytes)| format!("{name} ({} KiB)", bytes.len().div_ceil(1024)))
            .collect();
        println!("Code blocks (wasm32, sandboxed): {}", sizes.join(", "));
    }

    let mut reports = Vec::new();
    for (i, scenario) in SCENARIOS.iter().enumerate() {
        let flow = load(&engine, scenario)?;
        if human {
            println!("\n━━ {}. {} ━━ {}", i + 1, scenario.title, scenario.file);
            println!("   shows: {}", scenario.shows);
        }
        let report = run_scenario(&engine, &flow, scenario, human && !args.quiet, human).await;
        reports.push(report);
    }

    let all_completed = reports.iter().all(|r| r.status == TurnStatus::Completed);
    if human {
        print_summary(&reports);
    } else {
        let doc = json!({
            "demo_api": format!("http://{}", api.addr()),
            "scenarios": reports.iter().map(|r| json!({
                "title": r.title,
                "status": r.status,
                "blocks": r.blocks,
                "duration_us": u64::try_from(r.time.as_micros()).unwrap_or(u64::MAX),
                "fuel_used": r.fuel,
                "messages": r.messages,
                "trace": r.trace,
                "error": r.error,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }

    if args.serve {
        serve(&api, args.export_modules.as_deref()).await?;
    }
    Ok(if all_completed {
        Status::Ok
    } else {
        Status::Stopped
    })
}

fn load(engine: &Engine, scenario: &Scenario) -> Result<Flow> {
    let mut loader = engine.flow_loader();
    for (name, bytes) in EXAMPLE_MODULES {
        loader = loader.module(*name, bytes.to_vec());
    }
    loader
        .load_str(
            scenario.file,
            scenario.json,
            std::path::Path::new("examples/flows"),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))
}

async fn run_scenario(
    engine: &Engine,
    flow: &Flow,
    scenario: &Scenario,
    trace: bool,
    print: bool,
) -> Report {
    let started = Instant::now();
    let mut conversation = engine.start(flow, Properties::new());
    let mut answers = scenario.answers.iter();
    let mut messages = Vec::new();
    let mut steps = Vec::new();
    let (status, error) = loop {
        let turn = engine.run(flow, &mut conversation).await;
        if print {
            print!("{}", render_turn(&turn, trace));
        }
        let offset = steps.len();
        messages.extend(turn.messages.into_iter().map(|mut m| {
            m.step += offset;
            m
        }));
        steps.extend(turn.trace);
        if turn.status != TurnStatus::WaitingForInput {
            break (turn.status, turn.error.map(|e| e.to_string()));
        }
        let Some(answer) = answers.next() else {
            break (
                TurnStatus::WaitingForInput,
                Some("the scenario ran out of answers".to_string()),
            );
        };
        if print {
            print!("{}", answer_line(answer));
        }
        conversation
            .answer(*answer)
            .expect("the conversation waits for input");
    };
    let time = started.elapsed();
    let fuel = steps.iter().filter_map(|s| s.fuel_used).sum();
    let blocks = steps
        .iter()
        .filter(|s| s.outcome != StepOutcome::Waiting)
        .count();
    if print {
        match (&status, &error) {
            (TurnStatus::Completed, _) => println!(
                "   ✓ completed: {blocks} blocks in {}, {} fuel",
                duration(time),
                thousands(fuel)
            ),
            (_, Some(e)) => println!("   ✗ {e}"),
            _ => println!("   ✗ did not complete"),
        }
    }
    Report {
        title: scenario.title,
        status,
        blocks,
        time,
        fuel,
        messages,
        trace: steps,
        error,
    }
}

fn print_summary(reports: &[Report]) {
    println!("\nSummary");
    println!(
        "  {:<46} {:<10} {:>6} {:>10} {:>12}",
        "scenario", "status", "blocks", "time", "fuel"
    );
    for r in reports {
        let status = match r.status {
            TurnStatus::Completed => "completed",
            TurnStatus::Stopped => "stopped",
            TurnStatus::WaitingForInput => "waiting",
        };
        println!(
            "  {:<46} {:<10} {:>6} {:>10} {:>12}",
            r.title,
            status,
            r.blocks,
            duration(r.time),
            thousands(r.fuel)
        );
    }
    println!(
        "\nTimes include the HTTP round trips to the demo API; Code blocks run on a\n\
         fresh sandbox instance each time, under fuel, memory and time limits."
    );
}

async fn serve(api: &DemoApi, modules: Option<&std::path::Path>) -> Result<()> {
    let addr = api.addr();
    let module_dir = modules.map_or("DIR".to_string(), |d| d.display().to_string());
    println!("\nThe demo API keeps running on http://{addr}. Try, in another terminal:");
    if modules.is_none() {
        println!("  chatflow demo --export-modules DIR   # the example Code blocks as .wasm files");
    }
    for command in run_commands(&addr.to_string(), &module_dir) {
        println!("{command}");
    }
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

/// One `chatflow run` command per example flow, with the answers of its
/// first scenario, for `--serve`.
fn run_commands(addr: &str, module_dir: &str) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    SCENARIOS
        .iter()
        .filter(|s| seen.insert(s.file))
        .map(|s| {
            let answers: String = s
                .answers
                .iter()
                .map(|a| format!(" --answer '{a}'"))
                .collect();
            format!(
                "  # {title}\n  chatflow run {file} --module-dir {module_dir} \\\n      \
                 --resolve {host}={addr} --allow-host {host} --allow-loopback --trace{answers}",
                title = s.title,
                file = s.file,
                host = chatflow_demo_api::HOST,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_prints_one_command_per_flow() {
        let commands = run_commands("127.0.0.1:9", "/tmp/m");
        let mut flows: Vec<&str> = SCENARIOS.iter().map(|s| s.file).collect();
        flows.dedup();
        assert_eq!(commands.len(), 5);
        assert_eq!(commands.len(), flows.len());
        for (command, flow) in commands.iter().zip(&flows) {
            assert!(
                command.contains(&format!("chatflow run {flow} ")),
                "{command}"
            );
            assert!(
                command.contains("--module-dir /tmp/m") && command.contains("=127.0.0.1:9 "),
                "{command}"
            );
        }
        assert!(
            commands[0].ends_with("--answer '+44 20 7946 0000'"),
            "{}",
            commands[0]
        );
    }

    #[test]
    fn every_example_flow_has_a_scenario_and_modules_are_embedded() {
        let files: std::collections::BTreeSet<&str> = SCENARIOS.iter().map(|s| s.file).collect();
        assert_eq!(files.len(), 5);
        let names: Vec<&str> = EXAMPLE_MODULES.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "crm_profile.wasm",
                "validate_input.wasm",
                "application_status_xml.wasm",
                "complex_call.wasm"
            ]
        );
        for (name, bytes) in EXAMPLE_MODULES {
            assert_eq!(&bytes[..4], b"\0asm", "{name}");
        }
    }
}
