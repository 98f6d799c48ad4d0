//! The Byzantine generals (Lamport, Shostak, Pease 1982), executed.
//!
//! General 0 is the commander, 1..n the lieutenants. [`run`] executes OM(m) (oral messages) or
//! SM(m) (signed messages) for every placement of at most m traitors (the commander among them
//! or not), every traitor [`Strategy`] and both orders, and checks the interactive consistency
//! conditions on the loyal lieutenants' decisions:
//!
//! - **IC1**: all loyal lieutenants obey the same order;
//! - **IC2**: if the commander is loyal, every loyal lieutenant obeys the order it sends.
//!
//! The paper's algorithms, as run here:
//!
//! - **OM(0)**: the commander sends its value to every lieutenant; each uses the value it
//!   receives, or RETREAT if it receives none.
//! - **OM(m), m > 0**: the commander sends its value to every lieutenant; each lieutenant i
//!   acts as the commander in OM(m−1), sending the value it received to the other n−2
//!   lieutenants; lieutenant j then uses majority(v_1, …, v_{n−1}), where v_i is what OM(m−1)
//!   gave j for lieutenant i (a tie is RETREAT).
//! - **SM(m)**: the commander signs and sends its value; a lieutenant that receives a valid
//!   v:0:j1…jk with v not yet in its set V adds v and, if k < m, signs and sends v:0:j1…jk:i to
//!   every lieutenant not in the chain. A message arriving in round r must carry r+1
//!   signatures (absence is detected by time). After round m it obeys choice(V): the only
//!   element if |V| = 1, otherwise RETREAT.
//!
//! Traitors collude and share their keys, so a traitor can sign with any traitor's key; it can
//! never produce a signature of a loyal general. Every message a traitor sends in SM is checked
//! against that rule (an assertion: a strategy that forges is a bug here, not a finding).

use super::LabError;
use super::table;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// The most generals [`run`] accepts: OM(2) with 7 generals sends 156 messages per case.
pub const GENERALS_MAX: usize = 7;
/// The largest m [`run`] accepts.
pub const TRAITORS_MAX: usize = 2;
/// A case of the [`Strategy::Exhaustive`] strategy enumerates 2^k choices for the k messages
/// the traitors send; above this k the case is skipped (and says so).
pub const EXHAUSTIVE_SLOTS_MAX: usize = 12;
/// The report keeps the traces of at most this many violations (it counts all of them).
pub const VIOLATIONS_KEPT_MAX: usize = 24;

/// An order, and the only two values in the paper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Attack.
    Attack,
    /// Retreat; also the default a lieutenant uses when it receives nothing.
    Retreat,
}

impl Order {
    /// The order a lieutenant uses when it receives none (the paper's RETREAT).
    pub const DEFAULT: Order = Order::Retreat;

    /// The other order.
    pub fn opposite(self) -> Order {
        match self {
            Order::Attack => Order::Retreat,
            Order::Retreat => Order::Attack,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Order::Attack => "attack",
            Order::Retreat => "retreat",
        }
    }
}

/// Which algorithm of the paper runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// OM(m): oral messages, which a traitor can change when it relays them.
    Oral,
    /// SM(m): signed messages, which a traitor can withhold but not forge.
    Signed,
}

/// How the traitors behave. Every traitor of a case follows the same strategy; the strategies
/// of SM respect the signatures (see each variant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Send the opposite of what a loyal general would send. In SM a traitor can sign the
    /// opposite only on a chain of traitors' signatures (so only when the commander is a
    /// traitor); otherwise it withholds.
    Opposite,
    /// Attack to even-numbered receivers, retreat to odd ones. In SM a traitor lieutenant
    /// relays only to even-numbered receivers.
    Parity,
    /// Attack to the first half of the receivers, retreat to the rest. In SM a traitor
    /// lieutenant relays only to the first half.
    Split,
    /// Send nothing: receivers use the default, RETREAT.
    Silent,
    /// OM: a traitor commander sends its order faithfully; traitor lieutenants relay the
    /// opposite of what they received (forged relays). SM: a traitor commander signs both
    /// orders for the first lieutenant; traitor lieutenants relay faithfully and also send the
    /// opposite, signed on a chain of traitors, to the lowest-numbered loyal lieutenant (a late
    /// conflicting order).
    Forge,
    /// OM only: every assignment of attack/retreat to the traitors' messages (silence is the
    /// same as sending RETREAT), when there are at most [`EXHAUSTIVE_SLOTS_MAX`] of them.
    Exhaustive,
}

