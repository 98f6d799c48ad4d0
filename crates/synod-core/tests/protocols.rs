//! Step tests of the sans-IO protocol cores. Each test names the rule of `docs/PROTOCOL.md`
//! it checks.

use synod_core::protocols::bft::{
    BftConfig, BftInput, BftNode, BftOutput, Evidence, Payload, SignedMessage, Step, Timeout,
    VoteKind, signing_key,
};
use synod_core::protocols::ct::{CtConfig, CtInput, CtMessage, CtNode, CtOutput};
use synod_core::protocols::detector::{
    DetectorInput, DetectorOutput, EventuallyPerfect, EventuallyPerfectConfig, FailureDetector,
    PhiAccrual, PhiAccrualConfig,
};
use synod_core::protocols::{NodeId, Round, Value};

const SEED: u64 = 99;

fn v(s: &str) -> Value {
    Value(s.as_bytes().to_vec())
}

fn bft_node(id: u16, n: usize, f: usize) -> BftNode {
    let keys = (0..n as u16)
        .map(|i| signing_key(SEED, NodeId(i)).verifying_key())
        .collect();
    BftNode::new(
        NodeId(id),
        BftConfig::new(n, f),
        signing_key(SEED, NodeId(id)),
        keys,
        v(&format!("ok:{id}")),
    )
}

fn ok_value(x: &Value) -> bool {
    x.0.starts_with(b"ok:")
}

fn signed(from: u16, payload: Payload) -> SignedMessage {
    SignedMessage::sign(&signing_key(SEED, NodeId(from)), NodeId(from), payload)
}

fn proposal(from: u16, round: u32, value: &str, vr: Option<u32>) -> SignedMessage {
    signed(
        from,
        Payload::Proposal {
            round: Round(round),
            value: v(value),
            valid_round: vr.map(Round),
        },
    )
}

fn vote(from: u16, kind: VoteKind, round: u32, value: Option<&str>) -> SignedMessage {
    signed(
        from,
        Payload::Vote {
            kind,
            round: Round(round),
            value: value.map(v),
        },
    )
}

fn prevote(from: u16, round: u32, value: Option<&str>) -> SignedMessage {
    vote(from, VoteKind::Prevote, round, value)
}

fn precommit(from: u16, round: u32, value: Option<&str>) -> SignedMessage {
    vote(from, VoteKind::Precommit, round, value)
}

fn feed(node: &mut BftNode, now: u64, input: BftInput) -> Vec<BftOutput> {
    let mut out = Vec::new();
    node.step_with(now, input, &ok_value, &mut out);
    out
}

fn msgs(node: &mut BftNode, now: u64, ms: Vec<SignedMessage>) -> Vec<BftOutput> {
    let mut out = Vec::new();
    for m in ms {
        node.step_with(now, BftInput::Message(m), &ok_value, &mut out);
    }
    out
}

fn sent(out: &[BftOutput]) -> Vec<Payload> {
    out.iter()
        .filter_map(|o| match o {
            BftOutput::Broadcast(m) => Some(m.payload.clone()),
            _ => None,
        })
        .collect()
}

fn sent_vote(out: &[BftOutput], kind: VoteKind) -> Option<Option<Value>> {
    sent(out).into_iter().find_map(|p| match p {
        Payload::Vote { kind: k, value, .. } if k == kind => Some(value),
        _ => None,
    })
}

fn timers(out: &[BftOutput]) -> Vec<(u64, Timeout)> {
    out.iter()
        .filter_map(|o| match o {
            BftOutput::SetTimer { at_ms, timeout } => Some((*at_ms, *timeout)),
            _ => None,
        })
        .collect()
}

/// Node 2 of 4 locked on "ok:0" in round 0.
fn locked_node() -> BftNode {
    let mut n = bft_node(2, 4, 1);
    feed(&mut n, 0, BftInput::Start);
    let out = msgs(
        &mut n,
        10,
        vec![
            proposal(0, 0, "ok:0", None),
            prevote(0, 0, Some("ok:0")),
            prevote(1, 0, Some("ok:0")),
        ],
    );
    assert_eq!(sent_vote(&out, VoteKind::Precommit), Some(Some(v("ok:0"))));
    n
}

#[test]
fn bft_quorum_is_n_minus_f() {
    assert_eq!(BftConfig::new(4, 1).quorum(), 3);
    assert_eq!(BftConfig::new(3, 1).quorum(), 2);
    assert_eq!(BftConfig::new(7, 2).quorum(), 5);
}

