//! Loading a flow: parse the file, check everything that can be checked
//! before a conversation starts, and compile it into a [`Flow`].
//!
//! Every problem is collected (not just the first), each naming the block
//! and field it is in, so an author fixes a flow in one pass. What loading
//! checks: JSON syntax; the top-level fields; block types; each block's
//! fields (unknown fields refused); templates; property names; branch
//! conditions; REST API block configs (and their timeout and size overrides
//! against the network policy's maximums); Code block modules (read from
//! inside the module directory only, size-capped, compiled and validated
//! against ABI v1; see [`Sandbox::load_ref`](crate::sandbox::Sandbox::load_ref))
//! and their limits against the sandbox's maximums; that `start` and every `next`/branch target name a block.
//! Unreachable blocks are reported as warnings. A flow that loads does not
//! fail later for any of these reasons.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::net::NetPolicy;
use crate::properties::{NameError, validate_name};
use crate::rest::{self, RestBlock};
use crate::sandbox::{self, CodeModule, Limits, ModuleRef, Sandbox};
use crate::template::{Template, TemplateError};

use super::condition::{Condition, ConditionError};
use super::model::{BlockSpec, BlockType, ConditionSpec, FlowFile};

/// A loaded, validated flow, ready to run any number of conversations.
/// Cheap to clone and share between tasks.
#[derive(Clone)]
pub struct Flow {
    inner: Arc<FlowInner>,
}

struct FlowInner {
    name: String,
    description: Option<String>,
    origin: String,
    start: usize,
    blocks: Vec<Block>,
    index: HashMap<String, usize>,
    warnings: Vec<FlowWarning>,
}

/// One compiled block.
pub(crate) struct Block {
    pub(crate) id: String,
    pub(crate) kind: BlockKind,
    pub(crate) next: Option<usize>,
}

pub(crate) enum BlockKind {
    Message(Template),
    Rest(Box<RestBlock>),
    Code {
        module: CodeModule,
        limits: Limits,
        ignore_error: bool,
    },
    Branch {
        conditions: Vec<(Condition, usize)>,
        otherwise: Option<usize>,
    },
    Set(Vec<(String, Template)>),
    Input {
        prompt: Template,
        property: String,
    },
}

impl BlockKind {
    pub(crate) fn block_type(&self) -> BlockType {
        match self {
            BlockKind::Message(_) => BlockType::Message,
            BlockKind::Rest(_) => BlockType::RestApi,
            BlockKind::Code { .. } => BlockType::Code,
            BlockKind::Branch { .. } => BlockType::Branch,
            BlockKind::Set(_) => BlockType::Set,
            BlockKind::Input { .. } => BlockType::Input,
        }
    }
}

impl Flow {
    /// The flow's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The flow's description, if it has one.
    pub fn description(&self) -> Option<&str> {
        self.inner.description.as_deref()
    }

    /// Where the flow came from: its file path, or the origin given to
    /// [`FlowLoader::load_str`].
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// The id of the start block.
    pub fn start(&self) -> &str {
        &self.inner.blocks[self.inner.start].id
    }

    /// The block ids, in file order (sorted by id).
    pub fn block_ids(&self) -> impl Iterator<Item = &str> {
        self.inner.blocks.iter().map(|b| b.id.as_str())
    }

    /// The type of block `id`, if there is one.
    pub fn block_type(&self, id: &str) -> Option<BlockType> {
        self.index(id)
            .map(|i| self.inner.blocks[i].kind.block_type())
    }

    /// Things worth knowing that do not stop the flow from loading, such as
    /// unreachable blocks.
    pub fn warnings(&self) -> &[FlowWarning] {
        &self.inner.warnings
    }

    pub(crate) fn index(&self, id: &str) -> Option<usize> {
        self.inner.index.get(id).copied()
    }

    pub(crate) fn block(&self, index: usize) -> &Block {
        &self.inner.blocks[index]
    }
}

impl fmt::Debug for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flow")
            .field("name", &self.inner.name)
            .field("origin", &self.inner.origin)
            .field("blocks", &self.inner.blocks.len())
            .finish()
    }
}