impl Strategy {
    /// The strategies tried for an algorithm, in table order.
    pub fn for_algorithm(algorithm: Algorithm) -> Vec<Strategy> {
        let mut all = vec![
            Strategy::Opposite,
            Strategy::Parity,
            Strategy::Split,
            Strategy::Silent,
            Strategy::Forge,
        ];
        if algorithm == Algorithm::Oral {
            all.push(Strategy::Exhaustive);
        }
        all
    }

    fn word(self) -> &'static str {
        match self {
            Strategy::Opposite => "opposite",
            Strategy::Parity => "parity",
            Strategy::Split => "split",
            Strategy::Silent => "silent",
            Strategy::Forge => "forge",
            Strategy::Exhaustive => "exhaustive",
        }
    }
}

/// What to run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GeneralsConfig {
    /// Number of generals, the commander included (2..=7).
    pub n: usize,
    /// Number of traitors tolerated, the m of OM(m)/SM(m) (0..=2, below n); every placement of
    /// up to m traitors is tried.
    pub m: usize,
    /// OM or SM.
    pub algorithm: Algorithm,
}

/// One message of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Round (OM: the recursion depth, 0 for the commander's own orders; SM: the round).
    pub round: usize,
    /// Sender.
    pub from: usize,
    /// Receiver.
    pub to: usize,
    /// OM: the chain of relays the value claims to come through, the original commander
    /// first and the sender last. SM: the signatures on the order, in signing order.
    pub chain: Vec<usize>,
    /// The value sent; `None` when a traitor sends nothing where a message was due (OM).
    pub value: Option<Order>,
    /// True when the sender is a traitor and the message differs from what a loyal general
    /// would have sent (a lie, a forged extra order, or silence).
    pub lie: bool,
}

/// The loyal lieutenants' decisions in one run, and whether IC1 and IC2 held.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Outcome {
    /// Each loyal lieutenant's decision.
    pub decisions: BTreeMap<usize, Order>,
    /// IC1: all loyal lieutenants obey the same order.
    pub ic1: bool,
    /// IC2: if the commander is loyal, every loyal lieutenant obeys its order (true when the
    /// commander is a traitor).
    pub ic2: bool,
}

/// One (placement, strategy, order) combination. For the exhaustive strategy it sums up every
/// choice of the traitors' messages.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseSummary {
    /// The traitors.
    pub traitors: Vec<usize>,
    /// Their strategy.
    pub strategy: Strategy,
    /// The commander's order (a traitor commander bases its lies on it).
    pub order: Order,
    /// Runs executed (1, or 2^k for the exhaustive strategy; 0 when skipped).
    pub runs: u64,
    /// Runs in which IC1 or IC2 failed.
    pub violating_runs: u64,
    /// Runs in which IC1 failed.
    pub ic1_violations: u64,
    /// Runs in which IC2 failed.
    pub ic2_violations: u64,
    /// True when the exhaustive strategy had more than [`EXHAUSTIVE_SLOTS_MAX`] traitor
    /// messages to choose and was not run.
    pub skipped: bool,
}

/// A run in which IC1 or IC2 failed, with everything needed to see why.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Violation {
    /// The traitors.
    pub traitors: Vec<usize>,
    /// Their strategy.
    pub strategy: Strategy,
    /// The commander's order.
    pub order: Order,
    /// For the exhaustive strategy: the choice (bit i is the value of the traitors' i-th
    /// message, 1 = attack).
    pub choice: Option<u64>,
    /// Decisions and the conditions.
    pub outcome: Outcome,
    /// Every message of the run, in sending order.
    pub trace: Vec<Message>,
}

