//! Answering the control socket: queries for anyone, offline/online (if_mpadm) through the
//! engine, the event and probe streams.

use serde_json::json;

use super::Daemon;
use crate::{
    clock::monotonic_ns,
    control::{
        Request, Response,
        server::{Stream, answer_line},
    },
};

/// Requests answered per turn of the loop at most.
const MAX_REQUESTS_PER_WAKE: usize = 32;

impl Daemon {
    /// Answers what the control socket received.
    pub(super) fn serve_control(&mut self) {
        let now = monotonic_ns();
        // Each query's answer is built once per turn, however many ask: a client sending the
        // same query on many connections costs the loop one answer and copies.
        let (mut interfaces, mut snapshot): (Option<Vec<u8>>, Option<Vec<u8>>) = (None, None);
        // A bounded number per wake-up: the rest waits for the next turn of the loop.
        for p in self.out.control.poll(MAX_REQUESTS_PER_WAKE) {
            let response = match p.request.clone() {
                Request::Ping => Response::Ok(json!({ "pong": true })),
                Request::Interfaces => {
                    let answer = interfaces.get_or_insert_with(|| {
                        answer_line(&Response::Ok(
                            serde_json::to_value(self.engine.interfaces()).unwrap_or_default(),
                        ))
                    });
                    self.out.control.respond_line(p.conn, answer.clone());
                    continue;
                }
                Request::Snapshot => {
                    let answer = snapshot.get_or_insert_with(|| {
                        answer_line(&Response::Ok(
                            serde_json::to_value(self.snapshot()).unwrap_or_default(),
                        ))
                    });
                    self.out.control.respond_line(p.conn, answer.clone());
                    continue;
                }
                Request::FollowEvents | Request::FollowProbes => {
                    let stream = if p.request == Request::FollowEvents {
                        Stream::Events
                    } else {
                        Stream::Probes
                    };
                    self.out.control.subscribe(
                        p.conn,
                        stream,
                        &Response::Ok(json!({ "following": true })),
                    );
                    continue;
                }
                Request::Offline { ifname } => match self.engine.offline(&ifname, now) {
                    Ok(out) => {
                        tracing::info!(ifname, "offlined on request");
                        self.rec.unsaved = true;
                        self.dispatch(out);
                        // if_mpadm returns once the addresses have moved, as in.mpathd's.
                        self.reconcile_if_due_now();
                        Response::Ok(json!({}))
                    }
                    Err(e) => Response::Err(e.into()),
                },
                Request::Online { ifname } => match self.engine.online(&ifname, now) {
                    Ok(out) => {
                        tracing::info!(ifname, "onlined on request");
                        self.rec.unsaved = true;
                        self.dispatch(out);
                        // if_mpadm returns once the addresses have moved, as in.mpathd's.
                        self.reconcile_if_due_now();
                        Response::Ok(json!({}))
                    }
                    Err(e) => Response::Err(e.into()),
                },
            };
            self.out.control.respond(p.conn, &response);
        }
    }
}
