//! Simulator scenario tests, seed sweeps, reproducibility, model checking and the lab.

use synod_core::protocols::Value;
use synod_sim::simulator::actors::Strategy;
use synod_sim::simulator::network::{Delay, NetworkConfig};
use synod_sim::simulator::sim::{Property, ProtocolKind, SimConfig, Simulation};
use synod_sim::simulator::sweep::{RunSpec, Scenario, run_seed, run_seed_with, sweep};

fn bft(n: usize, f: usize, seed: u64) -> Simulation {
    Simulation::new(SimConfig::new(ProtocolKind::Bft, n, f), seed)
}

fn ct(n: usize, seed: u64) -> Simulation {
    Simulation::new(SimConfig::new(ProtocolKind::Ct, n, (n - 1) / 2), seed)
}

fn agreed(sim: &Simulation) -> Option<Value> {
    let ds: Vec<Value> = sim.decisions().into_iter().flatten().collect();
    let first = ds.first()?.clone();
    ds.iter().all(|d| *d == first).then_some(first)
}

#[test]
fn bft_good_case_decides_in_three_message_delays() {
    let mut sim = bft(4, 1, 1);
    assert!(sim.run_until_decided(10_000));
    assert_eq!(sim.all_decided_at_ms(), Some(30), "3 delays of 10 ms");
    assert_eq!(agreed(&sim), Some(Value(b"ok:0".to_vec())));
    // proposal to 3 + 4 × 3 prevotes + 4 × 3 precommits
    assert_eq!(sim.stats().messages, 27);
}

#[test]
fn bft_crashed_proposer_is_replaced_in_the_next_round() {
    let mut sim = bft(4, 1, 2);
    sim.node(0).crash();
    assert!(sim.run_until_decided(10_000));
    assert_eq!(agreed(&sim), Some(Value(b"ok:1".to_vec())));
    assert!(sim.violations().is_empty());
}

#[test]
fn bft_minority_partition_heals_and_everyone_decides() {
    let mut sim = bft(4, 1, 3);
    sim.partition(&[0], &[1, 2, 3]);
    sim.run_until(500);
    assert_eq!(sim.node(0).decision(), None, "cut off from every quorum");
    sim.heal();
    assert!(sim.run_until_decided(10_000));
    assert!(agreed(&sim).is_some());
}

#[test]
fn bft_even_split_decides_nothing_until_healed() {
    let mut sim = bft(4, 1, 4);
    sim.partition(&[0, 1], &[2, 3]);
    sim.run_until(2_000);
    assert!(sim.decisions().iter().all(Option::is_none));
    sim.heal();
    assert!(sim.run_until_decided(20_000));
    assert!(sim.violations().is_empty());
}

#[test]
fn bft_equivocating_node_at_n4_is_tolerated_and_leaves_evidence() {
    let mut sim = bft(4, 1, 5);
    sim.node(0).byzantine(Strategy::Equivocate);
    assert!(sim.run_until_decided(20_000));
    assert!(sim.violations().is_empty());
    assert!(agreed(&sim).is_some());
}

#[test]
fn bft_equivocating_proposer_at_n3_breaks_agreement() {
    // n = 3f: two quorums of 2 overlap only in the Byzantine node.
    let mut sim = bft(3, 1, 6);
    sim.node(0).byzantine(Strategy::Equivocate);
    sim.run_until(5_000);
    assert!(
        sim.violations()
            .iter()
            .any(|v| v.property == Property::Agreement),
        "{:?}",
        sim.decisions()
    );
}

#[test]
fn bft_forged_signatures_are_rejected() {
    let mut sim = bft(4, 1, 7);
    sim.node(1).byzantine(Strategy::Forge);
    assert!(sim.run_until_decided(20_000));
    assert!(sim.violations().is_empty());
    assert!(sim.stats().rejected > 0);
    assert!(
        sim.decisions()
            .iter()
            .flatten()
            .all(|v| v.0 != b"ok:FORGED")
    );
}

#[test]
fn bft_wrong_value_proposer_is_voted_down() {
    let mut sim = bft(4, 1, 8);
    sim.node(0).byzantine(Strategy::WrongValue);
    assert!(sim.run_until_decided(20_000));
    assert_eq!(agreed(&sim), Some(Value(b"ok:1".to_vec())));
}

#[test]
fn bft_flood_and_replay_do_not_stop_progress() {
    for (seed, s) in [(9, Strategy::Flood), (10, Strategy::Replay)] {
        let mut sim = bft(4, 1, seed);
        sim.node(2).byzantine(s);
        assert!(sim.run_until_decided(20_000), "{s:?}");
        assert!(sim.violations().is_empty());
    }
}

