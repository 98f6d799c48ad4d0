//! The domain of a round (PL-19): which inputs the readings' examples admit.
//!
//! Real agents that read a prompt the same way still write programs that differ on inputs the
//! prompt never meant — a count of zero, a negative length, an empty list where every example
//! had items. Such a difference says nothing about which reading is meant, and splitting correct
//! programs on it costs a decision. So the tally compares readings on the inputs *in the
//! domain*: those shaped like an example some reading, the prompt or the user wrote.
//!
//! The shape of a value is a set of **facets**, one per position in it: its type, with the sign
//! of a number (negative, zero, positive) and whether a string or container is empty; a
//! container's elements at the position `[]` (a tuple's at `(i)`, a dict's keys and values at
//! `{k}` and `{v}`). An argument is admitted when every facet it has is a facet some witness
//! has at the same argument of the same function: `[3, 5]` admits `[7]` and `[1, 2, 9]`, not
//! `[]`, `[0]` or `["a"]`; `5` admits `1000`, not `0` or `-1`; zero lies between a negative
//! and a positive witness (`-2` and `3` admit `0`). A call is in the domain when its
//! function was called by a witness with the same number of arguments and each argument is
//! admitted. A witness is always in its own domain.
//!
//! The witnesses are the union of every valid reading's example calls and probes and the
//! checked examples (the prompt's and the clarified ones), so an agent can only widen the
//! domain, never narrow it: a faulty agent that writes extra examples can make correct readings
//! split (which it could already do by voting apart), never make differing ones agree where
//! someone's example reaches.

use crate::model::Call;
use crate::value::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The inputs a set of witness calls admits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Domain {
    /// Facets seen at each (function, arity, argument index).
    facets: BTreeMap<(String, usize, usize), BTreeSet<String>>,
}

impl Domain {
    /// The domain the witnesses admit.
    pub fn of<'a>(witnesses: impl IntoIterator<Item = &'a Call>) -> Domain {
        let mut d = Domain::default();
        for c in witnesses {
            let arity = c.args.len();
            for (i, a) in c.args.iter().enumerate() {
                let set = d.facets.entry((c.function.clone(), arity, i)).or_default();
                facets(a, &mut String::new(), set);
            }
            if arity == 0 {
                d.facets
                    .entry((c.function.clone(), 0, 0))
                    .or_default()
                    .insert("()".into());
            }
        }
        // Zero lies between a negative and a positive witness.
        for set in d.facets.values_mut() {
            let between: Vec<String> = set
                .iter()
                .filter_map(|f| f.strip_suffix('-'))
                .filter(|p| set.contains(&format!("{p}+")))
                .map(|p| format!("{p}0"))
                .collect();
            set.extend(between);
        }
        d
    }

    /// Whether `call` is in the domain.
    pub fn admits(&self, call: &Call) -> bool {
        let arity = call.args.len();
        if arity == 0 {
            return self.facets.contains_key(&(call.function.clone(), 0, 0));
        }
        call.args.iter().enumerate().all(|(i, a)| {
            let Some(seen) = self.facets.get(&(call.function.clone(), arity, i)) else {
                return false;
            };
            let mut mine = BTreeSet::new();
            facets(a, &mut String::new(), &mut mine);
            mine.is_subset(seen)
        })
    }

    /// For each call, whether it is in the domain.
    pub fn mask(&self, calls: &[Call]) -> Vec<bool> {
        calls.iter().map(|c| self.admits(c)).collect()
    }
}

fn sign(x: f64) -> &'static str {
    if x < 0.0 {
        "-"
    } else if x == 0.0 {
        "0"
    } else {
        "+"
    }
}

