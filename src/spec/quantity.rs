//! Kubernetes resource quantities (`apimachinery/pkg/api/resource/quantity.go`).
//!
//! Grammar: `<signedNumber><suffix>`, the number being `d`, `d.d`, `d.` or `.d` with an optional
//! sign; the suffix a binary SI (`Ki`..`Ei`), decimal SI (`n u m "" k M G T P E`) or `e`/`E`
//! exponent. Values are kept in nano units, rounded up, and capped at 2^63-1 base units.

use std::fmt;

/// The three parse errors of `ParseQuantity`, with Kubernetes' wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantityError {
    Format,
    Suffix,
    Numeric,
}

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QuantityError::Format => {
                "quantities must match the regular expression \
                 '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
            }
            QuantityError::Suffix => "unable to parse quantity's suffix",
            QuantityError::Numeric => "unable to parse numeric part of quantity",
        })
    }
}

impl std::error::Error for QuantityError {}

const NANOS_PER_UNIT: i128 = 1_000_000_000;
/// Kubernetes caps the magnitude at 2^63-1 (in base units).
const MAX_NANOS: i128 = (i64::MAX as i128) * NANOS_PER_UNIT;

/// A parsed quantity, in nano units (1 = 1e-9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity {
    nanos: i128,
}

/// How the suffix scales the number: `base^exponent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scale {
    base: u32,
    exponent: i32,
}

/// The textual parts of a quantity: sign, digits before and after the dot, suffix.
struct Parts<'a> {
    negative: bool,
    whole: &'a str,
    fraction: &'a str,
    suffix: &'a str,
}

impl Quantity {
    /// Parses a quantity string exactly as `resource.ParseQuantity` does.
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        let parts = split_parts(text)?;
        let scale = interpret_suffix(parts.suffix).ok_or(QuantityError::Suffix)?;
        let magnitude = scaled_nanos(parts.whole, parts.fraction, scale)?;
        let nanos = if parts.negative {
            -magnitude
        } else {
            magnitude
        };
        Ok(Quantity { nanos })
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// `MilliValue()`: thousandths, rounded up (away from zero).
    pub fn milli_value(&self) -> i64 {
        round_up_div(self.nanos, 1_000_000)
    }

    /// `Value()`: whole units, rounded up (away from zero).
    pub fn value(&self) -> i64 {
        round_up_div(self.nanos, NANOS_PER_UNIT)
    }
}

fn round_up_div(nanos: i128, divisor: i128) -> i64 {
    let magnitude = nanos.abs();
    let quotient = magnitude / divisor + i128::from(magnitude % divisor != 0);
    let signed = if nanos < 0 { -quotient } else { quotient };
    signed.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Splits `text` into its parts, following `parseQuantityString`.
fn split_parts(text: &str) -> Result<Parts<'_>, QuantityError> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let negative = bytes.first() == Some(&b'-');
    if matches!(bytes.first(), Some(b'-' | b'+')) {
        pos += 1;
    }
    let whole_start = pos;
    pos += count_while(&bytes[pos..], |b| b.is_ascii_digit());
    let whole = &text[whole_start..pos];
    let mut fraction = "";
    if bytes.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        pos += count_while(&bytes[pos..], |b| b.is_ascii_digit());
        fraction = &text[start..pos];
    }
    if whole.is_empty() && fraction.is_empty() {
        return Err(QuantityError::Format);
    }
    let suffix = &text[pos..];
    check_suffix_shape(suffix.as_bytes())?;
    Ok(Parts {
        negative,
        whole,
        fraction,
        suffix,
    })
}

fn count_while(bytes: &[u8], pred: impl Fn(u8) -> bool) -> usize {
    bytes.iter().take_while(|b| pred(**b)).count()
}

