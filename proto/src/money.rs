//! Money as integer minor units with an ISO 4217 currency: never floating point.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// An ISO 4217 alphabetic code (three ASCII capitals), kept inline so it is `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn as_str(&self) -> &str {
        // Only ASCII capitals are ever stored (see `FromStr`).
        std::str::from_utf8(&self.0).expect("currency codes are ASCII")
    }
}

impl Currency {
    /// Digits after the decimal point (ISO 4217's exponent): 0 for the yen or the CFA franc,
    /// 3 for the dinars, 2 for the rest.
    pub fn minor_digits(&self) -> u32 {
        match self.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            _ => 2,
        }
    }

    /// Minor units as a plain decimal ("1500.00" for 150000 MWK), for files and pages; no
    /// grouping, so what is written can be read back.
    pub fn format_minor(&self, minor: i64) -> String {
        self.format_wide(minor.into())
    }

    /// [`Currency::format_minor`] for totals, which are summed in `i128` so as never to
    /// overflow.
    pub fn format_wide(&self, minor: i128) -> String {
        let digits = self.minor_digits();
        if digits == 0 {
            return minor.to_string();
        }
        let unit = 10u128.pow(digits);
        let sign = if minor < 0 { "-" } else { "" };
        let abs = minor.unsigned_abs();
        format!(
            "{sign}{}.{:0width$}",
            abs / unit,
            abs % unit,
            width = digits as usize
        )
    }

    /// Reads a decimal amount ("1500", "1500.5", "1,500.00") into minor units; more decimals
    /// than the currency has, or anything else, is an error rather than a rounding.
    pub fn parse_minor(&self, text: &str) -> Result<i64, MoneyError> {
        let bad = || MoneyError::BadAmount(text.to_owned());
        let t = text.trim().replace(',', "");
        let (negative, t) = match t.strip_prefix('-') {
            Some(rest) => (true, rest.to_owned()),
            None => (false, t),
        };
        let (whole, frac) = t.split_once('.').unwrap_or((&t, ""));
        let digits = self.minor_digits() as usize;
        if whole.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > digits
        {
            return Err(bad());
        }
        let frac = format!("{frac:0<digits$}");
        let value = whole
            .parse::<i64>()
            .ok()
            .and_then(|w| w.checked_mul(10i64.pow(digits as u32)))
            .and_then(|w| w.checked_add(if digits == 0 { 0 } else { frac.parse().ok()? }))
            .ok_or_else(bad)?;
        Ok(if negative { -value } else { value })
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_uppercase) {
            Ok(Currency([b[0], b[1], b[2]]))
        } else {
            Err(MoneyError::BadCurrency(s.to_owned()))
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The largest amount one payment may carry, in minor units: 10^12.
///
/// That is ten thousand million in a currency with cents (10 000 000 000.00 MWK) and a million
/// million in one without (1 000 000 000 000 VND, about 40 million US dollars): far above any
/// social transfer, so a larger amount is a damaged or hostile record, not a payment. It also
/// keeps sums safe: more than nine million such payments are needed to overflow an `i64`
/// total, and totals are widened or checked besides.
pub const MAX_PAYMENT_MINOR: i64 = 1_000_000_000_000;

/// An amount in minor units (cents, tambala, kobo) of one currency.
///
/// Arithmetic is checked: adding different currencies or overflowing is an error, never a
/// silently wrong total.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Money { minor, currency }
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, other.currency));
        }
        self.minor
            .checked_add(other.minor)
            .map(|minor| Money::new(minor, self.currency))
            .ok_or(MoneyError::Overflow)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.minor, self.currency)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("'{0}' is not an ISO 4217 currency code (three capital letters, e.g. MWK)")]
    BadCurrency(String),
    #[error("cannot combine amounts in {0} and {1}")]
    CurrencyMismatch(Currency, Currency),
    #[error("amount overflows")]
    Overflow,
    #[error("'{0}' is not an amount (digits, and at most the currency's decimals)")]
    BadAmount(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_amounts_round_trip_with_the_currency_exponent() {
        let mwk: Currency = "MWK".parse().unwrap();
        let xof: Currency = "XOF".parse().unwrap();
        let kwd: Currency = "KWD".parse().unwrap();
        assert_eq!(mwk.format_minor(150005), "1500.05");
        assert_eq!(mwk.format_minor(-5), "-0.05");
        assert_eq!(xof.format_minor(2500), "2500");
        assert_eq!(kwd.format_minor(1234), "1.234");
        assert_eq!(
            mwk.format_wide(2 * i64::MAX as i128),
            "184467440737095516.14"
        );
        assert_eq!(mwk.format_minor(i64::MIN), "-92233720368547758.08");
        assert_eq!(mwk.parse_minor("1,500.5"), Ok(150050));
        assert_eq!(mwk.parse_minor("1500"), Ok(150000));
        assert_eq!(xof.parse_minor("2500"), Ok(2500));
        for bad in ["", "1.234", "1e3", "abc", "99999999999999999999", ".5"] {
            assert!(mwk.parse_minor(bad).is_err(), "{bad}");
        }
        assert!(xof.parse_minor("1.5").is_err());
    }

    #[test]
    fn currency_codes_are_three_capitals() {
        assert_eq!("MWK".parse::<Currency>().unwrap().as_str(), "MWK");
        for bad in ["mwk", "MW", "MWKX", "M1K", ""] {
            assert!(bad.parse::<Currency>().is_err(), "{bad}");
        }
    }

    #[test]
    fn adding_checks_currency_and_overflow() {
        let mwk: Currency = "MWK".parse().unwrap();
        let usd: Currency = "USD".parse().unwrap();
        assert_eq!(
            Money::new(150, mwk).checked_add(Money::new(50, mwk)),
            Ok(Money::new(200, mwk))
        );
        assert!(matches!(
            Money::new(1, mwk).checked_add(Money::new(1, usd)),
            Err(MoneyError::CurrencyMismatch(..))
        ));
        assert_eq!(
            Money::new(i64::MAX, mwk).checked_add(Money::new(1, mwk)),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn money_serialises_with_its_code() {
        let m = Money::new(12_500, "XOF".parse().unwrap());
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"minor":12500,"currency":"XOF"}"#);
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
        assert!(serde_json::from_str::<Money>(r#"{"minor":1,"currency":"x"}"#).is_err());
    }
}