/// A flow that could not be loaded: every problem found, each with its
/// place in the file.
#[derive(Debug, thiserror::Error)]
pub struct FlowError {
    /// The file path, or the origin given to [`FlowLoader::load_str`].
    pub origin: String,
    /// What is wrong, in file order (at least one).
    pub problems: Vec<Problem>,
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "{}: {one}", self.origin),
            many => {
                write!(f, "{}: {} problems", self.origin, many.len())?;
                for problem in many {
                    write!(f, "\n  {problem}")?;
                }
                Ok(())
            }
        }
    }
}

/// One problem in a flow file.
#[derive(Debug)]
pub struct Problem {
    /// The block it is in, if any.
    pub block: Option<String>,
    /// The field it is in (`url`, `conditions[1].next`, …), if any.
    pub field: Option<String>,
    /// What is wrong.
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.block, &self.field) {
            (Some(block), Some(field)) => write!(f, "block {block:?}, {field}: {}", self.kind),
            (Some(block), None) => write!(f, "block {block:?}: {}", self.kind),
            (None, Some(field)) => write!(f, "{field}: {}", self.kind),
            (None, None) => write!(f, "{}", self.kind),
        }
    }
}

/// What is wrong, for each kind of problem loading can find.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The file could not be read.
    #[error("cannot read the flow file: {0}")]
    Read(#[source] std::io::Error),
    /// The file is not valid JSON, or its top level does not have the
    /// flow fields (`name`, `start`, `blocks`).
    #[error("{message} (line {line}, column {column})")]
    Syntax {
        /// What the JSON parser said.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A block id is empty or has control characters.
    #[error("invalid block id")]
    BadBlockId,
    /// A block has no `type` (or it is not a string).
    #[error("missing \"type\" (one of message, rest_api, code, branch, set, input)")]
    MissingType,
    /// A block's `type` is not one of the known types.
    #[error(
        "unknown block type {found:?} (expected one of message, rest_api, code, branch, set, input)"
    )]
    UnknownType {
        /// The type as written.
        found: String,
    },
    /// A block's fields do not match its type: a field missing, unknown,
    /// or of the wrong kind.
    #[error("{message}")]
    Fields {
        /// What the reader said.
        message: String,
    },
    /// `start`, a `next` or a branch target names no block.
    #[error("no block with id {target:?}")]
    UnknownTarget {
        /// The id as written.
        target: String,
    },
    /// A template does not parse.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A property name is not valid.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A branch condition is not valid.
    #[error(transparent)]
    Condition(#[from] ConditionError),
    /// A REST API block's config is not valid.
    #[error(transparent)]
    Rest(#[from] rest::BlockConfigError),
    /// A REST API block asks for a timeout or response cap over the
    /// network policy's maximum (the problem's field names which).
    #[error(transparent)]
    RestLimit(#[from] rest::PolicyLimitError),
    /// A Code block's module could not be read, compiled or validated.
    #[error(transparent)]
    Module(#[from] sandbox::LoadError),
    /// A Code block's limits are over the sandbox's maximums.
    #[error(transparent)]
    Limits(#[from] sandbox::LimitError),
}

/// Something worth knowing about a flow that still loads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum FlowWarning {
    /// No path from `start` reaches this block.
    Unreachable {
        /// The block's id.
        block: String,
    },
    /// A template or condition reads a property that no block sets and
    /// that the flow does not list in `inputs` (the properties the
    /// platform provides), so it is always missing: most often a typo.
    /// Not reported when a Code block that does not declare its `sets`
    /// could set it.
    NeverSet {
        /// The block that reads it.
        block: String,
        /// The field that reads it (`url`, `conditions[0]`…).
        field: String,
        /// The property.
        property: String,
    },
}

/// What each block reads and sets, for [`FlowWarning::NeverSet`].
#[derive(Default)]
struct DataFlow {
    /// (block, field, property), in file order.
    uses: Vec<(String, String, String)>,
    sets: std::collections::HashSet<String>,
    /// A Code block that does not declare what it sets may set anything.
    open: bool,
}

impl DataFlow {
    fn add(&mut self, block: &str, kind: &BlockKind, code_sets: Option<Vec<String>>) {
        let mut used = |field: String, name: &str| {
            self.uses.push((block.to_string(), field, name.to_string()));
        };
        match kind {
            BlockKind::Message(text) => {
                for name in text.names() {
                    used("text".into(), name);
                }
            }
            BlockKind::Rest(rest) => {
                for (field, name) in rest.uses() {
                    used(field, name);
                }
                self.sets.insert(rest.response_property().to_string());
                if let Some(status) = rest.status_property() {
                    self.sets.insert(status.to_string());
                }
            }
            BlockKind::Code { .. } => match code_sets {
                Some(sets) => self.sets.extend(sets),
                None => self.open = true,
            },
            BlockKind::Branch { conditions, .. } => {
                for (i, (condition, _)) in conditions.iter().enumerate() {
                    used(format!("conditions[{i}]"), &condition.property);
                    for name in condition.value.iter().flat_map(Template::names) {
                        used(format!("conditions[{i}].value"), name);
                    }
                }
            }
            BlockKind::Set(values) => {
                for (property, value) in values {
                    for name in value.names() {
                        used(format!("properties[{property:?}]"), name);
                    }
                }
                self.sets.extend(values.iter().map(|(p, _)| p.clone()));
            }
            BlockKind::Input { prompt, property } => {
                for name in prompt.names() {
                    used("prompt".into(), name);
                }
                self.sets.insert(property.clone());
            }
        }
    }

    fn never_set(self, inputs: &[String]) -> Vec<FlowWarning> {
        if self.open {
            return Vec::new();
        }
        self.uses
            .into_iter()
            .filter(|(_, _, p)| !self.sets.contains(p) && !inputs.contains(p))
            .map(|(block, field, property)| FlowWarning::NeverSet {
                block,
                field,
                property,
            })
            .collect()
    }
}

impl fmt::Display for FlowWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlowWarning::Unreachable { block } => {
                write!(f, "block {block:?} is unreachable from the start block")
            }
            FlowWarning::NeverSet {
                block,
                field,
                property,
            } => write!(
                f,
                "block {block:?}, {field}: property {property:?} is set by no block and is \
                 not among the flow's \"inputs\""
            ),
        }
    }
}

