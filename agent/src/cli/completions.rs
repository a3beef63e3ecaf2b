//! `ipmpd completions SHELL [--program NAME]`: shell completions generated from the same parsers
//! the binary uses, so they cannot drift; the packages ship them for bash, zsh and fish.

use super::names::Program;

/// Arguments of `ipmpd completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: clap_complete::Shell,
    /// The program to complete: ipmpd, or its other names ipmpstat and if_mpadm.
    #[arg(long, value_enum, default_value = "ipmpd")]
    pub program: Program,
}

/// Writes the completion script to standard output.
pub fn run(args: &CompletionsArgs) {
    let mut command = args.program.command();
    clap_complete::generate(
        args.shell,
        &mut command,
        args.program.name(),
        &mut std::io::stdout(),
    );
}
