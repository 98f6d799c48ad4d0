//! Benchmark suites: reading tasks from the dataset files into one shape.

use crate::EvalError;
use serde::Deserialize;
use std::path::Path;

/// Which dataset a suite file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SuiteKind {
    /// MBPP-sanitized (`sanitized-mbpp.json`).
    Mbpp,
    /// ClassEval (`ClassEval_data.json`).
    Classeval,
    /// HumanEvalComm (`HumanEvalComm-*.jsonl`).
    Humanevalcomm,
}

impl SuiteKind {
    /// Its name in results.
    pub fn name(self) -> &'static str {
        match self {
            SuiteKind::Mbpp => "mbpp",
            SuiteKind::Classeval => "classeval",
            SuiteKind::Humanevalcomm => "humanevalcomm",
        }
    }
}

/// One prompt an agent may be given for a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptVariant {
    /// `original`, or the modified prompt's field name (`prompt1a`, …).
    pub name: String,
    /// The task text as the agent reads it.
    pub text: String,
    /// HumanEvalComm: the function the text itself declares (`def name(params)`), which real
    /// agents are asked for by that name. The modified prompts rename the entry point to
    /// `candidate` so that its name does not give the meaning away, and some hide the
    /// parameters (`candidate(...)`): then `params` is `None`. `None` for the other suites.
    pub declares: Option<Declared>,
}

/// A function a prompt text declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declared {
    /// Its name.
    pub name: String,
    /// Its parameter names, when the text gives them.
    pub params: Option<Vec<String>>,
}

/// The first `def name(params)` of a prompt text: the name, and the parameter names when each
/// is an identifier (annotations and defaults allowed); `candidate(...)` gives no parameters.
pub fn declared_function(text: &str) -> Option<Declared> {
    let at = text
        .match_indices("def ")
        .map(|(i, _)| i)
        .find(|&i| i == 0 || text[..i].ends_with(['\n', ' ', '\t']))?;
    let rest = &text[at + 4..];
    let open = rest.find('(')?;
    let name = rest[..open].trim();
    if !synod_core::model::is_identifier(name) {
        return None;
    }
    let close = rest[open..].find(')')? + open;
    let inner = &rest[open + 1..close];
    let mut params = Vec::new();
    let mut depth = 0i32;
    let mut piece = String::new();
    let mut pieces = Vec::new();
    for c in inner.chars() {
        match c {
            '[' | '(' | '{' => depth += 1,
            ']' | ')' | '}' => depth -= 1,
            ',' if depth == 0 => {
                pieces.push(std::mem::take(&mut piece));
                continue;
            }
            _ => {}
        }
        piece.push(c);
    }
    pieces.push(piece);
    let mut readable = true;
    for p in pieces {
        let p = p.split([':', '=']).next().unwrap_or("").trim().to_string();
        if p.is_empty() {
            continue;
        }
        if synod_core::model::is_identifier(&p) {
            params.push(p);
        } else {
            readable = false;
        }
    }
    Some(Declared {
        name: name.to_string(),
        params: readable.then_some(params),
    })
}

/// A task: text, reference and tests. `tests[0]` is the example agents see (on MBPP; on
/// HumanEvalComm agents see the prompt's text alone); the rest are hidden. Correctness is
/// every test of the task ([`Task::scoring_tests`]), the example included.
#[derive(Clone, Debug)]
pub struct Task {
    /// The dataset's id.
    pub id: String,
    /// The prompts to run: one for MBPP and ClassEval; the original and the modified ones
    /// for HumanEvalComm.
    pub prompts: Vec<PromptVariant>,
    /// The reference solution (trusted: it comes from the dataset).
    pub reference: String,
    /// Test statements (Python `assert`s, or for ClassEval a unittest module).
    pub tests: Vec<String>,
    /// Imports the tests need.
    pub setup: String,
    /// The entry point, when the dataset names it.
    pub entry: Option<String>,
    /// ClassEval: the class skeleton with docstrings (what agents see instead of an example).
    pub skeleton: Option<String>,
}

impl Task {
    /// The hidden tests: every test but the example.
    pub fn hidden_tests(&self) -> &[String] {
        self.tests.get(1..).unwrap_or(&[])
    }

