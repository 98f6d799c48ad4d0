//! Refinement: the checks that show a program refines the decided reading, and how their
//! reports are judged. `verify` re-runs [`program_check`] and judges it with
//! [`refinement_problem`], so a build and its verification agree by construction.

use super::REFERENCE_MODULE;
use super::build::Build;
use super::decision::FaultKind;
use crate::model::*;
use std::collections::BTreeMap;
use std::fmt;

/// An outcome as a person reads it: `returns 3`, `raises ValueError`, `does not finish`.
pub fn outcome_phrase(o: &Outcome) -> String {
    match o {
        Outcome::Value(v) => format!("returns {v}"),
        // The sandbox names a run that died of a signal by it (SIGSEGV, SIGABRT, ...).
        Outcome::Error(k) if k.starts_with("SIG") && k.chars().all(|c| c.is_ascii_uppercase()) => {
            format!("crashes with {k}")
        }
        Outcome::Error(k) => format!("raises {k}"),
        Outcome::Timeout => "does not finish".into(),
    }
}

/// What an outcome is, after "should": `return 4`, `raise ValueError`, `not finish`.
pub(super) fn infinitive(o: &Outcome) -> String {
    match o {
        Outcome::Value(v) => format!("return {v}"),
        Outcome::Error(k) => format!("raise {k}"),
        Outcome::Timeout => "not finish".into(),
    }
}

/// The contract as check calls, each with its expectation.
pub fn contract_calls(contract: &[ContractExample]) -> Vec<CheckCall> {
    contract
        .iter()
        .map(|c| CheckCall {
            call: c.call.clone(),
            expect: Some(c.expect.clone()),
        })
        .collect()
}

/// The probes as check calls, without expectations.
pub fn probe_calls(pool: &[Call]) -> Vec<CheckCall> {
    pool.iter()
        .map(|c| CheckCall {
            call: c.clone(),
            expect: None,
        })
        .collect()
}

/// A check of a reference program: its contract, then the probes.
pub(super) fn reference_check(
    i: &Interpretation,
    contract: &[ContractExample],
    pool: &[Call],
) -> CheckRequest {
    let mut fm = BTreeMap::new();
    let mut interface = Vec::new();
    for c in &i.spec.components {
        for f in &c.functions {
            fm.insert(f.name.clone(), REFERENCE_MODULE.to_string());
            interface.push((REFERENCE_MODULE.to_string(), f.clone()));
        }
    }
    let mut calls = contract_calls(contract);
    calls.extend(probe_calls(pool));
    CheckRequest {
        program: Program::single(REFERENCE_MODULE, &i.reference),
        function_modules: fm,
        interface,
        calls,
    }
}

/// A check of one component: the candidate for it, the decided reference behind every other
/// component.
pub(super) fn component_check(b: &Build, component: usize, code: &str) -> CheckRequest {
    component_request(&b.spec, &b.reference, &b.pool, component, code)
}

/// A check of one component of `spec`: `code` for it, `reference` behind every other
/// component; its interface, then the contract and the probes (also `synod node`'s).
pub fn component_request(
    spec: &Spec,
    reference: &str,
    pool: &[Call],
    component: usize,
    code: &str,
) -> CheckRequest {
    let mut program = Program::single(REFERENCE_MODULE, reference);
    for (i, c) in spec.components.iter().enumerate() {
        let src = if i == component {
            code.to_string()
        } else {
            format!("from {REFERENCE_MODULE} import *  # stands in for the decided reference\n")
        };
        program.modules.insert(c.name.clone(), src);
    }
    let interface = spec.components[component]
        .functions
        .iter()
        .map(|f| (spec.components[component].name.clone(), f.clone()))
        .collect();
    let mut calls = contract_calls(&spec.contract);
    calls.extend(probe_calls(pool));
    CheckRequest {
        program,
        function_modules: spec.function_modules(),
        interface,
        calls,
    }
}

