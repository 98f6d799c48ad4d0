//! Simulator benchmarks (figures in docs/BENCHMARKS.md):
//! `cargo bench -p synod-sim --bench sim`.
//!
//! - `throughput/{bft,ct}/n`: one fault-free decision with n nodes, events per second.
//!   Chandra–Toueg (no signatures) is the baseline for the cost of the event loop itself;
//!   `ed25519/verify` is the unit cost that dominates BFT.
//! - Before timing, a table of messages per decision and latency in message delays for the
//!   fault-free case is printed beside the theory (Tendermint: 3 message delays), and the
//!   sweep's BFT throughput with signature verdicts shared between nodes and without (the same
//!   seeds, the same run; the traces are equal, `shared_verification_changes_no_trace`).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use synod_core::protocols::NodeId;
use synod_core::protocols::bft::{Payload, SignedMessage, VoteKind, signing_key};
use synod_sim::simulator::sim::{ProtocolKind, SimConfig, Simulation};
use synod_sim::simulator::sweep::{RunSpec, Scenario, run_seed_with};

/// Sweep throughput, shared verdicts against each node verifying alone.
fn sweep_table() {
    eprintln!("sweep throughput (BFT, 300 seeds each, events/s)");
    eprintln!(
        "{:<10} {:>3} {:>14} {:>14} {:>8}",
        "scenario", "n", "alone", "shared", "speedup"
    );
    for (scenario, n) in [
        (Scenario::Random, 4),
        (Scenario::Byzantine, 4),
        (Scenario::Random, 7),
        (Scenario::Random, 10),
    ] {
        let spec = RunSpec {
            protocol: ProtocolKind::Bft,
            n,
            f: (n - 1) / 3,
            scenario,
        };
        let rate = |share: bool| {
            let t = std::time::Instant::now();
            let events: u64 = (0..300)
                .map(|seed| run_seed_with(&spec, seed, share).stats.events)
                .sum();
            events as f64 / t.elapsed().as_secs_f64()
        };
        let (alone, shared) = (rate(false), rate(true));
        eprintln!(
            "{:<10} {:>3} {:>14.0} {:>14.0} {:>7.1}x",
            scenario.name(),
            n,
            alone,
            shared,
            shared / alone
        );
    }
}

const SIZES: [usize; 5] = [4, 8, 16, 32, 64];

fn decide(protocol: ProtocolKind, n: usize) -> Simulation {
    let f = match protocol {
        ProtocolKind::Bft => (n - 1) / 3,
        ProtocolKind::Ct => (n - 1) / 2,
    };
    let mut sim = Simulation::new(SimConfig::new(protocol, n, f), 1);
    assert!(sim.run_until_decided(60_000));
    sim
}

fn good_case_table() {
    eprintln!("fault-free, constant 10 ms delays");
    eprintln!(
        "{:<6} {:>4} {:>10} {:>10} {:>14} {:>14}",
        "proto", "n", "latency", "theory", "messages", "theory"
    );
    for protocol in [ProtocolKind::Bft, ProtocolKind::Ct] {
        for n in SIZES {
            let sim = decide(protocol, n);
            let latency = sim.all_decided_at_ms().unwrap_or(0) as f64 / 10.0;
            let (lt, mt) = match protocol {
                // propose → prevote → precommit; n−1 + 2·n(n−1) messages
                ProtocolKind::Bft => (3.0, (n - 1) + 2 * n * (n - 1)),
                // estimate → propose → ack → decide (+ the relay of the decision)
                ProtocolKind::Ct => (4.0, 4 * (n - 1) + (n - 1) * (n - 1)),
            };
            eprintln!(
                "{:<6} {:>4} {:>10.1} {:>10.1} {:>14} {:>14}",
                protocol.to_string(),
                n,
                latency,
                lt,
                sim.stats().messages,
                mt
            );
        }
    }
}

fn throughput(c: &mut Criterion) {
    good_case_table();
    sweep_table();
    let mut g = c.benchmark_group("throughput");
    g.sample_size(10)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    for protocol in [ProtocolKind::Bft, ProtocolKind::Ct] {
        for n in SIZES {
            let events = decide(protocol, n).stats().events;
            g.throughput(Throughput::Elements(events));
            g.bench_with_input(BenchmarkId::new(protocol.to_string(), n), &n, |b, &n| {
                b.iter(|| black_box(decide(protocol, n).stats().events))
            });
        }
    }
    g.finish();
    let key = signing_key(1, NodeId(0));
    let vks = vec![key.verifying_key()];
    let m = SignedMessage::sign(
        &key,
        NodeId(0),
        Payload::Vote {
            kind: VoteKind::Prevote,
            round: synod_core::protocols::Round(0),
            value: None,
        },
    );
    c.bench_function("ed25519/verify", |b| b.iter(|| black_box(m.verify(&vks))));
}

criterion_group!(benches, throughput);
criterion_main!(benches);
