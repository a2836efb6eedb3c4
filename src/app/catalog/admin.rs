//! The admin changes: create, edit, delete, images, and the sale state they put in
//! Redis; each invalidates the cache entries it affects.

use super::*;

/// Where the admin use cases need more than the shared error type says.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The change is valid in itself but not at this point of the sale.
    #[error("{field}: {message}")]
    Conflict {
        field: &'static str,
        message: &'static str,
    },
}

impl Catalog {
    /// Drops this instance's and the shared cache entries an admin change affects.
    async fn invalidate(&self, id: CouponId) -> Result<(), CatalogError> {
        self.cache
            .invalidate(&self.cache.keys().catalog_coupon(id.get()))
            .await?;
        // The search engine first: a search between the two would otherwise put the
        // engine's old answer back into the cleared memory.
        self.sync_search(id).await;
        self.local.clear();
        Ok(())
    }

    /// Tells the search engine about the change. The change itself stands either way:
    /// a failure is logged, and the engine is made whole again at the next start.
    async fn sync_search(&self, id: CouponId) {
        if !self.search.keeps_a_copy() {
            return;
        }
        if self.search.per_instance() {
            // The same pass as for changes made elsewhere, so that no older copy of a
            // row can overwrite a newer one.
            if let Err(error) = self.follow_search_changes().await {
                tracing::warn!(
                    coupon.id = %id,
                    error = crate::domain::failure::chain(&error),
                    "search index not updated; the next pass applies the change"
                );
            }
            return;
        }
        let synced = match self
            .mysql
            .with_conn(async |conn| coupons::find(conn, id).await)
            .await
        {
            Ok(Some(coupon)) => self.search.sync(&coupon).await.map_err(Failure::from),
            Ok(None) => Ok(()),
            Err(e) => Err(Failure::from(e)),
        };
        if let Err(error) = synced {
            tracing::warn!(
                coupon.id = %id,
                engine = self.search.name(),
                error = crate::domain::failure::chain(&error),
                "search engine not updated; it is rebuilt from MySQL at the next start"
            );
        }
    }

    /// Fills the search engine from MySQL, every coupon (deleted ones are removed).
    pub async fn rebuild_search(&self) -> Result<usize, CatalogError> {
        const CHUNK: i64 = 1000;
        let mut after = 0;
        let mut count = 0;
        loop {
            let chunk = self
                .mysql
                .with_conn(async |conn| coupons::chunk_after(conn, after, CHUNK).await)
                .await?;
            let Some(last) = chunk.last() else {
                return Ok(count);
            };
            after = last.id.get();
            self.search.rebuild(&chunk).await.map_err(unavailable)?;
            count += chunk.len();
        }
    }

    async fn load_fresh(&self, id: CouponId) -> Result<Coupon, CatalogError> {
        self.mysql
            .with_conn(async |conn| coupons::find(conn, id).await)
            .await?
            .filter(|c| !c.is_deleted)
            .ok_or(CatalogError::NotFound)
    }

    async fn fresh_view(&self, id: CouponId) -> Result<CouponView, CatalogError> {
        let coupon = self.load_fresh(id).await?;
        self.view(&coupon).await
    }

    /// Creates a coupon and puts its sale into Redis (stock, limit, window).
    pub async fn create(&self, draft: &CouponDraft) -> Result<CouponView, CatalogError> {
        let coupon = self
            .mysql
            .with_conn(async |conn| coupons::insert(conn, draft).await)
            .await?;
        self.put_sale_state(&coupon).await?;
        self.invalidate(coupon.id).await?;
        tracing::info!(coupon.id = %coupon.id, "coupon created");
        self.fresh_view(coupon.id).await
    }

    /// Replaces a coupon's editable fields. Quantity and per-user limit can change only
    /// before the sale starts (afterwards units may have been sold against them).
    pub async fn update(
        &self,
        id: CouponId,
        draft: &CouponDraft,
    ) -> Result<CouponView, AdminError> {
        let current = self.load_fresh(id).await?;
        let started = current.sale.state(Utc::now()) != SaleState::NotStarted;
        if started && draft.total_quantity != current.total_quantity {
            return Err(AdminError::Conflict {
                field: "total_quantity",
                message: "cannot change once the sale has started",
            });
        }
        // Shoppers may be queued, or have bought, under the waiting room as it was.
        if started && draft.waiting_room_per_sec != current.waiting_room_per_sec {
            return Err(AdminError::Conflict {
                field: "waiting_room_per_sec",
                message: "cannot change once the sale has started",
            });
        }
        // The buyer records' shape depends on the limit (a set for 1, counts above it).
        if started && draft.per_user_limit != current.per_user_limit {
            return Err(AdminError::Conflict {
                field: "per_user_limit",
                message: "cannot change once the sale has started",
            });
        }
        let updated = self
            .mysql
            .with_conn(async |conn| coupons::update(conn, id, draft).await)
            .await
            .map_err(CatalogError::from)?;
        if !updated {
            return Err(CatalogError::NotFound.into());
        }
        let coupon = self.load_fresh(id).await?;
        if matches!(
            self.put_sale_state(&coupon).await?,
            WarmUp::TotalFixedBySales { .. }
        ) {
            // A sale that was started and postponed has sold units against the old
            // total: put the row back as it was and refuse.
            let previous = CouponDraft {
                name: current.name.clone(),
                description: current.description.clone(),
                price_cents: current.price_cents,
                total_quantity: current.total_quantity,
                per_user_limit: current.per_user_limit,
                sale: current.sale,
                waiting_room_per_sec: current.waiting_room_per_sec,
            };
            self.mysql
                .with_conn(async |conn| coupons::update(conn, id, &previous).await)
                .await
                .map_err(CatalogError::from)?;
            self.invalidate(id).await?;
            return Err(AdminError::Conflict {
                field: "total_quantity",
                message: "cannot change once units of the sale are sold",
            });
        }
        self.invalidate(id).await?;
        tracing::info!(coupon.id = %id, "coupon updated");
        Ok(self.fresh_view(id).await?)
    }

