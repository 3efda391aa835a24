//! The request path's seam to [`crate::replay`]: a call is copied before it
//! is made only when its route records, and how it ended is handed on.

use super::failure::Failure;
use super::pipeline::Called;
use super::Host;
use crate::executor::Call;
use crate::model::RouteModel;
use crate::replay::recorder::{Ended, Pending};
use crate::replay::recording::{HostFailure, Outcome};
use crate::web::session::Visitor;

/// A call being recorded.
pub(super) struct Recording<'a>(Pending<'a>);

impl Host {
    /// Starts recording `call` if its route records (`--record`, `record`);
    /// copies nothing otherwise.
    pub(super) fn recording(
        &self,
        route: &RouteModel,
        call: &Call,
        visitor: Option<&Visitor>,
    ) -> Option<Recording<'_>> {
        let recorder = self.recorder.as_ref()?;
        recorder
            .begin(route, call, visitor.map(|v| v.id.as_str()))
            .map(Recording)
    }
}

impl<'a> Recording<'a> {
    /// Hands on how the call ended. A trap, a timeout or a bad response is
    /// written down (or not) now; an answer waits for the rest of the
    /// request ([`Answered::finish`]), since the host may still fail it.
    /// A hook's answer was no call of the component.
    pub(super) fn end(self, called: &Result<Called, Failure>) -> Option<Answered<'a>> {
        let ended = match called {
            Ok(Called::Answered(o)) => {
                let outcome = Pending::outcome(Ended::Answered {
                    response: &o.response,
                    effects: o.effects.as_deref(),
                })?;
                return Some(Answered {
                    pending: self.0,
                    outcome,
                });
            }
            Ok(Called::Hooked(_)) => return None,
            Err(Failure::Trapped { message, .. }) => Ended::Trapped(message),
            Err(Failure::Timeout { timeout, .. }) => Ended::Timeout(*timeout),
            Err(Failure::BadResponse { message, .. }) => Ended::BadResponse(message),
            Err(_) => return None,
        };
        self.0.end(ended);
        None
    }
}

/// A call the component answered, its recording waiting for the end of
/// the request.
pub(super) struct Answered<'a> {
    pending: Pending<'a>,
    outcome: Outcome,
}

impl Answered<'_> {
    /// The request ended: served (`None`), or failed by the host after the
    /// call (a write refused, a response too large), which makes it a 5xx
    /// to record like a trap.
    pub(super) fn finish(self, failure: Option<&Failure>) {
        let host_failure = failure
            .and_then(Failure::after_call)
            .map(|(status, error)| HostFailure { status, error });
        self.pending.write(self.outcome, host_failure);
    }
}
