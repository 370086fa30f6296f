//! The Deployment controller's rules: one ReplicaSet per template (named
//! `<deployment>-<pod-template-hash>`), the newest revision for the current template, and
//! the rollout from the old ReplicaSets to the new one: `rolling.go` (maxSurge above the
//! replicas, maxUnavailable below them, unhealthy old pods scaled down first) or
//! `recreate.go` (every old pod gone before the new ReplicaSet scales up); history beyond
//! `revisionHistoryLimit` cleaned up once the rollout is complete (`sync.go`).

use chrono::{DateTime, Utc};

use super::replica_set::Counts;
use crate::spec::DeploymentPlan;
use crate::spec::workload::Strategy;

/// A ReplicaSet of the Deployment as the rollout sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsState {
    pub name: String,
    pub hash: Option<String>,
    /// `spec.replicas`.
    pub replicas: u32,
    pub counts: Counts,
    pub revision: u64,
    pub created_at: DateTime<Utc>,
}

/// One step of a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Make the ReplicaSet of the current template.
    Create {
        revision: u64,
        replicas: u32,
    },
    Scale {
        name: String,
        replicas: u32,
    },
    /// The current template's ReplicaSet existed (a rollback): it becomes the newest revision.
    Revise {
        name: String,
        revision: u64,
    },
    /// An old, empty ReplicaSet beyond `revisionHistoryLimit`.
    Delete {
        name: String,
    },
}

/// What Deployment `d` wants done, given its ReplicaSets `rss`.
pub fn sync(d: &DeploymentPlan, rss: &[RsState]) -> Vec<Action> {
    let mut rss: Vec<RsState> = rss.to_vec();
    rss.sort_by_key(|r| (r.created_at, r.name.clone()));
    let mut actions = Vec::new();
    let max_revision = rss.iter().map(|r| r.revision).max().unwrap_or(0);
    let new_at = rss
        .iter()
        .position(|r| r.hash.as_deref() == Some(d.template_hash.as_str()));
    if let Some(i) = new_at
        && rss[i].revision < max_revision
    {
        rss[i].revision = max_revision + 1;
        actions.push(Action::Revise {
            name: rss[i].name.clone(),
            revision: max_revision + 1,
        });
    }
    let replicas = d.replicas;
    let scale = |actions: &mut Vec<Action>, r: &mut RsState, to: u32| {
        if r.replicas != to {
            r.replicas = to;
            actions.push(Action::Scale {
                name: r.name.clone(),
                replicas: to,
            });
        }
    };
    match d.strategy {
        Strategy::Recreate => {
            let mut scaled_down = false;
            for (i, r) in rss.iter_mut().enumerate() {
                if Some(i) != new_at && r.replicas > 0 {
                    scale(&mut actions, r, 0);
                    scaled_down = true;
                }
            }
            let old_running = rss
                .iter()
                .enumerate()
                .any(|(i, r)| Some(i) != new_at && r.counts.present > 0);
            if scaled_down || old_running {
                return actions;
            }
            match new_at {
                None => actions.push(Action::Create {
                    revision: max_revision + 1,
                    replicas,
                }),
                Some(i) => scale(&mut actions, &mut rss[i], replicas),
            }
        }
        Strategy::RollingUpdate { .. } => {
            let (surge, unavailable) = d.strategy.fenceposts(replicas as i32);
            let total: i32 = rss.iter().map(|r| r.replicas as i32).sum();
            let Some(i) = new_at else {
                // `NewRSNewReplicas`: as many as the surge allows, at most the replicas.
                let room = (replicas as i32 + surge - total).max(0);
                actions.push(Action::Create {
                    revision: max_revision + 1,
                    replicas: room.min(replicas as i32) as u32,
                });
                return actions;
            };
            // reconcileNewReplicaSet
            let new = rss[i].replicas as i32;
            if new > replicas as i32 {
                scale(&mut actions, &mut rss[i], replicas);
                return actions;
            }
            if new < replicas as i32 {
                let up = (replicas as i32 + surge - total).min(replicas as i32 - new);
                if up > 0 {
                    scale(&mut actions, &mut rss[i], (new + up) as u32);
                    return actions;
                }
            }
            // reconcileOldReplicaSets
            let old: i32 = (rss.iter().enumerate())
                .filter(|(j, _)| *j != i)
                .map(|(_, r)| r.replicas as i32)
                .sum();
            if old > 0 {
                scale_down_old(&mut rss, i, replicas as i32, unavailable, &mut actions);
                return actions;
            }
        }
    }
    // Complete: history beyond the limit goes, oldest revision first.
    if let Some(i) = new_at
        && complete(replicas, &rss[i])
    {
        let mut empty: Vec<&RsState> = (rss.iter().enumerate())
            .filter(|(j, r)| *j != i && r.replicas == 0 && r.counts.present == 0)
            .map(|(_, r)| r)
            .collect();
        empty.sort_by_key(|r| r.revision);
        let surplus = empty
            .len()
            .saturating_sub(d.revision_history_limit as usize);
        for r in &empty[..surplus] {
            actions.push(Action::Delete {
                name: r.name.clone(),
            });
        }
    }
    actions
}