/// The suffix must look like `[eEinumkKMGTP]*[-+]?[0-9]*`.
fn check_suffix_shape(suffix: &[u8]) -> Result<(), QuantityError> {
    let mut pos = count_while(suffix, |b| b"eEinumkKMGTP".contains(&b));
    if matches!(suffix.get(pos), Some(b'-' | b'+')) {
        pos += 1;
    }
    pos += count_while(&suffix[pos..], |b| b.is_ascii_digit());
    if pos == suffix.len() {
        Ok(())
    } else {
        Err(QuantityError::Format)
    }
}

/// `suffixer.interpret`: the base and exponent a suffix stands for.
fn interpret_suffix(suffix: &str) -> Option<Scale> {
    let binary = |exponent| Some(Scale { base: 2, exponent });
    let decimal = |exponent| Some(Scale { base: 10, exponent });
    match suffix {
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "" => decimal(0),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        _ => interpret_exponent(suffix),
    }
}

fn interpret_exponent(suffix: &str) -> Option<Scale> {
    let rest = suffix.strip_prefix(['e', 'E'])?;
    let exponent: i32 = rest.parse().ok()?;
    Some(Scale { base: 10, exponent })
}

/// `whole.fraction * scale` in nano units, rounded up and capped.
fn scaled_nanos(whole: &str, fraction: &str, scale: Scale) -> Result<i128, QuantityError> {
    let digits = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Ok(0);
    }
    if significant.len() > 36 {
        return Ok(MAX_NANOS);
    }
    let mantissa: i128 = significant.parse().map_err(|_| QuantityError::Numeric)?;
    let fraction_len = i64::try_from(fraction.len()).map_err(|_| QuantityError::Numeric)?;
    let (mut numerator, mut denominator) = (mantissa, 1i128);
    let mut ten_power = 9 - fraction_len;
    if scale.base == 2 {
        numerator = numerator.saturating_mul(1i128 << scale.exponent);
    } else {
        ten_power += i64::from(scale.exponent);
    }
    if ten_power >= 0 {
        numerator = saturating_pow10_mul(numerator, ten_power);
    } else if ten_power < -38 {
        return Ok(1);
    } else {
        denominator = 10i128.pow(u32::try_from(-ten_power).unwrap_or(38));
    }
    let rounded_up = numerator / denominator + i128::from(numerator % denominator != 0);
    Ok(rounded_up.min(MAX_NANOS))
}

fn saturating_pow10_mul(value: i128, power: i64) -> i128 {
    let mut result = value;
    for _ in 0..power {
        result = result.saturating_mul(10);
        if result >= MAX_NANOS {
            return MAX_NANOS;
        }
    }
    result
}

