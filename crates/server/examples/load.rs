//! The service under load (issue 12), not a timed test: replicas of the
//! `serve` example (child processes) on one store, 1 000 conversations of
//! the example flows against the demo API, each a start and three answers,
//! 64 clients at a time; in the `-kill` runs one replica is killed with
//! SIGKILL halfway. Afterwards every conversation is checked from the
//! store: completed, four turns, each stored once with the client's
//! Idempotency-Key. Prints turns/s and p50/p99 latency per run.
//!
//! ```sh
//! cargo build --release -p chatflow-server --examples
//! CHATFLOW_TEST_POSTGRES=postgres://postgres@127.0.0.1:55432/postgres \
//!     target/release/examples/load
//! ```
//!
//! Without `CHATFLOW_TEST_POSTGRES` (or `--postgres`) the PostgreSQL runs
//! are skipped. Every run gets a fresh store (a new SQLite file, or a new
//! database on that server, dropped afterwards). Exits non-zero if any
//! conversation is incomplete or any turn is missing or stored twice.

use std::collections::HashMap;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use clap::Parser as _;
use serde_json::{Value, json};

#[derive(Debug, clap::Parser)]
#[command(about = "chatflow serve under load: replicas, a store, a SIGKILL")]
struct Args {
    /// Conversations per run.
    #[arg(long, default_value_t = 1000)]
    conversations: usize,
    /// Clients at a time.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// A PostgreSQL server (a database is created per run).
    #[arg(long, env = "CHATFLOW_TEST_POSTGRES")]
    postgres: Option<String>,
    /// The runs: STORE-REPLICAS[-kill], comma-separated.
    #[arg(
        long,
        default_value = "sqlite-1,sqlite-2,postgres-1,postgres-2,sqlite-2-kill,postgres-2-kill"
    )]
    runs: String,
    /// The replicas' --lease-ttl, in seconds (how long a killed replica's
    /// conversations wait).
    #[arg(long, default_value_t = 2.0)]
    lease_ttl: f64,
    /// The `serve` example binary (by default next to this one).
    #[arg(long)]
    serve_bin: Option<PathBuf>,
}

#[derive(Debug, Clone)]
struct Run {
    store: &'static str,
    replicas: usize,
    kill: bool,
}

fn parse_runs(spec: &str) -> Result<Vec<Run>> {
    spec.split(',')
        .map(|r| {
            let parts: Vec<&str> = r.trim().split('-').collect();
            let store = match parts.first() {
                Some(&"sqlite") => "sqlite",
                Some(&"postgres") => "postgres",
                _ => bail!("run {r:?}: expected sqlite-N or postgres-N[-kill]"),
            };
            let replicas = parts
                .get(1)
                .and_then(|n| n.parse().ok())
                .filter(|n| *n >= 1)
                .with_context(|| format!("run {r:?}: replicas"))?;
            let kill = parts.get(2) == Some(&"kill");
            ensure!(
                !kill || replicas >= 2,
                "run {r:?}: killing needs 2 replicas"
            );
            Ok(Run {
                store,
                replicas,
                kill,
            })
        })
        .collect()
}

/// The flows and the answers each conversation sends: every one ends
/// completed after exactly three answers.
const WORKLOADS: &[(&str, [&str; 3])] = &[
    ("application-status", ["APP-1", "APP-2", "APP-2024-0042"]),
    (
        "validate-input",
        ["Ada Lovelace", "ada@example.com", "+44 20 7946 0000"],
    ),
];
const TURNS_PER_CONVERSATION: usize = 4;

struct Replica {
    addr: String,
    child: Child,
    alive: AtomicBool,
}

