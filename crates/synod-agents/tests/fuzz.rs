//! Bad input, fuzzed: the reply parser and the agents file take whatever an agent (or a user's
//! editor) produces. Each property checks the same promise: no panic, output no larger than the
//! input allows, and every rejection carries a reason.
//!
//! Case counts are fixed (`CASES_*`) so the whole file runs in a few seconds; the totals are in
//! `docs/BENCHMARKS.md` ("fuzz executions").

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value as Json, json};
use std::path::Path;
use std::time::{Duration, Instant};
use synod_agents::AgentsFile;
use synod_agents::reply::{
    REPLY_BYTES_MAX, fences, parse_implementation, parse_interpretation, parse_lenient_json,
    parse_reply,
};
use synod_core::pipeline::{ReplyFault, Role};

const CASES_TEXT: u32 = 512;
const CASES_STRUCTURED: u32 = 256;
const CASES_TOML: u32 = 512;

/// `cases` cases; a failure prints its minimal input instead of writing a regressions file.
fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Runs every reply parser on `text` and checks what they say.
fn check_all_parsers(text: &str) {
    for f in fences(text) {
        assert!(
            f.body.len() <= text.len(),
            "a fence body longer than the reply"
        );
        assert!(
            f.tag.len() <= 4 * text.len(),
            "a fence tag longer than the reply allows"
        );
    }
    match parse_interpretation(text) {
        Ok(i) => {
            assert!(i.reference.len() <= text.len());
            assert!(i.spec.summary.chars().count() <= 2000);
            // Every call, component and example came from at least a few bytes of the reply.
            let items = i.spec.components.len() + i.spec.contract.len() + i.probes.len();
            assert!(
                items <= text.len(),
                "{items} items from {} bytes",
                text.len()
            );
        }
        Err(reason) => assert!(!reason.trim().is_empty(), "a rejection without a reason"),
    }
    match parse_implementation(text) {
        Ok(module) => assert!(module.len() <= text.len()),
        Err(reason) => assert!(!reason.trim().is_empty(), "a rejection without a reason"),
    }
    for role in [Role::Interpret, Role::Implement] {
        match parse_reply(role, text) {
            Ok(_) => {}
            Err(ReplyFault::Invalid(reason)) => assert!(!reason.trim().is_empty()),
            Err(other) => panic!("the parser invented a fault it cannot see: {other:?}"),
        }
    }
    // The parser only ever hands it text from within a capped reply.
    if text.len() <= REPLY_BYTES_MAX
        && let Err(reason) = parse_lenient_json(text)
    {
        assert!(reason.contains("does not parse"), "{reason}");
    }
}

/// Pieces that models (and attackers) put in replies: fences of every shape, thinking blocks,
/// JSON punctuation, code.
fn reply_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("```".to_string()),
        Just("```json".to_string()),
        Just("```JSON".to_string()),
        Just("```python".to_string()),
        Just("```py".to_string()),
        Just("````".to_string()),
        Just("`````python".to_string()),
        Just("   ```".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(",".to_string()),
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just(":".to_string()),
        Just("def f(x):\n    return x\n".to_string()),
        Just("class C: pass\n".to_string()),
        Just("<think>".to_string()),
        Just("</think>".to_string()),
        Just("<thinking>".to_string()),
        Just("</thinking>".to_string()),
        Just(r#""components": []"#.to_string()),
        Just(r#"{"call": "f", "args": [1]}"#.to_string()),
        "\\PC{0,12}",
    ]
}

fn reply_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(reply_piece(), 0..60).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(config(CASES_TEXT))]

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        check_all_parsers(&text);
    }

    #[test]
    fn arbitrary_bytes_made_text_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        check_all_parsers(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn fence_soup_never_panics(text in reply_soup()) {
        check_all_parsers(&text);
        // A fence opens only on a line that starts with three backticks.
        let openers = text.lines().filter(|l| l.trim_start().starts_with("```")).count();
        prop_assert!(fences(&text).len() <= openers);
    }
}

