//! The one way evctl prints. Rust ignores SIGPIPE, so a reader that stops early
//! (`evctl history Loan L-1 | head -1`) makes writes fail with EPIPE, and `println!` would
//! panic on that. Here a closed stdout means "stop": the command ends quietly with exit 0.

use std::fmt::{Display, Write as _};
use std::io::{ErrorKind, Write as _};

use crate::error::Fail;

/// Human output being put together, line by line, before it is written in one go.
#[derive(Default)]
pub struct Text(String);

impl Text {
    pub fn line(&mut self, line: impl Display) {
        // Writing into a String cannot fail.
        let _ = writeln!(self.0, "{line}");
    }

    /// Text that already ends its lines (a rendered tree).
    pub fn raw(&mut self, text: &str) {
        self.0.push_str(text);
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Write to stdout. A closed pipe is [`Fail::output_closed`]; any other write error is
/// reported like a failure to reach something (exit 4).
pub fn stdout(text: &str) -> Result<(), Fail> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Err(Fail::output_closed()),
        Err(e) => Err(Fail::unreachable(format!("cannot write to stdout: {e}"))),
    }
}

/// Write to stderr; nothing more can be said if that fails, so errors are ignored.
pub fn stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}
