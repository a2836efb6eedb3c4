//! The waiting room of a drop: the lottery that orders early arrivals, and the signed
//! admission pass an admitted shopper buys with.
//!
//! Shoppers who join before the sale opens are put in a random order when it opens: the
//! early arrivals sorted by account id, then shuffled (Fisher–Yates) by a SplitMix64
//! stream from a recorded seed, so anyone with the seed and the list can redo the draw.
//! Later arrivals queue behind them in arrival order. Admission moves through the queue
//! at the coupon's rate; an admitted shopper gets a pass bound to the account, the coupon
//! and an expiry, signed with the deployment's key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::coupon::CouponId;
use super::identity::UserId;

/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny, fully specified generator, so the
/// draw can be reproduced anywhere from the seed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (rejection sampling: no modulo bias).
    fn below(&mut self, bound: u64) -> u64 {
        let zone = u64::MAX - (u64::MAX % bound);
        loop {
            let value = self.next();
            if value < zone {
                return value % bound;
            }
        }
    }
}

/// The lottery's order of the early arrivals: sorted by account id, then shuffled by
/// the seed.
pub fn lottery_order(mut early: Vec<String>, seed: u64) -> Vec<String> {
    early.sort_unstable();
    early.dedup();
    let mut random = SplitMix64(seed);
    for i in (1..early.len()).rev() {
        let j = usize::try_from(random.below(i as u64 + 1)).unwrap_or(0);
        early.swap(i, j);
    }
    early
}

/// Why a purchase of a waiting-room coupon was refused for its pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassProblem {
    /// None given, or not one this deployment signed for this account and coupon.
    Missing,
    Expired,
}

/// Signs and checks admission passes: `<expires ms>.<HMAC-SHA256 of account, coupon and
/// expiry, base64url>`. A pass is worthless for another account or coupon.
#[derive(Clone)]
pub struct PassSigner {
    mac: Hmac<Sha256>,
}

impl PassSigner {
    /// `secret`: the deployment's signing secret; passes use a key derived from it, so a
    /// pass can never pass for anything else that secret signs.
    pub fn new(secret: &[u8]) -> Self {
        let mut derive = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        derive.update(b"flash-sale admission pass key v1");
        let key = derive.finalize().into_bytes();
        Self {
            mac: <Hmac<Sha256> as Mac>::new_from_slice(&key)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
        }
    }

    fn signature(&self, user: &UserId, coupon: CouponId, expires_ms: i64) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(format!("{}\n{}\n{expires_ms}", user.as_str(), coupon.get()).as_bytes());
        mac
    }

    pub fn sign(&self, user: &UserId, coupon: CouponId, expires_ms: i64) -> String {
        let tag = self
            .signature(user, coupon, expires_ms)
            .finalize()
            .into_bytes();
        format!("{expires_ms}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// Whether `pass` admits `user` to buy `coupon` at `now_ms`.
    pub fn check(
        &self,
        pass: Option<&str>,
        user: &UserId,
        coupon: CouponId,
        now_ms: i64,
    ) -> Result<(), PassProblem> {
        let Some((expires, tag)) = pass.and_then(|p| p.trim().split_once('.')) else {
            return Err(PassProblem::Missing);
        };
        let Ok(expires_ms) = expires.parse::<i64>() else {
            return Err(PassProblem::Missing);
        };
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return Err(PassProblem::Missing);
        };
        // Constant-time comparison.
        if self
            .signature(user, coupon, expires_ms)
            .verify_slice(&tag)
            .is_err()
        {
            return Err(PassProblem::Missing);
        }
        if now_ms >= expires_ms {
            return Err(PassProblem::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }

    #[test]
    fn the_draw_is_a_permutation_fixed_by_the_seed() {
        let early: Vec<String> = (0..1000).map(|i| format!("user-{i:04}")).collect();
        let mut reversed = early.clone();
        reversed.reverse();
        let a = lottery_order(early.clone(), 42);
        assert_eq!(
            a,
            lottery_order(reversed, 42),
            "arrival order does not matter"
        );
        assert_ne!(a, lottery_order(early.clone(), 43));
        assert_ne!(a, early, "shuffled");
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, early, "everyone once");
        // Roughly uniform: the first place goes to each tenth of the list about as often.
        let mut firsts = [0_u32; 10];
        for seed in 0..2000 {
            let first = &lottery_order(early.clone(), seed)[0];
            let n: usize = first[5..].parse().unwrap();
            firsts[n / 100] += 1;
        }
        assert!(
            firsts.iter().all(|&f| (120..=280).contains(&f)),
            "{firsts:?}"
        );
    }

    #[test]
    fn a_pass_admits_its_account_to_its_coupon_until_it_expires() {
        let signer = PassSigner::new(b"a deployment secret of enough length");
        let (alice, bob) = (user("alice"), user("bob"));
        let (one, two) = (CouponId::new(1).unwrap(), CouponId::new(2).unwrap());
        let pass = signer.sign(&alice, one, 10_000);
        assert_eq!(signer.check(Some(&pass), &alice, one, 9_999), Ok(()));
        assert_eq!(
            signer.check(Some(&pass), &alice, one, 10_000),
            Err(PassProblem::Expired)
        );
        assert_eq!(
            signer.check(Some(&pass), &bob, one, 0),
            Err(PassProblem::Missing)
        );
        assert_eq!(
            signer.check(Some(&pass), &alice, two, 0),
            Err(PassProblem::Missing)
        );
        let later = pass.replacen("10000", "99999", 1);
        assert_eq!(
            signer.check(Some(&later), &alice, one, 0),
            Err(PassProblem::Missing),
            "the expiry is signed"
        );
        let other = PassSigner::new(b"another deployment's secret, also long");
        assert_eq!(
            other.check(Some(&pass), &alice, one, 0),
            Err(PassProblem::Missing)
        );
        for junk in ["", ".", "abc", "1.", "x.y", "10000.!!!"] {
            assert_eq!(
                signer.check(Some(junk), &alice, one, 0),
                Err(PassProblem::Missing)
            );
        }
        assert_eq!(
            signer.check(None, &alice, one, 0),
            Err(PassProblem::Missing)
        );
    }
}