/// A reply every parser accepts; mutations of it are the near-misses.
fn valid_spec() -> Json {
    json!({
        "summary": "adds numbers",
        "components": [
            {"name": "adder", "functions": [{"name": "add", "params": ["a: int", "b"], "doc": "a + b"}]}
        ],
        "contract": [
            {"call": "add", "args": [1, 2], "returns": 3},
            {"call": "add", "args": ["x", 1], "raises": "TypeError"}
        ],
        "probes": [{"call": "add", "args": [0, {"k": [1.5, null, true]}]}]
    })
}

const REFERENCE: &str = "def add(a, b):\n    return a + b\n";

/// One change to a JSON spec.
#[derive(Clone, Debug)]
enum Mutation {
    /// Remove the key at this position of this object.
    DeleteKey(usize),
    /// Replace a value with one of the wrong type.
    WrongType(usize, u8),
    /// Replace a value with a large array.
    HugeArray(usize, usize),
    /// Replace a value with deeply nested arrays or objects.
    Deep(usize, usize, bool),
    /// Replace a value with a number out of every range.
    BigNumber(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::DeleteKey),
        (any::<usize>(), any::<u8>()).prop_map(|(i, t)| Mutation::WrongType(i, t)),
        (
            any::<usize>(),
            prop_oneof![8 => 0usize..100, 2 => 1000usize..3000, 1 => Just(8_000usize)]
        )
            .prop_map(|(i, n)| Mutation::HugeArray(i, n)),
        (any::<usize>(), 0usize..400, any::<bool>()).prop_map(|(i, d, o)| Mutation::Deep(i, d, o)),
        any::<usize>().prop_map(Mutation::BigNumber),
    ]
}

/// Pointers to every value in `v` (depth first), so a mutation can pick one by index.
fn pointers(v: &Json, at: String, out: &mut Vec<String>) {
    // Enough targets to reach every part of the spec; a huge array needs no more than a few.
    if out.len() >= 256 {
        return;
    }
    out.push(at.clone());
    match v {
        Json::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        Json::Object(map) => {
            for (k, x) in map {
                pointers(x, format!("{at}/{k}"), out);
            }
        }
        _ => {}
    }
}

fn nested(depth: usize, objects: bool) -> Json {
    let mut v = json!(1);
    for _ in 0..depth {
        v = if objects { json!({"k": v}) } else { json!([v]) };
    }
    v
}

fn apply(spec: &mut Json, m: &Mutation) {
    let mut all = Vec::new();
    pointers(spec, String::new(), &mut all);
    let pick = |i: usize| all[i % all.len()].clone();
    match m {
        Mutation::DeleteKey(i) => {
            let objects: Vec<String> = all
                .iter()
                .filter(|p| spec.pointer(p).is_some_and(Json::is_object))
                .cloned()
                .collect();
            let Some(p) = objects.get(i % objects.len().max(1)) else {
                return;
            };
            if let Some(Json::Object(map)) = spec.pointer_mut(p)
                && !map.is_empty()
            {
                let key = map.keys().nth(i % map.len()).cloned().unwrap_or_default();
                map.remove(&key);
            }
        }
        Mutation::WrongType(i, t) => {
            let wrong = match t % 6 {
                0 => json!(null),
                1 => json!(7),
                2 => json!("text"),
                3 => json!([]),
                4 => json!({}),
                _ => json!(false),
            };
            if let Some(v) = spec.pointer_mut(&pick(*i)) {
                *v = wrong;
            }
        }
        Mutation::HugeArray(i, n) => {
            let item = json!({"call": "add", "args": [1, 2], "returns": 3});
            if let Some(v) = spec.pointer_mut(&pick(*i)) {
                *v = Json::Array(vec![item; *n]);
            }
        }
        Mutation::Deep(i, d, o) => {
            if let Some(v) = spec.pointer_mut(&pick(*i)) {
                *v = nested(*d, *o);
            }
        }
        Mutation::BigNumber(i) => {
            if let Some(v) = spec.pointer_mut(&pick(*i)) {
                *v = serde_json::from_str("1e999999").unwrap_or(json!(u64::MAX));
            }
        }
    }
}

