//! An [`UpdateRequest`] beside a pod's record (`update.json`): the record is the
//! supervisor's while it lives, so apply hands it the updated plan there and signals it
//! (SIGUSR1), as `delete` hands over its deletion request with SIGTERM.

use std::fs;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{PodKey, StateError, Store};
use crate::container::image::ContainerImage;
use crate::spec::PodPlan;

/// A pod's plan changed by apply, for its supervisor: the new plan (same uid, same
/// containers), and the images apply resolved for the containers whose image changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateRequest {
    pub plan: PodPlan,
    /// (container name, its new image as resolved).
    pub images: Vec<(String, ContainerImage)>,
    pub requested_at: DateTime<Utc>,
}

impl Store {
    /// Hand pod `key`'s supervisor an update (written aside, then renamed into place: the
    /// supervisor never reads half of one).
    pub fn request_update(&self, key: &PodKey, request: &UpdateRequest) -> Result<(), StateError> {
        let path = self.paths(key).update_request();
        let data = serde_json::to_vec(request).expect("an UpdateRequest serialises");
        super::write_private(&path, &data)
    }

    /// The pending update of pod `key`, taken (the file is removed): for its supervisor.
    pub fn take_update_request(&self, key: &PodKey) -> Option<UpdateRequest> {
        let path = self.paths(key).update_request();
        let bytes = fs::read(&path).ok()?;
        let _ = fs::remove_file(&path);
        serde_json::from_slice(&bytes).ok()
    }

    /// An update of pod `key` is waiting for its supervisor.
    pub fn update_pending(&self, key: &PodKey) -> bool {
        self.paths(key).update_request().exists()
    }
}
