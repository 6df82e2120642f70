//! Routes of the HTTP service. Every answer but the page, the preview and the metrics is JSON;
//! errors are `{"error": "..."}` with a fitting status code.
//!
//! Before any route, [`guard`] refuses what a web page on another site can make a browser
//! send: without a token, requests for another host name (DNS rebinding) and changes that
//! come from another site; with one, changes from another site (the token rules are in
//! [`auth`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;

use super::app::{error, App, Camera};
use super::guard::{cookie_value, json_or_nothing, local_host, same, same_site};
use super::teach::TeachError;
use super::{next_latest, CameraHub, Hub};
use crate::dataset::capture::{sample_jpeg, CaptureError};
use crate::source::jpeg_stream::BOUNDARY;
use crate::source::{FrameData, RawFrame};

const PAGE: &str = include_str!("page.html");
/// Cookie set by `/?token=...`, so the page's own requests (images, event streams) carry it.
const COOKIE: &str = "edge_tl_token";
/// `/healthz` fails when no result came for this long.
const STALL: f64 = 10.0;
/// Largest request body read: the API takes small JSON objects.
const MAX_BODY: usize = 64 * 1024;

pub(super) fn router(
    hub: Arc<Hub>,
    token: Option<String>,
    listen: SocketAddr,
    body_read: Duration,
) -> Router {
    let app = App {
        hub,
        token: token.filter(|t| !t.is_empty()).map(Arc::from),
        listen,
        body_read,
    };
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/cameras", get(cameras))
        .route("/api/prediction", get(prediction))
        .route("/api/events", get(events))
        .route("/api/labels", get(labels))
        .route("/api/capture", post(capture))
        .route("/api/train", get(train_status).post(train))
        .route("/stream.mjpg", get(mjpeg))
        .route("/snapshot.jpg", get(snapshot))
        .merge(super::dataset_api::routes())
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such page; see / for the live page and /api/... for the API",
            )
        })
        .layer(middleware::from_fn_with_state(app.clone(), auth))
        // The outer layer runs first.
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Refuses what a web page on another site could make a visitor's browser send. Without a
/// token the service trusts whoever reaches it on loopback, and a browser on the same machine
/// does: so it answers only requests addressed to it by a local name (a page of
/// `attacker.example` whose name then resolves to 127.0.0.1, DNS rebinding, sends
/// `Host: attacker.example`), and takes changes (POST, ...) only with a JSON body or none,
/// which an HTML form on another site cannot send without the browser asking first. With or
/// without a token, a change that says it comes from another site (`Origin`,
/// `Sec-Fetch-Site`) is refused. The body of a change is read here, within `body_read`, so a
/// client that never sends it does not hold a handler.
async fn guard(State(app): State<App>, req: Request, next: Next) -> Response {
    let open = app.token.is_none();
    if open {
        if let Err(why) = local_host(req.headers(), req.uri(), app.listen) {
            return error(StatusCode::MISDIRECTED_REQUEST, why);
        }
    }
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    if let Err(why) = same_site(req.headers()) {
        return error(StatusCode::FORBIDDEN, why);
    }
    if open {
        if let Err(why) = json_or_nothing(req.headers()) {
            return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, why);
        }
    }
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(app.body_read, axum::body::to_bytes(body, MAX_BODY)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(e)) => error(
            StatusCode::BAD_REQUEST,
            format!(
                "cannot read the request body (at most {} KiB): {e}",
                MAX_BODY / 1024
            ),
        ),
        Err(_) => error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} s",
                app.body_read.as_secs_f64()
            ),
        ),
    }
}

