//! The Lua scripts of `lua/`, embedded at build time. `redis::Script` runs them with
//! EVALSHA and loads a script once when Redis answers NOSCRIPT (after a restart or
//! failover), so each is sent in full at most once per server.

use std::sync::LazyLock;

use deadpool_redis::redis::Script;

pub static WARM_UP: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/warm_up.lua")));

pub static PURCHASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/purchase.lua")));

pub static RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/release.lua")));

pub static CLAIM: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/claim.lua")));

pub static REBUILD_MARK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/rebuild_mark.lua")));

pub static AUDIT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/audit.lua")));

pub static RECONCILE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/reconcile.lua")));

pub static NOTIFY: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/notify.lua")));

pub static WS_ROUTE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/ws_route.lua")));

pub static CACHE_PUT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/cache_put.lua")));

pub static LOCK_EXTEND: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/lock_extend.lua")));

pub static LOCK_RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/lock_release.lua")));

pub static WR_JOIN: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/wr_join.lua")));

pub static WR_DRAW: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/wr_draw.lua")));

pub static WR_ADMIT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/wr_admit.lua")));

pub static WR_STATUS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/wr_status.lua")));
