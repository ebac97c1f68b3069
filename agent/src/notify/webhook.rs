//! The webhook channel: one HTTP POST of JSON per notification (reqwest, rustls).

use std::time::Duration;

use futures::future::BoxFuture;

use super::message::{Message, Sensor};
use super::{Channel, ChannelKind, DeliveryError, NotifyError};
use crate::config::WebhookFormat;

/// Where and how to post.
#[derive(Clone)]
pub struct WebhookConfig {
    /// The URL (may itself be a secret: never logged).
    pub url: String,
    /// Payload shape.
    pub format: WebhookFormat,
    /// Sent as `Authorization: Bearer …` when set.
    pub bearer_token: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
}

pub(super) struct Webhook {
    client: reqwest::Client,
    config: WebhookConfig,
    sensor: Sensor,
}

impl Webhook {
    pub(super) fn new(config: WebhookConfig, sensor: Sensor) -> Result<Self, NotifyError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("ids2-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(NotifyError::HttpClient)?;
        Ok(Self {
            client,
            config,
            sensor,
        })
    }
}

impl Channel for Webhook {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Webhook
    }

    fn send<'a>(&'a self, msg: &'a Message) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let body = match self.config.format {
                WebhookFormat::Generic => msg.generic_json(&self.sensor),
                WebhookFormat::Slack => msg.slack_json(&self.sensor),
            };
            let mut req = self.client.post(&self.config.url).json(&body);
            if let Some(token) = &self.config.bearer_token {
                req = req.bearer_auth(token);
            }
            // The URL can carry a secret token (Slack): report errors without it.
            let resp = req
                .send()
                .await
                .map_err(|e| DeliveryError::Http(e.without_url().to_string()))?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            let permanent = status.is_client_error()
                && status != reqwest::StatusCode::REQUEST_TIMEOUT
                && status != reqwest::StatusCode::TOO_MANY_REQUESTS;
            Err(DeliveryError::Status {
                status: status.as_u16(),
                permanent,
            })
        })
    }
}