/// Without a token, whatever [`guard`] lets through is open (loopback only, see
/// `HttpSettings::check`). With one,
/// every route but `/healthz` needs it: `Authorization: Bearer`, the cookie, or `?token=`
/// (which also sets the cookie, so a browser opens `/?token=...` once).
async fn auth(State(app): State<App>, req: Request, next: Next) -> Response {
    let Some(token) = app.token.clone() else {
        return next.run(req).await;
    };
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let headers = req.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let cookie = cookie_value(headers, COOKIE);
    let query = Query::<HashMap<String, String>>::try_from_uri(req.uri())
        .ok()
        .and_then(|q| q.0.get("token").cloned());
    let matches = |t: &Option<String>| t.as_deref().is_some_and(|t| same(t, &token));
    if matches(&bearer) || matches(&cookie) {
        return next.run(req).await;
    }
    if matches(&query) {
        let mut response = next.run(req).await;
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
        )) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
        return response;
    }
    error(
        StatusCode::UNAUTHORIZED,
        "missing or wrong token: send `Authorization: Bearer TOKEN`, or open /?token=TOKEN once in the browser",
    )
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// 200 while every camera has a result from the last [`STALL`] seconds; 503 when one has
/// none yet (`starting`) or stopped delivering (`stalled`), which one in `cameras`.
async fn healthz(State(app): State<App>) -> Response {
    let hub = &app.hub;
    let each: Vec<_> = hub
        .cameras()
        .iter()
        .map(|c| (c.name(), hub.health(c, STALL)))
        .collect();
    let worst = |status| each.iter().any(|(_, (s, _))| *s == status);
    let status = if worst("stalled") {
        "stalled"
    } else if worst("starting") {
        "starting"
    } else {
        "ok"
    };
    let quiet = each.iter().map(|(_, (_, q))| *q).fold(0.0, f64::max);
    let mut body = json!({ "status": status, "seconds_since_last_result": quiet });
    if each.iter().any(|(name, _)| name.is_some()) {
        body["cameras"] = each
            .iter()
            .map(|(name, (status, quiet))| {
                (
                    name.unwrap_or_default().to_string(),
                    json!({ "status": status, "seconds_since_last_result": quiet }),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    let code = if status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// The cameras of the run, with each one's newest result, for the page's camera picker.
async fn cameras(State(app): State<App>) -> Response {
    let list: Vec<_> = app
        .hub
        .cameras()
        .iter()
        .map(|c| {
            let (status, _) = app.hub.health(c, STALL);
            json!({ "name": c.name(), "status": status, "latest": c.latest().as_deref() })
        })
        .collect();
    Json(json!({ "cameras": list })).into_response()
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.hub.metrics.render(),
    )
        .into_response()
}

async fn prediction(Camera(camera): Camera) -> Response {
    match camera.latest() {
        Some(r) => Json(r.as_ref().clone()).into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "no prediction yet"),
    }
}

/// Each new result as an SSE `prediction` event; a slow reader skips to the newest.
async fn events(Camera(camera): Camera) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut rx = camera.latest.subscribe();
    rx.mark_changed();
    let s = stream::unfold(rx, |mut rx| async move {
        let r = next_latest(&mut rx).await?;
        let data = serde_json::to_string(r.as_ref()).unwrap_or_default();
        Some((Ok(Event::default().event("prediction").data(data)), rx))
    });
    Sse::new(s).keep_alive(KeepAlive::default())
}

async fn labels(Camera(camera): Camera) -> Response {
    let teach = camera.teach.clone();
    let labels = tokio::task::spawn_blocking(move || teach.labels())
        .await
        .unwrap_or_default();
    Json(json!({ "data": camera.teach.data(), "labels": labels })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptureRequest {
    label: String,
    #[serde(default = "one")]
    count: usize,
    #[serde(default = "default_interval_ms")]
    interval_ms: u64,
}

fn one() -> usize {
    1
}

fn default_interval_ms() -> u64 {
    200
}

async fn capture(
    Camera(camera): Camera,
    body: Result<Json<CaptureRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let req = match super::app::body(body, r#"{"label": "cat", "count": 5}"#) {
        Ok(r) => r,
        Err(refused) => return refused.into_response(),
    };
    if !(1..=100).contains(&req.count) || req.interval_ms > 10_000 {
        return error(
            StatusCode::BAD_REQUEST,
            "count must be 1..=100 and interval_ms at most 10000",
        );
    }
    let mut frames = camera.frames.subscribe();
    let outcome = camera
        .teach
        .capture(
            &mut frames,
            &req.label,
            req.count,
            Duration::from_millis(req.interval_ms),
        )
        .await;
    match outcome {
        Ok(saved) => {
            let samples = camera.teach.samples(&req.label);
            Json(json!({ "label": req.label, "saved": saved, "samples": samples })).into_response()
        }
        Err(TeachError::Capture(CaptureError::Label(e))) => error(StatusCode::BAD_REQUEST, e),
        Err(e @ TeachError::NoFrame(_)) => error(StatusCode::SERVICE_UNAVAILABLE, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, crate::error::chain(&e)),
    }
}

async fn train(Camera(camera): Camera) -> Response {
    match camera.teach.start_training() {
        Ok(()) => (StatusCode::ACCEPTED, Json(camera.teach.status())).into_response(),
        // Busy, or no head file to write: both are about the state of the device.
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

async fn train_status(Camera(camera): Camera) -> Response {
    Json(camera.teach.status()).into_response()
}

/// The frame as JPEG: a camera's JPEG as it came, anything else (YUYV frames, replayed PNGs)
/// encoded once per frame however many previews are open.
async fn preview_jpeg(hub: &CameraHub, frame: Arc<RawFrame>) -> Option<Arc<Vec<u8>>> {
    if let FrameData::Encoded(bytes) = &frame.data {
        if bytes.starts_with(&[0xFF, 0xD8]) {
            return Some(Arc::new(bytes.clone()));
        }
    }
    let key = (frame.index, frame.captured);
    let mut cache = hub.preview.lock().await;
    if let Some((k, jpeg)) = cache.as_ref() {
        if *k == key {
            return Some(jpeg.clone());
        }
    }
    let jpeg =
        tokio::task::spawn_blocking(move || sample_jpeg(&frame).ok().map(|b| b.into_owned()))
            .await
            .ok()
            .flatten()
            .map(Arc::new)?;
    *cache = Some((key, jpeg.clone()));
    Some(jpeg)
}

async fn snapshot(Camera(camera): Camera) -> Response {
    let latest = camera.frames.borrow().clone();
    match latest {
        Some(frame) => match preview_jpeg(&camera, frame).await {
            Some(jpeg) => ([(header::CONTENT_TYPE, "image/jpeg")], jpeg.to_vec()).into_response(),
            None => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the latest frame is damaged",
            ),
        },
        None => error(StatusCode::SERVICE_UNAVAILABLE, "no frame yet"),
    }
}

/// Live preview as multipart MJPEG (what `<img src>` and most viewers show). Frames a slow
/// client cannot take are skipped, never queued. Each part is followed at once by the next
/// boundary: browsers show a part only when they see the boundary after it, so without that
/// the picture would lag one frame behind the label.
async fn mjpeg(Camera(camera): Camera) -> Response {
    let mut rx = camera.frames.subscribe();
    rx.mark_changed();
    let opening = stream::once(async { Ok(Bytes::from(format!("--{BOUNDARY}\r\n"))) });
    let parts = stream::unfold((rx, camera), |(mut rx, hub)| async move {
        loop {
            let frame = next_latest(&mut rx).await?;
            let Some(jpeg) = preview_jpeg(&hub, frame).await else {
                continue;
            };
            let mut part = Vec::with_capacity(jpeg.len() + 100);
            write!(
                part,
                "Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                jpeg.len()
            )
            .ok()?;
            part.extend_from_slice(&jpeg);
            write!(part, "\r\n--{BOUNDARY}\r\n").ok()?;
            return Some((Ok::<_, Infallible>(Bytes::from(part)), (rx, hub)));
        }
    });
    let parts = opening.chain(parts);
    (
        [
            (
                header::CONTENT_TYPE,
                format!("multipart/x-mixed-replace; boundary={BOUNDARY}"),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Body::from_stream(parts),
    )
        .into_response()
}
