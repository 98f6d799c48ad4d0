//! The formal model of DESIGN §3 as types: prompt, interpretation, spec, probe, behaviour,
//! component, and the check requests that turn programs into behaviours.

use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// An agent, by its position in the agents file (which fixes the order in which agents are
/// asked, so runs are reproducible).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AgentId(pub u32);

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "agent#{}", self.0)
    }
}

/// P: the user's text plus the clarifications given so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Prompt {
    /// What the user asked for.
    pub text: String,
    /// Clarifications, in the order they were given. Each one also carries the outcomes the
    /// user chose, which become contract examples every later interpretation must meet.
    pub clarifications: Vec<Clarification>,
}

/// One answer of the user to an ambiguity question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clarification {
    /// The answer in words, as appended to the prompt.
    pub text: String,
    /// Outcomes the user chose on the probes where readings differed.
    pub examples: Vec<ContractExample>,
}

impl Prompt {
    /// A prompt with no clarifications.
    pub fn new(text: impl Into<String>) -> Prompt {
        Prompt {
            text: text.into(),
            clarifications: Vec::new(),
        }
    }

    /// The prompt as an agent reads it: the text, then each clarification.
    pub fn full_text(&self) -> String {
        let mut s = self.text.clone();
        for (i, c) in self.clarifications.iter().enumerate() {
            s.push_str(&format!("\n\nClarification {}: {}", i + 1, c.text));
        }
        s
    }
}

/// A call on the public interface: a function name and its positional arguments.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Call {
    /// The function called.
    pub function: String,
    /// Its positional arguments.
    pub args: Vec<Value>,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.function)?;
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{}", a.python())?;
        }
        write!(f, ")")
    }
}

/// What a contract example expects of a call.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    /// The call returns a value equal to this one (tuples compare equal to lists; floats
    /// within a relative 1e-9).
    Returns(Value),
    /// The call raises an exception of this class (or a subclass of it).
    Raises(String),
    /// The call's outcome is exactly this one (canonical repr or exception class). Used for
    /// the outcomes a user chose when clarifying; checked by synod, not by the harness.
    Same(Outcome),
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expectation::Returns(v) => write!(f, "returns {}", v.python()),
            Expectation::Raises(k) => write!(f, "raises {k}"),
            Expectation::Same(o) => write!(f, "gives {o}"),
        }
    }
}

/// A contract example: a call and what it must do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ContractExample {
    /// The call.
    pub call: Call,
    /// What it must do.
    pub expect: Expectation,
}

/// One function of an interface: its name and parameter names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FunctionSig {
    /// Function name.
    pub name: String,
    /// Parameter names, in order.
    pub params: Vec<String>,
    /// What it does, in a sentence (for the agents that implement it).
    #[serde(default)]
    pub doc: String,
}

impl fmt::Display for FunctionSig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name, self.params.join(", "))
    }
}

/// One component of a spec: a Python module with the functions it must define.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ComponentSpec {
    /// Module name (a Python identifier, not a standard-library module).
    pub name: String,
    /// The functions it defines.
    pub functions: Vec<FunctionSig>,
}

/// A spec: interfaces per component, a contract, a short summary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// What the program does, in a few sentences.
    pub summary: String,
    /// The components and their interfaces.
    pub components: Vec<ComponentSpec>,
    /// Examples every implementation must meet.
    pub contract: Vec<ContractExample>,
}

impl Spec {
    /// Which module defines each function.
    pub fn function_modules(&self) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        for c in &self.components {
            for f in &c.functions {
                map.insert(f.name.clone(), c.name.clone());
            }
        }
        map
    }

    /// The interface shape (component names, function names and parameters), which is what
    /// decomposition agrees on.
    pub fn interface_key(&self) -> Vec<ComponentSpec> {
        let mut comps = self.components.clone();
        for c in &mut comps {
            for f in &mut c.functions {
                f.doc.clear();
            }
        }
        comps
    }
}

