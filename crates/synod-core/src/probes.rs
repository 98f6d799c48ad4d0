//! Probes: the inputs on which readings are compared.
//!
//! The pool is the agents' own edge cases and contract calls, plus seeded, type-directed
//! variants of every probe argument two levels deep (variants of the argument, and variants of
//! its elements or of a first variant), deduplicated and capped. A wrong program that agrees
//! with the right one on every probe joins its class, so the pool is generous; before a class
//! is decided, [`differential_calls`] draws many more inputs to split classes whose programs
//! differ.

use crate::model::Call;
use crate::rng::SeededRng;
use crate::value::Value;
use std::collections::BTreeSet;

/// Limits on the probe pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeLimits {
    /// Most probes in the pool (agents' own probes first, then variants).
    pub probes_max: usize,
    /// Most variants drawn per argument of each probe.
    pub variants_per_arg: usize,
    /// Largest argument (in value nodes) a variant may have.
    pub value_size_max: usize,
}

impl Default for ProbeLimits {
    fn default() -> Self {
        ProbeLimits {
            probes_max: 400,
            variants_per_arg: 12,
            value_size_max: 256,
        }
    }
}

/// Builds the pool: `own` (the agents' probes and contract calls, in agent order) first, then
/// variants, deduplicated, capped at `limits.probes_max`. Deterministic in `seed`.
pub fn pool(own: &[Call], seed: u64, limits: &ProbeLimits) -> Vec<Call> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for c in own {
        if out.len() >= limits.probes_max {
            return out;
        }
        if seen.insert(c.clone()) {
            out.push(c.clone());
        }
    }
    let mut rng = SeededRng::derive(seed, "probe-variants");
    let mut variants = Vec::new();
    let base: Vec<Call> = out.clone();
    for call in &base {
        for (i, arg) in call.args.iter().enumerate() {
            for v in variants_of(arg, &mut rng, limits.variants_per_arg, 2) {
                if v.size() > limits.value_size_max {
                    continue;
                }
                let mut c = call.clone();
                c.args[i] = v;
                variants.push(c);
            }
        }
    }
    // Take variants in a seeded order so a cap does not favour the first agent's probes.
    shuffle(&mut variants, &mut rng);
    for c in variants {
        if out.len() >= limits.probes_max {
            break;
        }
        if seen.insert(c.clone()) {
            out.push(c);
        }
    }
    out
}

/// `count` extra calls for differential testing: random chains of one to three mutations of
/// one or more arguments of the pool's calls, not already in the pool.
pub fn differential_calls(
    pool: &[Call],
    seed: u64,
    count: usize,
    limits: &ProbeLimits,
) -> Vec<Call> {
    let mut rng = SeededRng::derive(seed, "differential");
    let mut seen: BTreeSet<Call> = pool.iter().cloned().collect();
    let mut out = Vec::new();
    let with_args: Vec<&Call> = pool.iter().filter(|c| !c.args.is_empty()).collect();
    if with_args.is_empty() {
        return out;
    }
    let mut attempts = 0;
    while out.len() < count && attempts < count * 8 {
        attempts += 1;
        let mut c = with_args[rng.index(with_args.len())].clone();
        let k = rng.index(c.args.len());
        for (i, arg) in c.args.iter_mut().enumerate() {
            if i == k || rng.chance(0.3) {
                let steps = 1 + rng.index(3);
                for _ in 0..steps {
                    let vs = variants_of(arg, &mut rng, 6, 1);
                    if !vs.is_empty() {
                        *arg = vs[rng.index(vs.len())].clone();
                    }
                }
            }
        }
        if c.args.iter().any(|a| a.size() > limits.value_size_max) {
            continue;
        }
        if seen.insert(c.clone()) {
            out.push(c);
        }
    }
    out
}

fn shuffle<T>(items: &mut [T], rng: &mut SeededRng) {
    for i in (1..items.len()).rev() {
        let j = rng.index(i + 1);
        items.swap(i, j);
    }
}