/// Canonical CPU text: whole cores when exact (`2`), else millicores (`1500m`).
pub fn format_cpu_millis(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Canonical memory text: the largest exact binary suffix (`200Mi`), else decimal (`1G`), else bytes.
pub fn format_bytes(bytes: u64) -> String {
    if bytes == 0 {
        return "0".to_string();
    }
    const BINARY: [&str; 6] = ["Ei", "Pi", "Ti", "Gi", "Mi", "Ki"];
    for (index, suffix) in BINARY.iter().enumerate() {
        let unit = 1u64 << (10 * (6 - index));
        if bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    const DECIMAL: [(&str, u64); 6] = [
        ("E", 1_000_000_000_000_000_000),
        ("P", 1_000_000_000_000_000),
        ("T", 1_000_000_000_000),
        ("G", 1_000_000_000),
        ("M", 1_000_000),
        ("k", 1_000),
    ];
    for (suffix, unit) in DECIMAL {
        if bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(text: &str) -> i128 {
        Quantity::parse(text).unwrap().nanos
    }

    #[test]
    fn parses_the_reference_examples() {
        assert_eq!(Quantity::parse("100m").unwrap().milli_value(), 100);
        assert_eq!(Quantity::parse("200Mi").unwrap().value(), 209_715_200);
        assert_eq!(Quantity::parse("1.5").unwrap().milli_value(), 1500);
        assert_eq!(Quantity::parse("1e3").unwrap().value(), 1000);
        assert_eq!(Quantity::parse("0.1").unwrap().milli_value(), 100);
        assert_eq!(Quantity::parse("2Ki").unwrap().value(), 2048);
        assert_eq!(
            Quantity::parse("1E").unwrap().value(),
            1_000_000_000_000_000_000
        );
        assert_eq!(nanos(".5"), 500_000_000);
        assert_eq!(Quantity::parse("5.").unwrap().value(), 5);
    }

    #[test]
    fn rejects_the_reference_counter_examples() {
        for bad in [
            "", "1KB", "1 Gi", "1,000", "1.2.3", "0x10", "200Mx", ".", "-",
        ] {
            assert_eq!(Quantity::parse(bad), Err(QuantityError::Format), "{bad:?}");
        }
        for bad in ["1K", "1e", "1Mb", "1mi", "1GB"] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Quantity::parse("1K"), Err(QuantityError::Suffix));
        assert_eq!(Quantity::parse("1e"), Err(QuantityError::Suffix));
    }

    #[test]
    fn suffixes_are_case_sensitive() {
        assert_eq!(Quantity::parse("1k").unwrap().value(), 1000);
        assert_eq!(Quantity::parse("1Ki").unwrap().value(), 1024);
        assert_eq!(Quantity::parse("1M").unwrap().value(), 1_000_000);
        assert_eq!(Quantity::parse("1m").unwrap().milli_value(), 1);
        assert!(Quantity::parse("1KB").is_err());
        assert!(Quantity::parse("1Gb").is_err());
    }

    #[test]
    fn rounds_up() {
        assert_eq!(Quantity::parse("0.1m").unwrap().milli_value(), 1);
        assert_eq!(Quantity::parse("100m").unwrap().value(), 1);
        assert_eq!(Quantity::parse("1n").unwrap().milli_value(), 1);
        assert_eq!(Quantity::parse("1e-20").unwrap().value(), 1);
        assert_eq!(Quantity::parse("1.5Gi").unwrap().value(), 1_610_612_736);
    }

    #[test]
    fn handles_signs_and_exponents() {
        let negative = Quantity::parse("-1").unwrap();
        assert!(negative.is_negative());
        assert_eq!(negative.milli_value(), -1000);
        assert_eq!(Quantity::parse("+2").unwrap().value(), 2);
        assert_eq!(Quantity::parse("1E3").unwrap().value(), 1000);
        assert_eq!(Quantity::parse("5e-3").unwrap().milli_value(), 5);
        assert_eq!(Quantity::parse("1e+3").unwrap().value(), 1000);
        assert!(Quantity::parse("0").unwrap().is_zero());
        assert!(Quantity::parse("0.000").unwrap().is_zero());
    }

    #[test]
    fn caps_huge_values() {
        assert_eq!(Quantity::parse("1e100").unwrap().value(), i64::MAX);
        assert_eq!(Quantity::parse("99999Ei").unwrap().value(), i64::MAX);
        let long = "9".repeat(60);
        assert_eq!(Quantity::parse(&long).unwrap().value(), i64::MAX);
    }

    #[test]
    fn formats_canonically() {
        assert_eq!(format_cpu_millis(1500), "1500m");
        assert_eq!(format_cpu_millis(2000), "2");
        assert_eq!(format_cpu_millis(200), "200m");
        assert_eq!(format_bytes(209_715_200), "200Mi");
        assert_eq!(format_bytes(1_610_612_736), "1536Mi");
        assert_eq!(format_bytes(1_000_000_000), "1G");
        assert_eq!(format_bytes(1), "1");
        assert_eq!(format_bytes(0), "0");
    }

    #[test]
    fn error_messages_use_kubernetes_wording() {
        assert_eq!(
            QuantityError::Format.to_string(),
            "quantities must match the regular expression \
             '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
        assert_eq!(
            QuantityError::Suffix.to_string(),
            "unable to parse quantity's suffix"
        );
    }
}