/// The result of [`run`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GeneralsReport {
    /// OM or SM.
    pub algorithm: Algorithm,
    /// Number of generals.
    pub n: usize,
    /// The m of OM(m)/SM(m).
    pub m: usize,
    /// True when IC1 and IC2 held in every run tried.
    pub holds: bool,
    /// The traitor placements tried (sets of size 0..=m), in table order.
    pub placements: Vec<Vec<usize>>,
    /// The strategies tried, in table order.
    pub strategies: Vec<Strategy>,
    /// Every case.
    pub cases: Vec<CaseSummary>,
    /// Runs executed in all.
    pub runs_total: u64,
    /// Runs in which IC1 or IC2 failed.
    pub violations_total: u64,
    /// The first [`VIOLATIONS_KEPT_MAX`] violations, each with its trace.
    pub violations: Vec<Violation>,
}

/// Checks the configuration against the bounds; the message says what is wrong.
pub fn validate(config: &GeneralsConfig) -> Result<(), LabError> {
    if !(2..=GENERALS_MAX).contains(&config.n) {
        return Err(LabError::InvalidInput(format!(
            "--n {} is out of range: the generals lab runs 2 to {GENERALS_MAX} generals \
             (every placement and strategy is executed, so the work grows fast)",
            config.n
        )));
    }
    if config.m > TRAITORS_MAX {
        return Err(LabError::InvalidInput(format!(
            "--m {} is out of range: the generals lab runs m = 0 to {TRAITORS_MAX}",
            config.m
        )));
    }
    if config.m >= config.n {
        return Err(LabError::InvalidInput(format!(
            "--m {} must be smaller than --n {}: someone must be loyal",
            config.m, config.n
        )));
    }
    Ok(())
}

/// Runs every case and checks IC1 and IC2.
pub fn run(config: &GeneralsConfig) -> Result<GeneralsReport, LabError> {
    validate(config)?;
    let placements = placements(config.n, config.m);
    let strategies = Strategy::for_algorithm(config.algorithm);
    let mut report = GeneralsReport {
        algorithm: config.algorithm,
        n: config.n,
        m: config.m,
        holds: true,
        placements: placements.clone(),
        strategies: strategies.clone(),
        cases: Vec::new(),
        runs_total: 0,
        violations_total: 0,
        violations: Vec::new(),
    };
    for traitors in &placements {
        let traitor_set: BTreeSet<usize> = traitors.iter().copied().collect();
        for &strategy in &strategies {
            for order in [Order::Attack, Order::Retreat] {
                let mut case = CaseSummary {
                    traitors: traitors.clone(),
                    strategy,
                    order,
                    runs: 0,
                    violating_runs: 0,
                    ic1_violations: 0,
                    ic2_violations: 0,
                    skipped: false,
                };
                let choices: Vec<Option<u64>> = if strategy == Strategy::Exhaustive {
                    let slots = om_slots(config, &traitor_set, order);
                    if slots > EXHAUSTIVE_SLOTS_MAX {
                        case.skipped = true;
                        Vec::new()
                    } else {
                        (0..1u64 << slots).map(Some).collect()
                    }
                } else {
                    vec![None]
                };
                for choice in choices {
                    let (outcome, trace) = run_once(config, &traitor_set, strategy, order, choice);
                    case.runs += 1;
                    case.ic1_violations += u64::from(!outcome.ic1);
                    case.ic2_violations += u64::from(!outcome.ic2);
                    if !(outcome.ic1 && outcome.ic2) {
                        case.violating_runs += 1;
                        report.violations_total += 1;
                        if report.violations.len() < VIOLATIONS_KEPT_MAX {
                            report.violations.push(Violation {
                                traitors: traitors.clone(),
                                strategy,
                                order,
                                choice,
                                outcome,
                                trace,
                            });
                        }
                    }
                }
                report.runs_total += case.runs;
                report.cases.push(case);
            }
        }
    }
    report.holds = report.violations_total == 0;
    Ok(report)
}

