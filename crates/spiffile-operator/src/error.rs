//! The operator's errors.

/// What went wrong while reconciling, serving or starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request to the API server failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done (names the object).
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A key could not be generated.
    #[error("cannot generate a key: {0}")]
    Key(#[from] spiffile_provision::KeyError),
    /// Serializing an object failed (a bug).
    #[error("cannot serialize {what}: {source}")]
    Serialize {
        /// The object.
        what: String,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// The operator could not start.
    #[error("{0}")]
    Startup(String),
}

impl Error {
    /// Wraps a client error with what was being done.
    pub fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Kube { action, source }
    }
}

/// Whether a client error is the API server's "conflict" (HTTP 409).
pub fn is_conflict(e: &kube::Error) -> bool {
    status_code(e) == Some(409)
}

/// Whether a client error is "not found" (HTTP 404).
pub fn is_not_found(e: &kube::Error) -> bool {
    status_code(e) == Some(404)
}

/// Whether a client error is the API server refusing new content in a
/// namespace that is being deleted (403, cause `NamespaceTerminating`):
/// the objects there are about to go, so retrying is pointless.
pub fn is_namespace_terminating(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => {
            s.code == 403
                && s.details
                    .as_ref()
                    .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
        }
        _ => false,
    }
}

impl Error {
    /// Whether this failure is a write refused because the object's
    /// namespace is being deleted (see [`is_namespace_terminating`]).
    pub fn is_namespace_terminating(&self) -> bool {
        matches!(self, Error::Kube { source, .. } if is_namespace_terminating(source))
    }
}

/// The HTTP status of an API error response.
pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}
