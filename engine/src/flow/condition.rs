//! Branch conditions: `{{API Response}} exists`, `{{tier}} equals gold`,
//! `{{age}} >= 18`.

use std::fmt;

use crate::properties::{NameError, Properties, validate_name};
use crate::template::{Template, TemplateError};

/// A comparison operator of a branch condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// The property is set (to anything, even the empty string).
    Exists,
    /// The property is not set.
    NotExists,
    /// The property is set and its text equals the value exactly
    /// (case-sensitive).
    Equals,
    /// The property is not set, or its text differs from the value.
    NotEquals,
    /// The property is set and its text contains the value.
    Contains,
    /// Both sides parse as finite numbers and property < value.
    Lt,
    /// Both sides parse as finite numbers and property <= value.
    Le,
    /// Both sides parse as finite numbers and property > value.
    Gt,
    /// Both sides parse as finite numbers and property >= value.
    Ge,
}

impl Op {
    /// Every operator as written in flow files.
    pub const NAMES: [&'static str; 9] = [
        "exists",
        "not_exists",
        "equals",
        "not_equals",
        "contains",
        "<",
        "<=",
        ">",
        ">=",
    ];

    /// The operator written `name` in a flow file.
    pub fn from_name(name: &str) -> Option<Op> {
        Some(match name {
            "exists" => Op::Exists,
            "not_exists" => Op::NotExists,
            "equals" => Op::Equals,
            "not_equals" => Op::NotEquals,
            "contains" => Op::Contains,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            _ => return None,
        })
    }

    /// How the operator is written in flow files.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Exists => "exists",
            Op::NotExists => "not_exists",
            Op::Equals => "equals",
            Op::NotEquals => "not_equals",
            Op::Contains => "contains",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    /// Whether the operator compares with a value (all but `exists` and
    /// `not_exists`).
    pub fn takes_value(self) -> bool {
        !matches!(self, Op::Exists | Op::NotExists)
    }

    /// Whether the operator compares numbers.
    pub fn is_numeric(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a condition was refused when the flow was loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConditionError {
    /// Neither or both spellings were used.
    #[error(
        "write either \"when\": \"{{{{Property}}}} op value\" or \"property\" and \"op\", not both or neither"
    )]
    Spelling,
    /// The operator is not one of [`Op::NAMES`].
    #[error(
        "unknown operator {op:?}; expected one of exists, not_exists, equals, not_equals, contains, <, <=, >, >="
    )]
    UnknownOp {
        /// The operator as written.
        op: String,
    },
    /// `exists` / `not_exists` with a value, or another operator without one.
    #[error("operator {op} {}", if op.takes_value() { "needs a value" } else { "takes no value" })]
    Value {
        /// The operator.
        op: Op,
    },
    /// A `when` text that does not start with `{{Property}}`.
    #[error("{text:?} does not start with {{{{Property}}}}")]
    When {
        /// The text as written.
        text: String,
    },
    /// The property name is not valid.
    #[error("{0}")]
    Name(#[from] NameError),
    /// The value is not a valid template.
    #[error("value: {0}")]
    Template(#[from] TemplateError),
    /// A number comparison with a literal value that is not a number (it
    /// could never hold).
    #[error("operator {op} compares numbers but the value {value:?} is not a number")]
    NotANumber {
        /// The operator.
        op: Op,
        /// The value as written.
        value: String,
    },
}

/// A parsed condition (the `next` target is resolved by the loader).
#[derive(Debug, Clone)]
pub struct Condition {
    /// The property tested.
    pub property: String,
    /// The operator.
    pub op: Op,
    /// The value compared with (a plain-text template), for operators that
    /// take one.
    pub value: Option<Template>,
}

impl Condition {
    /// Builds a condition from the structured spelling.
    pub fn new(property: &str, op: &str, value: Option<&str>) -> Result<Condition, ConditionError> {
        validate_name(property)?;
        let op = Op::from_name(op).ok_or_else(|| ConditionError::UnknownOp { op: op.into() })?;
        if op.takes_value() != value.is_some() {
            return Err(ConditionError::Value { op });
        }
        let value = value.map(Template::parse).transpose()?;
        if let Some(template) = &value
            && op.is_numeric()
            && template.is_literal()
            && number(template.source()).is_none()
        {
            return Err(ConditionError::NotANumber {
                op,
                value: template.source().to_string(),
            });
        }
        Ok(Condition {
            property: property.to_string(),
            op,
            value,
        })
    }

    /// Parses the `when` spelling: `{{Property}} op value`, e.g.
    /// `{{API Response}} exists` or `{{tier}} equals gold` (the value is
    /// the rest of the text, trimmed, and may itself use `{{…}}`).
    pub fn parse_when(text: &str) -> Result<Condition, ConditionError> {
        let bad = || ConditionError::When { text: text.into() };
        let rest = text.trim_start().strip_prefix("{{").ok_or_else(bad)?;
        let (name, rest) = rest.split_once("}}").ok_or_else(bad)?;
        let rest = rest.trim();
        let (op, value) = match rest.split_once(char::is_whitespace) {
            Some((op, value)) => (op, Some(value.trim())),
            None => (rest, None),
        };
        if op.is_empty() {
            return Err(bad());
        }
        Condition::new(name.trim(), op, value.filter(|v| !v.is_empty()))
    }

    /// Whether the condition holds for `props`. Never fails: a number
    /// comparison where either side is not a number is simply false.
    pub fn holds(&self, props: &Properties) -> bool {
        let actual = props.get(&self.property);
        let value = self.value.as_ref().map(|t| t.render_text(props));
        let value = value.as_deref().unwrap_or("");
        match self.op {
            Op::Exists => actual.is_some(),
            Op::NotExists => actual.is_none(),
            Op::Equals => actual == Some(value),
            Op::NotEquals => actual != Some(value),
            Op::Contains => actual.is_some_and(|a| a.contains(value)),
            Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                let (Some(a), Some(b)) = (actual.and_then(number), number(value)) else {
                    return false;
                };
                match self.op {
                    Op::Lt => a < b,
                    Op::Le => a <= b,
                    Op::Gt => a > b,
                    _ => a >= b,
                }
            }
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{{{}}}}} {}", self.property, self.op)?;
        if let Some(value) = &self.value {
            write!(f, " {}", value.source())?;
        }
        Ok(())
    }
}

