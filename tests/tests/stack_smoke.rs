//! Smoke test of the end-to-end stack: the Rust AWS SDK, configured by the
//! harness, round-trips data through this suite's own emulator. If this
//! fails, every other end-to-end test would fail for the same reason, so it
//! is the first place to look. Both tests share the binary's one emulator.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_s3::primitives::ByteStream;
use labpipe_tests::{unique_name, Emulator};

#[tokio::test]
async fn s3_put_then_get_returns_the_same_bytes() {
    let emulator = Emulator::shared();
    let s3 = emulator.s3_client().await;
    let bucket = unique_name("smoke");
    let key = "sessions/2024-01-01/rec 001.bin";
    // Every byte value, so encoding or truncation problems show up.
    let body: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();

    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    s3.put_object()
        .bucket(&bucket)
        .key(key)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put object");

    let got = s3
        .get_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .expect("get object");
    assert_eq!(got.content_length(), Some(body.len() as i64));
    let got = got.body.collect().await.expect("read body").into_bytes();
    assert!(got.as_ref() == body.as_slice(), "object bytes differ");

    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .expect("list objects");
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, [key]);
}

#[tokio::test]
async fn dynamodb_put_then_get_returns_the_same_item() {
    let emulator = Emulator::shared();
    let db = emulator.dynamodb_client().await;
    let table = unique_name("smoke");

    db.create_table()
        .table_name(&table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("session_id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("session_id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create table");

    let item = HashMap::from([
        ("session_id".to_owned(), AttributeValue::S("s-001".into())),
        ("bytes".to_owned(), AttributeValue::N("300000".into())),
        (
            "files".to_owned(),
            AttributeValue::L(vec![
                AttributeValue::S("a.bin".into()),
                AttributeValue::S("b.bin".into()),
            ]),
        ),
        ("checked".to_owned(), AttributeValue::Bool(true)),
    ]);
    db.put_item()
        .table_name(&table)
        .set_item(Some(item.clone()))
        .send()
        .await
        .expect("put item");

    let got = db
        .get_item()
        .table_name(&table)
        .key("session_id", AttributeValue::S("s-001".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item");
    assert_eq!(got.item(), Some(&item));

    let missing = db
        .get_item()
        .table_name(&table)
        .key("session_id", AttributeValue::S("s-404".into()))
        .send()
        .await
        .expect("get missing item");
    assert_eq!(missing.item(), None);
}
