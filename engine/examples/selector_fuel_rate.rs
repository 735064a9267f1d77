//! Nanoseconds per unit of fuel: a plain wasm loop against the worst cases
//! found for `json_select` and `xml_select` (large and small documents,
//! cursor-defeating lookups, long keys and names, escapes, whitespace,
//! attributes, …). The target of `docs/abi.md`'s fuel table: no selector
//! case costs more than twice the plain loop's nanoseconds per fuel. Used
//! to calibrate the rates in `engine/src/sandbox/host/parse/`; a quick
//! check, the criterion `fuel_rate` bench is where the figures are kept.
//!
//! Run with: `cargo run --release -p chatflow-engine --example selector_fuel_rate [FILTER] [RUNS]`
//! (`FILTER` keeps the cases whose name contains it; `RUNS` per case,
//! default 5: each round runs the plain loop, then the case, and the
//! fastest of each is compared, as the machine may be shared).

use std::fmt::Write;
use std::time::{Duration, Instant};

use chatflow_engine::Properties;
use chatflow_engine::net::{HttpClient, NetPolicy};
use chatflow_engine::sandbox::{Limits, Sandbox, SandboxConfig};

/// Where the guest keeps things: the property name at 0, the table of
/// selectors at 16, the selectors from 4096, its buffer after them.
const TABLE: usize = 16;
const SELECTORS: usize = 4096;

struct Case {
    name: String,
    /// The property's name (`d` unless a case says otherwise).
    prop: String,
    lang: &'static str,
    doc: String,
    selectors: Vec<String>,
    calls: u32,
    buf_cap: u32,
}

fn case(
    name: &str,
    lang: &'static str,
    doc: String,
    selectors: &[&str],
    calls: u32,
    buf_cap: u32,
) -> Case {
    Case {
        name: name.to_string(),
        prop: "d".to_string(),
        lang,
        doc,
        selectors: selectors.iter().map(|s| s.to_string()).collect(),
        calls,
        buf_cap,
    }
}

fn escaped(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "\\{b:02x}");
        s
    })
}

/// A guest that calls `<lang>_select` `calls` times, cycling through the
/// selectors, into a buffer of `buf_cap` bytes.
fn guest(c: &Case) -> String {
    let mut data = String::new();
    let mut at = SELECTORS;
    for (i, s) in c.selectors.iter().enumerate() {
        let mut entry = Vec::new();
        entry.extend_from_slice(&(at as u32).to_le_bytes());
        entry.extend_from_slice(&(s.len() as u32).to_le_bytes());
        let _ = writeln!(
            data,
            "(data (i32.const {}) \"{}\")",
            TABLE + 8 * i,
            escaped(&entry)
        );
        let _ = writeln!(
            data,
            "(data (i32.const {at}) \"{}\")",
            escaped(s.as_bytes())
        );
        at += s.len();
    }
    let prop_at = at;
    let _ = writeln!(
        data,
        "(data (i32.const {at}) \"{}\")",
        escaped(c.prop.as_bytes())
    );
    at += c.prop.len();
    let buf = at;
    let pages = (buf + c.buf_cap as usize).div_ceil(65536) + 1;
    let n = c.selectors.len();
    format!(
        r#"(module
  (import "chatflow" "{lang}_select" (func $sel (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") {pages})
  {data}
  (func (export "chatflow_abi_v1"))
  (func (export "chatflow_run") (result i32)
    (local $i i32) (local $k i32)
    (loop $l
      (local.set $k (i32.mul (i32.rem_u (local.get $i) (i32.const {n})) (i32.const 8)))
      (drop (call $sel (i32.const {prop_at}) (i32.const {prop_len})
        (i32.load (i32.add (i32.const {TABLE}) (local.get $k)))
        (i32.load (i32.add (i32.const {t4}) (local.get $k)))
        (i32.const {buf}) (i32.const {cap})))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const {calls}))))
    (i32.const 0)))"#,
        lang = c.lang,
        prop_len = c.prop.len(),
        t4 = TABLE + 4,
        cap = c.buf_cap,
        calls = c.calls,
    )
}

