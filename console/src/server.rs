//! The console's HTTP side: GET routes only (anything else is 405), the
//! same strict headers on every response, plain HTTP on loopback and
//! HTTPS (rustls) when a certificate is given.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use fedsoc_coordinator::control::ControlConfig;
use maud::Markup;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::assets;
use crate::error::ConsoleError;
use crate::options::{ConsoleOptions, TlsPaths};
use crate::pages::{self, Nav};
use crate::source::{Live, LogSource};

/// The Content-Security-Policy of every response: only the console's own
/// script, stylesheet and JSON; no frames, forms or base changes.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

struct Sources {
    live: Option<Live>,
    log: Option<LogSource>,
}

type Shared = Arc<Sources>;

/// A console bound to its address, ready to serve.
pub struct Console {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    sources: Shared,
}

impl Console {
    /// Checks the options, reads control.toml, the TLS files and the log
    /// folder's presence, and binds the address (port 0 picks one).
    pub async fn bind(options: &ConsoleOptions) -> Result<Self, ConsoleError> {
        options.check()?;
        let config = options
            .config
            .as_deref()
            .map(ControlConfig::load)
            .transpose()?;
        // The federation CA in control.toml pins the log's verification.
        let ca_pem = config
            .as_ref()
            .and_then(|c| std::fs::read_to_string(&c.tls.ca).ok());
        let log = match &options.audit_log {
            Some(dir) => {
                let dir = fedsoc_coordinator::replay::resolve_log_dir(dir).map_err(|e| {
                    ConsoleError::AuditLog {
                        path: dir.clone(),
                        reason: e.to_string(),
                    }
                })?;
                Some(LogSource { dir, ca_pem })
            }
            None => None,
        };
        let tls = options.tls.as_ref().map(tls_acceptor).transpose()?;
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|source| ConsoleError::Bind {
                    addr: options.listen,
                    source,
                })?;
        Ok(Console {
            listener,
            tls,
            sources: Arc::new(Sources {
                live: config.map(Live::new),
                log,
            }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The console's base URL, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr())
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ConsoleError> {
        let app = router(self.sources);
        match self.tls {
            None => axum::serve(self.listener, app)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(ConsoleError::Serve),
            Some(acceptor) => axum::serve(
                TlsListener {
                    tcp: self.listener,
                    acceptor,
                },
                app,
            )
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ConsoleError::Serve),
        }
    }
}

fn tls_acceptor(paths: &TlsPaths) -> Result<TlsAcceptor, ConsoleError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let fail = |what, path: &Path, detail: String| ConsoleError::Tls {
        what,
        path: path.to_path_buf(),
        detail,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&paths.cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| {
            fail(
                "certificate",
                &paths.cert,
                format!("{e}; pass a PEM file with the console's certificate chain"),
            )
        })?;
    if certs.is_empty() {
        return Err(fail(
            "certificate",
            &paths.cert,
            "holds no CERTIFICATE block; pass a PEM certificate chain".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&paths.key).map_err(|e| {
        fail(
            "key",
            &paths.key,
            format!("{e}; pass the PEM private key of --tls-cert"),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| {
            fail(
                "certificate",
                &paths.cert,
                format!("{e}; check that --tls-key is the key of --tls-cert"),
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// TCP with a TLS handshake per connection; a failed or slow handshake
/// drops that connection only.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.tcp.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // As axum's own listener: out of descriptors is
                    // transient; back off rather than spin.
                    tracing::warn!(error = %e, "console: accept failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            match tokio::time::timeout(Duration::from_secs(10), self.acceptor.accept(stream)).await
            {
                Ok(Ok(tls)) => return (tls, addr),
                Ok(Err(e)) => tracing::debug!(%addr, error = %e, "console: TLS handshake failed"),
                Err(_) => tracing::debug!(%addr, "console: TLS handshake timed out"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn router(sources: Shared) -> Router {
    Router::new()
        .route("/", get(federation))
        .route("/api/status", get(status_json))
        .route("/rounds", get(rounds))
        .route("/rounds/{round}", get(round))
        .route("/verify", get(verify))
        .route("/static/console.css", get(css))
        .route("/static/console.js", get(js))
        .fallback(not_found)
        .with_state(sources)
        .layer(middleware::from_fn(guard))
}

/// GET and HEAD only, and the security headers on every response.
async fn guard(request: Request, next: Next) -> Response {
    let mut response = if request.method() == Method::GET || request.method() == Method::HEAD {
        next.run(request).await
    } else {
        let mut r = (
            StatusCode::METHOD_NOT_ALLOWED,
            "the console is read-only: GET only\n",
        )
            .into_response();
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        r
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn page(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// Runs a log read off the async threads (verification replays rounds).
async fn blocking<T: Send + 'static>(
    sources: &Shared,
    f: impl FnOnce(&LogSource) -> T + Send + 'static,
) -> Option<T> {
    sources.log.as_ref()?;
    let sources = sources.clone();
    tokio::task::spawn_blocking(move || sources.log.as_ref().map(f))
        .await
        .ok()
        .flatten()
}

async fn federation(State(s): State<Shared>) -> Response {
    let live = match &s.live {
        Some(l) => Some(l.federation().await),
        None => None,
    };
    let roster = blocking(&s, |log| {
        log.timeline().ok().map(|t| (t.federation, t.participants))
    })
    .await
    .flatten();
    page(
        StatusCode::OK,
        pages::federation(live.as_ref(), roster.as_ref()),
    )
}

async fn status_json(State(s): State<Shared>) -> Response {
    let body = match &s.live {
        Some(l) => match l.federation().await {
            Ok(f) => serde_json::json!({ "federation": f }),
            Err(e) => serde_json::json!({ "error": e }),
        },
        None => serde_json::json!({
            "error": "not connected: start the console with --config control.toml for live status"
        }),
    };
    Json(body).into_response()
}

async fn rounds(State(s): State<Shared>) -> Response {
    if let Some(result) = blocking(&s, LogSource::rounds).await {
        return match result {
            Ok(view) => page(StatusCode::OK, pages::rounds_from_log(&view)),
            Err(e) => unreadable_log(&e),
        };
    }
    match &s.live {
        Some(l) => match l.federation().await {
            Ok(f) => page(
                StatusCode::OK,
                pages::rounds_from_status(&f.federation, &f.recent),
            ),
            Err(e) => unreachable(&e, Nav::Rounds),
        },
        None => not_found().await,
    }
}

async fn round(
    State(s): State<Shared>,
    axum::extract::Path(round): axum::extract::Path<String>,
) -> Response {
    let Ok(round) = round.parse::<u64>() else {
        return page(
            StatusCode::NOT_FOUND,
            pages::message(
                "No such round",
                Nav::Rounds,
                "Rounds are numbered 1, 2, 3, …: see /rounds for the list.",
            ),
        );
    };
    let missing = || {
        page(
            StatusCode::NOT_FOUND,
            pages::message(
                "No such round",
                Nav::Rounds,
                &format!(
                    "Round {round} is not in the log or the coordinator's recent rounds: see /rounds for the list."
                ),
            ),
        )
    };
    if let Some(result) = blocking(&s, move |log| log.round(round)).await {
        return match result {
            Ok(Some(detail)) => page(StatusCode::OK, pages::round_detail(&detail)),
            Ok(None) => missing(),
            Err(e) => unreadable_log(&e),
        };
    }
    match &s.live {
        Some(l) => match l.federation().await {
            Ok(f) => match f.recent.iter().find(|r| r.round == round) {
                Some(r) => page(StatusCode::OK, pages::round_from_status(r)),
                None => missing(),
            },
            Err(e) => unreachable(&e, Nav::Rounds),
        },
        None => missing(),
    }
}

async fn verify(State(s): State<Shared>) -> Response {
    match blocking(&s, LogSource::verify).await {
        Some(view) => page(StatusCode::OK, pages::verify(&view)),
        None => page(
            StatusCode::OK,
            pages::message(
                "Audit verification",
                Nav::Verify,
                "No audit log given: export one (fedsoc audit export) and start the console with --audit-log DIR to verify it here.",
            ),
        ),
    }
}

fn unreadable_log(e: &str) -> Response {
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        pages::message(
            "The audit log cannot be read",
            Nav::Rounds,
            &format!("{e} (see Verify for where verification fails)"),
        ),
    )
}

fn unreachable(e: &str, nav: Nav) -> Response {
    page(
        StatusCode::BAD_GATEWAY,
        pages::message(
            "The coordinator cannot be read",
            nav,
            &format!("{e}; check control.toml and that the coordinator runs"),
        ),
    )
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        assets::CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        assets::JS,
    )
        .into_response()
}

async fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        pages::message(
            "Not found",
            Nav::Federation,
            "The console has /, /rounds, /rounds/N and /verify.",
        ),
    )
}
