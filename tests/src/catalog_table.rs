//! A catalog table for a test: the layout `infra/template.yaml` declares for `CatalogTable`
//! (keys, both indexes, on-demand billing), on the emulator or dynalite, which have no
//! CloudFormation of their own for one table. A fixture only: a stack's table comes from the
//! template.

use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_dynamodb::client::Waiters as _;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;

/// The template's index names, as `labpipe_catalog::{BY_MONTH_INDEX, BY_STATUS_INDEX}` query
/// them: every catalog read by month or status fails on a table whose names differ.
const INDEXES: [(&str, &str); 2] = [("by_month", "month"), ("by_status", "status")];

/// How long a new table may take to become `ACTIVE` (both servers make it so at once).
const ACTIVE_WITHIN: Duration = Duration::from_secs(60);

/// Creates the catalog table `table` and waits, with the SDK's `TableExists` waiter, until it
/// is `ACTIVE`.
pub async fn create_catalog_table(db: &Client, table: &str) -> anyhow::Result<()> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("name and type are set")
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("name and key type are set")
    };
    let mut create = db
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range));
    for name in ["pk", "sk", "recorded_at"] {
        create = create.attribute_definitions(attr(name));
    }
    for (index, hash) in INDEXES {
        create = create
            .attribute_definitions(attr(hash))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(index)
                    .key_schema(key(hash, KeyType::Hash))
                    .key_schema(key("recorded_at", KeyType::Range))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .expect("index name and keys are set"),
            );
    }
    create
        .send()
        .await
        .with_context(|| format!("CreateTable {table}"))?;
    db.wait_until_table_exists()
        .table_name(table)
        .wait(ACTIVE_WITHIN)
        .await
        .with_context(|| format!("table {table} did not become ACTIVE"))?;
    Ok(())
}
