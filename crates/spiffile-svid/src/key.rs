//! The workload's private key: PKCS#8 PEM in, an ES256 signer out.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use zeroize::Zeroizing;

use spiffile_bundle::PublicKey;

/// Why a private key file cannot be used. Messages say what was found and how
/// to convert it; they never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No PEM block was found.
    #[error("is not a PEM file (no `-----BEGIN PRIVATE KEY-----` line)")]
    NotPem,
    /// A SEC1 `EC PRIVATE KEY` block (with or without the `EC PARAMETERS`
    /// block `openssl ecparam -genkey` writes before it).
    #[error(
        "is a SEC1 `EC PRIVATE KEY` (what `openssl ecparam -genkey` writes); spiffile reads PKCS#8. Convert it with: openssl pkcs8 -topk8 -nocrypt -in key.pem -out key.pkcs8.pem"
    )]
    Sec1,
    /// An encrypted PKCS#8 block.
    #[error(
        "is an encrypted private key; spiffile reads unencrypted PKCS#8 (protect it with file permissions). Decrypt it with: openssl pkcs8 -in key.pem -out key.plain.pem"
    )]
    Encrypted,
    /// An RSA key.
    #[error(
        "is an RSA key; spiffile uses EC P-256 (ES256) keys only. Generate one with: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256"
    )]
    Rsa,
    /// An EC key on another curve.
    #[error(
        "is an EC key on {0}; spiffile uses P-256 only. Generate one with: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256"
    )]
    OtherCurve(&'static str),
    /// An Ed25519/Ed448 or other non-EC key.
    #[error(
        "is a {0} key; spiffile uses EC P-256 (ES256) keys only, the one algorithm every JWT-SVID verifier accepts. Generate one with: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem"
    )]
    OtherAlgorithm(&'static str),
    /// A public key or certificate where a private key was expected.
    #[error("holds a `{0}`, not a private key")]
    NotPrivate(String),
    /// Another PEM label.
    #[error("holds a PEM block labelled `{0}`; expected `PRIVATE KEY` (PKCS#8)")]
    UnexpectedLabel(String),
    /// The PEM body is not valid base64 or the block is not terminated.
    #[error("has a damaged PEM block (bad base64 or no END line)")]
    BadPem,
    /// The PKCS#8 structure was rejected.
    #[error("is not a valid PKCS#8 P-256 private key ({0})")]
    Rejected(String),
}

/// Finds the key's PEM block and returns its label and decoded body.
///
/// `EC PARAMETERS` blocks are skipped: `openssl ecparam -genkey` writes one
/// before the key by default.
///
/// Why not `pem-rfc7468`: it decodes one PEM document with RFC 7468's strict
/// grammar at one line width (64 by default), while key files in the field
/// hold several blocks (the parameters above, a certificate beside the key)
/// and some tools wrap at 76. So the armour (labels, public) is found here,
/// and the body of the key block is decoded with `base64ct`, the
/// constant-time Base64 that `pem-rfc7468` itself uses: no table lookup or
/// branch depends on the secret bytes.
fn pem_block(text: &[u8]) -> Result<(String, Zeroizing<Vec<u8>>), KeyError> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    let mut rest = text;
    loop {
        let start = rest
            .windows(BEGIN.len())
            .position(|w| w == BEGIN)
            .ok_or(KeyError::NotPem)?;
        let after = &rest[start + BEGIN.len()..];
        let label_end = after
            .windows(5)
            .position(|w| w == b"-----")
            .ok_or(KeyError::BadPem)?;
        let label = String::from_utf8_lossy(&after[..label_end]).into_owned();
        if label.len() > 64 {
            return Err(KeyError::BadPem);
        }
        let body_and_end = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let end = body_and_end
            .windows(end_marker.len())
            .position(|w| w == end_marker.as_bytes())
            .ok_or(KeyError::BadPem)?;
        if label == "EC PARAMETERS" {
            rest = &body_and_end[end + end_marker.len()..];
            continue;
        }
        let body: Zeroizing<Vec<u8>> = Zeroizing::new(
            body_and_end[..end]
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect(),
        );
        let body = std::str::from_utf8(&body).map_err(|_| KeyError::BadPem)?;
        let der = <base64ct::Base64 as base64ct::Encoding>::decode_vec(body)
            .map_err(|_| KeyError::BadPem)?;
        return Ok((label, Zeroizing::new(der)));
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Names the algorithm of a PKCS#8 key that `ring` refused, from the OIDs in
/// its AlgorithmIdentifier (which comes within the first few dozen bytes).
fn diagnose_pkcs8(der: &[u8]) -> KeyError {
    let head = &der[..der.len().min(40)];
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    const EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
    const P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
    const K256: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x0a];
    const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
    const ED448: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x71];
    if contains(head, RSA) {
        KeyError::Rsa
    } else if contains(head, ED25519) {
        KeyError::OtherAlgorithm("Ed25519")
    } else if contains(head, ED448) {
        KeyError::OtherAlgorithm("Ed448")
    } else if contains(head, EC) && contains(head, P384) {
        KeyError::OtherCurve("P-384")
    } else if contains(head, EC) && contains(head, P521) {
        KeyError::OtherCurve("P-521")
    } else if contains(head, EC) && contains(head, K256) {
        KeyError::OtherCurve("secp256k1")
    } else if contains(head, EC) && contains(head, P256) {
        KeyError::Rejected(
            "the P-256 key is malformed or lacks its public key; re-export it with: openssl pkcs8 -topk8 -nocrypt -in key.pem -out key.pkcs8.pem"
                .into(),
        )
    } else {
        KeyError::Rejected("unrecognized key algorithm".into())
    }
}

