//! A container's image at a later start, as the kubelet's `EnsureImageExists` does it at every
//! start: under `Always` the registry is asked again; under `IfNotPresent` only when the store
//! lost the image (`image rm --force` while the pod ran); `Never` (and podrun's local images)
//! never pull. A pull failure is a start error the policy shows as `ErrImagePull`, then
//! `ImagePullBackOff`. The first start needs none of this: apply pulled before it made the pod.

use super::Supervisor;
use super::lifecycle::StartError;
use crate::container::image as container_image;
use crate::image::{self, AuthConfig, AuthFiles, PullPolicy, Reference, Registries};

impl Supervisor {
    /// Make container `i`'s image present for this start (pulling it when its policy says),
    /// its recorded layers and config refreshed; the kubelet's events for it.
    pub(super) fn ensure_image(&mut self, i: usize) -> Result<(), StartError> {
        let Some(source) = self.record.images.clone() else {
            return Ok(()); // a record of an older podrun: as before, the recorded layers
        };
        let spec = &self.record.plan.containers[i];
        let written = spec.image.clone();
        let fail =
            |reason: &'static str, message: String| StartError::ImagePull { reason, message };
        let reference =
            Reference::parse(&written).map_err(|e| fail("InvalidImageName", e.to_string()))?;
        let policy = PullPolicy::of(&spec.image_pull_policy, &reference);
        let store = image::ImageStore::open(&source.image_root);
        let found = store.resolve(&written);
        let present = found.is_ok();
        let c = &self.record.containers[i];
        let first_start = c.restart_count == 0 && c.last_state.is_none();
        if first_start && present {
            return Ok(()); // apply pulled it and said so
        }
        if !policy.pulls(present) {
            if let Err(e) = found {
                return Err(match policy {
                    _ if image::LOCAL_DOMAINS.contains(&reference.domain.as_str()) => {
                        fail("ErrImagePull", e.to_string())
                    }
                    _ => fail(
                        "ErrImageNeverPull",
                        format!(
                            "Container image \"{written}\" is not present with pull policy of Never"
                        ),
                    ),
                });
            }
            self.record.event(
                "Normal",
                "Pulled",
                format!("Container image \"{written}\" already present on machine"),
            );
            return self.refresh_image(i, &source.image_root);
        }
        self.record
            .event("Normal", "Pulling", format!("Pulling image \"{written}\""));
        self.save();
        let started = std::time::Instant::now();
        let pulled = Registries::load(&source.registries_conf)
            .map_err(|e| e.to_string())
            .and_then(|registries| {
                let auth = self.pull_auth().map_err(|e| e.to_string())?;
                image::ensure(&store, &registries, &auth, &reference, true, &mut |_| {})
                    .map_err(|e| e.to_string())
            });
        match pulled {
            Ok((image, _)) => {
                let s = started.elapsed().as_secs_f64();
                self.record.event(
                    "Normal",
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{written}\" in {s:.3}s ({s:.3}s including waiting). Image size: {} bytes.",
                        image.size
                    ),
                );
                self.refresh_image(i, &source.image_root)
            }
            Err(message) => Err(fail("ErrImagePull", message)),
        }
    }

    /// The image as the store has it now, into the container's record.
    fn refresh_image(&mut self, i: usize, image_root: &std::path::Path) -> Result<(), StartError> {
        let written = self.record.plan.containers[i].image.clone();
        let image = container_image::resolve_image(image_root, &written).map_err(|e| {
            StartError::ImagePull {
                reason: "ErrImagePull",
                message: e.to_string(),
            }
        })?;
        let c = &mut self.record.containers[i];
        if c.image_config.as_ref() != Some(&image) {
            c.image_config = Some(image);
            self.save();
        }
        Ok(())
    }

    /// The pod's pull secrets, then the node's auth files.
    fn pull_auth(&self) -> Result<AuthFiles, image::AuthError> {
        let plan = &self.record.plan;
        let secrets = plan
            .pull_credentials
            .iter()
            .map(|c| {
                let source = format!("secret {}/{}", plan.namespace, c.secret);
                AuthConfig::parse(c.config_json.as_bytes(), &source)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AuthFiles::load(&image::default_auth_files())?.after(secrets))
    }
}
