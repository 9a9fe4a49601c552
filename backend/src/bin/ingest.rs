//! The ingest Lambda: SQS batches of S3 events on manifests → [`labpipe_backend::Ingest`].

use labpipe_backend::{logging, BackendConfig, Clients, Ingest};
use lambda_runtime::{service_fn, Error, LambdaEvent};

use aws_lambda_events::event::sqs::SqsEvent;

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init();
    let config = BackendConfig::from_env()?;
    let clients = Clients::from_env().await;
    let ingest = Ingest::new(&clients, &config);
    let ingest = &ingest;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(ingest.handle(event.payload).await)
    }))
    .await
}
