//! Event encoding on the wire: JSON values, the coupon id as the record key (one
//! coupon's events stay in one partition, in order), and type/version headers.

use std::collections::BTreeMap;

use rskafka::record::Record;

use crate::domain::coupon::CouponId;
use crate::domain::order::OrderPlaced;

pub const ORDER_PLACED: &str = "OrderPlaced";
const VERSION: &str = "1";

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("record has no value")]
    Empty,
    #[error("record is a {0:?} event, not OrderPlaced")]
    WrongType(String),
    #[error("record is not a valid OrderPlaced: {0}")]
    Malformed(#[from] serde_json::Error),
}

pub fn encode_order_placed(event: &OrderPlaced) -> Result<Record, CodecError> {
    Ok(Record {
        key: Some(event.coupon_id.to_string().into_bytes()),
        value: Some(serde_json::to_vec(event)?),
        headers: BTreeMap::from([
            ("type".to_owned(), ORDER_PLACED.as_bytes().to_vec()),
            ("version".to_owned(), VERSION.as_bytes().to_vec()),
        ]),
        timestamp: event.placed_at,
    })
}

pub fn decode_order_placed(record: &Record) -> Result<OrderPlaced, CodecError> {
    decode_order_placed_parts(
        record.headers.get("type").map(Vec::as_slice),
        record.value.as_deref(),
    )
}

/// Decodes from the `type` header and the value, however the client delivered them.
pub fn decode_order_placed_parts(
    kind: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<OrderPlaced, CodecError> {
    if let Some(kind) = kind
        && kind != ORDER_PLACED.as_bytes()
    {
        return Err(CodecError::WrongType(
            String::from_utf8_lossy(kind).into_owned(),
        ));
    }
    Ok(serde_json::from_slice(value.ok_or(CodecError::Empty)?)?)
}

/// The partition of a coupon's events: stable, so they keep their order.
pub fn partition_for(coupon: CouponId, partitions: i32) -> i32 {
    let partitions = i64::from(partitions.max(1));
    i32::try_from(coupon.get().rem_euclid(partitions)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::identity::UserId;
    use crate::domain::order::OrderId;

    #[test]
    fn events_without_an_idempotency_digest_still_decode() {
        let record = Record {
            key: Some(b"7".to_vec()),
            value: Some(
                br#"{"order_id":"0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b","user_id":"u","coupon_id":7,"price_cents":1,"placed_at":"2026-11-28T00:00:00Z"}"#
                    .to_vec(),
            ),
            headers: BTreeMap::new(),
            timestamp: chrono::Utc::now(),
        };
        assert_eq!(
            decode_order_placed(&record).unwrap().idempotency_digest,
            None
        );
    }

    #[test]
    fn round_trip_and_key() {
        let event = OrderPlaced {
            order_id: OrderId::generate(),
            user_id: UserId::parse("u-1").unwrap(),
            coupon_id: CouponId::new(42).unwrap(),
            price_cents: 100,
            placed_at: chrono::Utc::now(),
            idempotency_digest: None,
        };
        let record = encode_order_placed(&event).unwrap();
        assert_eq!(record.key.as_deref(), Some(b"42".as_slice()));
        assert_eq!(decode_order_placed(&record).unwrap(), event);
        let mut other = record.clone();
        other.headers.insert("type".into(), b"Other".to_vec());
        assert!(matches!(
            decode_order_placed(&other),
            Err(CodecError::WrongType(_))
        ));
    }

    #[test]
    fn partitions_are_stable_and_in_range() {
        for id in 1..100 {
            let p = partition_for(CouponId::new(id).unwrap(), 4);
            assert!((0..4).contains(&p));
            assert_eq!(p, partition_for(CouponId::new(id).unwrap(), 4));
        }
    }
}
