//! Human-readable transcripts of conversations: messages, the user's
//! answers, and (optionally) one line per block with its outcome, timing
//! and fuel.

use std::fmt::Write as _;
use std::time::Duration;

use chatflow_engine::flow::{Step, StepOutcome, Turn};

/// Renders one turn: each step's line (with `trace`) followed by the
/// messages it produced.
pub fn render_turn(turn: &Turn, trace: bool) -> String {
    let mut out = String::new();
    for (i, step) in turn.trace.iter().enumerate() {
        if trace {
            let _ = writeln!(out, "{}", step_line(step));
            for log in &step.logs {
                let _ = writeln!(out, "        log {}: {}", log.level, log.message);
            }
        }
        for message in turn.messages.iter().filter(|m| m.step == i) {
            for (n, line) in message.text.lines().enumerate() {
                let who = if n == 0 { "bot " } else { "    " };
                let _ = writeln!(out, "{who} {line}");
            }
        }
    }
    out
}

/// The line for the user's answer.
pub fn answer_line(answer: &str) -> String {
    format!("you  {answer}\n")
}

fn step_line(step: &Step) -> String {
    let mut line = format!(
        "     · {:<20} {:<8} {:<13}",
        step.block,
        step.block_type.as_str(),
        outcome(step)
    );
    let _ = write!(line, " {:>9}", duration(step.duration));
    if let Some(status) = step.http_status {
        let _ = write!(line, "  HTTP {status}");
    }
    if let Some(hops) = step.redirects {
        let s = if hops == 1 { "" } else { "s" };
        let _ = write!(line, " after {hops} redirect{s}");
    }
    if let Some(fuel) = step.fuel_used {
        let _ = write!(line, "  fuel {}", thousands(fuel));
    }
    if let Some(calls) = step.http_calls.filter(|c| *c > 0) {
        let _ = write!(line, "  {calls} HTTP call(s)");
    }
    if let Some(error) = &step.error {
        let _ = write!(line, "\n        error: {error}");
    }
    line
}

fn outcome(step: &Step) -> String {
    match step.outcome {
        StepOutcome::Ok => match &step.next {
            Some(next) if step.block_type == chatflow_engine::flow::BlockType::Branch => {
                format!("→ {next}")
            }
            _ => "ok".into(),
        },
        StepOutcome::IgnoredError => "error ignored".into(),
        StepOutcome::Stopped => "STOPPED".into(),
        StepOutcome::Waiting => "waiting".into(),
    }
}

/// `850 µs`, `12.3 ms`, `1.20 s`.
pub fn duration(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

/// `12 345 678`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1 000");
        assert_eq!(thousands(12_345_678), "12 345 678");
        assert_eq!(duration(Duration::from_micros(850)), "850 µs");
        assert_eq!(duration(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(duration(Duration::from_millis(1_200)), "1.20 s");
    }
}
