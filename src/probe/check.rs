//! One attempt of a handler, with the kubelet's outcome and messages. (Interface.)

use std::time::Duration;

use super::{Handler, Outcome, Target};

/// Run `handler` once against `target`, failing after `timeout`.
pub async fn check(handler: &Handler, target: &Target, timeout: Duration) -> Outcome {
    let _ = (handler, target, timeout);
    todo!()
}

/// [`check`] on a runtime of its own, for a caller with none (a preStop hook in the stop path).
pub fn check_blocking(handler: &Handler, target: &Target, timeout: Duration) -> Outcome {
    let _ = (handler, target, timeout);
    todo!()
}
