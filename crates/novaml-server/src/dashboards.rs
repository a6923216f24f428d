//! The five dashboards, served by the binary with every asset embedded:
//! `/dashboards/{pipeline,models,anomalies,optimizer,capacity}`, their script and style under
//! `/assets/`, and uPlot 1.6.32 (vendored, MIT) for the charts. The pages read the JSON API and
//! refresh every few seconds; buttons that change something (feedback, promote, roll back, start
//! a tuning run) send the API token, which the page takes from `#token=…` in its URL (the demo
//! prints that link) or asks for once and keeps in the browser's local storage.

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::{ApiError, AppState};

/// The dashboards: path segment, title, page.
pub(crate) const PAGES: [(&str, &str, &str); 5] = [
    (
        "pipeline",
        "ML pipeline",
        include_str!("assets/dashboards/pipeline.html"),
    ),
    (
        "models",
        "Models",
        include_str!("assets/dashboards/models.html"),
    ),
    (
        "anomalies",
        "Anomalies",
        include_str!("assets/dashboards/anomalies.html"),
    ),
    (
        "optimizer",
        "Optimizer",
        include_str!("assets/dashboards/optimizer.html"),
    ),
    (
        "capacity",
        "Capacity",
        include_str!("assets/dashboards/capacity.html"),
    ),
];

/// Static assets: name, content type, body.
const ASSETS: [(&str, &str, &str); 4] = [
    (
        "novaml.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/dashboards/novaml.js"),
    ),
    (
        "novaml.css",
        "text/css; charset=utf-8",
        include_str!("assets/dashboards/novaml.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/vendor/uplot-1.6.32/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("assets/vendor/uplot-1.6.32/uPlot.min.css"),
    ),
];

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/dashboards",
            get(|| async { Redirect::to("/dashboards/pipeline") }),
        )
        .route("/dashboards/{name}", get(page))
        .route("/assets/{name}", get(asset))
}

/// The navigation bar, the same on every page.
fn nav(current: &str) -> String {
    let mut s = String::from("<nav><span class=\"brand\">novaml</span>");
    for (name, title, _) in PAGES {
        let class = if name == current {
            " class=\"current\""
        } else {
            ""
        };
        s.push_str(&format!(
            "<a href=\"/dashboards/{name}\"{class}>{title}</a>"
        ));
    }
    s.push_str("<a href=\"/api/openapi.json\">API</a><a href=\"/metrics\">/metrics</a></nav>");
    s
}

async fn page(Path(name): Path<String>) -> Result<Response, ApiError> {
    let (_, title, body) = PAGES.iter().find(|(n, _, _)| *n == name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no dashboard {name:?}; there are {}",
            PAGES.map(|p| p.0).join(", ")
        ))
    })?;
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>novaml · {title}</title>\
         <link rel=\"icon\" href=\"data:,\">\
         <link rel=\"stylesheet\" href=\"/assets/uPlot.min.css\">\
         <link rel=\"stylesheet\" href=\"/assets/novaml.css\">\
         <script src=\"/assets/uPlot.iife.min.js\"></script>\
         <script src=\"/assets/novaml.js\"></script></head>\
         <body data-page=\"{name}\">{}<main>{body}</main></body></html>",
        nav(&name)
    );
    // The page keeps the API token: never stored by a cache, scripts from this origin only.
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                crate::checks::DASHBOARD_CSP,
            ),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(html),
    )
        .into_response())
}

async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    let (_, ty, body) = ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| ApiError::NotFound(format!("no asset {name:?}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, *ty),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        *body,
    )
        .into_response())
}
