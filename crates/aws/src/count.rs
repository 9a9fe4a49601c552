//! Requests counted where they leave: an SDK interceptor that counts every attempt the client
//! transmits (retries included), so "requests per object" is measured, not estimated from the
//! code's intent. Attach it once to a client ([`RequestCounter::attach`]); clones share the
//! count.

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counts the HTTP requests a client sends.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    sent: Arc<AtomicU64>,
}

impl RequestCounter {
    /// A copy of `client` (same connections, credentials and settings) whose every request is
    /// counted here.
    pub fn attach(&self, client: &aws_sdk_s3::Client) -> aws_sdk_s3::Client {
        let conf = client
            .config()
            .to_builder()
            .interceptor(self.clone())
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Requests sent so far (every attempt of every operation).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "LabpipeRequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
