//! One reconcile pass, under the workloads lock: read every workload record and the pods
//! they own, decide with the rules of `crate::workload`, carry the decisions out through the
//! pod layer, and say when the next pass is due.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::state::{DeploymentRecord, PodKey, ReplicaSetRecord, Store, WorkloadKind};
use crate::workload::deployment::{self, Action, RsState};
use crate::workload::{PodView, replica_set};

/// What the worker keeps between passes.
#[derive(Default)]
pub struct Memory {
    /// When each pod (by uid) was first seen ready: available after minReadySeconds.
    ready_since: HashMap<String, Instant>,
    /// Per workload whose pods could not be made: when to try again, and the back-off.
    retry: HashMap<String, (Instant, Duration)>,
    /// Per workload, the last error logged (logged once, not at every retry).
    pub logged: HashMap<String, String>,
}

impl Memory {
    /// Note which pods are ready now; forget the pods that are gone.
    fn observe(&mut self, pods: &[PodView]) {
        let now = Instant::now();
        let ready: HashSet<&str> = pods
            .iter()
            .filter(|p| p.ready && p.active())
            .map(|p| p.uid.as_str())
            .collect();
        self.ready_since
            .retain(|uid, _| ready.contains(uid.as_str()));
        for uid in ready {
            self.ready_since.entry(uid.to_owned()).or_insert(now);
        }
    }

    /// Ready for `min_ready` (as `podutil.IsPodAvailable`); else when it will be.
    fn available(&self, p: &PodView, min_ready: u32) -> Result<(), Option<Instant>> {
        let Some(since) = self.ready_since.get(&p.uid) else {
            return Err(None);
        };
        let at = *since + Duration::from_secs(u64::from(min_ready));
        if min_ready == 0 || at <= Instant::now() {
            Ok(())
        } else {
            Err(Some(at))
        }
    }

    fn may_try(&self, key: &str) -> Result<(), Instant> {
        match self.retry.get(key) {
            Some((at, _)) if *at > Instant::now() => Err(*at),
            _ => Ok(()),
        }
    }

    fn failed(&mut self, key: &str, error: &str) {
        let backoff = self
            .retry
            .get(key)
            .map(|(_, b)| (*b * 2).min(Duration::from_secs(30)))
            .unwrap_or(Duration::from_secs(1));
        self.retry
            .insert(key.to_owned(), (Instant::now() + backoff, backoff));
        if self.logged.get(key).map(String::as_str) != Some(error) {
            log(&format!(
                "{key}: {error} (trying again in {}s)",
                backoff.as_secs()
            ));
            self.logged.insert(key.to_owned(), error.to_owned());
        }
    }

    fn succeeded(&mut self, key: &str) {
        self.retry.remove(key);
        self.logged.remove(key);
    }
}

/// What a pass found.
pub struct Outcome {
    /// Any workload recorded (else the controller is done).
    pub workloads: bool,
    /// The pass changed something (its own changes come back as events).
    pub changed: bool,
    /// When a pass is due without any change (a pod becoming available, a retry, a Job's
    /// deadline).
    pub next: Option<Instant>,
    /// The live supervisors of the workloads' pods (their end needs a pass).
    pub supervisors: Vec<i32>,
}

pub fn log(text: &str) {
    eprintln!(
        "{} controller: {text}",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
}

/// The earliest of two deadlines.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

pub fn pass(cfg: &Config, memory: &mut Memory) -> Outcome {
    let store = cfg.store();
    let lock = match store.workloads_lock() {
        Ok(lock) => lock,
        Err(e) => {
            log(&format!("workloads lock: {e}"));
            return Outcome {
                workloads: true,
                changed: false,
                next: Some(Instant::now() + Duration::from_secs(1)),
                supervisors: Vec::new(),
            };
        }
    };
    let mut pass = Pass {
        cfg,
        store: &store,
        memory,
        pods: crate::workload::pod_views(&store),
        changed: false,
        next: None,
    };
    pass.memory.observe(&pass.pods);
    let deployments = store.list_deployments();
    let mut replica_sets = store.list_replica_sets();
    for d in &deployments {
        pass.deployment(d, &mut replica_sets);
    }
    for rs in &replica_sets {
        pass.replica_set(rs, &deployments);
    }
    super::jobs::sync(&mut pass);
    pass.collect_orphans(&replica_sets);
    drop(lock);
    let supervisors = pass.pods.iter().filter_map(|p| p.supervisor).collect();
    Outcome {
        workloads: store.has_workloads(),
        changed: pass.changed,
        next: pass.next,
        supervisors,
    }
}

/// One pass's view of the node and what it has done (for each controller's part of it).
pub(super) struct Pass<'a> {
    pub cfg: &'a Config,
    pub store: &'a Store,
    pub memory: &'a mut Memory,
    /// Every pod some workload owns.
    pub pods: Vec<PodView>,
    pub changed: bool,
    /// When the next pass is due (see [`Pass::wake_at`]).
    pub next: Option<Instant>,
}

