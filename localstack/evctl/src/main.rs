//! The `evctl` command; everything it does is in the library (`src/lib.rs`).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    evctl::main_with(std::env::args().skip(1).collect()).await
}
