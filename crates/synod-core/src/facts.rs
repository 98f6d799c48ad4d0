//! What the prompt itself fixes, read from its text: the module name, function signatures and
//! literal examples (PL-16). Every reading must honour them; nothing else in the prompt is
//! taken as a check.
//!
//! Recognised, and nothing more:
//! - a **module name**: a backticked identifier right after the word `module` (optionally
//!   `named` or `called` between), or right before it: "a module named `solution`",
//!   "the `solution` module" (not a name programs may not use, [`crate::reserved`]: "use the
//!   `re` module" names a module to use);
//! - a **signature**: a backticked `name(params)` (optionally `def name(params)`), whose
//!   params are identifiers, with optional annotations and defaults: "`count_vowels(text)`";
//! - a **literal example**: `call == literal`, with literal arguments, on a line of its own
//!   (optionally after `assert` or `>>>`) or in backticks, and a doctest pair (`>>> call`
//!   with the literal result on the next line);
//! - an **import** the prompt's code shows: a line `import a`, `import a.b`, `import a as b` or
//!   `from m import x, y as z` (not `*`), which a reading's module gets when it uses a name the
//!   line binds and does not bind it itself (PL-23).

use crate::model::{Call, ContractExample, Expectation};
use crate::pyexpr;

/// A function the prompt names with its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedFunction {
    /// Its name.
    pub name: String,
    /// Its positional parameter names, as the prompt writes them.
    pub params: Vec<String>,
}

/// What the prompt fixes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PromptFacts {
    /// The module the prompt names, if it names one (the first of [`PromptFacts::modules`]).
    pub module: Option<String>,
    /// Every module the prompt names, in order of first appearance, at most
    /// [`PROMPT_MODULES_MAX`]: a prompt that names several asks for one block per module.
    pub modules: Vec<String>,
    /// Signatures, in order of first appearance.
    pub functions: Vec<FixedFunction>,
    /// Literal examples (always `Expectation::Returns`), in order, without duplicates.
    pub examples: Vec<ContractExample>,
    /// Import lines of the prompt's code, in order, without duplicates (PL-23).
    pub imports: Vec<PromptImport>,
}

/// An import line the prompt shows, and the names it binds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptImport {
    /// The line, trimmed (`from typing import List`).
    pub line: String,
    /// The names it binds (`List`).
    pub names: Vec<String>,
}

/// Most module names taken from a prompt.
pub const PROMPT_MODULES_MAX: usize = 8;

/// Most import lines taken from a prompt.
pub const PROMPT_IMPORTS_MAX: usize = 16;

/// The import a trimmed line states, if it is one.
fn import_line(t: &str) -> Option<PromptImport> {
    let t = t.split('#').next().unwrap_or("").trim();
    let mut names = Vec::new();
    if let Some(rest) = t.strip_prefix("from ") {
        let (module, what) = rest.split_once(" import ")?;
        if !module.trim().split('.').all(crate::model::is_identifier) {
            return None;
        }
        let what = what.trim().trim_start_matches('(').trim_end_matches(')');
        for item in what.split(',') {
            let item = item.trim();
            let bound = match item.split_once(" as ") {
                Some((_, alias)) => alias.trim(),
                None => item,
            };
            if !crate::model::is_identifier(bound) {
                return None;
            }
            names.push(bound.to_string());
        }
    } else if let Some(rest) = t.strip_prefix("import ") {
        for item in rest.split(',') {
            let (module, alias) = match item.split_once(" as ") {
                Some((m, a)) => (m.trim(), Some(a.trim())),
                None => (item.trim(), None),
            };
            if !module.split('.').all(crate::model::is_identifier) {
                return None;
            }
            let bound = alias.unwrap_or_else(|| module.split('.').next().unwrap_or(""));
            if !crate::model::is_identifier(bound) {
                return None;
            }
            names.push(bound.to_string());
        }
    } else {
        return None;
    }
    (!names.is_empty()).then(|| PromptImport {
        line: t.to_string(),
        names,
    })
}