#[test]
fn bft_crash_recover_node_catches_up() {
    let mut sim = bft(4, 1, 11);
    sim.node(3).crash();
    assert!(sim.run_until_decided(10_000));
    assert_eq!(sim.node(3).decision(), None);
    sim.node(3).recover();
    assert!(sim.run_until_decided(10_000));
    assert!(sim.node(3).decision().is_some());
}

#[test]
fn ct_good_case_decides() {
    let mut sim = ct(3, 12);
    assert!(sim.run_until_decided(10_000));
    assert!(agreed(&sim).is_some());
    assert!(sim.violations().is_empty());
}

#[test]
fn ct_crashed_coordinator_is_suspected_and_replaced() {
    let mut sim = ct(5, 13);
    sim.node(0).crash();
    sim.node(1).crash();
    assert!(sim.run_until_decided(20_000));
    assert!(agreed(&sim).is_some());
}

#[test]
fn ct_without_a_majority_never_decides() {
    let mut sim = ct(4, 14);
    sim.node(0).crash();
    sim.node(1).crash();
    assert!(!sim.run_until_decided(5_000));
    assert!(sim.violations().is_empty());
}

#[test]
fn ct_survives_a_lossy_reordering_network() {
    let mut sim = ct(5, 15);
    sim.set_network(NetworkConfig {
        delay: Delay::Pareto {
            scale_ms: 3.0,
            shape: 1.5,
            cap_ms: 1000,
        },
        loss: 0.2,
        duplicate: 0.1,
        reorder: 0.2,
    });
    sim.run_until(1_000);
    sim.stabilize();
    assert!(sim.run_until_decided(60_000));
    assert!(sim.violations().is_empty());
}

#[test]
fn same_seed_same_trace() {
    for scenario in [Scenario::Random, Scenario::Byzantine, Scenario::Partition] {
        let spec = RunSpec {
            protocol: ProtocolKind::Bft,
            n: 4,
            f: 1,
            scenario,
        };
        let a = run_seed(&spec, 42);
        let b = run_seed(&spec, 42);
        assert_eq!(a.trace_digest, b.trace_digest);
        assert_eq!(format!("{a}"), format!("{b}"));
        assert_ne!(a.trace_digest, run_seed(&spec, 43).trace_digest);
    }
}

#[test]
fn shared_verification_changes_no_trace() {
    // Issue 12: the simulator's nodes share signature verdicts (a pure function of key,
    // message and signature). Every seed's trace, byte for byte, and report must be the same
    // with and without sharing, at and below the bound, with Byzantine nodes.
    for (n, scenario) in [
        (4, Scenario::Random),
        (4, Scenario::Byzantine),
        (3, Scenario::Byzantine),
        (4, Scenario::Partition),
    ] {
        let spec = RunSpec {
            protocol: ProtocolKind::Bft,
            n,
            f: 1,
            scenario,
        };
        for seed in 0..25 {
            let shared = run_seed_with(&spec, seed, true);
            let alone = run_seed_with(&spec, seed, false);
            assert_eq!(
                shared.trace_digest, alone.trace_digest,
                "{spec:?} seed {seed}"
            );
            assert_eq!(format!("{shared}"), format!("{alone}"));
        }
    }
}

fn spec(protocol: ProtocolKind, n: usize, f: usize, scenario: Scenario) -> RunSpec {
    RunSpec {
        protocol,
        n,
        f,
        scenario,
    }
}

#[test]
fn sweep_bft_n4_f1_is_safe_and_live() {
    let r = sweep(
        &spec(ProtocolKind::Bft, 4, 1, Scenario::Random),
        0..200,
        2,
        &|_, _| {},
    );
    assert_eq!(r.safety_violations, 0, "{r}");
    assert_eq!(r.liveness_failures, 0, "{r}");
}

#[test]
fn sweep_at_the_end_of_the_seed_range_runs_each_seed_once() {
    // Issue 11: the workers' seed counter wrapped past u64::MAX and the sweep never ended.
    let r = sweep(
        &spec(ProtocolKind::Bft, 4, 1, Scenario::Random),
        u64::MAX - 3..u64::MAX,
        4,
        // A wrapped counter runs seed 0 and on: fail at the first run too many, not hang.
        &|done, total| assert!(done <= total, "run {done} of {total}"),
    );
    assert_eq!(r.runs, 3, "{r}");
    assert!(r.ok(), "{r}");
}

