//! The one error for refused gateway configuration (risk rules, rate limits, backoff): every
//! limit in those configs has a written range, checked once when the component is built, so the
//! hot path never meets a zero window or an unbounded map.

/// A configuration value the gateway refuses to start with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("`{field}` is {value}; set it between {min} and {max}")]
    OutOfRange {
        field: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
    #[error("`{field}` is invalid: {expected}")]
    Invalid {
        field: &'static str,
        expected: &'static str,
    },
}

impl ConfigError {
    /// The stable, machine-readable code of this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::OutOfRange { .. } => "config_out_of_range",
            ConfigError::Invalid { .. } => "config_invalid",
        }
    }
}

/// Refuses `value` outside `min..=max`, naming the field so the operator knows what to edit.
pub(crate) fn check_range(
    field: &'static str,
    value: u64,
    min: u64,
    max: u64,
) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            field,
            value,
            min,
            max,
        })
    }
}

/// Longest claim lease: a crashed gateway's order or payout waits at most this long for another.
pub const LEASE_MS_MAX: u64 = 3_600_000;

/// Refuses a lease that a PSP call could outlast: the claim would lapse mid-call and another
/// gateway could call the PSP for the same order or payout at the same time.
pub(crate) fn check_lease(
    lease_field: &'static str,
    lease_ms: u64,
    timeout_field: &'static str,
    psp_call_timeout_ms: u64,
) -> Result<(), ConfigError> {
    check_range(timeout_field, psp_call_timeout_ms, 1, LEASE_MS_MAX - 1)?;
    check_range(lease_field, lease_ms, psp_call_timeout_ms + 1, LEASE_MS_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_names_the_field_and_the_allowed_range() {
        let err = check_range("rate_limit.burst_requests_max", 0, 1, 10).unwrap_err();
        assert_eq!(err.code(), "config_out_of_range");
        assert_eq!(
            err.to_string(),
            "`rate_limit.burst_requests_max` is 0; set it between 1 and 10"
        );
        assert!(check_range("x", 1, 1, 10).is_ok());
        assert!(check_range("x", 10, 1, 10).is_ok());
        assert!(check_range("x", 11, 1, 10).is_err());
    }

    #[test]
    fn a_lease_a_psp_call_could_outlast_is_refused() {
        let err = check_lease(
            "executor.lease_ms",
            1_500,
            "executor.psp_call_timeout_ms",
            1_500,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`executor.lease_ms` is 1500; set it between 1501 and 3600000"
        );
        let err = check_lease(
            "executor.lease_ms",
            30_000,
            "executor.psp_call_timeout_ms",
            0,
        )
        .unwrap_err();
        assert_eq!(err.code(), "config_out_of_range");
        assert!(check_lease("l", 1_501, "t", 1_500).is_ok());
        assert!(check_lease("l", LEASE_MS_MAX + 1, "t", 1_500).is_err());
    }
}