/// `code` with the prompt's import lines it needs (PL-23): those binding a name the code uses
/// as an identifier and does not bind itself (by an import, `def`, `class` or assignment at the
/// start of a line). They go first, after any `from __future__` lines. Unchanged when none is
/// needed.
pub fn with_prompt_imports(code: &str, imports: &[PromptImport]) -> String {
    let used = identifiers(code);
    let binds = |name: &str| {
        code.lines().any(|l| {
            let t = l.trim_start();
            let word = |rest: &str| {
                rest.strip_prefix(name).is_some_and(|after| {
                    !after.starts_with(|c: char| c.is_alphanumeric() || c == '_')
                })
            };
            (t.starts_with("import ") || t.starts_with("from "))
                && import_line(t).is_some_and(|i| i.names.iter().any(|n| n == name))
                || t.strip_prefix("def ").is_some_and(word)
                || t.strip_prefix("class ").is_some_and(word)
                || (word(t)
                    && t[name.len()..].trim_start().starts_with('=')
                    && !t[name.len()..].trim_start().starts_with("=="))
        })
    };
    let needed: Vec<&str> = imports
        .iter()
        .filter(|i| {
            i.names
                .iter()
                .any(|n| used.contains(n.as_str()) && !binds(n))
        })
        .map(|i| i.line.as_str())
        .collect();
    if needed.is_empty() {
        return code.to_string();
    }
    let lines: Vec<&str> = code.lines().collect();
    let future_end = lines
        .iter()
        .rposition(|l| l.trim_start().starts_with("from __future__ import"))
        .map_or(0, |k| k + 1);
    let mut out = String::new();
    for l in &lines[..future_end] {
        out.push_str(l);
        out.push('\n');
    }
    for n in needed {
        out.push_str(n);
        out.push('\n');
    }
    for l in &lines[future_end..] {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// The identifiers in `code` (outside nothing: strings and comments count too, which at worst
/// adds an import that is not needed).
fn identifiers(code: &str) -> std::collections::BTreeSet<&str> {
    let mut out = std::collections::BTreeSet::new();
    let mut start = None;
    for (i, c) in code.char_indices() {
        let part = c.is_alphanumeric() || c == '_';
        match (start, part) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                out.insert(&code[s..i]);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.insert(&code[s..]);
    }
    out
}

/// Most literal examples taken from a prompt.
pub const PROMPT_EXAMPLES_MAX: usize = 32;

/// Reads what the prompt text fixes.
pub fn prompt_facts(text: &str) -> PromptFacts {
    let mut facts = PromptFacts::default();
    let spans = backticked(text);
    for (start, end) in &spans {
        let span = text[*start..*end].trim();
        if let Some(f) = signature(span)
            && !facts.functions.iter().any(|g| g.name == f.name)
        {
            facts.functions.push(f);
        }
        // "Use the `re` module" names a module to use, not the program's: a reserved name is
        // never the module the prompt fixes.
        if facts.modules.len() < PROMPT_MODULES_MAX
            && !facts.modules.iter().any(|m| m == span)
            && crate::model::is_identifier(span)
            && crate::reserved::module_name_problem(span).is_none()
        {
            let before = text[..start.saturating_sub(1)]
                .trim_end()
                .to_ascii_lowercase();
            let after = text[(*end + 1).min(text.len())..]
                .trim_start()
                .to_ascii_lowercase();
            let named_before = ["module", "module named", "module called"]
                .iter()
                .any(|w| before.ends_with(w));
            if named_before || after.starts_with("module") {
                facts.module.get_or_insert_with(|| span.to_string());
                facts.modules.push(span.to_string());
            }
        }
        if let Some(e) = stated_example(span) {
            push_example(&mut facts, e);
        }
    }
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines {
        if let Some(i) = import_line(line.trim())
            && facts.imports.len() < PROMPT_IMPORTS_MAX
            && !facts.imports.contains(&i)
        {
            facts.imports.push(i);
        }
    }
    for (k, line) in lines.iter().enumerate() {
        let t = line.trim().trim_start_matches(['-', '*']).trim();
        if let Some(e) = stated_example(t) {
            push_example(&mut facts, e);
        } else if let Some(call) = t.strip_prefix(">>>").and_then(|c| pyexpr::call(c.trim()))
            && let Some(v) = lines
                .get(k + 1)
                .and_then(|next| pyexpr::literal(next.trim()))
        {
            push_example(
                &mut facts,
                ContractExample {
                    call,
                    expect: Expectation::Returns(v),
                },
            );
        }
    }
    facts
}

fn push_example(facts: &mut PromptFacts, e: ContractExample) {
    if facts.examples.len() < PROMPT_EXAMPLES_MAX && !facts.examples.contains(&e) {
        facts.examples.push(e);
    }
}

/// `call == literal` (after an optional `assert` or `>>>`): a stated example, or `None`.
fn stated_example(text: &str) -> Option<ContractExample> {
    if !text.contains("==") {
        return None;
    }
    let line = pyexpr::example_line(text)?;
    let value = line.stated?;
    // Only a stated `==`, not a comment: a comment in a prompt is prose.
    let (code, _) = text.split_once('#').unwrap_or((text, ""));
    if !code.contains("==") {
        return None;
    }
    Some(ContractExample {
        call: line.call,
        expect: Expectation::Returns(value),
    })
}

/// `name(params)` or `def name(params)` with identifier params (annotations, defaults and a
/// trailing `:` or `-> type` allowed).
fn signature(span: &str) -> Option<FixedFunction> {
    let s = span.strip_prefix("def ").unwrap_or(span).trim();
    let open = s.find('(')?;
    let name = s[..open].trim();
    if !crate::model::is_identifier(name) || BUILTINS.contains(&name) {
        return None;
    }
    let close = s.rfind(')')?;
    let tail = s[close + 1..].trim();
    if !(tail.is_empty() || tail == ":" || tail.starts_with("->")) {
        return None;
    }
    let inner = &s[open + 1..close];
    let mut params = Vec::new();
    for p in split_top(inner) {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        let p = p.split([':', '=']).next().unwrap_or("").trim();
        if p == "/" || p.starts_with('*') {
            continue;
        }
        if !crate::model::is_identifier(p) {
            return None;
        }
        params.push(p.to_string());
    }
    Some(FixedFunction {
        name: name.to_string(),
        params,
    })
}

/// Built-in functions a prompt may mention in backticks without asking for them.
const BUILTINS: &[&str] = &[
    "abs",
    "all",
    "any",
    "dict",
    "enumerate",
    "filter",
    "float",
    "input",
    "int",
    "isinstance",
    "len",
    "list",
    "map",
    "max",
    "min",
    "open",
    "print",
    "range",
    "reversed",
    "round",
    "set",
    "sorted",
    "str",
    "sum",
    "tuple",
    "type",
    "zip",
];

/// Splits at commas outside brackets.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Byte ranges of the text inside single backticks (not fences).
fn backticked(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'`' {
            let run = b[i..].iter().take_while(|c| **c == b'`').count();
            if run == 1
                && let Some(len) = text[i + 1..].find(['`', '\n'])
                && b[i + 1 + len] == b'`'
            {
                out.push((i + 1, i + 1 + len));
                i += len + 2;
                continue;
            }
            i += run;
        } else {
            i += 1;
        }
    }
    out
}

/// The call of a fixed function: does `call` name `f` (bare or as `module.f`)?
pub fn names_function(call: &Call, f: &str) -> bool {
    call.function == f || call.function.rsplit_once('.').is_some_and(|(_, g)| g == f)
}

/// The functions `code` defines at module level (`def` or `async def` at the start of a line),
/// in order, each with whether it has a body: a body of only a docstring, `pass`, `...` and
/// comments is none (PL-27). Read from the text, so a module that does not parse still shows
/// what it defines.
pub fn top_level_functions(code: &str) -> Vec<(String, bool)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    let mut k = 0;
    while k < lines.len() {
        let Some(rest) = lines[k]
            .strip_prefix("def ")
            .or_else(|| lines[k].strip_prefix("async def "))
        else {
            k += 1;
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // The signature ends at the first `:` outside brackets once its parameters closed;
        // text after it on that line (`def f(x): return (x, 1)`) is a body there.
        let (mut depth, mut opened) = (0i32, false);
        let mut end = k;
        let mut inline = false;
        'scan: while end < lines.len() {
            let line = code_part(lines[end]);
            for (at, c) in line.char_indices() {
                match c {
                    '(' | '[' | '{' => {
                        depth += 1;
                        opened = true;
                    }
                    ')' | ']' | '}' => depth -= 1,
                    ':' if opened && depth <= 0 => {
                        inline = !line[at + 1..].trim().is_empty();
                        break 'scan;
                    }
                    _ => {}
                }
            }
            end += 1;
        }
        let mut body = Vec::new();
        let mut b = end + 1;
        while b < lines.len() && (lines[b].trim().is_empty() || lines[b].starts_with([' ', '\t'])) {
            body.push(lines[b]);
            b += 1;
        }
        if !name.is_empty() {
            out.push((name, inline || !is_stub_body(&body)));
        }
        k = b.max(k + 1);
    }
    out
}

