//! The README is checked against the program (issue 13): its demo
//! transcripts are what `chatflow demo` prints today (times masked, since
//! they vary by machine; fuel is deterministic and compared exactly), and
//! every command its table lists exists with the options it shows.
//!
//! When the demo's output changes on purpose, regenerate the README's
//! transcripts with
//!
//! ```sh
//! CHATFLOW_BLESS_README=1 cargo test -p chatflow-cli --test all -- readme
//! ```
//!
//! and review the diff.

use std::path::Path;
use std::process::Command;

fn readme_path() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
}

fn chatflow(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_chatflow"))
        .args(args)
        .env("CHATFLOW_CACHE_DIR", crate::support::cli_cache_dir())
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env_remove("CHATFLOW_LOG")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "chatflow {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The ```` ```text ```` blocks of `markdown`, as (byte range of the
/// block's contents, contents).
fn text_blocks(markdown: &str) -> Vec<(std::ops::Range<usize>, &str)> {
    let mut blocks = Vec::new();
    let mut rest = 0;
    while let Some(open) = markdown[rest..].find("```text\n") {
        let start = rest + open + "```text\n".len();
        let len = markdown[start..]
            .find("```")
            .expect("an unterminated code block in the README");
        blocks.push((start..start + len, &markdown[start..start + len]));
        rest = start + len + 3;
    }
    blocks
}

/// The part of the demo's output a README block quotes: the conversation
/// whose header line the block starts with (up to the next blank line), or
/// the summary table.
fn section<'a>(output: &'a str, first_line: &str) -> Option<&'a str> {
    let start = output.find(&format!("{first_line}\n"))?;
    let len = output[start..]
        .find("\n\n")
        .map_or(output.len() - start, |n| n + 1);
    Some(&output[start..start + len])
}

