//! Values that cross the boundary between synod and a candidate program: probe arguments,
//! expected results of contract examples.
//!
//! Agents write arguments as plain JSON (`[1, "a", [2, 3]]`); the sandbox receives them in a
//! tagged form that also carries Python tuples. Floats are kept as their shortest decimal text
//! so that equality, hashing and ordering are total and deterministic.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// A Python value that can be passed to a candidate program.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "t", content = "v", rename_all = "snake_case")]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A finite float, kept as Rust's shortest round-trip text (`"2.5"`, `"1e300"`).
    Float(String),
    /// A `str`.
    Str(String),
    /// A `list`.
    List(Vec<Value>),
    /// A `tuple`.
    Tuple(Vec<Value>),
    /// A `dict` with the given entries, in order.
    Dict(Vec<(Value, Value)>),
}

/// Why a JSON value could not become a [`Value`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// A number outside the 64-bit integer range and not a finite float.
    #[error("number {0} is neither a 64-bit integer nor a finite float")]
    Number(String),
    /// The value nests deeper than [`Value::DEPTH_MAX`].
    #[error("value nests deeper than {0} levels")]
    TooDeep(usize),
    /// The value has more elements than [`Value::ELEMENTS_MAX`].
    #[error("value has more than {0} elements")]
    TooLarge(usize),
}

impl Value {
    /// Deepest nesting accepted from an agent.
    pub const DEPTH_MAX: usize = 16;
    /// Most elements (all levels together) accepted from an agent.
    pub const ELEMENTS_MAX: usize = 4096;

    /// A float value. Non-finite floats have no JSON form and are mapped to `None`.
    pub fn float(x: f64) -> Value {
        if x.is_finite() {
            let mut s = format!("{x:?}");
            if !s.contains(['.', 'e', 'E']) {
                s.push_str(".0");
            }
            Value::Float(s)
        } else {
            Value::None
        }
    }

    /// The float this value holds, if it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// Converts plain JSON, as agents write it, into a value (objects become dicts with string
    /// keys). Size and depth are capped.
    pub fn from_json(json: &serde_json::Value) -> Result<Value, ValueError> {
        let mut budget = Self::ELEMENTS_MAX;
        Self::from_json_at(json, 0, &mut budget)
    }

    fn from_json_at(
        json: &serde_json::Value,
        depth: usize,
        budget: &mut usize,
    ) -> Result<Value, ValueError> {
        if depth > Self::DEPTH_MAX {
            return Err(ValueError::TooDeep(Self::DEPTH_MAX));
        }
        if *budget == 0 {
            return Err(ValueError::TooLarge(Self::ELEMENTS_MAX));
        }
        *budget -= 1;
        Ok(match json {
            serde_json::Value::Null => Value::None,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
                    Value::float(f)
                } else {
                    return Err(ValueError::Number(n.to_string()));
                }
            }
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(items) => Value::List(
                items
                    .iter()
                    .map(|v| Self::from_json_at(v, depth + 1, budget))
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::Object(map) => Value::Dict(
                map.iter()
                    .map(|(k, v)| {
                        Ok((
                            Value::Str(k.clone()),
                            Self::from_json_at(v, depth + 1, budget)?,
                        ))
                    })
                    .collect::<Result<_, ValueError>>()?,
            ),
        })
    }

    /// The value as Python source text (`[1, 'a', (2,)]`), for reports and generated tests.
    pub fn python(&self) -> String {
        let mut out = String::new();
        self.write_python(&mut out);
        out
    }

    fn write_python(&self, out: &mut String) {
        match self {
            Value::None => out.push_str("None"),
            Value::Bool(true) => out.push_str("True"),
            Value::Bool(false) => out.push_str("False"),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(s) => out.push_str(&python_float(s)),
            Value::Str(s) => out.push_str(&python_str(s)),
            Value::List(items) => {
                out.push('[');
                write_items(items, out);
                out.push(']');
            }
            Value::Tuple(items) => {
                out.push('(');
                write_items(items, out);
                if items.len() == 1 {
                    out.push(',');
                }
                out.push(')');
            }
            Value::Dict(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    k.write_python(out);
                    out.push_str(": ");
                    v.write_python(out);
                }
                out.push('}');
            }
        }
    }

    /// Number of nodes in the value, counting itself.
    pub fn size(&self) -> usize {
        1 + match self {
            Value::List(items) | Value::Tuple(items) => items.iter().map(Value::size).sum(),
            Value::Dict(entries) => entries.iter().map(|(k, v)| k.size() + v.size()).sum(),
            _ => 0,
        }
    }
}

fn write_items(items: &[Value], out: &mut String) {
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        v.write_python(out);
    }
}

/// Python spelling of a float kept as Rust text (`1e300` → `1e+300`, `inf` impossible).
fn python_float(s: &str) -> String {
    match s.split_once('e') {
        Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
        _ => s.to_string(),
    }
}

/// A Python string literal for `s` (single-quoted, escaped like `repr`).
pub fn python_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_becomes_python_values() {
        let v = Value::from_json(&json!([1, 2.5, "a'b", null, true, {"k": [1]}])).unwrap();
        assert_eq!(v.python(), "[1, 2.5, 'a\\'b', None, True, {'k': [1]}]");
    }

    #[test]
    fn floats_keep_python_spelling() {
        assert_eq!(Value::float(1e300).python(), "1e+300");
        assert_eq!(Value::float(3.0).python(), "3.0");
        assert_eq!(Value::float(-0.5).python(), "-0.5");
        assert_eq!(Value::float(f64::NAN), Value::None);
    }

    #[test]
    fn tuples_print_like_python() {
        assert_eq!(Value::Tuple(vec![Value::Int(1)]).python(), "(1,)");
    }

    #[test]
    fn deep_or_huge_json_is_rejected() {
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!([deep]);
        }
        assert!(matches!(
            Value::from_json(&deep),
            Err(ValueError::TooDeep(_))
        ));
        let huge = serde_json::Value::Array(vec![json!(1); 10_000]);
        assert!(matches!(
            Value::from_json(&huge),
            Err(ValueError::TooLarge(_))
        ));
    }
}
