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
}
