//! `chatflow run`: run a flow, printing the conversation as it goes.

use std::collections::VecDeque;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;

use anyhow::Result;
use chatflow_engine::flow::{Message, Step, StepOutcome, StopError, TurnStatus};
use chatflow_engine::sandbox::SandboxConfig;
use chatflow_engine::{Engine, EngineConfig};
use serde_json::json;

use super::cache_args::{self, CacheArgs};
use super::transcript::{answer_line, render_turn};
use super::{Status, parse_sets, runtime};
use chatflow_server::NetArgs;

const EXAMPLES: &str = "\
Examples:
  # Run a flow, answering its input blocks from the command line
  chatflow run examples/flows/crm-profile.json --answer '+44 20 7946 0000' \\
      --resolve demo.chatflow.test=127.0.0.1:8080 --allow-loopback

  # Start with properties (NAME=@file reads the value from a file), print JSON
  chatflow run flow.json --set 'API Response=@reply.json' --set tier=gold --json

  # Code block modules built elsewhere: resolve module paths inside that directory
  chatflow run flow.json --module-dir target/wasm32-unknown-unknown/guest

Input blocks take the --answer values in order, then read lines from standard
input (prompting when it is a terminal). When neither has an answer the run
ends with status waiting_for_input.

An error a block ignores (its Ignore error is on) prints one line on standard
error, `ignored error: block ID: MESSAGE`, unless --trace shows it in the
transcript; with --json it is also in the trace.

JSON output: {\"status\": \"completed\" | \"stopped\" | \"waiting_for_input\",
\"messages\": [...], \"properties\": {...}, \"trace\": [...], \"error\": null |
{\"block\", \"kind\", \"message\"}, \"warnings\": [...], \"module_cache\": null |
{\"dir\", \"compiled\", \"loaded\", \"written\", \"rejected\"}}.

Code block modules are compiled once and kept in the on-disk module cache
(~/.cache/chatflow/modules by default; --cache-dir, --no-cache).

Exit status: 0 the flow completed, 1 it stopped on an error (or waits for an
answer nobody gave), 2 invalid flow or arguments.";

/// Run a flow and print the conversation.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// The flow file (JSON).
    flow: PathBuf,
    /// Set a property before the flow starts, `NAME=VALUE`, or `NAME=@file`
    /// to read the value from a file. Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    sets: Vec<String>,
    /// An answer for the next input block. Repeatable, used in order.
    #[arg(long = "answer", value_name = "TEXT")]
    answers: Vec<String>,
    /// Resolve Code blocks' module paths inside this directory instead of
    /// the flow file's. A flow can only name modules inside it: relative
    /// paths, no `..`, no symbolic link leading out.
    #[arg(long, value_name = "DIR")]
    module_dir: Option<PathBuf>,
    /// Stop a turn after this many blocks (a flow that loops).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    max_steps: u32,
    /// Also print one line per block: outcome, time, HTTP status, fuel.
    #[arg(long)]
    trace: bool,
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    cache: CacheArgs,
    /// Print one JSON document at the end instead of the transcript.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<Status> {
    let properties = parse_sets(&args.sets)?;
    let config = EngineConfig::default()
        .with_net(args.net.policy()?)
        .with_max_steps(args.max_steps);
    let rt = runtime()?;
    // One conversation runs one block at a time: a one-slot pool.
    let (engine, cache_dir) = args.cache.build(
        SandboxConfig::default().with_max_concurrent_runs(1),
        |sandbox| rt.block_on(async { Engine::new(config.clone().with_sandbox(sandbox)) }),
    )?;
    let mut loader = engine.flow_loader();
    if let Some(dir) = &args.module_dir {
        loader = loader.module_dir(dir);
    }
    let flow = match loader.load_file(&args.flow) {
        Ok(flow) => flow,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(Status::Invalid);
        }
    };
    for warning in flow.warnings() {
        eprintln!("warning: {}: {warning}", flow.origin());
    }

    let mut answers: VecDeque<String> = args.answers.into();
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal() && !args.json;
    let mut conversation = engine.start(&flow, properties);
    let mut messages: Vec<Message> = Vec::new();
    let mut trace: Vec<Step> = Vec::new();
    let mut error: Option<StopError> = None;
    let status = loop {
        let turn = rt.block_on(engine.run(&flow, &mut conversation));
        if !args.json {
            print!("{}", render_turn(&turn, args.trace));
            let _ = std::io::stdout().flush();
        }
        if !args.trace || args.json {
            // An ignored error is never silent: one line on stderr (stdout
            // stays the transcript, or clean JSON), unless the trace on
            // stdout already shows it.
            for step in &turn.trace {
                if let (StepOutcome::IgnoredError, Some(error)) = (step.outcome, &step.error) {
                    eprintln!("ignored error: block {}: {error}", step.block);
                }
            }
        }
        let offset = trace.len();
        messages.extend(turn.messages.into_iter().map(|mut m| {
            m.step += offset;
            m
        }));
        trace.extend(turn.trace);
        match turn.status {
            TurnStatus::WaitingForInput => {}
            other => {
                error = turn.error;
                break other;
            }
        }
        let answer = match answers.pop_front() {
            Some(answer) => Some(answer),
            None => {
                if interactive {
                    eprint!("you> ");
                }
                let mut line = String::new();
                match stdin.lock().read_line(&mut line)? {
                    0 => None,
                    _ => Some(line.trim_end_matches(['\r', '\n']).to_string()),
                }
            }
        };
        let Some(answer) = answer else {
            break TurnStatus::WaitingForInput;
        };
        if !args.json && !interactive {
            print!("{}", answer_line(&answer));
        }
        conversation
            .answer(answer)
            .expect("the conversation waits for input");
    };

    if args.json {
        let doc = json!({
            "flow": flow.name(),
            "status": status,
            "messages": messages,
            "properties": conversation.properties,
            "trace": trace,
            "error": error.as_ref().map(|e| json!({
                "block": e.block(),
                "kind": e.kind(),
                "message": e.to_string(),
            })),
            "warnings": flow.warnings(),
            "conversation": conversation,
            "module_cache": cache_args::report(cache_dir.as_deref(), engine.sandbox().cache_stats()),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        match (&status, &error) {
            (TurnStatus::Stopped, Some(e)) => eprintln!("stopped: {e}"),
            (TurnStatus::WaitingForInput, _) => {
                eprintln!("stopped: the flow waits for an answer and none was given")
            }
            _ => {}
        }
    }
    Ok(match status {
        TurnStatus::Completed => Status::Ok,
        _ => Status::Stopped,
    })
}