#[test]
fn sweep_bft_n4_f1_byzantine_is_safe_and_live() {
    let r = sweep(
        &spec(ProtocolKind::Bft, 4, 1, Scenario::Byzantine),
        0..200,
        2,
        &|_, _| {},
    );
    assert!(r.ok(), "{r}");
}

#[test]
fn sweep_bft_n3_f1_finds_violations() {
    let r = sweep(
        &spec(ProtocolKind::Bft, 3, 1, Scenario::Equivocate),
        0..200,
        2,
        &|_, _| {},
    );
    assert!(r.safety_violations > 0, "{r}");
    assert!(!r.failing_seeds.is_empty());
    // The failing seed reproduces.
    let again = run_seed(&r.spec, r.failing_seeds[0]);
    assert!(!again.violations.is_empty());
}

#[test]
fn sweep_ct_n5_f2_is_safe_and_live() {
    let r = sweep(
        &spec(ProtocolKind::Ct, 5, 2, Scenario::Random),
        0..200,
        2,
        &|_, _| {},
    );
    assert!(r.ok(), "{r}");
}

#[test]
fn model_check_matches_theory_with_pinned_state_counts() {
    let r = synod_sim::simulator::check::run_check();
    println!("{r}");
    assert!(r.ok(), "{r}");
    // Pinned: a change that shrinks (or grows) the explored space must be noticed.
    let states: Vec<usize> = r.rows.iter().step_by(2).map(|row| row.states).collect();
    assert_eq!(states, vec![1_438_413, 2_536, 205, 21], "{r}");
    let bft3 = &r.rows[2];
    assert_eq!(bft3.property, "agreement");
    assert!(bft3.trace.iter().any(|s| s.contains("DECIDES A")));
    assert!(bft3.trace.iter().any(|s| s.contains("DECIDES B")));
}

/// The figures in docs/BENCHMARKS.md: `SYNOD_SWEEP_SEEDS=10000 cargo nextest run -p synod-sim
/// --release --test sim sweep_large --run-ignored only --no-capture`.
#[test]
#[ignore = "long: run by hand for docs/BENCHMARKS.md"]
fn sweep_large() {
    let seeds: u64 = std::env::var("SYNOD_SWEEP_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (p, n, f, sc) in [
        (ProtocolKind::Bft, 4, 1, Scenario::Random),
        (ProtocolKind::Bft, 4, 1, Scenario::Byzantine),
        (ProtocolKind::Bft, 3, 1, Scenario::Random),
        (ProtocolKind::Bft, 3, 1, Scenario::Byzantine),
        (ProtocolKind::Ct, 5, 2, Scenario::Random),
        (ProtocolKind::Bft, 4, 0, Scenario::FaultFree),
        (ProtocolKind::Ct, 4, 0, Scenario::FaultFree),
    ] {
        let name = format!("{p} {n} {f} {}", sc.name());
        if let Ok(only) = std::env::var("SYNOD_SWEEP_FILTER")
            && !name.contains(&only)
        {
            continue;
        }
        let r = sweep(&spec(p, n, f, sc), 0..seeds, jobs, &|_, _| {});
        let mut r2 = r.clone();
        r2.first_failure = None;
        println!("{r2}");
    }
}

#[test]
fn detector_lab_trades_detection_time_for_false_suspicions() {
    use synod_sim::simulator::detector_lab::{LabConfig, plot, run};
    let cfg = LabConfig {
        warmup_ms: 30_000,
        trials: 3,
        ..LabConfig::default()
    };
    let r = run(&cfg);
    println!("{r}");
    assert_eq!(r.points.len(), 4 * 10);
    // A more patient ◇P suspects less often under every distribution.
    for dist in ["constant", "uniform", "exponential", "pareto"] {
        let ep: Vec<_> = r
            .points
            .iter()
            .filter(|p| p.distribution == dist && p.detector == "eventually-perfect")
            .collect();
        assert!(ep.first().unwrap().false_per_min >= ep.last().unwrap().false_per_min);
        assert!(ep.first().unwrap().detection_ms_mean <= ep.last().unwrap().detection_ms_mean);
    }
    let dir = std::env::temp_dir().join(format!("synod-detector-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("detector.png");
    plot(&r, &png).unwrap();
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn ct_partitioned_coordinator_catches_up_seed_852() {
    // Found by the 10,000-seed sweep: a coordinator whose round's estimates were lost in a
    // partition waited forever; CT-9 (catch up to later rounds) fixes it.
    let r = run_seed(&spec(ProtocolKind::Ct, 5, 2, Scenario::Random), 852);
    assert!(r.ok(), "{r}");
}