#[test]
fn bft_1_proposer_proposes_its_value_and_others_wait() {
    let mut p = bft_node(0, 4, 1);
    let out = feed(&mut p, 0, BftInput::Start);
    assert!(sent(&out).contains(&Payload::Proposal {
        round: Round(0),
        value: v("ok:0"),
        valid_round: None
    }));
    let mut q = bft_node(1, 4, 1);
    let out = feed(&mut q, 0, BftInput::Start);
    assert!(sent(&out).is_empty());
    assert!(timers(&out).contains(&(60, Timeout::Propose(Round(0)))));
}

#[test]
fn bft_2_valid_proposal_gets_a_prevote() {
    let mut n = bft_node(1, 4, 1);
    feed(&mut n, 0, BftInput::Start);
    let out = msgs(&mut n, 10, vec![proposal(0, 0, "ok:0", None)]);
    assert_eq!(sent_vote(&out, VoteKind::Prevote), Some(Some(v("ok:0"))));
    assert_eq!(n.step_kind(), Step::Prevote);
}

#[test]
fn bft_15_invalid_value_gets_a_nil_prevote() {
    let mut n = bft_node(1, 4, 1);
    feed(&mut n, 0, BftInput::Start);
    let out = msgs(&mut n, 10, vec![proposal(0, 0, "bad", None)]);
    assert_eq!(sent_vote(&out, VoteKind::Prevote), Some(None));
    assert!(n.counters().invalid_value > 0);
}

#[test]
fn bft_5_prevote_quorum_locks_and_precommits() {
    let n = locked_node();
    assert_eq!(n.locked(), Some(&(v("ok:0"), Round(0))));
    assert_eq!(n.valid_value(), Some(&(v("ok:0"), Round(0))));
    assert_eq!(n.step_kind(), Step::Precommit);
}

#[test]
fn bft_3_locked_node_prevotes_nil_for_other_values() {
    let mut n = locked_node();
    // Round 0 ends without a decision: precommits for nil, then the precommit timeout.
    let out = msgs(
        &mut n,
        20,
        vec![precommit(1, 0, None), precommit(3, 0, None)],
    );
    let (at, t) = timers(&out)[0];
    assert_eq!(t, Timeout::Precommit(Round(0)));
    feed(&mut n, at, BftInput::Timeout(t));
    assert_eq!(n.round(), Round(1));
    let out = msgs(&mut n, at + 5, vec![proposal(1, 1, "ok:1", None)]);
    assert_eq!(sent_vote(&out, VoteKind::Prevote), Some(None));
}

#[test]
fn bft_4_reproposal_with_its_valid_round_is_prevoted() {
    let mut n = locked_node();
    let out = msgs(
        &mut n,
        20,
        vec![precommit(1, 0, None), precommit(3, 0, None)],
    );
    let (at, t) = timers(&out)[0];
    feed(&mut n, at, BftInput::Timeout(t));
    // Without the prevote quorum of round 0 at hand, a re-proposal waits (L28 not enabled)…
    let mut fresh = bft_node(3, 4, 1);
    feed(&mut fresh, 0, BftInput::Start);
    msgs(
        &mut fresh,
        1,
        vec![precommit(0, 1, None), prevote(1, 1, None)],
    );
    assert_eq!(fresh.round(), Round(1));
    let out = msgs(&mut fresh, 2, vec![proposal(1, 1, "ok:0", Some(0))]);
    assert_eq!(sent_vote(&out, VoteKind::Prevote), None);
    // …and with it (L28-L33) the locked node prevotes the re-proposed value.
    let out = msgs(&mut n, at + 5, vec![proposal(1, 1, "ok:0", Some(0))]);
    assert_eq!(sent_vote(&out, VoteKind::Prevote), Some(Some(v("ok:0"))));
}

#[test]
fn bft_6_nil_prevote_quorum_precommits_nil() {
    let mut n = bft_node(2, 4, 1);
    feed(&mut n, 0, BftInput::Start);
    feed(&mut n, 60, BftInput::Timeout(Timeout::Propose(Round(0))));
    let out = msgs(&mut n, 61, vec![prevote(0, 0, None), prevote(1, 0, None)]);
    assert_eq!(sent_vote(&out, VoteKind::Precommit), Some(None));
}

