//! Off loopback the console serves HTTPS only: with `--tls-cert/--tls-key`
//! it speaks TLS (rustls), with the same strict headers.

use std::net::SocketAddr;
use std::sync::Arc;

use fedsoc_console::{Console, ConsoleOptions, TlsPaths};
use fedsoc_pki::{CertificateAuthority, Identity, Role};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_certificate_the_console_serves_https_with_the_same_headers() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate("console-test").unwrap();
    ca.save(dir.path()).unwrap();
    ca.issue(
        &Identity::new(Role::Coordinator, "console").unwrap(),
        &["127.0.0.1".to_string()],
    )
    .unwrap()
    .save(dir.path(), "console")
    .unwrap();
    // A control.toml is enough to start; the stylesheet needs no source.
    let control = dir.path().join("control.toml");
    std::fs::write(
        &control,
        "coordinator = \"https://127.0.0.1:1\"\n[tls]\nca = \"ca.pem\"\ncert = \"console.pem\"\nkey = \"console.key\"\n",
    )
    .unwrap();
    let console = Console::bind(&ConsoleOptions {
        config: Some(control),
        audit_log: None,
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        tls: Some(TlsPaths {
            cert: dir.path().join("console.pem"),
            key: dir.path().join("console.key"),
        }),
    })
    .await
    .unwrap();
    let url = console.url();
    assert!(url.starts_with("https://"), "{url}");
    let addr = console.local_addr();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(console.serve(async move {
        let _ = stopped.await;
    }));

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dir.path().join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(
        format!("GET /static/console.css HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut reply = Vec::new();
    // The server closes after the reply; a TLS close_notify may be
    // missing, which is not what this test is about.
    let _ = tls.read_to_end(&mut reply).await;
    let reply = String::from_utf8_lossy(&reply).to_ascii_lowercase();
    assert!(reply.starts_with("http/1.1 200"), "{reply}");
    assert!(
        reply.contains("content-security-policy: default-src 'none'"),
        "{reply}"
    );
    assert!(reply.contains("x-content-type-options: nosniff"), "{reply}");
}
