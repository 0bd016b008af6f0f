//! Standard output for every command. A reader that stops early
//! (`fedsoc round status --watch | head`) closes the pipe, and the next
//! write fails with EPIPE, which `println!` turns into a panic. Everything
//! the commands print goes through here instead (`out!`, `outln!`,
//! [`Stdout`]): a closed pipe ends the process quietly, with the status a
//! shell reports for a program stopped by SIGPIPE; any other write error
//! ends it with a message saying what failed.

use std::io::{self, Write};

/// Exit status when the reader went away: 128 + SIGPIPE (13), what a shell
/// reports for `yes | head`, so `set -o pipefail` scripts see the same as
/// with any Unix tool and a cut-short output is never reported as success.
pub const BROKEN_PIPE_EXIT: i32 = 141;

/// Writes `args` to standard output and flushes them (the `out!` and
/// `outln!` macros).
pub fn print(args: std::fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| out.flush());
    drop(out);
    if let Err(e) = written {
        quiet_on_broken_pipe(&e);
        let _ = writeln!(io::stderr(), "Error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// Ends the process quietly if `e` says the reader closed the pipe.
fn quiet_on_broken_pipe(e: &io::Error) {
    if e.kind() == io::ErrorKind::BrokenPipe {
        // Buffered output is flushed (and its failure ignored) on exit.
        std::process::exit(BROKEN_PIPE_EXIT);
    }
}

/// Standard output as a writer, for large outputs (wrap it in a
/// `BufWriter`): a closed pipe ends the process quietly, other errors are
/// returned to the caller.
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stdout().write(buf).inspect_err(quiet_on_broken_pipe)
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush().inspect_err(quiet_on_broken_pipe)
    }
}
