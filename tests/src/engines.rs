//! The engines a test runs on, and how one test body runs on each of them.
//!
//! The emulator (moto) is one implementation of S3 and DynamoDB, in Python, with quirks AWS
//! lacks; what passes only there may pass because of them. The suites that matter most run
//! their body once per engine — the emulator, S3 on SeaweedFS, the catalog on dynalite — with
//! [`on_each_engine!`](crate::on_each_engine), which names each run `<test>::<engine>`
//! (`<test>::emulator`, `<test>::seaweedfs`, `<test>::dynalite`), so a failure names the engine
//! and `cargo test <test>::dynalite` runs one.

use super::{Dynalite, Emulator, SeaweedFs, DYNALITE_LACKS};

/// The S3 server a parametrized end-to-end test runs against: the emulator, or SeaweedFS (a
/// compiled, independent S3 implementation that catches what passes only on the emulator's
/// quirks). Each is shared by the test binary and started on first use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Server {
    Emulator,
    SeaweedFs,
}

impl S3Server {
    /// Environment for a `labpipe` that needs S3 only.
    pub fn env(self) -> Vec<(&'static str, String)> {
        match self {
            S3Server::Emulator => Emulator::shared().env(),
            S3Server::SeaweedFs => SeaweedFs::shared().env(),
        }
    }

    /// Environment for a `labpipe` that also needs the catalog, which is always the emulator's.
    pub fn env_with_catalog(self) -> Vec<(&'static str, String)> {
        match self {
            S3Server::Emulator => Emulator::shared().env(),
            S3Server::SeaweedFs => SeaweedFs::shared().env_with_catalog(Emulator::shared()),
        }
    }

    /// An S3 client for the server.
    pub async fn s3_client(self) -> aws_sdk_s3::Client {
        match self {
            S3Server::Emulator => Emulator::shared().s3_client().await,
            S3Server::SeaweedFs => SeaweedFs::shared().s3_client().await,
        }
    }

    /// The port its S3 endpoint listens on (127.0.0.1).
    pub fn port(self) -> u16 {
        match self {
            S3Server::Emulator => Emulator::shared().port(),
            S3Server::SeaweedFs => SeaweedFs::shared().port(),
        }
    }
}

/// The DynamoDB a parametrized catalog test runs against: the emulator's, or dynalite (an
/// independent implementation on LevelDB that mirrors DynamoDB's validation, and answers a
/// `Query` from an index rather than a loop over the table). Each is shared by the test binary
/// and started on first use. dynalite lacks transactions ([`DYNALITE_LACKS`]): see
/// [`DynamoServer::lacks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynamoServer {
    Emulator,
    Dynalite,
}

impl DynamoServer {
    /// A DynamoDB client for the server.
    pub async fn dynamodb_client(self) -> aws_sdk_dynamodb::Client {
        match self {
            DynamoServer::Emulator => Emulator::shared().dynamodb_client().await,
            DynamoServer::Dynalite => Dynalite::shared().dynamodb_client().await,
        }
    }

    /// Environment for a `labpipe` whose catalog is on this server and whose S3 is on `s3`
    /// (anything else, e.g. SQS, on the emulator).
    pub fn env_with_s3(self, s3: S3Server) -> Vec<(&'static str, String)> {
        let mut env = s3.env_with_catalog();
        if self == DynamoServer::Dynalite {
            env.push(("AWS_ENDPOINT_URL_DYNAMODB", Dynalite::shared().endpoint()));
        }
        env
    }

    /// Whether the server lacks the DynamoDB operation `operation` (e.g.
    /// `"TransactWriteItems"`): a test that needs it checks, on such a server, that the catalog
    /// fails naming the operation, instead of running.
    pub fn lacks(self, operation: &str) -> bool {
        self == DynamoServer::Dynalite && DYNALITE_LACKS.contains(&operation)
    }
}

/// Where a test's S3 and catalog are: the emulator for both, or one of them on a second engine
/// (the other on the emulator). A test takes `Engines`, or only the [`S3Server`] or
/// [`DynamoServer`] it varies (each is `From<Engines>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Engines {
    pub s3: S3Server,
    pub db: DynamoServer,
}

impl Engines {
    /// S3 and the catalog on the emulator.
    pub const fn emulator() -> Engines {
        Engines {
            s3: S3Server::Emulator,
            db: DynamoServer::Emulator,
        }
    }

    /// S3 on SeaweedFS, the catalog on the emulator.
    pub const fn seaweedfs() -> Engines {
        Engines {
            s3: S3Server::SeaweedFs,
            db: DynamoServer::Emulator,
        }
    }

    /// The catalog on dynalite, S3 on the emulator.
    pub const fn dynalite() -> Engines {
        Engines {
            s3: S3Server::Emulator,
            db: DynamoServer::Dynalite,
        }
    }
}

impl From<Engines> for S3Server {
    fn from(engines: Engines) -> S3Server {
        engines.s3
    }
}

impl From<Engines> for DynamoServer {
    fn from(engines: Engines) -> DynamoServer {
        engines.db
    }
}

/// Runs a test body once per engine named, as the tests `<name>::<engine>` (a module `<name>`
/// beside the body `fn <name>`, one test per engine in it). The body takes [`Engines`], or only
/// the [`S3Server`] or [`DynamoServer`] the engines vary; the test attribute (`#[test]`,
/// `#[tokio::test]`, with its flavor) is the caller's, as is whether the body is `async`.
/// `<engine> instead <expr>` runs `<expr>` (a path from the module: `super::…`) as that
/// engine's test instead of the body, e.g. where dynalite lacks an operation the body needs.
///
/// ```ignore
/// on_each_engine!(#[test] fn sync_is_verified on emulator, seaweedfs, dynalite);
/// on_each_engine!(#[tokio::test(flavor = "multi_thread")] async fn round_trip on emulator, seaweedfs);
/// on_each_engine!(#[tokio::test] async fn put_is_idempotent
///     on emulator, dynalite instead super::missing_operation_is_named("TransactWriteItems"));
/// ```
#[macro_export]
macro_rules! on_each_engine {
    (#[$attr:meta] async fn $name:ident on $($engine:ident $(instead $instead:expr)?),+ $(,)?) => {
        mod $name {
            $(
                #[$attr]
                async fn $engine() {
                    $crate::on_each_engine!(@run async $name $engine $(, $instead)?)
                }
            )+
        }
    };
    (#[$attr:meta] fn $name:ident on $($engine:ident $(instead $instead:expr)?),+ $(,)?) => {
        mod $name {
            $(
                #[$attr]
                fn $engine() {
                    $crate::on_each_engine!(@run sync $name $engine $(, $instead)?)
                }
            )+
        }
    };
    (@run async $name:ident $engine:ident) => {
        super::$name($crate::Engines::$engine().into()).await
    };
    (@run async $name:ident $engine:ident, $instead:expr) => {
        $instead.await
    };
    (@run sync $name:ident $engine:ident) => {
        super::$name($crate::Engines::$engine().into())
    };
    (@run sync $name:ident $engine:ident, $instead:expr) => {
        $instead
    };
}