/// Type-directed variants of a value: up to `max` of them, `depth` levels deep.
pub fn variants_of(v: &Value, rng: &mut SeededRng, max: usize, depth: u32) -> Vec<Value> {
    if depth == 0 || max == 0 {
        return Vec::new();
    }
    let mut all = first_level(v, rng);
    if depth > 1 {
        // Second level: elements of containers, and a variant of a variant.
        match v {
            Value::List(items) | Value::Tuple(items) if !items.is_empty() => {
                let i = rng.index(items.len());
                for e in variants_of(&items[i], rng, 3, depth - 1) {
                    let mut items2 = items.clone();
                    items2[i] = e;
                    all.push(rebuild(v, items2));
                }
            }
            Value::Dict(entries) if !entries.is_empty() => {
                let i = rng.index(entries.len());
                for e in variants_of(&entries[i].1, rng, 3, depth - 1) {
                    let mut es = entries.clone();
                    es[i].1 = e;
                    all.push(Value::Dict(es));
                }
            }
            _ => {}
        }
        if !all.is_empty() {
            let pick = all[rng.index(all.len())].clone();
            all.extend(first_level(&pick, rng).into_iter().take(3));
        }
    }
    let mut seen = BTreeSet::new();
    seen.insert(v.clone());
    let mut out: Vec<Value> = all.into_iter().filter(|x| seen.insert(x.clone())).collect();
    if out.len() > max {
        shuffle(&mut out, rng);
        out.truncate(max);
    }
    out
}

fn rebuild(like: &Value, items: Vec<Value>) -> Value {
    match like {
        Value::Tuple(_) => Value::Tuple(items),
        _ => Value::List(items),
    }
}

/// Characters mixed into string variants: separators, signs, digits, letters, a non-ASCII
/// digit and a non-ASCII letter.
const STRING_SPICE: &[char] = &[
    ' ', '\t', '-', '+', '.', '0', '1', '9', 'a', 'Z', '_', ',', '(', 'é', '٣',
];

fn first_level(v: &Value, rng: &mut SeededRng) -> Vec<Value> {
    match v {
        Value::None => vec![],
        Value::Bool(b) => vec![Value::Bool(!b)],
        Value::Int(n) => {
            let n = *n;
            let mut out: Vec<i64> = vec![0, 1, -1, 2];
            out.extend(
                [
                    n.checked_neg(),
                    n.checked_add(1),
                    n.checked_sub(1),
                    n.checked_mul(2),
                    Some(n / 2),
                    n.checked_mul(1000),
                    Some(rng.range_i64(-100, 100)),
                    Some(rng.range_i64(-(1 << 40), 1 << 40)),
                ]
                .into_iter()
                .flatten(),
            );
            out.into_iter().map(Value::Int).collect()
        }
        Value::Float(_) => {
            let x = v.as_f64().unwrap_or(0.0);
            let r = rng.range_i64(-50, 50) as f64;
            [
                0.0,
                -x,
                x + 1.0,
                x - 1.0,
                x * 2.0,
                x / 2.0,
                x.floor() + 0.5,
                -(x.floor() + 0.5),
                x + 0.25,
                r + 0.5,
                r,
                1e300,
                1e-300,
                0.49999999999999994,
            ]
            .into_iter()
            .map(Value::float)
            .collect()
        }
        Value::Str(s) => string_variants(s, rng)
            .into_iter()
            .map(Value::Str)
            .collect(),
        Value::List(items) | Value::Tuple(items) => {
            let mut out = vec![rebuild(v, vec![])];
            if !items.is_empty() {
                let mut rev = items.clone();
                rev.reverse();
                out.push(rebuild(v, rev));
                out.push(rebuild(v, items[1..].to_vec()));
                out.push(rebuild(v, items[..items.len() - 1].to_vec()));
                out.push(rebuild(v, vec![items[0].clone()]));
                let mut dup = items.clone();
                dup.push(items[rng.index(items.len())].clone());
                out.push(rebuild(v, dup));
                let mut sorted = items.clone();
                sorted.sort();
                out.push(rebuild(v, sorted));
            }
            out
        }
        Value::Dict(entries) => {
            let mut out = vec![Value::Dict(vec![])];
            if !entries.is_empty() {
                out.push(Value::Dict(entries[1..].to_vec()));
                out.push(Value::Dict(entries[..entries.len() - 1].to_vec()));
            }
            out
        }
    }
}

