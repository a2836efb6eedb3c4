//! The domain's parsers of untrusted text: coupon ids, order ids (UUID path segments),
//! order statuses, user ids (token subjects), e-mail addresses and passwords (sign-up
//! and login bodies), roles (token claims) and image formats (upload sniffing).

#![no_main]

use arbitrary::Arbitrary;
use flash_sale::domain::coupon::{CouponId, ImageFormat};
use flash_sale::domain::identity::{Email, Password, Role, UserId};
use flash_sale::domain::order::{OrderId, OrderStatus};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    coupon_id: i64,
    text: &'a str,
    bytes: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let text = input.text;

    match CouponId::new(input.coupon_id) {
        Some(id) => assert_eq!(id.get(), input.coupon_id),
        None => assert!(input.coupon_id <= 0),
    }

    if let Some(id) = OrderId::parse(text) {
        assert_eq!(OrderId::parse(&id.to_string()), Some(id));
        let json = serde_json::to_string(&id).expect("an order id serialises");
        assert_eq!(serde_json::from_str::<OrderId>(&json).ok(), Some(id));
    }

    if let Some(status) = OrderStatus::parse(text) {
        assert_eq!(status.as_str(), text);
    }

    if let Some(role) = Role::parse(text) {
        assert_eq!(role.as_str(), text);
    }

    if let Ok(user) = UserId::parse(text) {
        assert_eq!(user.as_str(), text);
        assert!((1..=UserId::MAX_LEN).contains(&user.as_str().len()));
    }

    if let Ok(email) = Email::parse(text) {
        let normal = email.as_str();
        assert!(normal.len() <= Email::MAX_LEN);
        assert_eq!(normal.matches('@').count(), 1, "{normal:?}");
        // Normalising is idempotent: the stored login parses to itself.
        let again = Email::parse(normal).expect("a normalised e-mail parses again");
        assert_eq!(again.as_str(), normal);
    }

    match Password::parse(text) {
        Ok(password) => {
            assert!((Password::MIN_CHARS..=Password::MAX_CHARS).contains(&text.chars().count()));
            assert_eq!(password.expose(), text);
            // Whatever registration accepts, login accepts as a candidate.
            assert!(Password::candidate(text).is_ok());
        }
        Err(_) => {}
    }

    if let Some(format) = ImageFormat::sniff(input.bytes) {
        assert!(format.content_type().starts_with("image/"));
        assert!(!format.extension().is_empty());
    }
});
