//! The parse-and-walk workloads of the benchmarks, compiled both natively and
//! into the benchmark Code blocks, so that `native` and `sandbox` variants run
//! the very same code and must produce the very same summary.
//!
//! - [`json_walk`]: `serde_json::from_slice::<Value>` and a walk that touches
//!   every node (what "parse a JSON API response" costs when nothing is known
//!   about its shape).
//! - [`json_typed`]: serde derive into structs for the fields a real Code
//!   block would read, per corpus document shape.
//! - [`xml_walk`]: a quick-xml event walk that decodes every element name,
//!   attribute value and text node.
//!
//! Summaries are plain integers (float values are folded into a hash of their
//! bit patterns), so they compare exactly across the host and wasm and
//! round-trip through JSON text without loss.

#![deny(missing_docs)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Folds `x` into a running 64-bit hash (order sensitive).
fn mix(h: u64, x: u64) -> u64 {
    (h.rotate_left(5) ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn mix_bytes(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, b| mix(h, u64::from(*b)))
}

/// What a full walk of a JSON document saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonSummary {
    /// Objects.
    pub objects: u64,
    /// Arrays.
    pub arrays: u64,
    /// Object keys.
    pub keys: u64,
    /// String values.
    pub strings: u64,
    /// Bytes of keys and string values.
    pub string_bytes: u64,
    /// Numbers.
    pub numbers: u64,
    /// Hash of every number's `f64` bit pattern, in document order.
    pub number_hash: u64,
    /// `true` and `false` values.
    pub bools: u64,
    /// `null` values.
    pub nulls: u64,
}

/// Parses `bytes` into a `serde_json::Value` and walks every node.
pub fn json_walk(bytes: &[u8]) -> Result<JsonSummary, serde_json::Error> {
    let value: Value = serde_json::from_slice(bytes)?;
    let mut summary = JsonSummary::default();
    walk_value(&value, &mut summary);
    Ok(summary)
}

fn walk_value(value: &Value, s: &mut JsonSummary) {
    match value {
        Value::Null => s.nulls += 1,
        Value::Bool(_) => s.bools += 1,
        Value::Number(n) => {
            s.numbers += 1;
            let bits = n.as_f64().map_or(0, f64::to_bits);
            s.number_hash = mix(s.number_hash, bits);
        }
        Value::String(text) => {
            s.strings += 1;
            s.string_bytes += text.len() as u64;
        }
        Value::Array(items) => {
            s.arrays += 1;
            for item in items {
                walk_value(item, s);
            }
        }
        Value::Object(map) => {
            s.objects += 1;
            for (key, item) in map {
                s.keys += 1;
                s.string_bytes += key.len() as u64;
                walk_value(item, s);
            }
        }
    }
}

/// The corpus document shapes [`json_typed`] knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// A Twitter search API response (`twitter.json`).
    Twitter,
    /// A ticketing catalogue (`citm_catalog.json`).
    Citm,
    /// A GeoJSON feature collection, number heavy (`canada.json`).
    Canada,
    /// A GitHub public events API response (`github_events.json`).
    GithubEvents,
    /// The JSON spec's "Image" example (`demo.json`).
    Demo,
}

impl Shape {
    /// The shape of a corpus file, from its file name.
    pub fn from_file_name(name: &str) -> Option<Shape> {
        Some(match name.trim_end_matches(".json") {
            "twitter" => Shape::Twitter,
            "citm_catalog" => Shape::Citm,
            "canada" => Shape::Canada,
            "github_events" => Shape::GithubEvents,
            "demo" => Shape::Demo,
            _ => return None,
        })
    }
}

/// What a typed parse extracted: a count of records, the bytes of the text
/// fields read, and a hash of every field read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypedSummary {
    /// Records (statuses, performances, points, events, images).
    pub records: u64,
    /// Bytes of the text fields read.
    pub text_bytes: u64,
    /// Hash of the fields read.
    pub hash: u64,
}

impl TypedSummary {
    fn text(&mut self, text: &str) {
        self.text_bytes += text.len() as u64;
        self.hash = mix_bytes(self.hash, text.as_bytes());
    }

    fn num(&mut self, n: u64) {
        self.hash = mix(self.hash, n);
    }
}

#[derive(Deserialize)]
struct Twitter {
    statuses: Vec<Status>,
}

#[derive(Deserialize)]
struct Status {
    id: u64,
    text: String,
    user: TwitterUser,
    retweet_count: u64,
    favorite_count: u64,
}

