//! A trust domain's files written by hand, in the provisioning layout.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use spiffile::Identity;
use spiffile::bundle::Bundle;
use spiffile::svid::{generate_pkcs8_pem, public_key_of_pem};

/// A trust domain's files in a temporary directory, in the provisioning
/// layout (`bundle.json`, `services/<name>/{id,key.pem}`), with the bundle
/// kept in memory for tests to edit and write again.
///
/// Every file is replaced atomically (a temporary file, then a rename), as
/// a careful producer does; key files are created with mode 0600.
pub struct Root {
    /// The directory, deleted when the root is dropped.
    pub dir: tempfile::TempDir,
    /// The bundle as last written (or about to be, after an edit and
    /// [`Root::write_bundle`]).
    pub bundle: Bundle,
}

impl Root {
    /// An empty root of the trust domain `td` (nothing written yet).
    ///
    /// # Panics
    ///
    /// When `td` is not a trust domain name or no temporary directory can
    /// be made.
    pub fn new(td: &str) -> Root {
        Root {
            dir: tempfile::tempdir().expect("a temporary directory"),
            bundle: Bundle::new(td.parse().expect("a trust domain name")),
        }
    }

    /// A root of example.org with `orders` and `billing`, and their
    /// (watched) identities.
    pub fn orders_and_billing() -> (Root, Identity, Identity) {
        let mut root = Root::new("example.org");
        root.add("orders");
        root.add("billing");
        let orders = root.identity("orders");
        let billing = root.identity("billing");
        (root, orders, billing)
    }

    /// Adds services with fresh keys, then loads their (watched) identities
    /// once the bundle has all of them.
    pub fn add_all<const N: usize>(&mut self, names: [&str; N]) -> [Identity; N] {
        for name in names {
            self.add(name);
        }
        names.map(|name| self.identity(name))
    }

    /// `bundle.json`.
    pub fn bundle_path(&self) -> PathBuf {
        self.dir.path().join("bundle.json")
    }

    /// `services/<name>`.
    pub fn service_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("services").join(name)
    }

    /// The private key (PEM) of a service.
    pub fn pem(&self, name: &str) -> String {
        std::fs::read_to_string(self.service_dir(name).join("key.pem")).expect("the key file")
    }

    /// Adds a service with a fresh key: writes its `id` and `key.pem`, binds
    /// the key first in the bundle and writes the bundle. Returns the
    /// service's directory.
    pub fn add(&mut self, name: &str) -> PathBuf {
        let pem = generate_pkcs8_pem().expect("a new key");
        self.add_with_pem(name, &pem)
    }

    /// [`Root::add`] with a given key. Adding a service again with a new
    /// key is a rotation: the new key is bound first, the old ones stay.
    pub fn add_with_pem(&mut self, name: &str, pem: &str) -> PathBuf {
        let id = self
            .bundle
            .trust_domain()
            .join(name)
            .expect("a service name");
        let dir = self.service_dir(name);
        std::fs::create_dir_all(&dir).expect("the service directory");
        replace(&dir.join("id"), format!("{id}\n").as_bytes(), 0o644);
        replace(&dir.join("key.pem"), pem.as_bytes(), 0o600);
        let key = public_key_of_pem(pem.as_bytes()).expect("a P-256 key");
        self.bundle.add_key_first(&id, key).expect("a bundle entry");
        self.write_bundle();
        dir
    }

    /// Removes a service from the bundle (revocation) and writes it.
    pub fn revoke(&mut self, name: &str) {
        let id = self
            .bundle
            .trust_domain()
            .join(name)
            .expect("a service name");
        self.bundle
            .remove_identity(&id)
            .expect("the service is in the bundle");
        self.write_bundle();
    }

    /// Writes the bundle atomically.
    pub fn write_bundle(&self) {
        replace(&self.bundle_path(), self.bundle.to_json().as_bytes(), 0o644);
    }

    /// A service's identity, watching its files.
    pub fn identity(&self, name: &str) -> Identity {
        let dir = self.service_dir(name);
        Identity::from_files(dir.join("id"), dir.join("key.pem"), self.bundle_path())
            .expect("the identity loads")
    }

    /// A service's identity without a file watcher: it changes only on
    /// `reload()`, and parses (and logs) on the calling thread.
    pub fn manual_identity(&self, name: &str) -> Identity {
        let dir = self.service_dir(name);
        Identity::builder()
            .hot_reload(false)
            .from_files(dir.join("id"), dir.join("key.pem"), self.bundle_path())
            .expect("the identity loads")
    }
}

/// Replaces `path` atomically with `bytes`: a temporary file beside it,
/// created with `mode` (on Unix), then renamed over it.
fn replace(path: &Path, bytes: &[u8], mode: u32) {
    let name = path.file_name().expect("a file name").to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).expect("a temporary file");
    file.write_all(bytes).expect("write");
    drop(file);
    std::fs::rename(&tmp, path).expect("rename over the target");
}
