//! synod-core: the model, the decision rule and the build pipeline, as sans-IO state machines.
//!
//! Nothing here does IO, reads the clock or draws OS randomness: time is an argument, randomness
//! comes from a seed, and every collection iterates in a fixed order. The same code runs under
//! the real runtime, the simulator and the tests.
//!
//! # A tour: driving the build pipeline
//!
//! The pipeline ([`pipeline::Pipeline`]) is a state machine with one entry point,
//! [`Pipeline::step`]: an [`Input`] and the time go in, [`Output`]s come out, to be carried
//! out in order. Work that takes time — an agent's reply, a sandbox check, the user's answer —
//! is an output now and an input later; the core never calls anything.
//!
//! **1. Make one.** Agents (in the order they are asked, each with its timeout), a fault budget
//! m (refused unless n ≥ 2m + 1) and a seed:
//!
//! ```
//! use synod_core::pipeline::*;
//! use synod_core::{AgentId, Prompt};
//!
//! let agents: Vec<AgentInfo> = (0..3)
//!     .map(|i| AgentInfo { id: AgentId(i), name: format!("a{i}"), timeout_ms: 1_000 })
//!     .collect();
//! let mut p = Pipeline::new(PipelineConfig::new(agents, 1, 7), Prompt::new("f(x): |x|"))
//!     .expect("n = 3 tolerates m = 1");
//! # let _ = &mut p;
//! ```
//!
//! **2. Step it.** `Start` persists the build's first decision and asks the first wave, n − m = 2
//! agents. A `Persist` must be durable before anything after it is carried out: that is what
//! lets `--resume` replay a killed build.
//!
//! ```
//! # use synod_core::pipeline::*;
//! # use synod_core::{AgentId, Prompt};
//! # let agents: Vec<AgentInfo> = (0..3)
//! #     .map(|i| AgentInfo { id: AgentId(i), name: format!("a{i}"), timeout_ms: 1_000 })
//! #     .collect();
//! # let mut p = Pipeline::new(PipelineConfig::new(agents, 1, 7), Prompt::new("f(x): |x|")).unwrap();
//! let mut out = Vec::new();
//! p.step(0, Input::Start, &mut out);
//! assert!(matches!(&out[0], Output::Persist(d) if matches!(**d, Decision::BuildStarted { .. })));
//! let asked: Vec<AgentId> = out
//!     .iter()
//!     .filter_map(|o| match o {
//!         Output::Ask { agent, .. } => Some(*agent),
//!         _ => None,
//!     })
//!     .collect();
//! assert_eq!(asked, [AgentId(0), AgentId(1)]);
//! ```
//!
//! **3. Time is an input.** The pipeline says when its next deadline is due; the driver waits
//! until then (or for a reply) and feeds the timer back. An agent silent past its timeout is
//! suspected and its work goes to the next agent:
//!
//! ```
//! # use synod_core::pipeline::*;
//! # use synod_core::{AgentId, Prompt};
//! # let agents: Vec<AgentInfo> = (0..3)
//! #     .map(|i| AgentInfo { id: AgentId(i), name: format!("a{i}"), timeout_ms: 1_000 })
//! #     .collect();
//! # let mut p = Pipeline::new(PipelineConfig::new(agents, 1, 7), Prompt::new("f(x): |x|")).unwrap();
//! # let mut out = Vec::new();
//! # p.step(0, Input::Start, &mut out);
//! let deadline = p.poll_timeout().expect("two asks are pending");
//! assert_eq!(deadline.at_ms, 1_001);
//! out.clear();
//! p.step(deadline.at_ms, Input::TimerFired { timer: deadline.timer }, &mut out);
//! assert!(out.iter().any(|o| matches!(o, Output::Progress(Progress::Suspected { .. }))));
//! assert!(out.iter().any(|o| matches!(o, Output::Ask { agent: AgentId(2), .. })));
//! ```
//!
//! **4. Stray input is counted, not obeyed.** An answer when no question is pending, a reply
//! nobody asked for: the machine ignores it and counts it ([`Pipeline::stray`]).
//!
//! ```
//! # use synod_core::pipeline::*;
//! # use synod_core::{AgentId, Prompt};
//! # let agents: Vec<AgentInfo> = (0..3)
//! #     .map(|i| AgentInfo { id: AgentId(i), name: format!("a{i}"), timeout_ms: 1_000 })
//! #     .collect();
//! # let mut p = Pipeline::new(PipelineConfig::new(agents, 1, 7), Prompt::new("f(x): |x|")).unwrap();
//! # let mut out = Vec::new();
//! # p.step(0, Input::Start, &mut out);
//! out.clear();
//! p.step(5, Input::UserAnswered { answer: "B".into() }, &mut out);
//! assert!(out.is_empty() && !p.is_done());
//! assert_eq!(p.stray().answers, 1);
//! ```
//!
//! **5. Drive it to the end.** [`pipeline::drive::VirtualDriver`] runs the loop in virtual time
//! against a [`pipeline::drive::World`] that answers asks and checks; the step tests and the
//! evaluation harness use it, and `synod-runtime` runs the same loop with threads, a sandbox,
//! wall-clock deadlines and the signed log. Every agent here is silent: the first wave and its
//! replacement are suspected in turn, the resample that follows finds nobody left to ask, and
//! the build fails with the reason:
//!
//! ```
//! use std::convert::Infallible;
//! use synod_core::pipeline::drive::{AgentReply, RunEnd, VirtualDriver, World};
//! use synod_core::pipeline::*;
//! use synod_core::{AgentId, CheckReport, CheckRequest, Prompt};
//!
//! struct Silent;
//! impl World for Silent {
//!     type Error = Infallible;
//!     fn reply(&mut self, _: AgentId, _: &Request)
//!         -> Result<Option<AgentReply>, Infallible> {
//!         Ok(None) // never answers
//!     }
//!     fn check(&mut self, _: &CheckRequest) -> Result<CheckReport, Infallible> {
//!         unreachable!("no reading, no check")
//!     }
//!     fn answer(&mut self, _: &Question) -> Result<Option<String>, Infallible> {
//!         Ok(None)
//!     }
//! }
//!
//! let agents: Vec<AgentInfo> = (0..3)
//!     .map(|i| AgentInfo { id: AgentId(i), name: format!("a{i}"), timeout_ms: 1_000 })
//!     .collect();
//! let p = Pipeline::new(PipelineConfig::new(agents, 1, 7), Prompt::new("f(x): |x|")).unwrap();
//! let mut driver = VirtualDriver::new(p);
//! let Ok(RunEnd::Finished(finish)) = driver.run(&mut Silent) else { panic!() };
//! let Finish::Failed { stage, reason, .. } = *finish else { panic!() };
//! assert_eq!(stage, "interpret");
//! assert!(reason.contains("every agent is suspected"), "{reason}");
//! ```

pub mod model;
pub mod value;

pub use model::*;
pub use value::{Value, ValueError};
pub mod domain;
pub mod facts;
pub mod pipeline;
pub mod probes;
pub mod protocols;
pub mod pyexpr;
pub mod reserved;
pub mod rng;
pub mod tally;

pub use pipeline::{Input, Output, Pipeline, PipelineConfig};
pub use tally::{Tally, Verdict};