/// PL-27: the function of `code` that has no body where one is needed, if any: the first
/// function the prompt names (`named`) that has none, or, when the prompt names none, the
/// first public one when every public module-level function has none.
pub fn bodiless_function(code: &str, named: &[FixedFunction]) -> Option<String> {
    let found = top_level_functions(code);
    let stub = |name: &str| found.iter().any(|(n, body)| n == name && !body);
    if !named.is_empty() {
        return named.iter().find(|f| stub(&f.name)).map(|f| f.name.clone());
    }
    let public: Vec<&(String, bool)> = found.iter().filter(|(n, _)| !n.starts_with('_')).collect();
    (!public.is_empty() && public.iter().all(|(_, body)| !body)).then(|| public[0].0.clone())
}

/// PL-27's fault, in a sentence, when `code` has a function without a body where one is needed
/// ([`bodiless_function`]); the pipeline, `synod node` and the eval all say it so.
pub fn bodiless_problem(code: &str, named: &[FixedFunction]) -> Option<String> {
    bodiless_function(code, named).map(|f| {
        format!(
            "its {f}() has no body, only its docstring or pass: the reply repeats the prompt's stub instead of a program (PL-27)"
        )
    })
}

/// The line before its `#` comment; a `#` inside a string literal (`def f(sep='#'):`) is not
/// one.
fn code_part(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (at, c) in line.char_indices() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '#' => return &line[..at],
            None => {}
        }
    }
    line
}

