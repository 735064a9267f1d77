//! Golden-file checks: every input file in a `tests/ui/` directory must
//! produce exactly the text in the `.err` file beside it. Run with `BLESS=1`
//! to (re)write the `.err` files after an intended change, then review the
//! diff.

use std::path::{Path, PathBuf};

/// Checks every `*.{ext}` file in `tests/ui/{name}` (a path relative to the
/// package, so messages that name files are the same on every machine):
/// `render(file name, contents)` must equal the `.err` file beside it.
pub fn check(name: &str, ext: &str, render: impl Fn(&str, &str) -> String) {
    let dir = Path::new("tests/ui").join(name);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no golden files in {}", dir.display());
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    for input in &inputs {
        let file = input.file_name().unwrap().to_string_lossy();
        let source = std::fs::read_to_string(input).unwrap();
        let got = render(&file, &source);
        let expected_path = input.with_extension("err");
        if bless {
            std::fs::write(&expected_path, format!("{got}\n")).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with BLESS=1)", expected_path.display()));
        if expected.trim_end() != got {
            failures.push(format!(
                "{}:\n  expected: {}\n  got:      {got}",
                input.display(),
                expected.trim_end()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