/// An interpretation of P: a spec, a reference program embodying it, and the probe inputs its
/// agent thinks matter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interpretation {
    /// The spec.
    pub spec: Spec,
    /// The reference program: one Python module defining every function of the spec.
    pub reference: String,
    /// Edge cases the agent proposes as probes.
    pub probes: Vec<Call>,
    /// A reading written as one block per module (ADR 0001): each module's source as written,
    /// by name, one per component; its reference is their concatenation (PL-26). Empty for a
    /// one-module reading, whose reference is its module.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, String>,
}

/// The outcome of one call.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Returned a value, shown as its canonical repr (dicts and sets sorted, long values
    /// shortened with a hash).
    Value(String),
    /// Raised an exception of this class.
    Error(String),
    /// Did not finish in time (or was never reached because the process was killed).
    Timeout,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Value(v) => write!(f, "{v}"),
            Outcome::Error(k) => write!(f, "raises {k}"),
            Outcome::Timeout => write!(f, "times out"),
        }
    }
}

impl Outcome {
    /// Does this outcome, from a run now, agree with `recorded`, written by the sandbox of this
    /// or an earlier release? They agree when equal, or equal once `recorded` writes negative
    /// zero as the sandbox has since PL-6 (`0.0`): certificates and logs from before that rule
    /// hold `-0.0`, and a build they certify must still verify.
    pub fn agrees_with(&self, recorded: &Outcome) -> bool {
        match (self, recorded) {
            (Outcome::Value(now), Outcome::Value(then)) => {
                now == then || *now == unsigned_zeros(then)
            }
            _ => self == recorded,
        }
    }
}

/// `text`, a canonical repr, with every float `-0.0` outside string literals written `0.0`.
pub fn unsigned_zeros(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            out.push(c);
            if c == '\\' {
                if let Some(&next) = chars.get(i + 1) {
                    out.push(next);
                    i += 1;
                }
            } else if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            out.push(c);
            i += 1;
            continue;
        }
        let starts_token =
            i == 0 || !(chars[i - 1].is_alphanumeric() || matches!(chars[i - 1], '_' | '.'));
        let ends_token = chars
            .get(i + 4)
            .is_none_or(|n| !(n.is_alphanumeric() || matches!(n, '_' | '.')));
        if c == '-' && starts_token && ends_token && chars[i..].starts_with(&['-', '0', '.', '0']) {
            out.push_str("0.0");
            i += 4;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// A behaviour: the outcomes of a program on the probe set, in probe order.
pub type Behaviour = Vec<Outcome>;

/// A program as a set of Python modules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Program {
    /// Module name → source.
    pub modules: BTreeMap<String, String>,
}

impl Program {
    /// A program of one module.
    pub fn single(name: &str, source: &str) -> Program {
        let mut modules = BTreeMap::new();
        modules.insert(name.to_string(), source.to_string());
        Program { modules }
    }

    /// A content hash of the program (module names and sources).
    pub fn digest(&self) -> String {
        let mut h = blake3::Hasher::new();
        for (name, src) in &self.modules {
            h.update(&(name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update(&(src.len() as u64).to_le_bytes());
            h.update(src.as_bytes());
        }
        h.finalize().to_hex().to_string()
    }
}

/// A call to run in a check, with what it must do if it is a contract example.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckCall {
    /// The call.
    pub call: Call,
    /// The expectation, for contract examples; `None` for probes.
    pub expect: Option<Expectation>,
}

/// A request to run a program: load its modules, check its interface, run calls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRequest {
    /// The program.
    pub program: Program,
    /// Which module each called function is taken from.
    pub function_modules: BTreeMap<String, String>,
    /// Functions that must exist, with these parameters, in these modules.
    pub interface: Vec<(String, FunctionSig)>,
    /// The calls, run in order, each on fresh copies of its arguments.
    pub calls: Vec<CheckCall>,
}

/// What a check found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CheckReport {
    /// The program did not load (syntax error, import error, or the process died before
    /// loading): the reason.
    pub load_error: Option<String>,
    /// Interface mismatches: missing functions, wrong parameters.
    pub interface_errors: Vec<String>,
    /// One outcome per call, in request order.
    pub outcomes: Vec<Outcome>,
    /// Per call: whether the expectation was met (`None` for probes).
    pub met: Vec<Option<bool>>,
    /// The public functions each loaded module defines, as the harness read them with
    /// `inspect` (a reading's interface comes from its code, PL-15). Empty when the program
    /// did not load.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<FoundFunction>,
    /// Operations outside the capability set: found in the source before it ran (the static
    /// layer), or attempted while it ran (the audit hook). Any one is its author's fault,
    /// whatever the outcomes say (issue 11, docs/SECURITY.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
}

