//! Images as local root filesystems (pulling from registries is a later issue).
//!
//! An image is a read-only root filesystem directory plus an OCI image config (Env, Entrypoint,
//! Cmd, WorkingDir, User, created), kept in an [`ImageStore`] under the image root
//! (`/var/lib/podrun/images`, `--image-root`, `PODRUN_IMAGE_ROOT`). `podrun image import` makes
//! one from a directory or a tarball; names are normalised as docker's ([`Reference`]).
//!
//! For running a container from an image: [`ImageStore::resolve`] gives the [`Image`] (its
//! `rootfs` is the overlay's lower directory, never to be written); `container::image` turns
//! it and the container's command, args, env, workingDir and user into what runs, with
//! Kubernetes' rules. [`image_problems`] checks a pod's images before anything is created.

mod auth;
mod check;
mod config;
mod copy;
mod error;
mod layers;
mod pull;
mod reference;
mod registries;
mod store;
mod unpack;

#[cfg(test)]
mod store_tests;

pub use auth::{AuthConfig, AuthError, AuthFiles, Credentials, default_auth_files};
pub use check::{image_problems, resolve_images};
pub use config::{ImageConfigOverrides, SUPPORTED_CHANGES, image_configuration};
pub use error::{ImageError, Result};
pub use layers::find_in_layers;
pub use oci_spec::image::ImageConfiguration;
pub use pull::{PullEvent, ensure, pull};
pub use reference::Reference;
pub use registries::{DEFAULT_REGISTRIES_CONF, Endpoint, Registries, RegistriesError};
pub use store::{DEFAULT_IMAGE_ROOT, Image, ImageStore, Removed};
pub use unpack::unpack_layer;
