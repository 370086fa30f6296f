use super::*;
use crate::spec::workload::IntOrPercent;

fn plan(replicas: u32, strategy: Strategy, hash: &str) -> DeploymentPlan {
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: 'podrun.local/debug:1'}]}\n";
    let Some(crate::spec::Object::Deployment(mut d)) =
        crate::spec::load_str(text, "t").unwrap().into_iter().next()
    else {
        panic!()
    };
    d.replicas = replicas;
    d.strategy = strategy;
    d.template_hash = hash.into();
    d
}

fn rs(name: &str, hash: &str, replicas: u32, revision: u64, age_s: i64) -> RsState {
    RsState {
        name: name.into(),
        hash: Some(hash.into()),
        replicas,
        counts: Counts {
            current: replicas,
            ready: replicas,
            available: replicas,
            present: replicas,
        },
        revision,
        created_at: Utc::now() - chrono::Duration::seconds(age_s),
    }
}

fn surge(s: i32, u: i32) -> Strategy {
    Strategy::RollingUpdate {
        max_surge: IntOrPercent::Int(s),
        max_unavailable: IntOrPercent::Int(u),
    }
}

/// Runs the controller against a world where pods start at once and become available one
/// step later; returns the (total pods, available pods) seen after each step.
fn roll(d: &DeploymentPlan, mut rss: Vec<RsState>) -> (Vec<RsState>, Vec<(u32, u32)>) {
    let mut seen = Vec::new();
    for step in 0..100 {
        // Pods of the last step's scale-ups become available now.
        for r in &mut rss {
            r.counts.available = r.counts.current.min(r.replicas);
            r.counts.ready = r.counts.available;
        }
        let actions = sync(d, &rss);
        if actions.is_empty() {
            return (rss, seen);
        }
        for a in actions {
            match a {
                Action::Create { revision, replicas } => {
                    let mut r = rs(
                        &format!("d-{}", d.template_hash),
                        &d.template_hash,
                        replicas,
                        revision,
                        -step,
                    );
                    r.counts.available = 0;
                    r.counts.ready = 0;
                    rss.push(r);
                }
                Action::Scale { name, replicas } => {
                    let r = rss.iter_mut().find(|r| r.name == name).unwrap();
                    r.replicas = replicas;
                    r.counts.current = replicas;
                    r.counts.present = replicas;
                    r.counts.available = r.counts.available.min(replicas);
                }
                Action::Revise { name, revision } => {
                    rss.iter_mut().find(|r| r.name == name).unwrap().revision = revision;
                }
                Action::Delete { name } => rss.retain(|r| r.name != name),
            }
        }
        let total = rss.iter().map(|r| r.counts.current).sum();
        let available = rss.iter().map(|r| r.counts.available).sum();
        seen.push((total, available));
    }
    panic!("no end: {rss:?}");
}

#[test]
fn a_rolling_update_with_surge_1_never_drops_below_the_replicas() {
    let d = plan(3, surge(1, 0), "new");
    let (rss, seen) = roll(&d, vec![rs("d-old", "old", 3, 1, 100)]);
    assert!(!seen.is_empty());
    for (total, available) in &seen {
        assert!(*total <= 4, "{seen:?}");
        assert!(*available >= 3, "{seen:?}");
    }
    let new = rss.iter().find(|r| r.name == "d-new").unwrap();
    assert_eq!((new.replicas, new.revision), (3, 2));
    assert_eq!(rss.iter().find(|r| r.name == "d-old").unwrap().replicas, 0);
}

#[test]
fn default_fenceposts_roll_out_and_keep_history() {
    let mut d = plan(4, Strategy::default(), "h3");
    d.revision_history_limit = 1;
    let olds = vec![rs("d-h1", "h1", 0, 1, 300), rs("d-h2", "h2", 4, 2, 200)];
    let olds = olds
        .into_iter()
        .map(|mut r| {
            if r.replicas == 0 {
                r.counts = Counts::default();
            }
            r
        })
        .collect();
    let (rss, seen) = roll(&d, olds);
    for (total, available) in &seen {
        assert!(*total <= 5 && *available >= 3, "{seen:?}");
    }
    let names: Vec<&str> = rss.iter().map(|r| r.name.as_str()).collect();
    // h1 (oldest revision, empty) is beyond the limit of 1: deleted; h2 kept.
    assert_eq!(names, ["d-h2", "d-h3"]);
}

#[test]
fn recreate_waits_for_the_old_pods_to_go() {
    let d = plan(2, Strategy::Recreate, "new");
    let old = rs("d-old", "old", 2, 1, 100);
    assert_eq!(
        sync(&d, std::slice::from_ref(&old)),
        [Action::Scale {
            name: "d-old".into(),
            replicas: 0
        }]
    );
    let mut stopping = old.clone();
    stopping.replicas = 0;
    stopping.counts.current = 0;
    assert_eq!(sync(&d, &[stopping.clone()]), []);
    stopping.counts = Counts::default();
    assert_eq!(
        sync(&d, &[stopping]),
        [Action::Create {
            revision: 2,
            replicas: 2
        }]
    );
}

#[test]
fn a_rollback_revives_the_old_replica_set_as_the_newest_revision() {
    let d = plan(2, surge(1, 0), "h1");
    let mut h1 = rs("d-h1", "h1", 0, 1, 200);
    h1.counts = Counts::default();
    let h2 = rs("d-h2", "h2", 2, 2, 100);
    let actions = sync(&d, &[h1, h2]);
    assert_eq!(
        actions,
        [
            Action::Revise {
                name: "d-h1".into(),
                revision: 3
            },
            Action::Scale {
                name: "d-h1".into(),
                replicas: 1
            }
        ]
    );
}

#[test]
fn scaling_without_a_template_change() {
    let d = plan(6, surge(1, 0), "h");
    let r = rs("d-h", "h", 3, 1, 100);
    assert_eq!(
        sync(&d, std::slice::from_ref(&r)),
        [Action::Scale {
            name: "d-h".into(),
            replicas: 6
        }]
    );
    let d = plan(2, surge(1, 0), "h");
    assert_eq!(
        sync(&d, &[r]),
        [Action::Scale {
            name: "d-h".into(),
            replicas: 2
        }]
    );
}

#[test]
fn rollout_status_words() {
    let s = Status {
        replicas: 4,
        updated: 1,
        ready: 4,
        available: 4,
    };
    assert_eq!(
        rollout_status("web", 3, &s).0,
        "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated..."
    );
    let s = Status { updated: 3, ..s };
    assert_eq!(
        rollout_status("web", 3, &s).0,
        "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination..."
    );
    let s = Status {
        replicas: 3,
        available: 2,
        ..s
    };
    assert!(
        rollout_status("web", 3, &s)
            .0
            .ends_with("2 of 3 updated replicas are available...")
    );
    let s = Status { available: 3, ..s };
    assert_eq!(
        rollout_status("web", 3, &s),
        ("deployment \"web\" successfully rolled out".into(), true)
    );
}
