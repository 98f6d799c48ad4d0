//! A driver for the pipeline in virtual time: the loop the step tests, the property tests and
//! the evaluation harness share. The real runtime (`synod-runtime`) runs the same loop with
//! wall-clock time, threads and a log.
//!
//! A [`World`] answers the pipeline's outputs synchronously: an agent's reply (or silence), a
//! check's report, the user's answer. Time moves only when nothing else can happen: then it
//! jumps to the pipeline's next deadline and the timer fires. No clock, no threads: the same
//! world gives the same run.

use super::*;
use std::collections::VecDeque;

/// An agent's reply, parsed or faulted, and what it cost: what [`World::reply`] gives for an
/// ask, as [`Input::Replied`] carries it.
pub type AgentReply = (Result<Reply, ReplyFault>, Usage);

/// What answers the pipeline's outputs in a virtual-time run.
pub trait World {
    /// What a world can fail with (not an agent's fault: a broken evaluator, say).
    type Error;

    /// The reply of `agent` to `request`, or `None` if it never answers.
    fn reply(
        &mut self,
        agent: AgentId,
        request: &Request,
    ) -> Result<Option<AgentReply>, Self::Error>;

    /// Runs a check (in a sandbox, a cache or a test-side evaluator).
    fn check(&mut self, request: &CheckRequest) -> Result<CheckReport, Self::Error>;

    /// The user's answer to `question`, or `None` to stop the run with it.
    fn answer(&mut self, question: &Question) -> Result<Option<String>, Self::Error>;

    /// Sees every output before it is carried out (persists and progress included).
    fn observe(&mut self, _output: &Output) {}
}

/// How a virtual-time run stopped.
#[derive(Debug)]
pub enum RunEnd {
    /// The build finished.
    Finished(Box<Finish>),
    /// A question nobody answered; push an [`Input::UserAnswered`] and run again to go on.
    Asked(Box<Question>),
    /// Nothing in flight and no deadline: the pipeline waits for nothing (a bug).
    Stuck,
    /// More than the step budget of inputs.
    StepLimit,
}

/// The pipeline with its virtual clock and its queue of inputs.
#[derive(Debug)]
pub struct VirtualDriver {
    /// The machine driven.
    pub pipeline: Pipeline,
    /// Virtual time, ms since the build started.
    pub now_ms: u64,
    /// Inputs fed so far.
    pub steps: usize,
    /// Inputs fed before the run gives up with [`RunEnd::StepLimit`].
    pub steps_max: usize,
    queue: VecDeque<Input>,
}

impl VirtualDriver {
    /// A driver whose first input will be [`Input::Start`].
    pub fn new(pipeline: Pipeline) -> VirtualDriver {
        VirtualDriver {
            pipeline,
            now_ms: 0,
            steps: 0,
            steps_max: 100_000,
            queue: VecDeque::from([Input::Start]),
        }
    }

    /// Queues an input (a user's answer after [`RunEnd::Asked`], or a stray one in a test).
    pub fn push(&mut self, input: Input) {
        self.queue.push_back(input);
    }

    /// Runs until the build finishes, a question goes unanswered, or nothing can happen.
    pub fn run<W: World>(&mut self, world: &mut W) -> Result<RunEnd, W::Error> {
        loop {
            while let Some(input) = self.queue.pop_front() {
                self.steps += 1;
                if self.steps > self.steps_max {
                    return Ok(RunEnd::StepLimit);
                }
                let mut outputs = Vec::new();
                self.pipeline.step(self.now_ms, input, &mut outputs);
                for o in outputs {
                    world.observe(&o);
                    if let Some(end) = self.carry_out(o, world)? {
                        return Ok(end);
                    }
                }
            }
            // Nothing else can happen: time jumps to the next deadline.
            let Some(deadline) = self.pipeline.poll_timeout() else {
                return Ok(RunEnd::Stuck);
            };
            self.now_ms = self.now_ms.max(deadline.at_ms);
            self.queue.push_back(Input::TimerFired {
                timer: deadline.timer,
            });
        }
    }

    fn carry_out<W: World>(
        &mut self,
        o: Output,
        world: &mut W,
    ) -> Result<Option<RunEnd>, W::Error> {
        match o {
            Output::Ask {
                ask,
                agent,
                request,
            } => {
                if let Some((reply, usage)) = world.reply(agent, &request)? {
                    self.queue.push_back(Input::Replied { ask, reply, usage });
                }
            }
            Output::RunCheck { check, request } => {
                let report = world.check(&request)?;
                self.queue.push_back(Input::CheckFinished { check, report });
            }
            Output::Persist(_) | Output::Progress(_) => {}
            Output::AskUser(q) => match world.answer(&q)? {
                Some(answer) => self.queue.push_back(Input::UserAnswered { answer }),
                None => return Ok(Some(RunEnd::Asked(q))),
            },
            Output::Finish(f) => return Ok(Some(RunEnd::Finished(f))),
        }
        Ok(None)
    }
}
