//! `chatflow new PATH`: create a Code block crate, ready for `cargo test`
//! and `chatflow build`.
//!
//! The crate is its own workspace (`[workspace]` in its `Cargo.toml`, so a
//! project it sits in does not capture it), depends on the SDK by path until
//! `chatflow-sdk` is published, and carries the `guest` profile
//! (`chatflow_build_support::GUEST_PROFILE_SETTINGS`). The block itself and
//! its sample input are the files under `new/template/`, copied as they are.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use super::Status;

/// Arguments of `chatflow new`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 created, 2 bad name, existing directory or no SDK.\n\n\
Example:\n  chatflow new greet-customer\n  cd greet-customer\n  cargo test\n  chatflow build"
)]
pub struct Args {
    /// The directory to create; its last component is the crate name
    /// (unless --name). It must not exist, or be empty.
    path: PathBuf,
    /// The crate name, if not the directory's name.
    #[arg(long)]
    name: Option<String>,
    /// The SDK to depend on: the `guest-sdk` directory of a chatflow
    /// checkout. By default the one of the checkout this `chatflow` was
    /// built from.
    #[arg(long, value_name = "PATH")]
    sdk_path: Option<PathBuf>,
}

/// Where the SDK was when this binary was built: the checkout's
/// `guest-sdk/`. `cargo install --path crates/cli` keeps pointing at the
/// checkout.
const BUILT_SDK_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../guest-sdk");

const LIB_RS: &str = include_str!("new/template/src/lib.rs");
const SAMPLE: &str = include_str!("new/template/sample/api-response.json");
const README: &str = include_str!("new/template/README.md");
const GITIGNORE: &str = include_str!("new/template/gitignore");

pub fn run(args: Args) -> Result<Status> {
    let name = match &args.name {
        Some(name) => name.clone(),
        None => args
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .with_context(|| {
                format!(
                    "{}: no directory name to use as the crate name (pass --name)",
                    args.path.display()
                )
            })?,
    };
    if let Err(problem) = validate_crate_name(&name) {
        bail!("`{name}` is not a valid crate name: {problem}");
    }
    let sdk = find_sdk(args.sdk_path.as_deref())?;
    check_target(&args.path)?;

    let lib_name = name.replace('-', "_");
    let files = [
        ("Cargo.toml", cargo_toml(&name, &sdk)),
        ("src/lib.rs", LIB_RS.to_string()),
        ("sample/api-response.json", SAMPLE.to_string()),
        (".gitignore", GITIGNORE.to_string()),
        ("README.md", readme(&name, &lib_name, &sdk)),
    ];
    for (file, text) in &files {
        let path = args.path.join(file);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }

    let dir = args.path.display();
    println!("created Code block `{name}` in {dir}");
    println!("  chatflow-sdk: {}", sdk.display());
    println!();
    println!("next:");
    println!("  cd {dir}");
    println!("  cargo test");
    println!("  chatflow build");
    println!(
        "  chatflow code target/wasm32-unknown-unknown/guest/{lib_name}.wasm --set 'API Response=@sample/api-response.json'"
    );
    Ok(Status::Ok)
}

/// Cargo's rules for a package name (those of `cargo new`), plus names the
/// block's own dependencies and the standard library already take.
fn validate_crate_name(name: &str) -> Result<(), String> {
    const KEYWORDS: &[&str] = &[
        "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
        "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
        "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub",
        "ref", "return", "self", "static", "struct", "super", "trait", "true", "try", "type",
        "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
    ];
    const TAKEN: &[&str] = &[
        "std",
        "core",
        "alloc",
        "proc_macro",
        "test",
        "chatflow_sdk",
        "serde",
    ];
    const WINDOWS: &[&str] = &[
        "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
        "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
    ];
    let Some(first) = name.chars().next() else {
        return Err("it is empty".into());
    };
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "{bad:?} is not allowed (use ASCII letters, digits, `-` and `_`)"
        ));
    }
    if first.is_ascii_digit() {
        return Err("it starts with a digit".into());
    }
    if first == '-' {
        return Err("it starts with `-`".into());
    }
    if !name.chars().any(|c| c.is_ascii_alphanumeric()) {
        return Err("it has no letter or digit".into());
    }
    if name.len() > 64 {
        return Err(format!(
            "it is {} characters long (crates.io allows 64)",
            name.len()
        ));
    }
    let lib = name.replace('-', "_");
    if KEYWORDS.contains(&lib.as_str()) {
        return Err("it is a Rust keyword".into());
    }
    if TAKEN.contains(&lib.as_str()) {
        return Err("a crate the block depends on already has that name".into());
    }
    if WINDOWS.contains(&lib.to_ascii_lowercase().as_str()) {
        return Err("it is a reserved file name on Windows".into());
    }
    Ok(())
}

/// The SDK directory, absolute: `--sdk-path`, or where it was when this
/// binary was built.
fn find_sdk(given: Option<&Path>) -> Result<PathBuf> {
    let (path, hint) = match given {
        Some(path) => (path.to_path_buf(), "--sdk-path"),
        None => (PathBuf::from(BUILT_SDK_PATH), "the default"),
    };
    let manifest = path.join("Cargo.toml");
    let is_sdk = std::fs::read_to_string(&manifest)
        .is_ok_and(|text| text.lines().any(|l| l.trim() == "name = \"chatflow-sdk\""));
    if !is_sdk {
        if given.is_some() {
            bail!(
                "--sdk-path {}: no chatflow-sdk there (expected the `guest-sdk` directory of a chatflow checkout)",
                path.display()
            );
        }
        bail!(
            "the chatflow SDK is not at {} ({hint}: where it was when this chatflow was built; the checkout moved or is gone). \
             Pass --sdk-path with the `guest-sdk` directory of a chatflow checkout",
            path.display()
        );
    }
    std::fs::canonicalize(&path).with_context(|| format!("resolving {}", path.display()))
}