/// The new ReplicaSet runs all the replicas, available.
fn complete(replicas: u32, new: &RsState) -> bool {
    new.replicas == replicas && new.counts.current == replicas && new.counts.available == replicas
}

/// `reconcileOldReplicaSets`: scale the old ReplicaSets down as far as maxUnavailable lets,
/// their unhealthy pods first (`cleanupUnhealthyReplicas`), then the available ones
/// (`scaleDownOldReplicaSetsForRollingUpdate`), oldest ReplicaSet first.
fn scale_down_old(
    rss: &mut [RsState],
    new_at: usize,
    replicas: i32,
    unavailable: i32,
    actions: &mut Vec<Action>,
) {
    let total: i32 = rss.iter().map(|r| r.replicas as i32).sum();
    let min_available = replicas - unavailable;
    let new = &rss[new_at];
    let new_unavailable = new.replicas as i32 - new.counts.available as i32;
    let max_down = total - min_available - new_unavailable;
    if max_down <= 0 {
        return;
    }
    let mut down = 0;
    let mut scaled: Vec<(usize, u32)> = Vec::new();
    for (j, r) in rss.iter_mut().enumerate() {
        if j == new_at || r.replicas == 0 || down >= max_down {
            continue;
        }
        let unhealthy = r.replicas as i32 - r.counts.available as i32;
        if unhealthy <= 0 {
            continue;
        }
        let n = unhealthy.min(max_down - down);
        r.replicas -= n as u32;
        down += n;
        scaled.push((j, r.replicas));
    }
    let available: i32 = rss.iter().map(|r| r.counts.available as i32).sum();
    if available > min_available {
        let total_down = available - min_available;
        let mut done = 0;
        for (j, r) in rss.iter_mut().enumerate() {
            if j == new_at || r.replicas == 0 || done >= total_down {
                continue;
            }
            let n = (r.replicas as i32).min(total_down - done);
            r.replicas -= n as u32;
            done += n;
            scaled.push((j, r.replicas));
        }
    }
    let mut seen = std::collections::BTreeMap::new();
    for (j, to) in scaled {
        seen.insert(j, to);
    }
    for (j, to) in seen {
        actions.push(Action::Scale {
            name: rss[j].name.clone(),
            replicas: to,
        });
    }
}

/// A Deployment's `status`, from its ReplicaSets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    pub replicas: u32,
    pub updated: u32,
    pub ready: u32,
    pub available: u32,
}

impl Status {
    pub fn of(d: &DeploymentPlan, rss: &[RsState]) -> Self {
        let mut s = Status::default();
        for r in rss {
            s.replicas += r.counts.current;
            s.ready += r.counts.ready;
            s.available += r.counts.available;
            if r.hash.as_deref() == Some(d.template_hash.as_str()) {
                s.updated = r.counts.current;
            }
        }
        s
    }

    pub fn unavailable(&self, replicas: u32) -> u32 {
        replicas.saturating_sub(self.available)
    }
}

/// `kubectl rollout status`'s line for a Deployment (`DeploymentStatusViewer`), and whether
/// the rollout is done.
pub fn rollout_status(name: &str, replicas: u32, s: &Status) -> (String, bool) {
    if s.updated < replicas {
        let line = format!(
            "Waiting for deployment \"{name}\" rollout to finish: {} out of {replicas} new replicas have been updated...",
            s.updated
        );
        return (line, false);
    }
    if s.replicas > s.updated {
        let line = format!(
            "Waiting for deployment \"{name}\" rollout to finish: {} old replicas are pending termination...",
            s.replicas - s.updated
        );
        return (line, false);
    }
    if s.available < s.updated {
        let line = format!(
            "Waiting for deployment \"{name}\" rollout to finish: {} of {} updated replicas are available...",
            s.available, s.updated
        );
        return (line, false);
    }
    (
        format!("deployment \"{name}\" successfully rolled out"),
        true,
    )
}

#[cfg(test)]
#[path = "deployment_tests.rs"]
mod tests;
