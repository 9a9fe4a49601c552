//! Sending the spool to CloudWatch Logs: `CreateLogStream` (once, when the stream is missing)
//! and `PutLogEvents`, with the uploader role's `ShipClientLogs` grant (`docs/security.md`).
//!
//! Nothing here may slow or fail an upload: the client tries each request at most twice with
//! short timeouts, the caller bounds the whole run with a deadline, and any failure — no network,
//! no permission, no log group — leaves the records in the spool for the next run. Records are
//! removed only after CloudWatch answered for them.
//!
//! Sequence tokens are not used: CloudWatch ignores them and accepts concurrent `PutLogEvents`
//! on one stream (<https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html>).

use aws_sdk_cloudwatchlogs::config::retry::RetryConfig;
use aws_sdk_cloudwatchlogs::config::timeout::TimeoutConfig;
use aws_sdk_cloudwatchlogs::error::DisplayErrorContext;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use chrono::Utc;
use std::time::Duration;

use crate::batch::{next_batch, MAX_BATCH_EVENTS};
use crate::error::ClientLogError;
use crate::record::{Kind, Origin, Record};
use crate::spool::Spool;

/// How long one shipper may hold the spool before another may take over (a shipper that died).
const LEASE: Duration = Duration::from_secs(120);

/// What one [`Shipper::ship`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shipped {
    /// Records CloudWatch accepted.
    pub sent: u64,
    /// Records removed without being accepted: older than CloudWatch takes, or refused by it.
    pub expired: u64,
    /// Dropped records reported in a DROPPED record.
    pub dropped_reported: u64,
    /// Another shipper (the app, another run) held the spool: nothing was sent by this one.
    pub busy: bool,
}

/// One lab PC user's stream in the stack's client log group.
pub struct Shipper {
    client: aws_sdk_cloudwatchlogs::Client,
    group: String,
    stream: String,
}

impl Shipper {
    /// A client for the loaded AWS configuration (`AWS_ENDPOINT_URL_CLOUDWATCH_LOGS` or
    /// `AWS_ENDPOINT_URL` point it elsewhere, as for every AWS SDK).
    pub fn new(sdk: &aws_config::SdkConfig, group: &str, origin: &Origin) -> Self {
        let conf = aws_sdk_cloudwatchlogs::config::Builder::from(sdk)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(2)
                    .with_initial_backoff(Duration::from_millis(200)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(10))
                    .build(),
            )
            .build();
        Shipper {
            client: aws_sdk_cloudwatchlogs::Client::from_conf(conf),
            group: group.to_string(),
            stream: origin.stream_name(),
        }
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Sends everything in the spool, batch by batch, until it is empty or a request fails.
    pub async fn ship(&self, spool: &Spool, origin: &Origin) -> Result<Shipped, ClientLogError> {
        let mut done = Shipped::default();
        if !spool.take_lease(Utc::now().timestamp_millis(), LEASE)? {
            done.busy = true;
            return Ok(done);
        }
        let result = self.ship_leased(spool, origin, &mut done).await;
        if let Err(e) = spool.release_lease() {
            tracing::warn!(error = %e, "client log: cannot release the spool's lease");
        }
        result.map(|()| done)
    }

    async fn ship_leased(
        &self,
        spool: &Spool,
        origin: &Origin,
        done: &mut Shipped,
    ) -> Result<(), ClientLogError> {
        loop {
            let now = Utc::now();
            let dropped = spool.dropped()?;
            let rows = spool.oldest(MAX_BATCH_EVENTS)?;
            let dropped_record = (dropped > 0).then(|| {
                let mut r = Record::new(origin, Kind::Dropped, now).reason(format!(
                    "{dropped} older records were dropped: the spool was full while this PC could not send them"
                ));
                r.count = Some(dropped);
                r.to_json()
            });
            let batch = next_batch(&rows, now.timestamp_millis(), dropped_record.as_deref());
            if !batch.expired.is_empty() {
                spool.remove(&batch.expired)?;
                spool.add_dropped(batch.expired.len() as u64)?;
                done.expired += batch.expired.len() as u64;
                continue;
            }
            if batch.events.is_empty() {
                return Ok(());
            }
            let carries_dropped = batch.events.len() > batch.ids.len();
            let rejected = self.put(&batch.events).await?;
            spool.remove(&batch.ids)?;
            if carries_dropped {
                spool.reported_dropped(dropped)?;
                done.dropped_reported += dropped;
            }
            if rejected > 0 {
                spool.add_dropped(rejected)?;
                done.expired += rejected;
            }
            done.sent += batch.ids.len() as u64 - rejected.min(batch.ids.len() as u64);
        }
    }

    /// One `PutLogEvents`; creates the stream when it is missing. Returns how many events
    /// CloudWatch refused for good (too old, too new, expired), which it reports while accepting
    /// the rest.
    async fn put(&self, events: &[(i64, String)]) -> Result<u64, ClientLogError> {
        let input: Vec<InputLogEvent> = events
            .iter()
            .map(|(ts, m)| {
                InputLogEvent::builder()
                    .timestamp(*ts)
                    .message(m)
                    .build()
                    .expect("timestamp and message are set")
            })
            .collect();
        let mut created = false;
        loop {
            let sent = self
                .client
                .put_log_events()
                .log_group_name(&self.group)
                .log_stream_name(&self.stream)
                .set_log_events(Some(input.clone()))
                .send()
                .await;
            match sent {
                Ok(out) => {
                    let n = events.len() as i64;
                    let Some(info) = out.rejected_log_events_info() else {
                        return Ok(0);
                    };
                    let mut refused = vec![false; events.len()];
                    let mut mark = |from: i64, to: i64| {
                        for i in from.max(0)..to.min(n) {
                            refused[i as usize] = true;
                        }
                    };
                    if let Some(end) = info.too_old_log_event_end_index() {
                        mark(0, end as i64 + 1);
                    }
                    if let Some(end) = info.expired_log_event_end_index() {
                        mark(0, end as i64 + 1);
                    }
                    if let Some(start) = info.too_new_log_event_start_index() {
                        mark(start as i64, n);
                    }
                    let count = refused.iter().filter(|r| **r).count() as u64;
                    tracing::warn!(
                        count,
                        "client log: CloudWatch refused records (too old or too new)"
                    );
                    return Ok(count);
                }
                Err(e) => {
                    let missing = e
                        .as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception());
                    if missing && !created {
                        self.create_stream().await?;
                        created = true;
                        continue;
                    }
                    return Err(ClientLogError::Send {
                        group: self.group.clone(),
                        reason: DisplayErrorContext(&e).to_string(),
                    });
                }
            }
        }
    }

    async fn create_stream(&self) -> Result<(), ClientLogError> {
        match self
            .client
            .create_log_stream()
            .log_group_name(&self.group)
            .log_stream_name(&self.stream)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(s) if s.is_resource_already_exists_exception() => Ok(()),
                Some(s) if s.is_resource_not_found_exception() => {
                    Err(ClientLogError::MissingLogGroup {
                        group: self.group.clone(),
                    })
                }
                _ => Err(ClientLogError::Send {
                    group: self.group.clone(),
                    reason: DisplayErrorContext(&e).to_string(),
                }),
            },
        }
    }
}