/// Every set of at most m of the n generals, smallest first, then in lexicographic order.
fn placements(n: usize, m: usize) -> Vec<Vec<usize>> {
    fn extend(
        n: usize,
        size: usize,
        from: usize,
        current: &mut Vec<usize>,
        out: &mut Vec<Vec<usize>>,
    ) {
        if current.len() == size {
            out.push(current.clone());
            return;
        }
        for next in from..n {
            current.push(next);
            extend(n, size, next + 1, current, out);
            current.pop();
        }
    }
    let mut out = Vec::new();
    for size in 0..=m {
        extend(n, size, 0, &mut Vec::new(), &mut out);
    }
    out
}

/// Executes one run.
pub fn run_once(
    config: &GeneralsConfig,
    traitors: &BTreeSet<usize>,
    strategy: Strategy,
    order: Order,
    choice: Option<u64>,
) -> (Outcome, Vec<Message>) {
    let lieutenants: Vec<usize> = (1..config.n).collect();
    let (decisions, trace) = match config.algorithm {
        Algorithm::Oral => {
            let mut om = Om {
                traitors,
                strategy,
                choice,
                slot: 0,
                trace: Vec::new(),
            };
            let d = om.run(config.m, 0, &lieutenants, order, vec![0]);
            // The recursion sends depth-first; the rounds of the paper are breadth-first.
            let mut trace = om.trace;
            trace.sort_by_key(|m| m.round);
            (d, trace)
        }
        Algorithm::Signed => sm(config.m, traitors, strategy, order, &lieutenants),
    };
    let decisions: BTreeMap<usize, Order> = decisions
        .into_iter()
        .filter(|(i, _)| !traitors.contains(i))
        .collect();
    let mut values = decisions.values();
    let ic1 = match values.next() {
        Some(first) => values.all(|v| v == first),
        None => true,
    };
    let ic2 = traitors.contains(&0) || decisions.values().all(|&v| v == order);
    (
        Outcome {
            decisions,
            ic1,
            ic2,
        },
        trace,
    )
}

/// The number of messages the traitors send in an OM run: the exhaustive strategy's slots.
fn om_slots(config: &GeneralsConfig, traitors: &BTreeSet<usize>, order: Order) -> usize {
    let lieutenants: Vec<usize> = (1..config.n).collect();
    let mut om = Om {
        traitors,
        strategy: Strategy::Exhaustive,
        choice: Some(0),
        slot: 0,
        trace: Vec::new(),
    };
    om.run(config.m, 0, &lieutenants, order, vec![0]);
    om.slot
}

fn majority(values: impl Iterator<Item = Order>) -> Order {
    let (mut attack, mut retreat) = (0usize, 0usize);
    for v in values {
        match v {
            Order::Attack => attack += 1,
            Order::Retreat => retreat += 1,
        }
    }
    match attack.cmp(&retreat) {
        std::cmp::Ordering::Greater => Order::Attack,
        std::cmp::Ordering::Less => Order::Retreat,
        std::cmp::Ordering::Equal => Order::DEFAULT,
    }
}

struct Om<'a> {
    traitors: &'a BTreeSet<usize>,
    strategy: Strategy,
    choice: Option<u64>,
    slot: usize,
    trace: Vec<Message>,
}

