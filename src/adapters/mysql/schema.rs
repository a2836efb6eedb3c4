// Diesel table definitions matching `migrations/` (MySQL dialect). A test compares them
// with the live schema after migrating (`tests/integration/migrations.rs`).

diesel::table! {
    consumer_offsets (topic, partition_id) {
        #[max_length = 249]
        topic -> Varchar,
        partition_id -> Integer,
        next_offset -> Bigint,
        owner_epoch -> Bigint,
        updated_at -> Datetime,
    }
}

diesel::table! {
    coupons (id) {
        id -> Bigint,
        #[max_length = 200]
        name -> Varchar,
        description -> Text,
        price_cents -> Bigint,
        #[max_length = 512]
        image_key -> Nullable<Varchar>,
        total_quantity -> Integer,
        per_user_limit -> Integer,
        sale_starts_at -> Datetime,
        sale_ends_at -> Datetime,
        is_deleted -> Bool,
        created_at -> Datetime,
        updated_at -> Datetime,
        sale_state_created_at -> Nullable<Datetime>,
        waiting_room_per_sec -> Nullable<Integer>,
    }
}

diesel::table! {
    orders (id) {
        #[max_length = 36]
        id -> Char,
        #[max_length = 64]
        user_id -> Varchar,
        coupon_id -> Bigint,
        price_cents -> Bigint,
        #[max_length = 16]
        status -> Varchar,
        created_at -> Datetime,
        updated_at -> Datetime,
    }
}

diesel::table! {
    sale_buyers (coupon_id, user_id) {
        coupon_id -> Bigint,
        #[max_length = 64]
        user_id -> Varchar,
        units -> Integer,
    }
}

diesel::table! {
    sale_stock (coupon_id) {
        coupon_id -> Bigint,
        remaining -> Integer,
        version -> Bigint,
    }
}

diesel::table! {
    users (id) {
        id -> Bigint,
        #[max_length = 254]
        email -> Varchar,
        #[max_length = 255]
        password_hash -> Varchar,
        is_admin -> Bool,
        created_at -> Datetime,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    consumer_offsets,
    coupons,
    orders,
    sale_buyers,
    sale_stock,
    users
);