/// Loads flows for an [`Engine`](crate::Engine), with options for where
/// Code block modules come from. Get one with
/// [`Engine::flow_loader`](crate::Engine::flow_loader).
///
/// It borrows what checking a flow needs: the sandbox (Code blocks'
/// modules are compiled into it, their limits resolved against its
/// defaults and maximums) and the network policy (REST API blocks' limits
/// against its maximums).
pub struct FlowLoader<'e> {
    sandbox: &'e Sandbox,
    policy: &'e NetPolicy,
    module_dir: Option<PathBuf>,
    modules: HashMap<String, Vec<u8>>,
    modules_by_hash: HashMap<[u8; 32], Vec<u8>>,
}

impl<'e> FlowLoader<'e> {
    /// A loader compiling Code blocks into `sandbox` and checking REST API
    /// blocks' limits against `policy` (the one their requests go through).
    pub(crate) fn new(sandbox: &'e Sandbox, policy: &'e NetPolicy) -> Self {
        FlowLoader {
            sandbox,
            policy,
            module_dir: None,
            modules: HashMap::new(),
            modules_by_hash: HashMap::new(),
        }
    }

    /// Resolve Code blocks' module paths inside `dir` instead of the flow
    /// file's directory (e.g. a build's output directory).
    ///
    /// A flow file can only name modules inside this directory: a relative
    /// path without `..`, to a regular file that is still inside the
    /// directory once symbolic links are resolved, no larger than the
    /// sandbox's `max_module_bytes` (see
    /// [`Sandbox::load_ref`](crate::sandbox::Sandbox::load_ref)).
    ///
    /// By default modules are resolved against the flow file's directory
    /// (for [`FlowLoader::load_str`], the `base_dir` given).
    pub fn module_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.module_dir = Some(dir.into());
        self
    }

    /// Supplies the bytes of the module a flow names as `reference` (the
    /// `module` string exactly as written), instead of reading a file. The
    /// demo uses this for the example modules built into the binary.
    pub fn module(mut self, reference: impl Into<String>, bytes: Vec<u8>) -> Self {
        self.modules.insert(reference.into(), bytes);
        self
    }

    /// Supplies a module's bytes for the flow's `sha256:` references: a
    /// Code block whose `module` is `sha256:<hex>` runs these bytes when
    /// their SHA-256 is `<hex>`, instead of looking the hash up in the
    /// sandbox's cache. A service that keeps uploaded modules in a database
    /// passes the ones a flow names here (the bytes are validated and
    /// compiled as by [`crate::sandbox::Sandbox::load`], once per sandbox).
    ///
    /// By default `sha256:` references are looked up in the sandbox's cache
    /// only ([`crate::sandbox::Sandbox::load_cached`]).
    pub fn module_bytes(mut self, bytes: Vec<u8>) -> Self {
        use sha2::Digest as _;
        let hash: [u8; 32] = sha2::Sha256::digest(&bytes).into();
        self.modules_by_hash.insert(hash, bytes);
        self
    }

    /// Loads the flow file at `path`.
    pub fn load_file(&self, path: impl AsRef<Path>) -> Result<Flow, FlowError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let json = std::fs::read_to_string(path).map_err(|e| FlowError {
            origin: origin.clone(),
            problems: vec![Problem {
                block: None,
                field: None,
                kind: ProblemKind::Read(e),
            }],
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        self.load_str(&origin, &json, base)
    }

    /// Loads a flow from JSON text. `origin` names it in errors; module
    /// paths resolve inside `base_dir` (unless [`FlowLoader::module_dir`]
    /// was given).
    pub fn load_str(&self, origin: &str, json: &str, base_dir: &Path) -> Result<Flow, FlowError> {
        let mut problems = Vec::new();
        let flow = self.compile(json, base_dir, &mut problems);
        match flow {
            Some(inner) if problems.is_empty() => Ok(Flow {
                inner: Arc::new(FlowInner {
                    origin: origin.to_string(),
                    ..inner
                }),
            }),
            _ => Err(FlowError {
                origin: origin.to_string(),
                problems,
            }),
        }
    }

    fn compile(
        &self,
        json: &str,
        base_dir: &Path,
        problems: &mut Vec<Problem>,
    ) -> Option<FlowInner> {
        let file: FlowFile = match serde_json::from_str(json) {
            Ok(file) => file,
            Err(e) => {
                problems.push(Problem {
                    block: None,
                    field: None,
                    kind: ProblemKind::Syntax {
                        message: strip_position(&e.to_string()),
                        line: e.line(),
                        column: e.column(),
                    },
                });
                return None;
            }
        };

        let index: HashMap<String, usize> = file
            .blocks
            .keys()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect();
        let mut ctx = Ctx {
            index: &index,
            problems,
            block: None,
        };

        let start = ctx.target("start", &file.start);
        for (i, name) in file.inputs.iter().enumerate() {
            if let Err(e) = validate_name(name) {
                ctx.problem(Some(format!("inputs[{i}]")), ProblemKind::Name(e));
            }
        }
        let mut blocks = Vec::with_capacity(file.blocks.len());
        let mut data = DataFlow::default();
        for (id, fields) in &file.blocks {
            ctx.block = Some(id.clone());
            if id.trim().is_empty() || id.chars().any(char::is_control) {
                ctx.problem(None, ProblemKind::BadBlockId);
            }
            let (spec, next, sets) = match parse_block(fields) {
                Ok(parsed) => parsed,
                Err(kind) => {
                    ctx.problem(None, kind);
                    continue;
                }
            };
            for (i, name) in sets.iter().flatten().enumerate() {
                if let Err(e) = validate_name(name) {
                    ctx.problem(Some(format!("sets[{i}]")), ProblemKind::Name(e));
                }
            }
            let next = next.and_then(|n| ctx.target("next", &n));
            if let Some(kind) = self.compile_block(spec, base_dir, &mut ctx) {
                data.add(id, &kind, sets);
                blocks.push(Block {
                    id: id.clone(),
                    kind,
                    next,
                });
            }
        }
        if !ctx.problems.is_empty() {
            return None;
        }
        let start = start?;
        let mut warnings: Vec<FlowWarning> = unreachable(&blocks, start)
            .into_iter()
            .map(|block| FlowWarning::Unreachable { block })
            .collect();
        warnings.extend(data.never_set(&file.inputs));
        Some(FlowInner {
            name: file.name,
            description: file.description,
            origin: String::new(),
            start,
            blocks,
            index,
            warnings,
        })
    }

    fn compile_block(
        &self,
        spec: BlockSpec,
        base_dir: &Path,
        ctx: &mut Ctx<'_>,
    ) -> Option<BlockKind> {
        match spec {
            BlockSpec::Message(m) => ctx.template("text", &m.text).map(BlockKind::Message),
            BlockSpec::RestApi(config) => match config.compile_for(self.policy) {
                Ok(block) => Some(BlockKind::Rest(Box::new(block))),
                Err(rest::CompileError::Config(e)) => {
                    ctx.problem(None, ProblemKind::Rest(e));
                    None
                }
                Err(rest::CompileError::Limits(over)) => {
                    for e in over {
                        ctx.problem(Some(e.field().into()), ProblemKind::RestLimit(e));
                    }
                    None
                }
            },
            BlockSpec::Code(config) => {
                let sandbox = self.sandbox;
                let limits = match sandbox
                    .default_limits()
                    .resolve_all(&config.limits, &sandbox.config().max_limits)
                {
                    Ok(limits) => Some(limits),
                    Err(errors) => {
                        for e in errors {
                            let field = format!("limits.{}", e.which());
                            ctx.problem(Some(field), ProblemKind::Limits(e));
                        }
                        None
                    }
                };
                let module = self.load_module(&config.module, base_dir);
                let module = match module {
                    Ok(module) => Some(module),
                    Err(e) => {
                        ctx.problem(Some("module".into()), ProblemKind::Module(e));
                        None
                    }
                };
                Some(BlockKind::Code {
                    module: module?,
                    limits: limits?,
                    ignore_error: config.ignore_error,
                })
            }
            BlockSpec::Branch(spec) => {
                let mut conditions = Vec::new();
                for (i, cond) in spec.conditions.iter().enumerate() {
                    let field = format!("conditions[{i}]");
                    let target = ctx.target(&format!("{field}.next"), &cond.next);
                    match condition(cond) {
                        Ok(c) => {
                            if let Some(target) = target {
                                conditions.push((c, target));
                            }
                        }
                        Err(e) => ctx.problem(Some(field), ProblemKind::Condition(e)),
                    }
                }
                let otherwise = spec.otherwise.and_then(|o| ctx.target("else", &o));
                Some(BlockKind::Branch {
                    conditions,
                    otherwise,
                })
            }
            BlockSpec::Set(spec) => {
                let mut sets = Vec::new();
                for (name, value) in &spec.properties {
                    let field = format!("properties[{name:?}]");
                    if let Err(e) = validate_name(name) {
                        ctx.problem(Some(field.clone()), ProblemKind::Name(e));
                    }
                    if let Some(t) = ctx.template(&field, value) {
                        sets.push((name.clone(), t));
                    }
                }
                Some(BlockKind::Set(sets))
            }
            BlockSpec::Input(spec) => {
                if let Err(e) = validate_name(&spec.property) {
                    ctx.problem(Some("property".into()), ProblemKind::Name(e));
                }
                let prompt = ctx.template("prompt", &spec.prompt)?;
                Some(BlockKind::Input {
                    prompt,
                    property: spec.property,
                })
            }
        }
    }

    fn load_module(
        &self,
        module: &ModuleRef,
        base_dir: &Path,
    ) -> Result<CodeModule, sandbox::LoadError> {
        let sandbox = self.sandbox;
        if let ModuleRef::Path(path) = module
            && let Some(bytes) = self.modules.get(&*path.to_string_lossy())
        {
            return sandbox.load(bytes);
        }
        if let ModuleRef::Sha256(hash) = module
            && let Some(bytes) = self.modules_by_hash.get(hash)
        {
            return sandbox.load(bytes);
        }
        let base = self.module_dir.as_deref().unwrap_or(base_dir);
        sandbox.load_ref(module, base)
    }
}

