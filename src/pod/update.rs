//! Carrying out a pod update decided by [`super::declarative`]: the record is its
//! supervisor's while it lives, so the new plan goes to it as an update request beside the
//! record and SIGUSR1 (see `supervisor/update.rs`), and apply waits until the supervisor has
//! taken it (the request is gone and the record carries the new last-applied configuration).
//! A pod without a live supervisor cannot be updated: no one would restart its containers.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{Result, failed};
use crate::container::image::ContainerImage;
use crate::spec::PodPlan;
use crate::state::{PodKey, PodRecord, ProcessId, Store, UpdateRequest};

/// How long apply waits for a supervisor to take its update (it does at its next wake-up).
const TAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One pod update, checked and ready to send.
#[derive(Debug)]
pub struct PodUpdate {
    pub key: PodKey,
    pub plan: PodPlan,
    /// The new images of the containers whose image changed, as resolved.
    pub images: Vec<(String, ContainerImage)>,
    supervisor: ProcessId,
}

/// The update of `record` to `plan`, if its supervisor can take one.
pub fn check(
    record: &PodRecord,
    plan: PodPlan,
    images: Vec<(String, ContainerImage)>,
) -> Result<PodUpdate> {
    let name = &record.plan.name;
    if record.deletion.is_some() {
        return Err(failed(format!(
            "pod/{name}: is being deleted; it cannot be updated"
        )));
    }
    let Some(supervisor) = record.supervisor.filter(ProcessId::is_alive) else {
        return Err(failed(format!(
            "pod/{name}: its supervisor is gone, so nothing would restart its containers with the new image: delete the pod and apply it again"
        )));
    };
    if !crate::procfs::catches(supervisor.pid, Signal::SIGUSR1) {
        return Err(failed(format!(
            "pod/{name}: its supervisor (pid {}) is of a podrun without pod updates: delete the pod and apply it again",
            supervisor.pid
        )));
    }
    Ok(PodUpdate {
        key: record.key(),
        plan,
        images,
        supervisor,
    })
}

/// Send every update, then wait until each supervisor has taken its own.
pub fn send(store: &Store, updates: Vec<PodUpdate>) -> Result<()> {
    for u in &updates {
        let request = UpdateRequest {
            plan: u.plan.clone(),
            images: u.images.clone(),
            requested_at: chrono::Utc::now(),
        };
        store.request_update(&u.key, &request)?;
        signal(u)?;
    }
    let deadline = Instant::now() + TAKE_TIMEOUT;
    for u in &updates {
        while !taken(store, u) {
            if Instant::now() >= deadline || !u.supervisor.is_alive() {
                return Err(failed(format!(
                    "pod/{}: its supervisor (pid {}) did not take the update within {}s",
                    u.key.name,
                    u.supervisor.pid,
                    TAKE_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(())
}

/// SIGUSR1 to the supervisor, through a pidfd (a recycled pid is never signalled).
fn signal(u: &PodUpdate) -> Result<()> {
    let sent = crate::sys::pidfd_open(u.supervisor.pid)
        .ok()
        .filter(|_| u.supervisor.is_alive())
        .is_some_and(|fd| crate::sys::pidfd_send_signal(&fd, libc::SIGUSR1).is_ok());
    if sent {
        Ok(())
    } else {
        Err(failed(format!(
            "pod/{}: signal its supervisor (pid {}): it is gone",
            u.key.name, u.supervisor.pid
        )))
    }
}

fn taken(store: &Store, u: &PodUpdate) -> bool {
    !store.update_pending(&u.key)
        && store
            .load(&u.key)
            .is_ok_and(|r| r.plan.last_applied == u.plan.last_applied)
}