/// Is a function body only a docstring, `pass`, `...` and comments?
fn is_stub_body(body: &[&str]) -> bool {
    let mut stmts: Vec<&str> = body
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if let Some(first) = stmts.first().copied() {
        let f = first.trim_start_matches(['r', 'u', 'R', 'U']);
        let quote = ["\"\"\"", "'''"].into_iter().find(|q| f.starts_with(q));
        let one_line = |q: char| f.len() >= 2 && f.starts_with(q) && f.ends_with(q);
        match quote {
            Some(q) if f[3..].contains(q) => {
                stmts.remove(0);
            }
            Some(q) => {
                let close = stmts[1..]
                    .iter()
                    .position(|l| l.contains(q))
                    .map_or(stmts.len(), |i| i + 2);
                stmts.drain(..close.min(stmts.len()));
            }
            None if one_line('"') || one_line('\'') => {
                stmts.remove(0);
            }
            None => {}
        }
    }
    stmts.iter().all(|s| *s == "pass" || *s == "...")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn reads_module_signatures_and_examples() {
        let f = prompt_facts(
            "Write a Python module named `solution` (standard library only) with a function \
             `count_vowels(text)` that returns how many vowels the string `text` contains.",
        );
        assert_eq!(f.module.as_deref(), Some("solution"));
        assert_eq!(
            f.functions,
            vec![FixedFunction {
                name: "count_vowels".into(),
                params: vec!["text".into()]
            }]
        );
        assert!(f.examples.is_empty());

        let f = prompt_facts(
            "Use the `rpn` module. `def calculate(expr: str, base=10) -> int`\n\
             For example `calculate('3 4 +') == 7`, and:\n\
             assert calculate('1 2 -') == -1\n\
             >>> calculate('2 3 *')\n6\n\
             - calculate('0') == 0 is the edge case\n\
             calculate('5') returns 5",
        );
        assert_eq!(f.module.as_deref(), Some("rpn"));
        assert_eq!(f.modules, vec!["rpn"]);
        assert_eq!(f.functions[0].params, vec!["expr", "base"]);
        let shown: Vec<String> = f
            .examples
            .iter()
            .map(|e| format!("{} {}", e.call, e.expect))
            .collect();
        assert_eq!(
            shown,
            vec![
                "calculate('3 4 +') returns 7",
                "calculate('1 2 -') returns -1",
                "calculate('2 3 *') returns 6",
            ]
        );
        assert_eq!(f.examples[1].expect, Expectation::Returns(Value::Int(-1)));
    }

    #[test]
    fn prose_is_not_a_fact() {
        let f = prompt_facts(
            "Sort the list `xs` in place; return `None`. Use `sorted(xs)` if you like?\n\
             The `len` of the result must equal x == y.",
        );
        assert_eq!(f.module, None);
        assert_eq!(f.functions, vec![]);
        assert!(f.examples.is_empty(), "{:?}", f.examples);
        assert_eq!(prompt_facts("``` `unclosed").functions, vec![]);
        assert_eq!(prompt_facts("").module, None);
    }

    #[test]
    fn a_module_to_use_is_not_the_programs_module() {
        let f = prompt_facts("Use the `re` module to write a module named `tokens`.");
        assert_eq!(f.module.as_deref(), Some("tokens"));
        let f = prompt_facts("Write a module named `test_contract` with `f(x)`.");
        assert_eq!(f.module, None, "a reserved name is not fixed by the prompt");
    }

    #[test]
    fn a_function_with_only_its_docstring_has_no_body() {
        // As Qwen2.5-Coder wrote HumanEval/2: the prompt's stub, copied, and no code.
        let echoed = "from typing import List\n\ndef truncate_number(number: float) -> float:\n    \"\"\" Given a positive floating point number...\n\n    >>> truncate_number(3.5)\n    0.5\n    \"\"\"\n";
        let one = |name: &str, body: bool| vec![(name.to_string(), body)];
        assert_eq!(top_level_functions(echoed), one("truncate_number", false));
        let real = format!("{echoed}    return number % 1.0\n");
        assert_eq!(top_level_functions(&real), one("truncate_number", true));
        let code = "def a(x):\n    pass\n\ndef b(\n    x,\n):  # two lines\n    '''Doc.'''\n    ...\n\nasync def c(x: int) -> Tuple[int, int]: return (x, 1)\n\ndef d(x):\n    # only a comment\n    'one-line doc'\n\nclass K:\n    def e(self):\n        pass\n\ndef f(x):\n    \"\"\"Doc\n    on lines.\"\"\"\n    return x\n";
        let want: Vec<(String, bool)> = [
            ("a", false),
            ("b", false),
            ("c", true),
            ("d", false),
            ("f", true),
        ]
        .iter()
        .map(|(n, b)| (n.to_string(), *b))
        .collect();
        assert_eq!(top_level_functions(code), want);
        // A `#` in a default is no comment: the signature still ends at its own `:`.
        let hashed =
            "def g(sep='#', x=\"a#b\"):  # a comment\n    return sep\n\ndef h():\n    pass\n";
        assert_eq!(
            top_level_functions(hashed),
            vec![("g".to_string(), true), ("h".to_string(), false)]
        );
    }

    #[test]
    fn every_module_the_prompt_names_is_kept_in_order() {
        let rpn = include_str!("../../../examples/rpn-calculator/prompt.md");
        let f = prompt_facts(rpn);
        assert_eq!(f.modules, vec!["rpn_lexer", "rpn_parser", "rpn_eval"]);
        assert_eq!(f.module.as_deref(), Some("rpn_lexer"));
        let f = prompt_facts("A module named `a`; the `a` module again; module `b`.");
        assert_eq!(f.modules, vec!["a", "b"]);
    }

    #[test]
    fn the_prompts_imports_are_added_where_a_reading_uses_them() {
        let f = prompt_facts(
            "from typing import List, Tuple as T\nimport math\n\ndef f(xs: List[float]) -> bool:\n    \"\"\"Doc.\"\"\"\n",
        );
        assert_eq!(
            f.imports
                .iter()
                .map(|i| i.line.as_str())
                .collect::<Vec<_>>(),
            ["from typing import List, Tuple as T", "import math"]
        );
        assert_eq!(f.imports[0].names, ["List", "T"]);
        // Uses List without importing it: the prompt's line is added, and only that one.
        let code = "# module: solution\n\ndef f(xs: List[float]) -> bool:\n    return True\n";
        let fixed = with_prompt_imports(code, &f.imports);
        assert_eq!(
            fixed,
            format!("from typing import List, Tuple as T\n{code}")
        );
        // Imports it itself, or binds the name: unchanged.
        let own =
            "from typing import List\ndef f(xs: List[float]):\n    return math.pi\nmath = 3\n";
        assert_eq!(with_prompt_imports(own, &f.imports), own);
        // After __future__ imports.
        let fut = "from __future__ import annotations\ndef f(x):\n    return math.sqrt(x)\n";
        assert_eq!(
            with_prompt_imports(fut, &f.imports),
            "from __future__ import annotations\nimport math\ndef f(x):\n    return math.sqrt(x)\n"
        );
        // Not imports: prose, a star import, a comparison.
        assert!(
            prompt_facts("Import the data from the file.\nfrom x import *\nimportance = 3\n")
                .imports
                .is_empty()
        );
        assert_eq!(
            with_prompt_imports("def g():\n    return 1\n", &f.imports),
            "def g():\n    return 1\n"
        );
    }
}
