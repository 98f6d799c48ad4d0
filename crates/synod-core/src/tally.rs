//! The decision rule of DESIGN §4 (trusted tally): a small pure function, and the wave
//! arithmetic that decides how many agents to ask.
//!
//! n agents, fault budget m, n ≥ 2m+1. Votes are grouped into behaviour classes, largest first.
//! - decide C1 iff |C1| ≥ n − m (all dissent fits in the fault budget);
//! - ambiguity iff another class has more than m members (a correct agent holds each reading);
//! - otherwise not yet.

use serde::{Deserialize, Serialize};

/// The fault budget cannot be honoured with this many agents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// n < 2m + 1: a decided class could consist of faulty agents only.
    #[error(
        "{n} agents cannot tolerate {m} faulty ones with a trusted tally: that needs at least {need} agents (n ≥ 2m+1); use fewer faults (at most {max}) or more agents"
    )]
    TooFewAgents {
        /// Agents configured.
        n: usize,
        /// Fault budget asked for.
        m: usize,
        /// Agents needed for that budget, 2m + 1 (wider than `usize`: any m has an answer).
        need: u128,
        /// Largest budget these agents can honour.
        max: usize,
    },
    /// No agents at all.
    #[error("no agents configured: at least one is needed")]
    NoAgents,
}

/// What the rule says about a set of behaviour classes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Decide the largest class (index 0 of the sorted classes).
    Decide,
    /// Readings split beyond the fault budget: these class indices (sorted order) each have
    /// more than m members. Ask the user.
    Ambiguous(Vec<usize>),
    /// Neither: ask more agents, resample, or fail.
    NotYet,
}

/// The trusted tally for n agents with fault budget m.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    n: usize,
    m: usize,
}

impl Tally {
    /// A tally for `n` agents and fault budget `m`; refuses budgets the rule cannot honour.
    pub fn new(n: usize, m: usize) -> Result<Tally, BudgetError> {
        if n == 0 {
            return Err(BudgetError::NoAgents);
        }
        // n ≥ 2m + 1 without computing 2m + 1 in usize, which a huge m overflows.
        if m > Tally::default_budget(n) {
            return Err(BudgetError::TooFewAgents {
                n,
                m,
                need: 2 * m as u128 + 1,
                max: Tally::default_budget(n),
            });
        }
        Ok(Tally { n, m })
    }

    /// The largest m with n ≥ 2m+1.
    pub fn default_budget(n: usize) -> usize {
        n.saturating_sub(1) / 2
    }

    /// Agents.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Fault budget.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Size of the first wave: n − m agents. If they all agree, the other m cannot change the
    /// outcome.
    pub fn first_wave(&self) -> usize {
        self.n - self.m
    }

    /// Applies the rule to class sizes sorted largest first.
    pub fn verdict(&self, sizes: &[usize]) -> Verdict {
        rule(self.n, self.m, sizes)
    }

    /// How many more agents to ask when the verdict is "not yet": enough that the largest
    /// class could reach n − m if they all joined it, and at least one.
    pub fn more_needed(&self, sizes: &[usize]) -> usize {
        let c1 = sizes.first().copied().unwrap_or(0);
        (self.n - self.m).saturating_sub(c1).max(1)
    }
}

/// The bare rule, without the n ≥ 2m+1 guard (so tests can show what breaks without it).
/// `sizes` must be sorted in non-increasing order (asserted: an unsorted tally is a bug).
pub fn rule(n: usize, m: usize, sizes: &[usize]) -> Verdict {
    assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "sizes not sorted");
    let Some(&c1) = sizes.first() else {
        return Verdict::NotYet;
    };
    if c1.saturating_add(m) >= n {
        return Verdict::Decide;
    }
    let big: Vec<usize> = sizes
        .iter()
        .enumerate()
        .filter(|(_, s)| **s > m)
        .map(|(i, _)| i)
        .collect();
    if big.len() >= 2 {
        Verdict::Ambiguous(big)
    } else {
        Verdict::NotYet
    }
}

/// One class of a widened tally (PL-20): how many readings (votes) it holds and from how many
/// distinct agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Votes {
    /// Readings in the class, every sample of the round counted.
    pub readings: usize,
    /// Distinct agents among them.
    pub agents: usize,
}