#[test]
fn bft_7_proposal_and_precommit_quorum_decide_once() {
    let mut n = bft_node(2, 4, 1);
    feed(&mut n, 0, BftInput::Start);
    let out = msgs(
        &mut n,
        10,
        vec![
            precommit(0, 0, Some("ok:0")),
            precommit(1, 0, Some("ok:0")),
            precommit(3, 0, Some("ok:0")),
            proposal(0, 0, "ok:0", None),
        ],
    );
    let decisions: Vec<&BftOutput> = out
        .iter()
        .filter(|o| matches!(o, BftOutput::Decide { .. }))
        .collect();
    assert_eq!(decisions.len(), 1);
    assert_eq!(n.decision(), Some(&(v("ok:0"), Round(0))));
    let out = msgs(&mut n, 11, vec![precommit(3, 0, Some("ok:0"))]);
    assert!(!out.iter().any(|o| matches!(o, BftOutput::Decide { .. })));
}

#[test]
fn bft_7_decides_for_an_earlier_round() {
    let mut n = bft_node(2, 4, 1);
    feed(&mut n, 0, BftInput::Start);
    msgs(&mut n, 1, vec![prevote(0, 1, None), prevote(1, 1, None)]);
    assert_eq!(n.round(), Round(1));
    msgs(
        &mut n,
        2,
        vec![
            proposal(0, 0, "ok:0", None),
            precommit(0, 0, Some("ok:0")),
            precommit(1, 0, Some("ok:0")),
            precommit(3, 0, Some("ok:0")),
        ],
    );
    assert_eq!(n.decision(), Some(&(v("ok:0"), Round(0))));
}

#[test]
fn bft_8_f_plus_1_messages_of_a_higher_round_skip_to_it() {
    let mut n = bft_node(2, 4, 1);
    feed(&mut n, 0, BftInput::Start);
    msgs(&mut n, 1, vec![prevote(0, 3, None)]);
    assert_eq!(n.round(), Round(0), "one sender could be Byzantine");
    let out = msgs(&mut n, 2, vec![prevote(1, 3, None)]);
    assert_eq!(n.round(), Round(3));
    assert!(
        timers(&out)
            .iter()
            .any(|(_, t)| *t == Timeout::Propose(Round(3)))
    );
}

#[test]
fn bft_9_propose_timeout_prevotes_nil() {
    let mut n = bft_node(2, 4, 1);
    feed(&mut n, 0, BftInput::Start);
    let out = feed(&mut n, 60, BftInput::Timeout(Timeout::Propose(Round(0))));
    assert_eq!(sent_vote(&out, VoteKind::Prevote), Some(None));
    // A stale timeout does nothing.
    let out = feed(&mut n, 61, BftInput::Timeout(Timeout::Propose(Round(0))));
    assert!(sent(&out).is_empty());
}

#[test]
fn bft_10_prevote_timeout_precommits_nil() {
    let mut n = bft_node(2, 4, 1);
    feed(&mut n, 0, BftInput::Start);
    msgs(&mut n, 5, vec![proposal(0, 0, "ok:0", None)]);
    let out = msgs(
        &mut n,
        6,
        vec![prevote(0, 0, None), prevote(1, 0, Some("ok:9"))],
    );
    let (at, t) = timers(&out)[0];
    assert_eq!(t, Timeout::Prevote(Round(0)));
    let out = feed(&mut n, at, BftInput::Timeout(t));
    assert_eq!(sent_vote(&out, VoteKind::Precommit), Some(None));
}

#[test]
fn bft_11_precommit_timeout_starts_the_next_round_with_longer_timeouts() {
    let mut n = bft_node(2, 4, 1);
    let out0 = feed(&mut n, 0, BftInput::Start);
    let (at0, _) = timers(&out0)
        .into_iter()
        .find(|(_, t)| *t == Timeout::Propose(Round(0)))
        .unwrap();
    feed(&mut n, at0, BftInput::Timeout(Timeout::Propose(Round(0))));
    let out = msgs(&mut n, 61, vec![prevote(0, 0, None), prevote(1, 0, None)]);
    assert_eq!(sent_vote(&out, VoteKind::Precommit), Some(None));
    let out = msgs(&mut n, 62, vec![precommit(0, 0, None)]);
    assert!(timers(&out).is_empty(), "two precommits are not a quorum");
    let out = msgs(&mut n, 63, vec![precommit(1, 0, None)]);
    let (at, t) = timers(&out)[0];
    assert_eq!(t, Timeout::Precommit(Round(0)));
    let out = feed(&mut n, at, BftInput::Timeout(t));
    assert_eq!(n.round(), Round(1));
    let (at1, _) = timers(&out)
        .into_iter()
        .find(|(_, t)| *t == Timeout::Propose(Round(1)))
        .unwrap();
    assert!(at1 - at > at0, "timeoutPropose(1) > timeoutPropose(0)");
}

