//! The `engine` binary: parse arguments, hand over to the library, exit with its code.

use clap::Parser;

fn main() {
    let cli = engine::cli::Cli::parse();
    std::process::exit(engine::cli::main_with_args(cli));
}
