//! The flow file format, as serde types. `docs/flow-format.md` describes it
//! for people; this is what the loader reads.
//!
//! Each block is first read as a plain JSON object, so that an error can
//! name the block it is in; then its `type` picks the struct its other
//! fields are read into (unknown fields are refused everywhere, so a typo is
//! an error rather than a silently ignored setting).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::rest::RestConfig;
use crate::sandbox::CodeBlockConfig;

/// A flow file's top level.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowFile {
    /// The flow's name, shown in transcripts and errors.
    pub name: String,
    /// A free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The id of the block the conversation starts at.
    pub start: String,
    /// Properties the platform sets before the flow starts (the caller's
    /// phone number, a customer id): `chatflow check` does not warn that
    /// no block sets them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// The blocks, by id. Each is an object with a `type` and its fields.
    pub blocks: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}

/// The block types, as written in a block's `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockType {
    /// Shows a text to the user.
    Message,
    /// Calls an HTTP API natively (the REST API block).
    RestApi,
    /// Runs a WebAssembly module in the sandbox (the Code block).
    Code,
    /// Picks the next block from conditions on properties.
    Branch,
    /// Sets properties from templates.
    Set,
    /// Asks the user a question and stores the answer.
    Input,
}

impl BlockType {
    /// Every block type, in the order the docs list them.
    pub const ALL: [BlockType; 6] = [
        BlockType::Message,
        BlockType::RestApi,
        BlockType::Code,
        BlockType::Branch,
        BlockType::Set,
        BlockType::Input,
    ];

    /// The name used in flow files: `message`, `rest_api`, …
    pub fn as_str(self) -> &'static str {
        match self {
            BlockType::Message => "message",
            BlockType::RestApi => "rest_api",
            BlockType::Code => "code",
            BlockType::Branch => "branch",
            BlockType::Set => "set",
            BlockType::Input => "input",
        }
    }

    /// The type named `name` in a flow file.
    pub fn from_name(name: &str) -> Option<BlockType> {
        BlockType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl std::fmt::Display for BlockType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{"type": "message", "text": "Hi {{name}}", "next": …}`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSpec {
    /// The text, a template (plain text: a missing property renders empty).
    pub text: String,
}

/// `{"type": "branch", "conditions": [...], "else": "…"}`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchSpec {
    /// Checked in order; the first that holds picks the next block.
    pub conditions: Vec<ConditionSpec>,
    /// Where to go when no condition holds. Without it the conversation
    /// ends there.
    #[serde(default, rename = "else", skip_serializing_if = "Option::is_none")]
    pub otherwise: Option<String>,
}

/// One condition of a branch, in one of two spellings:
///
/// - structured: `{"property": "API Response", "op": "exists", "next": "parse"}`,
///   `{"property": "age", "op": ">=", "value": "18", "next": "adult"}`;
/// - as the platform's docs write it: `{"when": "{{API Response}} exists", "next": "parse"}`,
///   `{"when": "{{age}} >= 18", "next": "adult"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionSpec {
    /// The property tested (structured spelling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// The operator (structured spelling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// The value compared with, a template (structured spelling; not used
    /// by `exists` / `not_exists`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The whole condition as text: `{{Property}} op value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// The block to go to when the condition holds.
    pub next: String,
}

/// `{"type": "set", "properties": {"greeting": "Hi {{name}}"}}`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSpec {
    /// Property name to value template (plain text rendering). All values
    /// are rendered against the properties as they were before the block,
    /// then committed together.
    pub properties: BTreeMap<String, String>,
}

/// `{"type": "input", "prompt": "Your phone number?", "property": "phone"}`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// The question shown to the user, a template.
    pub prompt: String,
    /// The property that receives the answer.
    pub property: String,
}

/// A block's own fields, by type.
#[derive(Debug, Clone)]
pub enum BlockSpec {
    /// A message block.
    Message(MessageSpec),
    /// A REST API block.
    RestApi(RestConfig),
    /// A Code block.
    Code(CodeBlockConfig),
    /// A branch block.
    Branch(BranchSpec),
    /// A set block.
    Set(SetSpec),
    /// An input block.
    Input(InputSpec),
}
