//! Example calls written as Python: `f(1, "a")`, `mod.f([1, 2]) == 3`, `assert f(x) == y`,
//! `print(f(2))  # 4`, `>>> f(2)`.
//!
//! Models write example calls well as Python and badly as JSON, so both the interpret replies
//! and the prompt's own examples are read in this form. Only literals are accepted as arguments
//! and results (numbers, strings, `True`/`False`/`None`, lists, tuples, dicts, unary minus):
//! nothing is evaluated, so a line that is not a literal call is simply not an example.

use crate::model::Call;
use crate::value::Value;

/// One example call read from a line: the call, and the value the writer says it returns
/// (`== value`, or a `# value` / `# -> value` / `# Output: value` comment), if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExampleLine {
    /// The call (the function as written: `f` or `module.f`).
    pub call: Call,
    /// What the writer states it returns.
    pub stated: Option<Value>,
}

/// Longest line read as an example, in bytes.
pub const LINE_BYTES_MAX: usize = 16 * 1024;

/// Reads one line as an example call, or `None` when it is not one.
pub fn example_line(line: &str) -> Option<ExampleLine> {
    let line = line.trim();
    if line.len() > LINE_BYTES_MAX {
        return None;
    }
    let line = line
        .strip_prefix(">>>")
        .map(str::trim_start)
        .unwrap_or(line);
    let (code, comment) = split_comment(line);
    let mut p = Parser::new(code.trim());
    let asserted = p.keyword("assert");
    let printed = !asserted && p.keyword("print");
    if printed && !p.eat('(') {
        return None;
    }
    let call = p.call()?;
    if printed && !p.eat(')') {
        return None;
    }
    let mut stated = None;
    if p.eat_str("==") {
        // A result that is not a literal (`ValueError("...")`, `expected`) still leaves a
        // call worth running: an example without a stated result.
        let v = p.value(0);
        let complete = v.is_some() && (p.at_end() || (asserted && p.peek() == Some(',')));
        if !complete {
            return Some(ExampleLine { call, stated: None });
        }
        stated = v;
    }
    if asserted && p.eat(',') {
        // `assert f(x) == y, "message"`: the message is ignored.
        p.value(0)?;
    }
    if !p.at_end() {
        return None;
    }
    if stated.is_none()
        && let Some(c) = comment
    {
        stated = comment_value(c);
    }
    Some(ExampleLine { call, stated })
}

/// The value stated in a trailing comment: `# 3`, `# -> 3`, `# => 3`, `# Output: 3`,
/// `# returns 3`, `# Expected: 3`.
fn comment_value(comment: &str) -> Option<Value> {
    let mut c = comment.trim();
    for prefix in ["->", "=>", "→"] {
        if let Some(r) = c.strip_prefix(prefix) {
            c = r.trim_start();
        }
    }
    let lower = c.to_ascii_lowercase();
    for word in [
        "output:",
        "outputs:",
        "expected:",
        "expected output:",
        "returns",
        "result:",
        "should return",
    ] {
        if lower.starts_with(word) {
            c = c[word.len()..].trim_start();
            break;
        }
    }
    let mut p = Parser::new(c.trim_end_matches('.').trim());
    let v = p.value(0)?;
    p.at_end().then_some(v)
}

/// Splits `code  # comment` at the first `#` outside a string.
fn split_comment(line: &str) -> (&str, Option<&str>) {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => quote = Some(c),
                '#' => return (&line[..i], Some(&line[i + 1..])),
                _ => {}
            },
        }
    }
    (line, None)
}

/// Reads a Python literal (the whole text), or `None`.
pub fn literal(text: &str) -> Option<Value> {
    let mut p = Parser::new(text.trim());
    let v = p.value(0)?;
    p.at_end().then_some(v)
}

