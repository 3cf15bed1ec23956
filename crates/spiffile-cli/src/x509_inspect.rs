//! `spiffile inspect` on a PEM certificate (chain): the SPIFFE ID, validity,
//! issuer, key usage, and whether it is a valid X.509-SVID.

use std::path::Path;
use std::time::SystemTime;

use spiffile_tls::{CertificateInfo, Usage, X509Bundle, X509BundleSet};

use crate::output::{Failure, out};
use crate::x509::timestamp;

/// Whether `bytes` look like a PEM certificate (chain).
pub fn is_pem_certificate(bytes: &[u8]) -> bool {
    bytes
        .windows(27)
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
}

/// Prints each certificate of the chain; the first is taken as the leaf and
/// checked against the X509-SVID leaf rules, and against `bundle` (a PEM
/// file of CA certificates) when given. Exit 1 when the leaf is not a valid
/// X.509-SVID.
pub fn inspect(pem: &[u8], bundle: Option<&Path>, json: bool) -> Result<(), Failure> {
    let chain = spiffile_tls::certificates_from_pem(pem).map_err(Failure::failed)?;
    let Some(leaf) = chain.first() else {
        return Err(Failure::failed("no CERTIFICATE block"));
    };
    let now = SystemTime::now();
    let mut infos = Vec::new();
    for (i, der) in chain.iter().enumerate() {
        let info = CertificateInfo::from_der(der)
            .map_err(|e| Failure::failed(format!("certificate {i}: {e}")))?;
        infos.push(info);
    }
    let leaf_rules = spiffile_tls::check_leaf_rules(leaf);
    let path = match (&leaf_rules, bundle) {
        (Ok(id), Some(bundle_file)) => {
            let bytes = std::fs::read(bundle_file).map_err(|e| {
                Failure::usage(format!("cannot read {}: {e}", bundle_file.display()))
            })?;
            let set = X509BundleSet::new().with(
                X509Bundle::from_pem(id.trust_domain().clone(), &bytes).map_err(Failure::failed)?,
            );
            let client = spiffile_tls::verify_svid(&chain, &set, Usage::Client, now);
            let server = spiffile_tls::verify_svid(&chain, &set, Usage::Server, now);
            Some((client.map(|_| ()), server.map(|_| ())))
        }
        _ => None,
    };
    let valid = leaf_rules.is_ok() && path.as_ref().is_none_or(|(c, s)| c.is_ok() || s.is_ok());
    if json {
        let certs: Vec<serde_json::Value> = infos
            .iter()
            .map(|c| {
                serde_json::json!({
                    "subject": c.subject,
                    "issuer": c.issuer,
                    "serial": c.serial,
                    "not_before": timestamp(c.not_before),
                    "not_after": timestamp(c.not_after),
                    "expired": c.not_after < now,
                    "is_ca": c.is_ca,
                    "key_usage": c.key_usage,
                    "extended_key_usage": c.extended_key_usage,
                    "uris": c.uris,
                    "dns_names": c.dns_names,
                })
            })
            .collect();
        let doc = serde_json::json!({
            "certificates": certs,
            "spiffe_id": leaf_rules.as_ref().ok().map(ToString::to_string),
            "x509_svid_leaf_rules": match &leaf_rules { Ok(_) => "ok".to_owned(), Err(r) => r.to_string() },
            "path_validation": path.as_ref().map(|(c, s)| serde_json::json!({
                "client": c.as_ref().map_or_else(ToString::to_string, |()| "ok".to_owned()),
                "server": s.as_ref().map_or_else(ToString::to_string, |()| "ok".to_owned()),
            })),
            "valid_x509_svid": valid,
        });
        out(&doc.to_string());
    } else {
        for (i, c) in infos.iter().enumerate() {
            let role = if i == 0 { "leaf" } else { "chain" };
            out(&format!("certificate {i} ({role}):"));
            out(&format!("  subject:     {}", c.subject));
            out(&format!("  issuer:      {}", c.issuer));
            out(&format!("  serial:      {}", c.serial));
            let state = if c.not_after < now {
                " (EXPIRED)"
            } else if c.not_before > now {
                " (NOT YET VALID)"
            } else {
                ""
            };
            out(&format!(
                "  validity:    {} .. {}{state}",
                timestamp(c.not_before),
                timestamp(c.not_after)
            ));
            out(&format!("  CA:          {}", c.is_ca));
            out(&format!(
                "  key usage:   {}",
                c.key_usage
                    .as_ref()
                    .map_or("(none)".to_owned(), |k| k.join(", "))
            ));
            out(&format!(
                "  ext. usage:  {}",
                c.extended_key_usage
                    .as_ref()
                    .map_or("(none)".to_owned(), |k| k.join(", "))
            ));
            for uri in &c.uris {
                out(&format!("  URI SAN:     {uri}"));
            }
            for dns in &c.dns_names {
                out(&format!("  DNS SAN:     {dns}"));
            }
        }
        match &leaf_rules {
            Ok(id) => out(&format!("SPIFFE ID: {id}")),
            Err(r) => out(&format!("NOT a valid X.509-SVID: {r}")),
        }
        match &path {
            Some((c, s)) => {
                let show = |r: &Result<(), spiffile_tls::Refusal>| {
                    r.as_ref()
                        .map_or_else(ToString::to_string, |()| "ok".to_owned())
                };
                out(&format!("path to the bundle, as a client: {}", show(c)));
                out(&format!("path to the bundle, as a server: {}", show(s)));
            }
            None if leaf_rules.is_ok() => {
                out("leaf rules: ok (path not validated: give --bundle FILE to check the chain)");
            }
            None => {}
        }
    }
    if valid {
        Ok(())
    } else {
        Err(Failure::failed(""))
    }
}
