//! The `semdex` command line: one subcommand per job, errors reported once at the edge.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// The binary, not the library, chooses the allocator: mimalloc (measurably faster forward
/// passes), counting live bytes for the index-memory figures of `semdex bench ann`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: semdex::alloc::CountingMimalloc = semdex::alloc::CountingMimalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(args.global.verbose);
    // Tests of the binary stop it at a named point to kill it there (semdex::hooks).
    let _pause = semdex::hooks::pause_where_the_environment_says();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A broken pipe (`semdex embed ... | head`) is not an error worth a message.
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