/// Reads a literal call (the whole text): `f(args)` or `module.f(args)`.
pub fn call(text: &str) -> Option<Call> {
    let mut p = Parser::new(text.trim());
    let c = p.call()?;
    p.at_end().then_some(c)
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
    elements: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Parser<'a> {
        Parser {
            s,
            i: 0,
            elements: 0,
        }
    }

    fn rest(&self) -> &'a str {
        &self.s[self.i..]
    }

    fn ws(&mut self) {
        let r = self.rest();
        self.i += r.len() - r.trim_start().len();
    }

    fn at_end(&mut self) -> bool {
        self.ws();
        self.i == self.s.len()
    }

    fn peek(&mut self) -> Option<char> {
        self.ws();
        self.rest().chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.i += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn eat_str(&mut self, t: &str) -> bool {
        self.ws();
        if self.rest().starts_with(t) {
            self.i += t.len();
            true
        } else {
            false
        }
    }

    /// A keyword followed by a space or `(`.
    fn keyword(&mut self, k: &str) -> bool {
        self.ws();
        let r = self.rest();
        if r.starts_with(k)
            && r[k.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_whitespace() || c == '(')
        {
            self.i += k.len();
            true
        } else {
            false
        }
    }

    fn identifier(&mut self) -> Option<&'a str> {
        self.ws();
        let r = self.rest();
        let end = r
            .char_indices()
            .find(|(i, c)| {
                !(c.is_ascii_alphanumeric() || *c == '_') || (*i == 0 && c.is_ascii_digit())
            })
            .map(|(i, _)| i)
            .unwrap_or(r.len());
        if end == 0 {
            return None;
        }
        self.i += end;
        Some(&r[..end])
    }

    fn call(&mut self) -> Option<Call> {
        let mut name = self.identifier()?.to_string();
        while self.rest().starts_with('.') {
            self.i += 1;
            name.push('.');
            name.push_str(self.identifier()?);
        }
        if !self.eat('(') {
            return None;
        }
        let args = self.items(')', 0)?;
        Some(Call {
            function: name,
            args,
        })
    }

    /// Comma-separated values up to `close` (a trailing comma allowed).
    fn items(&mut self, close: char, depth: usize) -> Option<Vec<Value>> {
        let mut out = Vec::new();
        loop {
            if self.eat(close) {
                return Some(out);
            }
            out.push(self.value(depth + 1)?);
            if !self.eat(',') {
                return self.eat(close).then_some(out);
            }
        }
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > Value::DEPTH_MAX {
            return None;
        }
        self.elements += 1;
        if self.elements > Value::ELEMENTS_MAX {
            return None;
        }
        match self.peek()? {
            '[' => {
                self.i += 1;
                self.items(']', depth).map(Value::List)
            }
            '(' => {
                self.i += 1;
                // `(x)` is x; `(x,)` and `()` are tuples.
                if self.eat(')') {
                    return Some(Value::Tuple(Vec::new()));
                }
                let first = self.value(depth + 1)?;
                if self.eat(')') {
                    return Some(first);
                }
                if !self.eat(',') {
                    return None;
                }
                let mut rest = self.items(')', depth)?;
                rest.insert(0, first);
                Some(Value::Tuple(rest))
            }
            '{' => {
                self.i += 1;
                let mut entries = Vec::new();
                loop {
                    if self.eat('}') {
                        return Some(Value::Dict(entries));
                    }
                    let k = self.value(depth + 1)?;
                    if !self.eat(':') {
                        return None;
                    }
                    let v = self.value(depth + 1)?;
                    entries.push((k, v));
                    if !self.eat(',') {
                        return self.eat('}').then_some(Value::Dict(entries));
                    }
                }
            }
            '\'' | '"' => self.string().map(Value::Str),
            '-' | '+' | '0'..='9' | '.' => self.number(),
            _ => {
                let word = self.identifier()?;
                match word {
                    "True" => Some(Value::Bool(true)),
                    "False" => Some(Value::Bool(false)),
                    "None" => Some(Value::None),
                    "r" | "R" if matches!(self.rest().chars().next(), Some('\'' | '"')) => {
                        self.raw_string().map(Value::Str)
                    }
                    _ => None,
                }
            }
        }
    }

    fn number(&mut self) -> Option<Value> {
        let mut negative = false;
        while let Some(c @ ('-' | '+')) = self.peek() {
            self.i += 1;
            if c == '-' {
                negative = !negative;
            }
        }
        self.ws();
        let r = self.rest();
        let end = r
            .char_indices()
            .find(|(i, c)| {
                !(c.is_ascii_alphanumeric()
                    || *c == '.'
                    || *c == '_'
                    || ((*c == '-' || *c == '+')
                        && *i > 0
                        && matches!(r.as_bytes()[i - 1], b'e' | b'E')))
            })
            .map(|(i, _)| i)
            .unwrap_or(r.len());
        let text: String = r[..end].chars().filter(|c| *c != '_').collect();
        if text.is_empty() {
            return None;
        }
        self.i += end;
        let sign = if negative { "-" } else { "" };
        let lower = text.to_ascii_lowercase();
        let radix = [("0x", 16), ("0o", 8), ("0b", 2)]
            .into_iter()
            .find(|(p, _)| lower.starts_with(p));
        if let Some((p, radix)) = radix {
            let n = i128::from_str_radix(&lower[p.len()..], radix).ok()?;
            let n = if negative { -n } else { n };
            return i64::try_from(n).ok().map(Value::Int);
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            if text.len() > 1 && text.starts_with('0') && text.bytes().any(|b| b != b'0') {
                return None; // `012` is not Python 3
            }
            return format!("{sign}{text}").parse::<i64>().ok().map(Value::Int);
        }
        let x: f64 = format!("{sign}{text}").parse().ok()?;
        x.is_finite().then(|| Value::float(x))
    }

    fn raw_string(&mut self) -> Option<String> {
        let q = self.rest().chars().next()?;
        self.i += 1;
        let r = self.rest();
        let end = r.find(q)?;
        self.i += end + 1;
        Some(r[..end].to_string())
    }

    fn string(&mut self) -> Option<String> {
        let q = self.rest().chars().next()?;
        let triple: String = std::iter::repeat_n(q, 3).collect();
        if self.rest().starts_with(&triple) {
            self.i += 3;
            let r = self.rest();
            let end = r.find(&triple)?;
            self.i += end + 3;
            return unescape(&r[..end]);
        }
        self.i += 1;
        let r = self.rest();
        let mut escaped = false;
        for (i, c) in r.char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                self.i += i + 1;
                let s = unescape(&r[..i])?;
                // Adjacent literals concatenate: 'a' 'b' is 'ab'.
                if matches!(self.peek(), Some('\'' | '"')) {
                    return Some(s + &self.string()?);
                }
                return Some(s);
            } else if c == '\n' {
                return None;
            }
        }
        None
    }
}

