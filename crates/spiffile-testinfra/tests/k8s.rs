//! The control plane, for real, through kube-rs 5 and k8s-openapi (v1_37):
//! readiness, a namespace, a CRD until Established, a custom resource with a
//! status subresource, a Secret and a ConfigMap, watch events for each,
//! garbage collection of an owned Secret when its owner goes, and namespace
//! deletion by the namespace controller.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A custom resource with a status subresource.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "testinfra.spiffile.io",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus"
)]
struct WidgetSpec {
    size: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
struct WidgetStatus {
    ready: bool,
}

async fn client() -> Option<Client> {
    let k8s = spiffile_testinfra::k8s()?;
    Some(
        k8s.client()
            .await
            .expect("a kube client from the kubeconfig"),
    )
}

async fn namespace(client: &Client, prefix: &str) -> Result<String, kube::Error> {
    let name = spiffile_testinfra::unique_name(prefix);
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(name)
}

/// Applies the Widget CRD (idempotent: the control plane may be shared by
/// several runs) and waits until it is Established.
async fn widget_crd(client: &Client) -> TestResult {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = Widget::crd();
    let name = crd.name_any();
    crds.patch(
        &name,
        &PatchParams::apply("spiffile-testinfra-tests").force(),
        &Patch::Apply(&crd),
    )
    .await?;
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(crds, &name, conditions::is_crd_established()),
    )
    .await
    .map_err(|_| format!("CRD {name} not Established within 60 s"))??;
    Ok(())
}

fn secret(name: &str, owner: Option<OwnerReference>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([(
            "id".to_owned(),
            "spiffe://example.org/orders\n".to_owned(),
        )])),
        type_: Some("Opaque".to_owned()),
        ..Default::default()
    }
}

/// Collects `(event, name)` pairs from a watch until `done` says enough.
async fn watch_until<K>(
    api: Api<K>,
    resource_version: String,
    done: impl Fn(&[(String, String)]) -> bool + Send + 'static,
) -> Result<Vec<(String, String)>, String>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let mut stream = api
        .watch(&WatchParams::default().timeout(120), &resource_version)
        .await
        .map_err(|e| e.to_string())?
        .boxed();
    let mut seen = Vec::new();
    while let Some(event) = stream.try_next().await.map_err(|e| e.to_string())? {
        let entry = match event {
            WatchEvent::Added(o) => ("ADDED".to_owned(), o.name_any()),
            WatchEvent::Modified(o) => ("MODIFIED".to_owned(), o.name_any()),
            WatchEvent::Deleted(o) => ("DELETED".to_owned(), o.name_any()),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => return Err(format!("watch error: {e:?}")),
        };
        seen.push(entry);
        if done(&seen) {
            return Ok(seen);
        }
    }
    Err(format!("watch ended early after {seen:?}"))
}

fn has(seen: &[(String, String)], event: &str, name: &str) -> bool {
    seen.iter().any(|(e, n)| e == event && n == name)
}

#[tokio::test]
async fn readyz_through_kube_rs_says_ok() -> TestResult {
    let Some(client) = client().await else {
        return Ok(());
    };
    let req = http::Request::get("/readyz").body(Vec::new())?;
    assert_eq!(client.request_text(req).await?, "ok");
    let version = client.apiserver_version().await?;
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "37")
    );
    Ok(())
}

