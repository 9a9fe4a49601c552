//! The preprocess Lambda: SQS batches of `{session, pipeline_version}` →
//! [`labpipe_backend::Preprocess`].

use labpipe_backend::{logging, BackendConfig, Clients, Preprocess};
use lambda_runtime::{service_fn, Error, LambdaEvent};

use aws_lambda_events::event::sqs::SqsEvent;

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init();
    let config = BackendConfig::from_env()?;
    let clients = Clients::from_env().await;
    let preprocess = Preprocess::new(&clients, &config);
    let preprocess = &preprocess;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(preprocess.handle(event.payload).await)
    }))
    .await
}