struct Ctx<'a> {
    index: &'a HashMap<String, usize>,
    problems: &'a mut Vec<Problem>,
    block: Option<String>,
}

impl Ctx<'_> {
    fn problem(&mut self, field: Option<String>, kind: ProblemKind) {
        self.problems.push(Problem {
            block: self.block.clone(),
            field,
            kind,
        });
    }

    fn target(&mut self, field: &str, target: &str) -> Option<usize> {
        let found = self.index.get(target).copied();
        if found.is_none() {
            self.problem(
                Some(field.to_string()),
                ProblemKind::UnknownTarget {
                    target: target.to_string(),
                },
            );
        }
        found
    }

    fn template(&mut self, field: &str, source: &str) -> Option<Template> {
        match Template::parse(source) {
            Ok(t) => Some(t),
            Err(e) => {
                self.problem(Some(field.to_string()), ProblemKind::Template(e));
                None
            }
        }
    }
}

impl FlowFile {
    /// The Code blocks of this file and the module each names, read exactly
    /// as the loader reads them (for a service that must fetch the modules
    /// before loading). Blocks that do not parse are left out: loading the
    /// flow reports why.
    pub fn module_refs(&self) -> Vec<(&str, ModuleRef)> {
        self.blocks
            .iter()
            .filter_map(|(id, fields)| match parse_block(fields) {
                Ok((BlockSpec::Code(config), _, _)) => Some((id.as_str(), config.module)),
                _ => None,
            })
            .collect()
    }
}

