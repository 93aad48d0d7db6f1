//! Merchants (fees, hold periods, API keys) and buyers (wallets).

use super::super::txn::Txn;
use super::check_text;
use super::postings::ensure_account;
use crate::limits::{
    API_KEYS_PER_MERCHANT_MAX, CURRENCIES_PER_PARTY_MAX, FEE_BPS_MAX, HOLD_PERIOD_S_MAX,
    MERCHANT_NAME_BYTES_MAX,
};
use crate::payment::chart::{self, Role};
use crate::payment::{
    ApiKeyId, ApiKeyRecord, Buyer, FeeSchedule, Merchant, MerchantId, NewBuyer, NewMerchant,
    PartyStatus, PaymentError, PaymentOutcome, SigningSecret, SIGNING_SECRETS_PER_KEY_MAX,
};
use crate::store::LedgerRead;

fn check_fees(fees: &FeeSchedule, hold_period_s: u32) -> Result<(), PaymentError> {
    if fees.bps > FEE_BPS_MAX {
        return Err(PaymentError::FeeBpsTooHigh { bps: fees.bps });
    }
    if fees.fixed_minor.len() > CURRENCIES_PER_PARTY_MAX {
        return Err(PaymentError::FieldTooLong {
            field: "fees.fixed_minor".to_string(),
        });
    }
    if hold_period_s > HOLD_PERIOD_S_MAX {
        return Err(PaymentError::HoldPeriodTooLong { hold_period_s });
    }
    Ok(())
}

pub(super) fn create_merchant<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    new: &NewMerchant,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    check_text("name", &new.name, MERCHANT_NAME_BYTES_MAX)?;
    check_fees(&new.fees, new.hold_period_s)?;
    if let Some(existing) = txn.merchant(&new.id) {
        if existing.name == new.name
            && existing.fees == new.fees
            && existing.hold_period_s == new.hold_period_s
        {
            return Ok(PaymentOutcome::Merchant {
                merchant: existing,
                created: false,
            });
        }
        return Err(PaymentError::MerchantExistsWithDifferentFields {
            merchant: new.id.to_string(),
        });
    }
    let merchant = Merchant {
        id: new.id.clone(),
        name: new.name.clone(),
        status: PartyStatus::Active,
        fees: new.fees.clone(),
        hold_period_s: new.hold_period_s,
        api_keys: Vec::new(),
        payout_schedules: Vec::new(),
        webhook_endpoints: Vec::new(),
        created_at_ns: now_ns,
        updated_at_ns: now_ns,
    };
    txn.put_merchant(merchant.clone());
    Ok(PaymentOutcome::Merchant {
        merchant,
        created: true,
    })
}

pub(super) fn merchant<S: LedgerRead>(
    txn: &Txn<'_, S>,
    id: &MerchantId,
) -> Result<Merchant, PaymentError> {
    txn.merchant(id)
        .ok_or_else(|| PaymentError::MerchantNotFound {
            merchant: id.to_string(),
        })
}

pub(super) fn updated<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    mut merchant: Merchant,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    merchant.updated_at_ns = now_ns;
    txn.put_merchant(merchant.clone());
    Ok(PaymentOutcome::Merchant {
        merchant,
        created: true,
    })
}

pub(super) fn update_fees<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    merchant_id: &MerchantId,
    fees: &FeeSchedule,
    hold_period_s: u32,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    check_fees(fees, hold_period_s)?;
    let mut merchant = merchant(txn, merchant_id)?;
    merchant.fees = fees.clone();
    merchant.hold_period_s = hold_period_s;
    updated(txn, merchant, now_ns)
}