#[tokio::test]
async fn objects_watch_events_status_subresource_and_garbage_collection() -> TestResult {
    let Some(client) = client().await else {
        return Ok(());
    };
    let ns = namespace(&client, "objects").await?;
    widget_crd(&client).await?;

    let widgets: Api<Widget> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);

    // Watches from the current resource versions, before anything is made.
    let rv = |meta: kube::core::ListMeta| meta.resource_version.unwrap_or_else(|| "0".into());
    let widget_rv = rv(widgets.list(&ListParams::default()).await?.metadata);
    let secret_rv = rv(secrets.list(&ListParams::default()).await?.metadata);
    let cm_rv = rv(configmaps.list(&ListParams::default()).await?.metadata);
    let widget_watch = tokio::spawn(watch_until(widgets.clone(), widget_rv, |s| {
        has(s, "ADDED", "w1") && has(s, "MODIFIED", "w1") && has(s, "DELETED", "w1")
    }));
    let secret_watch = tokio::spawn(watch_until(secrets.clone(), secret_rv, |s| {
        has(s, "ADDED", "owned") && has(s, "DELETED", "owned")
    }));
    let cm_watch = tokio::spawn(watch_until(configmaps.clone(), cm_rv, |s| {
        has(s, "ADDED", "settings")
            && has(s, "MODIFIED", "settings")
            && has(s, "DELETED", "settings")
    }));

    // A custom resource, then its status through the status subresource.
    let w = widgets
        .create(
            &PostParams::default(),
            &Widget::new("w1", WidgetSpec { size: 3 }),
        )
        .await?;
    assert_eq!(w.status, None, "status is not set on create");
    let status = serde_json::json!({"status": {"ready": true}});
    let w = widgets
        .patch_status("w1", &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    assert_eq!(w.status, Some(WidgetStatus { ready: true }));
    // Through the main resource, status changes are ignored.
    let sneaky = serde_json::json!({"spec": {"size": 4}, "status": {"ready": false}});
    let w = widgets
        .patch("w1", &PatchParams::default(), &Patch::Merge(&sneaky))
        .await?;
    assert_eq!(
        (w.spec.size, w.status.clone()),
        (4, Some(WidgetStatus { ready: true }))
    );

    // A Secret owned by the widget.
    let owner = w
        .controller_owner_ref(&())
        .ok_or("the widget has no owner reference")?;
    secrets
        .create(&PostParams::default(), &secret("owned", Some(owner)))
        .await?;

    // A ConfigMap: created, modified, deleted.
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("settings".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "spire.test.json".to_owned(),
            "{}".to_owned(),
        )])),
        ..Default::default()
    };
    configmaps.create(&PostParams::default(), &cm).await?;
    let change = serde_json::json!({"data": {"spire.test.json": "{\"keys\":[]}"}});
    configmaps
        .patch("settings", &PatchParams::default(), &Patch::Merge(&change))
        .await?;
    configmaps
        .delete("settings", &DeleteParams::default())
        .await?;

    // Deleting the owner: the garbage collector removes the owned Secret
    // (it may need ~30 s to discover a new CRD's resources).
    widgets.delete("w1", &DeleteParams::background()).await?;
    let gone = tokio::time::timeout(
        Duration::from_secs(120),
        await_condition(secrets.clone(), "owned", |o: Option<&Secret>| o.is_none()),
    )
    .await;
    assert!(
        matches!(gone, Ok(Ok(None))),
        "the owned Secret was not garbage-collected within 120 s: {:?}",
        secrets.get_opt("owned").await?.map(|s| s.metadata)
    );

    let within = Duration::from_secs(60);
    let w_seen = tokio::time::timeout(within, widget_watch).await???;
    let s_seen = tokio::time::timeout(within, secret_watch).await???;
    let c_seen = tokio::time::timeout(within, cm_watch).await???;
    assert!(has(&w_seen, "MODIFIED", "w1"), "{w_seen:?}");
    assert!(has(&s_seen, "DELETED", "owned"), "{s_seen:?}");
    assert_eq!(
        c_seen,
        vec![
            ("ADDED".to_owned(), "settings".to_owned()),
            ("MODIFIED".to_owned(), "settings".to_owned()),
            ("DELETED".to_owned(), "settings".to_owned()),
        ]
    );

    delete_namespace(&client, &ns).await
}

/// The namespace controller empties and removes a deleted namespace.
async fn delete_namespace(client: &Client, ns: &str) -> TestResult {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.delete(ns, &DeleteParams::default()).await?;
    let gone = tokio::time::timeout(
        Duration::from_secs(90),
        await_condition(namespaces, ns, |o: Option<&Namespace>| o.is_none()),
    )
    .await;
    assert!(
        matches!(gone, Ok(Ok(None))),
        "namespace {ns} not removed within 90 s"
    );
    Ok(())
}

#[tokio::test]
async fn service_account_controller_fills_a_new_namespace() -> TestResult {
    let Some(client) = client().await else {
        return Ok(());
    };
    let ns = namespace(&client, "sa").await?;
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let sa = tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(
            sas,
            "default",
            |o: Option<&k8s_openapi::api::core::v1::ServiceAccount>| o.is_some(),
        ),
    )
    .await;
    assert!(
        matches!(sa, Ok(Ok(Some(_)))),
        "ServiceAccount default not created in {ns} within 60 s"
    );
    let cm = tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(cms, "kube-root-ca.crt", |o: Option<&ConfigMap>| o.is_some()),
    )
    .await;
    assert!(
        matches!(cm, Ok(Ok(Some(_)))),
        "ConfigMap kube-root-ca.crt not created in {ns} within 60 s"
    );
    delete_namespace(&client, &ns).await
}
