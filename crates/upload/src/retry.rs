//! Retries as upload progress. The gateway's [`labpipe_aws::RetryWatch`] rides along with every
//! request and reports each retried attempt with its reason; one on a key under
//! `raw/<session>/` becomes [`Event::Retrying`], so a flaky link does not look like a slow one.

pub(crate) use labpipe_aws::RetryWatch;
use labpipe_aws::{FromRetry, Retry};

use crate::event::Event;

impl FromRetry for Event {
    fn from_retry(retry: &Retry) -> Option<Self> {
        let place = retry.raw_place()?;
        Some(Event::Retrying {
            session: place.session.to_string(),
            path: place.path.map(str::to_string),
            operation: retry.operation.clone(),
            attempt: retry.attempt,
            reason: retry.reason.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_on_session_keys_become_events() {
        let retry = |key: &str| Retry {
            key: key.into(),
            operation: "UploadPart".into(),
            attempt: 3,
            reason: "connection reset".into(),
        };
        assert_eq!(
            Event::from_retry(&retry(&crate::object_key("20210301_161221", "sub/a.bin"))),
            Some(Event::Retrying {
                session: "20210301_161221".into(),
                path: Some("sub/a.bin".into()),
                operation: "UploadPart".into(),
                attempt: 3,
                reason: "connection reset".into(),
            })
        );
        assert_eq!(Event::from_retry(&retry("raw/.labpipe-preflight")), None);
    }
}
