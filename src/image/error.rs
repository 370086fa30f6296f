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

    /// What a registry answered (not found, a digest mismatch, ...).
    #[error("{0}")]
    Registry(String),

    /// The registry (or its token server) refused the credentials, or wanted some: what it
    /// said, and which credentials were sent (a user name and where it came from, never a
    /// password or token).
    #[error(
        "unauthorized: {detail}{}",
        .credentials.as_ref().map(|c| format!("; {c}")).unwrap_or_default()
    )]
    Unauthorized {
        detail: String,
        credentials: Option<CredentialsUsed>,
    },

    /// The TLS connection to the registry failed; for a certificate that is not trusted, where
    /// its CA certificate would be read from.
    #[error(
        "TLS with the registry failed: {detail}{}",
        .certs_dir.as_ref().map(|d| format!(
            " (to trust the registry's certificate, put its CA certificate, a PEM *.crt file, in {})",
            d.display()
        )).unwrap_or_default()
    )]
    Tls {
        detail: String,
        certs_dir: Option<PathBuf>,
    },

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

/// The credentials a pull sent to a registry, as an error tells them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsUsed {
    /// None: nothing for the registry in any of `searched` (auth files, pull secrets).
    None {
        registry: String,
        searched: Vec<String>,
    },
    /// A user's, from `source`.
    User { username: String, source: String },
}

impl std::fmt::Display for CredentialsUsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialsUsed::None { registry, searched } if searched.is_empty() => {
                write!(f, "no credentials for {registry} were given")
            }
            CredentialsUsed::None { registry, searched } => write!(
                f,
                "no credentials for {registry} in {}",
                searched.join(", ")
            ),
            CredentialsUsed::User { username, source } => {
                write!(f, "sent the credentials of user {username:?} from {source}")
            }
        }
    }
}

impl ImageError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
        let context = context.into();
        move |source| ImageError::Io { context, source }
    }
}

pub type Result<T> = std::result::Result<T, ImageError>;
