//! Command output. `println!` panics when stdout is a pipe its reader closed
//! (`coordinator plan x --json | head -1`); here a closed stdout ends the process quietly
//! with status 141, what a shell reports for a Unix tool killed by SIGPIPE. Messages on
//! stderr are best effort: nothing is left to tell when stderr itself is gone.

use std::io::Write;

/// What a shell shows for a process ended by SIGPIPE (128 + 13).
pub const BROKEN_PIPE_EXIT: i32 = 141;

/// Write one formatted line to stdout; see [`outln!`](crate::outln).
pub fn stdout_line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        stdout_failed(&e);
    }
}

/// Write one formatted line to stderr, ignoring failures; see [`errln!`](crate::errln).
pub fn stderr_line(args: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(BROKEN_PIPE_EXIT);
    }
    // A full disk or a revoked terminal: the output is incomplete, so say so and fail.
    stderr_line(format_args!("error: cannot write to stdout: {e}"));
    std::process::exit(1);
}

/// `println!` for command output: a closed stdout ends the process quietly.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::stdout_line(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::stderr_line(format_args!($($arg)*))
    };
}
