//! Checking a pod's images before anything is created for it.

use super::error::{ImageError, Result};
use super::store::{Image, ImageStore};
use crate::spec::PodPlan;

/// The image of every container of `plan`, in order; the first that is missing or invalid is an
/// error that says where it is: `spec.containers[1].image: image "foo:latest" not found in the
/// podrun image store (/var/lib/podrun/images); import it with: podrun image import DIR
/// foo:latest`.
pub fn resolve_images(store: &ImageStore, plan: &PodPlan) -> Result<Vec<Image>> {
    plan.containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            store.resolve(&c.image).map_err(|e| ImageError::Field {
                path: format!("{}.image", plan.container_field(i)),
                source: Box::new(e),
            })
        })
        .collect()
}

/// Every container image of `plan` that is missing or invalid, each as the error
/// [`resolve_images`] gives for it (so a manifest with several missing images names them all).
pub fn image_problems(store: &ImageStore, plan: &PodPlan) -> Vec<ImageError> {
    plan.containers
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            store.resolve(&c.image).err().map(|e| ImageError::Field {
                path: format!("{}.image", plan.container_field(i)),
                source: Box::new(e),
            })
        })
        .collect()
}