    /// The tests a delivered program is scored on: all of the task's, the example included, as
    /// MBPP and HumanEval define a correct program (a program that breaks the example its
    /// prompt shows is wrong, whatever the other tests say). ClassEval's `tests[0]` is no test
    /// (a placeholder for the skeleton's doctest, see [`classeval_driver`]): its hidden tests.
    pub fn scoring_tests(&self) -> &[String] {
        if self.skeleton.is_some() {
            self.hidden_tests()
        } else {
            &self.tests
        }
    }
}

#[derive(Deserialize)]
struct MbppRow {
    task_id: u64,
    prompt: String,
    code: String,
    #[serde(default)]
    test_imports: Vec<String>,
    test_list: Vec<String>,
}

#[derive(Deserialize)]
struct HecRow {
    name: String,
    prompt: String,
    entry_point: String,
    solution: String,
    /// A Python-literal list of dicts (as the upstream files have it) or the same as JSON.
    test_case: serde_json::Value,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct ClassEvalRow {
    task_id: String,
    skeleton: String,
    test: String,
    solution_code: String,
    #[serde(default)]
    import_statement: Vec<String>,
    class_name: String,
}

/// The entry point of a ClassEval task: a module-level function every program defines next to
/// its class (see [`classeval_driver`]).
pub const CLASSEVAL_ENTRY: &str = "run";

/// The module-level driver appended to a ClassEval reference: `run(script)` makes an object and
/// applies a script of method calls to it (an `["__init__", args]` step makes a new one),
/// returning each call's result or `("raised", class)`. This is the interface
/// agents are asked for (the prompt says so), so the vote compares classes through it.
pub fn classeval_driver(class: &str) -> String {
    format!(
        "\n\ndef {CLASSEVAL_ENTRY}(script):\n    \
         \"\"\"Makes one {class} (with the arguments of a leading [\"__init__\", args] step, else none) and applies\n    \
         the script's [method, args] steps to it in order (a later \"__init__\" step makes a new object); returns\n    \
         each method call's result, or (\"raised\", exception class) for a call that raised.\"\"\"\n    \
         obj = None\n    \
         results = []\n    \
         for name, args in script:\n        \
             if name == \"__init__\":\n            \
                 obj = {class}(*args)\n            \
                 continue\n        \
             if obj is None:\n            \
                 obj = {class}()\n        \
             try:\n            \
                 results.append(getattr(obj, name)(*args))\n        \
             except Exception as e:\n            \
                 results.append((\"raised\", type(e).__name__))\n    \
         return results\n"
    )
}

/// One ClassEval row as a task: the reference is the class plus the driver; the hidden tests
/// are the dataset's unittest methods, one statement each (run with the test classes defined by
/// the setup); `tests[0]` is a placeholder that `prepare.py` replaces with the skeleton's first
/// doctest as a `run(script)` example.
fn classeval_task(r: ClassEvalRow) -> Option<Task> {
    let mut hidden = Vec::new();
    let mut class: Option<String> = None;
    for line in r.test.lines() {
        if let Some(rest) = line.strip_prefix("class ") {
            class = rest
                .split_once("(")
                .filter(|(_, b)| b.contains("TestCase"))
                .map(|(a, _)| a.trim().to_string());
            continue;
        }
        let t = line.trim_start();
        if let (Some(c), Some(rest)) = (&class, t.strip_prefix("def test"))
            && line.len() - t.len() == 4
            && let Some((name, _)) = rest.split_once('(')
        {
            hidden.push(format!(
                "_synod_r = unittest.TestResult()\n{c}('test{name}').run(_synod_r)\nassert _synod_r.wasSuccessful()"
            ));
        }
    }
    if hidden.is_empty() {
        return None;
    }
    let mut setup = r.import_statement.join("\n");
    setup.push_str("\nimport unittest\n");
    setup.push_str(&r.test);
    let mut tests = vec![format!("{CLASSEVAL_ENTRY}([])")];
    tests.extend(hidden);
    let prompt = format!(
        "Implement this class:\n\n{}\n\nAlso define, at module level, run(script): it makes one {} \
         (with the arguments of a leading [\"__init__\", args] step, else none), applies the \
         script's [method, args] steps to it in order and returns the list of the method calls' \
         results (a later [\"__init__\", args] step makes a new object; a call that raises gives \
         (\"raised\", its exception class name)).",
        r.skeleton, r.class_name
    );
    Some(Task {
        id: r.task_id,
        prompts: vec![PromptVariant {
            name: "original".into(),
            text: prompt,
            declares: None,
        }],
        reference: format!(
            "{}{}",
            r.solution_code.trim_end(),
            classeval_driver(&r.class_name)
        ),
        tests,
        setup,
        entry: Some(CLASSEVAL_ENTRY.into()),
        skeleton: Some(r.skeleton),
    })
}

/// Reads a suite file. HumanEvalComm test cases are Python literals: they are turned into
/// `assert` statements here (never evaluated on this side).
pub fn load(path: &Path, kind: SuiteKind) -> Result<Vec<Task>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        what: format!("read suite {}", path.display()),
        source,
    })?;
    let bad = |why: String| EvalError::Suite {
        path: path.display().to_string(),
        why,
    };
    match kind {
        SuiteKind::Mbpp => {
            let rows: Vec<MbppRow> =
                serde_json::from_str(&text).map_err(|e| bad(format!("not MBPP JSON: {e}")))?;
            Ok(rows
                .into_iter()
                .filter(|r| r.test_list.len() >= 2)
                .map(|r| Task {
                    id: r.task_id.to_string(),
                    prompts: vec![PromptVariant {
                        name: "original".into(),
                        text: r.prompt,
                        declares: None,
                    }],
                    reference: r.code,
                    tests: r.test_list,
                    setup: r.test_imports.join("\n"),
                    entry: None,
                    skeleton: None,
                })
                .collect())
        }
        SuiteKind::Humanevalcomm => {
            let mut tasks = Vec::new();
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let r: HecRow = serde_json::from_str(line)
                    .map_err(|e| bad(format!("line {}: not a HumanEvalComm row: {e}", i + 1)))?;
                // Unreadable or too few cases: the task is kept with what there is and skipped
                // when run (see `run_unit`).
                let tests = hec_cases(&r.test_case)
                    .and_then(|cases| hec_asserts(&r.entry_point, cases))
                    .unwrap_or_default();
                let mut prompts = vec![PromptVariant {
                    name: "original".into(),
                    declares: declared_function(&r.prompt),
                    text: r.prompt.clone(),
                }];
                for (k, v) in &r.rest {
                    if k.starts_with("prompt")
                        && let Some(t) = v.as_str()
                        && !t.trim().is_empty()
                    {
                        prompts.push(PromptVariant {
                            name: k.clone(),
                            declares: declared_function(t),
                            text: t.to_string(),
                        });
                    }
                }
                tasks.push(Task {
                    id: r.name.replace('/', "-"),
                    prompts,
                    reference: r.solution,
                    tests,
                    setup: String::new(),
                    entry: Some(r.entry_point),
                    skeleton: None,
                });
            }
            Ok(tasks)
        }
        SuiteKind::Classeval => {
            let rows: Vec<ClassEvalRow> =
                serde_json::from_str(&text).map_err(|e| bad(format!("not ClassEval JSON: {e}")))?;
            Ok(rows.into_iter().filter_map(classeval_task).collect())
        }
    }
}