/// How the JSON and the code are wrapped.
#[derive(Clone, Copy, Debug)]
enum Framing {
    Tagged,
    Untagged,
    NoFenceForJson,
    UnterminatedJson,
    UnterminatedPython,
    NestedFences,
    TrailingCommas,
}

fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![
        Just(Framing::Tagged),
        Just(Framing::Untagged),
        Just(Framing::NoFenceForJson),
        Just(Framing::UnterminatedJson),
        Just(Framing::UnterminatedPython),
        Just(Framing::NestedFences),
        Just(Framing::TrailingCommas),
    ]
}

fn render(spec: &Json, framing: Framing) -> String {
    let json = serde_json::to_string_pretty(spec).unwrap_or_default();
    match framing {
        Framing::Tagged => format!("Reading:\n```json\n{json}\n```\n```python\n{REFERENCE}```\n"),
        Framing::Untagged => format!("```\n{json}\n```\n```\n{REFERENCE}```\n"),
        Framing::NoFenceForJson => format!("Here: {json}\n```python\n{REFERENCE}```\n"),
        Framing::UnterminatedJson => format!("```json\n{json}\n```python\n{REFERENCE}"),
        Framing::UnterminatedPython => format!("```json\n{json}\n```\n```python\n{REFERENCE}"),
        Framing::NestedFences => format!(
            "````markdown\n```json\n{json}\n```\n````\n```python\n```python\n{REFERENCE}```\n```\n"
        ),
        Framing::TrailingCommas => {
            let json = json.replace("\n  }", ",\n  }").replace("\n]", ",\n]");
            format!("```json\n{json}\n```\n```python\n{REFERENCE}```\n")
        }
    }
}

#[test]
fn the_unmutated_reply_parses_in_every_framing_that_keeps_both_parts() {
    // So the mutation property starts from a reply that is accepted: a generator of only
    // rejected replies would test nothing.
    for framing in [
        Framing::Tagged,
        Framing::Untagged,
        Framing::NoFenceForJson,
        Framing::UnterminatedPython,
        Framing::TrailingCommas,
    ] {
        let text = render(&valid_spec(), framing);
        let i = parse_interpretation(&text).unwrap_or_else(|e| panic!("{framing:?}: {e}\n{text}"));
        assert_eq!(i.spec.contract.len(), 2, "{framing:?}");
        assert!(i.reference.contains("def add"), "{framing:?}");
    }
}

proptest! {
    #![proptest_config(config(CASES_STRUCTURED))]

    #[test]
    fn near_valid_replies_are_accepted_or_refused_with_a_reason(
        mutations in prop::collection::vec(mutation(), 0..4),
        framing in framing(),
    ) {
        let mut spec = valid_spec();
        for m in &mutations {
            apply(&mut spec, m);
        }
        let text = render(&spec, framing);
        check_all_parsers(&text);
        if text.len() > REPLY_BYTES_MAX {
            let reason = parse_interpretation(&text).unwrap_err();
            prop_assert!(reason.contains("bytes"), "{}", reason);
        }
    }

    #[test]
    fn implement_replies_with_odd_fences_are_handled(
        before in reply_soup(),
        ticks in 3usize..8,
        tag in prop_oneof![Just(""), Just("python"), Just("Python3"), Just("py"), Just("rust")],
        close in any::<bool>(),
        after in reply_soup(),
    ) {
        let fence = "`".repeat(ticks);
        let closing = if close { fence.as_str() } else { "" };
        let text = format!("{before}\n{fence}{tag}\n{REFERENCE}{closing}\n{after}");
        check_all_parsers(&text);
    }
}

