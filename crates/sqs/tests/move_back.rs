//! `Queues::move_back` against the local emulator through the real SDK: a dead-letter message is
//! deleted only after its source queue accepted the copy, so a redrive that cannot send loses
//! nothing.

use labpipe_sqs::Queues;
use labpipe_tests::{unique_name, Emulator};

async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(unique_name(name))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_message_the_source_queue_refuses_stays_dead_lettered() {
    let emulator = Emulator::shared();
    let sqs = aws_sdk_sqs::Client::new(&emulator.sdk_config().await);
    let queues = Queues::new(sqs.clone());
    let dead_letters = create_queue(&sqs, "dlq").await;
    let source = create_queue(&sqs, "source").await;
    let body = r#"{"session":"20210301_161221","pipeline_version":1}"#;
    queues.send(&dead_letters, body).await.unwrap();
    // Sent before the moves start: a move leaves what was dead-lettered after it started.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    // The source queue does not exist: SendMessage fails, and the message must still be there.
    let gone = format!("{}/000000000000/no-such-queue", emulator.endpoint());
    let err = queues
        .move_back(&dead_letters, &gone)
        .await
        .expect_err("a move to a queue that does not exist fails");
    assert!(err.to_string().contains("SendMessage"), "{err}");
    let left: Vec<String> = queues
        .list(&dead_letters)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.body)
        .collect();
    assert_eq!(
        left,
        [body],
        "the dead-letter message survives a refused move"
    );

    // Once the source queue takes it, it moves: in the source queue, gone from the dead letters.
    let moved = queues.move_back(&dead_letters, &source).await.unwrap();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(moved[0].session.as_deref(), Some("20210301_161221"));
    assert!(queues.list(&dead_letters).await.unwrap().is_empty());
    let arrived: Vec<String> = queues
        .list(&source)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.body)
        .collect();
    assert_eq!(arrived, [body]);
}