#[test]
fn bft_12_gossip_resends_the_decision_proof() {
    let mut n = bft_node(2, 4, 1);
    feed(&mut n, 0, BftInput::Start);
    msgs(
        &mut n,
        10,
        vec![
            proposal(0, 0, "ok:0", None),
            precommit(0, 0, Some("ok:0")),
            precommit(1, 0, Some("ok:0")),
            precommit(3, 0, Some("ok:0")),
        ],
    );
    let out = feed(&mut n, 200, BftInput::Timeout(Timeout::Rebroadcast));
    let payloads = sent(&out);
    assert!(
        payloads
            .iter()
            .any(|p| matches!(p, Payload::Proposal { .. }))
    );
    assert!(
        payloads
            .iter()
            .filter(|p| matches!(
                p,
                Payload::Vote {
                    kind: VoteKind::Precommit,
                    ..
                }
            ))
            .count()
            >= 3
    );
    assert!(timers(&out).contains(&(400, Timeout::Rebroadcast)));
    // A node that missed everything decides from the relayed proof alone.
    let mut late = bft_node(1, 4, 1);
    feed(&mut late, 0, BftInput::Start);
    let proof: Vec<SignedMessage> = n.decision_proof().to_vec();
    msgs(&mut late, 201, proof);
    assert_eq!(late.decision(), Some(&(v("ok:0"), Round(0))));
}

#[test]
fn bft_13_equivocation_is_kept_as_evidence() {
    let mut n = bft_node(2, 4, 1);
    feed(&mut n, 0, BftInput::Start);
    let a = prevote(3, 0, Some("ok:0"));
    let b = prevote(3, 0, Some("ok:1"));
    let out = msgs(&mut n, 1, vec![a.clone(), b.clone(), a.clone()]);
    assert!(out.contains(&BftOutput::Evidence(Evidence::Equivocation {
        first: a,
        second: b
    })));
    assert_eq!(n.evidence().len(), 1);
    assert_eq!(n.counters().equivocation, 1);
    assert_eq!(n.counters().duplicate, 1);
}

#[test]
fn bft_14_bad_input_is_dropped_and_counted() {
    let mut n = bft_node(2, 4, 1);
    feed(&mut n, 0, BftInput::Start);
    let mut forged = prevote(3, 0, Some("ok:0"));
    forged.signature[5] ^= 0x40;
    let mut renamed = prevote(3, 0, Some("ok:0"));
    renamed.from = NodeId(1);
    let stranger = SignedMessage::sign(
        &signing_key(SEED, NodeId(9)),
        NodeId(9),
        Payload::Vote {
            kind: VoteKind::Prevote,
            round: Round(0),
            value: None,
        },
    );
    let out = msgs(
        &mut n,
        1,
        vec![
            forged,
            renamed,
            stranger,
            proposal(1, 0, "ok:1", None),
            prevote(1, 500, None),
        ],
    );
    assert!(out.is_empty(), "{out:?}");
    let c = n.counters();
    assert_eq!(c.bad_signature, 2);
    assert_eq!(c.unknown_sender, 1);
    assert_eq!(c.not_proposer, 1);
    assert_eq!(c.out_of_window, 1);
    assert_eq!(n.round(), Round(0));
}

// ---- Chandra–Toueg ----

fn ct_node(id: u16, n: usize) -> CtNode {
    CtNode::new(NodeId(id), CtConfig::new(n), v(&format!("ok:{id}")))
}

fn ct(node: &mut CtNode, input: CtInput) -> Vec<CtOutput> {
    let mut out = Vec::new();
    node.step(0, input, &mut out);
    out
}

fn ct_msg(from: u16, message: CtMessage) -> CtInput {
    CtInput::Message {
        from: NodeId(from),
        message,
    }
}