impl Om<'_> {
    /// OM(m) with `commander` sending `value` to `lieutenants`; returns the value each
    /// lieutenant ends with for this commander. `chain` ends with `commander`.
    fn run(
        &mut self,
        m: usize,
        commander: usize,
        lieutenants: &[usize],
        value: Order,
        chain: Vec<usize>,
    ) -> BTreeMap<usize, Order> {
        let round = chain.len() - 1;
        let mut received = BTreeMap::new();
        for (pos, &to) in lieutenants.iter().enumerate() {
            let sent = if self.traitors.contains(&commander) {
                self.traitor_value(round, to, pos, lieutenants.len(), value)
            } else {
                Some(value)
            };
            self.trace.push(Message {
                round,
                from: commander,
                to,
                chain: chain.clone(),
                value: sent,
                lie: sent != Some(value),
            });
            received.insert(to, sent.unwrap_or(Order::DEFAULT));
        }
        if m == 0 {
            return received;
        }
        // heard[j][i]: the value lieutenant j ends with for lieutenant i's relay.
        let mut heard: BTreeMap<usize, Vec<Order>> = lieutenants
            .iter()
            .map(|&j| (j, vec![received[&j]]))
            .collect();
        for &i in lieutenants {
            let others: Vec<usize> = lieutenants.iter().copied().filter(|&j| j != i).collect();
            let mut sub_chain = chain.clone();
            sub_chain.push(i);
            let sub = self.run(m - 1, i, &others, received[&i], sub_chain);
            for (j, v) in sub {
                heard.get_mut(&j).expect("a lieutenant").push(v);
            }
        }
        heard
            .into_iter()
            .map(|(j, vs)| (j, majority(vs.into_iter())))
            .collect()
    }

    fn traitor_value(
        &mut self,
        round: usize,
        to: usize,
        pos: usize,
        receivers: usize,
        honest: Order,
    ) -> Option<Order> {
        match self.strategy {
            Strategy::Opposite => Some(honest.opposite()),
            Strategy::Parity => Some(if to.is_multiple_of(2) {
                Order::Attack
            } else {
                Order::Retreat
            }),
            Strategy::Split => Some(if pos < receivers.div_ceil(2) {
                Order::Attack
            } else {
                Order::Retreat
            }),
            Strategy::Silent => None,
            Strategy::Forge => Some(if round == 0 {
                honest
            } else {
                honest.opposite()
            }),
            Strategy::Exhaustive => {
                let bits = self
                    .choice
                    .expect("the exhaustive strategy runs with a choice");
                let slot = self.slot;
                self.slot += 1;
                // Slots beyond 63 only occur in the counting run, which reads bit 0 of 0.
                let bit = if slot < 64 { (bits >> slot) & 1 } else { 0 };
                Some(if bit == 1 {
                    Order::Attack
                } else {
                    Order::Retreat
                })
            }
        }
    }
}

/// A signed order in flight.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Signed {
    value: Order,
    chain: Vec<usize>,
}