/// The text as a finite number: surrounding whitespace ignored, `1e3` and
/// `-2.5` accepted, `NaN` and `inf` not.
fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props() -> Properties {
        [
            ("API Response", "{}"),
            ("empty", ""),
            ("tier", "gold"),
            ("age", " 42 "),
            ("limit", "40"),
            ("name", "Zoë"),
            ("word", "abc"),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn holds() {
        let props = props();
        let cases = [
            ("{{API Response}} exists", true),
            ("{{ API Response }} exists", true),
            ("{{empty}} exists", true),
            ("{{missing}} exists", false),
            ("{{missing}} not_exists", true),
            ("{{tier}} not_exists", false),
            ("{{tier}} equals gold", true),
            ("{{tier}} equals Gold", false),
            ("{{missing}} equals x", false),
            ("{{tier}} not_equals silver", true),
            ("{{missing}} not_equals x", true),
            ("{{name}} contains ë", true),
            ("{{missing}} contains x", false),
            ("{{age}} > 18", true),
            ("{{age}} >= 42", true),
            ("{{age}} < 42", false),
            ("{{age}} <= 42.0", true),
            ("{{age}} > {{limit}}", true),
            ("{{age}} < 1e3", true),
            ("{{word}} > 1", false),
            ("{{missing}} < 1", false),
            ("{{age}} > {{word}}", false),
            ("{{age}} > {{missing}}", false),
            ("{{tier}} equals {{tier}}", true),
        ];
        for (when, want) in cases {
            let cond = Condition::parse_when(when).unwrap_or_else(|e| panic!("{when}: {e}"));
            assert_eq!(cond.holds(&props), want, "{when}");
        }
    }

    #[test]
    fn structured_spelling() {
        let props = props();
        let cond = Condition::new("tier", "equals", Some("gold")).unwrap();
        assert!(cond.holds(&props));
        let cond = Condition::new("empty", "equals", Some("")).unwrap();
        assert!(cond.holds(&props), "compare with the empty string");
    }

    #[test]
    fn parse_bad() {
        let cases: [(&str, ConditionError); 7] = [
            (
                "API Response exists",
                ConditionError::When {
                    text: "API Response exists".into(),
                },
            ),
            (
                "{{x}}",
                ConditionError::When {
                    text: "{{x}}".into(),
                },
            ),
            (
                "{{x}} is_set",
                ConditionError::UnknownOp {
                    op: "is_set".into(),
                },
            ),
            ("{{x}} exists now", ConditionError::Value { op: Op::Exists }),
            ("{{x}} equals", ConditionError::Value { op: Op::Equals }),
            (
                "{{x}} > ten",
                ConditionError::NotANumber {
                    op: Op::Gt,
                    value: "ten".into(),
                },
            ),
            ("{{}} exists", ConditionError::Name(NameError::Empty)),
        ];
        for (when, want) in cases {
            assert_eq!(Condition::parse_when(when).unwrap_err(), want, "{when}");
        }
        assert!(matches!(
            Condition::parse_when("{{x}} equals {{y"),
            Err(ConditionError::Template(TemplateError::Unclosed { .. }))
        ));
    }
}
