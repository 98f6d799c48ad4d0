//! `synod eval` without the rest of the CLI: the same arguments and code as
//! `crates/synod/src/eval_cmd.rs`, for running the harness while the subcommand is being wired.

#[path = "../../synod/src/eval_cmd.rs"]
mod eval_cmd;

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: eval_cmd::EvalArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let code = eval_cmd::run_eval(&cli.args)?;
    std::process::exit(i32::from(code));
}