/// Adds the facets of `v`, at position `path`, to `out`.
fn facets(v: &Value, path: &mut String, out: &mut BTreeSet<String>) {
    fn nested(out: &mut BTreeSet<String>, path: &mut String, step: &str, v: &Value) {
        let len = path.len();
        path.push_str(step);
        facets(v, path, out);
        path.truncate(len);
    }
    let here = |kind: &str| format!("{path}:{kind}");
    match v {
        Value::None => {
            out.insert(here("none"));
        }
        Value::Bool(_) => {
            out.insert(here("bool"));
        }
        Value::Int(i) => {
            out.insert(here(&format!("int{}", sign(*i as f64))));
        }
        Value::Float(_) => {
            let x = v.as_f64().unwrap_or(0.0);
            out.insert(here(&format!("float{}", sign(x))));
        }
        Value::Str(s) => {
            out.insert(here(if s.is_empty() { "str0" } else { "str" }));
        }
        Value::List(items) => {
            out.insert(here(if items.is_empty() { "list0" } else { "list" }));
            for e in items {
                nested(out, path, "[]", e);
            }
        }
        Value::Tuple(items) => {
            out.insert(here(&format!("tuple{}", items.len())));
            for (i, e) in items.iter().enumerate() {
                nested(out, path, &format!("({i})"), e);
            }
        }
        Value::Dict(entries) => {
            out.insert(here(if entries.is_empty() { "dict0" } else { "dict" }));
            for (k, e) in entries {
                nested(out, path, "{k}", k);
                nested(out, path, "{v}", e);
            }
        }
    }
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

    fn ints(xs: &[i64]) -> Value {
        Value::List(xs.iter().map(|x| Value::Int(*x)).collect())
    }

    #[test]
    fn a_number_keeps_its_sign_and_a_container_its_emptiness_and_element_types() {
        let d = Domain::of(&[call("f", vec![Value::Int(5), ints(&[3, 5])])]);
        assert!(d.admits(&call("f", vec![Value::Int(1000), ints(&[7])])));
        assert!(d.admits(&call("f", vec![Value::Int(1), ints(&[1, 2, 9])])));
        for out in [
            call("f", vec![Value::Int(0), ints(&[7])]),
            call("f", vec![Value::Int(-1), ints(&[7])]),
            call("f", vec![Value::Int(1), ints(&[])]),
            call("f", vec![Value::Int(1), ints(&[0])]),
            call(
                "f",
                vec![Value::Int(1), Value::List(vec![Value::Str("a".into())])],
            ),
            call("f", vec![Value::Bool(true), ints(&[7])]),
            call("f", vec![Value::Int(1)]),
            call("g", vec![Value::Int(1), ints(&[7])]),
        ] {
            assert!(!d.admits(&out), "{out} should be outside the domain");
        }
    }

    #[test]
    fn every_witness_widens_the_domain_and_is_in_it() {
        let ws = [
            call("f", vec![Value::Int(5)]),
            call("f", vec![Value::Int(0)]),
            call("g", vec![Value::Str("".into())]),
            call("h", vec![]),
        ];
        let d = Domain::of(&ws);
        assert!(ws.iter().all(|w| d.admits(w)));
        assert!(d.admits(&call("f", vec![Value::Int(9)])));
        assert!(!d.admits(&call("f", vec![Value::Int(-9)])));
        assert!(!d.admits(&call("g", vec![Value::Str("x".into())])));
        let signs = Domain::of(&[call("f", vec![ints(&[-2, 3])])]);
        assert!(signs.admits(&call("f", vec![ints(&[0, -5])])));
        let float_signs = Domain::of(&[
            call("f", vec![Value::float(-0.5)]),
            call("f", vec![Value::float(2.0)]),
        ]);
        assert!(float_signs.admits(&call("f", vec![Value::float(0.0)])));
        assert!(!float_signs.admits(&call("f", vec![Value::Int(0)])));
    }

    #[test]
    fn tuples_dicts_and_floats_have_their_own_facets() {
        let d = Domain::of(&[call(
            "f",
            vec![
                Value::Tuple(vec![Value::Int(1), Value::Str("a".into())]),
                Value::Dict(vec![(Value::Str("k".into()), Value::float(2.5))]),
            ],
        )]);
        let ok = call(
            "f",
            vec![
                Value::Tuple(vec![Value::Int(9), Value::Str("zz".into())]),
                Value::Dict(vec![
                    (Value::Str("a".into()), Value::float(0.5)),
                    (Value::Str("b".into()), Value::float(7.0)),
                ]),
            ],
        );
        assert!(d.admits(&ok));
        let swapped = call(
            "f",
            vec![
                Value::Tuple(vec![Value::Str("zz".into()), Value::Int(9)]),
                Value::Dict(vec![]),
            ],
        );
        assert!(!d.admits(&swapped));
        let negative = call(
            "f",
            vec![
                Value::Tuple(vec![Value::Int(9), Value::Str("zz".into())]),
                Value::Dict(vec![(Value::Str("a".into()), Value::float(-0.5))]),
            ],
        );
        assert!(!d.admits(&negative));
    }
}
