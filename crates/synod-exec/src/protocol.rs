//! The conversation with the harness: the request it reads, the result lines it writes, and the
//! report assembled from them. Pure functions, no IO.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use synod_core::{
    AuditLayer, CheckReport, CheckRequest, Expectation, FoundFunction, Outcome, Value, Violation,
};

use crate::process::{Finished, describe_end};
use crate::{Limits, MODULES_DIR};

/// Longest load error taken from the harness, in characters.
const LOAD_ERROR_MAX: usize = 1000;
/// Longest load error of any kind: room for the harness's reason or a death notice plus the
/// stderr tail.
const REASON_MAX: usize = LOAD_ERROR_MAX + 2 * crate::process::STDERR_TAIL_BYTES;
/// Most interface errors taken from the harness.
const INTERFACE_ERRORS_MAX: usize = 256;
/// Longest interface error, or exception class name, taken from the harness.
const SHORT_TEXT_MAX: usize = 300;
/// Most functions taken from the harness's list of what a program defines.
const FUNCTIONS_MAX: usize = 256;
/// Most positional parameters of one such function.
const PARAMS_MAX: usize = 64;
/// Longest value repr taken from the harness (it shortens its own to about 1,040).
const VALUE_TEXT_MAX: usize = 4096;

/// The request as the harness reads it (see `harness.py`).
#[derive(Serialize)]
struct HarnessRequest<'a> {
    nonce: &'a str,
    modules_dir: &'a str,
    modules: Vec<&'a str>,
    function_modules: &'a BTreeMap<String, String>,
    interface: Vec<(&'a str, HarnessSig<'a>)>,
    calls: Vec<HarnessCall<'a>>,
    call_ms: u64,
    output_max: usize,
    /// Granted capability names (`files`); empty: pure computation.
    capabilities: Vec<&'static str>,
    static_layer: bool,
    runtime_layer: bool,
}

#[derive(Serialize)]
struct HarnessSig<'a> {
    name: &'a str,
    params: &'a [String],
}

#[derive(Serialize)]
struct HarnessCall<'a> {
    function: &'a str,
    /// Tagged exactly as serde encodes [`Value`].
    args: &'a [Value],
    /// `null`, `{"returns": value}` or `{"raises": "ClassName"}`.
    expect: Option<&'a Expectation>,
}

/// The JSON request for the harness.
pub(crate) fn harness_request(
    request: &CheckRequest,
    nonce: &str,
    limits: &Limits,
    audit: &crate::Audit,
) -> Result<Vec<u8>, serde_json::Error> {
    let wire = HarnessRequest {
        nonce,
        modules_dir: MODULES_DIR,
        modules: request.program.modules.keys().map(String::as_str).collect(),
        function_modules: &request.function_modules,
        interface: request
            .interface
            .iter()
            .map(|(module, sig)| {
                (
                    module.as_str(),
                    HarnessSig {
                        name: &sig.name,
                        params: &sig.params,
                    },
                )
            })
            .collect(),
        calls: request
            .calls
            .iter()
            .map(|c| HarnessCall {
                function: &c.call.function,
                args: &c.call.args,
                // `Same` expectations compare whole outcomes; synod checks them itself.
                expect: c
                    .expect
                    .as_ref()
                    .filter(|e| !matches!(e, Expectation::Same(_))),
            })
            .collect(),
        // An alarm of zero would never fire.
        call_ms: limits.call_ms.max(1),
        output_max: limits.output_bytes,
        capabilities: audit.capabilities.iter().map(|c| c.name()).collect(),
        static_layer: audit.static_layer,
        runtime_layer: audit.runtime_layer,
    };
    serde_json::to_vec(&wire)
}