pub(super) fn add_api_key<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    merchant_id: &MerchantId,
    key_id: &ApiKeyId,
    secret_hash: &[u8; 32],
    signing_secret: &SigningSecret,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    let mut merchant = merchant(txn, merchant_id)?;
    if let Some(existing) = merchant.api_keys.iter().find(|key| &key.key_id == key_id) {
        if &existing.secret_hash == secret_hash {
            return Ok(PaymentOutcome::Merchant {
                merchant,
                created: false,
            });
        }
        return Err(PaymentError::ApiKeyExists {
            key: key_id.to_string(),
        });
    }
    if let Some(owner) = txn.api_key_merchant(key_id) {
        // Key ids are global: the gateway finds the merchant by the key id alone.
        if &owner != merchant_id {
            return Err(PaymentError::ApiKeyExists {
                key: key_id.to_string(),
            });
        }
    }
    if merchant.api_keys.len() >= API_KEYS_PER_MERCHANT_MAX {
        return Err(PaymentError::TooManyApiKeys {
            merchant: merchant_id.to_string(),
        });
    }
    merchant.api_keys.push(ApiKeyRecord {
        key_id: key_id.clone(),
        secret_hash: *secret_hash,
        signing_secrets: vec![signing_secret.clone()],
        created_at_ns: now_ns,
        revoked_at_ns: None,
    });
    updated(txn, merchant, now_ns)
}

pub(super) fn rotate_signing_secret<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    merchant_id: &MerchantId,
    key_id: &ApiKeyId,
    signing_secret: &SigningSecret,
    keep_previous: bool,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    let mut merchant = merchant(txn, merchant_id)?;
    let key = api_key_mut(&mut merchant, key_id)?;
    if key.revoked_at_ns.is_some() {
        return Err(PaymentError::ApiKeyRevoked {
            key: key_id.to_string(),
        });
    }
    if key.signing_secrets.first() == Some(signing_secret) {
        // A retry of the same rotation.
        return Ok(PaymentOutcome::Merchant {
            merchant,
            created: false,
        });
    }
    let previous = key.signing_secrets.first().cloned();
    key.signing_secrets = std::iter::once(signing_secret.clone())
        .chain(previous.filter(|_| keep_previous))
        .collect();
    assert!(key.signing_secrets.len() <= SIGNING_SECRETS_PER_KEY_MAX);
    updated(txn, merchant, now_ns)
}

fn api_key_mut<'m>(
    merchant: &'m mut Merchant,
    key_id: &ApiKeyId,
) -> Result<&'m mut ApiKeyRecord, PaymentError> {
    merchant
        .api_keys
        .iter_mut()
        .find(|key| &key.key_id == key_id)
        .ok_or_else(|| PaymentError::ApiKeyNotFound {
            key: key_id.to_string(),
        })
}

pub(super) fn revoke_api_key<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    merchant_id: &MerchantId,
    key_id: &ApiKeyId,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    let mut merchant = merchant(txn, merchant_id)?;
    let key = api_key_mut(&mut merchant, key_id)?;
    if key.revoked_at_ns.is_some() {
        return Ok(PaymentOutcome::Merchant {
            merchant,
            created: false,
        });
    }
    key.revoked_at_ns = Some(now_ns);
    updated(txn, merchant, now_ns)
}

pub(super) fn create_buyer<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    new: &NewBuyer,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    let mut currencies = new.wallet_currencies.clone();
    currencies.sort_unstable();
    currencies.dedup();
    if currencies.len() > CURRENCIES_PER_PARTY_MAX {
        return Err(PaymentError::FieldTooLong {
            field: "wallet_currencies".to_string(),
        });
    }
    if let Some(existing) = txn.buyer(&new.id) {
        if existing.wallet_currencies == currencies {
            return Ok(PaymentOutcome::Buyer {
                buyer: existing,
                created: false,
            });
        }
        return Err(PaymentError::BuyerExistsWithDifferentFields {
            buyer: new.id.to_string(),
        });
    }
    for &currency in &currencies {
        ensure_account(
            txn,
            chart::buyer_wallet(&new.id, currency),
            Role::BuyerWallet,
            currency,
            now_ns,
        )?;
    }
    let buyer = Buyer {
        id: new.id.clone(),
        status: PartyStatus::Active,
        wallet_currencies: currencies,
        created_at_ns: now_ns,
    };
    txn.put_buyer(buyer.clone());
    Ok(PaymentOutcome::Buyer {
        buyer,
        created: true,
    })
}
