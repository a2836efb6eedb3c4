//! The payment role's decoding of `OrderPlaced` events from Kafka (type header and JSON
//! value), the re-encoding of a decoded event, and the partition of its coupon.
//!
//! Input: one byte for the `type` header (0: none, 1: `OrderPlaced`, 2: another type; with
//! bit 7 set the record has no value), four bytes for the partition count (i32, little
//! endian), then the record value (JSON).

#![no_main]

use flash_sale::adapters::kafka::codec::{
    ORDER_PLACED, decode_order_placed, decode_order_placed_parts, encode_order_placed,
    partition_for,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [flags, p0, p1, p2, p3, value @ ..] = data else {
        return;
    };
    let kind: Option<&[u8]> = match flags & 0x7f {
        0 => None,
        1 => Some(ORDER_PLACED.as_bytes()),
        _ => Some(&b"CouponUpdated"[..]),
    };
    let value = (flags & 0x80 == 0).then_some(value);
    let partitions = i32::from_le_bytes([*p0, *p1, *p2, *p3]);

    let decoded = decode_order_placed_parts(kind, value);
    if kind.is_some_and(|k| k != ORDER_PLACED.as_bytes()) || value.is_none() {
        assert!(decoded.is_err());
    }
    let Ok(event) = decoded else {
        return;
    };
    let partition = partition_for(event.coupon_id, partitions);
    assert!((0..partitions.max(1)).contains(&partition), "{partition}");

    // An event the consumer accepts re-encodes to a record that decodes to it again.
    let record = encode_order_placed(&event).expect("a decoded event encodes");
    assert_eq!(
        record.key.as_deref(),
        Some(event.coupon_id.to_string().as_bytes())
    );
    let again = decode_order_placed(&record).expect("an encoded event decodes");
    assert_eq!(again, event);
});
