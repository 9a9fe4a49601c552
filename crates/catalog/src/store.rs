//! [`Catalog`]: the session catalog over one DynamoDB table.
//!
//! Every write that changes a session's status is one transaction of two items: the `META` item,
//! conditional on the status *and* the event count the writer read, and a new `EVENT#…` item.
//! So the status and its history never disagree, two writers racing on a session cannot both
//! win, and a redelivered message that repeats a write finds the work done instead of doing it
//! twice.
//!
//! Code map: this module holds the type and one session's entry; `write` the status-changing
//! writes, each one read-check-write cycle that one helper retries when it loses a race;
//! `transaction` the two-item transaction and how DynamoDB reports a lost race or an invalid
//! write; `read` the other reads (batches, histories, outputs, the index queries and the
//! parallel scan), every paged one through the SDK's paginators.

use aws_sdk_dynamodb::Client;

use crate::error::{service, CatalogError};
use crate::item::{s, session_pk, SessionItem, META_SK};

/// Index of sessions by recording month (`month`, `recorded_at`).
pub const BY_MONTH_INDEX: &str = "by_month";
/// Index of sessions by status (`status`, `recorded_at`).
pub const BY_STATUS_INDEX: &str = "by_status";

/// The session catalog in one DynamoDB table. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub(crate) db: Client,
    pub(crate) table: String,
}

impl Catalog {
    pub fn new(db: Client, table: impl Into<String>) -> Self {
        Catalog {
            db,
            table: table.into(),
        }
    }

    /// The catalog over a client built from the caller's AWS configuration (credentials chain,
    /// region, endpoint): the one place adapters get a DynamoDB client from.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Catalog::new(Client::new(sdk), table)
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The DynamoDB client, for read paths kept in their own module (`query`).
    pub fn client(&self) -> &Client {
        &self.db
    }

    /// The session's entry, read consistently; `None` when it is not cataloged.
    pub async fn get(&self, session: &str) -> Result<Option<SessionItem>, CatalogError> {
        let out = self
            .db
            .get_item()
            .table_name(&self.table)
            .key("pk", s(session_pk(session)))
            .key("sk", s(META_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| service("GetItem", &self.table, e))?;
        out.item().map(SessionItem::from_item).transpose()
    }

    /// The session's entry; [`CatalogError::NotFound`] when it is not cataloged.
    pub(crate) async fn require(&self, session: &str) -> Result<SessionItem, CatalogError> {
        self.get(session)
            .await?
            .ok_or_else(|| CatalogError::NotFound {
                session: session.to_string(),
                table: self.table.clone(),
            })
    }
}
