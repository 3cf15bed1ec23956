//! The control plane's PKI, generated fresh by every `up` with rcgen: one
//! CA (ECDSA P-256) signing the etcd and apiserver serving certificates,
//! the apiserver's etcd client certificate, the admin and
//! controller-manager client certificates, the controller-manager's serving
//! certificate; plus the service-account signing key pair. Keys are written
//! 0600 from their first byte.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::deploy::write_file;
use crate::error::{Result, io};

/// Paths of the generated files.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate (trust anchor of every other certificate here).
    pub ca: PathBuf,
    /// The CA's private key (to issue more certificates, e.g. for webhooks).
    pub ca_key: PathBuf,
    /// etcd serving certificate and key.
    pub etcd: (PathBuf, PathBuf),
    /// kube-apiserver serving certificate and key.
    pub apiserver: (PathBuf, PathBuf),
    /// kube-apiserver's client certificate for etcd.
    pub apiserver_etcd_client: (PathBuf, PathBuf),
    /// Admin client certificate (`system:masters`).
    pub admin: (PathBuf, PathBuf),
    /// Controller-manager client certificate.
    pub controller_manager: (PathBuf, PathBuf),
    /// Controller-manager serving certificate.
    pub controller_manager_serving: (PathBuf, PathBuf),
    /// The aggregation layer's front-proxy client certificate.
    pub front_proxy_client: (PathBuf, PathBuf),
    /// Service-account token signing key (PKCS#8) and its public key.
    pub service_account: (PathBuf, PathBuf),
}

enum Usage {
    Server,
    Client,
}

/// Generates the PKI into `dir`.
pub fn generate(dir: &Path) -> Result<Pki> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name = dn("spiffile-testinfra control-plane CA", None);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca = dir.join("ca.pem");
    write_file(&ca, ca_cert.pem().as_bytes(), 0o644)?;
    let ca_key_path = dir.join("ca-key.pem");
    write_file(&ca_key_path, ca_key.serialize_pem().as_bytes(), 0o600)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let loopback = ["127.0.0.1", "localhost"];
    let apiserver_sans = [
        "127.0.0.1",
        "localhost",
        "10.0.0.1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ];
    let leaf = |name: &str, cn: &str, org: Option<&str>, sans: &[&str], usage: Usage| {
        issue(dir, &issuer, name, cn, org, sans, usage)
    };
    let pki = Pki {
        etcd: leaf("etcd", "etcd", None, &loopback, Usage::Server)?,
        apiserver: leaf(
            "apiserver",
            "kube-apiserver",
            None,
            &apiserver_sans,
            Usage::Server,
        )?,
        apiserver_etcd_client: leaf(
            "apiserver-etcd-client",
            "kube-apiserver-etcd-client",
            None,
            &[],
            Usage::Client,
        )?,
        admin: leaf(
            "admin",
            "spiffile-testinfra-admin",
            Some("system:masters"),
            &[],
            Usage::Client,
        )?,
        // Without --use-service-account-credentials every controller acts as
        // the controller-manager itself; the garbage collector must see and
        // delete every resource type, custom ones included.
        controller_manager: leaf(
            "controller-manager",
            "system:kube-controller-manager",
            Some("system:masters"),
            &[],
            Usage::Client,
        )?,
        controller_manager_serving: leaf(
            "controller-manager-serving",
            "kube-controller-manager",
            None,
            &loopback,
            Usage::Server,
        )?,
        front_proxy_client: leaf(
            "front-proxy-client",
            "front-proxy-client",
            None,
            &[],
            Usage::Client,
        )?,
        service_account: {
            let key = KeyPair::generate()?;
            let private = dir.join("sa-key.pem");
            write_file(&private, key.serialize_pem().as_bytes(), 0o600)?;
            let public = dir.join("sa.pub");
            write_file(&public, key.public_key_pem().as_bytes(), 0o644)?;
            (private, public)
        },
        ca,
        ca_key: ca_key_path,
    };
    Ok(pki)
}

fn dn(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(org) = org {
        dn.push(DnType::OrganizationName, org);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

fn issue(
    dir: &Path,
    issuer: &Issuer<'_, KeyPair>,
    name: &str,
    cn: &str,
    org: Option<&str>,
    sans: &[&str],
    usage: Usage,
) -> Result<(PathBuf, PathBuf)> {
    let key = KeyPair::generate()?;
    let mut params =
        CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())?;
    params.distinguished_name = dn(cn, org);
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = match usage {
        Usage::Server => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    let cert = params.signed_by(&key, issuer)?;
    let cert_path = dir.join(format!("{name}.pem"));
    write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
    let key_path = dir.join(format!("{name}-key.pem"));
    write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    Ok((cert_path, key_path))
}