/// The plain loop: `iterations` of add, compare, branch.
fn plain_loop(iterations: u32) -> String {
    format!(
        r#"(module
  (memory (export "memory") 1)
  (func (export "chatflow_abi_v1"))
  (func (export "chatflow_run") (result i32)
    (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.ne (local.get $i) (i32.const {iterations}))))
    (i32.const 0)))"#
    )
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    let mb = 4 << 20;
    // --- JSON: the first parse (validation, then the tape) ---
    let zeros = format!("[{}0]", "0,".repeat(mb / 2));
    v.push(case(
        "json parse [0,0,…]",
        "json",
        zeros.clone(),
        &["/0"],
        1,
        0,
    ));
    let nested = format!("[{}[0]]", "[0],".repeat(mb / 4));
    v.push(case("json parse [[0],…]", "json", nested, &["/0"], 1, 0));
    let deep = format!(
        "[{}0]",
        format!("{}0{},", "[".repeat(127), "]".repeat(127)).repeat(mb / 256)
    );
    v.push(case("json parse 127-deep", "json", deep, &["/0"], 1, 0));
    let empties = format!("[{}[]]", "[],".repeat(mb / 3));
    v.push(case("json parse [[],…]", "json", empties, &["/0"], 1, 0));
    let members = format!("{{{}\"\":0}}", "\"\":0,".repeat(mb / 5));
    v.push(case(
        "json parse {\"\":0,…}",
        "json",
        members,
        &["/x"],
        1,
        0,
    ));
    let strings = format!("[{}\"\"]", "\"\",".repeat(mb / 3));
    v.push(case("json parse [\"\",…]", "json", strings, &["/0"], 1, 0));
    let escapes = format!("[\"{}\"]", "\\n".repeat(mb / 2));
    v.push(case(
        "json parse \"\\n\\n…\"",
        "json",
        escapes.clone(),
        &["/1"],
        1,
        0,
    ));
    let unicode = format!("[\"{}\"]", "\\u00e9".repeat(mb / 6));
    v.push(case(
        "json parse \"\\u00e9…\"",
        "json",
        unicode.clone(),
        &["/1"],
        1,
        0,
    ));
    let spaces = format!("[{}0]", " ".repeat(mb));
    v.push(case("json parse whitespace", "json", spaces, &["/1"], 1, 0));
    let number = format!("[{}]", "1".repeat(mb));
    v.push(case(
        "json parse long number",
        "json",
        number.clone(),
        &["/1"],
        1,
        0,
    ));
    let floats = format!("[{}1.5e-7]", "1.5e-7,".repeat(mb / 7));
    v.push(case("json parse floats", "json", floats, &["/0"], 1, 0));
    // --- JSON lookups (the parse is cheap next to them) ---
    let keys: String = (0..20_000).map(|i| format!("\"k{i:06}\":0,")).collect();
    let object = format!("{{{keys}\"last\":0}}");
    v.push(case(
        "json key search 20k members",
        "json",
        object.clone(),
        &["/last"],
        2_000,
        0,
    ));
    let long_keys: String = (0..2_000)
        .map(|i| format!("\"{}{i:04}\":0,", "k".repeat(200)))
        .collect();
    let long_object = format!("{{{long_keys}\"x\":0}}");
    let probe = format!("/{}9999", "k".repeat(200));
    v.push(case(
        "json key search long keys",
        "json",
        long_object,
        &[&probe],
        2_000,
        0,
    ));
    let esc_keys: String = (0..2_000)
        .map(|i| format!("\"{}{i:04}\":0,", "\\u006b".repeat(60)))
        .collect();
    let esc_object = format!("{{{esc_keys}\"x\":0}}");
    let probe = format!("/{}9999", "k".repeat(60));
    v.push(case(
        "json key search escaped keys",
        "json",
        esc_object,
        &[&probe],
        200,
        0,
    ));
    let n = 200_000;
    let array = format!("[{}0]", "0,".repeat(n));
    let last = format!("/{n}");
    v.push(case(
        "json array hop (no cursor)",
        "json",
        array.clone(),
        &[&last, "/0"],
        400,
        0,
    ));
    v.push(case(
        "json array hop (cursor)",
        "json",
        array,
        &[&last],
        1_000_000,
        0,
    ));
    let big_items = format!(
        "[{}[0]]",
        format!("[{}0],", "0,".repeat(1000)).repeat(2_000)
    );
    v.push(case(
        "json array hop over subtrees",
        "json",
        big_items,
        &["/2000", "/0"],
        2_000,
        0,
    ));
    // Hops over subtrees of a document far larger than the caches: each
    // hop may miss in the index and in the text.
    let huge = format!(
        "[{}[0]]",
        format!("[{}0],", "0,".repeat(1000)).repeat(20_000)
    );
    v.push(case(
        "json array hop, 40 MB document",
        "json",
        huge,
        &["/20000", "/0"],
        100,
        0,
    ));
    // Irregular strides, so that prefetching cannot guess the next hop.
    let mut seed = 1u64;
    let mut irregular = String::from("[");
    for _ in 0..20_000 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = 100 + (seed >> 33) as usize % 1900;
        irregular.push_str(&format!("[{}0],", "0,".repeat(n)));
    }
    irregular.push_str("0]");
    v.push(case(
        "json array hop, irregular 40 MB",
        "json",
        irregular,
        &["/20000", "/0"],
        100,
        0,
    ));
    let members: String = (0..20_000)
        .map(|i| format!("\"k{i:05}\":[{}0],", "0,".repeat(1000)))
        .collect();
    let huge_object = format!("{{{members}\"last\":0}}");
    v.push(case(
        "json key search, 40 MB document",
        "json",
        huge_object,
        &["/last"],
        30,
        0,
    ));
    let tiny = r#"{"a":1}"#.to_string();
    v.push(case(
        "json tiny call",
        "json",
        tiny.clone(),
        &["/a"],
        2_000_000,
        0,
    ));
    v.push(case(
        "json tiny call (miss)",
        "json",
        tiny.clone(),
        &["/b"],
        2_000_000,
        0,
    ));
    v.push(case(
        "json tiny call (bad pointer)",
        "json",
        tiny.clone(),
        &["x"],
        2_000_000,
        0,
    ));
    let long_pointer = format!("/a{}", "/a".repeat(30_000));
    v.push(case(
        "json long pointer",
        "json",
        tiny,
        &[&long_pointer],
        2_000,
        0,
    ));
    // --- JSON rendering ---
    let spaced = format!("[{}0]", "0 ,\n ".repeat(mb / 5));
    v.push(case("json render whitespace", "json", spaced, &[""], 50, 0));
    v.push(case(
        "json render [0,0,…]",
        "json",
        zeros.clone(),
        &[""],
        50,
        0,
    ));
    v.push(case(
        "json render [0,0,…] copied",
        "json",
        zeros,
        &[""],
        50,
        mb as u32 + 16,
    ));
    v.push(case(
        "json render \"\\n…\"",
        "json",
        escapes,
        &["/0"],
        50,
        0,
    ));
    v.push(case(
        "json render \"\\u00e9…\"",
        "json",
        unicode,
        &["/0"],
        50,
        0,
    ));
    v.push(case(
        "json render long number",
        "json",
        number,
        &["/0"],
        50,
        0,
    ));
    let strs = format!("[{}\"x\"]", "\"x\\\"\",".repeat(mb / 6));
    v.push(case("json render strings", "json", strs, &[""], 50, 0));

    // --- XML: the first parse ---
    let empties = format!("<r>{}</r>", "<a/>".repeat(mb / 4));
    v.push(case("xml parse <a/>…", "xml", empties, &["/x"], 1, 0));
    let pairs = format!("<r>{}</r>", "<a></a>".repeat(mb / 7));
    v.push(case("xml parse <a></a>…", "xml", pairs, &["/x"], 1, 0));
    let deep = format!("{}{}", "<a>".repeat(mb / 7), "</a>".repeat(mb / 7));
    v.push(case("xml parse deep", "xml", deep, &["/x"], 1, 0));
    let refs = format!("<r>{}</r>", "&#1;".repeat(mb / 4));
    v.push(case("xml parse &#1;…", "xml", refs.clone(), &["/x"], 1, 0));
    let ents = format!("<r>{}</r>", "&lt;".repeat(mb / 4));
    v.push(case("xml parse &lt;…", "xml", ents, &["/x"], 1, 0));
    let attrs: String = (0..mb / 12).map(|i| format!(" a{i:x}=\"\"")).collect();
    let many_attrs = format!("<r{attrs}/>");
    v.push(case(
        "xml parse many attributes",
        "xml",
        many_attrs.clone(),
        &["/x"],
        1,
        0,
    ));
    let few_attrs = format!(
        "<r>{}</r>",
        "<a b='' c='' d='' e='' f='' g='' h='' i=''/>".repeat(mb / 43)
    );
    v.push(case(
        "xml parse 8 attributes each",
        "xml",
        few_attrs,
        &["/x"],
        1,
        0,
    ));
    let nine_attrs = format!(
        "<r>{}</r>",
        "<a b='' c='' d='' e='' f='' g='' h='' i='' j=''/>".repeat(mb / 48)
    );
    v.push(case(
        "xml parse 9 attributes each",
        "xml",
        nine_attrs,
        &["/x"],
        1,
        0,
    ));
    let attr_refs = format!("<r a=\"{}\"/>", "&#9;".repeat(mb / 4));
    v.push(case(
        "xml parse attribute refs",
        "xml",
        attr_refs,
        &["/x"],
        1,
        0,
    ));
    let comments = format!("<r>{}</r>", "<!---->".repeat(mb / 7));
    v.push(case("xml parse comments", "xml", comments, &["/x"], 1, 0));
    let cdata = format!("<r>{}</r>", "<![CDATA[]]>".repeat(mb / 12));
    v.push(case("xml parse cdata", "xml", cdata, &["/x"], 1, 0));
    let mixed = format!("<r>{}</r>", "x&#1;<a/>\r\n".repeat(mb / 11));
    v.push(case("xml parse mixed", "xml", mixed.clone(), &["/x"], 1, 0));
    // --- XML lookups ---
    let n = 200_000;
    let siblings = format!("<r>{}</r>", "<i>x</i>".repeat(n));
    let last = format!("/r/i[{n}]");
    v.push(case(
        "xml sibling hop (no cursor)",
        "xml",
        siblings.clone(),
        &[&last, "/r/i[1]"],
        400,
        0,
    ));
    v.push(case(
        "xml sibling hop (cursor)",
        "xml",
        siblings.clone(),
        &[&last],
        1_000_000,
        0,
    ));
    v.push(case(
        "xml sibling hop (miss)",
        "xml",
        siblings,
        &["/r/j"],
        400,
        0,
    ));
    let long_names = format!(
        "<r>{}</r>",
        format!("<{}/>", "n".repeat(100)).repeat(20_000)
    );
    v.push(case(
        "xml sibling hop long names",
        "xml",
        long_names,
        &["/r/x", "/r/n"],
        400,
        0,
    ));
    let prefixed = format!("<r>{}</r>", "<p:i/>".repeat(n));
    v.push(case(
        "xml sibling hop prefixed",
        "xml",
        prefixed,
        &["/r/q:i"],
        400,
        0,
    ));
    let subtrees = format!(
        "<r>{}<z/></r>",
        format!("<i>{}</i>", "<a/>".repeat(200)).repeat(2_000)
    );
    v.push(case(
        "xml sibling hop over subtrees",
        "xml",
        subtrees,
        &["/r/z"],
        2_000,
        0,
    ));
    let huge = format!(
        "<r>{}<z/></r>",
        format!("<i>{}</i>", "<a/>".repeat(500)).repeat(20_000)
    );
    v.push(case(
        "xml sibling hop, 40 MB document",
        "xml",
        huge,
        &["/r/z", "/r/i"],
        50,
        0,
    ));
    let mut seed = 7u64;
    let mut irregular = String::from("<r>");
    for _ in 0..20_000 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = 50 + (seed >> 33) as usize % 950;
        irregular.push_str(&format!("<i>{}</i>", "<a/>".repeat(n)));
    }
    irregular.push_str("<z/></r>");
    v.push(case(
        "xml sibling hop, irregular 40 MB",
        "xml",
        irregular,
        &["/r/z", "/r/i"],
        50,
        0,
    ));
    let mut seed = 3u64;
    let mut members = String::from("{");
    for i in 0..20_000 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = 100 + (seed >> 33) as usize % 1900;
        members.push_str(&format!("\"k{i}\":[{}0],", "0,".repeat(n)));
    }
    members.push_str("\"last\":0}");
    v.push(case(
        "json key search, irregular 40 MB",
        "json",
        members,
        &["/last"],
        30,
        0,
    ));
    let strings: String = (0..20_000)
        .map(|i| format!("\"k{i}\":\"{}\",", "x".repeat(1000 + i % 997)))
        .collect();
    let far_keys = format!("{{{strings}\"last\":0}}");
    v.push(case(
        "json key search, far keys 20 MB",
        "json",
        far_keys,
        &["/last"],
        100,
        0,
    ));
    let tiny = "<r><a>1</a></r>".to_string();
    v.push(case(
        "xml tiny call",
        "xml",
        tiny.clone(),
        &["/r/a"],
        2_000_000,
        0,
    ));
    v.push(case(
        "xml tiny call (attribute miss)",
        "xml",
        tiny.clone(),
        &["/r/@x"],
        2_000_000,
        0,
    ));
    v.push(case(
        "xml tiny call (bad path)",
        "xml",
        tiny.clone(),
        &["r"],
        2_000_000,
        0,
    ));
    let long_path = format!("/r{}", "/a".repeat(30_000));
    v.push(case("xml long path", "xml", tiny, &[&long_path], 2_000, 0));
    // --- XML text and attributes ---
    v.push(case("xml text &#1;…", "xml", refs, &["/r"], 30, 0));
    v.push(case("xml text mixed", "xml", mixed, &["/r"], 30, 0));
    let plain = format!("<r>{}</r>", "x".repeat(mb));
    v.push(case("xml text plain", "xml", plain, &["/r"], 30, 0));
    let crlf = format!("<r>{}</r>", "\r\n".repeat(mb / 2));
    v.push(case("xml text CRLF", "xml", crlf, &["/r"], 30, 0));
    let last_attr = format!("/r/@a{:x}", mb / 12 - 1);
    v.push(case(
        "xml attribute last of many",
        "xml",
        many_attrs,
        &[&last_attr],
        20,
        0,
    ));
    let value_refs = format!("<r a=\"{}\"/>", "&#9;".repeat(mb / 4));
    v.push(case(
        "xml attribute value refs",
        "xml",
        value_refs,
        &["/r/@a"],
        20,
        0,
    ));
    // --- long property names (hashed in the parse cache twice a call) ---
    let long_name = "n".repeat(60_000);
    let mut c = case(
        "json long property name",
        "json",
        "[0]".to_string(),
        &["/0"],
        20_000,
        0,
    );
    c.prop = long_name.clone();
    v.push(c);
    let mut c = case(
        "xml long property name",
        "xml",
        "<r/>".to_string(),
        &["/r"],
        20_000,
        0,
    );
    c.prop = long_name;
    v.push(c);
    let tildes = format!("/{}", "~0".repeat(30_000));
    v.push(case(
        "json pointer escapes",
        "json",
        "{\"a\":1}".to_string(),
        &[&tildes],
        10_000,
        0,
    ));
    v
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let filter = args.next().unwrap_or_default();
    let runs: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let sandbox = Sandbox::new(
        SandboxConfig::default(),
        HttpClient::new(NetPolicy::default())?,
    )?;
    // Generous fuel and time: the cases end by themselves.
    let limits = Limits::maximum();
    let once = |module: &chatflow_engine::sandbox::CodeModule,
                props: &Properties|
     -> anyhow::Result<(Duration, u64)> {
        let start = Instant::now();
        let outcome = rt.block_on(sandbox.run(module, props, &limits));
        let took = start.elapsed();
        if let Err(e) = outcome.result {
            anyhow::bail!("run failed: {e}");
        }
        Ok((took, outcome.fuel_used))
    };
    let per_fuel = |(t, fuel): (Duration, u64)| t.as_secs_f64() * 1e9 / fuel as f64;
    // The machine is shared: each case is measured in rounds alternating
    // with the plain loop, and the fastest of each is kept.
    let plain = sandbox.load(&wat::parse_str(plain_loop(50_000_000))?)?;
    let no_props = Properties::new();
    println!(
        "{:<40} {:>12} {:>10} {:>9} {:>9} {:>6}",
        "case", "fuel", "ms", "ns/fuel", "loop", "ratio"
    );
    let mut worst: (f64, String) = (0.0, String::new());
    for c in cases() {
        if !c.name.contains(&filter) {
            continue;
        }
        let props: Properties = [(c.prop.as_str(), c.doc.as_str())].into_iter().collect();
        let module = sandbox.load(&wat::parse_str(guest(&c))?)?;
        let (mut best, mut base) = (f64::MAX, f64::MAX);
        let (mut took, mut fuel) = (Duration::ZERO, 0);
        for _ in 0..runs {
            base = base.min(per_fuel(once(&plain, &no_props)?));
            let run = once(&module, &props)?;
            if per_fuel(run) < best {
                best = per_fuel(run);
                (took, fuel) = run;
            }
        }
        let ratio = best / base;
        println!(
            "{:<40} {:>12} {:>10.2} {:>9.3} {:>9.3} {:>6.2}",
            c.name,
            fuel,
            took.as_secs_f64() * 1e3,
            best,
            base,
            ratio
        );
        if ratio > worst.0 {
            worst = (ratio, c.name.clone());
        }
    }
    println!("worst: {} at {:.2} x the plain loop", worst.1, worst.0);
    Ok(())
}
