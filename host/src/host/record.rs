//! The request path's seam to [`crate::replay`]: a call is copied before it
//! is made only when its route records, and how it ended is handed on.

use super::failure::Failure;
use super::pipeline::Called;
use super::Host;
use crate::executor::Call;
use crate::model::RouteModel;
use crate::replay::recorder::{Ended, Pending};
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

impl Recording<'_> {
    /// Hands on how the call ended; the recorder keeps it or not by its
    /// status. A hook's answer was no call of the component.
    pub(super) fn end(self, called: &Result<Called, Failure>) {
        let ended = match called {
            Ok(Called::Answered(o)) => Ended::Answered {
                response: &o.response,
                effects: o.effects.as_deref(),
            },
            Ok(Called::Hooked(_)) => return,
            Err(Failure::Trapped { message, .. }) => Ended::Trapped(message),
            Err(Failure::Timeout { timeout, .. }) => Ended::Timeout(*timeout),
            Err(Failure::BadResponse { message, .. }) => Ended::BadResponse(message),
            Err(_) => return,
        };
        self.0.end(ended);
    }
}
