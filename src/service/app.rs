//! What every route shares: the service's state, the camera a request is about, and the
//! shape of an error answer. Below both route modules ([`super::http`] and
//! [`super::dataset_api`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{CameraHub, Hub};

/// The router's state.
#[derive(Clone)]
pub(super) struct App {
    pub(super) hub: Arc<Hub>,
    pub(super) token: Option<Arc<str>>,
    /// The address the service listens on (its real port, also with port 0 asked).
    pub(super) listen: SocketAddr,
    /// Time to send the body of a change.
    pub(super) body_read: Duration,
}

/// `{"error": message}` with `status`.
pub(super) fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

/// The camera a request is about: the one its `?camera=NAME` names, or the run's first (so
/// with one camera nothing changes); a name the run does not have is a 404 that lists those
/// it has.
pub(super) struct Camera(pub(super) Arc<CameraHub>);

impl FromRequestParts<App> for Camera {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Response> {
        let asked = Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .ok()
            .and_then(|q| q.0.get("camera").cloned());
        app.hub
            .camera(asked.as_deref())
            .map(|c| Camera(c.clone()))
            .map_err(|e| error(StatusCode::NOT_FOUND, e))
    }
}

/// A request refused, answered as `{"error": ...}` with its status.
pub(super) struct Refused(pub(super) StatusCode, pub(super) String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

pub(super) type Answer = Result<Response, Refused>;

/// A JSON body, or a 400 that shows the expected shape.
pub(super) fn body<T>(given: Result<Json<T>, JsonRejection>, shape: &str) -> Result<T, Refused> {
    given.map(|Json(t)| t).map_err(|e| {
        Refused(
            StatusCode::BAD_REQUEST,
            format!("{}; expected {shape}", e.body_text()),
        )
    })
}