/// A block split into its type-specific spec, its `next`, and (Code blocks)
/// the properties it declares it sets.
type ParsedBlock = (BlockSpec, Option<String>, Option<Vec<String>>);

/// Splits a block object into its type-specific spec, its `next` and a
/// Code block's `sets`.
fn parse_block(
    fields: &serde_json::Map<String, serde_json::Value>,
) -> Result<ParsedBlock, ProblemKind> {
    let mut fields = fields.clone();
    let kind = match fields.remove("type") {
        Some(serde_json::Value::String(name)) => {
            BlockType::from_name(&name).ok_or(ProblemKind::UnknownType { found: name })?
        }
        _ => return Err(ProblemKind::MissingType),
    };
    let next = match fields.remove("next") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(next)) if kind != BlockType::Branch => Some(next),
        Some(serde_json::Value::String(_)) => {
            return Err(ProblemKind::Fields {
                message:
                    "a branch has no \"next\": its conditions and \"else\" pick the next block"
                        .into(),
            });
        }
        Some(other) => {
            return Err(ProblemKind::Fields {
                message: format!("\"next\" must be a block id (a string), not {other}"),
            });
        }
    };
    let sets = match (kind, fields.remove("sets")) {
        (_, None) => None,
        (BlockType::Code, Some(value)) => match serde_json::from_value::<Vec<String>>(value) {
            Ok(sets) => Some(sets),
            Err(_) => {
                return Err(ProblemKind::Fields {
                    message: "\"sets\" must be a list of property names".into(),
                });
            }
        },
        // Not a Code block's field: put it back for serde to refuse.
        (_, Some(value)) => {
            fields.insert("sets".into(), value);
            None
        }
    };
    let names: Vec<String> = fields.keys().cloned().collect();
    let value = serde_json::Value::Object(fields);
    let fields_err = |e: serde_json::Error| ProblemKind::Fields {
        message: unknown_field_message(kind, &names, &strip_position(&e.to_string())),
    };
    let spec = match kind {
        BlockType::Message => {
            BlockSpec::Message(serde_json::from_value(value).map_err(fields_err)?)
        }
        BlockType::RestApi => {
            BlockSpec::RestApi(serde_json::from_value(value).map_err(fields_err)?)
        }
        BlockType::Code => BlockSpec::Code(serde_json::from_value(value).map_err(fields_err)?),
        BlockType::Branch => BlockSpec::Branch(serde_json::from_value(value).map_err(fields_err)?),
        BlockType::Set => BlockSpec::Set(serde_json::from_value(value).map_err(fields_err)?),
        BlockType::Input => BlockSpec::Input(serde_json::from_value(value).map_err(fields_err)?),
    };
    Ok((spec, next, sets))
}