    /// Soft delete: the row stays (orders point at it); browsing and buying stop.
    pub async fn delete(&self, id: CouponId) -> Result<(), CatalogError> {
        let coupon = self.load_fresh(id).await?;
        let deleted = self
            .mysql
            .with_conn(async |conn| coupons::soft_delete(conn, id).await)
            .await?;
        if !deleted {
            return Err(CatalogError::NotFound);
        }
        let mut gone = coupon;
        gone.is_deleted = true;
        self.put_sale_state(&gone).await?;
        self.invalidate(id).await?;
        tracing::info!(coupon.id = %id, "coupon deleted");
        Ok(())
    }

    /// Stores an image (checked by content, not by declared type) and points the coupon
    /// at it; the previous image is removed.
    pub async fn upload_image(
        &self,
        id: CouponId,
        bytes: Bytes,
    ) -> Result<CouponView, CatalogError> {
        if bytes.len() > self.settings.max_image_bytes {
            return Err(CatalogError::ImageTooLarge {
                max_bytes: self.settings.max_image_bytes,
            });
        }
        let format = ImageFormat::sniff(&bytes).ok_or(CatalogError::UnsupportedImage)?;
        self.load_fresh(id).await?;
        let key = format!(
            "coupons/{id}/{}.{}",
            uuid::Uuid::now_v7().simple(),
            format.extension()
        );
        self.objects
            .put(&key, bytes, format.content_type())
            .await
            .map_err(unavailable)?;
        let previous = self
            .mysql
            .with_conn(async |conn| coupons::set_image(conn, id, &key).await)
            .await?;
        let Some(previous) = previous else {
            // Deleted meanwhile: do not leave the object behind.
            let _ = self.objects.delete(&key).await;
            return Err(CatalogError::NotFound);
        };
        if let Some(old) = previous
            && let Err(error) = self.objects.delete(&old).await
        {
            tracing::warn!(coupon.id = %id, %error, "could not delete the previous image");
        }
        self.invalidate(id).await?;
        self.fresh_view(id).await
    }

    /// Puts every live coupon's sale into Redis (start-up; idempotent, never resets a
    /// sale in progress). Returns how many.
    pub async fn warm_up_all(&self) -> Result<usize, CatalogError> {
        let live = self
            .mysql
            .with_conn(async |conn| coupons::live(conn).await)
            .await?;
        // Which sales had a state once: one query for all, not one per coupon.
        let ids: Vec<i64> = live.iter().map(|c| c.id.get()).collect();
        let created: std::collections::HashSet<i64> = self
            .mysql
            .with_conn(async |conn| coupons::with_sale_state_created(conn, &ids).await)
            .await?
            .into_iter()
            .collect();
        for coupon in &live {
            self.write_sale_state(coupon, created.contains(&coupon.id.get()))
                .await?;
        }
        Ok(live.len())
    }

    /// Puts a coupon's sale into Redis (`CouponState::warm_up`): the stock is created
    /// only if this sale never had a state, which MySQL remembers. A lost state is left
    /// alone (purchases answer 503 until a reconcile rebuilds it), never re-created at
    /// the full quantity.
    async fn put_sale_state(&self, coupon: &Coupon) -> Result<WarmUp, CatalogError> {
        let id = coupon.id.get();
        let created_before = !self
            .mysql
            .with_conn(async |conn| coupons::with_sale_state_created(conn, &[id]).await)
            .await?
            .is_empty();
        self.write_sale_state(coupon, created_before).await
    }

    /// [`Catalog::put_sale_state`] for a sale whose MySQL mark is already known.
    async fn write_sale_state(
        &self,
        coupon: &Coupon,
        created_before: bool,
    ) -> Result<WarmUp, CatalogError> {
        let id = coupon.id;
        // MySQL remembers first: a state created but not remembered (a crash between the
        // two) would be created again at the full quantity once lost. Remembered but not
        // created, it is rebuilt from the (empty) records instead: the same stock.
        if !created_before {
            self.mysql
                .with_conn(async |conn| coupons::mark_sale_state_created(conn, id).await)
                .await?;
        }
        let outcome = self.state.warm_up(coupon, !created_before).await?;
        if outcome == WarmUp::StateLost {
            tracing::warn!(coupon.id = %id, "the sale's state is missing from Redis; it is rebuilt from MySQL and Kafka (by the drift audit or the first purchase)");
        }
        Ok(outcome)
    }
}

impl From<InvalidCoupon> for AdminError {
    fn from(e: InvalidCoupon) -> Self {
        Self::Catalog(CatalogError::Invalid(e))
    }
}