/// A check of an assembled program against a spec: interface, contract, probes.
pub fn program_check(spec: &Spec, program: &Program, pool: &[Call]) -> CheckRequest {
    let interface = spec
        .components
        .iter()
        .flat_map(|c| c.functions.iter().map(|f| (c.name.clone(), f.clone())))
        .collect();
    let mut calls = contract_calls(&spec.contract);
    calls.extend(probe_calls(pool));
    CheckRequest {
        program: program.clone(),
        function_modules: spec.function_modules(),
        interface,
        calls,
    }
}

/// Why a check does not show refinement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefinementProblem {
    /// Which check failed.
    pub kind: FaultKind,
    /// The evidence, in a sentence.
    pub detail: String,
    /// The same reason as its agent is told it (PL-29): "your program …", the request's
    /// words instead of the protocol's ("reference", "the contract").
    pub told: String,
}

impl fmt::Display for RefinementProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// A forbidden operation, named, with how many more there were.
pub(super) fn forbidden(what: &str, report: &CheckReport, v: &Violation) -> RefinementProblem {
    let more = report.violations.len() - 1;
    problem(
        FaultKind::Forbidden,
        what,
        format!(
            "attempts what the capability set does not grant: {v}{}",
            if more > 0 {
                format!(" (and {more} more)")
            } else {
                String::new()
            }
        ),
    )
}

/// A problem whose sentence is `what` (the checked program, "reference" or "component m")
/// followed by `rest`; its agent is told "your program" followed by `rest`.
pub(super) fn problem(kind: FaultKind, what: &str, rest: String) -> RefinementProblem {
    RefinementProblem {
        kind,
        detail: format!("{what} {rest}"),
        told: format!("your program {rest}."),
    }
}

/// Did a check show refinement? `None` if so, else the first reason it does not: load error,
/// interface mismatch, an unmet contract example, or a probe where the outcome differs from
/// `expected` (the decided reference's behaviour). The report's calls are the contract first,
/// then the probes.
pub fn refinement_problem(
    report: &CheckReport,
    contract: &[ContractExample],
    pool: &[Call],
    expected: &[Outcome],
    what: &str,
) -> Option<RefinementProblem> {
    if let Some(v) = report.violations.first() {
        return Some(forbidden(what, report, v));
    }
    if let Some(e) = &report.load_error {
        return Some(problem(
            FaultKind::DoesNotLoad,
            what,
            format!("does not load: {e}"),
        ));
    }
    if let Some(e) = report.interface_errors.first() {
        return Some(problem(
            FaultKind::InterfaceMismatch,
            what,
            format!("does not match the interface: {e}"),
        ));
    }
    for (k, ex) in contract.iter().enumerate() {
        let outcome = report.outcomes.get(k).cloned().unwrap_or(Outcome::Timeout);
        let met = match &ex.expect {
            Expectation::Same(o) => outcome.agrees_with(o),
            _ => report.met.get(k).copied().flatten() == Some(true),
        };
        if !met {
            let should = format!(
                "{} should {}",
                ex.call,
                match &ex.expect {
                    Expectation::Returns(v) => format!("return {}", v.python()),
                    Expectation::Raises(e) => format!("raise {e}"),
                    Expectation::Same(o) => infinitive(o),
                }
            );
            let got = outcome_phrase(&outcome);
            return Some(RefinementProblem {
                kind: FaultKind::BreaksContract,
                detail: format!("{what} breaks the contract: {should}, but {got}"),
                told: format!(
                    "{should} (the request's examples and the user's answers say so), but your program {got}."
                ),
            });
        }
    }
    for (p, call) in pool.iter().enumerate() {
        let got = report
            .outcomes
            .get(contract.len() + p)
            .cloned()
            .unwrap_or(Outcome::Timeout);
        if let Some(want) = expected.get(p)
            && !got.agrees_with(want)
        {
            return Some(problem(
                FaultKind::DiffersFromReference,
                what,
                format!(
                    "differs from the decided reference on {call}: {} instead of {}",
                    outcome_phrase(&got),
                    outcome_phrase(want)
                ),
            ));
        }
    }
    None
}