/// The directory must not exist, or be empty.
fn check_target(path: &Path) -> Result<()> {
    match std::fs::read_dir(path) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} already exists and is not empty: chatflow new never overwrites files; choose a new directory",
                    path.display()
                );
            }
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) if path.exists() => {
            bail!("{} already exists and is not a directory", path.display())
        }
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn cargo_toml(name: &str, sdk: &Path) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let published = version
        .rsplit_once('.')
        .map_or(version, |(major_minor, _)| major_minor);
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib: the .wasm module a flow runs; rlib: lets `cargo test` link the
# block natively, against the SDK's test host.
crate-type = ["cdylib", "rlib"]

[dependencies]
# The chatflow SDK. Until it is published on crates.io this is a path
# dependency on a chatflow checkout (written by `chatflow new`; edit it if the
# checkout moves). Once it is published, use instead:
#     chatflow-sdk = "{published}"
# A block that handles JSON only can add `default-features = false` (no XML).
chatflow-sdk = {{ path = {sdk} }}
serde = {{ version = "1", features = ["derive"] }}

# Small, fast modules. `chatflow build` builds with this profile and adds the
# rustc flags `-Ctarget-feature=+simd128 -Cllvm-args=-inline-threshold=1000`
# (wasm SIMD for the JSON and XML parsers, more inlining: 8-20 % faster
# parsing); a plain `cargo build --target wasm32-unknown-unknown --profile
# guest` uses the profile without the flags.
{profile}
# This crate is a workspace of its own, so that a project it sits in does not
# take it over.
[workspace]
"#,
        sdk = toml_string(&sdk.display().to_string()),
        profile = chatflow_build_support::guest_profile_toml("guest"),
    )
}

fn readme(name: &str, lib_name: &str, sdk: &Path) -> String {
    let guide = sdk
        .parent()
        .map(|root| root.join("docs/writing-code-blocks.md"));
    let guide = match guide {
        Some(path) if path.is_file() => format!("here: {}", path.display()),
        _ => "next to the SDK".to_string(),
    };
    README
        .replace("{name}", name)
        .replace("{lib_name}", lib_name)
        .replace("{docs}", &guide)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_names() {
        for good in ["greet-customer", "a", "parse_order2", "_private", "A-b_C"] {
            assert_eq!(validate_crate_name(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn crate_names_bad() {
        let cases = [
            ("", "empty"),
            ("2fast", "starts with a digit"),
            ("-x", "starts with `-`"),
            ("_", "no letter or digit"),
            ("my block", "' ' is not allowed"),
            ("zoë", "'ë' is not allowed"),
            ("a.b", "'.' is not allowed"),
            ("fn", "keyword"),
            ("self", "keyword"),
            ("std", "already has that name"),
            ("chatflow-sdk", "already has that name"),
            ("serde", "already has that name"),
            ("nul", "reserved file name"),
            (&"x".repeat(65), "65 characters"),
        ];
        for (name, want) in cases {
            let err = validate_crate_name(name).unwrap_err();
            assert!(err.contains(want), "{name:?}: {err}");
        }
    }

    #[test]
    fn toml_strings() {
        assert_eq!(toml_string("/a/b"), "\"/a/b\"");
        assert_eq!(toml_string(r#"C:\x "y""#), r#""C:\\x \"y\"""#);
        assert_eq!(toml_string("a\nb"), "\"a\\u000Ab\"");
    }

    #[test]
    fn manifest_has_the_profile_and_its_own_workspace() {
        let toml = cargo_toml("greet-customer", Path::new("/x/guest-sdk"));
        assert!(toml.contains("name = \"greet-customer\"\n"));
        assert!(toml.contains("chatflow-sdk = { path = \"/x/guest-sdk\" }\n"));
        assert!(toml.contains("crate-type = [\"cdylib\", \"rlib\"]\n"));
        assert!(chatflow_build_support::defines_profile(&toml, "guest"));
        assert!(toml.contains(&chatflow_build_support::guest_profile_toml("guest")));
        assert!(toml.trim_end().ends_with("\n[workspace]"));
    }

    #[test]
    fn the_default_sdk_is_found() {
        let sdk = find_sdk(None).unwrap();
        assert!(sdk.is_absolute());
        assert!(sdk.join("src/lib.rs").is_file());
    }

    /// docs/writing-code-blocks.md quotes the block `chatflow new` writes
    /// (section 3): the quote must be the template's text.
    #[test]
    fn the_guide_quotes_the_template() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/writing-code-blocks.md"
        );
        let Ok(guide) = std::fs::read_to_string(path) else {
            // The packaged crate, outside the repository: no guide.
            assert!(find_sdk(None).is_err());
            return;
        };
        let section = &guide[guide.find("## 3. Write the block").unwrap()..];
        let start = section.find("```rust\n").unwrap() + "```rust\n".len();
        let quote = &section[start..start + section[start..].find("```\n").unwrap()];
        assert!(quote.contains("chatflow_sdk::code_block!(run);"), "{quote}");
        assert!(
            LIB_RS.contains(quote),
            "the guide's section 3 differs from new/template/src/lib.rs:\n{quote}"
        );
    }

    #[test]
    fn a_wrong_sdk_path_is_refused_bad() {
        let err = find_sdk(Some(Path::new(env!("CARGO_MANIFEST_DIR")))).unwrap_err();
        assert!(err.to_string().contains("no chatflow-sdk there"), "{err}");
    }
}
