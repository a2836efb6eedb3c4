//! Event encoding on the wire: JSON values, the coupon id as the record key (one
//! coupon's events stay in one partition, in order), type/version headers, and a
//! `signature` header: HMAC-SHA256 of the value under a key the api and payment roles
//! share. The payment role charges the price the event carries, so an event written to
//! the topic by anyone else (a cheaper price, an order nobody placed) must not be read.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use rskafka::record::Record;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

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
    /// Forged or altered, or signed with another key.
    #[error("record's signature does not match its value")]
    BadSignature,
}

impl CodecError {
    /// A bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Empty | Self::Malformed(_) => "unreadable",
            Self::WrongType(_) => "wrong_type",
            Self::BadSignature => "bad_signature",
        }
    }
}

/// The header carrying the value's HMAC.
pub const SIGNATURE: &str = "signature";
/// Header naming the request that placed the order.
pub const REQUEST_ID: &str = "request-id";

/// Signs and checks event values with the key the roles share (`kafka.event_signing_key`).
#[derive(Clone)]
pub struct EventSigner {
    mac: Hmac<Sha256>,
}

impl EventSigner {
    pub fn new(key: &SecretString) -> Self {
        match Hmac::new_from_slice(key.expose_secret().as_bytes()) {
            Ok(mac) => Self { mac },
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        }
    }

    /// The HMAC of `value`, as the `signature` header carries it.
    pub fn sign(&self, value: &[u8]) -> Vec<u8> {
        let mut mac = self.mac.clone();
        mac.update(value);
        mac.finalize().into_bytes().to_vec()
    }

    /// Constant-time comparison.
    fn verify(&self, value: &[u8], signature: &[u8]) -> bool {
        let mut mac = self.mac.clone();
        mac.update(value);
        mac.verify_slice(signature).is_ok()
    }
}

pub fn encode_order_placed(
    event: &OrderPlaced,
    signer: &EventSigner,
) -> Result<Record, CodecError> {
    let value = serde_json::to_vec(event)?;
    let mut headers = BTreeMap::from([
        ("type".to_owned(), ORDER_PLACED.as_bytes().to_vec()),
        ("version".to_owned(), VERSION.as_bytes().to_vec()),
        (SIGNATURE.to_owned(), signer.sign(&value)),
    ]);
    // Also in the (signed) value; the header lets broker tools find a request's event.
    if let Some(request_id) = &event.request_id {
        headers.insert(REQUEST_ID.to_owned(), request_id.clone().into_bytes());
    }
    Ok(Record {
        key: Some(event.coupon_id.to_string().into_bytes()),
        headers,
        value: Some(value),
        timestamp: event.placed_at,
    })
}

pub fn decode_order_placed(
    record: &Record,
    signer: &EventSigner,
) -> Result<OrderPlaced, CodecError> {
    decode_order_placed_parts(
        record.headers.get("type").map(Vec::as_slice),
        record.headers.get(SIGNATURE).map(Vec::as_slice),
        record.value.as_deref(),
        signer,
    )
}

/// Decodes from the `type` and `signature` headers and the value, however the client
/// delivered them. The signature is checked before the value is parsed.
pub fn decode_order_placed_parts(
    kind: Option<&[u8]>,
    signature: Option<&[u8]>,
    value: Option<&[u8]>,
    signer: &EventSigner,
) -> Result<OrderPlaced, CodecError> {
    if let Some(kind) = kind
        && kind != ORDER_PLACED.as_bytes()
    {
        return Err(CodecError::WrongType(
            String::from_utf8_lossy(kind).into_owned(),
        ));
    }
    let value = value.ok_or(CodecError::Empty)?;
    if !signature.is_some_and(|signature| signer.verify(value, signature)) {
        return Err(CodecError::BadSignature);
    }
    Ok(serde_json::from_slice(value)?)
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

    fn signer(key: &str) -> EventSigner {
        EventSigner::new(&SecretString::from(key))
    }

    fn event() -> OrderPlaced {
        OrderPlaced {
            order_id: OrderId::generate(),
            user_id: UserId::parse("u-1").unwrap(),
            coupon_id: CouponId::new(42).unwrap(),
            price_cents: 100,
            placed_at: chrono::Utc::now(),
            idempotency_digest: None,
            request_id: None,
        }
    }

    #[test]
    fn events_without_an_idempotency_digest_still_decode() {
        let value = br#"{"order_id":"0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b","user_id":"u","coupon_id":7,"price_cents":1,"placed_at":"2026-11-28T00:00:00Z"}"#;
        let key = signer("k");
        let record = Record {
            key: Some(b"7".to_vec()),
            value: Some(value.to_vec()),
            headers: BTreeMap::from([(SIGNATURE.to_owned(), key.sign(value))]),
            timestamp: chrono::Utc::now(),
        };
        assert_eq!(
            decode_order_placed(&record, &key)
                .unwrap()
                .idempotency_digest,
            None
        );
    }

    #[test]
    fn round_trip_and_key() {
        let (event, key) = (event(), signer("k"));
        let record = encode_order_placed(&event, &key).unwrap();
        assert_eq!(record.key.as_deref(), Some(b"42".as_slice()));
        assert_eq!(decode_order_placed(&record, &key).unwrap(), event);
        let mut other = record.clone();
        other.headers.insert("type".into(), b"Other".to_vec());
        assert!(matches!(
            decode_order_placed(&other, &key),
            Err(CodecError::WrongType(_))
        ));
    }

    #[test]
    fn an_altered_unsigned_or_foreign_event_is_refused() {
        let (event, key) = (event(), signer("k"));
        let record = encode_order_placed(&event, &key).unwrap();
        let cheaper = String::from_utf8(record.value.clone().unwrap())
            .unwrap()
            .replace("\"price_cents\":100", "\"price_cents\":1");
        let mut altered = record.clone();
        altered.value = Some(cheaper.into_bytes());
        let mut unsigned = record.clone();
        unsigned.headers.remove(SIGNATURE);
        for forged in [&altered, &unsigned] {
            assert!(matches!(
                decode_order_placed(forged, &key),
                Err(CodecError::BadSignature)
            ));
        }
        assert!(matches!(
            decode_order_placed(&record, &signer("another key")),
            Err(CodecError::BadSignature)
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
