//! The images of an apply's pods, made present before anything is created for them, by each
//! container's `imagePullPolicy` as the kubelet applies it:
//!
//! - `IfNotPresent` (the default for a tagged image): pulled only when the store lacks it, a
//!   lookup and no registry round trip otherwise;
//! - `Always` (the default for no tag or `:latest`): the registry is asked again (layers the
//!   store has are not fetched again);
//! - `Never`: it must be in the store (`ErrImageNeverPull` otherwise).
//!
//! Images of podrun's own namespaces (`podrun.local/...`, `localhost/...`) are made on this
//! machine (`podrun image import`) and never pulled, as podman treats `localhost/`.
//!
//! Credentials: the pod's `imagePullSecrets` first, then the node's auth files. One image named
//! by several pods is pulled once.

use std::time::{Duration, Instant};

use super::{Result, failed as msg};
use crate::config::Config;
use crate::image::{
    self, AuthConfig, AuthFiles, ImageError, PullEvent, PullPolicy, Reference, Registries,
};
use crate::spec::PodPlan;

/// What apply did about a container image, for the pod's events.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageOutcome {
    /// The store had it (`Container image "X" already present on machine`).
    Present,
    /// Pulled (`Successfully pulled image "X" in 1.2s ... Image size: N bytes.`).
    Pulled { took: Duration, size: u64 },
    /// Not pulled and not checked here (a local image; `Never`): the store must have it.
    Local,
}

/// The outcome of each distinct image reference of `pods` (as written), pulling what their
/// policies say. All failures are named in one error; nothing is created either way.
pub fn ensure_images(
    cfg: &Config,
    pods: &[PodPlan],
    progress: &mut dyn FnMut(PullEvent),
) -> Result<Vec<(String, ImageOutcome)>> {
    let store = cfg.images();
    let mut outcomes: Vec<(String, ImageOutcome)> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let mut registries: Option<Registries> = None;
    for plan in pods {
        for (i, c) in plan.containers.iter().enumerate() {
            if outcomes.iter().any(|(r, _)| *r == c.image) {
                continue;
            }
            let Ok(reference) = Reference::parse(&c.image) else {
                continue; // the image check names it
            };
            let always = match PullPolicy::of(&c.image_pull_policy, &reference) {
                PullPolicy::Never => {
                    outcomes.push((c.image.clone(), ImageOutcome::Local));
                    continue;
                }
                policy => policy == PullPolicy::Always,
            };
            if registries.is_none() {
                registries =
                    Some(Registries::load(&cfg.registries_conf).map_err(|e| msg(e.to_string()))?);
            }
            let auth = auth_for(pods, &c.image)?;
            let started = Instant::now();
            let pulled = image::ensure(
                &store,
                registries.as_ref().expect("loaded"),
                &auth,
                &reference,
                always,
                progress,
            );
            match pulled {
                Ok((_, false)) => outcomes.push((c.image.clone(), ImageOutcome::Present)),
                Ok((image, true)) => outcomes.push((
                    c.image.clone(),
                    ImageOutcome::Pulled {
                        took: started.elapsed(),
                        size: image.size,
                    },
                )),
                Err(e) => problems.push(where_(plan, i, e)),
            }
        }
    }
    if problems.is_empty() {
        Ok(outcomes)
    } else {
        problems.dedup();
        Err(msg(problems.join("\n")))
    }
}

/// `Never` and a missing image: the kubelet's `ErrImageNeverPull` message, else None.
pub fn never_pull_problem(cfg: &Config, plan: &PodPlan) -> Option<String> {
    let store = cfg.images();
    plan.containers.iter().enumerate().find_map(|(i, c)| {
        (c.image_pull_policy == "Never" && store.resolve(&c.image).is_err()).then(|| {
            format!(
                "{}: {}.image: ErrImageNeverPull: Container image \"{}\" is not present with pull policy of Never",
                owner_of(plan),
                plan.container_field(i),
                c.image
            )
        })
    })
}

/// The pod's events for its images: `Pulling` and `Pulled`, as the kubelet writes them.
pub fn image_events(
    plan: &PodPlan,
    outcomes: &[(String, ImageOutcome)],
) -> Vec<(&'static str, &'static str, String)> {
    let mut events = Vec::new();
    for c in &plan.containers {
        let outcome = outcomes.iter().find(|(r, _)| *r == c.image).map(|(_, o)| o);
        match outcome {
            Some(ImageOutcome::Pulled { took, size }) => {
                events.push((
                    "Normal",
                    "Pulling",
                    format!("Pulling image \"{}\"", c.image),
                ));
                let s = took.as_secs_f64();
                events.push((
                    "Normal",
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{}\" in {s:.3}s ({s:.3}s including waiting). Image size: {size} bytes.",
                        c.image
                    ),
                ));
            }
            Some(ImageOutcome::Present) | Some(ImageOutcome::Local) | None => events.push((
                "Normal",
                "Pulled",
                format!("Container image \"{}\" already present on machine", c.image),
            )),
        }
    }
    events
}

/// The node's auth files after the pull secrets of every pod naming `image`.
fn auth_for(pods: &[PodPlan], image: &str) -> Result<AuthFiles> {
    let files = AuthFiles::load(&image::default_auth_files()).map_err(|e| msg(e.to_string()))?;
    let mut secrets = Vec::new();
    for plan in pods
        .iter()
        .filter(|p| p.containers.iter().any(|c| c.image == image))
    {
        for creds in &plan.pull_credentials {
            let source = format!("secret {}/{}", plan.namespace, creds.secret);
            let config = AuthConfig::parse(creds.config_json.as_bytes(), &source)
                .map_err(|e| msg(format!("{}: imagePullSecrets: {e}", owner_of(plan))))?;
            secrets.push(config);
        }
    }
    Ok(files.after(secrets))
}

/// `pod/NAME` or, for a Deployment's pod, `deployment.apps/NAME` (its template's problem).
fn owner_of(plan: &PodPlan) -> String {
    match plan.owner.as_ref().and_then(|o| o.deployment.as_deref()) {
        Some(d) => format!("deployment.apps/{d}"),
        None => format!("pod/{}", plan.name),
    }
}

fn where_(plan: &PodPlan, i: usize, e: ImageError) -> String {
    let template = if plan
        .owner
        .as_ref()
        .and_then(|o| o.deployment.as_ref())
        .is_some()
    {
        "spec.template."
    } else {
        ""
    };
    format!(
        "{}: {template}{}.image: {e}",
        owner_of(plan),
        plan.container_field(i)
    )
}