fn start_replica(
    bin: &Path,
    store: &str,
    demo: std::net::SocketAddr,
    cache: &Path,
    lease_ttl: f64,
) -> Result<Replica> {
    let modules = Path::new(chatflow_test_artifacts::examples::CRM_PROFILE)
        .parent()
        .context("module dir")?;
    let flows = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/flows");
    let mut child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--store", store])
        .arg("--flows")
        .arg(&flows)
        .arg("--modules")
        .arg(modules)
        .arg("--module-cache")
        .arg(cache)
        .args([
            "--allow-host",
            chatflow_demo_api::HOST,
            "--allow-loopback",
            "--resolve",
            &format!("{}={demo}", chatflow_demo_api::HOST),
            "--lease-ttl",
            &lease_ttl.to_string(),
        ])
        .env("CHATFLOW_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().context("stdout")?;
    let addr = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("listening on ").map(str::to_string))
        .context("the replica did not start")?;
    Ok(Replica {
        addr,
        child,
        alive: AtomicBool::new(true),
    })
}

/// One request, retried on other replicas until it succeeds: after a
/// connection error (a killed replica), a `409 conversation_busy` (a turn
/// still holding the lease, or a dead replica's lease not yet expired) or a
/// `503`.
async fn send(
    http: &reqwest::Client,
    replicas: &[Replica],
    first: usize,
    path: &str,
    body: &Value,
    key: &str,
    retries: &AtomicUsize,
) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut attempt = 0;
    loop {
        let replica = &replicas[(first + attempt) % replicas.len()];
        attempt += 1;
        if !replica.alive.load(Ordering::SeqCst) {
            continue;
        }
        let sent = http
            .post(format!("http://{}{path}", replica.addr))
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await;
        let pause = match sent {
            Ok(response) if response.status().is_success() => {
                return Ok(response.json().await?);
            }
            Ok(response) if matches!(response.status().as_u16(), 409 | 503) => {
                let body: Value = response.json().await.unwrap_or_default();
                ensure!(
                    body["kind"] != "conversation_finished",
                    "{path}: the conversation finished early: {body}"
                );
                Duration::from_millis(50)
            }
            Ok(response) => {
                let status = response.status();
                bail!("{path}: {status}: {}", response.text().await?);
            }
            Err(_) => Duration::from_millis(10),
        };
        retries.fetch_add(1, Ordering::Relaxed);
        ensure!(Instant::now() < deadline, "{path}: no success in 120 s");
        tokio::time::sleep(pause).await;
    }
}

struct Outcome {
    wall: Duration,
    latencies: Vec<Duration>,
    retries: usize,
    ids: Vec<String>,
}

async fn drive(
    args: &Args,
    replicas: Arc<Vec<Replica>>,
    kill_at: Option<usize>,
) -> Result<Outcome> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let done_turns = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (http, replicas, next, done_turns, retries, killed) = (
            http.clone(),
            replicas.clone(),
            next.clone(),
            done_turns.clone(),
            retries.clone(),
            killed.clone(),
        );
        let total = args.conversations;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= total {
                    return Ok::<_, anyhow::Error>((latencies, ids));
                }
                let (flow, answers) = WORKLOADS[i % WORKLOADS.len()];
                let t = Instant::now();
                let first = send(
                    &http,
                    &replicas,
                    i,
                    &format!("/v1/flows/{flow}/conversations"),
                    &json!({"properties": {"load_index": i.to_string()}}),
                    &format!("c{i}-start"),
                    &retries,
                )
                .await?;
                latencies.push(t.elapsed());
                let id = first["conversation_id"]
                    .as_str()
                    .context("no conversation id")?
                    .to_string();
                let mut last = first;
                for (n, answer) in answers.iter().enumerate() {
                    let turns = done_turns.fetch_add(1, Ordering::SeqCst) + 1;
                    if let Some(at) = kill_at
                        && turns >= at
                        && !killed.swap(true, Ordering::SeqCst)
                    {
                        // SIGKILL: no shutdown, turns in flight die with it.
                        let victim = &replicas[0];
                        victim.alive.store(false, Ordering::SeqCst);
                        // SAFETY: kill(2) on our own child's pid.
                        unsafe {
                            libc::kill(victim.child.id() as i32, libc::SIGKILL);
                        }
                        eprintln!(
                            "  SIGKILL to replica 0 at {:.1} s, {turns} turns done, {} retries so far",
                            started.elapsed().as_secs_f64(),
                            retries.load(Ordering::Relaxed)
                        );
                    }
                    let t = Instant::now();
                    last = send(
                        &http,
                        &replicas,
                        i + n + 1,
                        &format!("/v1/conversations/{id}/answers"),
                        &json!({ "text": answer }),
                        &format!("c{i}-a{}", n + 1),
                        &retries,
                    )
                    .await?;
                    latencies.push(t.elapsed());
                }
                done_turns.fetch_add(1, Ordering::SeqCst);
                ensure!(
                    last["status"] == "completed",
                    "conversation {i} ({flow}) ended {}",
                    last["status"]
                );
                ids.push(format!("{i} {id}"));
            }
        }));
    }
    let mut latencies = Vec::new();
    let mut ids = Vec::new();
    for task in tasks {
        let (l, i) = task.await??;
        latencies.extend(l);
        ids.extend(i);
    }
    Ok(Outcome {
        wall: started.elapsed(),
        latencies,
        retries: retries.load(Ordering::Relaxed),
        ids,
    })
}

