//! Images as local root filesystems (pulling from registries is a later issue).
//!
//! An image is a read-only root filesystem directory plus an OCI image config (Env, Entrypoint,
//! Cmd, WorkingDir, User, created), kept in an [`ImageStore`] under the image root
//! (`/var/lib/podrun/images`, `--image-root`, `PODRUN_IMAGE_ROOT`). `podrun image import` makes
//! one from a directory or a tarball; names are normalised as docker's ([`Reference`]).
//!
//! For running a container from an image: [`ImageStore::resolve`] gives the [`Image`] (its
//! `rootfs` is the overlay's lower directory, never to be written), and [`apply_image`] (or
//! [`effective_command`], [`image_env`], [`working_dir`], [`user`] with [`resolve_user`])
//! turns the container's command, args, env and workingDir into what runs, with Kubernetes'
//! rules. [`image_problems`] checks a pod's images before anything is created.

mod check;
mod config;
mod copy;
mod error;
mod reference;
mod runtime;
mod store;
mod unpack;
mod user;

#[cfg(test)]
mod store_tests;

pub use check::{image_problems, resolve_images};
pub use config::{ImageConfigOverrides, SUPPORTED_CHANGES, image_configuration};
pub use error::{ImageError, Result};
pub use oci_spec::image::ImageConfiguration;
pub use reference::Reference;
pub use runtime::{DEFAULT_PATH, apply_image, effective_command, image_env, user, working_dir};
pub use store::{DEFAULT_IMAGE_ROOT, Image, ImageStore, Removed};
pub use user::{ExecUser, resolve_user};