impl Pass<'_> {
    /// A pass is due at `at` at the latest.
    pub fn wake_at(&mut self, at: Instant) {
        self.next = earliest(self.next, Some(at));
    }

    pub fn pods_of(&self, kind: &str, namespace: &str, name: &str) -> Vec<&PodView> {
        self.pods
            .iter()
            .filter(|p| p.key.namespace == namespace && p.owned_by(kind, name))
            .collect()
    }

    /// The counts of ReplicaSet `rs`'s pods; notes when a ready pod becomes available.
    fn counts(&mut self, rs: &ReplicaSetRecord) -> replica_set::Counts {
        let pods = self.pods_of("ReplicaSet", &rs.namespace, &rs.name);
        let mut next = None;
        let counts = replica_set::counts(&pods, |p| {
            match self.memory.available(p, rs.min_ready_seconds) {
                Ok(()) => true,
                Err(at) => {
                    next = earliest(next, at);
                    false
                }
            }
        });
        self.next = earliest(self.next, next);
        counts
    }

    fn deployment(&mut self, d: &DeploymentRecord, replica_sets: &mut Vec<ReplicaSetRecord>) {
        let owned = |rs: &ReplicaSetRecord| {
            rs.namespace == d.namespace
                && rs
                    .deployment
                    .as_ref()
                    .is_some_and(|(name, _)| name == &d.name)
        };
        let states: Vec<RsState> = replica_sets
            .iter()
            .filter(|rs| owned(rs))
            .cloned()
            .collect::<Vec<_>>()
            .iter()
            .map(|rs| RsState {
                name: rs.name.clone(),
                hash: rs.template_hash.clone(),
                replicas: rs.replicas,
                counts: self.counts(rs),
                revision: rs.revision(),
                created_at: rs.created_at,
            })
            .collect();
        for action in deployment::sync(&d.plan, &states) {
            let result = self.carry_out(d, &action, replica_sets);
            if let Err(e) = result {
                log(&format!(
                    "deployment {}/{}: {action:?}: {e}",
                    d.namespace, d.name
                ));
            }
        }
    }

    fn carry_out(
        &mut self,
        d: &DeploymentRecord,
        action: &Action,
        replica_sets: &mut Vec<ReplicaSetRecord>,
    ) -> Result<(), crate::state::StateError> {
        self.changed = true;
        let find = |sets: &mut Vec<ReplicaSetRecord>, name: &str| {
            sets.iter()
                .position(|r| r.namespace == d.namespace && r.name == name)
        };
        match action {
            Action::Create { revision, replicas } => {
                let rs = crate::workload::new_replica_set(d, *revision, *replicas);
                log(&format!(
                    "deployment {}/{}: created replicaset {} (revision {revision}, {replicas} replicas)",
                    d.namespace, d.name, rs.name
                ));
                self.store.save_replica_set(&rs)?;
                self.scaling_event(d, &rs.name, 0, *replicas);
                replica_sets.push(rs);
            }
            Action::Scale { name, replicas } => {
                if let Some(i) = find(replica_sets, name) {
                    let from = replica_sets[i].replicas;
                    log(&format!(
                        "deployment {}/{}: scaled replicaset {name} from {from} to {replicas}",
                        d.namespace, d.name
                    ));
                    replica_sets[i].replicas = *replicas;
                    self.store.save_replica_set(&replica_sets[i])?;
                    self.scaling_event(d, name, from, *replicas);
                }
            }
            Action::Revise { name, revision } => {
                if let Some(i) = find(replica_sets, name) {
                    replica_sets[i].set_revision(*revision);
                    self.store.save_replica_set(&replica_sets[i])?;
                }
            }
            Action::Delete { name } => {
                if let Some(i) = find(replica_sets, name) {
                    let rs = replica_sets.remove(i);
                    self.store
                        .remove_workload(WorkloadKind::ReplicaSet, &rs.key())?;
                }
            }
        }
        Ok(())
    }

    /// The Deployment's `ScalingReplicaSet` event, in the deployment controller's words.
    fn scaling_event(&self, d: &DeploymentRecord, rs: &str, from: u32, to: u32) {
        if from == to {
            return;
        }
        let way = if to > from { "up" } else { "down" };
        self.store.add_workload_event(
            WorkloadKind::Deployment,
            &d.key(),
            "Normal",
            "ScalingReplicaSet",
            format!("Scaled {way} replica set {rs} from {from} to {to}"),
        );
    }

    fn replica_set(&mut self, rs: &ReplicaSetRecord, deployments: &[DeploymentRecord]) {
        if let Some((owner, _)) = &rs.deployment
            && !deployments
                .iter()
                .any(|d| &d.name == owner && d.namespace == rs.namespace)
        {
            // Its Deployment was deleted: the garbage collector's cascade.
            let _ = self
                .store
                .remove_workload(WorkloadKind::ReplicaSet, &rs.key());
            self.changed = true;
            return;
        }
        let pods = self.pods_of("ReplicaSet", &rs.namespace, &rs.name);
        let decision = replica_set::sync(rs, &pods);
        let key = format!("replicaset {}/{}", rs.namespace, rs.name);
        for pod in decision.remove.iter().chain(&decision.delete) {
            self.rs_event(rs, "SuccessfulDelete", format!("Deleted pod: {}", pod.name));
        }
        for pod in &decision.delete {
            self.stop(pod, None);
        }
        // A lost pod's teardown (its sandbox's network: tens of ms) waits until its
        // replacement is made, unless the replacement needs what it still holds (a hostPort).
        let host_ports = !crate::net::hostport::of_plan(&rs.template.plan).is_empty();
        if host_ports {
            for pod in &decision.remove {
                self.remove(pod);
            }
        }
        self.make_pods(rs, decision.create, &key);
        if !host_ports {
            for pod in &decision.remove {
                self.remove(pod);
            }
        }
    }

    /// `n` new pods of `rs`, with their events.
    fn make_pods(&mut self, rs: &ReplicaSetRecord, n: usize, key: &str) {
        if n == 0 {
            return;
        }
        let taken: HashSet<String> = self.store.list().into_iter().map(|r| r.plan.name).collect();
        let plans = crate::workload::replica_set_pods(rs, n, &taken);
        match self.create(key, &plans) {
            Some(made) => {
                for pod in made {
                    self.rs_event(rs, "SuccessfulCreate", format!("Created pod: {}", pod.name));
                }
            }
            None => {
                if let Some(error) = self.memory.logged.get(key).cloned() {
                    self.rs_event(rs, "FailedCreate", format!("Error creating: {error}"));
                }
            }
        }
    }

    /// An event of ReplicaSet `rs`, in the replicaset controller's words.
    fn rs_event(&self, rs: &ReplicaSetRecord, reason: &str, message: String) {
        let kind = if reason == "FailedCreate" {
            "Warning"
        } else {
            "Normal"
        };
        self.store
            .add_workload_event(WorkloadKind::ReplicaSet, &rs.key(), kind, reason, message);
    }

    /// Make `plans` for workload `key` (unless it is backing off after a failure; `key` names
    /// the workload in the log, e.g. `job default/pi`).
    /// The pods made, or None (backing off, or failed: the error is logged and kept in
    /// `memory.logged[key]`).
    pub fn create(&mut self, key: &str, plans: &[crate::spec::PodPlan]) -> Option<Vec<PodKey>> {
        if let Err(at) = self.memory.may_try(key) {
            self.next = earliest(self.next, Some(at));
            return None;
        }
        self.changed = true;
        match crate::pod::apply::create_pods(self.cfg, plans) {
            Ok(made) => {
                self.memory.succeeded(key);
                let names: Vec<&str> = made.iter().map(|(k, _)| k.name.as_str()).collect();
                log(&format!("{key}: created pod {}", names.join(", ")));
                Some(made.into_iter().map(|(k, _)| k).collect())
            }
            Err(e) => {
                self.memory.failed(key, &e.to_string());
                let (at, _) = self.memory.retry[key];
                self.next = earliest(self.next, Some(at));
                None
            }
        }
    }

    /// Ask pod `key` to stop (its supervisor stops and removes it in its own time).
    pub fn stop(&mut self, key: &PodKey, grace: Option<i64>) {
        self.changed = true;
        match crate::pod::delete::request_stop(self.cfg, key, grace) {
            Ok((stopping, _)) if stopping.supervised() => {
                log(&format!("deleting pod {key}"));
            }
            Ok((stopping, _)) => {
                // Nothing keeps it: remove it now.
                let _ = crate::pod::delete::finish(self.cfg, stopping);
            }
            Err(e) => log(&format!("delete pod {key}: {e}")),
        }
    }

    /// Remove pod `key` at once: its supervisor is gone (the pod's processes are killed and
    /// everything its record names removed), or it finished.
    pub fn remove(&mut self, key: &PodKey) {
        log(&format!(
            "removing pod {key} (its supervisor is gone, or it finished)"
        ));
        self.stop(key, Some(0));
    }

    /// Pods whose owner is not recorded (deleted, or a crash between a delete's steps).
    fn collect_orphans(&mut self, replica_sets: &[ReplicaSetRecord]) {
        let jobs: HashSet<(String, String)> = self
            .store
            .list_jobs()
            .into_iter()
            .map(|j| (j.namespace, j.name))
            .collect();
        let sets: HashSet<(&str, &str)> = replica_sets
            .iter()
            .map(|r| (r.namespace.as_str(), r.name.as_str()))
            .collect();
        let orphans: Vec<PodKey> = self
            .pods
            .iter()
            .filter(|p| !p.terminating)
            .filter(|p| match &p.owner {
                Some((kind, name)) if kind == "ReplicaSet" => {
                    !sets.contains(&(p.key.namespace.as_str(), name.as_str()))
                }
                Some((kind, name)) if kind == "Job" => {
                    !jobs.contains(&(p.key.namespace.clone(), name.clone()))
                }
                _ => false,
            })
            .map(|p| p.key.clone())
            .collect();
        for key in orphans {
            log(&format!("pod {key} has no owner left"));
            self.stop(&key, None);
        }
    }
}
