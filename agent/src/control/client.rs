//! The CLI's side of the control socket.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use super::{Request, Response};

/// in.mpathd's client timeout (`IPMP_REQTIMEOUT`).
const TIMEOUT: Duration = Duration::from_secs(5);

/// Errors reaching the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot contact ipmpd at {path} -- is it running? (`ipmpd run`, or --socket/--instance for another one)"
    )]
    Unreachable {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "ipmpd at {path} accepted the connection but did not answer within 5 s: it may be stalled (see its log, `systemctl status ipmpd`)"
    )]
    Silent {
        path: String,
        source: std::io::Error,
    },
    #[error("ipmpd did not answer properly")]
    BadAnswer(#[source] std::io::Error),
}

/// Sends `request` to the daemon at `path` and returns its response.
///
/// # Errors
/// When the daemon cannot be reached or answers nonsense.
pub fn call(path: &Path, request: &Request) -> Result<Response, ClientError> {
    let unreachable = |source| ClientError::Unreachable {
        path: path.display().to_string(),
        source,
    };
    let mut stream = UnixStream::connect(path).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(ClientError::BadAnswer)?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(ClientError::BadAnswer)?;
    let mut line = serde_json::to_vec(request).map_err(|e| ClientError::BadAnswer(e.into()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(ClientError::BadAnswer)?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => ClientError::Silent {
                path: path.display().to_string(),
                source,
            },
            _ => ClientError::BadAnswer(source),
        })?;
    serde_json::from_str(&answer).map_err(|e| ClientError::BadAnswer(e.into()))
}

/// Sends a follow request, calls `subscribed` once the daemon has confirmed it (nothing that
/// happens after that is missed), then `each` with every record until the daemon closes the
/// stream, `each` returns false, or the process is interrupted.
///
/// # Errors
/// When the daemon cannot be reached or refuses.
pub fn follow(
    path: &Path,
    request: &Request,
    subscribed: impl FnOnce(),
    mut each: impl FnMut(serde_json::Value) -> bool,
) -> Result<(), ClientError> {
    let unreachable = |source| ClientError::Unreachable {
        path: path.display().to_string(),
        source,
    };
    let mut stream = UnixStream::connect(path).map_err(unreachable)?;
    let mut line = serde_json::to_vec(request).map_err(|e| ClientError::BadAnswer(e.into()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(ClientError::BadAnswer)?;
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader
        .read_line(&mut first)
        .map_err(ClientError::BadAnswer)?;
    if let Ok(Response::Err(e)) = serde_json::from_str::<Response>(&first) {
        return Err(ClientError::BadAnswer(std::io::Error::other(e.to_string())));
    }
    subscribed();
    for l in reader.lines() {
        let Ok(l) = l else { break };
        if let Ok(v) = serde_json::from_str(&l)
            && !each(v)
        {
            break;
        }
    }
    Ok(())
}
