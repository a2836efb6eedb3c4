//! Coupons and their sale windows.

use super::failure::Failure;
use chrono::{DateTime, Utc};

/// Database id of a coupon (positive).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
#[schema(example = 42)]
pub struct CouponId(i64);

impl CouponId {
    pub fn new(raw: i64) -> Option<Self> {
        (raw > 0).then_some(Self(raw))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for CouponId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a sale stands at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaleState {
    NotStarted,
    Open,
    Ended,
}

/// `[starts_at, ends_at)`: open from the first instant, closed at the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaleWindow {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// How long a sale's purchase state outlives the sale: long enough for the last
/// payments to settle (and a declined one to give its unit back) and for a reconcile,
/// short enough that finished sales do not pile up in Redis.
pub const SALE_STATE_GRACE: chrono::TimeDelta = chrono::TimeDelta::days(1);

impl SaleWindow {
    /// When the sale's state in Redis expires (ms since the epoch).
    pub fn state_expires_at_ms(&self) -> i64 {
        (self.ends_at + SALE_STATE_GRACE).timestamp_millis()
    }

    pub fn state(&self, now: DateTime<Utc>) -> SaleState {
        SaleState::between(self.starts_at, self.ends_at, now)
    }
}

impl SaleState {
    /// The state at `now` of a sale from `starts` (included) to `ends` (excluded), in
    /// any measure of time (a search index compares microseconds).
    pub fn between<T: Ord>(starts: T, ends: T, now: T) -> Self {
        if now < starts {
            Self::NotStarted
        } else if now < ends {
            Self::Open
        } else {
            Self::Ended
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    pub id: CouponId,
    pub name: String,
    pub description: String,
    pub price_cents: i64,
    pub image_key: Option<String>,
    pub total_quantity: i64,
    pub per_user_limit: i64,
    pub sale: SaleWindow,
    pub is_deleted: bool,
    /// Shoppers admitted per second through the coupon's waiting room; `None`: no
    /// waiting room (whoever reaches the gate first buys).
    pub waiting_room_per_sec: Option<i64>,
}

/// Limits of the editable fields.
pub mod limits {
    pub const NAME_MAX_CHARS: usize = 200;
    pub const DESCRIPTION_MAX_CHARS: usize = 5_000;
    pub const PRICE_MAX_CENTS: i64 = 100_000_000;
    pub const QUANTITY_MAX: i64 = 10_000_000;
    pub const PER_USER_LIMIT_MAX: i64 = 100;
    /// The last page number a list request may ask for.
    pub const PAGE_MAX: u32 = 1_000_000;
    pub const WAITING_ROOM_RATE_MAX: i64 = 10_000;
}

/// A validated set of editable fields (create and full update).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponDraft {
    pub name: String,
    pub description: String,
    pub price_cents: i64,
    pub total_quantity: i64,
    pub per_user_limit: i64,
    pub sale: SaleWindow,
    pub waiting_room_per_sec: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidCoupon {
    pub field: &'static str,
    pub message: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("coupon not found")]
    NotFound,
    #[error(transparent)]
    Invalid(#[from] InvalidCoupon),
    #[error("page must be at least 1 and size between 1 and {max_size}")]
    InvalidPage { field: &'static str, max_size: u32 },
    #[error(transparent)]
    InvalidSearch(#[from] super::search::InvalidSearch),
    #[error("the image is larger than {max_bytes} bytes")]
    ImageTooLarge { max_bytes: usize },
    #[error("the upload is not a PNG, JPEG, WebP or GIF image")]
    UnsupportedImage,
    /// Another request is rebuilding this cache entry: retry shortly.
    #[error("the catalog is busy, try again shortly")]
    Busy,
    #[error("catalog storage failed")]
    Unavailable(#[source] Failure),
}

impl CouponDraft {
    #[allow(clippy::too_many_arguments)]
    pub fn parse(
        name: &str,
        description: &str,
        price_cents: i64,
        total_quantity: i64,
        per_user_limit: Option<i64>,
        sale_starts_at: DateTime<Utc>,
        sale_ends_at: DateTime<Utc>,
    ) -> Result<Self, InvalidCoupon> {
        use limits::*;
        let invalid = |field, message| Err(InvalidCoupon { field, message });
        let name = name.trim();
        if name.is_empty() {
            return invalid("name", "must not be empty");
        }
        if name.chars().count() > NAME_MAX_CHARS {
            return invalid("name", "must be at most 200 characters");
        }
        if description.chars().count() > DESCRIPTION_MAX_CHARS {
            return invalid("description", "must be at most 5000 characters");
        }
        if !(0..=PRICE_MAX_CENTS).contains(&price_cents) {
            return invalid("price_cents", "must be between 0 and 100000000");
        }
        if !(1..=QUANTITY_MAX).contains(&total_quantity) {
            return invalid("total_quantity", "must be between 1 and 10000000");
        }
        let per_user_limit = per_user_limit.unwrap_or(1);
        if !(1..=PER_USER_LIMIT_MAX).contains(&per_user_limit) {
            return invalid("per_user_limit", "must be between 1 and 100");
        }
        if per_user_limit > total_quantity {
            return invalid("per_user_limit", "must not exceed total_quantity");
        }
        if sale_ends_at <= sale_starts_at {
            return invalid("sale_ends_at", "must be after sale_starts_at");
        }
        Ok(Self {
            name: name.to_owned(),
            description: description.trim().to_owned(),
            price_cents,
            total_quantity,
            per_user_limit,
            sale: SaleWindow {
                starts_at: sale_starts_at,
                ends_at: sale_ends_at,
            },
            waiting_room_per_sec: None,
        })
    }

    /// Puts the sale behind a waiting room admitting `per_sec` shoppers a second.
    pub fn with_waiting_room(mut self, per_sec: Option<i64>) -> Result<Self, InvalidCoupon> {
        if let Some(rate) = per_sec
            && !(1..=limits::WAITING_ROOM_RATE_MAX).contains(&rate)
        {
            return Err(InvalidCoupon {
                field: "waiting_room_per_sec",
                message: "must be between 1 and 10000 (or null: no waiting room)",
            });
        }
        self.waiting_room_per_sec = per_sec;
        Ok(self)
    }
}

/// Image formats accepted for coupons, recognised by their magic bytes (the declared
/// content type is not trusted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
    Webp,
    Gif,
}

impl ImageFormat {
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(Self::Gif)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
            Self::Gif => "image/gif",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
            Self::Gif => "gif",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn draft(quantity: i64, limit: Option<i64>, hours: i64) -> Result<CouponDraft, InvalidCoupon> {
        let start = Utc::now();
        CouponDraft::parse(
            "Coffee",
            "Half price",
            250,
            quantity,
            limit,
            start,
            start + Duration::hours(hours),
        )
    }

    #[test]
    fn sale_window_is_half_open() {
        let start = Utc::now();
        let window = SaleWindow {
            starts_at: start,
            ends_at: start + Duration::seconds(10),
        };
        assert_eq!(
            window.state(start - Duration::milliseconds(1)),
            SaleState::NotStarted
        );
        assert_eq!(window.state(start), SaleState::Open);
        assert_eq!(
            window.state(start + Duration::milliseconds(9_999)),
            SaleState::Open
        );
        assert_eq!(
            window.state(start + Duration::seconds(10)),
            SaleState::Ended
        );
    }

    #[test]
    fn drafts_name_the_field_at_fault() {
        assert_eq!(
            draft(10, None, 1).unwrap().per_user_limit,
            1,
            "default limit is 1"
        );
        assert_eq!(draft(0, None, 1).unwrap_err().field, "total_quantity");
        assert_eq!(draft(10, Some(0), 1).unwrap_err().field, "per_user_limit");
        assert_eq!(draft(2, Some(3), 1).unwrap_err().field, "per_user_limit");
        assert_eq!(draft(10, None, 0).unwrap_err().field, "sale_ends_at");
        let now = Utc::now();
        let blank = CouponDraft::parse("  ", "", 1, 1, None, now, now + Duration::hours(1));
        assert_eq!(blank.unwrap_err().field, "name");
        let negative = CouponDraft::parse("x", "", -1, 1, None, now, now + Duration::hours(1));
        assert_eq!(negative.unwrap_err().field, "price_cents");
    }

    #[test]
    fn images_are_recognised_by_content() {
        assert_eq!(
            ImageFormat::sniff(b"\x89PNG\r\n\x1a\n...."),
            Some(ImageFormat::Png)
        );
        assert_eq!(
            ImageFormat::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(ImageFormat::Jpeg)
        );
        assert_eq!(
            ImageFormat::sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(ImageFormat::Webp)
        );
        assert_eq!(ImageFormat::sniff(b"GIF89a"), Some(ImageFormat::Gif));
        assert_eq!(ImageFormat::sniff(b"<svg xmlns=..."), None);
        assert_eq!(ImageFormat::sniff(b""), None);
    }
}
