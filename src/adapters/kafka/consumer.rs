//! Reading a partition: batches from an offset, and the end of the log. rskafka has no
//! consumer groups; callers keep their own offsets (in MySQL).

use rskafka::client::partition::{PartitionClient, UnknownTopicHandling};
use rskafka::record::RecordAndOffset;

use super::{Kafka, KafkaError};

/// Largest fetch response asked for.
const MAX_FETCH_BYTES: i32 = 4 * 1024 * 1024;

pub struct PartitionReader {
    client: PartitionClient,
    kafka: Kafka,
}

impl PartitionReader {
    pub async fn new(kafka: &Kafka, topic: &str, partition: i32) -> Result<Self, KafkaError> {
        let client = kafka.client().await?;
        let connect =
            client.partition_client(topic.to_owned(), partition, UnknownTopicHandling::Error);
        let client = tokio::time::timeout(kafka.timeout(), connect)
            .await
            .map_err(|_| KafkaError::Timeout(kafka.timeout()))??;
        Ok(Self {
            client,
            kafka: kafka.clone(),
        })
    }

    /// Records from `offset` on (up to a few MB), waiting up to `max_wait_ms` for data;
    /// and the high watermark (the offset after the last record). On the in-memory tansu
    /// engine `get_offset(Latest)` is wrong, so the watermark from fetch is the end.
    pub async fn fetch(
        &self,
        offset: i64,
        max_wait_ms: i32,
    ) -> Result<(Vec<RecordAndOffset>, i64), KafkaError> {
        let timeout = self.kafka.timeout()
            + std::time::Duration::from_millis(u64::try_from(max_wait_ms).unwrap_or(0));
        tokio::time::timeout(
            timeout,
            self.client
                .fetch_records(offset, 1..MAX_FETCH_BYTES, max_wait_ms),
        )
        .await
        .map_err(|_| KafkaError::Timeout(timeout))?
        .map_err(KafkaError::from)
    }

    /// Every record from `from` to the current end of the log.
    pub async fn read_to_end(&self, from: i64) -> Result<Vec<RecordAndOffset>, KafkaError> {
        let mut records = Vec::new();
        let mut offset = from;
        loop {
            let (batch, high_watermark) = self.fetch(offset, 0).await?;
            let Some(last) = batch.last() else {
                // Nothing readable before the watermark (e.g. an aborted batch): done.
                return Ok(records);
            };
            offset = last.offset + 1;
            records.extend(batch.into_iter().filter(|r| r.offset >= from));
            if offset >= high_watermark {
                return Ok(records);
            }
        }
    }
}
