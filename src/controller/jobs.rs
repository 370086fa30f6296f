//! The Job controller's part of a pass (being written: issue 21).

use super::reconcile::Pass;

pub(super) fn sync(_pass: &mut Pass<'_>) {}
