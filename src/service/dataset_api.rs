//! The routes of the labelling grid and the dataset view, for the camera a request names
//! (`?camera=`), behind the same token and same-site rules as every other route:
//!
//! - `GET /api/review`: the camera's frames in the review queue, most uncertain first; `GET /api/review/picture?id=`
//! - `POST /api/review/label {"ids": [...], "label": "cat"}`: pictures into `<data>/cat/`
//! - `POST /api/review/discard {"ids": [...]}`
//! - `GET /api/samples?label=cat`: a label's pictures; `GET /api/samples/picture?label=&name=`
//! - `POST /api/samples/delete {"label": "cat", "names": [...]}`
//! - `POST /api/samples/move {"label": "cat", "names": [...], "to": "dog"}`
//! - `GET /api/train/confusion.svg`, `GET /api/train/curve.svg`: the last training's
//!   confusion matrix and learning curve, drawn as `eval --report` draws them
//! - `GET /api/region`, `POST /api/region {"region": {"x": 0.5, "y": 0.25, "w": 0.4, "h": 0.5}}`
//!   (or `null` for the whole frame): the part of the frame the next Train teaches on
//!
//! Files are touched on the runtime's blocking threads, never on its one worker.

use std::path::PathBuf;

use axum::extract::rejection::JsonRejection;
use axum::extract::Query;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::app::{body, error, Answer, App, Camera, Refused};
use crate::dataset::samples::{self, SampleError};
use crate::review::ReviewError;

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/api/review", get(review))
        .route("/api/review/picture", get(review_picture))
        .route("/api/review/label", post(review_label))
        .route("/api/review/discard", post(review_discard))
        .route("/api/samples", get(samples_list))
        .route("/api/samples/picture", get(sample_picture))
        .route("/api/samples/delete", post(samples_delete))
        .route("/api/samples/move", post(samples_move))
        .route("/api/region", get(region).post(set_region))
        .route("/api/train/confusion.svg", get(confusion_svg))
        .route("/api/train/curve.svg", get(curve_svg))
}

/// Most ids or names one request may name.
const MAX_NAMES: usize = 1000;

/// Runs file work off the runtime's worker.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("dataset work does not panic")
}

/// The queue of the camera's dataset, or a 409 saying why there is none.
fn queue_of(camera: &Camera) -> Result<std::sync::Arc<crate::review::ReviewQueue>, Refused> {
    camera.0.teach.review_queue().cloned().ok_or_else(|| {
        Refused(
            StatusCode::CONFLICT,
            "this service keeps no review queue ([review] keep = 0 or --review-keep 0, or its \
             folder could not be created: see the service's log)"
                .into(),
        )
    })
}

/// A picture file as its image type; anything that is not a picture is refused.
async fn picture_file(path: PathBuf) -> Response {
    let read = blocking(move || std::fs::read(&path).map(|b| (path, b))).await;
    match read {
        Ok((path, bytes)) => match image::guess_format(&bytes) {
            Ok(format) => (
                [
                    (header::CONTENT_TYPE, format.to_mime_type()),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                bytes,
            )
                .into_response(),
            Err(_) => error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("{}: not a picture", path.display()),
            ),
        },
        Err(e) => error(StatusCode::NOT_FOUND, e),
    }
}