/// A parsed P-256 key pair. `ring` keeps the private scalar; this type never
/// shows it (its `Debug` prints the `kid` only).
///
/// Zeroization: the PEM text's decoded body and DER are held in `Zeroizing`
/// buffers and wiped on drop; the scalar inside `ring`'s `EcdsaKeyPair` (and
/// the PKCS#8 document of [`generate_pkcs8_pem`] before it is encoded) are
/// not wiped by `ring`, and `ring` gives no way to do it from outside.
pub(crate) struct PrivateKey {
    pub(crate) pair: EcdsaKeyPair,
    pub(crate) public: PublicKey,
}

impl PrivateKey {
    pub(crate) fn from_pkcs8_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let (label, der) = pem_block(pem)?;
        match label.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "EC PRIVATE KEY" => Err(KeyError::Sec1),
            "ENCRYPTED PRIVATE KEY" => Err(KeyError::Encrypted),
            "RSA PRIVATE KEY" => Err(KeyError::Rsa),
            "OPENSSH PRIVATE KEY" => Err(KeyError::UnexpectedLabel(label)),
            "PUBLIC KEY" | "CERTIFICATE" | "EC PUBLIC KEY" | "RSA PUBLIC KEY" => {
                Err(KeyError::NotPrivate(label))
            }
            _ => Err(KeyError::UnexpectedLabel(label)),
        }
    }

    pub(crate) fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|_| diagnose_pkcs8(der))?;
        let public = PublicKey::from_sec1(pair.public_key().as_ref())
            .map_err(|e| KeyError::Rejected(format!("its public key {e}")))?;
        Ok(PrivateKey { pair, public })
    }
}

/// A private key as PKCS#8 PEM text: zeroed on drop, and never shown by
/// `Debug` (there is no `Display`). Dereferences to the PEM text, for writing
/// it to the key file.
///
/// ```
/// let pem = spiffile_svid::generate_pkcs8_pem()?;
/// assert_eq!(format!("{pem:?}"), "PrivateKeyPem(<redacted>)");
/// assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
/// # Ok::<(), spiffile_svid::KeyError>(())
/// ```
pub struct PrivateKeyPem(Zeroizing<String>);

impl std::ops::Deref for PrivateKeyPem {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<[u8]> for PrivateKeyPem {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKeyPem(<redacted>)")
    }
}

/// Generates a new P-256 private key and returns it as PKCS#8 PEM (the form
/// every spiffile implementation reads), in a buffer that is zeroed on drop
/// and never printed by `Debug`.
///
/// ```
/// let pem = spiffile_svid::generate_pkcs8_pem()?;
/// assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
/// # Ok::<(), spiffile_svid::KeyError>(())
/// ```
pub fn generate_pkcs8_pem() -> Result<PrivateKeyPem, KeyError> {
    let rng = SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| KeyError::Rejected("the system random generator failed".into()))?;
    let b64 = Zeroizing::new(STANDARD.encode(doc.as_ref()));
    let mut pem = Zeroizing::new(String::with_capacity(b64.len() + 80));
    pem.push_str("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(PrivateKeyPem(pem))
}