/// One result line of the harness, after `SYNOD <nonce> `.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub(crate) enum HarnessLine {
    /// The modules loaded (or not) and the interface was checked.
    Load(LoadLine),
    /// One call finished.
    Call(CallLine),
    /// All calls finished.
    Done(DoneLine),
    /// The audit hook refused an operation (written the moment it happened).
    Violation(ViolationLine),
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub(crate) struct ViolationLine {
    violation: WireViolation,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
struct WireViolation {
    layer: AuditLayer,
    module: String,
    line: u32,
    operation: String,
    detail: String,
}

impl WireViolation {
    fn into_violation(self) -> Violation {
        Violation {
            layer: self.layer,
            module: truncate_chars(&self.module, SHORT_TEXT_MAX),
            line: self.line,
            operation: truncate_chars(&self.operation, SHORT_TEXT_MAX),
            detail: truncate_chars(&self.detail, SHORT_TEXT_MAX),
        }
    }
}

/// Most violations kept in a report.
pub const VIOLATIONS_MAX: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub(crate) struct LoadLine {
    loaded: bool,
    load_error: Option<String>,
    interface_errors: Vec<String>,
    #[serde(default)]
    functions: Vec<WireFunction>,
    /// What the static layer found (the program is then not imported).
    #[serde(default)]
    violations: Vec<WireViolation>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
struct WireFunction {
    module: String,
    name: String,
    params: Vec<String>,
    required: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub(crate) struct CallLine {
    i: usize,
    outcome: WireOutcome,
    met: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub(crate) struct DoneLine {
    #[allow(
        dead_code,
        reason = "present so that the line parses; its value carries nothing"
    )]
    done: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WireOutcome {
    Value(String),
    Error(String),
    Timeout(#[allow(dead_code, reason = "always true; only the key matters")] bool),
}

impl WireOutcome {
    fn into_outcome(self) -> Outcome {
        match self {
            WireOutcome::Value(v) => Outcome::Value(truncate_chars(&v, VALUE_TEXT_MAX)),
            WireOutcome::Error(k) => Outcome::Error(truncate_chars(&k, SHORT_TEXT_MAX)),
            WireOutcome::Timeout(_) => Outcome::Timeout,
        }
    }
}

/// Splits the harness's stdout into lines and keeps those that start with `SYNOD <nonce> ` and
/// parse. Other lines are dropped without being buffered whole; once `stored_max` bytes of
/// accepted lines have been taken, everything else is dropped.
pub(crate) struct LineSplitter {
    prefix: Vec<u8>,
    stored_max: usize,
    stored: usize,
    line: Vec<u8>,
    skipping: bool,
}

impl LineSplitter {
    pub(crate) fn new(nonce: &str, stored_max: usize) -> LineSplitter {
        LineSplitter {
            prefix: format!("SYNOD {nonce} ").into_bytes(),
            stored_max,
            stored: 0,
            line: Vec::new(),
            skipping: false,
        }
    }

    /// Takes the next bytes of the stream; returns the result lines they completed.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Vec<HarnessLine> {
        let mut out = Vec::new();
        for piece in bytes.split_inclusive(|b| *b == b'\n') {
            let (body, complete) = match piece.split_last() {
                Some((b'\n', body)) => (body, true),
                _ => (piece, false),
            };
            if !self.skipping {
                let room = self.stored_max.saturating_sub(self.stored);
                let checked = self
                    .line
                    .len()
                    .saturating_add(body.len())
                    .min(self.prefix.len());
                // A line is kept with its newline, so it needs one byte more than its body.
                if self.line.len() + body.len() >= room {
                    self.skipping = true;
                } else {
                    self.line.extend_from_slice(body);
                    if self.line[..checked] != self.prefix[..checked] {
                        self.skipping = true;
                    }
                }
                if self.skipping {
                    self.line = Vec::new();
                }
            }
            if complete {
                if !self.skipping
                    && let Some(rest) = self.line.strip_prefix(self.prefix.as_slice())
                    && let Ok(line) = serde_json::from_slice::<HarnessLine>(rest)
                {
                    self.stored += self.line.len() + 1;
                    out.push(line);
                }
                self.line.clear();
                self.skipping = false;
            }
        }
        out
    }
}

/// What the result lines of a run say, after dropping lines out of order.
struct Transcript {
    load: Option<LoadLine>,
    calls: Vec<Option<CallLine>>,
    /// Every violation reported, wherever in the stream: a line already written cannot be
    /// taken back by what the candidate writes later (an early `done` included).
    violations: Vec<Violation>,
}

impl Transcript {
    /// Keeps the first load line, then the first line for each call index in range, until the
    /// done line.
    fn read(lines: &[HarnessLine], calls: usize) -> Transcript {
        let mut transcript = Transcript {
            load: None,
            calls: vec![None; calls],
            violations: Vec::new(),
        };
        let mut done = false;
        for line in lines {
            if let HarnessLine::Violation(v) = line {
                if transcript.violations.len() < VIOLATIONS_MAX {
                    transcript
                        .violations
                        .push(v.violation.clone().into_violation());
                }
                continue;
            }
            if done {
                continue;
            }
            match line {
                HarnessLine::Load(load) if transcript.load.is_none() => {
                    transcript.load = Some(load.clone());
                }
                HarnessLine::Call(call) if transcript.load.is_some() => {
                    if let Some(slot @ None) = transcript.calls.get_mut(call.i) {
                        *slot = Some(call.clone());
                    }
                }
                HarnessLine::Done(_) => done = true,
                _ => {}
            }
        }
        transcript
    }
}

/// `Some(false)` for calls with an expectation, `None` for probes.
fn unmet(request: &CheckRequest) -> Vec<Option<bool>> {
    request
        .calls
        .iter()
        .map(|c| c.expect.as_ref().map(|_| false))
        .collect()
}

/// The report of a program that never got to run its calls.
pub(crate) fn not_loaded(request: &CheckRequest, reason: String) -> CheckReport {
    CheckReport {
        load_error: Some(truncate_chars(&reason, REASON_MAX)),
        interface_errors: Vec::new(),
        outcomes: vec![Outcome::Timeout; request.calls.len()],
        met: unmet(request),
        functions: Vec::new(),
        violations: Vec::new(),
    }
}

/// Assembles the report of a run from what the harness said and how the process ended.
pub(crate) fn report(request: &CheckRequest, run: &Finished, limits: &Limits) -> CheckReport {
    let transcript = Transcript::read(&run.lines, request.calls.len());
    let Some(load) = transcript.load else {
        let tail = run.stderr_tail.trim();
        let tail = if tail.is_empty() { "(empty)" } else { tail };
        return CheckReport {
            violations: transcript.violations,
            ..not_loaded(
                request,
                format!(
                    "process died before loading: {}; stderr tail: {tail}",
                    describe_end(&run.end, limits)
                ),
            )
        };
    };
    // The static layer's findings come first, then what the hook refused, in order.
    let mut violations: Vec<Violation> = load
        .violations
        .iter()
        .take(VIOLATIONS_MAX)
        .map(|v| v.clone().into_violation())
        .collect();
    for v in transcript.violations {
        if violations.len() < VIOLATIONS_MAX {
            violations.push(v);
        }
    }
    let interface_errors: Vec<String> = load
        .interface_errors
        .iter()
        .take(INTERFACE_ERRORS_MAX)
        .map(|e| truncate_chars(e, SHORT_TEXT_MAX))
        .collect();
    if !load.loaded {
        // An empty reason is no reason: the report must say why the program was refused.
        let reason = load
            .load_error
            .as_deref()
            .filter(|e| !e.trim().is_empty())
            .map(|e| truncate_chars(e, LOAD_ERROR_MAX))
            .unwrap_or_else(|| "the program did not load".to_string());
        return CheckReport {
            interface_errors,
            violations,
            ..not_loaded(request, reason)
        };
    }
    let mut outcomes = Vec::with_capacity(request.calls.len());
    let mut met = Vec::with_capacity(request.calls.len());
    // The process died by a signal of its own (a segfault, an abort; not the wall-clock
    // kill): the first call without a result is the one it died in, and it is named so.
    let mut died_in = crate::process::fatal_signal(&run.end);
    for (call, line) in request.calls.iter().zip(transcript.calls) {
        let expected = call.expect.is_some();
        match line {
            Some(line) => {
                outcomes.push(line.outcome.into_outcome());
                met.push(expected.then_some(line.met == Some(true)));
            }
            None => {
                outcomes.push(match died_in.take() {
                    Some(signal) => Outcome::Error(signal.to_string()),
                    None => Outcome::Timeout,
                });
                met.push(expected.then_some(false));
            }
        }
    }
    // Names the harness could not have produced (not identifiers, not a module of the
    // program) are dropped: the report carries only what the candidate could define.
    let functions = load
        .functions
        .into_iter()
        .filter(|f| {
            request.program.modules.contains_key(&f.module)
                && synod_core::is_identifier(&f.name)
                && f.params.iter().all(|p| synod_core::is_identifier(p))
                && f.params.len() <= PARAMS_MAX
                && f.required <= f.params.len()
        })
        .take(FUNCTIONS_MAX)
        .map(|f| FoundFunction {
            module: f.module,
            name: f.name,
            params: f.params,
            required: f.required,
        })
        .collect();
    CheckReport {
        load_error: None,
        interface_errors,
        outcomes,
        met,
        functions,
        violations,
    }
}

/// `text` cut to at most `max` characters (the cut marked with `...`).
pub(crate) fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some(_) => {
            let keep: String = text.chars().take(max.saturating_sub(3)).collect();
            format!("{keep}...")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::End;
    use serde_json::json;
    use synod_core::{Call, CheckCall, FunctionSig, Program};

    fn request(expects: &[Option<Expectation>]) -> CheckRequest {
        CheckRequest {
            program: Program::single("m", "def f(x):\n    return x\n"),
            function_modules: [("f".to_string(), "m".to_string())].into_iter().collect(),
            interface: vec![(
                "m".to_string(),
                FunctionSig {
                    name: "f".into(),
                    params: vec!["x".into()],
                    doc: "ignored".into(),
                },
            )],
            calls: expects
                .iter()
                .map(|e| CheckCall {
                    call: Call {
                        function: "f".into(),
                        args: vec![Value::Tuple(vec![Value::Int(1)]), Value::float(2.5)],
                    },
                    expect: e.clone(),
                })
                .collect(),
        }
    }

    fn finished(lines: &[serde_json::Value], end: End) -> Finished {
        Finished {
            lines: lines
                .iter()
                .map(|l| serde_json::from_value(l.clone()).unwrap())
                .collect(),
            end,
            stderr_tail: "Traceback: boom\n".into(),
        }
    }

    #[test]
    fn request_uses_tagged_values_and_expectations() {
        let req = request(&[None, Some(Expectation::Raises("ValueError".into()))]);
        let bytes =
            harness_request(&req, "abc", &Limits::default(), &crate::Audit::default()).unwrap();
        let wire: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            wire,
            json!({
                "nonce": "abc",
                "modules_dir": "prog",
                "modules": ["m"],
                "function_modules": {"f": "m"},
                "interface": [["m", {"name": "f", "params": ["x"]}]],
                "calls": [
                    {"function": "f",
                     "args": [{"t": "tuple", "v": [{"t": "int", "v": 1}]}, {"t": "float", "v": "2.5"}],
                     "expect": null},
                    {"function": "f",
                     "args": [{"t": "tuple", "v": [{"t": "int", "v": 1}]}, {"t": "float", "v": "2.5"}],
                     "expect": {"raises": "ValueError"}},
                ],
                "call_ms": 2000,
                "output_max": 1 << 20,
                "capabilities": [],
                "static_layer": true,
                "runtime_layer": true,
            })
        );
        let returns = Expectation::Returns(Value::None);
        assert_eq!(
            serde_json::to_value(&returns).unwrap(),
            json!({"returns": {"t": "none"}})
        );
    }

    #[test]
    fn splitter_keeps_only_lines_with_the_nonce() {
        let mut s = LineSplitter::new("n1", 1 << 20);
        let stream =
            b"hello\nSYNOD fake {\"done\": true}\nSYNOD n1 {\"done\": true}\nSYNOD n1 not json\n";
        let lines = s.feed(stream);
        assert_eq!(lines, vec![HarnessLine::Done(DoneLine { done: true })]);
    }

    #[test]
    fn splitter_joins_lines_split_across_reads() {
        let mut s = LineSplitter::new("n1", 1 << 20);
        let text = b"junk without newline SYNOD n1 {\"done\": true}\nSYNOD n1 {\"i\": 0, \"outcome\": {\"timeout\": true}, \"met\": null}\n";
        let mut lines = Vec::new();
        for chunk in text.chunks(3) {
            lines.extend(s.feed(chunk));
        }
        assert_eq!(
            lines.len(),
            1,
            "the first line does not start with the prefix"
        );
        assert!(
            matches!(&lines[0], HarnessLine::Call(c) if c.i == 0 && c.outcome == WireOutcome::Timeout(true))
        );
    }

    #[test]
    fn splitter_stops_storing_past_the_cap() {
        let line = b"SYNOD n {\"done\": true}\n";
        let mut s = LineSplitter::new("n", 2 * line.len());
        let mut accepted = 0;
        for _ in 0..10 {
            accepted += s.feed(line).len();
        }
        assert_eq!(accepted, 2);
        // The newline counts: a body that just fits without it is not kept (found by
        // `fuzz::any_stdout_gives_a_well_formed_report`).
        let mut s = LineSplitter::new("n", line.len() - 1);
        assert!(s.feed(line).is_empty());
        assert!(s.stored < line.len());
        let mut s = LineSplitter::new("n", line.len());
        assert_eq!(s.feed(line).len(), 1);
        assert_eq!(s.stored, line.len());
        // An overlong line is dropped without being kept, and the next one is still read.
        let mut s = LineSplitter::new("n", 64);
        let long = format!(
            "SYNOD n {{\"done\": true, \"pad\": \"{}\"}}\n",
            "x".repeat(200)
        );
        assert!(s.feed(long.as_bytes()).is_empty());
        assert!(s.line.is_empty());
        assert_eq!(s.feed(line).len(), 1);
    }

    #[test]
    fn unreported_calls_time_out_and_fail_their_expectation() {
        let req = request(&[None, Some(Expectation::Returns(Value::Int(1))), None]);
        let run = finished(
            &[
                json!({"i": 0, "outcome": {"value": "early"}, "met": null}),
                json!({"loaded": true, "load_error": null, "interface_errors": []}),
                json!({"i": 0, "outcome": {"value": "1"}, "met": null}),
                json!({"i": 0, "outcome": {"value": "again"}, "met": null}),
                json!({"i": 7, "outcome": {"value": "out of range"}, "met": null}),
            ],
            End::WallClock,
        );
        let report = report(&req, &run, &Limits::default());
        assert_eq!(report.load_error, None);
        assert_eq!(
            report.outcomes,
            vec![
                Outcome::Value("1".into()),
                Outcome::Timeout,
                Outcome::Timeout
            ]
        );
        assert_eq!(report.met, vec![None, Some(false), None]);
    }

    #[test]
    fn met_follows_the_harness_only_for_expected_calls() {
        let req = request(&[None, Some(Expectation::Raises("E".into()))]);
        let run = finished(
            &[
                json!({"loaded": true, "load_error": null, "interface_errors": ["m.g: missing"]}),
                json!({"i": 0, "outcome": {"error": "E"}, "met": true}),
                json!({"i": 1, "outcome": {"error": "E"}, "met": true}),
                json!({"done": true}),
                json!({"i": 1, "outcome": {"error": "after done"}, "met": false}),
            ],
            End::Exited(std::os::unix::process::ExitStatusExt::from_raw(0)),
        );
        let report = report(&req, &run, &Limits::default());
        assert_eq!(report.interface_errors, vec!["m.g: missing".to_string()]);
        assert_eq!(report.met, vec![None, Some(true)]);
    }

    #[test]
    fn no_load_line_means_the_process_died() {
        let req = request(&[Some(Expectation::Returns(Value::Int(1))), None]);
        let run = finished(&[], End::WallClock);
        let report = report(&req, &run, &Limits::default());
        let reason = report.load_error.unwrap();
        assert!(reason.starts_with("process died before loading: killed after the wall-clock"));
        assert!(reason.ends_with("stderr tail: Traceback: boom"));
        assert_eq!(report.outcomes, vec![Outcome::Timeout, Outcome::Timeout]);
        assert_eq!(report.met, vec![Some(false), None]);
    }

    #[test]
    fn a_failed_load_keeps_the_harness_reason() {
        let req = request(&[Some(Expectation::Returns(Value::Int(1)))]);
        let run = finished(
            &[
                json!({"loaded": false, "load_error": "SyntaxError: x", "interface_errors": []}),
                json!({"i": 0, "outcome": {"value": "1"}, "met": true}),
            ],
            End::Exited(std::os::unix::process::ExitStatusExt::from_raw(0)),
        );
        let report = report(&req, &run, &Limits::default());
        assert_eq!(report.load_error.as_deref(), Some("SyntaxError: x"));
        assert_eq!(report.outcomes, vec![Outcome::Timeout]);
        assert_eq!(report.met, vec![Some(false)]);
    }

    mod fuzz {
        //! Bad input, fuzzed: whatever the candidate's process writes on the harness's stdout,
        //! the report keeps its shape (one outcome per call) and its caps.
        use super::*;
        use proptest::prelude::*;
        use proptest::test_runner::Config;

        const NONCE: &str = "c0ffee";
        const CASES: u32 = 384;

        /// A result line's JSON: right shapes with wild values, wrong shapes, junk.
        fn line_json() -> impl Strategy<Value = String> {
            let text = "\\PC{0,40}";
            let outcome = prop_oneof![
                text.prop_map(|v| json!({"value": v})),
                text.prop_map(|e| json!({"error": e})),
                Just(json!({"timeout": true})),
                Just(json!({"timeout": "yes"})),
                Just(json!({"value": 1})),
                Just(json!({})),
                Just(json!({"value": "a", "error": "b"})),
                (1usize..20_000).prop_map(|n| json!({"value": "v".repeat(n)})),
            ];
            let index = prop_oneof![0usize..8, Just(usize::MAX), any::<usize>(),];
            let met = prop_oneof![
                Just(json!(null)),
                Just(json!(true)),
                Just(json!(false)),
                Just(json!(1))
            ];
            prop_oneof![
                (any::<bool>(), prop::option::of(text), prop::collection::vec(text, 0..4))
                    .prop_map(|(loaded, e, i)| json!({"loaded": loaded, "load_error": e, "interface_errors": i}).to_string()),
                (1usize..2_000, 1usize..400).prop_map(|(n, len)| json!({
                    "loaded": true, "load_error": null, "interface_errors": vec!["e".repeat(len); n]
                }).to_string()),
                (1usize..5_000).prop_map(|n| json!({"loaded": false, "load_error": "x".repeat(n), "interface_errors": []}).to_string()),
                (index.clone(), outcome.clone(), met.clone())
                    .prop_map(|(i, o, m)| json!({"i": i, "outcome": o, "met": m}).to_string()),
                (outcome, met).prop_map(|(o, m)| json!({"i": -1, "outcome": o, "met": m}).to_string()),
                Just(r#"{"i": 1e40, "outcome": {"timeout": true}, "met": null}"#.to_string()),
                Just(json!({"done": true}).to_string()),
                Just(json!({"done": "soon"}).to_string()),
                Just(r#"{"loaded": true}"#.to_string()),
                Just("[1, 2]".to_string()),
                Just("{".to_string()),
                text.prop_map(|s: String| s),
            ]
        }

        /// One line of stdout: with the right nonce, a wrong one, none; sometimes raw bytes.
        fn stdout_line() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                6 => line_json().prop_map(|l| format!("SYNOD {NONCE} {l}\n").into_bytes()),
                1 => line_json().prop_map(|l| format!("SYNOD c0ffef {l}\n").into_bytes()),
                1 => line_json().prop_map(|l| format!("SYNOD {NONCE}{l}\n").into_bytes()),
                1 => line_json().prop_map(|l| format!("{l}\n").into_bytes()),
                1 => prop::collection::vec(any::<u8>(), 0..200),
                1 => line_json().prop_map(|l| format!("SYNOD {NONCE} {l}").into_bytes()),
            ]
        }

        fn expectations() -> impl Strategy<Value = Vec<Option<Expectation>>> {
            prop::collection::vec(
                prop_oneof![
                    Just(None),
                    Just(Some(Expectation::Returns(Value::Int(1)))),
                    Just(Some(Expectation::Raises("ValueError".into()))),
                ],
                0..8,
            )
        }

        fn check_report(req: &CheckRequest, report: &CheckReport) {
            let calls = req.calls.len();
            assert_eq!(report.outcomes.len(), calls);
            assert_eq!(report.met.len(), calls);
            for (call, met) in req.calls.iter().zip(&report.met) {
                assert_eq!(
                    call.expect.is_some(),
                    met.is_some(),
                    "met is given exactly for expectations"
                );
            }
            for o in &report.outcomes {
                match o {
                    Outcome::Value(v) => assert!(v.chars().count() <= VALUE_TEXT_MAX),
                    Outcome::Error(e) => assert!(e.chars().count() <= SHORT_TEXT_MAX),
                    _ => {}
                }
            }
            assert!(report.interface_errors.len() <= INTERFACE_ERRORS_MAX);
            assert!(
                report
                    .interface_errors
                    .iter()
                    .all(|e| e.chars().count() <= SHORT_TEXT_MAX)
            );
            if let Some(reason) = &report.load_error {
                assert!(reason.chars().count() <= REASON_MAX);
                assert!(!reason.trim().is_empty());
                assert!(report.outcomes.iter().all(|o| *o == Outcome::Timeout));
            }
        }

        proptest! {
            #![proptest_config(Config { cases: CASES, failure_persistence: None, ..Config::default() })]

            #[test]
            fn any_stdout_gives_a_well_formed_report(
                stdout in prop::collection::vec(stdout_line(), 0..24),
                chunk in 1usize..4096,
                stored_max in prop_oneof![Just(1usize << 20), 0usize..4096],
                expects in expectations(),
                exited in any::<bool>(),
            ) {
                let bytes = stdout.concat();
                let mut splitter = LineSplitter::new(NONCE, stored_max);
                let mut lines = Vec::new();
                for piece in bytes.chunks(chunk) {
                    lines.extend(splitter.feed(piece));
                    // Nothing is buffered past the cap, whatever arrives.
                    prop_assert!(splitter.line.len() <= stored_max);
                    prop_assert!(splitter.stored <= stored_max);
                }
                let req = request(&expects);
                let run = Finished {
                    lines,
                    end: if exited {
                        End::Exited(std::os::unix::process::ExitStatusExt::from_raw(0))
                    } else {
                        End::WallClock
                    },
                    stderr_tail: "tail".into(),
                };
                let report = report(&req, &run, &Limits::default());
                check_report(&req, &report);
            }

            #[test]
            fn a_loaded_run_reports_each_call_once_whatever_the_indices(
                indices in prop::collection::vec(prop_oneof![0usize..10, any::<usize>()], 0..40),
                expects in expectations(),
            ) {
                let mut text = format!(
                    "SYNOD {NONCE} {}\n",
                    json!({"loaded": true, "load_error": null, "interface_errors": []})
                );
                for (k, i) in indices.iter().enumerate() {
                    text.push_str(&format!(
                        "SYNOD {NONCE} {}\n",
                        json!({"i": i, "outcome": {"value": format!("v{k}")}, "met": true})
                    ));
                }
                let lines = LineSplitter::new(NONCE, 1 << 20).feed(text.as_bytes());
                prop_assert_eq!(lines.len(), indices.len() + 1);
                let req = request(&expects);
                let run = Finished {
                    lines,
                    end: End::WallClock,
                    stderr_tail: String::new(),
                };
                let report = report(&req, &run, &Limits::default());
                check_report(&req, &report);
                // The first line for each index wins; the rest are ignored.
                for (call, outcome) in report.outcomes.iter().enumerate() {
                    match indices.iter().position(|i| *i == call) {
                        Some(k) => prop_assert_eq!(outcome, &Outcome::Value(format!("v{k}"))),
                        None => prop_assert_eq!(outcome, &Outcome::Timeout),
                    }
                }
            }
        }

        #[test]
        fn huge_lines_are_dropped_and_the_next_line_is_read() {
            let cap = 1 << 20;
            let mut s = LineSplitter::new(NONCE, cap);
            let done = format!("SYNOD {NONCE} {{\"done\": true}}\n");
            // 8 MiB without a newline, with the nonce prefix, in 64 KiB reads.
            s.feed(format!("SYNOD {NONCE} ").as_bytes());
            let junk = vec![b'x'; 64 * 1024];
            for _ in 0..128 {
                assert!(s.feed(&junk).is_empty());
                assert!(s.line.len() <= cap);
            }
            assert!(s.feed(b"\n").is_empty());
            assert_eq!(s.feed(done.as_bytes()).len(), 1);
        }
    }

    #[test]
    fn a_failed_load_with_an_empty_reason_still_gives_one() {
        // Found by `fuzz::any_stdout_gives_a_well_formed_report`.
        let req = request(&[None]);
        let run = finished(
            &[json!({"loaded": false, "load_error": " ", "interface_errors": []})],
            End::WallClock,
        );
        let report = report(&req, &run, &Limits::default());
        assert_eq!(
            report.load_error.as_deref(),
            Some("the program did not load")
        );
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate_chars("héllo", 5), "héllo");
        assert_eq!(truncate_chars("héllo wörld", 6), "hél...");
    }
}
