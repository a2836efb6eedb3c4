//! The admin's coupon JSON body (`POST /api/admin/coupons`, `PUT /api/admin/coupons/{id}`):
//! deserialised as the handler does, validated by `CouponDraft`, and an invalid draft
//! mapped to its error response.

#![no_main]

use actix_web::ResponseError;
use flash_sale::domain::coupon::{CatalogError, CouponDraft, limits};
use flash_sale::error::AppError;
use flash_sale::http::admin::CouponBody;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<CouponBody>(data) else {
        return;
    };
    match CouponDraft::try_from(&body) {
        Ok(draft) => {
            assert!(!draft.name.is_empty());
            assert_eq!(draft.name, draft.name.trim());
            assert!(draft.name.chars().count() <= limits::NAME_MAX_CHARS);
            assert_eq!(draft.description, draft.description.trim());
            assert!(draft.description.chars().count() <= limits::DESCRIPTION_MAX_CHARS);
            assert!((0..=limits::PRICE_MAX_CENTS).contains(&draft.price_cents));
            assert!((1..=limits::QUANTITY_MAX).contains(&draft.total_quantity));
            assert!((1..=limits::PER_USER_LIMIT_MAX).contains(&draft.per_user_limit));
            assert!(draft.per_user_limit <= draft.total_quantity);
            assert!(draft.sale.starts_at < draft.sale.ends_at);
        }
        Err(e) => {
            assert!(matches!(e, CatalogError::Invalid(_)), "{e:?}");
            let e = AppError::from(e);
            assert_eq!(e.status_code().as_u16(), 422);
            let _ = e.error_response();
        }
    }
});