/// The public key (as a bundle JWK, `kid` = thumbprint) of a PKCS#8 PEM
/// private key.
pub fn public_key_of_pem(pem: &[u8]) -> Result<PublicKey, KeyError> {
    PrivateKey::from_pkcs8_pem(pem).map(|k| k.public)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDERS_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgOrERmwUMibtWvsAV\nuS2PHarxCxZG+ertIfDkhPQs9dKhRANCAAQ9NheVqGa4LAHOCYItYlhABavI6j+5\n8EMPHTxsvQ+L5aXfIfY4tNbKm1zv9ry5w7NbBDzhEQA2LjGzJvHY3cV9\n-----END PRIVATE KEY-----\n";

    #[test]
    fn fixture_key_gives_fixture_kid() {
        let k = public_key_of_pem(ORDERS_PEM.as_bytes()).unwrap();
        assert_eq!(k.kid(), "mxUG_qRFVEqi_fztCHOjfEaOE0uWmGYxvFJxNZHjB0Q");
    }

    #[test]
    fn generated_keys_load() {
        let pem = generate_pkcs8_pem().unwrap();
        let k = public_key_of_pem(pem.as_bytes()).unwrap();
        assert_eq!(k.kid(), k.thumbprint());
    }

    #[test]
    fn wrong_formats_are_named() {
        let sec1 = ORDERS_PEM.replace("PRIVATE KEY", "EC PRIVATE KEY");
        assert_eq!(
            public_key_of_pem(sec1.as_bytes()).err(),
            Some(KeyError::Sec1)
        );
        let enc = ORDERS_PEM.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY");
        assert_eq!(
            public_key_of_pem(enc.as_bytes()).err(),
            Some(KeyError::Encrypted)
        );
        assert_eq!(public_key_of_pem(b"hello").err(), Some(KeyError::NotPem));
        assert_eq!(public_key_of_pem(b"").err(), Some(KeyError::NotPem));
        let truncated = &ORDERS_PEM[..100];
        assert_eq!(
            public_key_of_pem(truncated.as_bytes()).err(),
            Some(KeyError::BadPem)
        );
        let pubkey = ORDERS_PEM.replace("PRIVATE KEY", "PUBLIC KEY");
        assert_eq!(
            public_key_of_pem(pubkey.as_bytes()).err(),
            Some(KeyError::NotPrivate("PUBLIC KEY".into()))
        );
        let garbage = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(matches!(
            public_key_of_pem(garbage.as_bytes()),
            Err(KeyError::Rejected(_))
        ));
    }

    #[test]
    fn openssl_ecparam_output_is_recognised_as_sec1() {
        // `openssl ecparam -genkey -name prime256v1`: parameters, then the key.
        let sec1 = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIM2Ywaw807BoGJjjLFybkWQxbIKB+3NHMePXmlygaVRQoAoGCCqGSM49\n-----END EC PRIVATE KEY-----\n";
        assert_eq!(
            public_key_of_pem(sec1.as_bytes()).err(),
            Some(KeyError::Sec1)
        );
        // Parameters before a PKCS#8 key do not stop it loading.
        let with_params = format!(
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{ORDERS_PEM}"
        );
        assert!(public_key_of_pem(with_params.as_bytes()).is_ok());
        // Lines wrapped at 76 (some tools) load too.
        let body: String = ORDERS_PEM
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let wrapped: Vec<&str> = body
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let pem76 = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            wrapped.join("\n")
        );
        assert!(public_key_of_pem(pem76.as_bytes()).is_ok());
        let only_params =
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";
        assert_eq!(
            public_key_of_pem(only_params.as_bytes()).err(),
            Some(KeyError::NotPem)
        );
    }

    #[test]
    fn other_curves_are_named() {
        // PKCS#8 P-384 key made by: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384
        let p384 = "-----BEGIN PRIVATE KEY-----\nMIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDAX5Jh7kV9ltXtGNWX0\nPfGjkDFK+smozkf6IbZE2//8sVBfam1erODxd78oGgJfvGqhZANiAAQZRLontyNT\njW1ZIf1XsQHiytQKrRSaUlGnNNFL/arxuztYkwOiJe4Izw8FVXZD19hNkjWaI8k5\nsuM+2jiTKpCyw3Q7DC9lwnajpfRcFjkOC/dVdC40OGq0AAYcUnEc4xc=\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            public_key_of_pem(p384.as_bytes()).err(),
            Some(KeyError::OtherCurve("P-384"))
        );
        // Ed25519: openssl genpkey -algorithm ed25519
        let ed = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIOQe3oa7ZkWLjL8xddKowS06f13t5Vl3LlWJEtsBaA70\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            public_key_of_pem(ed.as_bytes()).err(),
            Some(KeyError::OtherAlgorithm("Ed25519"))
        );
    }

    #[test]
    fn errors_never_echo_key_material() {
        let damaged = ORDERS_PEM.replace("MIGHAgEA", "MIGHAgEB");
        let e = public_key_of_pem(damaged.as_bytes())
            .err()
            .unwrap()
            .to_string();
        assert!(!e.contains("MIGH"), "{e}");
        assert!(!e.contains("OrERmwUM"), "{e}");
    }
}
