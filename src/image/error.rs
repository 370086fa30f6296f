//! The one error type of the `image` module. Every `Display` is a complete, user-facing message.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid reference format: {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error(
        "image {reference:?} not found in the podrun image store ({root}); \
         import it with: podrun image import DIR {reference}",
        root = .root.display()
    )]
    NotFound { reference: String, root: PathBuf },

    /// An error about one field of a manifest, e.g. `spec.containers[1].image`.
    #[error("{path}: {source}")]
    Field {
        path: String,
        #[source]
        source: Box<ImageError>,
    },

    #[error("image reference {reference:?} is ambiguous: it matches {}", .matches.join(", "))]
    Ambiguous {
        reference: String,
        matches: Vec<String>,
    },

    #[error(
        "image {id} is tagged in several repositories ({}); remove the names one by one or use --force",
        .names.join(", ")
    )]
    MultipleNames { id: String, names: Vec<String> },

    #[error("image {reference:?} is used by pod {pod}; delete the pod first or use --force")]
    InUse { reference: String, pod: String },

    #[error("{}: {reason}", .path.display())]
    BadSource { path: PathBuf, reason: String },

    #[error("archive entry {entry:?} is unsafe: {reason}")]
    UnsafeEntry { entry: String, reason: String },

    /// A pull failed: the image and why (each endpoint's failure).
    #[error("failed to pull image {image:?}: {message}")]
    Pull { image: String, message: String },

    /// What a registry answered (not found, unauthorized, a digest mismatch, ...).
    #[error("{0}")]
    Registry(String),

    /// An image whose manifest, config and blobs do not agree (a digest or diff ID mismatch, a
    /// layer count, a config without diff IDs, a media type podrun does not unpack).
    #[error("{0}")]
    Content(String),

    /// An image archive or layout that cannot be imported: which, and what is wrong with it.
    #[error("image archive {archive}: {message}")]
    Archive { archive: String, message: String },

    /// A layer the store had when a pull began was removed before the pull finished.
    #[error(
        "layer {digest} was removed from the image store while the image was being added; pull again"
    )]
    LayerGone { digest: String },

    /// A layer fetch stopped because another layer of the same pull failed.
    #[error("cancelled: another layer failed")]
    Cancelled,

    #[error("invalid --change {change:?}: {reason}")]
    InvalidChange { change: String, reason: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{context}: {message}")]
    Corrupt { context: String, message: String },
}

impl ImageError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
        let context = context.into();
        move |source| ImageError::Io { context, source }
    }
}

pub type Result<T> = std::result::Result<T, ImageError>;
