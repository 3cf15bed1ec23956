//! The names this operator shares with the upstream Go operator: API group,
//! annotations, labels, data keys, object names. Changing any of them breaks
//! interchangeability, so they live in one place.

/// The API group of both custom resources.
pub const GROUP: &str = "spiffile.io";
/// The API version of both custom resources.
pub const VERSION: &str = "v1alpha1";

/// Annotation on a `ServiceIdentity`: a new value asks for a key rotation.
pub const ROTATE_ANNOTATION: &str = "spiffile.io/rotate";
/// Pod annotation naming the identity (`ServiceIdentity` or
/// `ServiceIdentityClaim`) a pod runs as.
pub const IDENTITY_ANNOTATION: &str = "spiffile.io/identity";
/// Pod annotation `"true"`: inject the identity named like the pod's service
/// account.
pub const INJECT_ANNOTATION: &str = "spiffile.io/inject";
/// Pod annotation set by the webhook on pods it mutated.
pub const INJECTED_ANNOTATION: &str = "spiffile.io/injected";
/// Namespace label that opts a namespace into pod injection (value
/// [`INJECTION_ENABLED`]).
pub const INJECTION_LABEL: &str = "spiffile.io/injection";
/// The value of [`INJECTION_LABEL`] that enables injection.
pub const INJECTION_ENABLED: &str = "enabled";

/// The label on every object the operator creates.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "spiffile-operator";
/// The label selector matching [`MANAGED_BY_LABEL`] = [`MANAGED_BY`].
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=spiffile-operator";

/// The per-namespace ConfigMap holding one bundle per trust domain.
pub const BUNDLE_CONFIGMAP: &str = "spiffile-bundle";
/// Secret data key holding the SPIFFE ID (with a trailing newline).
pub const SECRET_ID_KEY: &str = "id";
/// Secret data key holding the PKCS#8 PEM private key.
pub const SECRET_KEY_KEY: &str = "key.pem";
/// Default data key of a claim's `bundleFrom` reference.
pub const DEFAULT_BUNDLE_KEY: &str = "bundle.json";
/// Suffix of the default Secret name (`<name>-spiffile`).
pub const SECRET_SUFFIX: &str = "-spiffile";

/// The default `spec.rotationOverlap`.
pub const DEFAULT_ROTATION_OVERLAP: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Secret data key holding a staged key during a rotation (this operator
/// only): the new key is published in every bundle before it replaces
/// `key.pem`. Libraries read only `key.pem`; the file is the workload's own
/// next key, so exposing it to the same pod reveals nothing new.
pub const SECRET_STAGED_KEY: &str = "next-key.pem";
/// Secret annotation: the rotate value a staged or completed rotation
/// answers (this operator only; makes an interrupted rotation resumable).
pub const ROTATION_ANNOTATION: &str = "spiffile.io/rotation";
/// Secret annotation: the public JWK the last rotation replaced, kept in the
/// bundle until [`PREVIOUS_EXPIRES_ANNOTATION`] even if the status update
/// that records it was lost to a crash.
pub const PREVIOUS_JWK_ANNOTATION: &str = "spiffile.io/previous-jwk";
/// Secret annotation: when the key in [`PREVIOUS_JWK_ANNOTATION`] leaves the
/// bundle (RFC 3339).
pub const PREVIOUS_EXPIRES_ANNOTATION: &str = "spiffile.io/previous-expires-at";

/// Where the webhook mounts the identity Secret.
pub const IDENTITY_MOUNT_PATH: &str = "/var/run/spiffile/identity";
/// Where the webhook mounts the bundle ConfigMap.
pub const BUNDLE_MOUNT_PATH: &str = "/var/run/spiffile/bundle";
/// Name of the injected Secret volume.
pub const IDENTITY_VOLUME: &str = "spiffile-identity";
/// Name of the injected ConfigMap volume.
pub const BUNDLE_VOLUME: &str = "spiffile-bundle";
/// Mode of the injected key volume's files (0400; upstream leaves 0644).
pub const KEY_VOLUME_MODE: i32 = 0o400;

/// The Lease both implementations use for leader election, so an upstream
/// replica and one of ours never act at the same time during a switch.
pub const LEASE_NAME: &str = "spiffile-operator.spiffile.io";

/// The most a ConfigMap's values may hold in total (the API server's
/// `MaxSecretSize`, checked over `data` and `binaryData` values).
pub const CONFIGMAP_LIMIT: usize = 1024 * 1024;

/// The environment variables the webhook sets.
pub const ENV_ID_FILE: &str = "SPIFFILE_ID_FILE";
/// See [`ENV_ID_FILE`].
pub const ENV_KEY_FILE: &str = "SPIFFILE_KEY_FILE";
/// See [`ENV_ID_FILE`].
pub const ENV_BUNDLE_FILE: &str = "SPIFFILE_BUNDLE_FILE";
/// A container that sets this is configured by hand and left alone.
pub const ENV_DIR: &str = "SPIFFILE_DIR";

/// The data key of a trust domain's bundle in [`BUNDLE_CONFIGMAP`].
pub fn bundle_key(trust_domain: &str) -> String {
    format!("{trust_domain}.json")
}