/// Python's string escapes (the common ones); `None` for one it does not know.
fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '0' => out.push('\0'),
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            '\n' => {}
            'x' => {
                let h: String = chars.by_ref().take(2).collect();
                out.push(char::from_u32(u32::from_str_radix(&h, 16).ok()?)?);
            }
            'u' => {
                let h: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&h, 16).ok()?)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(j: serde_json::Value) -> Value {
        Value::from_json(&j).unwrap()
    }

    #[test]
    fn reads_the_ways_models_write_examples() {
        let e = example_line("count_vowels(\"hello\")").unwrap();
        assert_eq!(e.call.function, "count_vowels");
        assert_eq!(e.call.args, vec![v(serde_json::json!("hello"))]);
        assert_eq!(e.stated, None);
        for line in [
            "assert count_vowels('hello') == 2",
            "assert solution.count_vowels('hello') == 2, 'two vowels'",
            "print(count_vowels('hello'))  # Output: 2",
            ">>> count_vowels('hello') == 2",
            "count_vowels('hello')  # -> 2",
            "count_vowels('hello') # returns 2.",
        ] {
            let e = example_line(line).unwrap_or_else(|| panic!("{line}"));
            assert!(e.call.function.ends_with("count_vowels"), "{line}");
            assert_eq!(e.stated, Some(Value::Int(2)), "{line}");
        }
        assert_eq!(
            example_line("f([1, -2.5, (3,), {'a': None}], True, 0x10, 'x' \"y\")")
                .unwrap()
                .call
                .args,
            vec![
                Value::List(vec![
                    Value::Int(1),
                    Value::float(-2.5),
                    Value::Tuple(vec![Value::Int(3)]),
                    Value::Dict(vec![(v(serde_json::json!("a")), Value::None)]),
                ]),
                Value::Bool(true),
                Value::Int(16),
                v(serde_json::json!("xy")),
            ]
        );
        assert_eq!(literal(r"'a\n\'b' "), Some(v(serde_json::json!("a\n'b"))));
        assert_eq!(literal("1e3"), Some(Value::float(1000.0)));
        assert_eq!(
            literal("(1, 2)"),
            Some(Value::Tuple(vec![Value::Int(1), Value::Int(2)]))
        );
        assert_eq!(literal("(7)"), Some(Value::Int(7)));
        assert_eq!(literal("'#'"), Some(v(serde_json::json!("#"))));
    }

    #[test]
    fn anything_that_is_not_a_literal_call_is_not_an_example() {
        for line in [
            "def count_vowels(text):",
            "return sum(1 for c in text if c in 'aeiou')",
            "x = f(1)",
            "f(x)",
            "f(1) + 2",
            "f(1 + 2)",
            "import solution",
            "f(1",
            "f(012)",
            "print f(1)",
            "f(lambda: 0)",
            "f(99999999999999999999)",
            "",
        ] {
            assert_eq!(example_line(line), None, "{line}");
        }
        // A result that is not a literal leaves the call, with nothing stated.
        for line in [
            "to_roman(0) == ValueError('out of range')",
            "assert f(0) == expected",
            "f(0) == 2 + 3",
        ] {
            let e = example_line(line).unwrap_or_else(|| panic!("{line}"));
            assert_eq!((e.call.args.len(), e.stated), (1, None), "{line}");
        }
        // Deep nesting and huge lines are refused, not a stack overflow.
        let deep = format!("f({}{})", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(example_line(&deep), None);
        let wide = format!("f([{}])", "1,".repeat(5000));
        assert_eq!(example_line(&wide), None);
    }
}