/// SM(m). Returns every lieutenant's choice(V) and the trace.
fn sm(
    m: usize,
    traitors: &BTreeSet<usize>,
    strategy: Strategy,
    order: Order,
    lieutenants: &[usize],
) -> (BTreeMap<usize, Order>, Vec<Message>) {
    let mut trace = Vec::new();
    let loyal_lieutenants: Vec<usize> = lieutenants
        .iter()
        .copied()
        .filter(|l| !traitors.contains(l))
        .collect();
    // What each lieutenant has received, ever (a traitor may re-sign any of it).
    let mut seen: BTreeMap<usize, BTreeSet<Signed>> =
        lieutenants.iter().map(|&l| (l, BTreeSet::new())).collect();
    let mut sets: BTreeMap<usize, BTreeSet<Order>> =
        lieutenants.iter().map(|&l| (l, BTreeSet::new())).collect();
    // Messages delivered in the current round: (to, message).
    let mut inbox: Vec<(usize, Signed)> = Vec::new();
    let send = |trace: &mut Vec<Message>,
                inbox: &mut Vec<(usize, Signed)>,
                round: usize,
                from: usize,
                to: usize,
                msg: Signed,
                lie: bool| {
        trace.push(Message {
            round,
            from,
            to,
            chain: msg.chain.clone(),
            value: Some(msg.value),
            lie,
        });
        inbox.push((to, msg));
    };

    // Round 0: the commander.
    let commander_traitor = traitors.contains(&0);
    for (pos, &to) in lieutenants.iter().enumerate() {
        let values: Vec<Order> = if !commander_traitor {
            vec![order]
        } else {
            match strategy {
                Strategy::Opposite => vec![order.opposite()],
                Strategy::Parity => vec![if to.is_multiple_of(2) {
                    Order::Attack
                } else {
                    Order::Retreat
                }],
                Strategy::Split => vec![if pos < lieutenants.len().div_ceil(2) {
                    Order::Attack
                } else {
                    Order::Retreat
                }],
                Strategy::Silent => vec![],
                Strategy::Forge | Strategy::Exhaustive => {
                    if pos == 0 {
                        vec![order, order.opposite()]
                    } else {
                        vec![order]
                    }
                }
            }
        };
        for v in values {
            let lie = commander_traitor && v != order;
            send(
                &mut trace,
                &mut inbox,
                0,
                0,
                to,
                Signed {
                    value: v,
                    chain: vec![0],
                },
                lie,
            );
        }
    }

    for round in 1..=m + 1 {
        // Deliver the previous round's messages: a valid message carries `round` signatures,
        // starts with the commander's, has no repeated signer and not the receiver's own.
        let delivered = std::mem::take(&mut inbox);
        let mut to_relay: Vec<(usize, Signed)> = Vec::new();
        for (to, msg) in delivered {
            let valid = msg.chain.len() == round
                && msg.chain[0] == 0
                && !msg.chain.contains(&to)
                && msg.chain.iter().collect::<BTreeSet<_>>().len() == msg.chain.len();
            if !valid {
                continue;
            }
            seen.get_mut(&to).expect("a lieutenant").insert(msg.clone());
            let set = sets.get_mut(&to).expect("a lieutenant");
            if set.insert(msg.value) && !traitors.contains(&to) {
                // k lieutenant signatures = chain length − 1; relay if k < m.
                if msg.chain.len() - 1 < m {
                    to_relay.push((to, msg));
                }
            } else if traitors.contains(&to) && msg.chain.len() - 1 < m {
                to_relay.push((to, msg));
            }
        }
        if round > m {
            break;
        }
        for (from, msg) in to_relay {
            let mut chain = msg.chain.clone();
            chain.push(from);
            let receivers: Vec<usize> = lieutenants
                .iter()
                .copied()
                .filter(|l| !chain.contains(l))
                .collect();
            // A loyal lieutenant relays to every receiver, a traitor to those its strategy picks.
            let traitor = traitors.contains(&from);
            let relay_to: Vec<usize> = if !traitor {
                receivers.clone()
            } else {
                match strategy {
                    Strategy::Opposite | Strategy::Silent => vec![],
                    Strategy::Parity => receivers
                        .iter()
                        .copied()
                        .filter(|t| t.is_multiple_of(2))
                        .collect(),
                    Strategy::Split => receivers[..receivers.len().div_ceil(2)].to_vec(),
                    Strategy::Forge | Strategy::Exhaustive => receivers.clone(),
                }
            };
            for &to in receivers.iter().filter(|to| relay_to.contains(to)) {
                send(
                    &mut trace,
                    &mut inbox,
                    round,
                    from,
                    to,
                    Signed {
                        value: msg.value,
                        chain: chain.clone(),
                    },
                    false,
                );
            }
            if !traitor {
                continue;
            }
            let forge_to: Vec<usize> = match strategy {
                Strategy::Opposite => receivers.clone(),
                Strategy::Forge => loyal_lieutenants
                    .iter()
                    .copied()
                    .filter(|l| receivers.contains(l))
                    .take(1)
                    .collect(),
                _ => vec![],
            };
            for to in forge_to {
                if let Some(forged) = forge(traitors, from, to, round + 1) {
                    let forged = Signed {
                        value: msg.value.opposite(),
                        chain: forged,
                    };
                    assert!(
                        can_sign(traitors, &seen[&from], &forged),
                        "a strategy forged a loyal general's signature"
                    );
                    send(&mut trace, &mut inbox, round, from, to, forged, true);
                }
            }
        }
    }
    let decisions = sets
        .into_iter()
        .map(|(l, set)| {
            let choice = if set.len() == 1 {
                *set.iter().next().expect("one element")
            } else {
                Order::DEFAULT
            };
            (l, choice)
        })
        .collect();
    (decisions, trace)
}

