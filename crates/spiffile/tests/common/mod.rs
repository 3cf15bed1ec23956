//! Test helpers: write identity files by hand (no provisioning layer needed).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use spiffile::bundle::Bundle;
use spiffile::svid::{generate_pkcs8_pem, public_key_of_pem};

pub struct Root {
    pub dir: tempfile::TempDir,
    pub bundle: Bundle,
}

impl Root {
    pub fn new(td: &str) -> Root {
        Root {
            dir: tempfile::tempdir().unwrap(),
            bundle: Bundle::new(td.parse().unwrap()),
        }
    }

    /// A root of example.org with `orders` and `billing`, and their
    /// (watched) identities.
    pub fn orders_and_billing() -> (Root, spiffile::Identity, spiffile::Identity) {
        let mut root = Root::new("example.org");
        root.add("orders");
        root.add("billing");
        let orders = root.identity("orders");
        let billing = root.identity("billing");
        (root, orders, billing)
    }

    pub fn bundle_path(&self) -> PathBuf {
        self.dir.path().join("bundle.json")
    }

    pub fn service_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("services").join(name)
    }

    /// Adds a service with a fresh key; writes its id, key.pem, and the bundle.
    pub fn add(&mut self, name: &str) -> PathBuf {
        let pem = generate_pkcs8_pem().unwrap();
        self.add_with_pem(name, &pem)
    }

    pub fn add_with_pem(&mut self, name: &str, pem: &str) -> PathBuf {
        let id = self.bundle.trust_domain().join(name).unwrap();
        let dir = self.service_dir(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("id"), format!("{id}\n")).unwrap();
        std::fs::write(dir.join("key.pem"), pem).unwrap();
        let key = public_key_of_pem(pem.as_bytes()).unwrap();
        self.bundle.add_key_first(&id, key).unwrap();
        self.write_bundle();
        dir
    }

    pub fn write_bundle(&self) {
        let tmp = self.dir.path().join(".bundle.json.tmp");
        std::fs::write(&tmp, self.bundle.to_json()).unwrap();
        std::fs::rename(&tmp, self.bundle_path()).unwrap();
    }

    pub fn identity(&self, name: &str) -> spiffile::Identity {
        let dir = self.service_dir(name);
        spiffile::Identity::from_files(dir.join("id"), dir.join("key.pem"), self.bundle_path())
            .unwrap()
    }

    /// An identity without a file watcher: it changes only on `reload()`,
    /// and parses (and logs) on the calling thread.
    pub fn manual_identity(&self, name: &str) -> spiffile::Identity {
        let dir = self.service_dir(name);
        spiffile::Identity::builder()
            .hot_reload(false)
            .from_files(dir.join("id"), dir.join("key.pem"), self.bundle_path())
            .unwrap()
    }
}

pub fn fixtures() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conformance/fixtures.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
