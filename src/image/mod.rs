//! Images: pulled from registries or imported, kept as shared layers.
//!
//! An image is a stack of read-only layers plus an OCI image config (Env, Entrypoint, Cmd,
//! WorkingDir, User, created), kept in an [`ImageStore`] under the image root
//! (`/var/lib/podrun/images`, `--image-root`, `PODRUN_IMAGE_ROOT`). [`ensure`] fetches one from a
//! registry (mirrors and credentials by [`Registries`] and [`AuthFiles`]), `podrun image import`
//! makes one from a directory or a tarball, [`ImageArchive`] imports OCI layouts and archives
//! and `docker save` archives; names are normalised as docker's ([`Reference`]);
//! [`PullPolicy`] says when a container start pulls.
//!
//! For running a container from an image: [`ImageStore::resolve`] gives the [`Image`] (its
//! `layers` are the overlay's lower directories, never to be written); `container::image`
//! turns it and the container's command, args, env, workingDir and user into what runs, with
//! Kubernetes' rules. [`image_problems`] checks a pod's images before anything is created.

mod archive;
mod assemble;
mod auth;
mod check;
mod config;
mod copy;
mod error;
mod layers;
mod policy;
mod pull;
mod reference;
mod registries;
mod store;
mod unpack;

#[cfg(test)]
mod store_tests;

pub use archive::{ArchiveKind, ImageArchive, LoadEvent, Loaded};
pub use auth::{AuthConfig, AuthError, AuthFiles, Credentials, default_auth_files};
pub use check::{image_problems, resolve_images};
pub use config::{ImageConfigOverrides, SUPPORTED_CHANGES, image_configuration};
pub use error::{CredentialsUsed, ImageError, Result};
pub use layers::find_in_layers;
pub use oci_spec::image::ImageConfiguration;
pub use policy::{LOCAL_DOMAINS, PullPolicy};
pub use pull::{PullEvent, ensure};
pub use reference::Reference;
pub use registries::{DEFAULT_REGISTRIES_CONF, Endpoint, Registries, RegistriesError};
pub use store::{DEFAULT_IMAGE_ROOT, Image, ImageStore, Removed};
pub use unpack::unpack_layer;
