//! The command line's numbers: every numeric option is read by [`whole`] or [`fraction`], so
//! a number that does not parse or falls outside its range is refused by clap (exit 2, one
//! `error:` line) with the range it must be in, and nothing later sees it.

use std::fmt::Display;
use std::str::FromStr;

/// A clap value parser for a whole number from `lo` to `hi`.
pub fn whole<T>(lo: T, hi: T) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync
where
    T: FromStr + PartialOrd + Display + Copy + Send + Sync + 'static,
{
    move |s: &str| match s.trim().parse::<T>() {
        Ok(v) if lo <= v && v <= hi => Ok(v),
        _ => Err(format!("expected a whole number from {lo} to {hi}")),
    }
}

/// A clap value parser for a finite number from `lo` to `hi`.
pub fn fraction(lo: f64, hi: f64) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync {
    move |s: &str| match s.trim().parse::<f64>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        _ => Err(format!("expected a number from {lo} to {hi}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// A parser's type is inferred from its bounds, not from the field: `whole(1, 256)` for a
    /// `usize` field parses an `i32` and clap panics when the field is read. Every numeric
    /// option of every command, given, must reach its field.
    #[test]
    fn every_numeric_option_parses_into_its_field() {
        let commands: &[&[&str]] = &[
            &[
                "build",
                "p",
                "--fault-budget",
                "1",
                "--seed",
                "2",
                "--max-tokens-total",
                "3",
                "--ahead-by",
                "4",
                "--max-interpret-calls",
                "5",
            ],
            &[
                "eval",
                "--suite",
                "s",
                "--suite-kind",
                "mbpp",
                "--slots",
                "2",
                "--tasks",
                "3",
                "--seed",
                "4",
                "--jobs",
                "5",
                "--resamples",
                "6",
            ],
            &[
                "sim",
                "--protocol",
                "bft",
                "--nodes",
                "4",
                "--faulty",
                "1",
                "--seed",
                "7",
                "--jobs",
                "2",
            ],
            &["lab", "generals", "--n", "4", "--m", "1"],
            &[
                "lab",
                "flp",
                "--steps",
                "3",
                "--stabilize-at",
                "1",
                "--benor-n",
                "5",
                "--runs",
                "6",
                "--rounds-max",
                "7",
                "--seed",
                "8",
            ],
            &[
                "lab", "scaling", "--p", "0.1", "--rho", "0.2", "--n-max", "9", "--trials", "10",
                "--seed", "11",
            ],
        ];
        for args in commands {
            let argv = std::iter::once("synod").chain(args.iter().copied());
            if let Err(e) = crate::Cli::try_parse_from(argv) {
                panic!("{args:?}: {e}");
            }
        }
        // Defaults go through the parsers too.
        for args in [
            &["eval", "--suite", "s", "--suite-kind", "mbpp"][..],
            &["lab", "flp"],
        ] {
            let argv = std::iter::once("synod").chain(args.iter().copied());
            assert!(crate::Cli::try_parse_from(argv).is_ok(), "{args:?}");
        }
    }

    #[test]
    fn numbers_out_of_range_name_the_range() {
        let p = whole(1u32, 64);
        assert_eq!(p("64"), Ok(64));
        for bad in ["0", "65", "-1", "1.5", "", "x", "99999999999999999999999"] {
            assert_eq!(
                p(bad),
                Err("expected a whole number from 1 to 64".into()),
                "{bad}"
            );
        }
        let all = whole(0u64, u64::MAX);
        assert_eq!(all("18446744073709551615"), Ok(u64::MAX));
        assert!(
            all("18446744073709551616")
                .unwrap_err()
                .contains("from 0 to 18446744073709551615")
        );
        let f = fraction(0.0, 1.0);
        assert_eq!(f("0.25"), Ok(0.25));
        for bad in ["NaN", "inf", "-0.1", "1.01", "x"] {
            assert_eq!(f(bad), Err("expected a number from 0 to 1".into()), "{bad}");
        }
    }
}
