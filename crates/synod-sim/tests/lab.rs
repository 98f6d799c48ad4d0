//! The lab's claims, checked: the generals bounds, the FLP adversary and its failure-detector
//! escape, Ben-Or under correlated coins, and the scaling of the fault budgets.

use synod_sim::lab::generals::{self, Algorithm, GeneralsConfig, Order, Strategy};

fn generals(n: usize, m: usize, algorithm: Algorithm) -> generals::GeneralsReport {
    generals::run(&GeneralsConfig { n, m, algorithm }).expect("a valid configuration")
}

#[test]
fn om1_with_three_generals_violates_ic() {
    let r = generals(3, 1, Algorithm::Oral);
    assert!(!r.holds);
    assert!(r.violations_total > 0);
    let v = &r.violations[0];
    assert!(!(v.outcome.ic1 && v.outcome.ic2));
    assert!(!v.trace.is_empty());
    assert!(v.trace.iter().any(|m| m.lie), "a traitor must have lied");
    // The classic case: a loyal commander orders attack, the traitor lieutenant relays
    // retreat, the loyal lieutenant sees a tie and retreats (IC2).
    assert!(
        r.violations
            .iter()
            .any(|v| v.traitors == vec![2] && v.order == Order::Attack && !v.outcome.ic2)
    );
}

#[test]
fn om1_with_four_generals_holds_in_every_case_including_every_traitor_choice() {
    let r = generals(4, 1, Algorithm::Oral);
    assert!(r.holds, "{}", r.render());
    assert_eq!(r.violations_total, 0);
    // The exhaustive strategy really ran every choice: a traitor commander sends 3 messages
    // (8 choices), a traitor lieutenant relays 2 (4 choices).
    let exhaustive: Vec<_> = r
        .cases
        .iter()
        .filter(|c| c.strategy == Strategy::Exhaustive && c.traitors == vec![0])
        .collect();
    assert!(exhaustive.iter().all(|c| c.runs == 8 && !c.skipped));
    assert!(r.cases.iter().all(|c| !c.skipped));
}

#[test]
fn om1_with_three_generals_fails_for_some_exhaustive_choice_too() {
    let r = generals(3, 1, Algorithm::Oral);
    assert!(
        r.cases
            .iter()
            .any(|c| c.strategy == Strategy::Exhaustive && c.violating_runs > 0)
    );
}

#[test]
fn sm1_with_three_generals_holds() {
    let r = generals(3, 1, Algorithm::Signed);
    assert!(r.holds, "{}", r.render());
    // A traitor commander's conflicting orders reach both lieutenants, who both retreat.
    let forge = r
        .cases
        .iter()
        .find(|c| c.strategy == Strategy::Forge && c.traitors == vec![0])
        .expect("the case ran");
    assert_eq!(forge.violating_runs, 0);
}

#[test]
fn sm2_with_four_generals_holds() {
    let r = generals(4, 2, Algorithm::Signed);
    assert!(r.holds, "{}", r.render());
}

#[test]
fn om2_with_seven_generals_holds() {
    let r = generals(7, 2, Algorithm::Oral);
    assert!(r.holds, "{}", r.render());
    assert_eq!(r.placements.len(), 1 + 7 + 21);
}

#[test]
fn om2_with_six_generals_violates() {
    // 6 < 3·2 + 1: two traitors defeat OM(2).
    let r = generals(6, 2, Algorithm::Oral);
    assert!(!r.holds);
}