/// The test cases as (key, value) lists: from a JSON array of objects with string fields, or
/// from a Python-literal string of the same shape.
fn hec_cases(v: &serde_json::Value) -> Option<Vec<Vec<(String, String)>>> {
    match v {
        serde_json::Value::String(s) => scan_dict_list(s),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|c| {
                c.as_object().map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
            })
            .collect(),
        _ => None,
    }
}

/// `test_case` is a Python-literal list of dicts with string fields; it is close enough to
/// JSON once quotes are swapped that a small scanner reads it without evaluating anything.
#[cfg(test)]
fn hec_tests(entry: &str, test_case: &str) -> Option<Vec<String>> {
    hec_asserts(entry, scan_dict_list(test_case)?)
}

fn hec_asserts(entry: &str, cases: Vec<Vec<(String, String)>>) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for c in cases {
        let input = c.iter().find(|(k, _)| k == "input")?.1.clone();
        let output = c.iter().find(|(k, _)| k == "output")?.1.clone();
        let rel = c
            .iter()
            .find(|(k, _)| k == "relation")
            .map(|x| x.1.clone())
            .unwrap_or_else(|| "==".into());
        if rel == "==" {
            let output = literal_or_string(&output);
            out.push(format!("assert {entry}({input}) == {output}"));
        } else if rel.contains("candidate(") && !rel.contains('$') && !rel.contains('\n') {
            // A relation written as an expression over the candidate.
            out.push(format!(
                "assert {}",
                rel.replace("candidate(", &format!("{entry}("))
            ));
        }
    }
    // The example must be a plain call with an expected value.
    if let Some(i) = out.iter().position(|t| t.contains(") == ")) {
        out.swap(0, i);
    }
    Some(out)
}

