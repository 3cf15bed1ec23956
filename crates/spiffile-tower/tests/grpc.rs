//! The same layers on gRPC: tonic's prebuilt health service behind
//! `AuthenticateLayer`, called through a tonic channel with `AddTokenLayer`.

mod common;

use spiffile::Identity;
use spiffile_testkit::{Root, id};
use spiffile_tower::{AddTokenLayer, Allow, AuthenticateLayer};
use tonic::Code;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceBuilder;

/// billing's health service on loopback, for orders only.
async fn serve_health(billing: &Identity) -> Channel {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let layer = AuthenticateLayer::new(billing.clone())
        .allow(Allow::ids([id("spiffe://example.org/orders")]));
    tokio::spawn(async move {
        Server::builder()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn check<T>(client: &mut HealthClient<T>) -> Result<i32, tonic::Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let request = HealthCheckRequest {
        service: String::new(),
    };
    client.check(request).await.map(|r| r.into_inner().status)
}

#[tokio::test]
async fn grpc_accepted_unauthenticated_and_permission_denied() {
    let mut root = Root::new("example.org");
    let [orders, billing, mallory] = root.add_all(["orders", "billing", "mallory"]);
    let channel = serve_health(&billing).await;
    let signed = |who: &Identity, audience: &spiffile::SpiffeId| {
        HealthClient::new(
            ServiceBuilder::new()
                .layer(AddTokenLayer::new(who.clone()).default_audience(audience.clone()))
                .service(channel.clone()),
        )
    };

    let status = check(&mut signed(&orders, billing.id())).await.unwrap();
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let refused = check(&mut HealthClient::new(channel.clone()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(refused.message(), "missing_token");

    let refused = check(&mut signed(&orders, orders.id())).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(refused.message(), "audience");

    let refused = check(&mut signed(&mallory, billing.id()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(refused.message(), "forbidden");

    // The connection is still good for the allowed caller.
    assert!(check(&mut signed(&orders, billing.id())).await.is_ok());
}
