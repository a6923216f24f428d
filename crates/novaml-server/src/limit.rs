//! Rate limits of mutating requests: token buckets per caller (the API token, or a client
//! address), with refused attempts counted apart from accepted ones ([`crate::auth`] decides
//! which). Reads are not limited: dashboards poll them and they are cheap; writes start jobs and
//! write to the store.
//!
//! Written here rather than taken from `tower_governor`: that crate needs axum's `ConnectInfo`
//! on every request (oneshot tests and Unix sockets have none) and brings its own key extractors
//! and error bodies, while what is needed is a dozen lines that answer in the API's error format.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Whose budget a write counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// A request with the server's token.
    Token,
    /// A request to a server without a token, by client address (none: not a TCP client).
    Open(Option<IpAddr>),
    /// A request refused for a missing or wrong token, by client address.
    Refused(Option<IpAddr>),
}

/// Token buckets per caller.
#[derive(Debug)]
pub struct RateLimiter {
    /// Tokens added per second.
    rate: f64,
    /// Bucket size (the burst allowed).
    burst: f64,
    buckets: Mutex<HashMap<Caller, (f64, Instant)>>,
}
impl RateLimiter {
    /// `rate` requests per second on average, bursts of `burst`.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate: rate.max(1e-3),
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `caller`; `Err(seconds to wait)` when its bucket is empty.
    pub fn take(&self, caller: Caller) -> Result<(), u64> {
        let now = Instant::now();
        let Ok(mut b) = self.buckets.lock() else {
            return Ok(());
        };
        if b.len() > 10_000 {
            // Forget idle clients (their buckets are full again anyway).
            let full = self.burst / self.rate;
            b.retain(|_, (_, t)| now.duration_since(*t).as_secs_f64() < full);
        }
        let (tokens, last) = b.entry(caller).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil() as u64)
        }
    }
}

impl Default for RateLimiter {
    /// 5 writes per second per caller, bursts of 20.
    fn default() -> Self {
        Self::new(5.0, 20.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_refuses_per_client() {
        let l = RateLimiter::new(1.0, 3.0);
        let a = Caller::Refused(Some(IpAddr::from([10, 0, 0, 1])));
        let b = Caller::Refused(Some(IpAddr::from([10, 0, 0, 2])));
        for _ in 0..3 {
            assert!(l.take(a).is_ok());
        }
        assert_eq!(l.take(a), Err(1));
        assert!(l.take(b).is_ok(), "another client has its own bucket");
        assert!(
            l.take(Caller::Token).is_ok(),
            "refusals do not spend the token's budget"
        );
    }
}
