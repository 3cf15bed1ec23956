//! Readiness reasons and the `Ready` condition both kinds report.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Why an object is, or is not, ready: the `reason` of its `Ready`
/// condition (stable, CamelCase, for alerts and scripts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// Ready: the key is in the Secret and in the namespace's bundle.
    Ready,
    /// The key exists; the namespace's bundle does not carry it yet.
    BundlePending,
    /// The Secret is being created.
    KeyPending,
    /// The spec does not give a valid SPIFFE ID or overlap.
    InvalidSpec,
    /// The trust domain is already backed by the other kind.
    TrustDomainConflict,
    /// Another object already has this SPIFFE ID.
    DuplicateSpiffeId,
    /// The Secret name is taken by an object this identity does not own.
    SecretConflict,
    /// The Secret's key does not parse.
    InvalidKey,
    /// The bundle ConfigMap would exceed Kubernetes' 1 MiB object limit.
    BundleTooLarge,
    /// Claims: the delivered Secret is not there yet.
    WaitingForSecret,
    /// Claims: the delivered Secret's key is unusable.
    InvalidSecret,
    /// Claims: the delivered `id` is another identity.
    IdentityMismatch,
    /// Claims: the delivered bundle is not there yet.
    WaitingForBundle,
    /// Claims: the delivered bundle does not parse.
    InvalidBundle,
    /// Claims: the delivered bundle is for another trust domain.
    WrongTrustDomain,
    /// Claims: the delivered bundle lacks the claimed identity.
    IdentityNotInBundle,
    /// Claims: the delivered key is not among the identity's bundle keys.
    KeyNotInBundle,
    /// Claims: `bundleFrom` names a namespace it may not read.
    ForbiddenNamespace,
    /// Claims: two claims of one namespace deliver different bundles.
    BundleSourceConflict,
    /// Claims: no source mode is set.
    NoSource,
    /// The API server refused or failed a request.
    ApiError,
}

impl Reason {
    /// The condition reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ready => "Ready",
            Reason::BundlePending => "BundlePending",
            Reason::KeyPending => "KeyPending",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::TrustDomainConflict => "TrustDomainConflict",
            Reason::DuplicateSpiffeId => "DuplicateSpiffeID",
            Reason::SecretConflict => "SecretConflict",
            Reason::InvalidKey => "InvalidKey",
            Reason::BundleTooLarge => "BundleTooLarge",
            Reason::WaitingForSecret => "WaitingForSecret",
            Reason::InvalidSecret => "InvalidSecret",
            Reason::IdentityMismatch => "IdentityMismatch",
            Reason::WaitingForBundle => "WaitingForBundle",
            Reason::InvalidBundle => "InvalidBundle",
            Reason::WrongTrustDomain => "WrongTrustDomain",
            Reason::IdentityNotInBundle => "IdentityNotInBundle",
            Reason::KeyNotInBundle => "KeyNotInBundle",
            Reason::ForbiddenNamespace => "ForbiddenNamespace",
            Reason::BundleSourceConflict => "BundleSourceConflict",
            Reason::NoSource => "NoSource",
            Reason::ApiError => "ApiError",
        }
    }

    /// Whether a waiting state that resolves by itself (not a fault to report
    /// with a Warning event).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Reason::Ready
                | Reason::BundlePending
                | Reason::KeyPending
                | Reason::WaitingForSecret
                | Reason::WaitingForBundle
        )
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verdict: ready or not, why, and what to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The reason.
    pub reason: Reason,
    /// The message (empty when ready).
    pub message: String,
}

impl Verdict {
    /// Ready.
    pub fn ready() -> Self {
        Self {
            reason: Reason::Ready,
            message: String::new(),
        }
    }

    /// Not ready, for `reason`.
    pub fn not_ready(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }

    /// Whether ready.
    pub fn is_ready(&self) -> bool {
        self.reason == Reason::Ready
    }
}

/// The `Ready` condition for `verdict`, keeping the transition time of
/// `previous` when the status did not change.
pub fn ready_condition(
    verdict: &Verdict,
    generation: Option<i64>,
    previous: &[Condition],
    now: Timestamp,
) -> Condition {
    let status = if verdict.is_ready() { "True" } else { "False" };
    let message = if verdict.is_ready() {
        "the key is in the Secret and in the namespace's bundle".to_owned()
    } else {
        verdict.message.clone()
    };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: "Ready".into(),
        status: status.into(),
        reason: verdict.reason.as_str().into(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// Turns a status object into a JSON merge patch that sets every field,
/// writing `null` for empty ones (so a field set earlier, by this operator or
/// by the upstream one, is cleared rather than left behind).
pub fn merge_patch_of(status: serde_json::Value, fields: &[&str]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    let obj = status.as_object().cloned().unwrap_or_default();
    for f in fields {
        let v = obj.get(*f).cloned().unwrap_or(serde_json::Value::Null);
        let empty = match &v {
            serde_json::Value::String(s) => s.is_empty(),
            serde_json::Value::Array(a) => a.is_empty(),
            serde_json::Value::Bool(b) => !b,
            serde_json::Value::Null => true,
            _ => false,
        };
        out.insert(
            (*f).to_owned(),
            if empty { serde_json::Value::Null } else { v },
        );
    }
    serde_json::json!({ "status": out })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
        let c0 = ready_condition(&Verdict::ready(), Some(1), &[], t0);
        let c1 = ready_condition(&Verdict::ready(), Some(2), std::slice::from_ref(&c0), t1);
        assert_eq!(c1.last_transition_time, Time(t0));
        let c2 = ready_condition(
            &Verdict::not_ready(Reason::BundleTooLarge, "too big"),
            Some(2),
            &[c1],
            t1,
        );
        assert_eq!(c2.last_transition_time, Time(t1));
        assert_eq!(c2.reason, "BundleTooLarge");
        assert_eq!(c2.status, "False");
    }

    #[test]
    fn merge_patch_clears_empty_fields() {
        let p = merge_patch_of(
            serde_json::json!({"ready": false, "message": "", "keyID": "k", "previousKeys": []}),
            &["ready", "message", "keyID", "previousKeys", "spiffeID"],
        );
        assert_eq!(
            p,
            serde_json::json!({"status": {"ready": null, "message": null, "keyID": "k",
                                          "previousKeys": null, "spiffeID": null}})
        );
    }
}
