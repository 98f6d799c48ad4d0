//! Clarify: the readings split beyond the fault budget, so the prompt is ambiguous. The user is
//! shown the readings and the probes where they differ; an answer naming a reading becomes a
//! clarification with examples (`Expectation::Same`, ADR 0002) that every later reading must
//! meet. A chosen reading held by more than m agents is decided at once (PL-28); otherwise
//! interpret starts again on the clarified prompt, and an agent whose reading the user did not
//! choose is shown its program and where it does otherwise (PL-29).

use super::refinement::{infinitive, outcome_phrase};
use super::*;
use std::collections::BTreeSet;

/// Why the user is asked to choose between readings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AskKind {
    /// Two classes of more than m agents (PL-8).
    Split,
    /// The decided class's sub-classes differ only outside the domain (PL-19).
    OutsideDomain,
    /// The prompt fixes no example and no class is large enough (PL-25).
    Open,
}

impl Pipeline {
    /// Asks the user to choose between the classes at `idx` (or gives up after too many
    /// clarifications). [`AskKind::OutsideDomain`]: the classes agree on every input in the
    /// domain and differ only outside it (PL-19), and those inputs are shown; otherwise only
    /// inputs in the domain are.
    pub(super) fn ask_user(
        &mut self,
        it: Box<Interp>,
        classes: &[(Behaviour, Vec<AgentId>)],
        idx: &[usize],
        kind: AskKind,
        out: &mut Vec<Output>,
    ) -> Stage {
        let outside_domain = kind == AskKind::OutsideDomain;
        if it.round >= self.cfg.clarifications_max {
            let reason = format!("the readings still split after {} clarifications", it.round);
            return self.fail("clarify", reason, out);
        }
        let chosen: Vec<&(Behaviour, Vec<AgentId>)> = idx.iter().map(|i| &classes[*i]).collect();
        let readings: Vec<Reading> = chosen
            .iter()
            .enumerate()
            .map(|(k, (_, agents))| Reading {
                label: label(k),
                agents: agents.iter().map(|a| self.name(*a)).collect(),
                summary: it.valid[&agents[0]].spec.summary.clone(),
            })
            .collect();
        let differing = super::agree::differing_probes(&it, chosen.iter().map(|(b, _)| b), |p| {
            it.in_domain.get(p).copied().unwrap_or(true) != outside_domain
        });
        let question = Question {
            round: it.round,
            prompt: self.prompt.full_text(),
            readings,
            differing,
            outside_domain,
            contradicts: None,
            open: kind == AskKind::Open,
        };
        self.persist(
            Decision::Ambiguity {
                question: question.clone(),
            },
            out,
        );
        out.push(Output::AskUser(Box::new(question.clone())));
        Stage::Clarify(it, Box::new(question))
    }

    /// The user answered `question`: a reading's letter, or free text. An answer that looks
    /// like a label but names no reading ([`read_answer`]) is refused and the question asked
    /// again; nothing is decided.
    pub(super) fn on_answer(
        &mut self,
        it: Box<Interp>,
        question: Box<Question>,
        answer: &str,
        out: &mut Vec<Output>,
    ) -> Stage {
        let trimmed = answer.trim();
        let chosen = match read_answer(&question, trimmed) {
            Ok(chosen) => chosen,
            Err(why) => {
                out.push(Output::Progress(Progress::Stage {
                    stage: "clarify".into(),
                    detail: why,
                }));
                out.push(Output::AskUser(question.clone()));
                return Stage::Clarify(it, question);
            }
        };
        let clarification = clarification(&question, trimmed, chosen);
        self.persist(
            Decision::Clarification {
                answer: cap_text(trimmed, 2000),
                clarification: clarification.clone(),
            },
            out,
        );
        out.push(Output::Progress(Progress::Decided {
            what: format!("clarification {}: {}", it.round + 1, clarification.text),
        }));
        self.prompt.clarifications.push(clarification);
        let round = it.round;
        self.repairs = self.answer_repairs(&it, &question, trimmed, chosen);
        if let Some(k) = chosen
            && let Some(stage) = self.decide_chosen(it, &question, k, out)
        {
            self.repairs.clear();
            return stage;
        }
        self.start_interpret(round + 1, 0, out)
    }