async fn review(camera: Camera) -> Response {
    let Some(queue) = camera.0.teach.review_queue().cloned() else {
        return Json(json!({ "enabled": false, "entries": [] })).into_response();
    };
    // The camera's own frames: cameras of one head share the queue, each page shows its own.
    let name = camera.0.name().map(String::from);
    let (entries, used) = blocking(move || {
        let mut entries = queue.list();
        entries.retain(|e| e.camera == name);
        (entries, queue.used())
    })
    .await;
    let s = camera.0.teach.review_queue().map(|q| q.settings());
    Json(json!({
        "enabled": true,
        "entries": entries,
        "used_bytes": used,
        "max_bytes": s.map(|s| s.max_bytes),
        "keep": s.map(|s| s.keep),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct IdQuery {
    id: String,
}

async fn review_picture(camera: Camera, Query(q): Query<IdQuery>) -> Answer {
    let queue = queue_of(&camera)?;
    let id = q.id.clone();
    Ok(match blocking(move || queue.picture(&id)).await {
        Some(path) => picture_file(path).await,
        None => error(
            StatusCode::NOT_FOUND,
            format!(
                "no entry {:?} in the review queue (labelled, discarded or made room for)",
                q.id
            ),
        ),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelRequest {
    ids: Vec<String>,
    label: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscardRequest {
    ids: Vec<String>,
}

fn count_ok(n: usize) -> Result<(), Refused> {
    if n == 0 || n > MAX_NAMES {
        return Err(Refused(
            StatusCode::BAD_REQUEST,
            format!("name 1 to {MAX_NAMES} pictures per request (got {n})"),
        ));
    }
    Ok(())
}

async fn review_label(camera: Camera, given: Result<Json<LabelRequest>, JsonRejection>) -> Answer {
    let req = body(given, r#"{"ids": ["..."], "label": "cat"}"#)?;
    count_ok(req.ids.len())?;
    let queue = queue_of(&camera)?;
    let label = req.label.clone();
    let teach = camera.0.teach.clone();
    let assigned = blocking(move || {
        let done = queue.assign(&req.ids, &req.label)?;
        Ok::<_, ReviewError>((done, teach.samples(&req.label)))
    })
    .await;
    let (done, samples) = match assigned {
        Ok(d) => d,
        Err(ReviewError::Capture(crate::dataset::capture::CaptureError::Label(e))) => {
            return Err(Refused(StatusCode::BAD_REQUEST, e.to_string()))
        }
        Err(e) => {
            return Err(Refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                crate::error::chain(&e),
            ))
        }
    };
    let moved: Vec<_> = done
        .done
        .iter()
        .map(|(id, path)| json!({ "id": id, "path": path }))
        .collect();
    let failed: Vec<_> = done
        .failed
        .iter()
        .map(|(id, why)| json!({ "id": id, "error": why }))
        .collect();
    Ok(Json(json!({
        "label": label,
        "moved": moved,
        "missing": done.missing,
        "failed": failed,
        "samples": samples,
    }))
    .into_response())
}

async fn review_discard(
    camera: Camera,
    given: Result<Json<DiscardRequest>, JsonRejection>,
) -> Answer {
    let req = body(given, r#"{"ids": ["..."]}"#)?;
    count_ok(req.ids.len())?;
    let queue = queue_of(&camera)?;
    let done = blocking(move || queue.discard(&req.ids)).await;
    let ids: Vec<&String> = done.done.iter().map(|(id, _)| id).collect();
    Ok(Json(json!({ "discarded": ids, "missing": done.missing })).into_response())
}

#[derive(Deserialize)]
struct LabelQuery {
    label: String,
}

#[derive(Deserialize)]
struct PictureQuery {
    label: String,
    name: String,
}

/// A sample error as a response: the request's fault (400/404) or the device's (500).
fn sample_error(e: SampleError) -> Response {
    let status = match &e {
        SampleError::Label(_) | SampleError::BadName { .. } | SampleError::SameLabel { .. } => {
            StatusCode::BAD_REQUEST
        }
        SampleError::Missing { .. } => StatusCode::NOT_FOUND,
        SampleError::Capture(_) | SampleError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, crate::error::chain(&e))
}

async fn samples_list(camera: Camera, Query(q): Query<LabelQuery>) -> Response {
    let data = camera.0.teach.data().to_path_buf();
    let label = q.label.clone();
    match blocking(move || samples::list(&data, &q.label)).await {
        Ok(files) => Json(json!({ "label": label, "samples": files })).into_response(),
        Err(e) => sample_error(e),
    }
}

async fn sample_picture(camera: Camera, Query(q): Query<PictureQuery>) -> Response {
    let data = camera.0.teach.data().to_path_buf();
    match blocking(move || samples::path_of(&data, &q.label, &q.name)).await {
        Ok(path) => picture_file(path).await,
        Err(e) => sample_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteRequest {
    label: String,
    names: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveRequest {
    label: String,
    names: Vec<String>,
    to: String,
}

/// Runs a change of the dataset with its request checked, answering what it did.
async fn change<T, R>(
    camera: Camera,
    given: Result<Json<T>, JsonRejection>,
    shape: &str,
    names: fn(&T) -> usize,
    act: impl FnOnce(&std::path::Path, T) -> Result<R, SampleError> + Send + 'static,
) -> Answer
where
    T: DeserializeOwned + Send + 'static,
    R: serde::Serialize + Send + 'static,
{
    let req = body(given, shape)?;
    count_ok(names(&req))?;
    let data = camera.0.teach.data().to_path_buf();
    Ok(match blocking(move || act(&data, req)).await {
        Ok(done) => Json(done).into_response(),
        Err(e) => sample_error(e),
    })
}

async fn samples_delete(
    camera: Camera,
    given: Result<Json<DeleteRequest>, JsonRejection>,
) -> Answer {
    change(
        camera,
        given,
        r#"{"label": "cat", "names": ["..."]}"#,
        |r| r.names.len(),
        |data, r| {
            let n = samples::delete(data, &r.label, &r.names)?;
            Ok(json!({ "label": r.label, "deleted": n, "samples": samples::list(data, &r.label)?.len() }))
        },
    )
    .await
}

async fn samples_move(camera: Camera, given: Result<Json<MoveRequest>, JsonRejection>) -> Answer {
    change(
        camera,
        given,
        r#"{"label": "cat", "names": ["..."], "to": "dog"}"#,
        |r| r.names.len(),
        |data, r| {
            let moved = samples::relabel(data, &r.label, &r.names, &r.to)?;
            Ok(json!({ "label": r.label, "to": r.to, "moved": moved }))
        },
    )
    .await
}

async fn region(camera: Camera) -> Response {
    let teach = camera.0.teach.clone();
    let (next, head) = blocking(move || (teach.region(), teach.head_region())).await;
    Json(json!({ "region": next, "head_region": head })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionRequest {
    region: Option<crate::region::Region>,
}

async fn set_region(camera: Camera, given: Result<Json<RegionRequest>, JsonRejection>) -> Answer {
    let req = body(
        given,
        r#"{"region": {"x": 0.5, "y": 0.25, "w": 0.4, "h": 0.5}} or {"region": null}"#,
    )?;
    camera
        .0
        .teach
        .set_region(req.region)
        .map_err(|e| Refused(StatusCode::BAD_REQUEST, format!("region {e}")))?;
    Ok(Json(json!({ "region": req.region })).into_response())
}

/// An SVG picture, or a 404 saying there is none yet.
fn svg(picture: Option<String>) -> Response {
    match picture {
        Some(svg) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            svg,
        )
            .into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "no cross-validated training yet: press Train (every label needs 5 pictures)",
        ),
    }
}

async fn confusion_svg(camera: Camera) -> Response {
    let s = camera.0.teach.status();
    let labels: Vec<String> = s.per_class.iter().map(|c| c.label.clone()).collect();
    svg((s.state == "done" && !s.confusion.is_empty())
        .then(|| crate::report::confusion_svg(&labels, &s.confusion)))
}

async fn curve_svg(camera: Camera) -> Response {
    let s = camera.0.teach.status();
    svg((s.state == "done" && s.learning_curve.len() > 1)
        .then(|| crate::report::curve_svg(&s.learning_curve)))
}
