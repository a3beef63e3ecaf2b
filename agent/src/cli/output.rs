//! Printing lines for people or JSON objects for scripts, one per line.

use serde::Serialize;

/// Prints `value` as one JSON line when `json`, else the human line `human()` makes.
pub fn emit<T: Serialize>(json: bool, value: &T, human: impl FnOnce() -> String) {
    if json {
        match serde_json::to_string(value) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("ipmpd: cannot encode output: {e}"),
        }
    } else {
        println!("{}", human());
    }
}

/// Resolves on SIGINT or SIGTERM, so an interrupted diagnostic still cleans up its pins.
///
/// # Errors
/// When the signal handlers cannot be installed.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
    })
}