/// Checks every conversation from the store: completed, four turns, turn
/// `n` stored once with the key the client sent for it.
async fn verify(store: &str, ids: &[String]) -> Result<(usize, usize, i64)> {
    type Conv = (String, String, i64);
    type TurnRow = (String, i64, Option<String>);
    let (convs, turns): (Vec<Conv>, Vec<TurnRow>) = if store.starts_with("sqlite:") {
        let s = chatflow_server::store::sqlite::SqliteStore::open(store).await?;
        (
            sqlx::query_as("SELECT id, status, turns FROM conversations")
                .fetch_all(s.pool())
                .await?,
            sqlx::query_as("SELECT conversation_id, seq, idempotency_key FROM turns")
                .fetch_all(s.pool())
                .await?,
        )
    } else {
        let s = chatflow_server::store::postgres::PgStore::open(store).await?;
        (
            sqlx::query_as("SELECT id, status, turns FROM conversations")
                .fetch_all(s.pool())
                .await?,
            sqlx::query_as("SELECT conversation_id, seq, idempotency_key FROM turns")
                .fetch_all(s.pool())
                .await?,
        )
    };
    let stored_turns = i64::try_from(turns.len())?;
    let convs: HashMap<String, (String, i64)> =
        convs.into_iter().map(|(id, s, t)| (id, (s, t))).collect();
    let mut by_conv: HashMap<String, Vec<(i64, Option<String>)>> = HashMap::new();
    for (id, seq, key) in turns {
        by_conv.entry(id).or_default().push((seq, key));
    }
    let mut complete = 0;
    let mut exact = 0;
    for entry in ids {
        let (i, id) = entry.split_once(' ').context("id")?;
        if convs
            .get(id)
            .is_some_and(|(s, t)| s == "completed" && *t == 4)
        {
            complete += 1;
        }
        let mut turns = by_conv.remove(id).unwrap_or_default();
        turns.sort();
        let expected: Vec<(i64, Option<String>)> = (0..TURNS_PER_CONVERSATION)
            .map(|n| {
                let key = if n == 0 {
                    format!("c{i}-start")
                } else {
                    format!("c{i}-a{n}")
                };
                (i64::try_from(n).unwrap(), Some(key))
            })
            .collect();
        if turns == expected {
            exact += 1;
        }
    }
    ensure!(
        convs.len() == ids.len(),
        "{} conversations stored for {} started",
        convs.len(),
        ids.len()
    );
    Ok((complete, exact, stored_turns))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn new_pg_database(admin: &str) -> Result<(String, String)> {
    use sqlx::Connection as _;
    let name = format!("chatflow_load_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    let mut url = url::Url::parse(admin)?;
    url.set_path(&format!("/{name}"));
    Ok((url.to_string(), name))
}

async fn drop_pg_database(admin: &str, name: &str) -> Result<()> {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let runs = parse_runs(&args.runs)?;
    let bin = match &args.serve_bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("exe dir")?
            .join("serve"),
    };
    ensure!(
        bin.exists(),
        "{} is missing: build it with `cargo build --release -p chatflow-server --examples`",
        bin.display()
    );
    let api = chatflow_demo_api::DemoApi::start().await?;
    let cache = tempfile::tempdir()?;
    let mut rows = Vec::new();
    let mut failed = false;
    for run in runs {
        let name = format!(
            "{}-{}{}",
            run.store,
            run.replicas,
            if run.kill { "-kill" } else { "" }
        );
        let dir = tempfile::tempdir()?;
        let (store, pg_name) = match run.store {
            "sqlite" => (
                format!("sqlite:{}", dir.path().join("chatflow.db").display()),
                None,
            ),
            _ => match &args.postgres {
                Some(admin) => {
                    let (url, db) = new_pg_database(admin).await?;
                    (url, Some(db))
                }
                None => {
                    eprintln!("{name}: skipped (no --postgres / CHATFLOW_TEST_POSTGRES)");
                    continue;
                }
            },
        };
        eprintln!("{name}: starting {} replica(s)", run.replicas);
        let mut replicas = Vec::new();
        for _ in 0..run.replicas {
            let bin = bin.clone();
            let (store, cache) = (store.clone(), cache.path().to_path_buf());
            let (demo, ttl) = (api.addr(), args.lease_ttl);
            replicas.push(
                tokio::task::spawn_blocking(move || start_replica(&bin, &store, demo, &cache, ttl))
                    .await??,
            );
        }
        let replicas = Arc::new(replicas);
        let total_turns = args.conversations * TURNS_PER_CONVERSATION;
        let kill_at = run.kill.then_some(total_turns / 2);
        let outcome = drive(&args, replicas.clone(), kill_at).await;
        let mut replicas =
            Arc::try_unwrap(replicas).map_err(|_| anyhow::anyhow!("replicas still shared"))?;
        for r in &mut replicas {
            if r.alive.load(Ordering::SeqCst) {
                // SAFETY: kill(2) on our own child's pid.
                unsafe {
                    libc::kill(r.child.id() as i32, libc::SIGTERM);
                }
            }
            r.child.wait()?;
        }
        let outcome = outcome.with_context(|| format!("run {name}"))?;
        let (complete, exact, stored) = verify(&store, &outcome.ids).await?;
        if let (Some(admin), Some(db)) = (&args.postgres, &pg_name) {
            drop_pg_database(admin, db).await?;
        }
        let mut latencies = outcome.latencies;
        latencies.sort();
        let turns = latencies.len();
        let ok = complete == args.conversations
            && exact == args.conversations
            && usize::try_from(stored)? == total_turns;
        failed |= !ok;
        let row = format!(
            "| {} | {} | {} | {} | {} | {:.1} | {:.0} | {:.1} | {:.1} | {:.0} | {} | {}/{} | {} of {}, {}/{} exact |",
            run.store,
            run.replicas,
            if run.kill { "yes" } else { "no" },
            args.conversations,
            turns,
            outcome.wall.as_secs_f64(),
            turns as f64 / outcome.wall.as_secs_f64(),
            percentile(&latencies, 50.0).as_secs_f64() * 1e3,
            percentile(&latencies, 99.0).as_secs_f64() * 1e3,
            latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            outcome.retries,
            complete,
            args.conversations,
            stored,
            total_turns,
            exact,
            args.conversations,
        );
        eprintln!("{row}");
        rows.push(row);
    }
    println!(
        "| store | replicas | SIGKILL halfway | conversations | turns | wall s | turns/s | p50 ms | p99 ms | max ms | retries | complete | turns stored, each once |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    if failed {
        bail!("a conversation is incomplete, or a turn is missing or stored twice");
    }
    Ok(())
}