/// An expected output as Python source: the JSON form of HumanEvalComm writes string results
/// bare (`YES`, `x`); anything that does not look like a literal is quoted as a string.
fn literal_or_string(output: &str) -> String {
    let t = output.trim();
    let literal = matches!(t, "None" | "True" | "False")
        || t.starts_with(['[', '(', '{', '\'', '"', '-', '+', '.'])
        || t.starts_with(|c: char| c.is_ascii_digit()) && t.parse::<f64>().is_ok()
        || t.starts_with(|c: char| c.is_ascii_digit()) && t.contains(['[', '(', ','])
        || t.parse::<f64>().is_ok();
    if literal {
        t.to_string()
    } else {
        synod_core::value::python_str(output)
    }
}

/// Reads `[{'k': 'v', ...}, ...]` where keys and values are Python string literals.
fn scan_dict_list(s: &str) -> Option<Vec<Vec<(String, String)>>> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    let mut pending_key: Option<String> = None;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' || c == '"' {
            let q = c;
            let mut lit = String::new();
            i += 1;
            while i < chars.len() && chars[i] != q {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    let e = chars[i + 1];
                    lit.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                    i += 2;
                    continue;
                }
                lit.push(chars[i]);
                i += 1;
            }
            match pending_key.take() {
                None => pending_key = Some(lit),
                Some(k) => cur.push((k, lit)),
            }
        } else if c == '}' {
            out.push(std::mem::take(&mut cur));
            pending_key = None;
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanevalcomm_cases_become_asserts() {
        let t = hec_tests(
            "f",
            "[{'input': '[1, 2], 0.3', 'output': 'True', 'relation': '=='}, {'input': \"'a b'\", 'output': \"['a', 'b']\", 'relation': '=='}]",
        )
        .unwrap();
        assert_eq!(t[0], "assert f([1, 2], 0.3) == True");
        assert_eq!(t[1], "assert f('a b') == ['a', 'b']");
        assert_eq!(literal_or_string("YES"), "'YES'");
        assert_eq!(literal_or_string("-1.5"), "-1.5");
        assert_eq!(literal_or_string("None"), "None");
        assert_eq!(literal_or_string("[1, 2]"), "[1, 2]");
    }

    #[test]
    fn a_prompt_declares_its_function_and_maybe_its_parameters() {
        let d = declared_function(
            "from typing import List\n\n\ndef candidate(numbers: List[float], threshold: float = 0.5) -> bool:\n",
        )
        .unwrap();
        assert_eq!(d.name, "candidate");
        assert_eq!(d.params, Some(vec!["numbers".into(), "threshold".into()]));
        let hidden =
            declared_function("def candidate(...) -> bool:\n \"\"\" Check.\"\"\"").unwrap();
        assert_eq!((hidden.name.as_str(), hidden.params), ("candidate", None));
        let nested = declared_function("def f(xs: Dict[str, int], k):\n").unwrap();
        assert_eq!(nested.params, Some(vec!["xs".into(), "k".into()]));
        assert_eq!(
            declared_function("Write a function that undefines things."),
            None
        );
        assert_eq!(declared_function("redef x(y)"), None);
    }
}
