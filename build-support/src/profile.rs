//! The `guest` cargo profile: its settings, in one place, and whether a
//! manifest defines it.

/// The settings of the `guest` profile, as `(key, TOML value)` pairs.
///
/// They are what this repository's root `Cargo.toml` has under
/// `[profile.guest]` (a test keeps the two equal), what `chatflow new`
/// writes into a new Code block's `Cargo.toml` ([`guest_profile_toml`]),
/// and what [`BlockBuild`](crate::BlockBuild) passes to cargo with
/// `--config` when a crate's workspace does not define the profile.
///
/// Why each: `opt-level = 3` is the speed choice (`"s"` saves about 10 % of
/// the size and parses 12–14 % slower, `docs/writing-code-blocks.md`); LTO
/// and one codegen unit make the module small and let LLVM inline across
/// crates; `panic = "abort"` is what wasm32-unknown-unknown does anyway (the
/// SDK's panic hook reports the message before the abort); `strip` and no
/// debug info keep names and DWARF out of the module.
pub const GUEST_PROFILE_SETTINGS: &[(&str, &str)] = &[
    ("inherits", "\"release\""),
    ("opt-level", "3"),
    ("lto", "true"),
    ("codegen-units", "1"),
    ("panic", "\"abort\""),
    ("strip", "true"),
    ("debug", "false"),
];

/// The `[profile.<name>]` table with [`GUEST_PROFILE_SETTINGS`], as TOML
/// (one `key = value` line each, ending with a newline).
pub fn guest_profile_toml(name: &str) -> String {
    let mut toml = format!("[profile.{name}]\n");
    for (key, value) in GUEST_PROFILE_SETTINGS {
        toml.push_str(&format!("{key} = {value}\n"));
    }
    toml
}

/// The `--config` arguments that define profile `name` with
/// [`GUEST_PROFILE_SETTINGS`] (`profile.guest.opt-level=3`, …). Profiles
/// set in cargo's configuration may define a custom profile, and take
/// precedence over the manifest's (cargo's `ProfileMaker`).
pub fn guest_profile_config(name: &str) -> Vec<String> {
    GUEST_PROFILE_SETTINGS
        .iter()
        .map(|(key, value)| format!("profile.{name}.{key}={value}"))
        .collect()
}

/// Whether the TOML text of a manifest defines profile `name`: a
/// `[profile.NAME]` (or `[profile.NAME.package.…]`) table, a `NAME` key in
/// a `[profile]` table, or a dotted `profile.NAME.…` key.
///
/// A line scan rather than a TOML parser (which would add a dependency to
/// every build script that uses this crate): comments and quoted keys are
/// understood; a key inside a multi-line string or array is not looked for.
pub fn defines_profile(manifest: &str, name: &str) -> bool {
    let mut table: Vec<String> = Vec::new();
    for line in manifest.lines() {
        let line = strip_comment(line).trim();
        let path = if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_start_matches('[');
            let header = header.split(']').next().unwrap_or("");
            table = split_key(header);
            table.clone()
        } else if let Some((key, _)) = split_assignment(line) {
            let mut path = table.clone();
            path.extend(split_key(key));
            path
        } else {
            continue;
        };
        if path.len() >= 2 && path[0] == "profile" && path[1] == name {
            return true;
        }
    }
    false
}

/// `line` without a `#` comment (a `#` inside a quoted string is kept).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// `key = value` → `key`, with `=` outside quotes.
fn split_assignment(line: &str) -> Option<(&str, &str)> {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '=') => return Some((&line[..i], &line[i + 1..])),
            _ => {}
        }
    }
    None
}

/// A dotted TOML key (`profile . "guest".lto`) as its parts, unquoted.
fn split_key(key: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote = None;
    for c in key.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '.') => parts.push(std::mem::take(&mut current).trim().to_string()),
            (None, c) if c.is_whitespace() => {}
            (_, c) => current.push(c),
        }
    }
    parts.push(current.trim().to_string());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_is_found() {
        let cases = [
            "[profile.guest]\nopt-level = 3\n",
            "[package]\nname = \"x\"\n\n[profile.guest] # ours\ninherits = \"release\"\n",
            "[profile.guest.package.\"*\"]\nopt-level = 2\n",
            "[profile.\"guest\"]\n",
            "[ profile . guest ]\n",
            "[profile]\nguest = { inherits = \"release\" }\n",
            "profile.guest.inherits = \"release\"\n",
            "[profile]\nguest.inherits = \"release\"\n",
        ];
        for text in cases {
            assert!(defines_profile(text, "guest"), "{text:?}");
        }
    }

    #[test]
    fn profile_is_not_found_bad() {
        let cases = [
            "",
            "[package]\nname = \"guest\"\n",
            "[profile.release]\nlto = true\n",
            "[profile.guests]\n",
            "# [profile.guest]\n",
            "[profile.release]\nguest = 1\n",
            "[package]\ndescription = \"see [profile.guest] # here\"\n",
            "[workspace.metadata]\nprofile.guest = 1\n",
            "[profile.release.package.guest]\nopt-level = 2\n",
        ];
        for text in cases {
            assert!(!defines_profile(text, "guest"), "{text:?}");
        }
    }

    #[test]
    fn generated_table_and_config_agree() {
        let toml = guest_profile_toml("guest");
        assert!(defines_profile(&toml, "guest"));
        assert!(toml.starts_with("[profile.guest]\ninherits = \"release\"\n"));
        assert_eq!(
            guest_profile_config("guest")[..2],
            [
                "profile.guest.inherits=\"release\"",
                "profile.guest.opt-level=3"
            ]
        );
    }

    /// The root `Cargo.toml`'s `[profile.guest]` (what the repository's
    /// build scripts use) has exactly the settings `chatflow new` and
    /// `chatflow build` give authors.
    #[test]
    fn the_workspace_profile_is_the_one_authors_get() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
        let Ok(root) = std::fs::read_to_string(path) else {
            // The packaged crate, outside the repository: no workspace.
            assert!(
                !std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-sdk"))
                    .exists()
            );
            return;
        };
        let mut in_table = false;
        let mut settings = Vec::new();
        for line in root.lines() {
            let line = strip_comment(line).trim();
            if line.starts_with('[') {
                in_table = line == "[profile.guest]";
            } else if in_table && let Some((key, value)) = split_assignment(line) {
                settings.push((key.trim().to_string(), value.trim().to_string()));
            }
        }
        let want: Vec<(String, String)> = GUEST_PROFILE_SETTINGS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(settings, want);
    }
}