fn sends(out: &[CtOutput]) -> Vec<(NodeId, CtMessage)> {
    out.iter()
        .filter_map(|o| match o {
            CtOutput::Send { to, message } => Some((*to, message.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn ct_1_coordinator_rotates() {
    let c = CtConfig::new(3);
    assert_eq!(c.coordinator(Round(0)), NodeId(0));
    assert_eq!(c.coordinator(Round(4)), NodeId(1));
}

#[test]
fn ct_2_estimate_goes_to_the_coordinator() {
    let mut n = ct_node(1, 3);
    let out = ct(&mut n, CtInput::Start);
    assert_eq!(
        sends(&out),
        vec![(
            NodeId(0),
            CtMessage::Estimate {
                round: Round(0),
                estimate: v("ok:1"),
                ts: 0
            }
        )]
    );
}

#[test]
fn ct_3_coordinator_proposes_the_estimate_with_the_largest_ts() {
    let mut c = ct_node(0, 3);
    ct(&mut c, CtInput::Start);
    let out = ct(
        &mut c,
        ct_msg(
            2,
            CtMessage::Estimate {
                round: Round(0),
                estimate: v("ok:adopted"),
                ts: 3,
            },
        ),
    );
    let proposals: Vec<_> = sends(&out)
        .into_iter()
        .filter(|(_, m)| matches!(m, CtMessage::Propose { .. }))
        .collect();
    assert_eq!(proposals.len(), 2);
    assert!(proposals.iter().all(|(_, m)| *m
        == CtMessage::Propose {
            round: Round(0),
            estimate: v("ok:adopted")
        }));
}

#[test]
fn ct_4_participant_adopts_and_acks() {
    let mut n = ct_node(1, 3);
    ct(&mut n, CtInput::Start);
    let out = ct(
        &mut n,
        ct_msg(
            0,
            CtMessage::Propose {
                round: Round(0),
                estimate: v("ok:0"),
            },
        ),
    );
    assert!(sends(&out).contains(&(NodeId(0), CtMessage::Ack { round: Round(0) })));
    assert_eq!(n.estimate(), (&v("ok:0"), 1));
    assert_eq!(
        n.round(),
        Round(1),
        "CT-8: a participant moves on after replying"
    );
}

#[test]
fn ct_4_participant_nacks_a_suspected_coordinator_and_moves_on() {
    let mut n = ct_node(1, 3);
    ct(&mut n, CtInput::Start);
    let out = ct(&mut n, CtInput::Suspect(NodeId(0)));
    let s = sends(&out);
    assert!(s.contains(&(NodeId(0), CtMessage::Nack { round: Round(0) })));
    assert_eq!(n.round(), Round(1));
    assert_eq!(n.estimate(), (&v("ok:1"), 0), "a nack keeps the estimate");
}

#[test]
fn ct_5_majority_of_acks_decides_and_broadcasts() {
    let mut c = ct_node(0, 3);
    ct(&mut c, CtInput::Start);
    ct(
        &mut c,
        ct_msg(
            1,
            CtMessage::Estimate {
                round: Round(0),
                estimate: v("ok:1"),
                ts: 0,
            },
        ),
    );
    assert_eq!(c.decision(), None, "own ack alone is not a majority");
    let out = ct(&mut c, ct_msg(1, CtMessage::Ack { round: Round(0) }));
    assert!(out.contains(&CtOutput::Decide(v("ok:0"))));
    let decides = sends(&out)
        .into_iter()
        .filter(|(_, m)| matches!(m, CtMessage::Decide { .. }))
        .count();
    assert_eq!(decides, 2);
}

#[test]
fn ct_6_decide_is_relayed_then_delivered_once() {
    let mut n = ct_node(2, 3);
    ct(&mut n, CtInput::Start);
    let d = CtMessage::Decide { value: v("ok:0") };
    let out = ct(&mut n, ct_msg(0, d.clone()));
    assert_eq!(sends(&out).len(), 2, "relay to everyone else");
    assert!(out.contains(&CtOutput::Decide(v("ok:0"))));
    let out = ct(&mut n, ct_msg(1, d));
    assert!(out.is_empty());
    assert_eq!(n.counters().duplicate, 1);
}

#[test]
fn ct_7_retransmit_resends_recent_messages() {
    let mut n = ct_node(1, 3);
    ct(&mut n, CtInput::Start);
    let out = ct(&mut n, CtInput::Retransmit);
    assert!(
        sends(&out)
            .iter()
            .any(|(to, m)| *to == NodeId(0) && matches!(m, CtMessage::Estimate { .. }))
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, CtOutput::SetRetransmit { .. }))
    );
}

#[test]
fn ct_8_coordinator_moves_on_only_after_phase_4() {
    let mut c = ct_node(0, 3);
    ct(&mut c, CtInput::Start);
    ct(
        &mut c,
        ct_msg(
            1,
            CtMessage::Estimate {
                round: Round(0),
                estimate: v("ok:1"),
                ts: 0,
            },
        ),
    );
    // It has proposed and acked its own proposal (it has replied), but phase 4 is not over.
    assert_eq!(c.round(), Round(0));
    // A nack: a majority of replies (its own ack and the nack) but not of acks: give up.
    ct(&mut c, ct_msg(1, CtMessage::Nack { round: Round(0) }));
    assert_eq!(c.decision(), None);
    assert_eq!(
        c.round(),
        Round(1),
        "phase 4 over: the coordinator moves on"
    );
}

#[test]
fn ct_9_a_message_of_a_later_round_makes_the_node_enter_it() {
    let mut n = ct_node(1, 3);
    ct(&mut n, CtInput::Start);
    assert_eq!(n.round(), Round(0));
    // Round 3's coordinator is node 0 (CT-1): its proposal reaches node 1, still in round 0.
    let out = ct(
        &mut n,
        ct_msg(
            0,
            CtMessage::Propose {
                round: Round(3),
                estimate: v("ok:0"),
            },
        ),
    );
    assert!(
        sends(&out).contains(&(
            NodeId(0),
            CtMessage::Estimate {
                round: Round(3),
                estimate: v("ok:1"),
                ts: 0
            }
        )),
        "it entered round 3 and sent its estimate there: {out:?}"
    );
    assert!(n.round() >= Round(3), "{:?}", n.round());
}

#[test]
fn ct_bad_input_is_dropped_and_counted() {
    let mut n = ct_node(1, 3);
    ct(&mut n, CtInput::Start);
    ct(&mut n, ct_msg(7, CtMessage::Ack { round: Round(0) }));
    ct(
        &mut n,
        ct_msg(
            2,
            CtMessage::Propose {
                round: Round(0),
                estimate: v("ok:2"),
            },
        ),
    );
    ct(
        &mut n,
        ct_msg(
            2,
            CtMessage::Ack {
                round: Round(10_000),
            },
        ),
    );
    let c = n.counters();
    assert_eq!(c.unknown_sender, 1);
    assert_eq!(c.misdirected, 1);
    assert_eq!(c.out_of_window, 1);
}

// ---- Failure detectors ----

fn fd(d: &mut dyn FailureDetector, now: u64, input: DetectorInput) -> Vec<DetectorOutput> {
    let mut out = Vec::new();
    d.step(now, input, &mut out);
    out
}

#[test]
fn fd_1_silence_longer_than_the_timeout_is_suspected() {
    let mut d = EventuallyPerfect::new(EventuallyPerfectConfig::default(), [NodeId(1)], 0);
    assert!(fd(&mut d, 100, DetectorInput::Tick).is_empty());
    assert_eq!(
        fd(&mut d, 101, DetectorInput::Tick),
        vec![DetectorOutput::Suspect(NodeId(1))]
    );
    assert!(fd(&mut d, 102, DetectorInput::Tick).is_empty(), "once");
}

#[test]
fn fd_2_false_suspicion_restores_trust_and_grows_the_timeout() {
    let cfg = EventuallyPerfectConfig {
        timeout_initial_ms: 100,
        increment_ms: 50,
        timeout_max_ms: 180,
    };
    let mut d = EventuallyPerfect::new(cfg, [NodeId(1)], 0);
    fd(&mut d, 101, DetectorInput::Tick);
    assert_eq!(
        fd(&mut d, 120, DetectorInput::Heartbeat(NodeId(1))),
        vec![DetectorOutput::Trust(NodeId(1))]
    );
    assert_eq!(d.timeout_ms(NodeId(1)), Some(150));
    assert!(
        fd(&mut d, 270, DetectorInput::Tick).is_empty(),
        "more patient now"
    );
    fd(&mut d, 271, DetectorInput::Tick);
    fd(&mut d, 280, DetectorInput::Heartbeat(NodeId(1)));
    assert_eq!(d.timeout_ms(NodeId(1)), Some(180), "capped");
    assert_eq!(d.counters().false_suspicions, 2);
}

#[test]
fn fd_4_phi_grows_with_silence_and_suspects_above_the_threshold() {
    let cfg = PhiAccrualConfig {
        threshold: 3.0,
        ..PhiAccrualConfig::default()
    };
    let mut d = PhiAccrual::new(cfg, [NodeId(1)], 0);
    for k in 1..=20 {
        fd(&mut d, k * 100, DetectorInput::Heartbeat(NodeId(1)));
    }
    let low = d.phi(NodeId(1), 2_050).unwrap();
    let high = d.phi(NodeId(1), 2_200).unwrap();
    assert!(low < 1.0 && high > 3.0, "{low} {high}");
    assert!(fd(&mut d, 2_050, DetectorInput::Tick).is_empty());
    assert_eq!(
        fd(&mut d, 2_200, DetectorInput::Tick),
        vec![DetectorOutput::Suspect(NodeId(1))]
    );
}

#[test]
fn fd_3_phi_window_forgets_old_intervals() {
    let cfg = PhiAccrualConfig {
        window_max: 5,
        ..PhiAccrualConfig::default()
    };
    let mut d = PhiAccrual::new(cfg, [NodeId(1)], 0);
    // Slow heartbeats first, then fast ones fill the window: 300 ms of silence becomes
    // suspicious once the slow intervals are forgotten.
    let mut t = 0;
    for _ in 0..5 {
        t += 1_000;
        fd(&mut d, t, DetectorInput::Heartbeat(NodeId(1)));
    }
    let before = d.phi(NodeId(1), t + 300).unwrap();
    for _ in 0..6 {
        t += 100;
        fd(&mut d, t, DetectorInput::Heartbeat(NodeId(1)));
    }
    let after = d.phi(NodeId(1), t + 300).unwrap();
    assert!(before < 0.1 && after > 8.0, "{before} {after}");
}

#[test]
fn fd_5_heartbeat_from_a_suspected_peer_restores_trust() {
    let mut d = PhiAccrual::new(PhiAccrualConfig::default(), [NodeId(1)], 0);
    fd(&mut d, 10_000, DetectorInput::Tick);
    assert!(d.is_suspected(NodeId(1)));
    assert_eq!(
        fd(&mut d, 10_001, DetectorInput::Heartbeat(NodeId(1))),
        vec![DetectorOutput::Trust(NodeId(1))]
    );
    assert!(!d.is_suspected(NodeId(1)));
}

#[test]
fn fd_6_heartbeats_from_unknown_peers_are_counted_and_dropped() {
    let mut a = EventuallyPerfect::new(EventuallyPerfectConfig::default(), [NodeId(1)], 0);
    let mut b = PhiAccrual::new(PhiAccrualConfig::default(), [NodeId(1)], 0);
    assert!(fd(&mut a, 1, DetectorInput::Heartbeat(NodeId(7))).is_empty());
    assert!(fd(&mut b, 1, DetectorInput::Heartbeat(NodeId(7))).is_empty());
    assert_eq!(a.counters().unknown_peer, 1);
    assert_eq!(b.counters().unknown_peer, 1);
}

// ---- BFT: the sans-IO seams of issue 12 (validity, persistence, heights) ----

#[test]
fn bft_15_validity_is_asked_once_and_the_prevote_waits_for_the_verdict() {
    let mut n = bft_node(1, 4, 1);
    let mut out = Vec::new();
    n.step(0, BftInput::Start, &mut out);
    out.clear();
    n.step(5, BftInput::Message(proposal(0, 0, "ok:0", None)), &mut out);
    assert_eq!(out, vec![BftOutput::Validate(v("ok:0"))]);
    // A repeat asks nothing more, and nothing is voted before the verdict.
    out.clear();
    n.step(6, BftInput::Message(prevote(2, 0, Some("ok:0"))), &mut out);
    assert!(!out.iter().any(|o| matches!(o, BftOutput::Validate(_))));
    assert_eq!(sent_vote(&out, VoteKind::Prevote), None);
    // A verdict nobody asked for is ignored.
    out.clear();
    n.step(
        7,
        BftInput::Validated {
            value: v("ok:9"),
            valid: true,
        },
        &mut out,
    );
    assert!(out.is_empty());
    n.step(
        8,
        BftInput::Validated {
            value: v("ok:0"),
            valid: false,
        },
        &mut out,
    );
    assert_eq!(sent_vote(&out, VoteKind::Prevote), Some(None));
    assert_eq!(n.counters().invalid_value, 1);
}

#[test]
fn bft_15_an_answer_given_at_once_gives_the_synchronous_outputs() {
    // step_with answers each Validate in place: the node prevotes the valid proposal in the
    // same step that brought it.
    let mut n = bft_node(1, 4, 1);
    feed(&mut n, 0, BftInput::Start);
    let out = msgs(&mut n, 5, vec![proposal(0, 0, "ok:0", None)]);
    assert_eq!(sent_vote(&out, VoteKind::Prevote), Some(Some(v("ok:0"))));
}

#[test]
fn bft_16_every_signed_message_is_persisted_before_it_is_sent() {
    let mut p = bft_node(0, 4, 1);
    let out = feed(&mut p, 0, BftInput::Start);
    let persist = out
        .iter()
        .position(|o| matches!(o, BftOutput::Persist(_)))
        .expect("the proposal is persisted");
    let send = out
        .iter()
        .position(|o| matches!(o, BftOutput::Broadcast(_)))
        .expect("and sent");
    assert!(persist < send);
    match (&out[persist], &out[send]) {
        (BftOutput::Persist(a), BftOutput::Broadcast(b)) => assert_eq!(a, b),
        _ => unreachable!(),
    }
}

fn persisted(out: &[BftOutput]) -> Vec<SignedMessage> {
    out.iter()
        .filter_map(|o| match o {
            BftOutput::Persist(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn restored(id: u16, own: &[SignedMessage]) -> BftNode {
    let keys = (0..4u16)
        .map(|i| signing_key(SEED, NodeId(i)).verifying_key())
        .collect();
    BftNode::restore(
        NodeId(id),
        BftConfig::new(4, 1),
        signing_key(SEED, NodeId(id)),
        keys,
        v(&format!("ok:{id}")),
        own,
    )
}

#[test]
fn bft_16_a_restored_node_keeps_its_lock_and_never_signs_a_second_vote() {
    // Node 2 locks on ok:0 in round 0, is killed, and comes back from its records.
    let mut n = bft_node(2, 4, 1);
    let mut records = persisted(&feed(&mut n, 0, BftInput::Start));
    records.extend(persisted(&msgs(
        &mut n,
        10,
        vec![
            proposal(0, 0, "ok:0", None),
            prevote(0, 0, Some("ok:0")),
            prevote(1, 0, Some("ok:0")),
        ],
    )));
    assert_eq!(records.len(), 2, "its prevote and its precommit");
    let mut r = restored(2, &records);
    assert_eq!(r.locked(), Some(&(v("ok:0"), Round(0))));
    assert_eq!(r.step_kind(), Step::Precommit);
    let out = feed(&mut r, 100, BftInput::Start);
    // It re-sends what it signed, and signs nothing new.
    assert!(persisted(&out).is_empty());
    let resent: std::collections::BTreeSet<SignedMessage> = out
        .iter()
        .filter_map(|o| match o {
            BftOutput::Broadcast(m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(resent, records.iter().cloned().collect());
    // Round 0 ends without a decision; round 1's proposal of another value gets a nil
    // prevote: the lock survived the restart.
    msgs(
        &mut r,
        110,
        vec![
            precommit(0, 0, None),
            precommit(1, 0, None),
            precommit(3, 0, None),
        ],
    );
    feed(
        &mut r,
        10_000,
        BftInput::Timeout(Timeout::Precommit(Round(0))),
    );
    let out = msgs(&mut r, 10_010, vec![proposal(1, 1, "ok:1", None)]);
    assert_eq!(r.round(), Round(1));
    assert_eq!(sent_vote(&out, VoteKind::Prevote), Some(None));
}

#[test]
fn bft_16_a_restored_proposer_resends_its_proposal_instead_of_a_new_one() {
    let mut p = bft_node(0, 4, 1);
    let records = persisted(&feed(&mut p, 0, BftInput::Start));
    // Restarted with another input: it must not propose that one in round 0.
    let keys = (0..4u16)
        .map(|i| signing_key(SEED, NodeId(i)).verifying_key())
        .collect();
    let mut r = BftNode::restore(
        NodeId(0),
        BftConfig::new(4, 1),
        signing_key(SEED, NodeId(0)),
        keys,
        v("ok:other"),
        &records,
    );
    let out = feed(&mut r, 50, BftInput::Start);
    assert!(persisted(&out).is_empty());
    assert!(sent(&out).contains(&records[0].payload));
    assert!(!sent(&out).iter().any(|p| matches!(
        p,
        Payload::Proposal { value, .. } if *value == v("ok:other")
    )));
}

#[test]
fn bft_14_messages_of_another_height_or_chain_are_not_counted() {
    let mut n = bft_node(1, 4, 1);
    feed(&mut n, 0, BftInput::Start);
    let key = signing_key(SEED, NodeId(0));
    let payload = Payload::Proposal {
        round: Round(0),
        value: v("ok:0"),
        valid_round: None,
    };
    let later = SignedMessage::sign_in(&key, &[0; 32], 1, NodeId(0), payload.clone());
    let elsewhere = SignedMessage::sign_in(&key, &[7; 32], 0, NodeId(0), payload);
    let out = msgs(&mut n, 5, vec![later, elsewhere]);
    assert_eq!(sent_vote(&out, VoteKind::Prevote), None);
    assert_eq!(n.counters().other_height, 1);
    assert_eq!(n.counters().bad_signature, 1);
}

#[test]
fn bft_1_consecutive_heights_start_with_consecutive_proposers() {
    let c = BftConfig::new(4, 1);
    assert_eq!(c.proposer(Round(0)), NodeId(0));
    assert_eq!(c.at_height(1).proposer(Round(0)), NodeId(1));
    assert_eq!(c.at_height(5).proposer(Round(3)), NodeId(0));
}