    /// PL-29: what the next round shows each agent of its own program after the user's answer.
    /// An agent of a reading the user did not choose is shown the program of that reading
    /// with the calls where it does otherwise than the chosen one (not an agent also of the
    /// chosen reading, except one whose program broke the prompt's example, PL-24);
    /// after an answer in words, every agent with a program in the round is shown it with the
    /// words. An agent without a program is asked afresh.
    fn answer_repairs(
        &self,
        it: &Interp,
        question: &Question,
        answer: &str,
        chosen: Option<usize>,
    ) -> BTreeMap<AgentId, Repair> {
        let id = |name: &str| {
            self.agents
                .iter()
                .find(|a| a.info.name == name)
                .map(|a| a.info.id)
        };
        let mut repairs = BTreeMap::new();
        let Some(k) = chosen else {
            let words = cap_text(answer, 2000);
            let agents: BTreeSet<AgentId> = it
                .programs
                .keys()
                .chain(it.valid.keys())
                .chain(it.carried.iter().map(|c| &c.agent))
                .copied()
                .collect();
            for agent in agents {
                if let Some(program) = self.program_of(it, agent) {
                    repairs.insert(
                        agent,
                        Repair {
                            program,
                            problem: format!(
                                "the user was shown the readings so far and answered: \"{words}\". Change your program where it does not do what they say."
                            ),
                        },
                    );
                }
            }
            return repairs;
        };
        let chosen_agents = agent_names(question, k);
        for (j, reading) in question.readings.iter().enumerate() {
            if j == k {
                continue;
            }
            let cases: Vec<String> = question
                .differing
                .iter()
                .filter(|d| d.outcomes.get(j) != d.outcomes.get(k))
                .filter_map(|d| {
                    let (want, got) = (d.outcomes.get(k)?, d.outcomes.get(j)?);
                    Some(format!(
                        "{} should {}, but your program {}",
                        d.call,
                        infinitive(want),
                        outcome_phrase(got)
                    ))
                })
                .take(REPAIR_CASES_MAX)
                .collect();
            if cases.is_empty() {
                continue;
            }
            for name in &reading.agents {
                let Some(agent) = id(name) else { continue };
                let program = if question.contradicts.is_some() && j > 0 {
                    // PL-24: the program that broke the prompt's example, though the agent
                    // may hold a reading that meets it too (from another sample, PL-20).
                    self.contradiction_program(it, agent)
                } else if chosen_agents.contains(name.as_str()) {
                    // It holds the chosen reading too (another sample's): which of its
                    // programs this reading is, is not known.
                    None
                } else {
                    self.program_of(it, agent)
                };
                if let Some(program) = program {
                    repairs.insert(
                        agent,
                        Repair {
                            program,
                            problem: format!(
                                "the user chose another reading (clarification {}): {}.",
                                it.round + 1,
                                cases.join("; ")
                            ),
                        },
                    );
                }
            }
        }
        repairs
    }

    /// The agent's program that a question's reading shows: its valid reading of this sample,
    /// else its latest carried one (PL-20), else the one that broke the prompt's example
    /// (PL-24), else its latest program of the sample. Not for an agent of two readings.
    fn program_of(&self, it: &Interp, agent: AgentId) -> Option<String> {
        if let Some(i) = it.valid.get(&agent) {
            return Some(super::interpret::program_text(i));
        }
        if let Some(c) = it.carried.iter().rev().find(|c| c.agent == agent) {
            return Some(super::interpret::program_text(&c.interp));
        }
        self.contradiction_program(it, agent)
            .or_else(|| it.programs.get(&agent).cloned())
    }

    /// The program of the agent's latest reading this round that broke the prompt's example
    /// (PL-24).
    fn contradiction_program(&self, it: &Interp, agent: AgentId) -> Option<String> {
        self.contradictions
            .iter()
            .rev()
            .find(|c| c.round == it.round && c.agent == agent)
            .map(|c| c.program.clone())
    }