#[test]
fn oversized_replies_are_refused_with_their_size() {
    for extra in [1, 1000, REPLY_BYTES_MAX] {
        let text = format!(
            "```python\n{REFERENCE}```\n{}",
            "x".repeat(REPLY_BYTES_MAX + extra)
        );
        for reason in [
            parse_interpretation(&text).unwrap_err(),
            parse_implementation(&text).unwrap_err(),
        ] {
            assert!(
                reason.contains("bytes") && reason.contains(&REPLY_BYTES_MAX.to_string()),
                "{reason}"
            );
        }
    }
    // Exactly at the cap is still read.
    let pad = REPLY_BYTES_MAX - REFERENCE.len() - "```python\n```\n".len();
    let text = format!("```python\n{REFERENCE}```\n{}", "x".repeat(pad));
    assert_eq!(text.len(), REPLY_BYTES_MAX);
    assert!(parse_implementation(&text).is_ok());
}

/// Worst shapes for the parser's running time at the size cap: each must finish well within a
/// reply deadline. (The caps bound memory; this bounds time.)
#[test]
fn replies_at_the_cap_parse_in_bounded_time() {
    let half = REPLY_BYTES_MAX / 2;
    let shapes: Vec<(&str, String)> = vec![
        ("many fence openers", "```\n".repeat(REPLY_BYTES_MAX / 4)),
        (
            "many thinking openers",
            "<think>".repeat(REPLY_BYTES_MAX / 7),
        ),
        ("commas and spaces", ", ".repeat(half)),
        ("deep brackets", "[".repeat(REPLY_BYTES_MAX - 1)),
        ("braces", "{}".repeat(half)),
        (
            "an open brace and a close brace far apart",
            format!("{{{}}}", " ".repeat(REPLY_BYTES_MAX - 2)),
        ),
    ];
    for (what, text) in shapes {
        assert!(text.len() <= REPLY_BYTES_MAX, "{what}");
        let start = Instant::now();
        check_all_parsers(&text);
        let took = start.elapsed();
        assert!(took < Duration::from_secs(5), "{what}: {took:?}");
    }
}

/// Found by this file: `fences` used to build the closing fence once per line inside an open
/// fence, so a reply that opens a fence of 256 Ki backticks and then has 256 Ki lines did 2^36
/// bytes of work (about 12 s). It now builds it once per block.
#[test]
fn a_long_fence_opener_followed_by_many_lines_parses_in_bounded_time() {
    let half = REPLY_BYTES_MAX / 2;
    let text = format!("{}\n{}", "`".repeat(half), "\n".repeat(half - 2));
    let start = Instant::now();
    check_all_parsers(&text);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
}

// --- the agents file -------------------------------------------------------------------------

const AGENTS_PATH: &str = "fuzz-dir/fuzz-agents.toml";

const VALID_AGENTS: &str = r#"fault_budget = 1

[[agent]]
name = "ada"
backend = "scripted"
transcript = "t/ada"
timeout_ms = 2000
delay_ms = 5

[[agent]]
name = "bob"
backend = "openai"
model = "gpt-x"
base_url = "http://127.0.0.1:1/v1"
api_key_env = "OPENAI_API_KEY"
temperature = 0.5
max_tokens = 100
retries_max = 2

[[agent]]
name = "cy"
backend = "command"
command = ["python3", "agent.py"]
"#;

fn parse_agents(text: &str) {
    match AgentsFile::parse(text, Path::new(AGENTS_PATH), Path::new("fuzz-dir")) {
        Ok(file) => {
            assert!(
                !file.agents.is_empty() && file.agents.len() <= synod_agents::config::AGENTS_MAX
            );
        }
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains(AGENTS_PATH),
                "the message does not name the file: {message}"
            );
            assert!(
                message.len() > AGENTS_PATH.len() + 10,
                "no reason given: {message}"
            );
        }
    }
}