/// A chain of `len` signatures, all traitors', starting with the commander's and ending with
/// `from`'s, not containing `to`; `None` when the commander is loyal or there are too few
/// traitors.
fn forge(traitors: &BTreeSet<usize>, from: usize, to: usize, len: usize) -> Option<Vec<usize>> {
    if !traitors.contains(&0) || len < 2 {
        return None;
    }
    let middle: Vec<usize> = traitors
        .iter()
        .copied()
        .filter(|&t| t != 0 && t != from && t != to)
        .take(len - 2)
        .collect();
    if middle.len() < len - 2 {
        return None;
    }
    let mut chain = vec![0];
    chain.extend(middle);
    chain.push(from);
    Some(chain)
}

/// Whether a traitor holding `seen` can produce `msg`: some prefix of its chain is a chain it
/// received with that value (or empty), and every later signer is a traitor.
fn can_sign(traitors: &BTreeSet<usize>, seen: &BTreeSet<Signed>, msg: &Signed) -> bool {
    (0..=msg.chain.len()).any(|cut| {
        let prefix_ok = cut == 0
            || seen.contains(&Signed {
                value: msg.value,
                chain: msg.chain[..cut].to_vec(),
            });
        prefix_ok && msg.chain[cut..].iter().all(|s| traitors.contains(s))
    })
}

impl GeneralsReport {
    /// The report as text: the table (placements × strategies), then the first violation's
    /// trace.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let name = match self.algorithm {
            Algorithm::Oral => "OM",
            Algorithm::Signed => "SM",
        };
        let _ = writeln!(
            out,
            "{name}({}) with n = {} generals (commander 0, lieutenants 1..{}), every placement of \
             at most {} traitor(s), both orders.",
            self.m,
            self.n,
            self.n - 1,
            self.m
        );
        let _ = writeln!(
            out,
            "Cell: ok = IC1 and IC2 held in every run of the case (both orders); IC1/IC2 = the \
             condition that failed; exhaustive shows violating runs / runs.\n"
        );
        let mut headers = vec!["traitors"];
        headers.extend(self.strategies.iter().map(|s| s.word()));
        let mut rows = Vec::new();
        for placement in &self.placements {
            let mut row = vec![placement_label(placement)];
            for &strategy in &self.strategies {
                let cases: Vec<&CaseSummary> = self
                    .cases
                    .iter()
                    .filter(|c| &c.traitors == placement && c.strategy == strategy)
                    .collect();
                row.push(self.cell(&cases));
            }
            rows.push(row);
        }
        out.push_str(&table::render(&headers, &rows));
        let _ = writeln!(
            out,
            "\n{} run(s), {} violating. {}",
            self.runs_total,
            self.violations_total,
            if self.holds {
                "IC1 and IC2 hold in every case tried."
            } else {
                "IC1 or IC2 fails: the answer is negative."
            }
        );
        if let Some(v) = self.violations.first() {
            let _ = writeln!(out, "\nFirst violation:\n{}", v.render());
        }
        out
    }

    fn cell(&self, cases: &[&CaseSummary]) -> String {
        if cases.iter().all(|c| c.skipped) {
            return "skipped".into();
        }
        let runs: u64 = cases.iter().map(|c| c.runs).sum();
        let bad: u64 = cases.iter().map(|c| c.violating_runs).sum();
        let exhaustive = cases.iter().any(|c| c.strategy == Strategy::Exhaustive);
        let mut failed = Vec::new();
        if cases.iter().any(|c| c.ic1_violations > 0) {
            failed.push("IC1");
        }
        if cases.iter().any(|c| c.ic2_violations > 0) {
            failed.push("IC2");
        }
        let what = if bad == 0 {
            "ok".to_string()
        } else {
            failed.join("+")
        };
        if exhaustive {
            format!("{what} {bad}/{runs}")
        } else {
            what
        }
    }
}

fn placement_label(traitors: &[usize]) -> String {
    if traitors.is_empty() {
        return "none".into();
    }
    let names: Vec<String> = traitors
        .iter()
        .map(|&t| {
            if t == 0 {
                "0 (commander)".to_string()
            } else {
                t.to_string()
            }
        })
        .collect();
    format!("{{{}}}", names.join(", "))
}

