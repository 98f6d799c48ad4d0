//! Integrate: all accepted modules together must again meet the contract and match the decided
//! reference on every probe. Only then is the build finished with a program.

use super::*;

impl Pipeline {
    /// Every component is accepted: check the assembled program.
    pub(super) fn integrate(&mut self, b: Box<Build>, out: &mut Vec<Output>) -> Stage {
        out.push(Output::Progress(Progress::Stage {
            stage: "integrate".into(),
            detail: "assembling the components and checking the whole program".into(),
        }));
        let request = program_check(&b.spec, &b.program(), &b.pool);
        self.run_check(CheckPurpose::Integration, request, out);
        Stage::Integrate(b)
    }

    /// The assembled program's check finished: built, or failed.
    pub(super) fn on_integration_check(
        &mut self,
        b: Box<Build>,
        report: CheckReport,
        out: &mut Vec<Output>,
    ) -> Stage {
        if let Some(problem) = refinement_problem(
            &report,
            &b.spec.contract,
            &b.pool,
            &b.ref_behaviour,
            "assembled program",
        ) {
            return self.fail("integrate", problem.detail, out);
        }
        let program = b.program();
        let passed = Decision::IntegrationPassed {
            program_digest: program.digest(),
            contract_met: b.spec.contract.len(),
            probes_matched: b.pool.len(),
        };
        self.persist(passed, out);
        out.push(Output::Progress(Progress::CheckPassed {
            what: format!(
                "assembled program meets the contract ({} examples) and matches the decided reference on {} probes",
                b.spec.contract.len(),
                b.pool.len()
            ),
        }));
        let b = *b;
        let outcome = BuildOutcome {
            prompt: self.prompt.clone(),
            components: b.comps.iter().filter_map(|c| c.accepted.clone()).collect(),
            spec: b.spec,
            reference: b.reference,
            representative: b.representative,
            class: b.class,
            dissent: b.dissent,
            outside_domain: b.outside_domain,
            ahead_by: b.ahead_by,
            probes: b.pool,
            reference_behaviour: b.ref_behaviour,
            program,
            integration: report,
            agents: self.records(),
            fault_budget: self.tally.m(),
            agreement: b.agreement,
        };
        self.finish(Finish::Built(Box::new(outcome)), out);
        self.asks.clear();
        Stage::Done
    }
}
