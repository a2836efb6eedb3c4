//! The payment role's decoding of `OrderPlaced` events from Kafka (type header and JSON
//! value), the re-encoding of a decoded event, and the partition of its coupon.
//!
//! Input: one byte for the `type` header (low bits 0: none, 1: `OrderPlaced`, else another
//! type; with bit 7 set the record has no value; with bit 6 set its signature is the
//! value's first 32 bytes instead of its HMAC, as a forger would write it), four bytes for
//! the partition count (i32, little endian), then the record value (JSON).

#![no_main]

use flash_sale::adapters::kafka::codec::{
    CodecError, EventSigner, ORDER_PLACED, decode_order_placed, decode_order_placed_parts,
    encode_order_placed, partition_for,
};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;

fuzz_target!(|data: &[u8]| {
    let [flags, p0, p1, p2, p3, value @ ..] = data else {
        return;
    };
    let signer = EventSigner::new(&SecretString::from("the fuzzing deployment's key"));
    let kind: Option<&[u8]> = match flags & 0x3f {
        0 => None,
        1 => Some(ORDER_PLACED.as_bytes()),
        _ => Some(&b"CouponUpdated"[..]),
    };
    let value = (flags & 0x80 == 0).then_some(value);
    let partitions = i32::from_le_bytes([*p0, *p1, *p2, *p3]);

    let forged = flags & 0x40 != 0;
    let signature = value.map(|v| {
        if forged {
            v.iter().take(32).copied().collect()
        } else {
            signer.sign(v)
        }
    });
    let decoded = decode_order_placed_parts(kind, signature.as_deref(), value, &signer);
    if kind.is_some_and(|k| k != ORDER_PLACED.as_bytes()) || value.is_none() {
        assert!(decoded.is_err());
    } else if forged {
        assert!(matches!(decoded, Err(CodecError::BadSignature)), "{decoded:?}");
    }
    let Ok(event) = decoded else {
        return;
    };
    let partition = partition_for(event.coupon_id, partitions);
    assert!((0..partitions.max(1)).contains(&partition), "{partition}");

    // An event the consumer accepts re-encodes to a record that decodes to it again.
    let record = encode_order_placed(&event, &signer).expect("a decoded event encodes");
    assert_eq!(
        record.key.as_deref(),
        Some(event.coupon_id.to_string().as_bytes())
    );
    let again = decode_order_placed(&record, &signer).expect("an encoded event decodes");
    assert_eq!(again, event);
});
