//! The gateway against the local emulator through the real SDK: the manifest reader (current and
//! given versions, the size bound, invalid bytes) and the error classes S3 answers with.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use labpipe_aws::{s3_client, ClientOptions, ErrorClass, ManifestRead, S3Error};
use labpipe_core::layout::manifest_key;
use labpipe_core::manifest::MAX_MANIFEST_BYTES;
use labpipe_tests::{unique_name, Emulator};

const SESSION: &str = "20210301_161221";

fn manifest_json(total_bytes: u64) -> String {
    format!(
        r#"{{"format":"labpipe-manifest/1","session":"{SESSION}","recorded_at":"2021-03-01T16:12:21","created_at":"2021-03-01T17:00:00Z","tool_version":"test","verdict":"pass","total_bytes":{total_bytes},"metadata":{{}},"files":[],"findings":[]}}"#
    )
}

async fn versioned_bucket(s3: &aws_sdk_s3::Client) -> String {
    let bucket = unique_name("raw");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    s3.put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    bucket
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) -> Option<String> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap()
        .version_id()
        .map(str::to_string)
}

#[tokio::test]
async fn manifests_are_read_by_version_and_bounded() {
    let emulator = Emulator::shared();
    let s3 = s3_client(&emulator.sdk_config().await, &ClientOptions::service());
    let bucket = versioned_bucket(&s3).await;
    let key = manifest_key(SESSION);

    let first = put(&s3, &bucket, &key, manifest_json(1).into_bytes()).await;
    let second = put(&s3, &bucket, &key, manifest_json(2).into_bytes()).await;
    assert!(
        first.is_some() && first != second,
        "versioned puts: {first:?} {second:?}"
    );

    let current = ManifestRead::session(&bucket, SESSION)
        .read(&s3)
        .await
        .unwrap();
    assert_eq!(current.manifest.total_bytes, 2);
    assert_eq!(current.version_id, second);
    assert!(current.etag.is_some());
    assert_eq!(
        current.sha256,
        labpipe_core::digest::sha256_hex(manifest_json(2).as_bytes())
    );

    let old = ManifestRead::session(&bucket, SESSION)
        .version(first.as_deref())
        .read(&s3)
        .await
        .unwrap();
    assert_eq!(old.manifest.total_bytes, 1);
    assert_eq!(old.version_id, first);

    // One byte over the bound: refused, naming the key and the limit.
    let big_key = manifest_key("20210302_101010");
    put(
        &s3,
        &bucket,
        &big_key,
        vec![b' '; MAX_MANIFEST_BYTES as usize + 1],
    )
    .await;
    let err = ManifestRead::key(&bucket, &big_key)
        .read(&s3)
        .await
        .unwrap_err();
    assert!(
        matches!(err, S3Error::ManifestTooLarge { size, limit, .. } if size == MAX_MANIFEST_BYTES + 1 && limit == MAX_MANIFEST_BYTES),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&big_key) && text.contains(&MAX_MANIFEST_BYTES.to_string()),
        "{text}"
    );
    assert_eq!(err.class(), ErrorClass::Permanent);
    // A lower bound applies to small objects too.
    let err = ManifestRead::session(&bucket, SESSION)
        .limit(10)
        .read(&s3)
        .await
        .unwrap_err();
    assert!(
        matches!(err, S3Error::ManifestTooLarge { limit: 10, .. }),
        "{err:?}"
    );

    let bad_key = manifest_key("20210303_101010");
    put(
        &s3,
        &bucket,
        &bad_key,
        b"{\"format\":\"labpipe-manifest/1\"".to_vec(),
    )
    .await;
    let err = ManifestRead::key(&bucket, &bad_key)
        .read(&s3)
        .await
        .unwrap_err();
    assert!(matches!(err, S3Error::ManifestInvalid { .. }), "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn missing_objects_and_buckets_are_classed() {
    let emulator = Emulator::shared();
    let s3 = s3_client(&emulator.sdk_config().await, &ClientOptions::default());
    let bucket = versioned_bucket(&s3).await;
    let err = ManifestRead::session(&bucket, SESSION)
        .read(&s3)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::NotFound, "{err}");
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key(manifest_key(SESSION))
        .send()
        .await
        .unwrap_err();
    assert_eq!(labpipe_aws::classify(&head), ErrorClass::NotFound);
    let err = ManifestRead::session(&unique_name("absent"), SESSION)
        .read(&s3)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::NoSuchBucket, "{err}");

    // If-None-Match on an existing key: the write-once answer.
    put(&s3, &bucket, "raw/x/a.bin", b"a".to_vec()).await;
    let again = s3
        .put_object()
        .bucket(&bucket)
        .key("raw/x/a.bin")
        .if_none_match("*")
        .body(ByteStream::from_static(b"b"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        labpipe_aws::classify(&again),
        ErrorClass::PreconditionFailed
    );
}

#[tokio::test]
async fn a_listing_tells_present_from_missing() {
    let emulator = Emulator::shared();
    let s3 = s3_client(&emulator.sdk_config().await, &ClientOptions::default());
    let bucket = versioned_bucket(&s3).await;
    let prefix = labpipe_core::layout::raw_session_prefix(SESSION);
    for i in 0..3 {
        put(
            &s3,
            &bucket,
            &labpipe_core::layout::raw_key(SESSION, &format!("rec_{i:03}.bin")),
            vec![7; i + 1],
        )
        .await;
    }
    put(
        &s3,
        &bucket,
        &labpipe_core::layout::raw_key("20210301_161222", "rec_000.bin"),
        vec![1],
    )
    .await;
    let listed = labpipe_aws::list_prefix(&s3, &bucket, &prefix)
        .await
        .unwrap();
    let sizes: Vec<(String, u64)> = listed.iter().map(|(k, o)| (k.clone(), o.size)).collect();
    assert_eq!(
        sizes,
        (0..3)
            .map(|i| (format!("{prefix}rec_{i:03}.bin"), i as u64 + 1))
            .collect::<Vec<_>>()
    );
}
