//! A small PKI for the tests: trust domain CAs, intermediates and leaves
//! with every property a test needs to break, made with rcgen.
#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use spiffile_tls::{X509Bundle, X509BundleSet, X509Source, X509Svid};

pub struct Ca {
    pub trust_domain: spiffile_id::TrustDomain,
    pub params: CertificateParams,
    pub key: KeyPair,
    pub der: CertificateDer<'static>,
    /// Certificates between this CA and its root (empty for a root).
    pub chain: Vec<CertificateDer<'static>>,
}

fn ca_params(td: &str, name: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.subject_alt_names = vec![SanType::URI(format!("spiffe://{td}").try_into().unwrap())];
    let now = SystemTime::now();
    p.not_before = (now - Duration::from_secs(3600)).into();
    p.not_after = (now + Duration::from_secs(86400)).into();
    p
}

impl Ca {
    pub fn root(td: &str) -> Ca {
        Self::root_with(td, |_| {})
    }

    pub fn root_with(td: &str, edit: impl FnOnce(&mut CertificateParams)) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = ca_params(td, &format!("{td} root"));
        edit(&mut params);
        let der = params.self_signed(&key).unwrap().der().clone();
        Ca {
            trust_domain: td.parse().unwrap(),
            params,
            key,
            der,
            chain: vec![],
        }
    }

    pub fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    pub fn intermediate(&self) -> Ca {
        self.intermediate_with(|_| {})
    }

    pub fn intermediate_with(&self, edit: impl FnOnce(&mut CertificateParams)) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = ca_params(self.trust_domain.as_str(), "intermediate");
        edit(&mut params);
        let der = params
            .signed_by(&key, &self.issuer())
            .unwrap()
            .der()
            .clone();
        let mut chain = vec![der.clone()];
        chain.extend(self.chain.iter().cloned());
        Ca {
            trust_domain: self.trust_domain.clone(),
            params,
            key,
            der,
            chain,
        }
    }

    pub fn bundle(&self) -> X509Bundle {
        X509Bundle::from_der(self.trust_domain.clone(), vec![self.der.clone()]).unwrap()
    }

    pub fn bundle_set(&self) -> X509BundleSet {
        X509BundleSet::new().with(self.bundle())
    }

    /// A valid X.509-SVID leaf for `id`, then `edit` breaks it as asked.
    pub fn leaf_with(&self, id: &str, edit: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, "leaf");
        p.subject_alt_names = vec![SanType::URI(id.try_into().unwrap())];
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyAgreement,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = SystemTime::now();
        p.not_before = (now - Duration::from_secs(60)).into();
        p.not_after = (now + Duration::from_secs(3600)).into();
        edit(&mut p);
        let der = p.signed_by(&key, &self.issuer()).unwrap().der().clone();
        let mut chain = vec![der];
        chain.extend(self.chain.iter().cloned());
        Leaf { chain, key }
    }

    pub fn leaf(&self, id: &str) -> Leaf {
        self.leaf_with(id, |_| {})
    }
}

pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: KeyPair,
}

impl Leaf {
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }

    /// Unchecked: the pair as rustls takes it (to present a bad leaf).
    pub fn certified_key(&self) -> std::sync::Arc<rustls::sign::CertifiedKey> {
        let key = spiffile_tls::provider()
            .key_provider
            .load_private_key(self.key_der())
            .unwrap();
        std::sync::Arc::new(rustls::sign::CertifiedKey::new(self.chain.clone(), key))
    }

    pub fn svid(&self) -> X509Svid {
        X509Svid::from_der(self.chain.clone(), self.key_der()).unwrap()
    }

    pub fn chain_pem(&self) -> String {
        self.chain
            .iter()
            .map(|c| pem_block("CERTIFICATE", c))
            .collect()
    }

    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    pub fn source(&self, bundles: X509BundleSet) -> X509Source {
        X509Source::new(self.svid(), bundles)
    }
}

pub fn pem_block(label: &str, der: &[u8]) -> String {
    use std::fmt::Write;
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                b64.push(B64[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        writeln!(out, "{}", std::str::from_utf8(line).unwrap()).unwrap();
    }
    writeln!(out, "-----END {label}-----").unwrap();
    out
}
pub mod tls;