#[derive(Deserialize)]
struct TwitterUser {
    screen_name: String,
    followers_count: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Citm {
    events: BTreeMap<String, CitmEvent>,
    performances: Vec<Performance>,
}

#[derive(Deserialize)]
struct CitmEvent {
    id: u64,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Performance {
    id: u64,
    event_id: u64,
    prices: Vec<Price>,
    start: u64,
}

#[derive(Deserialize)]
struct Price {
    amount: u64,
}

#[derive(Deserialize)]
struct FeatureCollection {
    features: Vec<Feature>,
}

#[derive(Deserialize)]
struct Feature {
    geometry: Geometry,
}

#[derive(Deserialize)]
struct Geometry {
    coordinates: Vec<Vec<(f64, f64)>>,
}

#[derive(Deserialize)]
struct GithubEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    actor: GithubActor,
    repo: GithubRepo,
}

#[derive(Deserialize)]
struct GithubActor {
    login: String,
}

#[derive(Deserialize)]
struct GithubRepo {
    name: String,
}

#[derive(Deserialize)]
struct DemoDoc {
    #[serde(rename = "Image")]
    image: Image,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Image {
    width: u64,
    height: u64,
    title: String,
    thumbnail: Thumbnail,
    #[serde(rename = "IDs")]
    ids: Vec<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Thumbnail {
    url: String,
}

/// Parses `bytes` with serde derive into structs holding only the fields a
/// real Code block for that kind of response would read (unknown fields are
/// skipped by serde), and summarizes them.
pub fn json_typed(shape: Shape, bytes: &[u8]) -> Result<TypedSummary, serde_json::Error> {
    let mut s = TypedSummary::default();
    match shape {
        Shape::Twitter => {
            let doc: Twitter = serde_json::from_slice(bytes)?;
            for status in &doc.statuses {
                s.records += 1;
                s.num(status.id);
                s.text(&status.text);
                s.text(&status.user.screen_name);
                s.num(status.user.followers_count);
                s.num(status.retweet_count);
                s.num(status.favorite_count);
            }
        }
        Shape::Citm => {
            let doc: Citm = serde_json::from_slice(bytes)?;
            for (key, event) in &doc.events {
                s.text(key);
                s.num(event.id);
                if let Some(name) = &event.name {
                    s.text(name);
                }
            }
            for perf in &doc.performances {
                s.records += 1;
                s.num(perf.id);
                s.num(perf.event_id);
                s.num(perf.start);
                for price in &perf.prices {
                    s.num(price.amount);
                }
            }
        }
        Shape::Canada => {
            let doc: FeatureCollection = serde_json::from_slice(bytes)?;
            for feature in &doc.features {
                for ring in &feature.geometry.coordinates {
                    for (x, y) in ring {
                        s.records += 1;
                        s.num(x.to_bits());
                        s.num(y.to_bits());
                    }
                }
            }
        }
        Shape::GithubEvents => {
            let events: Vec<GithubEvent> = serde_json::from_slice(bytes)?;
            for event in &events {
                s.records += 1;
                s.text(&event.id);
                s.text(&event.kind);
                s.text(&event.actor.login);
                s.text(&event.repo.name);
            }
        }
        Shape::Demo => {
            let doc: DemoDoc = serde_json::from_slice(bytes)?;
            let image = &doc.image;
            s.records += 1;
            s.num(image.width);
            s.num(image.height);
            s.text(&image.title);
            s.text(&image.thumbnail.url);
            for id in &image.ids {
                s.num(*id);
            }
        }
    }
    Ok(s)
}

/// An image API response: the JSON spec's `Image` example (`demo.json`) and
/// larger responses of the same shape. What the small-block benches parse
/// (`code_block` group): a typed parse and three properties set.
#[derive(Debug, Deserialize)]
pub struct ImageDoc {
    /// The image.
    #[serde(rename = "Image")]
    pub image: ImageFields,
}

/// The fields of [`ImageDoc`] a Code block reads (others are skipped).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageFields {
    /// `Title`.
    pub title: String,
    /// `Thumbnail.Url`.
    pub thumbnail: ImageThumbnail,
    /// `IDs`.
    #[serde(rename = "IDs")]
    pub ids: Vec<u64>,
}

/// `Image.Thumbnail`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageThumbnail {
    /// `Url`.
    pub url: String,
}

impl ImageDoc {
    /// The three property values a Code block sets from the response:
    /// title, thumbnail URL and the first id (empty when there is none).
    pub fn fields(self) -> [String; 3] {
        let first_id = self
            .image
            .ids
            .first()
            .map_or_else(String::new, u64::to_string);
        [self.image.title, self.image.thumbnail.url, first_id]
    }
}

/// Parses an image API response and returns the three property values
/// [`ImageDoc::fields`] gives: the native side of the `parse_set3` bench.
pub fn image_fields(bytes: &[u8]) -> Result<[String; 3], serde_json::Error> {
    serde_json::from_slice::<ImageDoc>(bytes).map(ImageDoc::fields)
}

/// What an event walk of an XML document saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct XmlSummary {
    /// Start and empty element tags.
    pub elements: u64,
    /// Attributes (values unescaped).
    pub attributes: u64,
    /// Bytes of unescaped attribute values.
    pub attribute_bytes: u64,
    /// Text and CDATA nodes.
    pub texts: u64,
    /// Bytes of decoded text and CDATA.
    pub text_bytes: u64,
    /// Hash of element local names.
    pub name_hash: u64,
}

