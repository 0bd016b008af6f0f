//! fedsoc-scrape: the `/metrics` endpoint of fedsoc's long-running
//! processes (`fedsoc watch`, the coordinator, the participant agent).
//!
//! Each process keeps its own `prometheus-client` registry; this crate only
//! encodes it (OpenMetrics text, never hand-written) and serves it over
//! HTTP/1.1 with hyper, on a thread and a single-threaded runtime of its
//! own, so a scrape never competes with a round or a watch loop for their
//! executor, and a synchronous program can serve metrics too.
//!
//! # Layout
//!
//! - this file: [`Exposition`] (what a process exposes), [`encode`] (a
//!   registry's text), [`serve`] and the [`MetricsServer`] it returns
//!   (`GET /metrics` only: other paths 404, other methods 405).
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::sync::oneshot;

/// The content type of an OpenMetrics 1.0 text exposition.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What a process exposes: its metrics as OpenMetrics text, written at
/// each scrape (so gauges computed then, such as an age, are current).
pub trait Exposition: Send + Sync + 'static {
    /// The OpenMetrics text exposition, ending in `# EOF`.
    fn exposition(&self) -> String;
}

/// The OpenMetrics text of `registry`, ending in `# EOF`.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Encoding into a String cannot fail; should a collector fail, the
    // exposition lacks its `# EOF` and scrapers reject it as incomplete,
    // which is the right signal.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::warn!("could not encode metrics: {e}");
    }
    out
}

/// The running metrics endpoint; it stops, and frees its port, when
/// dropped.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// The address bound, with the port the system chose for port 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!("the metrics server's thread panicked");
        }
    }
}

/// Serves `GET /metrics` on `addr` until the returned server is dropped.
///
/// The address is bound before this returns, so a port in use is an error
/// here rather than a silent failure later. Other paths answer 404, other
/// methods 405.
pub fn serve(addr: SocketAddr, source: Arc<dyn Exposition>) -> std::io::Result<MetricsServer> {
    let std_listener = std::net::TcpListener::bind(addr).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "cannot serve metrics on {addr}: {e}; choose another metrics address \
                 (port 0 lets the system pick one) or stop the process that holds it"
            ),
        )
    })?;
    std_listener.set_nonblocking(true)?;
    let local_addr = std_listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let listener = {
        let _guard = runtime.enter();
        tokio::net::TcpListener::from_std(std_listener)?
    };
    let (stop, stopped) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("fedsoc-metrics".into())
        .spawn(move || runtime.block_on(accept_loop(listener, source, stopped)))?;
    Ok(MetricsServer {
        local_addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    source: Arc<dyn Exposition>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            // A send or a dropped sender both mean stop.
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let source = Arc::clone(&source);
                    tokio::spawn(serve_connection(stream, source));
                }
                Err(e) => {
                    // Out of file descriptors, typically: back off rather
                    // than spin.
                    tracing::warn!("metrics endpoint cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    // Returning drops the runtime's connection tasks with it.
}

async fn serve_connection(stream: tokio::net::TcpStream, source: Arc<dyn Exposition>) {
    let service = service_fn(move |request: Request<Incoming>| {
        let response = respond(&request, source.as_ref());
        async move { Ok::<_, Infallible>(response) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        // A client that never finishes its request does not hold a task
        // forever.
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = connection.await {
        tracing::debug!("metrics connection ended: {e}");
    }
}

fn respond<B>(request: &Request<B>, source: &dyn Exposition) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics\n",
        );
    }
    if request.method() != Method::GET {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: use GET /metrics\n",
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    let mut response = Response::new(Full::new(Bytes::from(source.exposition())));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
    );
    response
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, TcpStream};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A counter written by hand into a registry at each scrape.
    struct Fixed(AtomicU64);

    impl Exposition for Fixed {
        fn exposition(&self) -> String {
            let mut registry = Registry::with_prefix("demo");
            let counter: prometheus_client::metrics::counter::Counter = Default::default();
            counter.inc_by(self.0.load(Ordering::Relaxed));
            registry.register("things", "Things seen", counter);
            encode(&registry)
        }
    }

    /// One HTTP/1.1 exchange over a plain socket: (status line, headers in
    /// lower case, body).
    fn request(addr: SocketAddr, method: &str, path: &str) -> (String, Vec<String>, String) {
        let mut stream = TcpStream::connect(addr).unwrap();
        // A guard against a hung test, not a timing assertion.
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().to_string();
        let headers = lines.map(str::to_ascii_lowercase).collect();
        (status, headers, body.to_string())
    }

    #[test]
    fn serves_metrics_only_and_stops_when_dropped() {
        let source = Arc::new(Fixed(AtomicU64::new(7)));
        let server = serve((Ipv4Addr::LOCALHOST, 0).into(), source.clone()).unwrap();
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);

        let (status, headers, body) = request(addr, "GET", "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(
            headers.contains(&format!("content-type: {OPENMETRICS_CONTENT_TYPE}")),
            "{headers:?}"
        );
        assert!(body.contains("\ndemo_things_total 7\n"), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");

        // Written at each scrape.
        source.0.store(8, Ordering::Relaxed);
        let (_, _, body) = request(addr, "GET", "/metrics?x=1");
        assert!(body.contains("\ndemo_things_total 8\n"), "{body}");

        for path in ["/", "/metrics/", "/debug", "/favicon.ico"] {
            let (status, _, body) = request(addr, "GET", path);
            assert_eq!(status, "HTTP/1.1 404 Not Found", "{path}");
            assert!(!body.contains("demo_things"), "{path}: {body}");
        }
        let (status, headers, _) = request(addr, "POST", "/metrics");
        assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
        assert!(headers.contains(&"allow: get".to_string()), "{headers:?}");

        drop(server);
        assert!(
            TcpStream::connect(addr).is_err(),
            "the port is closed once the server is dropped"
        );
    }

    #[test]
    fn a_port_in_use_is_an_error_that_names_the_address() {
        let taken = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = taken.local_addr().unwrap();
        let err = serve(addr, Arc::new(Fixed(AtomicU64::new(0)))).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