impl Violation {
    /// The violation as text: the case, every message (lies marked), the decisions.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "  traitors {}, strategy {}, the commander's order is {}{}",
            placement_label(&self.traitors),
            self.strategy.word(),
            self.order.word(),
            match self.choice {
                Some(c) => format!(" (choice {c:#b})"),
                None => String::new(),
            }
        );
        for msg in &self.trace {
            let what = match msg.value {
                Some(v) => v.word(),
                None => "(nothing: the receiver uses retreat)",
            };
            let claim = if msg.chain.len() <= 1 {
                format!("orders {what}")
            } else {
                // "2 -> 3: says 1 said 0 said attack".
                let said: Vec<String> = msg.chain[..msg.chain.len() - 1]
                    .iter()
                    .rev()
                    .map(|s| s.to_string())
                    .collect();
                format!("says {} said {what}", said.join(" said "))
            };
            let _ = writeln!(
                out,
                "  round {}  {} -> {}: {}{}{}",
                msg.round,
                msg.from,
                msg.to,
                claim,
                if msg.chain.len() > 1 {
                    format!(
                        " [{}]",
                        msg.chain
                            .iter()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>()
                            .join(":")
                    )
                } else {
                    String::new()
                },
                if msg.lie { "  <- traitor lies" } else { "" }
            );
        }
        let decisions: Vec<String> = self
            .outcome
            .decisions
            .iter()
            .map(|(l, v)| format!("{l} {}", v.word()))
            .collect();
        let _ = writeln!(
            out,
            "  loyal lieutenants decide: {}",
            if decisions.is_empty() {
                "(none loyal)".to_string()
            } else {
                decisions.join(", ")
            }
        );
        let _ = write!(
            out,
            "  IC1 (loyal lieutenants agree): {}; IC2 (they obey a loyal commander): {}",
            if self.outcome.ic1 {
                "holds"
            } else {
                "VIOLATED"
            },
            if self.outcome.ic2 {
                "holds"
            } else {
                "VIOLATED"
            }
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements_are_every_set_of_at_most_m() {
        assert_eq!(placements(3, 1), vec![vec![], vec![0], vec![1], vec![2]]);
        let p = placements(4, 2);
        assert_eq!(p.len(), 1 + 4 + 6);
        assert!(p.contains(&vec![2, 3]));
        assert_eq!(placements(7, 2).len(), 1 + 7 + 21);
    }

    #[test]
    fn majority_ties_go_to_retreat() {
        assert_eq!(
            majority([Order::Attack, Order::Retreat].into_iter()),
            Order::Retreat
        );
        assert_eq!(
            majority([Order::Attack, Order::Attack, Order::Retreat].into_iter()),
            Order::Attack
        );
    }

    #[test]
    fn a_traitor_cannot_sign_for_a_loyal_commander() {
        let traitors: BTreeSet<usize> = [2].into_iter().collect();
        let seen: BTreeSet<Signed> = [Signed {
            value: Order::Attack,
            chain: vec![0],
        }]
        .into_iter()
        .collect();
        assert!(can_sign(
            &traitors,
            &seen,
            &Signed {
                value: Order::Attack,
                chain: vec![0, 2]
            }
        ));
        assert!(!can_sign(
            &traitors,
            &seen,
            &Signed {
                value: Order::Retreat,
                chain: vec![0, 2]
            }
        ));
        assert_eq!(forge(&traitors, 2, 1, 2), None);
    }

    #[test]
    fn om_slots_count_the_traitors_messages() {
        let config = GeneralsConfig {
            n: 4,
            m: 1,
            algorithm: Algorithm::Oral,
        };
        let commander: BTreeSet<usize> = [0].into_iter().collect();
        assert_eq!(om_slots(&config, &commander, Order::Attack), 3);
        let lieutenant: BTreeSet<usize> = [2].into_iter().collect();
        assert_eq!(om_slots(&config, &lieutenant, Order::Attack), 2);
    }
}