/// Times (`1.1 ms`, `242 µs`, `3 s`) become `<time>`, and runs of spaces
/// one space, since a time's width moves the columns after it.
fn mask<'a>(text: &'a str) -> String {
    text.lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let mut out: Vec<&str> = Vec::with_capacity(words.len());
            let mut i = 0;
            while i < words.len() {
                let is_number =
                    |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_digit() || c == '.');
                let unit = |w: &'a str| w.trim_end_matches([',', ')', ';']);
                if i + 1 < words.len()
                    && is_number(words[i])
                    && matches!(unit(words[i + 1]), "ns" | "µs" | "ms" | "s")
                {
                    // The punctuation after the unit stays.
                    out.push("<time>");
                    out.push(&words[i + 1][unit(words[i + 1]).len()..]);
                    i += 2;
                } else {
                    out.push(words[i]);
                    i += 1;
                }
            }
            let indent = line.len() - line.trim_start().len();
            format!("{}{}", &line[..indent], out.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_demo_transcripts_are_what_the_demo_prints() {
    let readme = std::fs::read_to_string(readme_path()).unwrap();
    let output = chatflow(&["demo"]);
    let mut checked = 0;
    let mut blessed = readme.clone();
    let bless = std::env::var_os("CHATFLOW_BLESS_README").is_some();
    // Back to front, so the ranges stay valid while blessing.
    for (range, block) in text_blocks(&readme).into_iter().rev() {
        let first = block.lines().next().unwrap_or_default();
        if !(first.starts_with("━━ ") || first == "Summary") {
            continue;
        }
        let actual = section(&output, first).unwrap_or_else(|| {
            panic!(
                "the README quotes a demo section the demo no longer prints: {first:?}\n{output}"
            )
        });
        checked += 1;
        if bless {
            blessed.replace_range(range, actual);
        } else {
            let (want, got) = (mask(block), mask(actual));
            assert!(
                want == got,
                "the README's demo transcript {first:?} is stale (run with \
                 CHATFLOW_BLESS_README=1 to update it)\n--- README\n{want}\n--- chatflow demo\n{got}"
            );
        }
    }
    assert!(
        checked >= 3,
        "the README quotes conversations and the summary"
    );
    if bless && blessed != readme {
        std::fs::write(readme_path(), blessed).unwrap();
    }
}

#[test]
fn masking_ignores_times_and_nothing_else() {
    assert_eq!(
        mask("     · lookup   rest_api ok    1.1 ms  HTTP 200"),
        mask("     · lookup   rest_api ok  983 µs  HTTP 200")
    );
    assert_ne!(
        mask("     · parse code ok 242 µs  fuel 12 978"),
        mask("     · parse code ok 242 µs  fuel 9 754")
    );
    assert_ne!(mask("completed 9 1.7 ms"), mask("completed 8 1.7 ms"));
    assert_eq!(
        mask("✓ completed: 3 blocks in 14.7 ms, 98 479 fuel"),
        mask("✓ completed: 3 blocks in 1.8 ms, 98 479 fuel")
    );
}

/// Every command of the README's command table is a `chatflow` command,
/// and every `--option` the table shows for it is one its `--help` lists.
#[test]
fn the_command_table_matches_the_cli() {
    let readme = std::fs::read_to_string(readme_path()).unwrap();
    let rows: Vec<&str> = readme
        .lines()
        .filter(|l| l.starts_with("| `chatflow "))
        .collect();
    assert!(rows.len() >= 5, "the README has its command table");
    for row in rows {
        let cell = row.split('`').nth(1).unwrap();
        let mut words = cell.split_whitespace();
        assert_eq!(words.next(), Some("chatflow"));
        let command = words.next().unwrap();
        let help = chatflow(&[command, "--help"]);
        for word in cell.split(|c: char| c.is_whitespace() || "[]|=".contains(c)) {
            if word.starts_with("--") {
                assert!(
                    help.contains(&format!("{word} ")) || help.contains(&format!("{word}\n")),
                    "the README shows `chatflow {command} {word}`, which its --help does not list"
                );
            }
        }
    }
}

/// The figures of `text` (speeds and ratios): `0.40×`, `5.4 µs`,
/// `89.2 MiB`; a range `0.30–0.48×` gives both ends with the unit.
fn figures(text: &str) -> Vec<String> {
    const UNITS: [&str; 6] = ["ns", "µs", "ms", "KiB", "MiB", "MB"];
    let trim = |w: &str| {
        w.trim_matches(|c: char| matches!(c, ',' | ';' | ':' | '(' | ')' | '*' | '`'))
            .trim_end_matches('.')
            .to_string()
    };
    let is_number = |w: &str| {
        !w.is_empty()
            && w.chars().next().is_some_and(|c| c.is_ascii_digit())
            && w.chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
    };
    let words: Vec<String> = text.split_whitespace().map(trim).collect();
    let mut found = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let (number, unit) = if let Some(n) = word.strip_suffix('×') {
            (n, "×".to_string())
        } else if let Some(next) = words.get(i + 1)
            && UNITS.contains(&next.as_str())
        {
            (word.as_str(), format!(" {next}"))
        } else {
            continue;
        };
        for end in number.split('–') {
            if is_number(end) {
                found.push(format!("{end}{unit}"));
            }
        }
    }
    found
}

#[test]
fn figures_finds_ratios_times_and_sizes() {
    assert_eq!(
        figures("runs at 0.30–0.48× (twitter.json 0.44×), 5.4 µs per run; 89.2 MiB, 2 cores."),
        ["0.30×", "0.48×", "0.44×", "5.4 µs", "89.2 MiB"]
    );
}

/// Every speed, ratio and size the README's "Benchmarks" section quotes is
/// one that `docs/benchmarks.md` reports (where each was measured, how,
/// and on what machine).
#[test]
fn the_readme_benchmark_figures_are_in_docs_benchmarks() {
    let readme = std::fs::read_to_string(readme_path()).unwrap();
    let docs = std::fs::read_to_string(readme_path().parent().unwrap().join("docs/benchmarks.md"))
        .unwrap();
    let start = readme
        .find("\n## Benchmarks\n")
        .expect("the README has a Benchmarks section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let quoted = figures(section);
    assert!(
        quoted.len() >= 5,
        "too few figures found in the README's Benchmarks section: {quoted:?}"
    );
    let missing: Vec<&String> = quoted
        .iter()
        .filter(|f| !docs.contains(f.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "the README quotes figures docs/benchmarks.md does not report: {missing:?}"
    );
}