fn string_variants(s: &str, rng: &mut SeededRng) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = vec![
        String::new(),
        format!("{s}{s}"),
        format!("{s} {s}"),
        s.to_uppercase(),
        s.to_lowercase(),
        format!(" {s} "),
        s.split_whitespace().collect::<Vec<_>>().join("  "),
        s.replace(' ', ""),
        chars.iter().rev().collect(),
    ];
    if !chars.is_empty() {
        let n = chars.len();
        out.push(chars[1..].iter().collect());
        out.push(chars[..n - 1].iter().collect());
        out.push(chars[rng.index(n)].to_string());
        // Insert, delete and replace one character at a seeded position.
        let i = rng.index(n + 1);
        let c = STRING_SPICE[rng.index(STRING_SPICE.len())];
        let mut ins = chars.clone();
        ins.insert(i, c);
        out.push(ins.into_iter().collect());
        let j = rng.index(n);
        let mut del = chars.clone();
        del.remove(j);
        out.push(del.into_iter().collect());
        let mut rep = chars.clone();
        rep[j] = STRING_SPICE[rng.index(STRING_SPICE.len())];
        out.push(rep.into_iter().collect());
        // Keep one whitespace-separated word, or drop one.
        let words: Vec<&str> = s.split_whitespace().collect();
        if words.len() > 1 {
            let w = rng.index(words.len());
            out.push(words[w].to_string());
            let rest: Vec<&str> = words
                .iter()
                .enumerate()
                .filter(|(k, _)| *k != w)
                .map(|(_, x)| *x)
                .collect();
            out.push(rest.join(" "));
        }
    } else {
        out.push(STRING_SPICE[rng.index(STRING_SPICE.len())].to_string());
        out.push("a".into());
    }
    out.retain(|x| x.len() <= 4096);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(f: &str, args: Vec<Value>) -> Call {
        Call {
            function: f.into(),
            args,
        }
    }

    #[test]
    fn pool_keeps_own_probes_first_dedups_and_caps() {
        let own = vec![
            call("f", vec![Value::Str("3 4 +".into())]),
            call("f", vec![Value::Str("3 4 +".into())]),
            call("g", vec![Value::Int(5)]),
        ];
        let limits = ProbeLimits {
            probes_max: 20,
            ..ProbeLimits::default()
        };
        let p = pool(&own, 1, &limits);
        assert_eq!(p[0], own[0]);
        assert_eq!(p[1], own[2]);
        assert_eq!(p.len(), 20);
        let unique: BTreeSet<_> = p.iter().collect();
        assert_eq!(unique.len(), p.len());
        assert!(p.contains(&call("g", vec![Value::Int(0)])));
        assert!(p.contains(&call("f", vec![Value::Str(String::new())])));
    }

    #[test]
    fn pool_is_deterministic_in_the_seed() {
        let own = vec![call(
            "f",
            vec![Value::List(vec![Value::Int(1), Value::Str("ab".into())])],
        )];
        let l = ProbeLimits::default();
        assert_eq!(pool(&own, 9, &l), pool(&own, 9, &l));
        assert_ne!(pool(&own, 9, &l), pool(&own, 10, &l));
    }

    #[test]
    fn variants_reach_two_levels_into_containers() {
        let v = Value::List(vec![Value::Int(7)]);
        let mut found_inner = false;
        for seed in 0..20 {
            let mut rng = SeededRng::new(seed);
            for x in variants_of(&v, &mut rng, 100, 2) {
                if let Value::List(items) = &x
                    && items.len() == 1
                    && items[0] != Value::Int(7)
                {
                    found_inner = true;
                }
            }
        }
        assert!(found_inner);
    }

    #[test]
    fn differential_calls_are_new_and_bounded() {
        let p = vec![call("f", vec![Value::Int(3), Value::Str("x".into())])];
        let d = differential_calls(&p, 5, 200, &ProbeLimits::default());
        assert!(d.len() > 100);
        assert!(!d.contains(&p[0]));
        assert!(d.iter().all(|c| c.function == "f" && c.args.len() == 2));
    }
}
