//! The `engine` binary: parse arguments, hand over to the library, exit with its code.

use clap::Parser;

fn main() {
    let cli = engine::cli::Cli::parse();
    // A second SIGINT/SIGTERM ends the process at once, once the run's processes are
    // killed; the library leaves ending the process to the binary.
    engine::lifecycle::signals::on_hard_stop(std::process::exit);
    std::process::exit(engine::cli::main_with_args(cli));
}
