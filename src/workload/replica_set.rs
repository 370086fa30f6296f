//! The ReplicaSet controller's rule (`replica_set.go` `manageReplicas`): as many active pods
//! as `replicas`; the difference created, or the surplus deleted, the pods to delete ranked
//! as `getPodsToDelete` ranks them. Pods nothing keeps any more (their supervisor gone) and
//! finished pods are removed and replaced.

use std::cmp::Ordering;

use super::PodView;
use crate::state::{Phase, PodKey, ReplicaSetRecord};

/// What a ReplicaSet wants done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// New pods to make.
    pub create: usize,
    /// Active pods to stop (gracefully), the surplus.
    pub delete: Vec<PodKey>,
    /// Pods to remove at once: their supervisor is gone, or they finished.
    pub remove: Vec<PodKey>,
}

/// The pods a ReplicaSet counts, and how many of them are ready and available.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// `status.replicas`: active pods.
    pub current: u32,
    pub ready: u32,
    pub available: u32,
    /// Pods of it that still exist and have not finished (terminating ones included).
    pub present: u32,
}

/// `pods`: those `rs` owns; `available`: whether a ready pod has been ready for the
/// ReplicaSet's minReadySeconds.
pub fn sync(rs: &ReplicaSetRecord, pods: &[&PodView]) -> Decision {
    let mut decision = Decision::default();
    let mut active: Vec<&PodView> = Vec::new();
    for p in pods {
        if p.terminating {
            continue;
        }
        if p.lost || matches!(p.phase, Phase::Succeeded | Phase::Failed) {
            decision.remove.push(p.key.clone());
        } else {
            active.push(p);
        }
    }
    let want = rs.replicas as usize;
    match active.len().cmp(&want) {
        Ordering::Less => decision.create = want - active.len(),
        Ordering::Equal => {}
        Ordering::Greater => {
            active.sort_by(|a, b| delete_first(a, b));
            let surplus = active.len() - want;
            decision.delete = active[..surplus].iter().map(|p| p.key.clone()).collect();
        }
    }
    decision
}

/// `ActivePodsWithRanks.Less`: the pod to delete first sorts first. Pending before Unknown
/// before Running, not ready before ready, more restarts first, newer first.
fn delete_first(a: &PodView, b: &PodView) -> Ordering {
    let phase = |p: &PodView| match p.phase {
        Phase::Pending => 0,
        Phase::Unknown => 1,
        _ => 2,
    };
    phase(a)
        .cmp(&phase(b))
        .then(a.ready.cmp(&b.ready))
        .then(b.restarts.cmp(&a.restarts))
        .then(b.created_at.cmp(&a.created_at))
}

/// The counts of `pods` (those of one ReplicaSet); `available` says which ready pods count
/// as available.
pub fn counts(pods: &[&PodView], mut available: impl FnMut(&PodView) -> bool) -> Counts {
    let mut c = Counts::default();
    for p in pods {
        if !matches!(p.phase, Phase::Succeeded | Phase::Failed) && !p.lost {
            c.present += 1;
        }
        if !p.active() {
            continue;
        }
        c.current += 1;
        if p.ready {
            c.ready += 1;
            if available(p) {
                c.available += 1;
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, Utc};

    fn pod(name: &str, phase: Phase, ready: bool, age_s: i64) -> PodView {
        PodView {
            key: PodKey::new("default", name),
            uid: name.into(),
            owner: Some(("ReplicaSet".into(), "rs".into())),
            phase,
            ready,
            terminating: false,
            lost: false,
            created_at: Utc::now() - Duration::seconds(age_s),
            restarts: 0,
            supervisor: Some(1),
            started_at: None,
        }
    }

    fn rs(replicas: u32) -> ReplicaSetRecord {
        let text = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: rs}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: 'podrun.local/debug:1'}]}\n";
        let Some(crate::spec::Object::ReplicaSet(p)) =
            crate::spec::load_str(text, "t").unwrap().into_iter().next()
        else {
            panic!()
        };
        ReplicaSetRecord {
            replicas,
            ..super::super::replica_set_record(&p)
        }
    }

    #[test]
    fn missing_pods_are_created_and_lost_ones_replaced() {
        let a = pod("a", Phase::Running, true, 30);
        let mut lost = pod("b", Phase::Running, true, 20);
        lost.lost = true;
        let mut leaving = pod("c", Phase::Running, true, 10);
        leaving.terminating = true;
        let d = sync(&rs(3), &[&a, &lost, &leaving]);
        assert_eq!(d.create, 2);
        assert_eq!(d.remove, [lost.key.clone()]);
        assert!(d.delete.is_empty());
    }

    #[test]
    fn the_surplus_goes_pending_unready_and_newest_first() {
        let old_ready = pod("old", Phase::Running, true, 300);
        let new_ready = pod("new", Phase::Running, true, 10);
        let unready = pod("unready", Phase::Running, false, 400);
        let pending = pod("pending", Phase::Pending, false, 500);
        let all = [&old_ready, &new_ready, &unready, &pending];
        let names = |n: u32| -> Vec<String> {
            sync(&rs(n), &all)
                .delete
                .into_iter()
                .map(|k| k.name)
                .collect()
        };
        assert_eq!(names(3), ["pending"]);
        assert_eq!(names(2), ["pending", "unready"]);
        assert_eq!(names(1), ["pending", "unready", "new"]);
        assert_eq!(names(4), Vec::<String>::new());
    }

    #[test]
    fn counts_take_active_pods_only() {
        let a = pod("a", Phase::Running, true, 30);
        let b = pod("b", Phase::Pending, false, 30);
        let mut c = pod("c", Phase::Running, true, 30);
        c.terminating = true;
        let counts = counts(&[&a, &b, &c], |_| true);
        assert_eq!(
            counts,
            Counts {
                current: 2,
                ready: 1,
                available: 1,
                present: 3
            }
        );
    }
}