#[test]
fn the_valid_agents_file_parses() {
    let f = AgentsFile::parse(VALID_AGENTS, Path::new(AGENTS_PATH), Path::new("fuzz-dir")).unwrap();
    assert_eq!(f.agents.len(), 3);
}

fn toml_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[[agent]]\n".to_string()),
        Just("[agent]\n".to_string()),
        Just("[[agent]\n".to_string()),
        Just("name = \"a\"\n".to_string()),
        Just("name = \"a b\"\n".to_string()),
        Just("backend = \"scripted\"\n".to_string()),
        Just("backend = \"sim\"\n".to_string()),
        Just("backend = \"openai\"\n".to_string()),
        Just("transcript = \"t\"\n".to_string()),
        Just("fault = \"stall\"\n".to_string()),
        Just("timeout_ms = 0\n".to_string()),
        Just("timeout_ms = -1\n".to_string()),
        Just("timeout_ms = 18446744073709551616\n".to_string()),
        Just("temperature = nan\n".to_string()),
        Just("temperature = inf\n".to_string()),
        Just("command = []\n".to_string()),
        Just("fault_budget = 99999999999\n".to_string()),
        Just("x = { a = [1, { b = 2 }] }\n".to_string()),
        Just("= \n".to_string()),
        Just("\"\"\"".to_string()),
        Just("'''".to_string()),
        Just("#".to_string()),
        Just("\n".to_string()),
        Just("[".to_string()),
        Just("{".to_string()),
        "\\PC{0,10}",
    ]
}

proptest! {
    #![proptest_config(config(CASES_TOML))]

    #[test]
    fn random_toml_is_accepted_or_refused_naming_the_file(
        pieces in prop::collection::vec(toml_piece(), 0..40),
    ) {
        parse_agents(&pieces.concat());
    }

    #[test]
    fn arbitrary_text_as_an_agents_file_is_refused_naming_the_file(text in any::<String>()) {
        parse_agents(&text);
    }

    #[test]
    fn mutated_agents_files_are_accepted_or_refused_naming_the_file(
        edits in prop::collection::vec((any::<usize>(), 0u8..4, toml_piece()), 1..6),
    ) {
        let mut lines: Vec<String> = VALID_AGENTS.lines().map(str::to_string).collect();
        for (at, op, piece) in edits {
            let i = at % (lines.len() + 1);
            match op {
                0 if i < lines.len() => { lines.remove(i); }
                1 if i < lines.len() => { let l = lines[i].clone(); lines.insert(i, l); }
                2 if i < lines.len() => {
                    // Keep the key, change the value.
                    let key = lines[i].split('=').next().unwrap_or("").to_string();
                    lines[i] = format!("{key}= {}", piece.trim_end());
                }
                _ => lines.insert(i, piece.trim_end().to_string()),
            }
        }
        parse_agents(&lines.join("\n"));
    }
}

#[test]
fn deeply_nested_toml_is_refused_without_overflowing_the_stack() {
    for depth in [100, 1_000, 10_000, 100_000] {
        parse_agents(&format!("fault_budget = {}", "[".repeat(depth)));
        parse_agents(&format!("x = {}", "{ a = ".repeat(depth)));
        parse_agents(&format!("{}1{}", "[".repeat(depth), "]".repeat(depth)));
    }
}

#[test]
fn many_agents_are_refused_past_the_cap() {
    let one = |i: usize| {
        format!("[[agent]]\nname = \"a{i}\"\nbackend = \"scripted\"\ntranscript = \"t\"\n")
    };
    let text: String = (0..synod_agents::config::AGENTS_MAX + 1).map(one).collect();
    let e = AgentsFile::parse(&text, Path::new(AGENTS_PATH), Path::new(".")).unwrap_err();
    assert!(e.to_string().contains("more than"), "{e}");
}
