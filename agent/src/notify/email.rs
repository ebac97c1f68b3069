//! The e-mail channel: SMTP with STARTTLS (required, never optional) or implicit TLS, through
//! lettre on tokio with rustls. One message per notification to every recipient.

use std::time::Duration;

use futures::future::BoxFuture;
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::message::{Message, Sensor};
use super::{Channel, ChannelKind, DeliveryError, NotifyError};
use crate::config::SmtpTls;

/// The SMTP server, the envelope and the credentials.
#[derive(Clone)]
pub struct EmailConfig {
    /// Server host; its certificate must match this name.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// STARTTLS or implicit TLS.
    pub tls: SmtpTls,
    /// PEM of an extra CA to trust besides the public roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// User name and password.
    pub credentials: Option<(String, String)>,
    /// Sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Per-conversation timeout.
    pub timeout: Duration,
}

pub(super) struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    sensor: Sensor,
}

impl Email {
    pub(super) fn new(config: EmailConfig, sensor: Sensor) -> Result<Self, NotifyError> {
        let mut params = TlsParameters::builder(config.host.clone());
        if let Some(pem) = &config.extra_ca_pem {
            let cert = Certificate::from_pem(pem).map_err(|e| NotifyError::Smtp(e.to_string()))?;
            params = params.add_root_certificate(cert);
        }
        let params = params
            .build_rustls()
            .map_err(|e| NotifyError::Smtp(e.to_string()))?;
        let tls = match config.tls {
            SmtpTls::Starttls => Tls::Required(params),
            SmtpTls::Implicit => Tls::Wrapper(params),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .tls(tls)
            .timeout(Some(config.timeout))
            .hello_name(ClientId::Domain(format!("{}.ids2", sensor.id)));
        if let Some((user, password)) = config.credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        let mailbox = |s: &str| {
            s.parse::<Mailbox>()
                .map_err(|e| NotifyError::Address(s.to_string(), e.to_string()))
        };
        Ok(Self {
            transport: builder.build(),
            from: mailbox(&config.from)?,
            to: config
                .to
                .iter()
                .map(|t| mailbox(t))
                .collect::<Result<_, _>>()?,
            sensor,
        })
    }
}

/// The e-mail a notification becomes: the subject and plain-text body of [`Message`] (whose
/// attacker-written text is escaped there), our headers and no others.
pub fn compose(
    from: &Mailbox,
    to: &[Mailbox],
    sensor: &Sensor,
    msg: &Message,
) -> Result<lettre::Message, lettre::error::Error> {
    let mut builder = lettre::Message::builder()
        .from(from.clone())
        .subject(msg.subject(sensor))
        .header(ContentType::TEXT_PLAIN);
    for to in to {
        builder = builder.to(to.clone());
    }
    builder.body(msg.text(sensor))
}

impl Channel for Email {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    fn send<'a>(&'a self, msg: &'a Message) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let email = compose(&self.from, &self.to, &self.sensor, msg).map_err(|e| {
                DeliveryError::Smtp {
                    message: e.to_string(),
                    permanent: true,
                }
            })?;
            self.transport
                .send(email)
                .await
                .map(|_| ())
                .map_err(|e| DeliveryError::Smtp {
                    permanent: e.is_permanent(),
                    message: e.to_string(),
                })
        })
    }
}