#[test]
fn generals_json_has_holds_cases_and_violations_with_traces() {
    let r = generals(3, 1, Algorithm::Oral);
    let json = serde_json::to_value(&r).expect("serializes");
    assert_eq!(json["holds"], serde_json::Value::Bool(false));
    assert!(json["cases"].as_array().is_some_and(|c| !c.is_empty()));
    let violations = json["violations"].as_array().expect("an array");
    assert!(!violations.is_empty());
    assert!(
        violations[0]["trace"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );
    let text = r.render();
    assert!(text.contains("First violation"));
    assert!(text.contains("VIOLATED"));
}

#[test]
fn generals_refuses_work_beyond_the_bounds() {
    for (n, m) in [(8, 1), (7, 3), (3, 3), (1, 0)] {
        let err = generals::run(&GeneralsConfig {
            n,
            m,
            algorithm: Algorithm::Oral,
        })
        .expect_err("out of range");
        assert!(err.to_string().contains("--"), "{err}");
    }
}

use synod_sim::lab::scaling::{self, ScalingConfig};

fn scaling(p: f64, rho: f64, n_max: usize, trials: u64) -> scaling::ScalingReport {
    scaling::run(&ScalingConfig {
        p,
        rho,
        n_max,
        trials,
        seed: 7,
    })
    .expect("a valid configuration")
}

#[test]
fn scaling_simulation_agrees_with_the_analytic_model() {
    for (p, rho) in [(0.1, 0.0), (0.3, 0.5), (0.6, 0.0), (0.2, 1.0)] {
        let r = scaling(p, rho, 12, 20_000);
        assert!(r.simulation_agrees, "p={p} rho={rho}: z_max {}", r.z_max);
        for row in &r.rows {
            for (a, s) in [
                (row.peer_analytic, row.peer_simulated),
                (row.trusted_analytic, row.trusted_simulated),
            ] {
                let se = (a * (1.0 - a) / 20_000.0).sqrt();
                assert!((a - s).abs() <= 4.0 * se + 1e-4, "n={} {a} vs {s}", row.n);
            }
        }
    }
}

#[test]
fn scaling_detects_a_wrong_model() {
    // The check is not vacuous: the simulation of rho = 0.5 disagrees with the analytic
    // values of rho = 0.
    let r = scaling(0.3, 0.5, 9, 20_000);
    let independent = scaling(0.3, 0.0, 9, 1);
    let far = r
        .rows
        .iter()
        .zip(&independent.rows)
        .any(|(a, b)| (a.trusted_simulated - b.trusted_analytic).abs() > 0.05);
    assert!(far);
}

#[test]
fn scaling_more_agents_help_below_the_bound_and_hurt_above_it() {
    // Along n = 2m+1, where the trusted bound is tight.
    let odd = |r: &scaling::ScalingReport| -> Vec<f64> {
        r.rows
            .iter()
            .filter(|row| row.n % 2 == 1)
            .map(|row| row.trusted_analytic)
            .collect()
    };
    let low = scaling(0.1, 0.0, 15, 1);
    let low = odd(&low);
    assert!(low.windows(2).all(|w| w[1] > w[0]), "{low:?}");
    let high = scaling(0.6, 0.0, 15, 1);
    let high = odd(&high);
    assert!(high.windows(2).all(|w| w[1] < w[0]), "{high:?}");
    // Fully correlated faults: more agents change nothing.
    let shared = scaling(0.1, 1.0, 15, 1);
    assert!(
        shared
            .rows
            .iter()
            .all(|row| (row.trusted_analytic - 0.9).abs() < 1e-12)
    );
    // The peer bound needs p below 1/3: at p = 0.4 it falls while the trusted one rises.
    let mid = scaling(0.4, 0.0, 13, 1);
    let (first, last) = (&mid.rows[0], &mid.rows[12]);
    assert!(last.peer_analytic < first.peer_analytic);
    assert!(last.trusted_analytic > first.trusted_analytic);
}

#[test]
fn scaling_wave_rule_costs_n_minus_m_without_faults_and_errs_only_with_shared_faults() {
    let clean = scaling(0.0, 0.0, 9, 100);
    for row in &clean.rows {
        assert_eq!(row.wave_calls_mean, (row.n - row.m_trusted) as f64);
        assert_eq!(row.wave_decided_correct, 1.0);
    }
    let independent = scaling(0.2, 0.0, 9, 2000);
    // Independent mistakes never form a quorum of two; one agent alone delivers its mistake.
    assert!(independent.rows[0].wave_decided_wrong > 0.1);
    assert!(
        independent.rows[1..]
            .iter()
            .all(|r| r.wave_decided_wrong == 0.0)
    );
    let shared = scaling(0.2, 0.5, 9, 2000);
    assert!(shared.rows[8].wave_decided_wrong > 0.05);
}

use synod_sim::lab::flp::{self, FlpConfig};

fn flp_run(steps: usize, stabilize_at: usize, crash: Option<(u8, usize)>) -> flp::FlpReport {
    flp::run(&FlpConfig {
        steps,
        inputs: None,
        stabilize_at,
        crash,
    })
    .expect("a valid configuration")
}

#[test]
fn flp_adversary_keeps_the_protocol_bivalent_and_the_witness_is_genuine() {
    let r = flp_run(12, 6, None);
    assert!(r.bivalent_throughout, "{}", r.render());
    assert_eq!(r.steps.len(), 12);
    // Lemma 2: unanimous inputs are univalent, some mixed input is bivalent.
    assert_eq!(r.initial[0].valence, "0-valent");
    assert_eq!(r.initial[7].valence, "1-valent");
    assert!(r.initial.iter().any(|i| i.valence == "bivalent"));
    flp::verify_witness(&r).expect("every printed configuration is bivalent");
    // Nobody decided along the way.
    assert!(r.steps.iter().all(|s| s.configuration.decision().is_none()));
    // The run is fair: every process keeps receiving.
    assert!(
        r.deliveries_per_process.iter().all(|&d| d >= 3),
        "{:?}",
        r.deliveries_per_process
    );
}

#[test]
fn flp_witness_check_rejects_a_tampered_witness() {
    let mut r = flp_run(3, 3, None);
    let wrong = r.steps[1].to_zero.clone();
    r.steps[1].to_one = wrong;
    assert!(flp::verify_witness(&r).is_err());
}

#[test]
fn flp_with_an_eventually_accurate_detector_decides() {
    let r = flp_run(4, 8, None);
    let d = &r.detector;
    let at = d.decided_at.expect("decides");
    assert!(at > 8, "decides only after stabilization, at {at}");
    assert!(d.all_decided_at.is_some());
    // Before stabilization the adversary kept it bivalent.
    assert!(d.steps.iter().take(8).all(|s| s.valence == "bivalent"));
    // With a crash too.
    let r = flp_run(4, 8, Some((2, 5)));
    assert!(r.detector.all_decided_at.is_some(), "{}", r.render());
}

use synod_sim::lab::benor::{self, BenOrConfig, Scheduler};

fn benor_report() -> benor::BenOrReport {
    benor::run(&BenOrConfig {
        n: 5,
        runs: 2000,
        rounds_max: 500,
        seed: 1,
    })
    .expect("a valid configuration")
}

fn benor_row(r: &benor::BenOrReport, rho: f64, scheduler: Scheduler) -> &benor::BenOrRow {
    r.rows
        .iter()
        .find(|row| row.rho == rho && row.scheduler == scheduler)
        .expect("the row exists")
}

#[test]
fn benor_decides_with_independent_coins() {
    let r = benor_report();
    for scheduler in [Scheduler::Predicting, Scheduler::Blind] {
        let row = benor_row(&r, 0.0, scheduler);
        assert_eq!(row.undecided, 0.0, "{}", r.render());
        assert!(row.mean_rounds > 2.0);
    }
}

#[test]
fn benor_slows_when_a_predictable_coin_is_shared() {
    let r = benor_report();
    let independent = benor_row(&r, 0.0, Scheduler::Predicting);
    let shared = benor_row(&r, 1.0, Scheduler::Predicting);
    assert!(shared.undecided > 0.3, "{}", r.render());
    assert!(
        shared.mean_rounds > 5.0 * independent.mean_rounds,
        "{}",
        r.render()
    );
    // What hurts is that the shared draw can be predicted: for every rho > 0 the predicting
    // scheduler keeps the protocol undecided longer than the blind one.
    for rho in [0.5, 0.9, 1.0] {
        let predicting = benor_row(&r, rho, Scheduler::Predicting);
        let blind = benor_row(&r, rho, Scheduler::Blind);
        assert!(
            predicting.mean_rounds > 1.2 * blind.mean_rounds,
            "rho {rho}: {}",
            r.render()
        );
    }
}

#[test]
fn benor_speeds_up_when_the_shared_coin_is_unpredictable() {
    // Rabin's common coin: sharing helps when the scheduler cannot see the draw.
    let r = benor_report();
    let independent = benor_row(&r, 0.0, Scheduler::Blind);
    let shared = benor_row(&r, 1.0, Scheduler::Blind);
    assert_eq!(shared.undecided, 0.0);
    assert!(
        shared.mean_rounds < independent.mean_rounds,
        "{}",
        r.render()
    );
}

#[test]
fn benor_runs_are_reproducible() {
    let a = serde_json::to_string(&benor_report()).expect("serializes");
    let b = serde_json::to_string(&benor_report()).expect("serializes");
    assert_eq!(a, b);
}
