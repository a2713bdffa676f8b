//! The middleware every Glyco web surface wears: local peers only (unless
//! configured otherwise), counted when refused, and the security headers on
//! every answer. One copy, so the hub's pages, its first-boot page, the
//! clinic's dashboard and the clinic node's metrics cannot drift apart.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What one surface's guard enforces and says.
#[derive(Clone)]
pub struct LocalGuard {
    pub lan_only: bool,
    /// The refusal's text ("the hub serves its local network only").
    pub refusal: &'static str,
    /// The Content-Security-Policy its pages need.
    pub csp: &'static str,
    /// Counts a refused peer (the surface's own counter).
    pub on_refused: Arc<dyn Fn() + Send + Sync>,
}

impl LocalGuard {
    pub fn new(lan_only: bool, refusal: &'static str, csp: &'static str) -> Self {
        Self {
            lan_only,
            refusal,
            csp,
            on_refused: Arc::new(|| {}),
        }
    }

    pub fn counting(mut self, on_refused: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_refused = Arc::new(on_refused);
        self
    }
}

/// Use with `axum::middleware::from_fn_with_state(guard, local_only)`; the
/// app must be served with `into_make_service_with_connect_info`.
pub async fn local_only(
    State(guard): State<LocalGuard>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if guard.lan_only && !crate::lan::is_local(peer.ip()) {
        (guard.on_refused)();
        return (StatusCode::FORBIDDEN, guard.refusal).into_response();
    }
    let mut response = next.run(request).await;
    crate::headers::secure(response.headers_mut(), guard.csp);
    response
}