/// The widened rule (PL-20, MAKER's first-to-ahead-by-k): with `classes` sorted by readings,
/// largest first, the first class is decided when it holds at least `k` readings more than the
/// next and readings of more than `m` distinct agents (so a correct agent holds it whatever
/// the m faulty ones did). `k = 0` never decides. Returns whether the first class is decided.
pub fn ahead_by(k: usize, m: usize, classes: &[Votes]) -> bool {
    assert!(
        classes.windows(2).all(|w| w[0].readings >= w[1].readings),
        "classes not sorted"
    );
    let Some(first) = classes.first() else {
        return false;
    };
    let second = classes.get(1).map_or(0, |c| c.readings);
    k > 0 && first.readings >= second + k && first.agents > m
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Votes: for each agent, Some(class label) or None (no vote). Returns class members sorted
    /// largest first (ties: smallest label first).
    fn classes(votes: &[Option<u8>]) -> Vec<Vec<usize>> {
        let mut by: BTreeMap<u8, Vec<usize>> = BTreeMap::new();
        for (i, v) in votes.iter().enumerate() {
            if let Some(c) = v {
                by.entry(*c).or_default().push(i);
            }
        }
        let mut cs: Vec<Vec<usize>> = by.into_values().collect();
        cs.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
        cs
    }

    /// The first at most m agents the mask marks are the faulty ones.
    fn at_most_m_faulty(mask: &[bool], n: usize, m: usize) -> Vec<bool> {
        let mut faulty = vec![false; n];
        let mut count = 0;
        for i in 0..n {
            if mask[i] && count < m {
                faulty[i] = true;
                count += 1;
            }
        }
        faulty
    }

    fn scenario() -> impl Strategy<Value = (usize, usize, Vec<Option<u8>>, Vec<bool>)> {
        (1usize..=9).prop_flat_map(|n| {
            let m_max = (n - 1) / 2;
            (
                Just(n),
                0..=m_max,
                proptest::collection::vec(proptest::option::weighted(0.9, 0u8..4), n),
                proptest::collection::vec(any::<bool>(), n),
            )
        })
    }

    proptest! {
        /// Theorem (a): with at most m faulty agents, a decided class contains a correct agent.
        #[test]
        fn theorem_a_decided_class_contains_a_correct_agent(
            (n, m, votes, faulty_mask) in scenario()
        ) {
            let faulty = at_most_m_faulty(&faulty_mask, n, m);
            let cs = classes(&votes);
            let sizes: Vec<usize> = cs.iter().map(Vec::len).collect();
            let tally = Tally::new(n, m).unwrap();
            if tally.verdict(&sizes) == Verdict::Decide {
                prop_assert!(cs[0].iter().any(|a| !faulty[*a]));
            }
        }

        /// Theorem (b): a reading held by more than m agents is never silently overruled.
        #[test]
        fn theorem_b_no_reading_with_more_than_m_is_overruled((n, m, votes, _f) in scenario()) {
            let cs = classes(&votes);
            let sizes: Vec<usize> = cs.iter().map(Vec::len).collect();
            match Tally::new(n, m).unwrap().verdict(&sizes) {
                Verdict::Decide => prop_assert!(sizes.iter().skip(1).all(|s| *s <= m)),
                Verdict::Ambiguous(big) => {
                    prop_assert!(big.len() >= 2);
                    prop_assert!(big.iter().all(|i| sizes[*i] > m));
                }
                Verdict::NotYet => prop_assert!(sizes.first().is_none_or(|c1| c1 + m < n)),
            }
        }

        /// Waves: asking n − m agents that all agree decides without asking the rest.
        #[test]
        fn agreeing_first_wave_decides(n in 1usize..12, m_frac in 0.0f64..1.0) {
            let m = ((Tally::default_budget(n) as f64) * m_frac) as usize;
            let t = Tally::new(n, m).unwrap();
            prop_assert_eq!(t.verdict(&[t.first_wave()]), Verdict::Decide);
            prop_assert_eq!(t.verdict(&[t.first_wave() - 1]), Verdict::NotYet);
        }
    }

    proptest! {
        /// PL-20: a class the widened rule decides holds a correct agent's reading, whatever
        /// the m faulty agents read and however often each was sampled; and it leads by k.
        #[test]
        fn widened_rule_decides_only_a_class_a_correct_agent_holds(
            n in 3usize..8,
            k in 1usize..4,
            samples in proptest::collection::vec((0usize..8, 0u8..3), 1..40),
            faulty_mask in proptest::collection::vec(any::<bool>(), 8),
        ) {
            let m = Tally::default_budget(n);
            let faulty = at_most_m_faulty(&faulty_mask, n, m);
            // Readings: (agent, class label); a class's agents are those that read it.
            let mut by: BTreeMap<u8, Vec<usize>> = BTreeMap::new();
            for (a, c) in &samples {
                by.entry(*c).or_default().push(a % n);
            }
            let mut cs: Vec<(Votes, Vec<usize>)> = by
                .into_values()
                .map(|agents| {
                    let mut distinct = agents.clone();
                    distinct.sort();
                    distinct.dedup();
                    (Votes { readings: agents.len(), agents: distinct.len() }, distinct)
                })
                .collect();
            cs.sort_by_key(|c| std::cmp::Reverse(c.0.readings));
            let votes: Vec<Votes> = cs.iter().map(|c| c.0).collect();
            if ahead_by(k, m, &votes) {
                prop_assert!(cs[0].1.iter().any(|a| !faulty[*a]));
                prop_assert!(votes[0].readings >= votes.get(1).map_or(0, |v| v.readings) + k);
            }
        }
    }

    #[test]
    fn widened_rule_examples() {
        let v = |readings, agents| Votes { readings, agents };
        assert!(ahead_by(2, 1, &[v(4, 3), v(2, 2)]));
        assert!(!ahead_by(2, 1, &[v(4, 3), v(3, 2)]), "ahead by 1 only");
        assert!(
            !ahead_by(2, 1, &[v(5, 1), v(1, 1)]),
            "one agent is within the budget"
        );
        assert!(ahead_by(2, 1, &[v(2, 2)]));
        assert!(!ahead_by(0, 1, &[v(9, 4)]), "k = 0 is off");
        assert!(!ahead_by(2, 1, &[]));
    }

    /// Theorem (c): with n ≤ 2m the rule can decide a class made only of faulty agents.
    #[test]
    fn theorem_c_fails_with_n_at_most_2m() {
        for m in 1..5 {
            let n = 2 * m;
            // m faulty agents share one wrong reading; the m correct ones agree on the right one;
            // the wrong class is listed first (it wins the tie).
            let sizes = [m, m];
            assert_eq!(rule(n, m, &sizes), Verdict::Decide, "n={n} m={m}");
            // With n = 2m + 1 the same fault pattern (m wrong, m+1 right) can't win.
            assert_ne!(rule(2 * m + 1, m, &[m]), Verdict::Decide);
        }
        assert!(matches!(
            Tally::new(4, 2),
            Err(BudgetError::TooFewAgents {
                need: 5,
                max: 1,
                ..
            })
        ));
    }

    #[test]
    fn a_budget_near_the_largest_number_is_refused_without_overflow() {
        for (n, m) in [
            (5, usize::MAX),
            (5, usize::MAX / 2 + 1),
            (usize::MAX, usize::MAX / 2 + 1),
        ] {
            let e = Tally::new(n, m).unwrap_err().to_string();
            assert!(
                e.contains(&format!("at least {}", 2 * m as u128 + 1)),
                "{e}"
            );
        }
        let t = Tally::new(usize::MAX, usize::MAX / 2).expect("n = 2m + 1 exactly");
        assert_eq!(t.first_wave(), usize::MAX / 2 + 1);
        assert_eq!(rule(5, usize::MAX, &[1]), Verdict::Decide);
    }

    #[test]
    fn rule_examples_from_the_design() {
        let t = Tally::new(5, 2).unwrap();
        assert_eq!(t.verdict(&[3, 1]), Verdict::Decide);
        assert_eq!(t.verdict(&[2, 1]), Verdict::NotYet);
        assert_eq!(t.more_needed(&[2, 1]), 1);
        let t = Tally::new(5, 1).unwrap();
        assert_eq!(t.verdict(&[3, 2]), Verdict::Ambiguous(vec![0, 1]));
        assert_eq!(t.verdict(&[3, 1]), Verdict::NotYet);
        assert_eq!(t.verdict(&[4, 1]), Verdict::Decide);
        assert_eq!(Tally::default_budget(5), 2);
        assert_eq!(Tally::default_budget(4), 1);
        assert_eq!(Tally::default_budget(1), 0);
    }
}