/// serde's "unknown field `nxt`, expected `text`" names only the fields of
/// the type-specific part; this lists every field the block takes (`type`
/// and `next` too) and the closest one to the misspelling. Other messages
/// are unchanged, and so is an unknown field of a nested object (a Code
/// block's `limits`), which serde reports the same way: only a field
/// among the block's own `names` is rewritten.
fn unknown_field_message(kind: BlockType, names: &[String], message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((found, expected)) = rest.split_once("`, ") else {
        return message.to_string();
    };
    if !names.iter().any(|n| n == found) {
        return message.to_string();
    }
    let list = expected
        .strip_prefix("expected one of ")
        .or_else(|| expected.strip_prefix("expected "));
    let Some(list) = list else {
        return message.to_string();
    };
    let mut fields = vec!["type"];
    if kind != BlockType::Branch {
        fields.push("next");
    }
    if kind == BlockType::Code {
        fields.push("sets");
    }
    // serde writes "`a`", "`a` or `b`", "one of `a`, `b`, `c`".
    fields.extend(
        list.split(", ")
            .flat_map(|f| f.split(" or "))
            .map(|f| f.trim_matches('`')),
    );
    let closest = fields
        .iter()
        .map(|f| (edit_distance(found, f), *f))
        .min()
        .filter(|(d, f)| *d <= 2.max(f.len() / 3));
    let article = if kind == BlockType::Input { "an" } else { "a" };
    let all = fields
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match closest {
        Some((_, f)) => {
            format!(
                "unknown field `{found}` (did you mean `{f}`?); {article} {kind} block takes {all}"
            )
        }
        None => format!("unknown field `{found}`; {article} {kind} block takes {all}"),
    }
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

fn condition(spec: &ConditionSpec) -> Result<Condition, ConditionError> {
    match (&spec.when, &spec.property, &spec.op) {
        (Some(when), None, None) if spec.value.is_none() => Condition::parse_when(when),
        (None, Some(property), Some(op)) => Condition::new(property, op, spec.value.as_deref()),
        _ => Err(ConditionError::Spelling),
    }
}

/// serde_json appends " at line L column C" to messages; the problem
/// carries the position itself (or none, for a block's fields, where it is
/// meaningless).
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// The ids of blocks no path from `start` reaches, in id order.
fn unreachable(blocks: &[Block], start: usize) -> Vec<String> {
    let mut seen = vec![false; blocks.len()];
    let mut queue = VecDeque::from([start]);
    while let Some(i) = queue.pop_front() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        let block = &blocks[i];
        queue.extend(block.next);
        if let BlockKind::Branch {
            conditions,
            otherwise,
        } = &block.kind
        {
            queue.extend(conditions.iter().map(|(_, t)| *t));
            queue.extend(*otherwise);
        }
    }
    blocks
        .iter()
        .zip(seen)
        .filter(|(_, seen)| !seen)
        .map(|(b, _)| b.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_refs_reads_code_blocks_as_the_loader_does() {
        let file: FlowFile = serde_json::from_str(
            r#"{"name": "f", "start": "a", "blocks": {
                "a": {"type": "code", "module": "parse.wasm", "sets": ["x"], "next": "b"},
                "b": {"type": "code", "module": "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"},
                "c": {"type": "message", "text": "hi"},
                "d": {"type": "code", "module": "bad.wasm", "nxt": "a"},
                "e": {"type": "code"}
            }}"#,
        )
        .unwrap();
        let refs: Vec<(&str, String)> = file
            .module_refs()
            .into_iter()
            .map(|(id, module)| (id, module.to_string()))
            .collect();
        assert_eq!(
            refs,
            [
                ("a", "parse.wasm".to_string()),
                (
                    "b",
                    "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
                        .to_string()
                ),
            ]
        );
    }
}