    /// PL-28: the user chose reading `k`. When more than m agents hold it, at least one of them
    /// is correct (at most m are faulty), and every member reads as that agent does on every
    /// probe: the user's choice is the decision, and the class is decided without reading
    /// again (re-reads of small models repeat their first reading whatever the clarification
    /// says: HumanEval/0's prompt1a, 12 of 12). Not for a question about inputs outside the
    /// domain (its readings are parts of one class), nor for the prompt's example against the
    /// text (PL-24: reading A is every agent that kept the example), nor when the rule is off.
    fn decide_chosen(
        &mut self,
        mut it: Box<Interp>,
        question: &Question,
        k: usize,
        out: &mut Vec<Output>,
    ) -> Option<Stage> {
        if !self.cfg.answer_decides || question.outside_domain || question.contradicts.is_some() {
            return None;
        }
        let names = agent_names(question, k);
        let mut classes = Self::classes(&it);
        let at = classes
            .iter()
            .position(|c| c.1.iter().any(|a| names.contains(self.name(*a).as_str())))?;
        if classes[at].1.len() <= self.tally.m() {
            return None;
        }
        let chosen = classes.remove(at);
        classes.insert(0, chosen);
        out.push(Output::Progress(Progress::Stage {
            stage: "clarify".into(),
            detail: format!(
                "the user chose reading {}, held by {} agents (more than m = {}): decided (PL-28)",
                question.readings[k].label,
                classes[0].1.len(),
                self.tally.m()
            ),
        }));
        // The decision comes after the clarification: it counts in its round.
        it.round += 1;
        Some(self.decide_checked(it, classes, out))
    }
}

/// What an answer to `question` chooses: `Ok(Some(k))` for the label of reading k (`B`, `b`,
/// `reading B`), `Ok(None)` for free text, which is appended as it is (ADR 0002). An answer
/// that looks like a label (one or two letters, or `R` and digits, alone or after `reading`)
/// but names none of the readings offered is refused with the labels that exist: taken as text
/// it would tell the agents nothing, and the user meant a reading.
pub fn read_answer(question: &Question, answer: &str) -> Result<Option<usize>, String> {
    let answer = answer.trim();
    let (prefixed, rest) = match answer.get(..8) {
        Some(p) if p.eq_ignore_ascii_case("reading ") => (true, answer[8..].trim()),
        _ => (false, answer),
    };
    let label = rest.to_ascii_uppercase();
    if let Some(k) = question.readings.iter().position(|r| r.label == label) {
        return Ok(Some(k));
    }
    let letters = rest.chars().all(|c| c.is_ascii_alphabetic());
    let numbered = rest.len() > 1
        && rest.starts_with(['R', 'r'])
        && rest[1..].chars().all(|c| c.is_ascii_digit());
    let like_a_label = numbered
        || match rest.len() {
            1 => letters,
            2 => letters && (prefixed || rest.chars().all(|c| c.is_ascii_uppercase())),
            _ => false,
        };
    if !like_a_label {
        return Ok(None);
    }
    let labels: Vec<&str> = question.readings.iter().map(|r| r.label.as_str()).collect();
    let listed = match labels.split_last() {
        None => "none".to_string(),
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    };
    Err(format!(
        "answer {answer:?} names no reading: the readings are {listed}; answer with one of \
         these labels, or in words"
    ))
}