/// Walks `bytes` with quick-xml's pull parser, decoding every element name,
/// attribute value (unescaped) and text node; entity references in text are
/// resolved (the five predefined ones and character references).
pub fn xml_walk(bytes: &[u8]) -> Result<XmlSummary, quick_xml::Error> {
    use quick_xml::XmlVersion;
    use quick_xml::events::Event;

    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut s = XmlSummary::default();
    loop {
        match reader.read_event()? {
            Event::Start(tag) | Event::Empty(tag) => {
                s.elements += 1;
                s.name_hash = mix_bytes(s.name_hash, tag.local_name().as_ref().as_bytes());
                for attr in tag.attributes() {
                    let attr = attr.map_err(quick_xml::Error::InvalidAttr)?;
                    let value = attr.normalized_value(XmlVersion::Implicit1_0)?;
                    s.attributes += 1;
                    s.attribute_bytes += value.len() as u64;
                }
            }
            Event::Text(text) => {
                let text = text.xml10_content();
                s.texts += 1;
                s.text_bytes += text.len() as u64;
            }
            Event::CData(data) => {
                s.texts += 1;
                s.text_bytes += data.len() as u64;
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref()? {
                    Some(ch) => ch.len_utf8(),
                    None => {
                        quick_xml::escape::resolve_predefined_entity(&reference).map_or(0, str::len)
                    }
                };
                s.text_bytes += resolved as u64;
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO: &str = r#"{"Image":{"Width":800,"Height":600,"Title":"View from 15th Floor",
        "Thumbnail":{"Url":"http://www.example.com/image/481989943","Height":125,"Width":100},
        "Animated":false,"IDs":[116,943,234,38793]}}"#;

    #[test]
    fn json_walk_counts_every_node() {
        let s = json_walk(DEMO.as_bytes()).unwrap();
        assert_eq!(s.objects, 3);
        assert_eq!(s.arrays, 1);
        assert_eq!(s.keys, 10);
        assert_eq!(s.strings, 2);
        assert_eq!(s.numbers, 8);
        assert_eq!(s.bools, 1);
        assert_eq!(s.nulls, 0);
        assert_ne!(s.number_hash, 0);
    }

    #[test]
    fn json_typed_reads_fields() {
        let s = json_typed(Shape::Demo, DEMO.as_bytes()).unwrap();
        assert_eq!(s.records, 1);
        assert_eq!(
            s.text_bytes,
            ("View from 15th Floor".len() + "http://www.example.com/image/481989943".len()) as u64
        );
    }

    #[test]
    fn image_fields_reads_three() {
        let [title, url, id] = image_fields(DEMO.as_bytes()).unwrap();
        assert_eq!(title, "View from 15th Floor");
        assert_eq!(url, "http://www.example.com/image/481989943");
        assert_eq!(id, "116");
        assert!(image_fields(b"{\"Image\": {}}").is_err());
    }

    #[test]
    fn json_bad() {
        assert!(json_walk(b"{\"a\":").is_err());
        assert!(json_typed(Shape::Twitter, b"{\"statuses\": 3}").is_err());
    }

    #[test]
    fn xml_walk_decodes() {
        let doc = br#"<?xml version="1.0"?><a:r xmlns:a="urn:x" k="v &amp; w"><b>x &lt; y</b><c/><![CDATA[raw]]></a:r>"#;
        let s = xml_walk(doc).unwrap();
        assert_eq!(s.elements, 3);
        assert_eq!(s.attributes, 2, "xmlns:a and k");
        assert_eq!(s.attribute_bytes, ("urn:x".len() + "v & w".len()) as u64);
        assert_eq!(
            s.text_bytes,
            ("x ".len() + 1 + " y".len() + "raw".len()) as u64
        );
    }

    #[test]
    fn xml_bad() {
        assert!(xml_walk(b"<a><b></a>").is_err());
    }
}

#[cfg(test)]
mod corpus_tests {
    use super::*;
    use std::path::PathBuf;

    fn corpus() -> Option<PathBuf> {
        let dir = std::env::var_os("CHATFLOW_CORPUS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
            });
        if dir.is_dir() {
            Some(dir)
        } else {
            eprintln!("skipping: corpus directory {} is absent", dir.display());
            None
        }
    }

    #[test]
    fn every_corpus_file_walks() {
        let Some(dir) = corpus() else { return };
        for entry in std::fs::read_dir(dir.join("json")).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let s = json_walk(&bytes).unwrap();
            assert!(s.objects + s.arrays > 0, "{}", path.display());
            let name = path.file_name().unwrap().to_str().unwrap();
            let shape = Shape::from_file_name(name).unwrap();
            let t = json_typed(shape, &bytes).unwrap();
            assert!(t.records > 0, "{}", path.display());
        }
        for entry in std::fs::read_dir(dir.join("xml")).unwrap() {
            let path = entry.unwrap().path();
            let s = xml_walk(&std::fs::read(&path).unwrap()).unwrap();
            assert!(s.elements > 0, "{}", path.display());
        }
    }
}
