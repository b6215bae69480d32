//! The `geom` command line: parse, run, map errors to exit codes.

fn main() {
    std::process::exit(geom::cli::main());
}
