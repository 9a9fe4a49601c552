//! Why one unit of work failed, and therefore what happens next.

use labpipe_catalog::CatalogError;

/// The outcome class of a failed step.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The session itself is wrong: retrying cannot help. The session becomes `FAILED` with this
    /// reason, which names the file and says what to do.
    #[error("{0}")]
    Session(String),
    /// Something around the session failed (network, throttling, a busy session, a missing
    /// table): the message is retried and, after a few attempts, dead-lettered.
    #[error("{0}")]
    Transient(String),
}

impl Failure {
    pub fn session(reason: impl Into<String>) -> Self {
        Failure::Session(reason.into())
    }
    pub fn transient(reason: impl Into<String>) -> Self {
        Failure::Transient(reason.into())
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Failure::Transient(_))
    }
}

impl From<CatalogError> for Failure {
    /// A catalog error no retry can fix (a manifest conflict, a change the session's status does
    /// not allow, a request DynamoDB rejects as invalid, a malformed item) ends the session
    /// `FAILED` with it as the reason; everything else (throttling, contention, a missing table or
    /// role) is retried and, after a few attempts, dead-lettered for an operator to redrive.
    fn from(e: CatalogError) -> Self {
        if e.is_permanent() {
            Failure::Session(e.to_string())
        } else {
            Failure::Transient(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use labpipe_catalog::Status;

    #[test]
    fn catalog_errors_no_retry_can_fix_fail_the_session() {
        let terminal = CatalogError::InvalidTransition {
            session: "20210301_161221".into(),
            from: Status::Uploading,
            to: Status::Processing,
        };
        assert!(matches!(Failure::from(terminal), Failure::Session(_)));
        let busy = CatalogError::Contention {
            session: "20210301_161221".into(),
            attempts: 3,
        };
        assert!(Failure::from(busy).is_transient());
    }
}
