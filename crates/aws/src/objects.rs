//! What exists under a prefix, learned with one listing rather than a HEAD per key.
//!
//! A HEAD or GET of a missing key answers 404 only to a caller with `s3:ListBucket`; the
//! template grants the Lambda roles and the uploader `s3:ListBucket` only under an `s3:prefix`
//! condition, which a HEAD (no prefix) does not satisfy, so on AWS they would get 403 for every
//! missing key (see [`crate::error`]). A `ListObjectsV2` with `prefix=raw/<session>/` does satisfy
//! the condition (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/amazon-s3-policy-keys.html>,
//! "Example 2: Getting a list of objects in a bucket with a specific prefix"), so listing the
//! session once tells present from missing, whatever the role.

use std::collections::BTreeMap;

use aws_sdk_s3::Client;

use crate::error::S3Error;

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub size: u64,
    pub etag: Option<String>,
}

/// Every object under `prefix`, by full key (all pages).
pub async fn list_prefix(
    s3: &Client,
    bucket: &str,
    prefix: &str,
) -> Result<BTreeMap<String, ListedObject>, S3Error> {
    let mut out = BTreeMap::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| S3Error::call("ListObjectsV2", bucket, prefix, &e))?;
        for o in page.contents() {
            if let Some(key) = o.key() {
                out.insert(
                    key.to_string(),
                    ListedObject {
                        size: o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                        etag: o.e_tag().map(str::to_string),
                    },
                );
            }
        }
    }
    Ok(out)
}