/// Which layer of the audit saw a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditLayer {
    /// The allow-list check of the source, before anything ran.
    Static,
    /// The audit hook, while the program ran.
    Runtime,
}

/// An operation a program contains or attempted that its capability set does not grant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Violation {
    /// Which layer saw it.
    pub layer: AuditLayer,
    /// The module (empty when the hook cannot tell).
    pub module: String,
    /// The line in that module (0 when unknown).
    pub line: u32,
    /// The operation: `import subprocess`, `open`, `os.fork`, ...
    pub operation: String,
    /// What it did, in a phrase (`writes /etc/x`).
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layer = match self.layer {
            AuditLayer::Static => "in its source",
            AuditLayer::Runtime => "while running",
        };
        write!(f, "{} ({layer}", self.detail)?;
        if !self.module.is_empty() {
            write!(f, ", module {}", self.module)?;
            if self.line > 0 {
                write!(f, " line {}", self.line)?;
            }
        }
        f.write_str(")")
    }
}

/// What a program may do beyond pure computation. Granted by the user (a build flag), never
/// by agents' votes; the default set is empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Read and write files under the working directory.
    Files,
}

impl Capability {
    /// Every capability, by name.
    pub const ALL: [(Capability, &'static str); 1] = [(Capability::Files, "files")];

    /// Its name (`files`).
    pub fn name(self) -> &'static str {
        match self {
            Capability::Files => "files",
        }
    }

    /// The capability named `name`.
    pub fn parse(name: &str) -> Option<Capability> {
        Capability::ALL
            .iter()
            .find(|(_, n)| *n == name.trim())
            .map(|(c, _)| *c)
    }
}

/// A module-level function the harness found in a loaded module: defined there (not
/// imported), its name not starting with `_`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FoundFunction {
    /// The module defining it.
    pub module: String,
    /// Its name.
    pub name: String,
    /// Its positional parameters, in order.
    pub params: Vec<String>,
    /// How many of them have no default.
    pub required: usize,
}

impl CheckReport {
    /// Indices of calls whose expectation was not met.
    pub fn unmet(&self) -> Vec<usize> {
        self.met
            .iter()
            .enumerate()
            .filter(|(_, m)| **m == Some(false))
            .map(|(i, _)| i)
            .collect()
    }
}

/// Is `name` usable as a component (module) or function name?
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
        && !PYTHON_KEYWORDS.contains(&name)
}

const PYTHON_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

#[cfg(test)]
mod tests {
    use super::{Outcome, unsigned_zeros};

    #[test]
    fn a_recorded_negative_zero_is_the_zero_written_now() {
        assert_eq!(
            unsigned_zeros("[12.5, -0.0, (-0.0,)]"),
            "[12.5, 0.0, (0.0,)]"
        );
        assert_eq!(unsigned_zeros("{-0.0: -0.0}"), "{0.0: 0.0}");
        // Not a zero: other numbers, and text inside strings (with escaped quotes).
        for kept in [
            "-0.05",
            "-0.0e5",
            "x-0.0",
            "['-0.0', \"-0.0\"]",
            "'it\\'s -0.0'",
            "-10.0",
        ] {
            assert_eq!(unsigned_zeros(kept), kept);
        }
        let now = Outcome::Value("[0.0, '-0.0']".into());
        assert!(now.agrees_with(&Outcome::Value("[-0.0, '-0.0']".into())));
        assert!(!now.agrees_with(&Outcome::Value("[-0.0, '0.0']".into())));
        assert!(!Outcome::Value("-0.0".into()).agrees_with(&Outcome::Value("0.0".into())));
        assert!(Outcome::Timeout.agrees_with(&Outcome::Timeout));
    }
}