/// What an answer adds to the prompt: the chosen reading's outcomes on the differing probes,
/// as text and as examples; free text as it is, with the examples it writes out (PL-30).
fn clarification(question: &Question, answer: &str, chosen: Option<usize>) -> Clarification {
    let Some(k) = chosen else {
        return Clarification {
            text: cap_text(answer, 2000),
            examples: answer_examples(question, answer),
        };
    };
    if let (Some(ex), 0) = (&question.contradicts, k) {
        // PL-24: the prompt's example stands; it is checked already.
        return Clarification {
            text: format!("Follow the prompt's example: {}.", example_text(ex)),
            examples: Vec::new(),
        };
    }
    let letter = &question.readings[k].label;
    let examples: Vec<ContractExample> = question
        .differing
        .iter()
        .map(|d| ContractExample {
            call: d.call.clone(),
            expect: Expectation::Same(d.outcomes[k].clone()),
        })
        .collect();
    let cases: Vec<String> = question
        .differing
        .iter()
        .map(|d| format!("{} {}", d.call, outcome_phrase(&d.outcomes[k])))
        .collect();
    // A reading from code has no summary (PL-15): its cases are what it says.
    let summary = match question.readings[k].summary.trim().trim_end_matches('.') {
        "" => String::new(),
        s => format!(": {s}"),
    };
    Clarification {
        text: format!(
            "Follow reading {letter}{summary}. In particular: {}.",
            cases.join("; ")
        ),
        examples,
    }
}

/// PL-30: the examples an answer in words writes as the prompt writes its own (PL-16:
/// `f(2) == 4`, backticked or on a line of its own, or a doctest), each a check like the
/// prompt's. Only calls of a function the question's calls name: a typo in a name would
/// otherwise fault every reading.
fn answer_examples(question: &Question, answer: &str) -> Vec<ContractExample> {
    let named: BTreeSet<&str> = question
        .differing
        .iter()
        .map(|d| d.call.function.as_str())
        .collect();
    crate::facts::prompt_facts(answer)
        .examples
        .into_iter()
        .map(super::agree::unqualified)
        .filter(|e| named.contains(e.call.function.as_str()))
        .collect()
}

/// The names of the agents holding the question's reading `k`.
fn agent_names(question: &Question, k: usize) -> BTreeSet<&str> {
    question.readings[k]
        .agents
        .iter()
        .map(String::as_str)
        .collect()
}

/// Most differing calls one repair names (PL-29).
const REPAIR_CASES_MAX: usize = 3;

pub(super) fn label(k: usize) -> String {
    let letters = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    if k < letters.len() {
        (letters[k] as char).to_string()
    } else {
        format!("R{k}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    /// Readings from code have no summary: neither the question nor the clarification shows
    /// an empty one ("reading B (b): ", "Follow reading B: . In particular").
    #[test]
    fn a_reading_without_a_summary_is_shown_by_its_outcomes_alone() {
        let reading = |label: &str, agent: &str| Reading {
            label: label.into(),
            agents: vec![agent.into()],
            summary: String::new(),
        };
        let mut question = Question {
            round: 0,
            prompt: "write f".into(),
            readings: vec![reading("A", "a"), reading("B", "b")],
            differing: vec![DifferingProbe {
                call: Call {
                    function: "f".into(),
                    args: vec![Value::Int(0)],
                },
                outcomes: vec![Outcome::Value("0".into()), Outcome::Value("1".into())],
            }],
            outside_domain: false,
            contradicts: None,
            open: false,
        };
        let shown = question.to_string();
        assert!(shown.contains("  reading B (b)\n"), "{shown}");
        assert_eq!(
            clarification(&question, "B", Some(1)).text,
            "Follow reading B. In particular: f(0) returns 1."
        );
        // PL-30: examples written out in words are checks; other calls and prose are not.
        let c = clarification(
            &question,
            "Neither: I mean `f(0) == 2` and f(1) == 3, and g(0) == 1.\n- f(5) == 7",
            None,
        );
        let expect: Vec<String> = c
            .examples
            .iter()
            .map(|e| format!("{} {:?}", e.call, e.expect))
            .collect();
        assert_eq!(
            expect,
            ["f(0) Returns(Int(2))", "f(5) Returns(Int(7))"],
            "{c:?}"
        );
        assert!(
            clarification(&question, "no preference", None)
                .examples
                .is_empty()
        );
        question.readings[1].summary = "f is one more.".into();
        assert!(
            question
                .to_string()
                .contains("  reading B (b): f is one more.\n")
        );
        assert_eq!(
            clarification(&question, "B", Some(1)).text,
            "Follow reading B: f is one more. In particular: f(0) returns 1."
        );
    }
}
