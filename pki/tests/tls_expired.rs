//! Expiry is enforced by TLS itself: a server built from
//! [`TlsFiles::server_config`] refuses a client whose certificate has
//! expired, so no fedsoc code needs to check `notAfter` on connections.

use std::time::Duration;

use fedsoc_pki::{CertificateAuthority, Identity, PkiDir, Role, TlsFiles};
use fedsoc_proto::v1::StatusRequest;
use fedsoc_proto::v1::admin_client::AdminClient;
use time::OffsetDateTime;
use tonic::transport::{Endpoint, Server};

/// The error a client sees from one RPC, as text; `Ok` if it got through
/// TLS (the server has no services, so any answer is `Unimplemented`).
async fn call(dir: &std::path::Path, stem: &str, port: u16) -> Result<tonic::Code, String> {
    let tls = TlsFiles::in_dir(dir, stem)
        .client_config("localhost")
        .unwrap();
    let endpoint = Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(5));
    let channel = endpoint.connect().await.map_err(|e| error_chain(&e))?;
    match AdminClient::new(channel)
        .status(StatusRequest::default())
        .await
    {
        Ok(_) => Ok(tonic::Code::Ok),
        Err(status) if status.code() == tonic::Code::Unimplemented => Ok(status.code()),
        Err(status) => Err(format!(
            "{status}; caused by: {}",
            std::error::Error::source(&status).map_or(String::new(), error_chain)
        )),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn a_client_with_an_expired_certificate_cannot_complete_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    CertificateAuthority::generate("tls-expiry")
        .unwrap()
        .save(dir.path())
        .unwrap();
    let pki = PkiDir::new(dir.path());
    pki.issue(
        &Identity::new(Role::Coordinator, "coord").unwrap(),
        &["localhost".into()],
        30,
        false,
    )
    .unwrap();
    pki.issue(&Identity::participant("fresh").unwrap(), &[], 30, false)
        .unwrap();
    let now = OffsetDateTime::now_utc();
    pki.issue_with_validity(
        &Identity::participant("stale").unwrap(),
        &[],
        now - time::Duration::days(30),
        now - time::Duration::days(1),
        false,
    )
    .unwrap();

    let server_tls = TlsFiles::in_dir(dir.path(), "coord")
        .server_config()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(
        Server::builder()
            .tls_config(server_tls)
            .unwrap()
            .add_routes(tonic::service::Routes::default())
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    // Control: a valid certificate gets through TLS to the (empty) server.
    assert_eq!(
        call(dir.path(), "fresh", port).await,
        Ok(tonic::Code::Unimplemented)
    );
    // An expired one does not.
    let err = call(dir.path(), "stale", port)
        .await
        .expect_err("an expired client certificate must be refused");
    println!("client with an expired certificate sees: {err}");
    // With TLS 1.3 the client's handshake finishes before the server has
    // checked its certificate, so `connect` succeeds and the first RPC fails:
    //   code: 'Unknown error', message: "transport error", ...
    //   connection error: received fatal alert: CertificateExpired
    assert!(
        err.contains("received fatal alert: CertificateExpired"),
        "{err}"
    );
    server.abort();
}
