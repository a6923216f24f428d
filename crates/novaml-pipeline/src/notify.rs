//! Alert delivery, for live detection and for the one-shot `novaml detect`: incidents to
//! Alertmanager (`POST <url>/api/v2/alerts`) and to generic JSON webhooks (`POST <url>` with
//! `{"alerts": [...]}`), with retries and exponential backoff.
//!
//! A connection failure, a timeout, 429 and 5xx are retried; another 4xx is the receiver
//! refusing the document, which a retry would not change, so it fails at once.

use std::time::Duration;

use novaml_anomaly::alert::{AlertmanagerAlert, WebhookEvent};
use serde::{Deserialize, Serialize};

/// The document a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// Alertmanager's API v2: the URL is Alertmanager's base URL.
    Alertmanager,
    /// `{"alerts": [{"status", "incident_id", "incident"}]}` to the URL as given.
    Json,
}

/// One alert receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Where to send.
    pub url: String,
    /// What to send.
    pub format: WebhookFormat,
    /// Sent as `Authorization: Bearer <token>` when set.
    #[serde(default)]
    pub bearer_token: Option<String>,
}

/// Why a delivery failed after its retries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The receiver answered a status that is not retried (4xx other than 429).
    #[error("{url} refused the alerts: HTTP {status}: {body}")]
    Refused {
        /// Receiver.
        url: String,
        /// HTTP status.
        status: u16,
        /// The start of the answer.
        body: String,
    },
    /// Every attempt failed with a retryable error.
    #[error("{url} unreachable after {attempts} attempts: {last}")]
    GaveUp {
        /// Receiver.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Delivers alerts to the configured receivers.
#[derive(Debug, Clone)]
pub struct Notifier {
    client: reqwest::Client,
    hooks: Vec<Webhook>,
    attempts: u32,
    backoff: Duration,
}

impl Notifier {
    /// A notifier with `attempts` tries per receiver (≥ 1), the first retry after `backoff`,
    /// doubling, and a per-request `timeout`.
    pub fn new(
        hooks: Vec<Webhook>,
        attempts: u32,
        backoff: Duration,
        timeout: Duration,
    ) -> Result<Self, DeliveryError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("novaml/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DeliveryError::Client(e.to_string()))?;
        Ok(Self {
            client,
            hooks,
            attempts: attempts.max(1),
            backoff,
        })
    }

    /// Whether any receiver is configured.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Sends the alerts to every receiver (one request each); one result per receiver, in
    /// order.
    pub async fn deliver(
        &self,
        alertmanager: &[AlertmanagerAlert],
        events: &[WebhookEvent<'_>],
    ) -> Vec<Result<(), DeliveryError>> {
        let mut out = Vec::with_capacity(self.hooks.len());
        for hook in &self.hooks {
            let (url, body) = match hook.format {
                WebhookFormat::Alertmanager => (
                    format!("{}/api/v2/alerts", hook.url.trim_end_matches('/')),
                    serde_json::to_value(alertmanager),
                ),
                WebhookFormat::Json => (
                    hook.url.clone(),
                    serde_json::to_value(serde_json::json!({ "alerts": events })),
                ),
            };
            let result = match body {
                Ok(body) => self.post(&url, hook.bearer_token.as_deref(), &body).await,
                Err(e) => Err(DeliveryError::Client(e.to_string())),
            };
            if let Err(e) = &result {
                tracing::warn!(error = %e, "Alert delivery failed.");
            }
            out.push(result);
        }
        out
    }

    async fn post(
        &self,
        url: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<(), DeliveryError> {
        let mut wait = self.backoff;
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            let mut req = self.client.post(url).json(body);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => {
                    let status = r.status();
                    let text: String = r.text().await.unwrap_or_default();
                    let text: String = text.chars().take(200).collect();
                    if status.is_client_error() && status.as_u16() != 429 {
                        return Err(DeliveryError::Refused {
                            url: url.to_owned(),
                            status: status.as_u16(),
                            body: text,
                        });
                    }
                    last = format!("HTTP {status}: {text}");
                }
                Err(e) => last = e.to_string(),
            }
            if attempt < self.attempts {
                tracing::debug!(url, attempt, error = %last, "Retrying alert delivery.");
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
            }
        }
        Err(DeliveryError::GaveUp {
            url: url.to_owned(),
            attempts: self.attempts,
            last,
        })
    }
}
